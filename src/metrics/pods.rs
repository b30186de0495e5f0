//! The pod families: their table ([`POD_FAMILIES`]), the one walk over the
//! tracker that yields every pod sample, and the protobuf collector (OTLP).

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use super::{name, SharedTracker};
use crate::model::{Counter, PodRef};
use crate::timeline::{GapHistogram, PodTimeline, Tracker, GAP_BUCKETS};

/// The pod families as protobuf (the OTLP push), from the tracker.
pub(super) struct PodCollector {
    pub(super) tracker: SharedTracker,
    descs: Vec<Desc>,
    /// Every pod counter with its family's row, resolved once (the bulk of a scrape).
    pub(super) counter_rows: Vec<(Counter, Row)>,
    /// Pod counters per row: how many samples a pod has in that family.
    counters_per_row: Vec<usize>,
}

/// A row of [`POD_FAMILIES`]: the index of a pod family, in exposition order.
pub(super) type Row = usize;

/// (name, help, type, variable labels) of every pod family. A pod counter's
/// family is the model's ([`Counter::family`]); each has its row here (a test
/// checks), so a new counter needs one help line and nothing else.
pub(super) const POD_FAMILIES: &[(&str, &str, MetricType, &[&str])] = &[
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

/// The row of the pod family called `name`, if it has one.
pub(super) const fn find_row(name: &str) -> Option<Row> {
    let mut i = 0;
    while i < POD_FAMILIES.len() {
        if const_str_eq(POD_FAMILIES[i].0, name) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The row of a family that must have one: a missing row fails the build.
const fn row(name: &str) -> Row {
    match find_row(name) {
        Some(r) => r,
        None => panic!("a pod family without a row in POD_FAMILIES"),
    }
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The rows of the families that are not pod counters (resolved at compile time).
pub(super) mod family {
    use super::{row, Row};
    pub(crate) const LAST_STARTUP_GAP: Row = row("last_startup_gap_seconds");
    pub(crate) const IN_STARTUP_GAP: Row = row("in_startup_gap");
    pub(crate) const STARTUP_GAP_OPEN_SINCE: Row = row("startup_gap_open_since_timestamp_seconds");
    pub(crate) const IN_DB_OUTAGE: Row = row("in_db_outage");
    pub(crate) const ENGINE_UP: Row = row("engine_up");
    pub(crate) const STARTUP_GAP: Row = row("startup_gap_seconds");
    pub(crate) const DB_OUTAGE_SECONDS: Row = row("db_outage_seconds");
    pub(crate) const PODS_TRACKED: Row = row("pods_tracked");
    pub(crate) const PODS_DROPPED: Row = row("pods_dropped_total");
    pub(crate) const POD_STATE_POISONED: Row = row("pod_state_poisoned_total");
}

impl PodCollector {
    pub(super) fn new(tracker: SharedTracker) -> PodCollector {
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
        // A counter without a row is not exported; `every_counter_family_has_a_row_with_its_labels` fails on it.
        let counter_rows: Vec<(Counter, Row)> = Counter::all()
            .filter_map(|c| find_row(c.family()).map(|r| (c, r)))
            .collect();
        let mut counters_per_row = vec![0; POD_FAMILIES.len()];
        for &(_, r) in &counter_rows {
            counters_per_row[r] += 1;
        }
        PodCollector {
            tracker,
            descs,
            counter_rows,
            counters_per_row,
        }
    }

    /// What the pod families are rendered from, with `t` locked.
    pub(super) fn source<'a>(&'a self, t: &'a Tracker) -> PodSource<'a> {
        PodSource {
            t,
            // Read with the lock held: a recovery bumps the generation under
            // the lock, so the count and the generation go together.
            poisoned: self.tracker.poisoned(),
            counter_rows: &self.counter_rows,
            counters_per_row: &self.counters_per_row,
        }
    }
}

/// The locked tracker and what the pod families need beside it.
pub(super) struct PodSource<'a> {
    pub(super) t: &'a Tracker,
    /// Poisoned tracker locks recovered (`pod_state_poisoned_total`).
    pub(super) poisoned: u64,
    pub(super) counter_rows: &'a [(Counter, Row)],
    pub(super) counters_per_row: &'a [usize],
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
        let src = self.source(&t);
        let mut fams: Vec<Vec<proto::Metric>> = vec![Vec::new(); POD_FAMILIES.len()];
        visit_pods(&src, &mut |row, pairs, sample| {
            fams[row].push(match sample {
                Sample::Counter(v) => counter(pairs, v),
                Sample::Gauge(v) => gauge(pairs, v),
                Sample::Histogram(h) => histogram(pairs, h),
            })
        });
        POD_FAMILIES
            .iter()
            .zip(fams)
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

/// A sample's label pairs.
pub(super) type Labels<'a> = &'a [(&'a str, &'a str)];

/// One sample of a pod family.
pub(super) enum Sample<'a> {
    Counter(u64),
    Gauge(f64),
    Histogram(&'a GapHistogram),
}

/// Every sample of the pod families, by row, in pod order: the one
/// definition of what the pod series are, for the text page and for OTLP.
pub(super) fn visit_pods(src: &PodSource<'_>, emit: &mut dyn FnMut(Row, Labels<'_>, Sample<'_>)) {
    visit_sorted(src, &sorted_pods(src.t), emit)
}

/// The tracked pods in (namespace, pod) order.
pub(super) fn sorted_pods(t: &Tracker) -> Vec<(&PodRef, &PodTimeline)> {
    let mut pods: Vec<_> = t.pods().collect();
    pods.sort_by(|a, b| a.0.cmp(b.0));
    pods
}

/// [`visit_pods`] over pods already sorted by [`sorted_pods`].
pub(super) fn visit_sorted(
    src: &PodSource<'_>,
    pods: &[(&PodRef, &PodTimeline)],
    emit: &mut dyn FnMut(Row, Labels<'_>, Sample<'_>),
) {
    let t = src.t;
    for &(pod, p) in pods {
        let (ns, po) = (pod.namespace.as_str(), pod.pod.as_str());
        let base = [("namespace", ns), ("pod", po)];
        for &(c, row) in src.counter_rows {
            let v = Sample::Counter(p.counts[c]);
            match c.label() {
                Some(label) => emit(row, &[base[0], base[1], label], v),
                None => emit(row, &base, v),
            }
        }
        if let Some((gap, method)) = p.last_gap() {
            emit(
                family::LAST_STARTUP_GAP,
                &[("namespace", ns), ("pod", po), ("method", method.as_str())],
                Sample::Gauge(gap),
            );
        }
        let gap_since = p
            .starts
            .back()
            .filter(|s| s.in_gap())
            .and_then(|s| s.listening_at);
        emit(
            family::IN_STARTUP_GAP,
            &base,
            Sample::Gauge(if p.in_gap() { 1.0 } else { 0.0 }),
        );
        if let Some(since) = gap_since {
            emit(
                family::STARTUP_GAP_OPEN_SINCE,
                &base,
                Sample::Gauge(since.0 as f64 / 1e9),
            );
        }
        emit(
            family::IN_DB_OUTAGE,
            &base,
            Sample::Gauge(if p.in_outage() { 1.0 } else { 0.0 }),
        );
        for (target, up) in &p.probe_up {
            emit(
                family::ENGINE_UP,
                &[("namespace", ns), ("pod", po), ("target", target.as_str())],
                Sample::Gauge(if *up { 1.0 } else { 0.0 }),
            );
        }
    }
    for (row, mut hists) in [
        (family::STARTUP_GAP, t.histograms().collect::<Vec<_>>()),
        (family::DB_OUTAGE_SECONDS, t.outage_histograms().collect()),
    ] {
        hists.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
        for (ns, method, h) in hists {
            emit(
                row,
                &[("namespace", ns), ("method", method.as_str())],
                Sample::Histogram(h),
            );
        }
    }
    emit(
        family::PODS_TRACKED,
        &[],
        Sample::Gauge(t.pods().count() as f64),
    );
    emit(family::PODS_DROPPED, &[], Sample::Counter(t.pods_dropped()));
    emit(
        family::POD_STATE_POISONED,
        &[],
        Sample::Counter(src.poisoned),
    );
}
