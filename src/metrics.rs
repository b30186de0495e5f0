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

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::model::{Counter, FailureReason, PodRef, Target};
use crate::probe::ProbeOutcome;
use crate::timeline::{GapHistogram, PodTimeline, Tracker, TrackerGuard, GAP_BUCKETS};

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
        Ok(Metrics {
            registry,
            agent,
            pods: PodCollector::new(tracker),
            pod_cache: Mutex::new(None),
        })
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

    /// Every family as protobuf (the OTLP push): the registry's and the pod families.
    pub fn gather(&self) -> Vec<MetricFamily> {
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
    pub fn gzip_page(&self) -> Result<Page, RenderError> {
        self.page_as(Form::Gzip)
    }

    /// The text page rendered from scratch, bypassing (and not filling) the cache.
    pub fn page_uncached(&self) -> Result<Page, RenderError> {
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

/// Compression level of the gzip page: level 6 puts 2,000 pods in ~115 KB.
const GZIP_LEVEL: u32 = 6;

/// The rendered pod families of one tracker generation, in the forms
/// scrapes asked for.
pub struct PodPage {
    generation: u64,
    /// Prometheus text of the pod families, one chunk per family (sent as
    /// they are: the page is never copied into one buffer).
    text: OnceLock<Vec<Bytes>>,
    /// The text as one final raw deflate stream, with its CRC-32 and length.
    deflate: OnceLock<Result<Deflated, flate2::CompressError>>,
}

#[derive(Clone)]
struct Deflated {
    data: Bytes,
    crc: crc32fast::Hasher,
    len: usize,
}

impl PodPage {
    fn new(generation: u64) -> PodPage {
        PodPage {
            generation,
            text: OnceLock::new(),
            deflate: OnceLock::new(),
        }
    }

    /// Renders `form` from `src` unless this page already has it.
    fn ensure(&self, form: Form, src: &PodSource<'_>) -> Result<(), RenderError> {
        let render = || -> Vec<Bytes> {
            write_pod_families(src)
                .into_iter()
                .map(Bytes::from)
                .collect()
        };
        match form {
            Form::Text => {
                self.text.get_or_init(render);
                Ok(())
            }
            Form::Gzip => self
                .deflate
                .get_or_init(|| match self.text.get() {
                    Some(chunks) => deflate_chunks(chunks),
                    // Written and compressed family by family: gzip scrapers never need the text.
                    None => deflate_pod_families(src),
                })
                .as_ref()
                .map(|_| ())
                .map_err(|e| RenderError::Compress(e.clone())),
        }
    }

    /// The tracker generation this page was rendered from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Length of the pod families' text.
    pub fn len(&self) -> usize {
        match (self.text.get(), self.deflate.get()) {
            (Some(chunks), _) => chunks.iter().map(Bytes::len).sum(),
            (None, Some(Ok(d))) => d.len,
            _ => 0,
        }
    }

    /// Whether there is no text (never once rendered: `pods_tracked` is always there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text of the pod families in one buffer (a copy: tests, tools).
    pub fn text(&self) -> Result<Vec<u8>, RenderError> {
        Ok(self
            .text
            .get()
            .ok_or(RenderError::NotRendered("text"))?
            .concat())
    }

    fn deflated(&self) -> Result<&Deflated, RenderError> {
        match self.deflate.get() {
            Some(Ok(d)) => Ok(d),
            Some(Err(e)) => Err(RenderError::Compress(e.clone())),
            None => Err(RenderError::NotRendered("gzip")),
        }
    }
}

fn deflate_chunks(chunks: &[Bytes]) -> Result<Deflated, flate2::CompressError> {
    let mut crc = crc32fast::Hasher::new();
    for c in chunks {
        crc.update(c);
    }
    let parts: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
    Ok(Deflated {
        data: Bytes::from(raw_deflate(&parts, FlushCompress::Finish)?),
        crc,
        len: chunks.iter().map(Bytes::len).sum(),
    })
}

/// One `/metrics` answer: the small families (fresh) then the pod families (cached).
pub struct Page {
    pub small: Vec<u8>,
    pub pods: Arc<PodPage>,
}

impl Page {
    /// Length of the text page.
    pub fn len(&self) -> usize {
        self.small.len() + self.pods.len()
    }

    /// Whether the page is empty (never: the registry has `build_info`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text page in one buffer (a copy: tests, tools).
    pub fn text(&self) -> Result<Vec<u8>, RenderError> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.small);
        v.extend_from_slice(&self.pods.text()?);
        Ok(v)
    }

    /// The text page as chunks to send in order (the pod part is not copied).
    pub fn text_chunks(self) -> Result<Vec<Bytes>, RenderError> {
        let pods = self
            .pods
            .text
            .get()
            .ok_or(RenderError::NotRendered("text"))?;
        let mut v = Vec::with_capacity(pods.len() + 1);
        v.push(Bytes::from(self.small));
        v.extend(pods.iter().cloned());
        Ok(v)
    }

    /// The page as one gzip member (RFC 1952), as chunks to send in order
    /// (from [`Metrics::gzip_page`]).
    ///
    /// A deflate stream is a sequence of blocks: the small part is
    /// compressed now and ended with a sync flush (byte-aligned, not final),
    /// then the cached pod stream follows with the final block; it refers
    /// to nothing before it. The trailer's CRC-32 is combined from the two
    /// parts' CRCs. One member, not two concatenated ones, because some
    /// clients decode only the first member.
    pub fn gzip(&self) -> Result<Vec<Bytes>, RenderError> {
        let pods = self.pods.deflated()?;
        let mut head = Vec::with_capacity(self.small.len() / 4 + 64);
        // ID1 ID2, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255 (unknown).
        head.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        head.extend_from_slice(&raw_deflate(&[&self.small], FlushCompress::Sync)?);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.small);
        crc.combine(&pods.crc);
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE: the length modulo 2^32 (RFC 1952), hence the truncation.
        trailer.extend_from_slice(&((self.small.len() + pods.len) as u32).to_le_bytes());
        Ok(vec![
            Bytes::from(head),
            pods.data.clone(),
            Bytes::from(trailer),
        ])
    }
}

/// `parts` in order as raw deflate, ended by `flush` (Sync: byte-aligned
/// and open; Finish: the final block).
fn raw_deflate(parts: &[&[u8]], flush: FlushCompress) -> Result<Vec<u8>, flate2::CompressError> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut d = Deflater::new(total / 16);
    for part in parts {
        d.feed(part)?;
    }
    d.finish(flush)
}

/// A raw deflate stream fed piece by piece.
struct Deflater {
    c: Compress,
    out: Vec<u8>,
}

impl Deflater {
    fn new(capacity: usize) -> Deflater {
        Deflater {
            c: Compress::new(Compression::new(GZIP_LEVEL), false),
            out: Vec::with_capacity(capacity + 1024),
        }
    }

    fn grow(&mut self) {
        if self.out.len() == self.out.capacity() {
            self.out.reserve(self.out.capacity().max(4096));
        }
    }

    fn feed(&mut self, part: &[u8]) -> Result<(), flate2::CompressError> {
        let start = self.c.total_in();
        loop {
            let done = usize::try_from(self.c.total_in() - start).unwrap_or(part.len());
            if done >= part.len() {
                return Ok(());
            }
            self.grow();
            self.c
                .compress_vec(&part[done..], &mut self.out, FlushCompress::None)?;
        }
    }

    fn finish(mut self, flush: FlushCompress) -> Result<Vec<u8>, flate2::CompressError> {
        loop {
            self.grow();
            let status = self.c.compress_vec(&[], &mut self.out, flush)?;
            match (status, flush) {
                (Status::StreamEnd, _) => return Ok(self.out),
                // A sync flush is complete once the compressor left output space unused.
                (_, FlushCompress::Sync) if self.out.len() < self.out.capacity() => {
                    return Ok(self.out)
                }
                _ => {}
            }
        }
    }
}

/// The pod families as protobuf (the OTLP push), from the tracker.
struct PodCollector {
    tracker: SharedTracker,
    descs: Vec<Desc>,
    /// Every pod counter with its family's row, resolved once (the bulk of a scrape).
    counter_rows: Vec<(Counter, Row)>,
    /// Pod counters per row: how many samples a pod has in that family.
    counters_per_row: Vec<usize>,
}

/// A row of [`POD_FAMILIES`]: the index of a pod family, in exposition order.
type Row = usize;

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

/// The row of the pod family called `name`, if it has one.
const fn find_row(name: &str) -> Option<Row> {
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
mod family {
    use super::{row, Row};
    pub const LAST_STARTUP_GAP: Row = row("last_startup_gap_seconds");
    pub const IN_STARTUP_GAP: Row = row("in_startup_gap");
    pub const STARTUP_GAP_OPEN_SINCE: Row = row("startup_gap_open_since_timestamp_seconds");
    pub const IN_DB_OUTAGE: Row = row("in_db_outage");
    pub const ENGINE_UP: Row = row("engine_up");
    pub const STARTUP_GAP: Row = row("startup_gap_seconds");
    pub const DB_OUTAGE_SECONDS: Row = row("db_outage_seconds");
    pub const PODS_TRACKED: Row = row("pods_tracked");
    pub const PODS_DROPPED: Row = row("pods_dropped_total");
    pub const POD_STATE_POISONED: Row = row("pod_state_poisoned_total");
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
    fn source<'a>(&'a self, t: &'a Tracker) -> PodSource<'a> {
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
struct PodSource<'a> {
    t: &'a Tracker,
    /// Poisoned tracker locks recovered (`pod_state_poisoned_total`).
    poisoned: u64,
    counter_rows: &'a [(Counter, Row)],
    counters_per_row: &'a [usize],
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
type Labels<'a> = &'a [(&'a str, &'a str)];

/// One sample of a pod family.
enum Sample<'a> {
    Counter(u64),
    Gauge(f64),
    Histogram(&'a GapHistogram),
}

/// Every sample of the pod families, by row, in pod order: the one
/// definition of what the pod series are, for the text page and for OTLP.
fn visit_pods(src: &PodSource<'_>, emit: &mut dyn FnMut(Row, Labels<'_>, Sample<'_>)) {
    visit_sorted(src, &sorted_pods(src.t), emit)
}

/// The tracked pods in (namespace, pod) order.
fn sorted_pods(t: &Tracker) -> Vec<(&PodRef, &PodTimeline)> {
    let mut pods: Vec<_> = t.pods().collect();
    pods.sort_by(|a, b| a.0.cmp(b.0));
    pods
}

/// [`visit_pods`] over pods already sorted by [`sorted_pods`].
fn visit_sorted(
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

/// Writes the pod families as Prometheus text, one buffer per family that
/// has samples, byte for byte what `TextEncoder` makes of
/// [`PodCollector`]'s families (a test holds it to that) without building
/// ~40,000 protobuf metrics at 2,000 pods.
fn write_pod_families(src: &PodSource<'_>) -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new(); POD_FAMILIES.len()];
    // Room for 2,000 pods' samples at once (~125 bytes a sample): few
    // reallocations, and what is reserved but not written is never touched.
    let pods = src.t.pods().count().min(100_000);
    visit_pods(src, &mut |row, pairs, sample| {
        let b = &mut bodies[row];
        if b.is_empty() {
            let per_pod = 125 * src.counters_per_row[row].max(1);
            b.reserve(pods * per_pod + 1024);
        }
        write_any(b, row, pairs, sample);
    });
    bodies.retain(|b| !b.is_empty());
    bodies
}

/// The pod families as text one family at a time, each buffer compressed
/// and dropped before the next is written: a gzip page costs the largest
/// family (~2 MB at 2,000 pods) in memory, not the whole ~5 MB text.
fn deflate_pod_families(src: &PodSource<'_>) -> Result<Deflated, flate2::CompressError> {
    let pods = sorted_pods(src.t);
    let mut d = Deflater::new(pods.len() * 80);
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0;
    let mut buf = Vec::new();
    for i in 0..POD_FAMILIES.len() {
        buf.clear();
        visit_sorted(src, &pods, &mut |row, pairs, sample| {
            if row == i {
                write_any(&mut buf, row, pairs, sample);
            }
        });
        crc.update(&buf);
        len += buf.len();
        d.feed(&buf)?;
    }
    Ok(Deflated {
        data: Bytes::from(d.finish(FlushCompress::Finish)?),
        crc,
        len,
    })
}

/// Writes one sample, and the family's header first when `b` is empty.
fn write_any(b: &mut Vec<u8>, row: Row, pairs: Labels<'_>, sample: Sample<'_>) {
    let (n, help, ty, _) = POD_FAMILIES[row];
    if b.is_empty() {
        write_header(b, n, help, ty);
    }
    match sample {
        Sample::Counter(v) => write_sample(b, n, "", pairs, None, Value::Int(v)),
        Sample::Gauge(v) => write_sample(b, n, "", pairs, None, Value::Float(v)),
        Sample::Histogram(h) => {
            let mut cumulative = 0;
            for (i, ub) in GAP_BUCKETS.iter().enumerate() {
                cumulative += h.buckets.get(i).copied().unwrap_or(0);
                let le = ub.to_string();
                write_sample(b, n, "_bucket", pairs, Some(&le), Value::Int(cumulative));
            }
            write_sample(b, n, "_bucket", pairs, Some("+Inf"), Value::Int(h.count));
            write_sample(b, n, "_sum", pairs, None, Value::Float(h.sum));
            write_sample(b, n, "_count", pairs, None, Value::Int(h.count));
        }
    }
}

fn write_header(out: &mut Vec<u8>, family: &str, help: &str, ty: MetricType) {
    let ty = match ty {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    };
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(PREFIX.as_bytes());
    out.extend_from_slice(family.as_bytes());
    out.push(b' ');
    escape_into(out, help, false);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(PREFIX.as_bytes());
    out.extend_from_slice(family.as_bytes());
    out.push(b' ');
    out.extend_from_slice(ty.as_bytes());
    out.push(b'\n');
}

/// A sample value: counts are exact integers, the text encoder prints them
/// through `f64` (identical below 2^53).
#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

fn write_sample(
    out: &mut Vec<u8>,
    family: &str,
    suffix: &str,
    pairs: &[(&str, &str)],
    le: Option<&str>,
    value: Value,
) {
    out.extend_from_slice(PREFIX.as_bytes());
    out.extend_from_slice(family.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !pairs.is_empty() || le.is_some() {
        let mut sep = b'{';
        for (k, v) in pairs.iter().copied().chain(le.map(|l| ("le", l))) {
            out.push(sep);
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            escape_into(out, v, true);
            out.push(b'"');
            sep = b',';
        }
        out.push(b'}');
    }
    out.push(b' ');
    // Writing to a Vec cannot fail.
    let _ = match value {
        Value::Int(v) if v <= 1 << 53 => write!(out, "{v}"),
        Value::Int(v) => write!(out, "{}", v as f64),
        Value::Float(v) => write!(out, "{v}"),
    };
    out.push(b'\n');
}

/// The text format's escaping: `\\` and newline, and `"` in label values.
fn escape_into(out: &mut Vec<u8>, v: &str, quote: bool) {
    for &b in v.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConfigKind, Event, EventKind, Operation};
    use crate::time::Timestamp;
    use crate::timeline::TimelineConfig;
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
        assert_eq!(tracker.lock().expire(now(), &live), 0);
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
