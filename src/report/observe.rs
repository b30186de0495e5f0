//! What `report` watches go through the pipeline: records (to apply the
//! window and notice missing timestamps) and events (the ledger, the HTML
//! markers), each tied to the source file and byte offset of its line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::classify::{fold, Event, EventKind};
use crate::format::{PodRef, Record};
use crate::pipeline::{Observer, SkippedRun};
use crate::time::Timestamp;

use super::window::Window;

/// Where the line being fed to the pipeline comes from; set by the reader
/// before each line, read by the observer when an event happens.
#[derive(Debug, Default)]
pub(crate) struct Position {
    pub file: AtomicU32,
    pub offset: AtomicU64,
}

impl Position {
    /// The reader is about to feed the line at `offset` of source `file`.
    pub fn set(&self, file: u32, offset: u64) {
        self.file.store(file, Ordering::Relaxed);
        self.offset.store(offset, Ordering::Relaxed);
    }

    fn get(&self) -> (u32, u64) {
        (
            self.file.load(Ordering::Relaxed),
            self.offset.load(Ordering::Relaxed),
        )
    }
}

/// One event of the ledger: never the line's text, only where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub ts: Option<Timestamp>,
    pub pod: PodRef,
    pub kind: EventKind,
    /// Index into the pack's rule ids.
    pub rule: Option<u32>,
    /// Index into the report's sources.
    pub file: u32,
    pub offset: u64,
}

/// What was seen of one pod.
#[derive(Clone, Debug, Default)]
pub struct PodSeen {
    pub with_ts: u64,
    pub without_ts: u64,
    /// Records inside the window.
    pub kept: u64,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    /// Record times of the requests served (kept records only).
    pub requests: Vec<Timestamp>,
    /// Whether the last timestamped record was inside the window (records
    /// without a time follow it).
    keep: bool,
    /// Where the last traceback no header owns began (its event is settled later).
    traceback_at: Option<(u32, u64)>,
    /// The previous record was part of a traceback.
    in_traceback: bool,
}

/// Everything observed by one worker.
#[derive(Debug, Default)]
pub struct Seen {
    pub pods: HashMap<PodRef, PodSeen>,
    pub entries: Vec<Entry>,
    pub last_ts: Option<Timestamp>,
}

impl Seen {
    /// Adds another worker's observations.
    pub(crate) fn merge(&mut self, o: Seen) {
        for (pod, s) in o.pods {
            let p = self.pods.entry(pod).or_default();
            p.with_ts += s.with_ts;
            p.without_ts += s.without_ts;
            p.kept += s.kept;
            p.first_ts = min_ts(p.first_ts, s.first_ts);
            p.last_ts = p.last_ts.max(s.last_ts);
            p.requests.extend(s.requests);
        }
        self.entries.extend(o.entries);
        self.last_ts = self.last_ts.max(o.last_ts);
    }
}

fn min_ts(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The pipeline observer of one report worker. It keeps what it sees to
/// itself (no lock per record: the hot path is one pod comparison) and hands
/// it over to `seen` once, when the pipeline drops it.
pub(crate) struct ReportObserver {
    seen: Arc<Mutex<Seen>>,
    pos: Arc<Position>,
    window: Window,
    /// Only scanning for the last record time: classify nothing.
    scan_only: bool,
    pods: Vec<(PodRef, PodSeen)>,
    index: HashMap<PodRef, usize>,
    /// The pod of the previous record (records come a file at a time).
    last: usize,
    entries: Vec<Entry>,
    last_ts: Option<Timestamp>,
    /// Offset of the current line within the block `pos` points at.
    delta: u64,
}

impl ReportObserver {
    /// An observer handing its observations to `seen`; `pos` is where the
    /// reader says each line comes from.
    pub fn new(
        seen: Arc<Mutex<Seen>>,
        pos: Arc<Position>,
        window: Window,
        scan_only: bool,
    ) -> ReportObserver {
        ReportObserver {
            seen,
            pos,
            window,
            scan_only,
            pods: Vec::new(),
            index: HashMap::new(),
            last: 0,
            entries: Vec::new(),
            last_ts: None,
            delta: 0,
        }
    }

    /// Source and offset of the current line.
    fn here(&self) -> (u32, u64) {
        let (file, offset) = self.pos.get();
        (file, offset + self.delta)
    }

    /// The state of `pod`, created on first sight.
    fn pod(&mut self, pod: &PodRef) -> &mut PodSeen {
        if self.pods.get(self.last).is_none_or(|(p, _)| p != pod) {
            self.last = match self.index.get(pod) {
                Some(&i) => i,
                None => {
                    let keep = self.window.since.is_none();
                    self.pods.push((
                        pod.clone(),
                        PodSeen {
                            keep,
                            ..Default::default()
                        },
                    ));
                    self.index.insert(pod.clone(), self.pods.len() - 1);
                    self.pods.len() - 1
                }
            };
        }
        &mut self.pods[self.last].1
    }
}

impl Drop for ReportObserver {
    fn drop(&mut self) {
        let mine = Seen {
            pods: std::mem::take(&mut self.pods).into_iter().collect(),
            entries: std::mem::take(&mut self.entries),
            last_ts: self.last_ts,
        };
        crate::sync::lock(&self.seen).merge(mine);
    }
}

impl Observer for ReportObserver {
    fn record(&mut self, pod: &PodRef, record: &Record<'_>) -> bool {
        if let Some(t) = record.ts {
            self.last_ts = self.last_ts.max(Some(t));
        }
        let (window, scan_only, at) = (self.window, self.scan_only, self.here());
        let p = self.pod(pod);
        let keep = match record.ts {
            Some(t) => {
                p.with_ts += 1;
                p.keep = window.contains(t);
                if p.keep {
                    p.first_ts = min_ts(p.first_ts, Some(t));
                    p.last_ts = p.last_ts.max(Some(t));
                }
                p.keep
            }
            None => {
                p.without_ts += 1;
                p.keep
            }
        };
        if scan_only {
            return false;
        }
        if keep {
            p.kept += 1;
            let first = record.text.split(|b| *b == b'\n').next().unwrap_or(&[]);
            if p.in_traceback {
                p.in_traceback = fold::shape(first) != fold::LineShape::Other;
            } else if fold::opens_unattributed(first) {
                // The first line of the traceback, not a later frame of it.
                p.traceback_at = Some(at);
                p.in_traceback = true;
            }
        }
        keep
    }

    fn wants_every_record(&mut self, pod: &PodRef) -> bool {
        // A window judges each record's time; inside a traceback each
        // record's shape moves `traceback_at`.
        !self.window.is_open() || self.pod(pod).in_traceback
    }

    fn skipped(&mut self, pod: &PodRef, run: &SkippedRun) -> bool {
        // What `record` does for each of them, with no window (every record
        // kept) and outside a traceback (none of them opens one: the
        // scanner decodes every line holding `Traceback` or `  File "`).
        self.last_ts = self.last_ts.max(run.max_ts);
        let scan_only = self.scan_only;
        let p = self.pod(pod);
        p.with_ts += run.with_ts;
        p.without_ts += run.records - run.with_ts;
        if run.with_ts > 0 {
            p.keep = true;
            p.first_ts = min_ts(p.first_ts, run.min_ts);
            p.last_ts = p.last_ts.max(run.max_ts);
        }
        if scan_only {
            return false;
        }
        if p.keep {
            p.kept += run.records;
        }
        p.keep
    }

    fn line_at(&mut self, offset: usize) {
        self.delta = offset as u64;
    }

    fn event(&mut self, pod: &PodRef, ev: &Event) {
        if ev.kind == EventKind::RequestServed {
            if let Some(t) = ev.ts {
                self.pod(pod).requests.push(t);
            }
            return;
        }
        let (mut file, mut offset) = self.here();
        if ev.rule.is_none() {
            // A traceback nobody owns is settled after it ended: point at its start.
            if let Some((f, o)) = self.pod(pod).traceback_at {
                (file, offset) = (f, o);
            }
        }
        self.entries.push(Entry {
            ts: ev.ts,
            pod: pod.clone(),
            kind: ev.kind,
            rule: ev.rule,
            file,
            offset,
        });
    }
}
