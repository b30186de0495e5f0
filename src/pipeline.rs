//! The stages joined: physical lines of a file → records → events → tracker.
//!
//! Input: lines per file (from the tailer, or from `report` reading files
//! whole). Output: events applied to the shared [`Tracker`], plus counts of
//! malformed lines. Used by live tailing and by `report`, so both give the
//! same numbers from the same bytes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::classify::{ClassifyState, Event, RulePack};
use crate::format::decoder::Decoder;
use crate::format::{Format, MalformedReason, PodRef, Record, RecordSink};
use crate::state::FileState;
use crate::tail::{FileId, FileKey, FilePosition, ReadErrorReason, TailSink};
use crate::time::Timestamp;
use crate::timeline::SharedTracker;

/// Per-file state between lines.
struct FileConsumer {
    pod: PodRef,
    /// None until the first line tells the format.
    decoder: Option<Decoder>,
    classify: ClassifyState,
    /// Newest record timestamp seen in this file.
    last_ts: Option<Timestamp>,
    /// The last timestamp handed to `Tracker::advance`.
    advanced_to: Option<Timestamp>,
}

impl FileConsumer {
    /// The decoder, and the sink its records go to (disjoint borrows of the consumer).
    fn split<'a>(
        &'a mut self,
        rules: &'a RulePack,
        tracker: &'a SharedTracker,
        malformed: &'a mut HashMap<&'static str, u64>,
        observer: Option<&'a mut (dyn Observer + 'static)>,
    ) -> (&'a mut Option<Decoder>, RecordHandler<'a>) {
        let handler = RecordHandler {
            rules,
            tracker,
            pod: &self.pod,
            classify: &mut self.classify,
            last_ts: &mut self.last_ts,
            malformed,
            observer,
        };
        (&mut self.decoder, handler)
    }
}

/// What `report` sees of the pipeline: every decoded record (it may drop it,
/// e.g. outside `--since`/`--until`) and every event applied to the tracker
/// (the loss ledger). The live agent runs without one.
pub trait Observer: Send {
    /// A decoded record of `pod`; false drops it before classification (it
    /// then neither moves the pod's clock nor counts).
    fn record(&mut self, pod: &PodRef, record: &Record<'_>) -> bool;
    /// An event of `pod`, just applied to the tracker.
    fn event(&mut self, pod: &PodRef, event: &Event);
}

/// Counters the pipeline accumulates for the self metrics (drained by the caller).
#[derive(Debug, Default, Clone)]
pub struct PipelineCounts {
    pub malformed: HashMap<&'static str, u64>,
    pub read_errors: HashMap<&'static str, u64>,
}

/// Feeds lines through format → classify → timeline.
pub struct Pipeline {
    rules: Arc<RulePack>,
    tracker: SharedTracker,
    max_line_bytes: usize,
    consumers: HashMap<FileKey, FileConsumer>,
    /// Checkpointed per-file state not yet matched to an opened file.
    restored: Vec<FileState>,
    counts: PipelineCounts,
    observer: Option<Box<dyn Observer>>,
}

/// The record sink of one file: classifies each record and applies its events.
struct RecordHandler<'a> {
    rules: &'a RulePack,
    tracker: &'a SharedTracker,
    pod: &'a PodRef,
    classify: &'a mut ClassifyState,
    last_ts: &'a mut Option<Timestamp>,
    malformed: &'a mut HashMap<&'static str, u64>,
    observer: Option<&'a mut (dyn Observer + 'static)>,
}

impl RecordSink for RecordHandler<'_> {
    fn record(&mut self, record: Record<'_>) {
        if let Some(o) = self.observer.as_deref_mut() {
            if !o.record(self.pod, &record) {
                return;
            }
        }
        if let Some(ts) = record.ts {
            if self.last_ts.is_none_or(|l| ts > l) {
                *self.last_ts = Some(ts);
            }
        }
        let (tracker, pod) = (self.tracker, self.pod);
        let mut observer = self.observer.as_deref_mut();
        self.rules.classify(self.classify, &record, &mut |ev| {
            tracker.lock().apply_event(pod, &ev, Timestamp::now());
            if let Some(o) = observer.as_deref_mut() {
                o.event(pod, &ev);
            }
        });
    }

    fn malformed(&mut self, reason: MalformedReason) {
        *self.malformed.entry(reason.as_str()).or_default() += 1;
    }
}

impl Pipeline {
    /// A pipeline applying `rules` into `tracker`; `restored` is the per-file
    /// state of the last checkpoint.
    pub fn new(
        rules: Arc<RulePack>,
        tracker: SharedTracker,
        max_line_bytes: usize,
        restored: Vec<FileState>,
    ) -> Pipeline {
        Pipeline {
            rules,
            tracker,
            max_line_bytes,
            consumers: HashMap::new(),
            restored,
            counts: PipelineCounts::default(),
            observer: None,
        }
    }

    /// Shows every record and event to `observer` from now on (`report`).
    pub fn set_observer(&mut self, observer: Box<dyn Observer>) {
        self.observer = Some(observer);
    }

    /// Swaps the rule pack (config reload); per-file fold state is kept.
    pub fn set_rules(&mut self, rules: Arc<RulePack>) {
        self.rules = rules;
    }

    /// Takes the counters accumulated since the last call.
    pub fn take_counts(&mut self) -> PipelineCounts {
        std::mem::take(&mut self.counts)
    }

    /// Pods with an open file (they must not expire).
    pub fn live_pods(&self) -> impl Iterator<Item = &PodRef> {
        self.consumers.values().map(|c| &c.pod)
    }

    /// Starts a file (a report input, or a tailed file): `pod` owns its events.
    pub fn open(&mut self, key: FileKey, id: Option<FileId>, pod: PodRef) {
        let mut consumer = FileConsumer {
            pod,
            decoder: None,
            classify: ClassifyState::default(),
            last_ts: None,
            advanced_to: None,
        };
        if let Some(id) = id {
            if let Some(i) = self.restored.iter().position(|s| {
                // Same inode and same content (like the tailer's resume): a
                // copytruncated or reused inode must not inherit old partials.
                let p = &s.position.id;
                p.dev == id.dev
                    && p.ino == id.ino
                    && (p.fingerprint.is_none() || p.fingerprint == id.fingerprint)
            }) {
                let st = self.restored.swap_remove(i);
                if let Some(format) = st.format {
                    let mut d = Decoder::new(format, self.max_line_bytes);
                    d.restore(st.decoder);
                    consumer.decoder = Some(d);
                }
                consumer.classify = st.classify;
            }
        }
        self.consumers.insert(key, consumer);
    }

    /// One physical line of the file `key`.
    pub fn line(&mut self, key: FileKey, line: &[u8], truncated: bool) {
        let Some(c) = self.consumers.get_mut(&key) else {
            return;
        };
        if truncated {
            *self
                .counts
                .malformed
                .entry(MalformedReason::TooLong.as_str())
                .or_default() += 1;
        }
        let max = self.max_line_bytes;
        let (decoder, mut h) = c.split(
            &self.rules,
            &self.tracker,
            &mut self.counts.malformed,
            self.observer.as_deref_mut(),
        );
        decoder
            .get_or_insert_with(|| Decoder::new(Format::detect(line), max))
            .push_line(line, &mut h);
    }

    /// The file was truncated in place: its partial records are gone.
    pub fn reset(&mut self, key: FileKey) {
        if let Some(c) = self.consumers.get_mut(&key) {
            c.decoder = None;
            c.classify = ClassifyState::default();
        }
    }

    /// The file is finished: flush what it still holds and forget it.
    pub fn close(&mut self, key: FileKey) {
        let Some(mut c) = self.consumers.remove(&key) else {
            return;
        };
        let (decoder, mut h) = c.split(
            &self.rules,
            &self.tracker,
            &mut self.counts.malformed,
            self.observer.as_deref_mut(),
        );
        if let Some(d) = decoder {
            d.finish(&mut h);
        }
        // A traceback still open at the very end (no header owns it) counts now.
        let (tracker, pod) = (&self.tracker, &c.pod);
        let mut observer = self.observer.as_deref_mut();
        self.rules.finish(&mut c.classify, &mut |ev| {
            tracker.lock().apply_event(pod, &ev, Timestamp::now());
            if let Some(o) = observer.as_deref_mut() {
                o.event(pod, &ev);
            }
        });
        if let Some(ts) = c.last_ts {
            self.tracker.lock().advance(&c.pod, ts);
        }
    }

    /// Moves each pod's record clock to its files' newest timestamp (end of a pass).
    pub fn advance_clocks(&mut self) {
        let mut t = self.tracker.lock();
        for c in self.consumers.values_mut() {
            if let Some(ts) = c.last_ts {
                if c.advanced_to.is_none_or(|a| ts > a) {
                    t.advance(&c.pod, ts);
                    c.advanced_to = Some(ts);
                }
            }
        }
    }

    /// Per-file state for the checkpoint, given the tailer's positions.
    pub fn file_states(&self, positions: Vec<FilePosition>) -> Vec<FileState> {
        positions
            .into_iter()
            .map(|position| {
                let key = FileKey {
                    dev: position.id.dev,
                    ino: position.id.ino,
                };
                let c = self.consumers.get(&key);
                FileState {
                    format: c.and_then(|c| c.decoder.as_ref().map(|d| d.format())),
                    decoder: c
                        .and_then(|c| c.decoder.as_ref().map(|d| d.save()))
                        .unwrap_or_default(),
                    classify: c.map(|c| c.classify.clone()).unwrap_or_default(),
                    position,
                }
            })
            .collect()
    }
}

impl TailSink for Pipeline {
    fn opened(&mut self, key: FileKey, id: FileId, path: &Path, _resumed: bool) {
        self.open(key, Some(id), PodRef::from_path(path));
    }

    fn line(&mut self, key: FileKey, line: &[u8], truncated: bool) {
        Pipeline::line(self, key, line, truncated);
    }

    fn truncated(&mut self, key: FileKey) {
        self.reset(key);
    }

    fn closed(&mut self, key: FileKey) {
        self.close(key);
    }

    fn read_error(&mut self, _path: &Path, reason: ReadErrorReason) {
        *self.counts.read_errors.entry(reason.as_str()).or_default() += 1;
    }
}
