//! The metric contract (DESIGN.md), rendered for Prometheus.
//!
//! Input: the [`Tracker`](crate::timeline::Tracker) (pod series) plus the agent's own counters.
//! Output: a `prometheus::Registry` — text exposition for `/metrics`, and
//! `gather()` for the OTLP push, so metric definitions exist once.
//!
//! Pod series are not kept in prometheus counters: they are rendered from the
//! tracker at scrape time. The tracker is checkpointed with the read offsets,
//! so the exported counters continue across restarts instead of resetting.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::model::{Counter, FailureReason, Target};
use crate::probe::ProbeOutcome;
use crate::timeline::{GapHistogram, GAP_BUCKETS};

/// Every metric name starts with this.
pub const PREFIX: &str = "litellm_sentinel_";

/// The tracker handle lives in the timeline; this path stays for its users.
pub use crate::timeline::SharedTracker;

/// The agent's own health counters.
pub struct SelfMetrics {
    pub files_watched: IntGauge,
    pub lines_read: IntCounter,
    pub bytes_read: IntCounter,
    pub lines_malformed: IntCounterVec,
    pub read_errors: IntCounterVec,
    pub tail_lag_bytes: IntGauge,
    pub rotated_bytes_unread: IntCounter,
    pub checkpoint_writes: IntCounter,
    pub checkpoint_failures: IntCounter,
    pub rules_loaded: IntGauge,
    pub config_reloads: IntCounterVec,
    pub series_expired: IntCounter,
    pub otlp_export_failures: IntCounter,
    pub probe_duration: HistogramVec,
    pub probe_failures: IntCounterVec,
}

/// The registry with every family registered.
pub struct Metrics {
    pub registry: Registry,
    pub agent: SelfMetrics,
}

fn name(n: &str) -> String {
    format!("{PREFIX}{n}")
}

impl Metrics {
    /// Registers every family; pod families read `tracker` at scrape time.
    pub fn new(tracker: SharedTracker) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(name("build_info"), "Build of the agent (value 1)."),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let agent = SelfMetrics {
            files_watched: reg!(IntGauge::new(
                name("files_watched"),
                "Log files currently followed."
            )?),
            lines_read: reg!(IntCounter::new(
                name("lines_read_total"),
                "Physical log lines read."
            )?),
            bytes_read: reg!(IntCounter::new(
                name("bytes_read_total"),
                "Bytes read from log files."
            )?),
            lines_malformed: reg!(IntCounterVec::new(
                Opts::new(
                    name("lines_malformed_total"),
                    "Lines that could not be decoded, by reason."
                ),
                &["reason"]
            )?),
            read_errors: reg!(IntCounterVec::new(
                Opts::new(
                    name("read_errors_total"),
                    "Files or directories that could not be read, by reason."
                ),
                &["reason"]
            )?),
            tail_lag_bytes: reg!(IntGauge::new(
                name("tail_lag_bytes"),
                "Bytes written to followed files and not read yet."
            )?),
            rotated_bytes_unread: reg!(IntCounter::new(
                name("rotated_bytes_unread_total"),
                "Bytes of log files deleted (rotated away) before the agent could read them: data lost to monitoring."
            )?),
            checkpoint_writes: reg!(IntCounter::new(
                name("checkpoint_writes_total"),
                "State snapshots taken (an unchanged state is not rewritten: the file on disk already is that snapshot)."
            )?),
            checkpoint_failures: reg!(IntCounter::new(
                name("checkpoint_failures_total"),
                "State snapshots that could not be written."
            )?),
            rules_loaded: reg!(IntGauge::new(
                name("rules_loaded"),
                "Classification rules in force."
            )?),
            config_reloads: reg!(IntCounterVec::new(
                Opts::new(
                    name("config_reloads_total"),
                    "Configuration reloads, by result."
                ),
                &["result"]
            )?),
            series_expired: reg!(IntCounter::new(
                name("series_expired_total"),
                "Pods whose series expired after their logs were gone."
            )?),
            otlp_export_failures: reg!(IntCounter::new(
                name("otlp_export_failures_total"),
                "OTLP metric pushes that failed."
            )?),
            probe_duration: reg!(HistogramVec::new(
                HistogramOpts::new(
                    name("probe_duration_seconds"),
                    "Duration of readiness probes."
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
                ]),
                &["target"]
            )?),
            probe_failures: reg!(IntCounterVec::new(
                Opts::new(
                    name("probe_failures_total"),
                    "Failed readiness probes, by target and reason."
                ),
                &["target", "reason"]
            )?),
        };
        for r in crate::format::MalformedReason::ALL {
            agent.lines_malformed.with_label_values(&[r.as_str()]);
        }
        for r in crate::tail::ReadErrorReason::ALL {
            agent.read_errors.with_label_values(&[r.as_str()]);
        }
        for r in ["success", "failure"] {
            agent.config_reloads.with_label_values(&[r]);
        }
        registry.register(Box::new(PodCollector::new(tracker)))?;
        Ok(Metrics { registry, agent })
    }

    /// Records one probe result (pod-independent families; `engine_up` comes from the tracker).
    pub fn observe_probe(&self, o: &ProbeOutcome) {
        let t = o.target.as_str();
        self.agent
            .probe_duration
            .with_label_values(&[t])
            .observe(o.duration.as_secs_f64());
        if let Err(reason) = o.result {
            self.agent
                .probe_failures
                .with_label_values(&[t, reason.as_str()])
                .inc();
        }
    }

    /// Pre-registers the probe series of the configured targets, so they exist at 0.
    pub fn register_probe_targets(&self, targets: &[Target]) {
        for t in targets {
            self.agent.probe_duration.with_label_values(&[t.as_str()]);
            for r in FailureReason::ALL {
                self.agent
                    .probe_failures
                    .with_label_values(&[t.as_str(), r.as_str()]);
            }
        }
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// Renders the pod families from the tracker at scrape time.
struct PodCollector {
    tracker: SharedTracker,
    descs: Vec<Desc>,
    /// Family name → its row in [`POD_FAMILIES`].
    index: HashMap<&'static str, usize>,
    /// Every pod counter with its family's row, resolved once (the bulk of a scrape).
    counter_rows: Vec<(Counter, usize)>,
}

/// (name, help, type, variable labels) of every pod family. A pod counter's
/// family is the model's ([`Counter::family`]); each has its row here (a test
/// checks), so a new counter needs one help line and nothing else.
const POD_FAMILIES: &[(&str, &str, MetricType, &[&str])] = &[
    ("db_connect_errors_total", "DB calls that failed because the query engine or database could not be reached, by operation (database: the database itself failed).", MetricType::COUNTER, &["namespace", "pod", "operation"]),
    ("spend_batches_dropped_total", "Spend-log batches LiteLLM dropped (unbilled spend; 1.83.x). Re-queued batches of 1.108+ are not counted here.", MetricType::COUNTER, &["namespace", "pod"]),
    ("spend_rows_requeued_total", "Spend rows LiteLLM re-queued for a later retry (not lost).", MetricType::COUNTER, &["namespace", "pod"]),
    ("spend_rows_lost_total", "Spend rows LiteLLM lost (its own count, or the size of a dropped 1.83.x batch).", MetricType::COUNTER, &["namespace", "pod"]),
    ("spend_updates_failed_total", "Key/user/team spend update jobs that failed: increments not applied, no amount logged.", MetricType::COUNTER, &["namespace", "pod"]),
    ("budget_cache_misses_total", "Budget lookups that failed, leaving the budget cache empty (each request hits the DB).", MetricType::COUNTER, &["namespace", "pod"]),
    ("config_load_failures_total", "Deployments or credentials that could not be loaded from the DB.", MetricType::COUNTER, &["namespace", "pod", "kind"]),
    ("engine_distro_fallback_total", "Prisma engine distro fallbacks (slower engine start).", MetricType::COUNTER, &["namespace", "pod"]),
    ("engine_restarts_total", "Query engines LiteLLM killed or lost and restarted (one per engine PID).", MetricType::COUNTER, &["namespace", "pod"]),
    ("proxy_starts_total", "Container runs of the proxy that started accepting traffic (one per run, whatever the number of workers).", MetricType::COUNTER, &["namespace", "pod"]),
    ("requests_during_gap_total", "Requests served inside a confirmed start-up gap as finally measured (spend at risk); attributed when the gap closes.", MetricType::COUNTER, &["namespace", "pod"]),
    ("last_startup_gap_seconds", "The most recent closed start-up gap of the pod (0: no DB failure confirmed one).", MetricType::GAUGE, &["namespace", "pod", "method"]),
    ("in_startup_gap", "1 while the pod is inside a start-up gap confirmed by a DB failure.", MetricType::GAUGE, &["namespace", "pod"]),
    ("startup_gap_open_since_timestamp_seconds", "Unix time the open, confirmed start-up gap began (absent when none is open).", MetricType::GAUGE, &["namespace", "pod"]),
    ("db_outages_total", "DB outages after the start-up gap closed: a burst of failures (log) or an engine that stopped answering (probe).", MetricType::COUNTER, &["namespace", "pod"]),
    ("in_db_outage", "1 while the pod is inside a DB outage after its start-up gap.", MetricType::GAUGE, &["namespace", "pod"]),
    ("requests_during_outage_total", "Requests served inside DB outages (attributed when the outage ends).", MetricType::COUNTER, &["namespace", "pod"]),
    ("engine_up", "1 when the probe of the target succeeds, 0 when it fails.", MetricType::GAUGE, &["namespace", "pod", "target"]),
    ("startup_gap_seconds", "Seconds from the proxy accepting traffic to the engine answering queries.", MetricType::HISTOGRAM, &["namespace", "method"]),
    ("db_outage_seconds", "Duration of DB outages after the start-up gap.", MetricType::HISTOGRAM, &["namespace", "method"]),
    ("pods_tracked", "Pods the agent currently tracks.", MetricType::GAUGE, &[]),
    ("pods_dropped_total", "Pod events dropped because the tracked-pod cap was reached.", MetricType::COUNTER, &[]),
    ("pod_state_poisoned_total", "Panics that interrupted an update of the pod state; counting went on from the state as left (the event being applied may be counted partly or not at all). Any value above 0 is a bug to report.", MetricType::COUNTER, &[]),
];

/// The families of the collector that are not pod counters.
mod family {
    pub const LAST_STARTUP_GAP: &str = "last_startup_gap_seconds";
    pub const IN_STARTUP_GAP: &str = "in_startup_gap";
    pub const STARTUP_GAP_OPEN_SINCE: &str = "startup_gap_open_since_timestamp_seconds";
    pub const IN_DB_OUTAGE: &str = "in_db_outage";
    pub const ENGINE_UP: &str = "engine_up";
    pub const STARTUP_GAP: &str = "startup_gap_seconds";
    pub const DB_OUTAGE_SECONDS: &str = "db_outage_seconds";
    pub const PODS_TRACKED: &str = "pods_tracked";
    pub const PODS_DROPPED: &str = "pods_dropped_total";
    pub const POD_STATE_POISONED: &str = "pod_state_poisoned_total";
}

/// The samples of one scrape, by family (in [`POD_FAMILIES`] order).
struct Samples<'a> {
    index: &'a HashMap<&'static str, usize>,
    by_family: Vec<Vec<proto::Metric>>,
}

impl Samples<'_> {
    fn push_row(&mut self, row: usize, m: proto::Metric) {
        self.by_family[row].push(m);
    }

    fn push(&mut self, family: &str, m: proto::Metric) {
        match self.index.get(family) {
            Some(&i) => self.by_family[i].push(m),
            // Unreachable: `every_counter_family_has_a_row` checks the table.
            None => debug_assert!(false, "no row for family {family}"),
        }
    }
}

impl PodCollector {
    fn new(tracker: SharedTracker) -> PodCollector {
        let descs = POD_FAMILIES
            .iter()
            .filter_map(|(n, help, _, labels)| {
                Desc::new(
                    name(n),
                    help.to_string(),
                    labels.iter().map(|s| s.to_string()).collect(),
                    Default::default(),
                )
                .ok()
            })
            .collect();
        let index: HashMap<&'static str, usize> = POD_FAMILIES
            .iter()
            .enumerate()
            .map(|(i, f)| (f.0, i))
            .collect();
        let counter_rows = Counter::all()
            .filter_map(|c| index.get(c.family()).map(|row| (c, *row)))
            .collect();
        PodCollector {
            tracker,
            descs,
            index,
            counter_rows,
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], v: u64) -> proto::Metric {
    let mut m = proto::Metric::default();
    m.set_label(labels(pairs));
    let mut c = proto::Counter::default();
    c.set_value(v as f64);
    m.set_counter(c);
    m
}

/// One gauge sample (also used by the gate's collector).
pub(crate) fn gauge(pairs: &[(&str, &str)], v: f64) -> proto::Metric {
    let mut m = proto::Metric::default();
    m.set_label(labels(pairs));
    let mut g = proto::Gauge::default();
    g.set_value(v);
    m.set_gauge(g);
    m
}

fn histogram(pairs: &[(&str, &str)], h: &GapHistogram) -> proto::Metric {
    let mut m = proto::Metric::default();
    m.set_label(labels(pairs));
    let mut ph = proto::Histogram::default();
    ph.set_sample_count(h.count);
    ph.set_sample_sum(h.sum);
    let mut cumulative = 0;
    let buckets = GAP_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, ub)| {
            cumulative += h.buckets.get(i).copied().unwrap_or(0);
            let mut b = proto::Bucket::default();
            b.set_cumulative_count(cumulative);
            b.set_upper_bound(*ub);
            b
        })
        .collect();
    ph.set_bucket(buckets);
    m.set_histogram(ph);
    m
}

impl Collector for PodCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let t = self.tracker.lock();
        let poisoned = self.tracker.poisoned();
        let mut out = Samples {
            index: &self.index,
            by_family: vec![Vec::new(); POD_FAMILIES.len()],
        };
        let mut pods: Vec<_> = t.pods().collect();
        pods.sort_by(|a, b| a.0.cmp(b.0));
        for (pod, p) in pods {
            let (ns, po) = (pod.namespace.as_str(), pod.pod.as_str());
            let base = [("namespace", ns), ("pod", po)];
            for &(c, row) in &self.counter_rows {
                let v = p.counts[c];
                let m = match c.label() {
                    Some(label) => counter(&[base[0], base[1], label], v),
                    None => counter(&base, v),
                };
                out.push_row(row, m);
            }
            if let Some((gap, method)) = p.last_gap() {
                out.push(
                    family::LAST_STARTUP_GAP,
                    gauge(
                        &[("namespace", ns), ("pod", po), ("method", method.as_str())],
                        gap,
                    ),
                );
            }
            let gap_since = p
                .starts
                .back()
                .filter(|s| s.in_gap())
                .and_then(|s| s.listening_at);
            out.push(
                family::IN_STARTUP_GAP,
                gauge(&base, if p.in_gap() { 1.0 } else { 0.0 }),
            );
            if let Some(since) = gap_since {
                out.push(
                    family::STARTUP_GAP_OPEN_SINCE,
                    gauge(&base, since.0 as f64 / 1e9),
                );
            }
            out.push(
                family::IN_DB_OUTAGE,
                gauge(&base, if p.in_outage() { 1.0 } else { 0.0 }),
            );
            for (target, up) in &p.probe_up {
                out.push(
                    family::ENGINE_UP,
                    gauge(
                        &[("namespace", ns), ("pod", po), ("target", target.as_str())],
                        if *up { 1.0 } else { 0.0 },
                    ),
                );
            }
        }
        for (family, hists) in [
            (family::STARTUP_GAP, t.histograms().collect::<Vec<_>>()),
            (family::DB_OUTAGE_SECONDS, t.outage_histograms().collect()),
        ] {
            let mut hists = hists;
            hists.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
            for (ns, method, h) in hists {
                out.push(
                    family,
                    histogram(&[("namespace", ns), ("method", method.as_str())], h),
                );
            }
        }
        out.push(family::PODS_TRACKED, gauge(&[], t.pods().count() as f64));
        out.push(family::PODS_DROPPED, counter(&[], t.pods_dropped()));
        out.push(family::POD_STATE_POISONED, counter(&[], poisoned));
        POD_FAMILIES
            .iter()
            .zip(out.by_family)
            .filter(|(_, metrics)| !metrics.is_empty())
            .map(|((n, help, ty, _), metrics)| {
                let mut f = MetricFamily::default();
                f.set_name(name(n));
                f.set_help(help.to_string());
                f.set_field_type(*ty);
                f.set_metric(metrics);
                f
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_family_has_a_row_with_its_labels() {
        for c in Counter::all() {
            let row = POD_FAMILIES
                .iter()
                .find(|f| f.0 == c.family())
                .unwrap_or_else(|| panic!("no row for {}", c.family()));
            let mut want = vec!["namespace", "pod"];
            want.extend(c.label().map(|l| l.0));
            assert_eq!(row.3, want.as_slice(), "{}", c.family());
            assert_eq!(row.2, MetricType::COUNTER, "{}", c.family());
        }
        for f in [
            family::LAST_STARTUP_GAP,
            family::IN_STARTUP_GAP,
            family::STARTUP_GAP_OPEN_SINCE,
            family::IN_DB_OUTAGE,
            family::ENGINE_UP,
            family::STARTUP_GAP,
            family::DB_OUTAGE_SECONDS,
            family::PODS_TRACKED,
            family::PODS_DROPPED,
            family::POD_STATE_POISONED,
        ] {
            assert!(POD_FAMILIES.iter().any(|r| r.0 == f), "no row for {f}");
        }
    }

    #[test]
    fn every_pod_counter_is_rendered_from_the_model_with_its_value() {
        use crate::model::{ConfigKind, Event, EventKind, Operation, PodRef};
        use crate::time::Timestamp;
        use crate::timeline::{TimelineConfig, Tracker};

        let tracker = SharedTracker::new(Tracker::new(TimelineConfig::default()));
        let metrics = Metrics::new(tracker.clone()).unwrap();
        let p = PodRef::new("llm", "litellm-0");
        let now = Timestamp(2_000_000_000_000_000_000);
        for kind in [
            EventKind::DbConnectError(Operation::Database),
            EventKind::ConfigLoadFailure(ConfigKind::Credentials),
            EventKind::SpendRowsLost(37),
        ] {
            let ev = Event {
                ts: Some(Timestamp(1_000_000_000)),
                kind,
                rule: None,
            };
            tracker.lock().apply_event(&p, &ev, now);
        }
        let text = metrics.render().unwrap();
        let pod = "namespace=\"llm\",pod=\"litellm-0\"";
        for want in [
            format!("litellm_sentinel_db_connect_errors_total{{{pod},operation=\"database\"}} 1"),
            format!("litellm_sentinel_db_connect_errors_total{{{pod},operation=\"other\"}} 0"),
            format!("litellm_sentinel_config_load_failures_total{{{pod},kind=\"credentials\"}} 1"),
            format!("litellm_sentinel_spend_rows_lost_total{{{pod}}} 37"),
            format!("litellm_sentinel_proxy_starts_total{{{pod}}} 0"),
            "litellm_sentinel_pod_state_poisoned_total 0".to_string(),
        ] {
            assert!(text.contains(&want), "{want} missing:\n{text}");
        }
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("_total{") && l.contains(pod))
            .count();
        assert_eq!(series, Counter::all().count(), "one series per pod counter");
    }
}
