//! `litellm-sentinel report`: a post-mortem over log files, through the same
//! format → classify → timeline code as live tailing.
//!
//! Input ([`input`]): files and directories (`*.log`, rotated `*.log.*`,
//! `.gz`; CRI, docker, `kubectl logs [--timestamps] [--prefix]` output) and
//! stdin (`-`), optionally cut to a [`window`]. Output: a [`Report`] — a
//! table per pod, JSON, the loss [`ledger`], an [`html`] timeline — and a
//! verdict for CI ([`failon`]). All outputs read the same [`Report`], so
//! they show the same numbers.

pub mod failon;
pub mod html;
pub mod input;
pub mod ledger;
pub mod model;
pub mod observe;
pub mod render;
pub mod window;

pub use render::{render_json, render_table};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::classify::{Operation, RulePack};
use crate::format::decoder::Decoder;
use crate::format::{Format, MalformedReason, PodRef, Record, RecordSink};
use crate::model::Counter;
use crate::pipeline::Pipeline;
use crate::tail::lines::LineHandler;
use crate::tail::FileKey;
use crate::time::{RfcTimestamp, Timestamp};
use crate::timeline::{Counts, SharedTracker, Start, TimelineConfig, Tracker};

use input::{Input, Source};
use observe::{Position, ReportObserver, Seen};
use window::{Window, WindowSpec};

/// Why a report could not be made; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no log files found under {0} (looked for *.log, *.log.* and *.gz)")]
    Empty(String),
    /// The arguments cannot work together (exit 2 at the binary's edge).
    #[error("{0}")]
    Usage(String),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// One start as reported.
#[derive(Debug, Serialize, PartialEq)]
pub struct StartReport {
    pub listening_at: Option<RfcTimestamp>,
    /// The closed gap (0: no DB failure confirmed one); null while open.
    pub gap_seconds: Option<f64>,
    pub method: &'static str,
    /// Still failing when the input ended: never reported as a closed gap.
    pub open: bool,
    /// A DB failure (or failed engine probe) after the start proved the gap.
    pub confirmed: bool,
    /// For an open gap: how long it had been failing (start → last failure).
    pub failing_seconds: Option<f64>,
    /// Requests served inside the gap as measured.
    pub requests: u64,
    /// The proxy shut down while the gap (or its open outage) was still failing.
    pub ended_while_failing: bool,
    pub outages: Vec<crate::timeline::OutageSummary>,
}

impl StartReport {
    fn from_start(s: &Start) -> StartReport {
        StartReport {
            listening_at: s.listening_at.map(RfcTimestamp),
            gap_seconds: s.gap_seconds,
            method: s.method.as_str(),
            open: s.open,
            confirmed: s.confirmed,
            failing_seconds: if s.open { s.failing_seconds() } else { None },
            requests: s.requests,
            ended_while_failing: s.ended_while_failing,
            outages: s
                .outages
                .iter()
                .map(crate::timeline::Outage::summary)
                .collect(),
        }
    }
}

/// A pod's (or all pods') counts as the report shows them: the model's
/// counters, plus the lines read. One type with the timeline's [`Counts`],
/// so a counter added to the model is in `report --json` by its name
/// without a change here; the table and HTML choose what they show.
#[derive(Debug, Default, PartialEq, Clone)]
pub struct ReportCounts {
    /// The timeline's counters of the pod (or their sum).
    pub counters: Counts,
    pub lines: u64,
    pub malformed_lines: u64,
}

impl ReportCounts {
    /// All DB connect errors.
    pub fn db_connect_errors(&self) -> u64 {
        self.counters.db_connect_errors_total()
    }

    /// DB connect errors by operation, the ones that are not 0, in label order.
    pub fn db_connect_errors_by_operation(&self) -> Vec<(&'static str, u64)> {
        Operation::ALL
            .iter()
            .map(|o| (o.as_str(), self.counters.db_connect_errors_for(*o)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl std::ops::Index<Counter> for ReportCounts {
    type Output = u64;

    fn index(&self, c: Counter) -> &u64 {
        &self.counters[c]
    }
}

impl Serialize for ReportCounts {
    /// The report's JSON vocabulary: `proxy_starts`, `db_connect_errors` (the
    /// total) and `db_connect_errors_by_operation`, then every other named
    /// counter of the model, then `lines` and `malformed_lines`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(Counter::ProxyStarts.name(), &self[Counter::ProxyStarts])?;
        m.serialize_entry("db_connect_errors", &self.db_connect_errors())?;
        let by_op: BTreeMap<&str, u64> =
            self.db_connect_errors_by_operation().into_iter().collect();
        m.serialize_entry("db_connect_errors_by_operation", &by_op)?;
        for c in Counter::NAMED {
            if c != Counter::ProxyStarts {
                m.serialize_entry(c.name(), &self[c])?;
            }
        }
        m.serialize_entry("lines", &self.lines)?;
        m.serialize_entry("malformed_lines", &self.malformed_lines)?;
        m.end()
    }
}

/// What the renderers need beyond the counts: the timeline itself.
#[derive(Debug, Default, Clone)]
pub struct PodDetail {
    /// The pod's starts as the timeline holds them (see [`model`]).
    pub starts: Vec<Start>,
    /// First and last record time inside the window.
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    /// Record times of the requests served.
    pub requests: Vec<Timestamp>,
}

/// One pod's post-mortem.
#[derive(Debug, Serialize)]
pub struct PodReport {
    pub namespace: String,
    pub pod: String,
    pub starts: Vec<StartReport>,
    pub counts: ReportCounts,
    #[serde(skip)]
    pub detail: PodDetail,
}

impl PodReport {
    /// `namespace/pod`, or the pod alone when the namespace is unknown.
    pub fn name(&self) -> String {
        if self.namespace.is_empty() {
            self.pod.clone()
        } else {
            format!("{}/{}", self.namespace, self.pod)
        }
    }
}

/// The whole post-mortem.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The window the report covers, when `--since`/`--until` cut the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub pods: Vec<PodReport>,
    pub totals: ReportCounts,
    /// Every event but requests, in record order (the loss ledger).
    #[serde(skip)]
    pub ledger: Vec<observe::Entry>,
    /// Source names the ledger's `file` indexes (`-` is stdin).
    #[serde(skip)]
    pub sources: Vec<String>,
    /// Rule ids the ledger's `rule` indexes.
    #[serde(skip)]
    pub rule_ids: Vec<String>,
    /// One-line hints for stderr (missing timestamps, unnamed stdin).
    #[serde(skip)]
    pub hints: Vec<String>,
}

/// Report settings.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub max_line_bytes: usize,
    pub quiet_period_secs: f64,
    /// `--pod`: the pod of every input whose lines do not name one.
    pub pod: Option<PodRef>,
    /// `--namespace`: the namespace of pods whose input does not say.
    pub namespace: Option<String>,
    /// `--since` / `--until`.
    pub window: WindowSpec,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_line_bytes: 256 * 1024,
            quiet_period_secs: crate::timeline::DEFAULT_QUIET_PERIOD_SECS,
            pod: None,
            namespace: None,
            window: WindowSpec::default(),
        }
    }
}

pub use input::collect_files;

/// The first record timestamp of a file (to put rotated files in time order).
fn first_timestamp(path: &Path, max_line_bytes: usize) -> Option<Timestamp> {
    let file = std::fs::File::open(path).ok()?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut head = Vec::new();
    reader.take(64 * 1024).read_to_end(&mut head).ok()?;
    struct First(Option<Timestamp>);
    impl RecordSink for First {
        fn record(&mut self, r: Record<'_>) {
            self.0 = self.0.or(r.ts);
        }
        fn malformed(&mut self, _: MalformedReason) {}
    }
    let mut first = First(None);
    let mut lines = head.split(|b| *b == b'\n');
    let line0 = lines.next()?;
    let mut d = Decoder::new(Format::detect(line0), max_line_bytes);
    for line in std::iter::once(line0).chain(lines) {
        d.push_line(line, &mut first);
        if first.0.is_some() {
            break;
        }
    }
    first.0
}

/// A file: first record time, source index, path.
type DatedFile = (Option<Timestamp>, u32, PathBuf);

/// The files of one pod, by container directory.
type PodFiles = BTreeMap<PathBuf, Vec<DatedFile>>;

/// Lines read and malformed lines, per pod.
type Tally = BTreeMap<PodRef, (u64, u64)>;

/// What to read, decided before reading.
struct Plan {
    /// Inputs whose lines may name their pod (`kubectl logs --prefix`, stdin),
    /// with their source index; read one after the other.
    demux: Vec<(u32, Source)>,
    /// Files whose pod the path (or `--pod`) tells: read in parallel by pod.
    groups: Vec<(PodRef, PodFiles)>,
    sources: Vec<String>,
}

/// What one pass over the inputs leaves.
struct PassResult {
    tracker: Tracker,
    seen: Seen,
    tally: Tally,
}

/// The pod of an input that does not name one: `--pod`, else `fallback`,
/// with `--namespace` filled in where it is missing.
fn pod_for(opts: &ReportOptions, fallback: PodRef) -> PodRef {
    let mut pod = opts.pod.clone().unwrap_or(fallback);
    if pod.namespace.is_empty() {
        if let Some(ns) = &opts.namespace {
            pod.namespace = ns.clone();
        }
    }
    pod
}

fn plan(inputs: &[Input], opts: &ReportOptions) -> Result<Plan, ReportError> {
    let stdin = inputs.iter().filter(|i| **i == Input::Stdin).count();
    if stdin > 1 {
        return Err(ReportError::Usage("`-` (stdin) can be given once".into()));
    }
    let paths: Vec<PathBuf> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::Path(p) => Some(p.clone()),
            Input::Stdin => None,
        })
        .collect();
    let files = if paths.is_empty() {
        Vec::new()
    } else {
        // A rotated generation and its `.gz` copy are one generation: read it once.
        crate::tail::file::drop_compressed_copies(collect_files(&paths)?)
    };
    let mut plan = Plan {
        demux: Vec::new(),
        groups: Vec::new(),
        sources: Vec::new(),
    };
    let mut groups: BTreeMap<PodRef, PodFiles> = BTreeMap::new();
    for f in files {
        let index = plan.sources.len() as u32;
        plan.sources.push(f.display().to_string());
        if input::is_prefixed(&f) {
            plan.demux.push((index, Source::Path(f)));
            continue;
        }
        // A kubelet path names its pod; any other file is named by --pod.
        let pod = match PodRef::from_path(&f) {
            named if !named.namespace.is_empty() => named,
            unnamed => pod_for(opts, unnamed),
        };
        let container = f.parent().map(Path::to_path_buf).unwrap_or_default();
        let ts = first_timestamp(&f, opts.max_line_bytes);
        groups
            .entry(pod)
            .or_default()
            .entry(container)
            .or_default()
            .push((ts, index, f));
    }
    if stdin == 1 {
        let index = plan.sources.len() as u32;
        plan.sources.push("-".into());
        let src = if opts.window.needs_last_record() {
            Source::Stdin.spool()?
        } else {
            Source::Stdin
        };
        plan.demux.push((index, src));
    }
    plan.groups = groups.into_iter().collect();
    Ok(plan)
}

/// Reads every input and builds the report.
pub fn run(
    inputs: &[Input],
    rules: Arc<RulePack>,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    let plan = plan(inputs, opts)?;
    let window = if opts.window.needs_last_record() {
        let scan = pass(&plan, &rules, opts, Window::default(), true)?;
        opts.window
            .resolve(scan.seen.last_ts)
            .map_err(ReportError::Usage)?
    } else {
        opts.window.resolve(None).map_err(ReportError::Usage)?
    };
    let PassResult {
        mut tracker,
        seen,
        tally,
    } = pass(&plan, &rules, opts, window, false)?;
    tracker.finish();
    let mut hints = Vec::new();
    let untimed = seen
        .pods
        .values()
        .any(|p| p.with_ts == 0 && p.without_ts > 0);
    if untimed {
        hints.push("gaps need record times: use `kubectl logs --timestamps`".to_string());
    }
    if opts.pod.is_none()
        && plan
            .demux
            .iter()
            .any(|(_, s)| !matches!(s, Source::Path(_)))
        && tally.keys().any(|p| p.pod == "stdin")
    {
        hints.push("stdin lines without a `[pod/NAME/CONTAINER]` prefix are reported as pod `stdin`: name it with --pod NAMESPACE/NAME".to_string());
    }
    // Totals are the pods' counts added up, then put in the report's vocabulary.
    let (mut all, mut all_lines, mut all_malformed) = (Counts::default(), 0, 0);
    let mut pods = Vec::new();
    let mut seen_pods = seen.pods;
    for (pod, (lines, malformed)) in tally {
        let s = seen_pods.remove(&pod).unwrap_or_default();
        if !window.is_open() && s.kept == 0 {
            // Nothing of this pod inside the window: not part of this report.
            continue;
        }
        let empty = Default::default();
        let p = tracker.pod(&pod);
        let c = p.map_or(&empty, |p| &p.counts);
        all.merge(c);
        all_lines += lines;
        all_malformed += malformed;
        let starts: Vec<Start> = p
            .map(|p| p.starts.iter().cloned().collect())
            .unwrap_or_default();
        let mut requests = s.requests;
        requests.sort_unstable();
        pods.push(PodReport {
            starts: starts.iter().map(StartReport::from_start).collect(),
            counts: ReportCounts {
                counters: c.clone(),
                lines,
                malformed_lines: malformed,
            },
            detail: PodDetail {
                starts,
                first_ts: s.first_ts,
                last_ts: s.last_ts,
                requests,
            },
            namespace: pod.namespace,
            pod: pod.pod,
        });
    }
    let totals = ReportCounts {
        counters: all,
        lines: all_lines,
        malformed_lines: all_malformed,
    };
    let mut ledger = seen.entries;
    // Record order; the sort is stable, so events of one line keep their order.
    ledger.sort_by(|a, b| (a.ts, &a.pod, a.file, a.offset).cmp(&(b.ts, &b.pod, b.file, b.offset)));
    Ok(Report {
        window: (!window.is_open()).then_some(window),
        pods,
        totals,
        ledger,
        sources: plan.sources,
        rule_ids: rules.ids().map(str::to_owned).collect(),
        hints,
    })
}

/// One pass over every input: the demultiplexed inputs first, then the pods
/// spread over the cores (each worker has its own pipeline; the shared
/// tracker is only locked when an event happens).
fn pass(
    plan: &Plan,
    rules: &Arc<RulePack>,
    opts: &ReportOptions,
    window: Window,
    scan_only: bool,
) -> Result<PassResult, ReportError> {
    let tracker = SharedTracker::new(Tracker::new(TimelineConfig {
        quiet_period_secs: opts.quiet_period_secs,
        max_pods: usize::MAX,
        starts_kept: usize::MAX,
        ..Default::default()
    }));
    let worker = |next_key: u64| {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let pos = Arc::new(Position::default());
        let mut pipeline = Pipeline::new(
            rules.clone(),
            tracker.clone(),
            opts.max_line_bytes,
            Vec::new(),
        );
        pipeline.set_observer(Box::new(ReportObserver::new(
            seen.clone(),
            pos.clone(),
            window,
            scan_only,
        )));
        Worker {
            pipeline,
            seen,
            pos,
            next_key,
            tally: Tally::new(),
        }
    };
    let mut first = worker(0);
    for (index, src) in &plan.demux {
        first.read_demux(*index, src, opts)?;
    }
    let mut results = vec![Ok(first.finish())];
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(plan.groups.len())
        .max(1);
    let mut shares: Vec<Vec<&(PodRef, PodFiles)>> = (0..workers).map(|_| Vec::new()).collect();
    let mut sizes = vec![0u64; workers];
    for group in &plan.groups {
        let size: u64 = group
            .1
            .values()
            .flatten()
            .map(|(_, _, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        let lightest = (0..workers).min_by_key(|&i| sizes[i]).unwrap_or(0);
        sizes[lightest] += size;
        shares[lightest].push(group);
    }
    let parallel: Vec<Result<(Seen, Tally), ReportError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(i, share)| {
                let mut w = worker((i as u64 + 1) << 32);
                scope.spawn(move || {
                    for (pod, containers) in share {
                        w.read_pod(pod, containers, opts)?;
                    }
                    Ok(w.finish())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(ReportError::Internal("a report worker panicked")))
            })
            .collect()
    });
    results.extend(parallel);
    let mut seen = Seen::default();
    let mut tally = Tally::new();
    for r in results {
        let (s, t) = r?;
        seen.merge(s);
        for (pod, (l, m)) in t {
            let e = tally.entry(pod).or_default();
            e.0 += l;
            e.1 += m;
        }
    }
    let tracker = tracker
        .into_inner()
        .map_err(|_| ReportError::Internal("tracker still shared"))?;
    Ok(PassResult {
        tracker,
        seen,
        tally,
    })
}

/// One reader: a pipeline with its observer.
struct Worker {
    pipeline: Pipeline,
    seen: Arc<Mutex<Seen>>,
    pos: Arc<Position>,
    next_key: u64,
    tally: Tally,
}

impl Worker {
    fn key(&mut self) -> FileKey {
        self.next_key += 1;
        FileKey {
            dev: 0,
            ino: self.next_key,
        }
    }

    /// Malformed lines counted since the last call go to `pod`.
    fn settle_malformed(&mut self, pod: &PodRef) {
        let m: u64 = self.pipeline.take_counts().malformed.values().sum();
        if m > 0 {
            self.tally.entry(pod.clone()).or_default().1 += m;
        }
    }

    /// The files of one pod: each container directory is one decoding
    /// sequence, its files in time order.
    fn read_pod(
        &mut self,
        pod: &PodRef,
        containers: &PodFiles,
        opts: &ReportOptions,
    ) -> Result<(), ReportError> {
        let mut lines = 0u64;
        for files in containers.values() {
            let mut files: Vec<&DatedFile> = files.iter().collect();
            // Time order; files without timestamps keep name order (rotated suffixes sort before the live file).
            files.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| rotation_rank(&a.2).cmp(&rotation_rank(&b.2)))
            });
            let key = self.key();
            self.pipeline.open(key, None, pod.clone());
            for (_, index, path) in files {
                let unreadable = |source| ReportError::Unreadable {
                    path: path.clone(),
                    source,
                };
                let src = Source::Path(path.clone());
                let mut reader = src.open().map_err(unreadable)?;
                let mut h = PodLines {
                    pipeline: &mut self.pipeline,
                    pos: &self.pos,
                    index: *index,
                    key,
                    at: 0,
                    lines: 0,
                };
                let read = input::read_lines(&mut reader, opts.max_line_bytes, &mut h);
                lines += h.lines;
                read.map_err(unreadable)?;
            }
            self.pipeline.close(key);
        }
        self.tally.entry(pod.clone()).or_default().0 += lines;
        self.settle_malformed(pod);
        Ok(())
    }

    /// An input whose lines may name their pod: `[pod/NAME/CONTAINER] ` lines
    /// go to that pod's container stream; other lines to the last named
    /// stream, or (before any) to the input's own pod.
    fn read_demux(
        &mut self,
        index: u32,
        src: &Source,
        opts: &ReportOptions,
    ) -> Result<(), ReportError> {
        let unreadable = |source| ReportError::Unreadable {
            path: PathBuf::from(src.name()),
            source,
        };
        let own = match src {
            Source::Path(p) => PodRef::from_path(p),
            _ => PodRef::new("", "stdin"),
        };
        let own = pod_for(opts, own);
        let ns = opts.namespace.clone().unwrap_or_default();
        let mut streams: BTreeMap<(String, String), (FileKey, PodRef)> = BTreeMap::new();
        let mut current: Option<(FileKey, PodRef)> = None;
        let mut next = self.next_key;
        let mut reader = src.open().map_err(unreadable)?;
        let (pipeline, pos, tally) = (&mut self.pipeline, &self.pos, &mut self.tally);
        input::for_each_line(
            &mut reader,
            opts.max_line_bytes,
            &mut |offset, line, truncated| {
                let (stream, text) = match input::split_prefix(line) {
                    Some((name, container, text)) => {
                        let id = (name.to_owned(), container.to_owned());
                        let s = streams.entry(id).or_insert_with(|| {
                            next += 1;
                            let key = FileKey { dev: 0, ino: next };
                            let pod = PodRef::new(ns.clone(), name);
                            pipeline.open(key, None, pod.clone());
                            (key, pod)
                        });
                        (s.clone(), text)
                    }
                    None => match &current {
                        Some(s) => (s.clone(), line),
                        None => {
                            let id = (String::new(), String::new());
                            let s = streams.entry(id).or_insert_with(|| {
                                next += 1;
                                let key = FileKey { dev: 0, ino: next };
                                pipeline.open(key, None, own.clone());
                                (key, own.clone())
                            });
                            (s.clone(), line)
                        }
                    },
                };
                pos.set(index, offset);
                pipeline.line(stream.0, text, truncated);
                let m: u64 = pipeline.take_counts().malformed.values().sum();
                let t = tally.entry(stream.1.clone()).or_default();
                t.0 += 1;
                t.1 += m;
                if !matches!(&current, Some(c) if c.0 == stream.0) {
                    current = Some(stream);
                }
            },
        )
        .map_err(unreadable)?;
        self.next_key = next;
        for (key, pod) in streams.into_values() {
            self.pipeline.close(key);
            self.settle_malformed(&pod);
        }
        Ok(())
    }

    /// The observations and tallies of this worker (closes the pipeline).
    fn finish(self) -> (Seen, Tally) {
        drop(self.pipeline);
        let seen = Arc::try_unwrap(self.seen)
            .ok()
            .and_then(|m| m.into_inner().ok())
            .unwrap_or_default();
        (seen, self.tally)
    }
}

/// Feeds one source of a pod to the pipeline: whole blocks to the scanner,
/// telling the observer where each comes from.
struct PodLines<'a> {
    pipeline: &'a mut Pipeline,
    pos: &'a Position,
    index: u32,
    key: FileKey,
    at: u64,
    lines: u64,
}

impl LineHandler for PodLines<'_> {
    fn line(&mut self, line: &[u8], truncated: bool) {
        self.lines += 1;
        self.pos.set(self.index, self.at);
        self.pipeline.line(self.key, line, truncated);
    }

    fn block(&mut self, at: u64, block: &[u8], cap: usize) {
        self.pos.set(self.index, at);
        self.lines += self.pipeline.block(self.key, block, cap);
    }

    fn line_start(&mut self, at: u64) {
        self.at = at;
    }
}

/// Sort key for files of one container without timestamps: restart count, then rotated before live.
fn rotation_rank(p: &Path) -> (u64, u8, String) {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let restart = name
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let live = name.ends_with(".log");
    (restart, u8::from(live), name.to_string())
}
