//! The metric contract (DESIGN.md), rendered for Prometheus.
//!
//! Input: the [`Tracker`] (pod series) plus the agent's own counters.
//! Output: a `prometheus::Registry` — text exposition for `/metrics`, and
//! `gather()` for the OTLP push, so metric definitions exist once.
//!
//! Pod series are not kept in prometheus counters: they are rendered from the
//! tracker. The tracker is checkpointed with the read offsets, so the
//! exported counters continue across restarts instead of resetting.
//!
//! `/metrics` at 2,000 pods is ~38,000 pod series (3.5 MB of text): the pod
//! families are written straight to text (no protobuf objects) once per
//! tracker generation and cached with their deflate stream; a scrape renders
//! only the small registry families (agent health, probes, gate) and
//! concatenates. A gzip scrape gets one gzip member built from the fresh
//! small part and the cached pod part (see [`Page::gzip`]).

use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::model::{FailureReason, Target};
use crate::probe::ProbeOutcome;
use crate::timeline::TrackerGuard;

mod page;
mod pods;
mod text;

pub use page::{Page, PodPage};
pub(crate) use pods::gauge;
use pods::PodCollector;

/// Every metric name starts with this.
pub(crate) const PREFIX: &str = "litellm_sentinel_";

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

/// The metric families: the registry (small, pod-independent families,
/// rendered per scrape) and the pod families (rendered from the tracker,
/// cached per generation).
pub struct Metrics {
    /// Every family except the pod families (those are in [`Metrics::gather`]).
    pub registry: Registry,
    pub agent: SelfMetrics,
    pods: PodCollector,
    /// The pod families of the latest rendered generation.
    pod_cache: Mutex<Option<Arc<PodPage>>>,
}

fn name(n: &str) -> String {
    format!("{PREFIX}{n}")
}

/// `build_info{version}` at 1: which agent build is running.
fn register_build_info(registry: &Registry) -> Result<(), prometheus::Error> {
    let build_info = IntGaugeVec::new(
        Opts::new(name("build_info"), "Build of the agent (value 1)."),
        &["version"],
    )?;
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    registry.register(Box::new(build_info))
}

impl SelfMetrics {
    /// Creates the agent's families and registers them in `registry`.
    fn register(registry: &Registry) -> Result<SelfMetrics, prometheus::Error> {
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
                "Checkpoint intervals completed: the state written, or found unchanged since the last snapshot and not rewritten (checked on disk about once a minute)."
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
        agent.prefill_labels();
        Ok(agent)
    }

    /// Creates the series of every known label value, so they exist at 0.
    fn prefill_labels(&self) {
        for r in crate::format::MalformedReason::ALL {
            self.lines_malformed.with_label_values(&[r.as_str()]);
        }
        for r in crate::tail::ReadErrorReason::ALL {
            self.read_errors.with_label_values(&[r.as_str()]);
        }
        for r in ["success", "failure"] {
            self.config_reloads.with_label_values(&[r]);
        }
    }
}

impl Metrics {
    /// Registers every family; pod families read `tracker` at scrape time.
    pub fn new(tracker: SharedTracker) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        register_build_info(&registry)?;
        let agent = SelfMetrics::register(&registry)?;
        Ok(Metrics {
            registry,
            agent,
            pods: PodCollector::new(tracker),
            pod_cache: Mutex::new(None),
        })
    }

    /// Records one probe result (pod-independent families; `engine_up` comes from the tracker).
    pub(crate) fn observe_probe(&self, o: &ProbeOutcome) {
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
    pub(crate) fn register_probe_targets(&self, targets: &[Target]) {
        for t in targets {
            self.agent.probe_duration.with_label_values(&[t.as_str()]);
            for r in FailureReason::ALL {
                self.agent
                    .probe_failures
                    .with_label_values(&[t.as_str(), r.as_str()]);
            }
        }
    }

    /// Every family as protobuf (the OTLP push): the registry's and the pod families.
    pub(crate) fn gather(&self) -> Vec<MetricFamily> {
        let mut families = self.registry.gather();
        families.extend(self.pods.collect());
        families
    }

    /// The `/metrics` page as text: the small families rendered now, the
    /// pod families from the cache (rendered again only if the tracker's
    /// generation moved).
    pub fn page(&self) -> Result<Page, RenderError> {
        self.page_as(Form::Text)
    }

    /// The same for a gzip answer: only the compressed pod families are
    /// cached (~130 KB at 2,000 pods instead of ~5 MB of text) unless a
    /// plain scrape asked for the text too.
    pub(crate) fn gzip_page(&self) -> Result<Page, RenderError> {
        self.page_as(Form::Gzip)
    }

    #[cfg(test)]
    /// The text page rendered from scratch, bypassing (and not filling) the cache.
    pub(crate) fn page_uncached(&self) -> Result<Page, RenderError> {
        let small = self.small_families()?;
        let (t, generation) = self.locked_tracker();
        let pods = PodPage::new(generation);
        pods.ensure(Form::Text, &self.pods.source(&t))?;
        Ok(Page {
            small,
            pods: Arc::new(pods),
        })
    }

    fn small_families(&self) -> Result<Vec<u8>, RenderError> {
        let mut small = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut small)?;
        Ok(small)
    }

    fn page_as(&self, form: Form) -> Result<Page, RenderError> {
        let small = self.small_families()?;
        // Checked under the tracker lock: the generation read there is the
        // one of the state rendered. The cache lock is taken inside it, the
        // only place both are held, so concurrent scrapes render once.
        let (t, generation) = self.locked_tracker();
        let mut cache = self.pod_cache.lock().unwrap_or_else(|poisoned| {
            // A render panicked (its panic is in the log): the page it left
            // may lack a form, which the next `ensure` renders again; start
            // over from no page all the same.
            tracing::warn!("a /metrics render panicked earlier; rendering the pod families again");
            self.pod_cache.clear_poison();
            let mut cache = poisoned.into_inner();
            *cache = None;
            cache
        });
        let pods = match cache.as_ref().filter(|p| p.generation == generation) {
            Some(p) => p.clone(),
            None => {
                // Drop the old page before rendering the new one (peak memory).
                *cache = None;
                let p = Arc::new(PodPage::new(generation));
                *cache = Some(p.clone());
                p
            }
        };
        pods.ensure(form, &self.pods.source(&t))?;
        Ok(Page { small, pods })
    }

    /// Prometheus text exposition (version 0.0.4) as one string.
    pub fn render(&self) -> Result<String, RenderError> {
        Ok(String::from_utf8_lossy(&self.page()?.text()?).into_owned())
    }

    /// The locked tracker and its generation, read from the guard so that
    /// they describe the same state (the render path's one tracker access;
    /// the handle's `generation()` is the one published by the last guard
    /// released, which may be older than the state under this lock).
    fn locked_tracker(&self) -> (TrackerGuard<'_>, u64) {
        let t = self.pods.tracker.lock();
        let generation = t.generation();
        (t, generation)
    }
}

/// Why `/metrics` could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Encode(#[from] prometheus::Error),
    #[error("cannot compress the page: {0}")]
    Compress(#[from] flate2::CompressError),
    /// A page asked for a form it was not rendered in (a bug).
    #[error("internal error: the page was not rendered as {0}")]
    NotRendered(&'static str),
}

/// What a scrape needs of the pod families.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Text,
    Gzip,
}

#[cfg(test)]
mod tests {
    use super::pods::{family, POD_FAMILIES};
    use super::text::write_pod_families;
    use super::*;
    use crate::model::{ConfigKind, Event, EventKind, Operation};
    use crate::model::{Counter, PodRef};
    use crate::time::Timestamp;
    use crate::timeline::TimelineConfig;
    use crate::timeline::Tracker;
    use prometheus::proto::MetricType;
    use std::io::Read as _;

    /// The wall clock of the tests' events (for expiry only).
    fn now() -> Timestamp {
        at(10_000.0).unwrap()
    }

    fn at(s: f64) -> Option<Timestamp> {
        Some(Timestamp(1_700_000_000_000_000_000 + (s * 1e9) as i64))
    }

    fn ev(s: f64, kind: EventKind) -> Event {
        Event {
            ts: at(s),
            kind,
            rule: None,
        }
    }

    /// A tracker with every kind of pod series: a closed gap (histogram and
    /// last gap), an open gap (open-since gauge), a probed pod (engine_up),
    /// a label value that needs escaping, and big counters.
    fn populated() -> SharedTracker {
        let tracker = SharedTracker::new(Tracker::new(TimelineConfig {
            quiet_period_secs: 30.0,
            ..Default::default()
        }));
        let mut t = tracker.lock();
        let now = now();
        for n in 0..40 {
            let pod = PodRef::new(format!("ns-{}", n % 3), format!("litellm-{n}"));
            t.apply_event(&pod, &ev(0.0, EventKind::ProxyAccepting), now);
            t.apply_event(
                &pod,
                &ev(
                    1.0,
                    EventKind::DbConnectError(Operation::ALL[n % Operation::ALL.len()]),
                ),
                now,
            );
            t.apply_event(&pod, &ev(1.5, EventKind::RequestServed), now);
            t.apply_event(
                &pod,
                &ev(2.0, EventKind::SpendRowsLost(n as u64 * 1000)),
                now,
            );
            t.apply_event(
                &pod,
                &ev(2.0, EventKind::ConfigLoadFailure(ConfigKind::Credentials)),
                now,
            );
            if n % 2 == 0 {
                t.advance(&pod, at(100.0 + n as f64).unwrap());
            }
        }
        let odd = PodRef::new("we\"ird\\ns", "pod\nname");
        t.apply_event(&odd, &ev(0.0, EventKind::SpendRowsLost(u64::MAX / 3)), now);
        let probed = PodRef::new("ns-0", "probed");
        t.register_probes(&probed, &[Target::Engine], now);
        t.apply_probe(
            &probed,
            &ProbeOutcome {
                target: Target::Engine,
                at: at(5.0).unwrap(),
                duration: std::time::Duration::from_millis(3),
                result: Err(FailureReason::Refused),
                detail: Default::default(),
            },
        );
        drop(t);
        tracker
    }

    fn text(page: &Page) -> Vec<u8> {
        page.text().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(gz);
        d.read_to_end(&mut out).unwrap();
        // GzDecoder stops after the first member: the whole page must be in it.
        assert!(d.into_inner().is_empty(), "bytes after the first member");
        out
    }

    #[test]
    fn the_text_writer_is_byte_for_byte_the_text_encoder() {
        let tracker = populated();
        let m = Metrics::new(tracker.clone()).unwrap();
        let mut want = Vec::new();
        TextEncoder::new()
            .encode(&m.pods.collect(), &mut want)
            .unwrap();
        let got = write_pod_families(&m.pods.source(&tracker.lock())).concat();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        let s = String::from_utf8(got).unwrap();
        for needle in [
            "litellm_sentinel_startup_gap_seconds_bucket{namespace=\"ns-0\",method=\"log\",le=\"+Inf\"}",
            "litellm_sentinel_startup_gap_open_since_timestamp_seconds{",
            "litellm_sentinel_engine_up{namespace=\"ns-0\",pod=\"probed\",target=\"engine\"} 0",
            "namespace=\"we\\\"ird\\\\ns\",pod=\"pod\\nname\"",
            "litellm_sentinel_pods_tracked 42\n",
        ] {
            assert!(s.contains(needle), "{needle} missing");
        }
    }

    #[test]
    fn the_cached_page_is_a_fresh_render_until_the_state_changes() {
        let tracker = populated();
        let m = Metrics::new(tracker.clone()).unwrap();
        let first = m.page().unwrap();
        let again = m.page().unwrap();
        assert!(Arc::ptr_eq(&first.pods, &again.pods), "rendered twice");
        assert_eq!(text(&again), text(&m.page_uncached().unwrap()));

        // The small families are rendered per scrape: never stale.
        m.agent.lines_read.inc_by(7);
        let fresh = m.page().unwrap();
        assert!(Arc::ptr_eq(&first.pods, &fresh.pods));
        assert!(
            String::from_utf8_lossy(&fresh.small).contains("litellm_sentinel_lines_read_total 7\n")
        );

        // A state change moves the generation: the page follows.
        let pod = PodRef::new("ns-1", "litellm-1");
        tracker
            .lock()
            .apply_event(&pod, &ev(3.0, EventKind::BudgetCacheMiss), now());
        let changed = m.page().unwrap();
        assert!(changed.pods.generation() > first.pods.generation());
        assert_ne!(changed.pods.text().unwrap(), first.pods.text().unwrap());
        assert!(String::from_utf8_lossy(&changed.pods.text().unwrap()).contains(
            "litellm_sentinel_budget_cache_misses_total{namespace=\"ns-1\",pod=\"litellm-1\"} 1\n"
        ));
        assert_eq!(text(&changed), text(&m.page_uncached().unwrap()));
        assert_eq!(m.render().unwrap().as_bytes(), &text(&changed)[..]);
    }

    #[test]
    fn reads_and_idle_passes_keep_the_cached_page() {
        let tracker = SharedTracker::new(Tracker::new(TimelineConfig {
            quiet_period_secs: 30.0,
            ..Default::default()
        }));
        let m = Metrics::new(tracker.clone()).unwrap();
        let pod = PodRef::new("ns", "p");
        tracker
            .lock()
            .apply_event(&pod, &ev(0.0, EventKind::ProxyAccepting), now());
        let first = m.page().unwrap();
        // Reads, an expiry pass that expires nothing and a tick inside the
        // quiet period change nothing the page shows: no new render.
        let _ = tracker.lock().pods().count();
        let live = std::collections::HashSet::from([pod.clone()]);
        assert_eq!(tracker.lock().expire(now(), &|p| live.contains(p)), 0);
        tracker.lock().tick(at(10.0).unwrap());
        assert!(tracker.lock().pod(&pod).unwrap().starts[0].open);
        let again = m.page().unwrap();
        assert!(Arc::ptr_eq(&first.pods, &again.pods), "rendered again");

        // The first tick after the quiet period closes the start: a new page.
        tracker.lock().tick(Timestamp::now());
        assert!(
            !tracker.lock().pod(&pod).unwrap().starts[0].open,
            "closed by the tick"
        );
        let closed = m.page().unwrap();
        assert!(!Arc::ptr_eq(&first.pods, &closed.pods));
        assert_eq!(text(&closed), text(&m.page_uncached().unwrap()));
    }

    #[test]
    fn the_page_is_keyed_by_the_generation_under_the_lock() {
        let tracker = SharedTracker::new(Tracker::new(TimelineConfig::default()));
        let m = Metrics::new(tracker.clone()).unwrap();
        let pod = PodRef::new("ns", "p");
        let mut t = tracker.lock();
        t.apply_event(&pod, &ev(0.0, EventKind::SpendBatchDropped), now());
        // Still locked: the handle's published generation is the old one,
        // the guard's is the state's.
        assert_ne!(tracker.generation(), t.generation());
        let under_lock = t.generation();
        drop(t);
        let page = m.page().unwrap();
        assert_eq!(page.pods.generation(), under_lock);
        assert!(
            String::from_utf8_lossy(&page.pods.text().unwrap()).contains(
                "litellm_sentinel_spend_batches_dropped_total{namespace=\"ns\",pod=\"p\"} 1\n"
            )
        );
    }

    #[test]
    fn the_gzip_page_is_one_member_that_decodes_to_the_text_page() {
        let tracker = populated();
        let m = Metrics::new(tracker.clone()).unwrap();
        // Gzip first: only the compressed form is kept.
        let gz = m.gzip_page().unwrap();
        assert!(gz.pods.text.get().is_none(), "text kept for a gzip scrape");
        assert!(matches!(gz.text(), Err(RenderError::NotRendered("text"))));
        let unzipped = gunzip(&gz.gzip().unwrap().concat());
        let plain = m.page().unwrap();
        assert!(
            Arc::ptr_eq(&gz.pods, &plain.pods),
            "same generation, one page"
        );
        assert_eq!(unzipped, text(&plain));
        assert_eq!(unzipped, text(&m.page_uncached().unwrap()));
        assert!(unzipped.len() > 4 * gz.gzip().unwrap().concat().len());
        assert_eq!(gz.len(), unzipped.len());
        // Compressed once per generation.
        let again = m.gzip_page().unwrap().gzip().unwrap();
        assert_eq!(gz.gzip().unwrap()[1].as_ptr(), again[1].as_ptr());
        assert!(
            plain.pods.text.get().unwrap().len() > 10,
            "one chunk per family"
        );

        // Text first, then gzip: compressed from the kept text, same bytes.
        tracker.lock().apply_event(
            &PodRef::new("ns-2", "litellm-2"),
            &ev(4.0, EventKind::SpendBatchDropped),
            now(),
        );
        let plain = m.page().unwrap();
        let gz = m.gzip_page().unwrap();
        assert!(Arc::ptr_eq(&gz.pods, &plain.pods));
        assert_eq!(gunzip(&gz.gzip().unwrap().concat()), text(&plain));
    }

    #[test]
    fn an_empty_tracker_renders_and_gzips() {
        let m = Metrics::new(SharedTracker::new(Tracker::new(TimelineConfig::default()))).unwrap();
        let page = m.page().unwrap();
        assert!(String::from_utf8_lossy(&text(&page)).contains("litellm_sentinel_pods_tracked 0\n"));
        let gz = m.gzip_page().unwrap().gzip().unwrap().concat();
        assert_eq!(gunzip(&gz), text(&page));
    }

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
        let m = Metrics::new(SharedTracker::new(Tracker::new(TimelineConfig::default()))).unwrap();
        assert_eq!(m.pods.counter_rows.len(), Counter::all().count());
        // The other families' rows are resolved at compile time; they name
        // families that are not counters of the model.
        for r in [
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
            assert!(
                m.pods.counter_rows.iter().all(|&(_, cr)| cr != r),
                "{} is both",
                POD_FAMILIES[r].0
            );
        }
    }

    #[test]
    fn every_pod_counter_is_rendered_from_the_model_with_its_value() {
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

    #[test]
    fn a_poisoned_tracker_lock_shows_in_the_page() {
        let tracker = SharedTracker::new(Tracker::new(TimelineConfig::default()));
        let m = Metrics::new(tracker.clone()).unwrap();
        let before = m.page().unwrap();
        assert!(String::from_utf8_lossy(&before.pods.text().unwrap())
            .contains("litellm_sentinel_pod_state_poisoned_total 0\n"));
        let h = tracker.clone();
        let panicked = std::thread::spawn(move || {
            let _g = h.lock();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        // The render's own lock recovers it: counted, and a new generation.
        let after = m.page().unwrap();
        assert!(!Arc::ptr_eq(&before.pods, &after.pods));
        assert!(String::from_utf8_lossy(&after.pods.text().unwrap())
            .contains("litellm_sentinel_pod_state_poisoned_total 1\n"));
        let mut want = Vec::new();
        TextEncoder::new()
            .encode(&m.pods.collect(), &mut want)
            .unwrap();
        assert_eq!(after.pods.text().unwrap(), want);
    }
}
