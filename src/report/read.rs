//! Reading the report's inputs: the [`Plan`] (which files, which pod, in
//! which order) and the [`pass`] that runs them through the pipeline, the
//! demultiplexed inputs first, then the pods spread over worker threads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::input::{self, collect_files, Input, Source};
use super::observe::{Position, ReportObserver, Seen};
use super::window::Window;
use super::{ReportError, ReportOptions};
use crate::classify::RulePack;
use crate::format::decoder::Decoder;
use crate::format::{Format, MalformedReason, PodRef, Record, RecordSink};
use crate::pipeline::Pipeline;
use crate::tail::lines::LineHandler;
use crate::tail::FileKey;
use crate::time::Timestamp;
use crate::timeline::{SharedTracker, TimelineConfig, Tracker};

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
pub(super) type Tally = BTreeMap<PodRef, (u64, u64)>;

/// What to read, decided before reading.
pub(super) struct Plan {
    /// Inputs whose lines may name their pod (`kubectl logs --prefix`, stdin),
    /// with their source index; read one after the other.
    pub(super) demux: Vec<(u32, Source)>,
    /// Files whose pod the path (or `--pod`) tells: read in parallel by pod.
    groups: Vec<(PodRef, PodFiles)>,
    pub(super) sources: Vec<String>,
}

/// What one pass over the inputs leaves.
pub(super) struct PassResult {
    pub(super) tracker: Tracker,
    pub(super) seen: Seen,
    pub(super) tally: Tally,
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

pub(super) fn plan(inputs: &[Input], opts: &ReportOptions) -> Result<Plan, ReportError> {
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

/// One pass over every input: the demultiplexed inputs first, then the pods
/// spread over the cores (each worker has its own pipeline; the shared
/// tracker is only locked when an event happens).
pub(super) fn pass(
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
    let shares = share_out(&plan.groups);
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
    let (seen, tally) = merge(results)?;
    let tracker = tracker
        .into_inner()
        .map_err(|_| ReportError::Internal("tracker still shared"))?;
    Ok(PassResult {
        tracker,
        seen,
        tally,
    })
}

/// The pod groups spread over one share per core (at most one per group),
/// each group to the share with the fewest bytes so far.
fn share_out(groups: &[(PodRef, PodFiles)]) -> Vec<Vec<&(PodRef, PodFiles)>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(groups.len())
        .max(1);
    let mut shares: Vec<Vec<&(PodRef, PodFiles)>> = (0..workers).map(|_| Vec::new()).collect();
    let mut sizes = vec![0u64; workers];
    for group in groups {
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
    shares
}

/// The workers' results as one: the first error, else what they saw and
/// their line counts added up per pod.
fn merge(results: Vec<Result<(Seen, Tally), ReportError>>) -> Result<(Seen, Tally), ReportError> {
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
    Ok((seen, tally))
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
