//! The stages joined: physical lines of a file → records → events → tracker.
//!
//! Input: lines per file (from the tailer, or from `report` reading files
//! whole), one at a time ([`Pipeline::line`]) or as whole read buffers
//! ([`Pipeline::block`]). Output: events applied to the shared tracker,
//! plus counts of malformed lines. Used by live tailing and by `report`, so
//! both give the same numbers from the same bytes.
//!
//! # Scan, don't parse
//!
//! A buffer is not decoded line by line. One multi-literal pass
//! ([`crate::classify::prefilter`]) finds the lines that can matter; every
//! other line only has its framing read ([`Framer`]: timestamp, stream,
//! `P`/`F`), which is what the record clock, the malformed counts and
//! `report`'s record tallies need. A line is fully decoded and classified
//! when it has a literal hit, when a fold (traceback) is open in its file,
//! when it belongs to a partial record (a `P` chunk, or the line after
//! one), when its framing is not plainly well-formed (the decoder counts it
//! malformed), when it is longer than the cap, holds a NUL, an ANSI escape
//! whose removal makes a literal appear, or a JSON escape that could hide
//! one (`\u…`, `\/`), and when the observer asks to see every record. The
//! result is the same as decoding every line (the property test
//! `tests/it/scan.rs` holds both paths to that).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::classify::prefilter::BufferPrefilter;
use crate::classify::{ClassifyState, Event, RulePack};
use crate::format::decoder::Decoder;
use crate::format::frame::{Frame, Framer};
use crate::format::{ansi, Format, MalformedReason, PodRef, Record, RecordSink};
use crate::state::FileState;
use crate::tail::{FileId, FileKey, FilePosition, ReadErrorReason, TailSink};
use crate::time::Timestamp;
use crate::timeline::{RequestsCell, SharedTracker};

/// How far a settled pod's record clock may lag its files (see
/// [`Pipeline::advance_clocks`]): one second of record time.
const SETTLED_CLOCK_STEP_NANOS: i64 = 1_000_000_000;

/// Per-file state between lines.
struct FileConsumer {
    pod: PodRef,
    /// None until the first line tells the format (boxed: most files on a
    /// node are idle, and never need one).
    decoder: Option<Box<Decoder>>,
    /// None until a record needs one (boxed like the decoder: an idle
    /// file's consumer is then 112 bytes, not 384; 1.4 MiB at 5,000 files).
    classify: Option<Box<ClassifyState>>,
    /// Newest record timestamp seen in this file.
    last_ts: Option<Timestamp>,
    /// The last timestamp handed to `Tracker::advance`.
    advanced_to: Option<Timestamp>,
    /// The pod's published `requests_matter_until` (once the pod is tracked).
    requests: Option<Arc<RequestsCell>>,
    /// Listed in [`Pipeline::touched`] (lines came since the last
    /// [`Pipeline::advance_clocks`]).
    touched: bool,
}

impl FileConsumer {
    fn touch(&mut self, key: FileKey, touched: &mut Vec<FileKey>) {
        if !self.touched {
            self.touched = true;
            touched.push(key);
        }
    }

    /// Until when requests matter for this file's pod
    /// ([`crate::timeline::PodTimeline::requests_matter_until`]): from the
    /// pod's published cell, asking the tracker only when there is none yet
    /// (or the pod was forgotten).
    fn requests_until(&mut self, tracker: &SharedTracker) -> Option<Timestamp> {
        if let Some(until) = self.requests.as_ref().and_then(|r| r.get()) {
            return until;
        }
        let t = tracker.lock();
        self.requests = t.requests_cell(&self.pod);
        // Just published by `requests_cell`; an untracked pod has none.
        match self.requests.as_ref().and_then(|r| r.get()) {
            Some(until) => until,
            None => t.requests_matter_until(&self.pod),
        }
    }

    /// The pod's published answer says requests do not matter now: no gap
    /// or outage is open, nothing closes when quiet.
    fn settled(&self) -> bool {
        let published = self.requests.as_ref().and_then(|r| r.get());
        published.is_some_and(|until| until.is_some())
    }

    /// The decoder, and the sink its records go to (disjoint borrows of the consumer).
    fn split<'a>(
        &'a mut self,
        rules: &'a RulePack,
        tracker: &'a SharedTracker,
        malformed: &'a mut HashMap<&'static str, u64>,
        observer: Option<&'a mut (dyn Observer + 'static)>,
    ) -> (&'a mut Option<Box<Decoder>>, RecordHandler<'a>) {
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
pub(crate) trait Observer: Send {
    /// A decoded record of `pod`; false drops it before classification (it
    /// then neither moves the pod's clock nor counts).
    fn record(&mut self, pod: &PodRef, record: &Record<'_>) -> bool;
    /// An event of `pod`, just applied to the tracker.
    fn event(&mut self, pod: &PodRef, event: &Event);
    /// Whether every record of `pod` must go through [`Observer::record`]
    /// from here on (false lets the scanner skip the records that cannot
    /// matter and report them in bulk through [`Observer::skipped`]).
    fn wants_every_record(&mut self, pod: &PodRef) -> bool;
    /// Records of `pod` the scanner did not decode: complete, no literal, no
    /// fold open. False drops them like [`Observer::record`] does.
    fn skipped(&mut self, pod: &PodRef, run: &SkippedRun) -> bool;
    /// The next record comes from the line `offset` bytes into the current
    /// block (0 for a line fed on its own).
    fn line_at(&mut self, offset: usize);
}

/// Records the scanner skipped, in bulk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SkippedRun {
    pub records: u64,
    /// How many of them had a timestamp.
    pub with_ts: u64,
    pub min_ts: Option<Timestamp>,
    pub max_ts: Option<Timestamp>,
}

impl SkippedRun {
    fn add(&mut self, ts: Option<Timestamp>) {
        self.records += 1;
        if let Some(t) = ts {
            self.with_ts += 1;
            self.min_ts = Some(self.min_ts.map_or(t, |m| m.min(t)));
            self.max_ts = Some(self.max_ts.map_or(t, |m| m.max(t)));
        }
    }
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
    /// Boxed: the table of a node's thousands of files then holds pointers,
    /// and growing it copies those, not 600-byte consumers twice over (most
    /// of the peak memory of a first scan).
    consumers: rustc_hash::FxHashMap<FileKey, Box<FileConsumer>>,
    /// Checkpointed per-file state not yet matched to an opened file.
    restored: Vec<FileState>,
    counts: PipelineCounts,
    observer: Option<Box<dyn Observer>>,
    /// Framing reader of the buffer scanner (its timestamp cache is shared
    /// by all files: consecutive blocks are mostly of one file).
    framer: Framer,
    /// ANSI-stripped text of a skipped line (reused).
    scratch: Vec<u8>,
    /// Files that got lines since the last [`Pipeline::advance_clocks`]:
    /// only their clocks can move (an idle node's thousands of files are
    /// not visited on every wake-up).
    touched: Vec<FileKey>,
}

/// The record sink of one file: classifies each record and applies its events.
struct RecordHandler<'a> {
    rules: &'a RulePack,
    tracker: &'a SharedTracker,
    pod: &'a PodRef,
    classify: &'a mut Option<Box<ClassifyState>>,
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
        let state = self.classify.get_or_insert_with(Box::default);
        self.rules.classify(state, &record, &mut |ev| {
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
            consumers: rustc_hash::FxHashMap::default(),
            touched: Vec::new(),
            restored,
            counts: PipelineCounts::default(),
            observer: None,
            framer: Framer::new(Timestamp::now()),
            scratch: Vec::new(),
        }
    }

    /// Shows every record and event to `observer` from now on (`report`).
    pub(crate) fn set_observer(&mut self, observer: Box<dyn Observer>) {
        self.observer = Some(observer);
    }

    /// Swaps the rule pack (config reload); per-file fold state is kept.
    pub(crate) fn set_rules(&mut self, rules: Arc<RulePack>) {
        self.rules = rules;
    }

    /// Takes the counters accumulated since the last call.
    pub fn take_counts(&mut self) -> PipelineCounts {
        std::mem::take(&mut self.counts)
    }

    /// Pods with an open file (they must not expire).
    pub(crate) fn live_pods(&self) -> impl Iterator<Item = &PodRef> {
        self.consumers.values().map(|c| &c.pod)
    }

    /// Starts a file (a report input, or a tailed file): `pod` owns its events.
    pub fn open(&mut self, key: FileKey, id: Option<FileId>, pod: PodRef) {
        let mut consumer = FileConsumer {
            pod,
            decoder: None,
            classify: None,
            last_ts: None,
            advanced_to: None,
            requests: None,
            touched: false,
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
                    consumer.decoder = Some(Box::new(d));
                }
                consumer.classify =
                    (st.classify != ClassifyState::default()).then(|| Box::new(st.classify));
            }
        }
        self.consumers.insert(key, Box::new(consumer));
    }

    /// One physical line of the file `key`.
    pub fn line(&mut self, key: FileKey, line: &[u8], truncated: bool) {
        let Some(c) = self.consumers.get_mut(&key) else {
            return;
        };
        c.touch(key, &mut self.touched);
        let mut observer = self.observer.as_deref_mut();
        if let Some(o) = observer.as_deref_mut() {
            o.line_at(0);
        }
        decode_line(
            c,
            &self.rules,
            &self.tracker,
            &mut self.counts.malformed,
            observer,
            self.max_line_bytes,
            line,
            truncated,
        );
    }

    /// A block of complete physical lines of the file `key`, each ending in
    /// `\n` (as [`TailSink::lines`] hands them over); a line longer than
    /// `cap` counts as cut to its head. Same result as [`Pipeline::line`]
    /// on each line, at a fraction of the cost (see the module doc).
    /// Returns the number of lines.
    pub fn block(&mut self, key: FileKey, block: &[u8], cap: usize) -> u64 {
        let Pipeline {
            rules,
            tracker,
            max_line_bytes,
            consumers,
            counts,
            observer,
            framer,
            scratch,
            touched,
            ..
        } = self;
        let Some(c) = consumers.get_mut(&key) else {
            return memchr::memchr_iter(b'\n', block).count() as u64;
        };
        c.touch(key, touched);
        let cap = cap.max(1);
        let mut observer = observer.as_deref_mut();
        framer.set_now(Timestamp::now());
        let mut scan = BlockScan::new(rules, tracker, c, block, &mut observer);
        let mut run = SkippedRun::default();
        let (mut start, mut lines) = (0usize, 0u64);
        for nl in memchr::memchr_iter(b'\n', block) {
            let line = &block[start..nl];
            lines += 1;
            scan.forget_behind(start);
            let skip = !scan.must_decode(line, cap)
                && scan.skippable(c, framer, scratch, start, nl, &mut run);
            if !skip {
                flush_skipped(c, &mut observer, &mut run);
                if let Some(o) = observer.as_deref_mut() {
                    o.line_at(start);
                }
                let (line, truncated) = match line.len() > cap {
                    true => (&line[..cap], true),
                    false => (line, false),
                };
                decode_line(
                    c,
                    rules,
                    tracker,
                    &mut counts.malformed,
                    observer.as_deref_mut(),
                    *max_line_bytes,
                    line,
                    truncated,
                );
                scan.refresh(rules, tracker, c, &mut observer);
            }
            start = nl + 1;
        }
        flush_skipped(c, &mut observer, &mut run);
        lines
    }

    /// The file was truncated in place: its partial records are gone.
    pub(crate) fn reset(&mut self, key: FileKey) {
        if let Some(c) = self.consumers.get_mut(&key) {
            c.decoder = None;
            c.classify = None;
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
        if let Some(state) = c.classify.as_deref_mut() {
            self.rules.finish(state, &mut |ev| {
                tracker.lock().apply_event(pod, &ev, Timestamp::now());
                if let Some(o) = observer.as_deref_mut() {
                    o.event(pod, &ev);
                }
            });
        }
        if let Some(ts) = c.last_ts {
            self.tracker.lock().advance(&c.pod, ts);
        }
    }

    /// Moves each pod's record clock to its files' newest timestamp (end of a pass).
    ///
    /// While nothing of the pod closes when quiet (its published answer says
    /// requests do not matter: no open gap or outage), the clock only moves
    /// once per [`SETTLED_CLOCK_STEP_NANOS`] of record time: then all it feeds is
    /// the pod's newest-record time, and a pod lookup per busy file per pass
    /// was a twentieth of the agent's CPU at 500 busy pods. The event that
    /// opens a gap or outage moves the clock itself, and from then on every
    /// pass does; closing a file moves it to the end.
    pub fn advance_clocks(&mut self) {
        if self.touched.is_empty() {
            return;
        }
        let mut tracker = None;
        for key in self.touched.drain(..) {
            let Some(c) = self.consumers.get_mut(&key) else {
                continue; // closed since (and advanced then)
            };
            c.touched = false;
            let Some(ts) = c.last_ts else { continue };
            let due = match c.advanced_to {
                None => true,
                Some(a) if ts <= a => false,
                Some(a) => !c.settled() || ts.0.saturating_sub(a.0) >= SETTLED_CLOCK_STEP_NANOS,
            };
            if due {
                tracker
                    .get_or_insert_with(|| self.tracker.lock())
                    .advance(&c.pod, ts);
                c.advanced_to = Some(ts);
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
                    classify: c
                        .and_then(|c| c.classify.as_deref().cloned())
                        .unwrap_or_default(),
                    position,
                }
            })
            .collect()
    }
}

/// What [`Pipeline::block`] carries from line to line of one block: the
/// prefilter in use, the next literal hit and ESC byte (each searched for
/// once per hit, not per line), and what the pod needs seen.
struct BlockScan<'a> {
    block: &'a [u8],
    has_nul: bool,
    /// Access lines are only looked for while a request can change the
    /// pod's timeline (asked again after every decoded line: its event may
    /// have opened a start).
    requests_until: Option<Timestamp>,
    prefilter: &'a BufferPrefilter,
    /// The next literal hit / ESC byte at or after the current line (None:
    /// not searched yet).
    next_hit: Option<usize>,
    next_esc: Option<usize>,
    /// The observer wants every record of the pod decoded.
    wants_all: bool,
}

impl<'a> BlockScan<'a> {
    fn new(
        rules: &'a RulePack,
        tracker: &SharedTracker,
        c: &mut FileConsumer,
        block: &'a [u8],
        observer: &mut Option<&mut (dyn Observer + 'static)>,
    ) -> BlockScan<'a> {
        let requests_until = c.requests_until(tracker);
        BlockScan {
            block,
            has_nul: memchr::memchr(0, block).is_some(),
            requests_until,
            prefilter: rules.buffer_prefilter(requests_until.is_none()),
            next_hit: None,
            next_esc: None,
            wants_all: observer
                .as_deref_mut()
                .is_some_and(|o| o.wants_every_record(&c.pod)),
        }
    }

    /// Forgets a hit or ESC position behind the line starting at `start`.
    fn forget_behind(&mut self, start: usize) {
        if self.next_hit.is_some_and(|h| h < start) {
            self.next_hit = None;
        }
        if self.next_esc.is_some_and(|e| e < start) {
            self.next_esc = None;
        }
    }

    /// Lines decoded whatever the literals say: the observer wants them,
    /// longer than the cap, or holding a NUL. (One that may belong to an
    /// open fold, or close one, is decoded too: see `skippable`.)
    fn must_decode(&self, line: &[u8], cap: usize) -> bool {
        self.wants_all || line.len() > cap || (self.has_nul && memchr::memchr(0, line).is_some())
    }

    /// Whether the line `start..nl` can be skipped: no literal hit, plainly
    /// framed, complete, and nothing (ANSI codes, JSON escapes, a late
    /// request) that could hide what matters; a skipped line goes to `run`.
    fn skippable(
        &mut self,
        c: &FileConsumer,
        framer: &mut Framer,
        scratch: &mut Vec<u8>,
        start: usize,
        nl: usize,
        run: &mut SkippedRun,
    ) -> bool {
        let (block, prefilter) = (self.block, self.prefilter);
        if *self
            .next_hit
            .get_or_insert_with(|| prefilter.next_hit(block, start))
            < nl
        {
            return false;
        }
        let Some(frame) = frame_of(c, framer, &block[start..nl]) else {
            return false;
        };
        let fold_concerns = c
            .classify
            .as_ref()
            .is_some_and(|s| s.fold_concerns(frame.stream, frame.ts));
        if frame.partial || fold_concerns {
            return false;
        }
        let json = looks_like_json(frame.message);
        let esc = *self.next_esc.get_or_insert_with(|| {
            memchr::memchr(0x1b, &block[start..]).map_or(usize::MAX, |i| start + i)
        }) < nl;
        let hidden = if esc {
            json || prefilter.is_match(ansi::strip_ansi(frame.message, scratch))
        } else {
            json && (frame.ts.is_none()
                || prefilter.json_needs_decoding()
                || may_hide_literal(frame.message))
        };
        let pending = c.decoder.as_ref().is_some_and(|d| d.pending(frame.stream));
        // A request read late may still fall inside a closed gap or outage.
        let late = self
            .requests_until
            .is_some_and(|u| frame.ts.is_some_and(|t| t <= u));
        let hidden = hidden || late;
        if !hidden && !pending {
            run.add(frame.ts);
        }
        !hidden && !pending
    }

    /// After a decoded line: its events may have changed whether requests
    /// matter (and so the prefilter), and what the observer wants.
    fn refresh(
        &mut self,
        rules: &'a RulePack,
        tracker: &SharedTracker,
        c: &mut FileConsumer,
        observer: &mut Option<&mut (dyn Observer + 'static)>,
    ) {
        self.wants_all = observer
            .as_deref_mut()
            .is_some_and(|o| o.wants_every_record(&c.pod));
        let until = c.requests_until(tracker);
        if until.is_none() != self.requests_until.is_none() {
            self.prefilter = rules.buffer_prefilter(until.is_none());
            self.next_hit = None;
        }
        self.requests_until = until;
    }
}

/// Decodes and classifies one physical line (the full path).
#[allow(clippy::too_many_arguments)] // disjoint borrows of the pipeline's fields
fn decode_line(
    c: &mut FileConsumer,
    rules: &RulePack,
    tracker: &SharedTracker,
    malformed: &mut HashMap<&'static str, u64>,
    observer: Option<&mut (dyn Observer + 'static)>,
    max_line_bytes: usize,
    line: &[u8],
    truncated: bool,
) {
    if truncated {
        *malformed
            .entry(MalformedReason::TooLong.as_str())
            .or_default() += 1;
    }
    let (decoder, mut h) = c.split(rules, tracker, malformed, observer);
    decoder
        .get_or_insert_with(|| Box::new(Decoder::new(Format::detect(line), max_line_bytes)))
        .push_line(line, &mut h);
}

/// The framing of `line` when the scanner may skip it: the file's format is
/// known and its framing can be read without the decoder (not docker's
/// JSON envelope, which escapes the whole message).
fn frame_of<'a>(c: &FileConsumer, framer: &mut Framer, line: &'a [u8]) -> Option<Frame<'a>> {
    match c.decoder.as_ref()?.format() {
        Format::Cri => framer.cri(line),
        Format::Plain => Some(framer.plain(line)),
        Format::Docker => None,
    }
}

/// Whether the decoder would read `text` as a LiteLLM JSON line (its first
/// non-blank byte is `{`).
fn looks_like_json(text: &[u8]) -> bool {
    text.iter()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|&c| c == b'{')
}

/// A JSON escape that can stand for a literal's character in a
/// non-canonical form: `\uXXXX` (any character) or `\/`.
fn may_hide_literal(json: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', json).any(|i| matches!(json.get(i + 1), Some(b'u' | b'/')))
}

/// Hands the skipped records to the observer and moves the file's clock.
fn flush_skipped(
    c: &mut FileConsumer,
    observer: &mut Option<&mut (dyn Observer + 'static)>,
    run: &mut SkippedRun,
) {
    if run.records == 0 {
        return;
    }
    let run = std::mem::take(run);
    let keep = match observer.as_deref_mut() {
        Some(o) => o.skipped(&c.pod, &run),
        None => true,
    };
    if let (true, Some(max)) = (keep, run.max_ts) {
        if c.last_ts.is_none_or(|l| max > l) {
            c.last_ts = Some(max);
        }
    }
}

impl TailSink for Pipeline {
    fn opened(&mut self, key: FileKey, id: FileId, path: &Path, _resumed: bool) {
        self.open(key, Some(id), PodRef::from_path(path));
    }

    fn line(&mut self, key: FileKey, line: &[u8], truncated: bool) {
        Pipeline::line(self, key, line, truncated);
    }

    fn lines(&mut self, key: FileKey, block: &[u8], cap: usize) -> u64 {
        self.block(key, block, cap)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{TimelineConfig, Tracker};

    const DB_ERROR: &str = "\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed";
    const ORDINARY: &str =
        "LiteLLM Proxy:INFO: proxy_server.py:4012 - Request received for model=gpt-4o-mini";
    const START: &str = "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)";

    /// A pass over one file: `msg` at `at`, then the end-of-pass clock move.
    fn pass(p: &mut Pipeline, key: FileKey, at: Timestamp, msg: &str) {
        let line = format!("{at} stderr F {msg}\n");
        assert_eq!(p.block(key, line.as_bytes(), 1 << 20), 1);
        p.advance_clocks();
    }

    #[test]
    fn a_settled_pods_clock_moves_once_a_second_and_on_every_pass_while_a_gap_is_open() {
        let tracker = SharedTracker::new(Tracker::new(TimelineConfig::default()));
        let rules = Arc::new(RulePack::builtin().expect("built-in pack"));
        let mut p = Pipeline::new(rules, tracker.clone(), 1 << 20, Vec::new());
        let (pod, other) = (
            PodRef::new("llm", "litellm-0"),
            PodRef::new("llm", "litellm-1"),
        );
        let (key, other_key) = (FileKey { dev: 1, ino: 1 }, FileKey { dev: 1, ino: 2 });
        p.open(key, None, pod.clone());
        p.open(other_key, None, other.clone());
        // Whole seconds: the line's text carries them exactly.
        let t0 = Timestamp((Timestamp::now().0 / 1_000_000_000 - 100) * 1_000_000_000);
        let at = |s: f64| t0.plus_secs(s);
        let clock = |pod: &PodRef| tracker.lock().pod(pod).and_then(|p| p.last_record_at);
        let settled = |pod: &PodRef| tracker.lock().requests_matter_until(pod).is_some();

        pass(&mut p, key, at(0.0), DB_ERROR);
        assert!(settled(&pod), "a DB error alone opens nothing");
        assert_eq!(clock(&pod), Some(at(0.0)));
        // Settled: the clock lags its file by less than a second of record time.
        pass(&mut p, key, at(0.3), ORDINARY);
        assert_eq!(clock(&pod), Some(at(0.0)));
        pass(&mut p, key, at(1.2), ORDINARY);
        assert_eq!(clock(&pod), Some(at(1.2)));
        pass(&mut p, key, at(1.5), ORDINARY);
        assert_eq!(clock(&pod), Some(at(1.2)));
        // A start opens a gap that closes when quiet: every pass moves the clock.
        pass(&mut p, key, at(2.0), START);
        assert!(!settled(&pod), "the proxy start opens a gap");
        assert_eq!(clock(&pod), Some(at(2.0)));
        pass(&mut p, key, at(2.1), ORDINARY);
        assert_eq!(clock(&pod), Some(at(2.1)));
        // Closing a file moves its pod's clock to the file's newest record.
        pass(&mut p, other_key, at(0.0), DB_ERROR);
        pass(&mut p, other_key, at(0.5), ORDINARY);
        assert_eq!(clock(&other), Some(at(0.0)));
        p.close(other_key);
        assert_eq!(clock(&other), Some(at(0.5)));
    }
}
