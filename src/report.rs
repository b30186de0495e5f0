//! `litellm-sentinel report`: a post-mortem over log files, through the same
//! format → classify → timeline code as live tailing.
//!
//! Input: files and directories (`*.log`, rotated `*.log.*`, `.gz`; CRI,
//! docker, `kubectl logs [--timestamps]` output). Output: a [`Report`] —
//! printed as a table per pod or as JSON.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::classify::{Operation, RulePack};
use crate::format::decoder::Decoder;
use crate::format::{Format, MalformedReason, PodRef, Record, RecordSink};
use crate::metrics::SharedTracker;
use crate::pipeline::Pipeline;
use crate::tail::file::read_whole;
use crate::tail::FileKey;
use crate::time::{RfcTimestamp, Timestamp};
use crate::timeline::{Counts, TimelineConfig, Tracker};

/// Why a report could not be made; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no log files found under {0} (looked for *.log, *.log.* and *.gz)")]
    Empty(String),
}

/// One start as reported.
#[derive(Debug, Serialize, PartialEq)]
pub struct StartReport {
    pub listening_at: Option<RfcTimestamp>,
    pub gap_seconds: Option<f64>,
    pub method: &'static str,
}

/// Counts in the report's vocabulary (also the JSON field names).
#[derive(Debug, Default, Serialize, PartialEq, Clone)]
pub struct ReportCounts {
    pub proxy_starts: u64,
    pub db_connect_errors: u64,
    pub db_connect_errors_by_operation: BTreeMap<&'static str, u64>,
    pub spend_batches_dropped: u64,
    pub spend_rows_requeued: u64,
    pub spend_rows_lost: u64,
    pub budget_cache_misses: u64,
    pub deployment_load_failures: u64,
    pub credential_load_failures: u64,
    pub engine_distro_fallbacks: u64,
    pub requests_during_gap: u64,
    pub lines: u64,
    pub malformed_lines: u64,
}

impl ReportCounts {
    fn from_counts(c: &Counts, lines: u64, malformed: u64) -> ReportCounts {
        ReportCounts {
            proxy_starts: c.proxy_starts,
            db_connect_errors: c.db_connect_errors_total(),
            db_connect_errors_by_operation: Operation::ALL
                .iter()
                .map(|o| (o.as_str(), c.db_connect_errors_for(*o)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            spend_batches_dropped: c.spend_batches_dropped,
            spend_rows_requeued: c.spend_rows_requeued,
            spend_rows_lost: c.spend_rows_lost,
            budget_cache_misses: c.budget_cache_misses,
            deployment_load_failures: c.deployment_load_failures,
            credential_load_failures: c.credential_load_failures,
            engine_distro_fallbacks: c.engine_distro_fallbacks,
            requests_during_gap: c.requests_during_gap,
            lines,
            malformed_lines: malformed,
        }
    }
}

/// One pod's post-mortem.
#[derive(Debug, Serialize)]
pub struct PodReport {
    pub namespace: String,
    pub pod: String,
    pub starts: Vec<StartReport>,
    pub counts: ReportCounts,
}

/// The whole post-mortem.
#[derive(Debug, Serialize)]
pub struct Report {
    pub pods: Vec<PodReport>,
    pub totals: ReportCounts,
}

/// Report settings.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub max_line_bytes: usize,
    pub quiet_period_secs: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_line_bytes: 256 * 1024,
            quiet_period_secs: 60.0,
        }
    }
}

fn is_log_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".log") || name.contains(".log.") || name.ends_with(".gz")
}

/// Collects the log files under the inputs (a file given by name is always taken).
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ReportError> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| ReportError::Unreadable {
            path: input.clone(),
            source,
        })?;
        if meta.is_file() {
            out.push(input.clone());
            continue;
        }
        let before = out.len();
        let mut stack = vec![input.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| ReportError::Unreadable {
                path: dir.clone(),
                source,
            })?;
            for e in entries {
                let e = e.map_err(|source| ReportError::Unreadable {
                    path: dir.clone(),
                    source,
                })?;
                let p = e.path();
                let ft = e.file_type().map_err(|source| ReportError::Unreadable {
                    path: p.clone(),
                    source,
                })?;
                if ft.is_dir() {
                    stack.push(p);
                } else if is_log_file(&p)
                    && std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false)
                {
                    out.push(p);
                }
            }
        }
        if out.len() == before {
            return Err(ReportError::Empty(input.display().to_string()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

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

/// A file with the timestamp of its first record.
type DatedFile = (Option<Timestamp>, PathBuf);

/// Reads every file and builds the report.
pub fn run(
    inputs: &[PathBuf],
    rules: Arc<RulePack>,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    // A rotated generation and its `.gz` copy are one generation (tail owner's hook).
    let files = crate::tail::file::drop_compressed_copies(collect_files(inputs)?);
    // Group by pod, then by container stream (directory): one decoding sequence each.
    let mut groups: BTreeMap<PodRef, PodFiles> = BTreeMap::new();
    for f in files {
        let pod = PodRef::from_path(&f);
        let container = f.parent().map(Path::to_path_buf).unwrap_or_default();
        let ts = first_timestamp(&f, opts.max_line_bytes);
        groups
            .entry(pod)
            .or_default()
            .entry(container)
            .or_default()
            .push((ts, f));
    }
    let tracker: SharedTracker = Arc::new(Mutex::new(Tracker::new(TimelineConfig {
        quiet_period_secs: opts.quiet_period_secs,
        max_pods: usize::MAX,
        starts_kept: usize::MAX,
        ..Default::default()
    })));
    // Pods are independent: spread them over the cores (each worker has its
    // own pipeline; the shared tracker is only locked when an event happens).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(groups.len())
        .max(1);
    let mut shares: Vec<Vec<(PodRef, PodFiles)>> = (0..workers).map(|_| Vec::new()).collect();
    let mut sizes = vec![0u64; workers];
    for (pod, containers) in groups {
        let size: u64 = containers
            .values()
            .flatten()
            .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        let lightest = (0..workers).min_by_key(|&i| sizes[i]).unwrap_or(0);
        sizes[lightest] += size;
        shares[lightest].push((pod, containers));
    }
    let results: Vec<Result<Vec<PodTally>, ReportError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let (rules, tracker) = (rules.clone(), tracker.clone());
                scope.spawn(move || report_pods(share, rules, tracker, opts))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ReportError::Empty("a report worker panicked".into())))
            })
            .collect()
    });
    let mut per_pod = Vec::new();
    for r in results {
        per_pod.extend(r?);
    }
    per_pod.sort_by(|a, b| a.0.cmp(&b.0));
    let mut t = tracker
        .lock()
        .map_err(|_| ReportError::Empty("internal lock".into()))?;
    t.finish();
    // Totals are the pods' counts added up, then put in the report's vocabulary.
    let (mut all, mut all_lines, mut all_malformed) = (Counts::default(), 0, 0);
    let mut pods = Vec::new();
    for (pod, lines, malformed) in per_pod {
        let empty = Counts::default();
        let p = t.pod(&pod);
        let c = p.map_or(&empty, |p| &p.counts);
        all.add(c);
        all_lines += lines;
        all_malformed += malformed;
        let starts = p
            .map(|p| {
                p.starts
                    .iter()
                    .map(|s| StartReport {
                        listening_at: s.listening_at.map(RfcTimestamp),
                        gap_seconds: s.gap_seconds,
                        method: s.method.as_str(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        pods.push(PodReport {
            namespace: pod.namespace,
            pod: pod.pod,
            starts,
            counts: ReportCounts::from_counts(c, lines, malformed),
        });
    }
    let totals = ReportCounts::from_counts(&all, all_lines, all_malformed);
    Ok(Report { pods, totals })
}

/// A pod with its lines read and malformed lines.
type PodTally = (PodRef, u64, u64);

/// The files of one pod, by container directory.
type PodFiles = BTreeMap<PathBuf, Vec<DatedFile>>;

/// Reads the files of some pods through one pipeline; returns (pod, lines, malformed lines).
fn report_pods(
    pods: Vec<(PodRef, PodFiles)>,
    rules: Arc<RulePack>,
    tracker: SharedTracker,
    opts: &ReportOptions,
) -> Result<Vec<PodTally>, ReportError> {
    let mut pipeline = Pipeline::new(rules, tracker, opts.max_line_bytes, Vec::new());
    let mut per_pod = Vec::new();
    let mut next_key = 0u64;
    for (pod, containers) in pods {
        let mut lines = 0u64;
        for (_, mut files) in containers {
            // Time order; files without timestamps keep name order (rotated suffixes sort before the live file).
            files.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| rotation_rank(&a.1).cmp(&rotation_rank(&b.1)))
            });
            next_key += 1;
            let key = FileKey {
                dev: 0,
                ino: next_key,
            };
            pipeline.open(key, None, pod.clone());
            for (_, path) in files {
                read_whole(
                    &path,
                    0,
                    opts.max_line_bytes,
                    &mut |line: &[u8], truncated: bool| {
                        lines += 1;
                        pipeline.line(key, line, truncated);
                    },
                )
                .map_err(|source| ReportError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
            }
            pipeline.close(key);
        }
        let malformed: u64 = pipeline.take_counts().malformed.values().sum();
        per_pod.push((pod, lines, malformed));
    }
    Ok(per_pod)
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

fn fmt_gap(g: Option<f64>) -> String {
    g.map(|g| format!("{g:.1}s")).unwrap_or_else(|| "-".into())
}

/// The human-readable table.
pub fn render_table(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:>6} {:>10} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9}",
        "POD",
        "STARTS",
        "LAST GAP",
        "DROPPED",
        "ROWS LOST",
        "MISSES",
        "DB ERRORS",
        "AT RISK",
        "MALFORMED"
    );
    for p in &r.pods {
        let name = if p.namespace.is_empty() {
            p.pod.clone()
        } else {
            format!("{}/{}", p.namespace, p.pod)
        };
        let c = &p.counts;
        let _ = writeln!(
            s,
            "{:<40} {:>6} {:>10} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9}",
            name,
            c.proxy_starts,
            fmt_gap(p.starts.last().and_then(|s| s.gap_seconds)),
            c.spend_batches_dropped,
            c.spend_rows_lost,
            c.budget_cache_misses,
            c.db_connect_errors,
            c.requests_during_gap,
            c.malformed_lines
        );
        for (i, st) in p.starts.iter().enumerate() {
            let at = st
                .listening_at
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| "(no timestamp)".into());
            let _ = writeln!(
                s,
                "    start {}: listening at {at}, gap {} ({})",
                i + 1,
                fmt_gap(st.gap_seconds),
                st.method
            );
        }
        if !c.db_connect_errors_by_operation.is_empty() {
            let ops: Vec<String> = c
                .db_connect_errors_by_operation
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "    db connect errors: {}", ops.join(" "));
        }
        if c.deployment_load_failures
            + c.credential_load_failures
            + c.engine_distro_fallbacks
            + c.spend_rows_requeued
            > 0
        {
            let _ = writeln!(
                s,
                "    deployments not loaded: {}, credentials not loaded: {}, engine distro fallbacks: {}, rows re-queued: {}",
                c.deployment_load_failures, c.credential_load_failures, c.engine_distro_fallbacks, c.spend_rows_requeued
            );
        }
    }
    let t = &r.totals;
    let _ = writeln!(
        s,
        "\nTOTAL: {} pods, {} starts, {} spend batches dropped ({} rows lost, {} re-queued), {} budget-cache misses, {} DB connect errors, {} requests served during a gap, {} lines read ({} malformed)",
        r.pods.len(),
        t.proxy_starts,
        t.spend_batches_dropped,
        t.spend_rows_lost,
        t.spend_rows_requeued,
        t.budget_cache_misses,
        t.db_connect_errors,
        t.requests_during_gap,
        t.lines,
        t.malformed_lines
    );
    s
}

/// The JSON document of `report --json` (totals use the flat vocabulary of the docs).
pub fn render_json(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(t) = v.get_mut("totals").and_then(|t| t.as_object_mut()) {
        t.remove("db_connect_errors_by_operation");
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
