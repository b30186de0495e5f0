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
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LockResult, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::classify::Operation;
use crate::format::PodRef;
use crate::probe::{FailureReason, ProbeOutcome, Target};
use crate::timeline::{GapHistogram, Method, PodTimeline, Tracker, GAP_BUCKETS};

/// Every metric name starts with this.
pub const PREFIX: &str = "litellm_sentinel_";

/// The tracker as shared between the pipeline (writer) and the server (reader).
pub type SharedTracker = Arc<TrackerMutex>;

/// The tracker's mutex with a generation counter, so readers (the `/metrics`
/// cache) can tell whether pod state changed since they last looked.
///
/// Minimal version (issue 15) until the shared model's tracker handle lands:
/// the generation moves whenever a guard was used mutably (conservative: a
/// mutable call that changed nothing still moves it), except for the calls
/// the agent makes on every pass ([`TrackerGuard::tick`],
/// [`TrackerGuard::expire`]), which move it only when they can change state.
#[derive(Debug, Default)]
pub struct TrackerMutex {
    inner: Mutex<Tracker>,
    generation: AtomicU64,
}

impl TrackerMutex {
    /// Wraps a tracker (generation 0).
    pub fn new(tracker: Tracker) -> TrackerMutex {
        TrackerMutex {
            inner: Mutex::new(tracker),
            generation: AtomicU64::new(0),
        }
    }

    /// Locks the tracker, like [`Mutex::lock`].
    pub fn lock(&self) -> LockResult<TrackerGuard<'_>> {
        let wrap = |guard| TrackerGuard {
            guard,
            generation: &self.generation,
            changed: false,
        };
        match self.inner.lock() {
            Ok(g) => Ok(wrap(g)),
            Err(e) => Err(PoisonError::new(wrap(e.into_inner()))),
        }
    }

    /// The tracker itself, like [`Mutex::into_inner`] (same signature).
    #[allow(clippy::result_large_err)]
    pub fn into_inner(self) -> LockResult<Tracker> {
        self.inner.into_inner()
    }

    /// Changes whenever pod state may have changed. Read it with the lock
    /// held to pair it with the state it describes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A locked tracker; moves the generation on drop (still locked) if it was used mutably.
pub struct TrackerGuard<'a> {
    guard: MutexGuard<'a, Tracker>,
    generation: &'a AtomicU64,
    changed: bool,
}

impl TrackerGuard<'_> {
    /// [`Tracker::tick`], which the agent calls on every pass: it only closes
    /// log-method gaps and outages whose quiet period passed, so the state
    /// changed exactly when fewer of them are open afterwards.
    pub fn tick(&mut self, now: crate::time::Timestamp) {
        let before = open_log_windows(&self.guard);
        self.guard.tick(now);
        self.changed |= before > 0 && open_log_windows(&self.guard) != before;
    }

    /// [`Tracker::expire`]: the exported state changes only when something expired.
    pub fn expire(
        &mut self,
        now: crate::time::Timestamp,
        live: &std::collections::HashSet<crate::format::PodRef>,
    ) -> usize {
        let n = self.guard.expire(now, live);
        self.changed |= n > 0;
        n
    }
}

/// Open log-method gaps and outages (what [`Tracker::tick`] can close).
fn open_log_windows(t: &Tracker) -> usize {
    t.pods()
        .filter_map(|(_, p)| p.starts.back())
        .filter(|s| s.method == Method::Log)
        .map(|s| usize::from(s.open) + usize::from(s.open_outage().is_some()))
        .sum()
}

impl Deref for TrackerGuard<'_> {
    type Target = Tracker;
    fn deref(&self) -> &Tracker {
        &self.guard
    }
}

impl DerefMut for TrackerGuard<'_> {
    fn deref_mut(&mut self) -> &mut Tracker {
        self.changed = true;
        &mut self.guard
    }
}

impl Drop for TrackerGuard<'_> {
    fn drop(&mut self) {
        // Runs before `guard` unlocks: a reader holding the lock sees the
        // generation and the state together.
        if self.changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

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
        let (t, generation) = self.locked_tracker()?;
        let pods = PodPage::new(generation);
        pods.ensure(Form::Text, &t)?;
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
        let (t, generation) = self.locked_tracker()?;
        let mut cache = self.pod_cache.lock().map_err(|_| RenderError::Poisoned)?;
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
        pods.ensure(form, &t)?;
        Ok(Page { small, pods })
    }

    /// Prometheus text exposition (version 0.0.4) as one string.
    pub fn render(&self) -> Result<String, RenderError> {
        Ok(String::from_utf8_lossy(&self.page()?.text()?).into_owned())
    }

    /// The locked tracker and its generation, read under the lock so that
    /// they describe the same state (the render path's one tracker access).
    fn locked_tracker(&self) -> Result<(TrackerGuard<'_>, u64), RenderError> {
        let t = self
            .pods
            .tracker
            .lock()
            .map_err(|_| RenderError::Poisoned)?;
        let generation = self.pods.tracker.generation();
        Ok((t, generation))
    }
}

/// Why `/metrics` could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Encode(#[from] prometheus::Error),
    #[error("a lock was poisoned by a panic")]
    Poisoned,
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

    /// Renders `form` from `t` unless this page already has it.
    fn ensure(&self, form: Form, t: &Tracker) -> Result<(), RenderError> {
        let render =
            || -> Vec<Bytes> { write_pod_families(t).into_iter().map(Bytes::from).collect() };
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
                    None => deflate_pod_families(t),
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
}

/// The pod families, in exposition order; `Family as usize` indexes [`POD_FAMILIES`].
#[derive(Clone, Copy)]
enum Family {
    DbConnectErrors,
    SpendBatchesDropped,
    SpendRowsRequeued,
    SpendRowsLost,
    SpendUpdatesFailed,
    BudgetCacheMisses,
    ConfigLoadFailures,
    EngineDistroFallback,
    EngineRestarts,
    ProxyStarts,
    RequestsDuringGap,
    LastStartupGap,
    InStartupGap,
    StartupGapOpenSince,
    DbOutages,
    InDbOutage,
    RequestsDuringOutage,
    EngineUp,
    StartupGap,
    DbOutageSeconds,
    PodsTracked,
    PodsDropped,
}

/// (name, help, type, variable labels) of every pod family, in [`Family`] order.
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
];

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
        PodCollector { tracker, descs }
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
        let Ok(t) = self.tracker.lock() else {
            return Vec::new();
        };
        let mut fams: Vec<Vec<proto::Metric>> = vec![Vec::new(); POD_FAMILIES.len()];
        visit_pods(&t, &mut |f, pairs, sample| {
            fams[f as usize].push(match sample {
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

/// Every sample of the pod families, family by family in pod order: the one
/// definition of what the pod series are, for the text page and for OTLP.
fn visit_pods(t: &Tracker, emit: &mut dyn FnMut(Family, Labels<'_>, Sample<'_>)) {
    visit_sorted(t, &sorted_pods(t), emit)
}

/// The tracked pods in (namespace, pod) order.
fn sorted_pods(t: &Tracker) -> Vec<(&PodRef, &PodTimeline)> {
    let mut pods: Vec<_> = t.pods().collect();
    pods.sort_by(|a, b| a.0.cmp(b.0));
    pods
}

/// [`visit_pods`] over pods already sorted by [`sorted_pods`].
fn visit_sorted(
    t: &Tracker,
    pods: &[(&PodRef, &PodTimeline)],
    emit: &mut dyn FnMut(Family, Labels<'_>, Sample<'_>),
) {
    for &(pod, p) in pods {
        let (ns, po) = (pod.namespace.as_str(), pod.pod.as_str());
        let base = [("namespace", ns), ("pod", po)];
        let c = &p.counts;
        for op in Operation::ALL {
            emit(
                Family::DbConnectErrors,
                &[("namespace", ns), ("pod", po), ("operation", op.as_str())],
                Sample::Counter(c.db_connect_errors_for(op)),
            );
        }
        for (f, v) in [
            (Family::SpendBatchesDropped, c.spend_batches_dropped),
            (Family::SpendRowsRequeued, c.spend_rows_requeued),
            (Family::SpendRowsLost, c.spend_rows_lost),
            (Family::SpendUpdatesFailed, c.spend_updates_failed),
            (Family::BudgetCacheMisses, c.budget_cache_misses),
            (Family::EngineDistroFallback, c.engine_distro_fallbacks),
            (Family::EngineRestarts, c.engine_restarts),
            (Family::ProxyStarts, c.proxy_starts),
            (Family::RequestsDuringGap, c.requests_during_gap),
            (Family::DbOutages, c.db_outages),
            (Family::RequestsDuringOutage, c.requests_during_outage),
        ] {
            emit(f, &base, Sample::Counter(v));
        }
        for (kind, v) in [
            ("deployments", c.deployment_load_failures),
            ("credentials", c.credential_load_failures),
        ] {
            emit(
                Family::ConfigLoadFailures,
                &[("namespace", ns), ("pod", po), ("kind", kind)],
                Sample::Counter(v),
            );
        }
        if let Some((gap, method)) = p.last_gap() {
            emit(
                Family::LastStartupGap,
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
            Family::InStartupGap,
            &base,
            Sample::Gauge(if p.in_gap() { 1.0 } else { 0.0 }),
        );
        if let Some(since) = gap_since {
            emit(
                Family::StartupGapOpenSince,
                &base,
                Sample::Gauge(since.0 as f64 / 1e9),
            );
        }
        emit(
            Family::InDbOutage,
            &base,
            Sample::Gauge(if p.in_outage() { 1.0 } else { 0.0 }),
        );
        for (i, target) in Target::ALL.iter().enumerate() {
            if let Some(up) = p.probe_up[i] {
                emit(
                    Family::EngineUp,
                    &[("namespace", ns), ("pod", po), ("target", target.as_str())],
                    Sample::Gauge(if up { 1.0 } else { 0.0 }),
                );
            }
        }
    }
    for (family, mut hists) in [
        (Family::StartupGap, t.histograms().collect::<Vec<_>>()),
        (Family::DbOutageSeconds, t.outage_histograms().collect()),
    ] {
        hists.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
        for (ns, method, h) in hists {
            emit(
                family,
                &[("namespace", ns), ("method", method.as_str())],
                Sample::Histogram(h),
            );
        }
    }
    emit(
        Family::PodsTracked,
        &[],
        Sample::Gauge(t.pods().count() as f64),
    );
    emit(Family::PodsDropped, &[], Sample::Counter(t.pods_dropped()));
}

/// Writes the pod families as Prometheus text, one buffer per family that
/// has samples, byte for byte what `TextEncoder` makes of
/// [`PodCollector`]'s families (a test holds it to that) without building
/// ~40,000 protobuf metrics at 2,000 pods.
fn write_pod_families(t: &Tracker) -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new(); POD_FAMILIES.len()];
    // Room for 2,000 pods' samples at once (~110 bytes a sample, 8 operations):
    // few reallocations, and what is reserved but not written is never touched.
    let pods = t.pods().count().min(100_000);
    visit_pods(t, &mut |f, pairs, sample| {
        let b = &mut bodies[f as usize];
        if b.is_empty() {
            let per_pod = if matches!(f, Family::DbConnectErrors) {
                1000
            } else {
                128
            };
            b.reserve(pods * per_pod + 1024);
        }
        write_any(b, f, pairs, sample);
    });
    bodies.retain(|b| !b.is_empty());
    bodies
}

/// The pod families as text one family at a time, each buffer compressed
/// and dropped before the next is written: a gzip page costs the largest
/// family (~2 MB at 2,000 pods) in memory, not the whole ~5 MB text.
fn deflate_pod_families(t: &Tracker) -> Result<Deflated, flate2::CompressError> {
    let pods = sorted_pods(t);
    let mut d = Deflater::new(pods.len() * 80);
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0;
    let mut buf = Vec::new();
    for (i, _) in POD_FAMILIES.iter().enumerate() {
        buf.clear();
        visit_sorted(t, &pods, &mut |f, pairs, sample| {
            if f as usize == i {
                write_any(&mut buf, f, pairs, sample);
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
fn write_any(b: &mut Vec<u8>, f: Family, pairs: Labels<'_>, sample: Sample<'_>) {
    let (n, help, ty, _) = POD_FAMILIES[f as usize];
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
    use crate::classify::{ConfigKind, Event, EventKind};
    use crate::format::PodRef;
    use crate::time::Timestamp;
    use crate::timeline::TimelineConfig;
    use std::io::Read as _;

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
        let tracker = Arc::new(TrackerMutex::new(Tracker::new(TimelineConfig {
            quiet_period_secs: 30.0,
            ..Default::default()
        })));
        let mut t = tracker.lock().unwrap();
        for n in 0..40 {
            let pod = PodRef::new(format!("ns-{}", n % 3), format!("litellm-{n}"));
            t.apply_event(&pod, &ev(0.0, EventKind::ProxyAccepting));
            t.apply_event(
                &pod,
                &ev(1.0, EventKind::DbConnectError(Operation::ALL[n % 7])),
            );
            t.apply_event(&pod, &ev(1.5, EventKind::RequestServed));
            t.apply_event(&pod, &ev(2.0, EventKind::SpendRowsLost(n as u64 * 1000)));
            t.apply_event(
                &pod,
                &ev(2.0, EventKind::ConfigLoadFailure(ConfigKind::Credentials)),
            );
            if n % 2 == 0 {
                t.advance(&pod, at(100.0 + n as f64).unwrap());
            }
        }
        let odd = PodRef::new("we\"ird\\ns", "pod\nname");
        t.apply_event(&odd, &ev(0.0, EventKind::SpendRowsLost(u64::MAX / 3)));
        let probed = PodRef::new("ns-0", "probed");
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
        let got = write_pod_families(&tracker.lock().unwrap()).concat();
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
            .unwrap()
            .apply_event(&pod, &ev(3.0, EventKind::BudgetCacheMiss));
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
    fn reads_and_idle_ticks_keep_the_generation() {
        let tracker = Arc::new(TrackerMutex::new(Tracker::new(TimelineConfig {
            quiet_period_secs: 30.0,
            ..Default::default()
        })));
        let pod = PodRef::new("ns", "p");
        tracker
            .lock()
            .unwrap()
            .apply_event(&pod, &ev(0.0, EventKind::SpendBatchDropped));
        let g = tracker.generation();
        assert!(g > 0);
        let _ = tracker.lock().unwrap().pods().count();
        tracker.lock().unwrap().tick(at(1000.0).unwrap());
        let none = std::collections::HashSet::from([pod.clone()]);
        assert_eq!(
            tracker.lock().unwrap().expire(at(1000.0).unwrap(), &none),
            0
        );
        assert_eq!(tracker.generation(), g, "nothing changed");

        // An open log-method start: a tick inside its quiet period changes
        // nothing, the first tick after it closes the start.
        tracker
            .lock()
            .unwrap()
            .apply_event(&pod, &ev(0.0, EventKind::ProxyAccepting));
        let g = tracker.generation();
        tracker.lock().unwrap().tick(at(10.0).unwrap());
        assert_eq!(tracker.generation(), g, "still inside the quiet period");
        assert!(tracker.lock().unwrap().pod(&pod).unwrap().starts[0].open);
        tracker.lock().unwrap().tick(Timestamp::now());
        assert!(tracker.generation() > g);
        assert!(
            !tracker.lock().unwrap().pod(&pod).unwrap().starts[0].open,
            "closed by the tick"
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
        tracker.lock().unwrap().apply_event(
            &PodRef::new("ns-2", "litellm-2"),
            &ev(4.0, EventKind::SpendBatchDropped),
        );
        let plain = m.page().unwrap();
        let gz = m.gzip_page().unwrap();
        assert!(Arc::ptr_eq(&gz.pods, &plain.pods));
        assert_eq!(gunzip(&gz.gzip().unwrap().concat()), text(&plain));
    }

    #[test]
    fn an_empty_tracker_renders_and_gzips() {
        let m = Metrics::new(Arc::new(TrackerMutex::default())).unwrap();
        let page = m.page().unwrap();
        assert!(String::from_utf8_lossy(&text(&page)).contains("litellm_sentinel_pods_tracked 0\n"));
        let gz = m.gzip_page().unwrap().gzip().unwrap().concat();
        assert_eq!(gunzip(&gz), text(&page));
    }
}
