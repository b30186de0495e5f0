//! Matching records against the compiled pack.
//!
//! Every rule names literals (`contains`); all literals of all rules plus
//! the connection-failure wordings go into one multi-literal searcher (SIMD
//! Teddy, Aho-Corasick as the fallback). A line that contains none of them —
//! about 99% of a LiteLLM log — costs one scan and no allocation. Only lines
//! with a literal hit run the rules' regexes (each at most once per line),
//! and only the winning rule (the first in pack order) runs its captures.
//! Tracebacks following a header are folded into its event ([`super::fold`]).

use aho_corasick::AhoCorasick;

use super::fold::{self, Fold, FoldOwner};
use super::pack::{Action, CompiledRule, RowsSource, PID_GROUP};
use super::prefilter::BufferPrefilter;
use super::state::{
    close_fold, close_stale_folds, ClassifyState, FileFacts, RememberedRows, StreamState,
};
use super::{Event, EventKind, Operation, VersionFamily};
use crate::format::Record;
use crate::time::Timestamp;

/// Capacity (in 64-bit words) of the per-line "literal already seen" set.
pub(super) const SEEN_WORDS: usize = 8;

/// A rule pack compiled for matching: immutable, shared by all files.
#[derive(Debug)]
pub struct RulePack {
    pub(super) rules: Vec<CompiledRule>,
    /// Leftmost-longest automaton over every literal (SIMD prefilter).
    pub(super) literals: AhoCorasick,
    /// The same literals as a bare SIMD (Teddy) searcher, when the CPU and
    /// the literal count allow one: less per-call overhead than `literals`.
    pub(super) packed: Option<aho_corasick::packed::Searcher>,
    /// Per literal: the rules that name it, in priority order.
    pub(super) literal_rules: Vec<Vec<u32>>,
    /// Per literal: whether it is a connection-failure wording.
    pub(super) literal_is_wording: Vec<bool>,
    /// Per literal: the other literals it contains (found with it for free).
    pub(super) literal_implies: Vec<Vec<u32>>,
    /// The LiteLLM family the user pinned (config `litellm_version`, `report
    /// --litellm-version`); overrides what a file's own lines say.
    pub(super) version_pin: Option<VersionFamily>,
    /// The same literals (and their JSON forms) for whole read buffers.
    pub(super) buffer: BufferPrefilter,
    /// The same without the literals only request-served rules name.
    pub(super) buffer_without_requests: BufferPrefilter,
}

/// What the literal scan found on one line.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LineScan {
    /// The winning rule (first in pack order whose conditions hold).
    rule: Option<usize>,
    /// A connection-failure wording is on the line.
    has_wording: bool,
}

impl RulePack {
    /// Pins the LiteLLM family for every file (None: each file's own lines decide).
    pub(crate) fn with_version_pin(mut self, pin: Option<VersionFamily>) -> RulePack {
        self.version_pin = pin;
        self
    }

    /// Number of active rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is active (every rule disabled).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rule ids in matching priority order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// The prefilter the buffer scanner runs over whole read buffers;
    /// `requests: false` leaves out the literals only request-served
    /// (access-line) rules name.
    pub(crate) fn buffer_prefilter(&self, requests: bool) -> &BufferPrefilter {
        if requests {
            &self.buffer
        } else {
            &self.buffer_without_requests
        }
    }

    /// Every literal of the pack (tests of the prefilter).
    #[cfg(test)]
    pub(super) fn literal_texts(&self) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = Vec::new();
        for lit in self.rules.iter().flat_map(|r| r.literals.iter()) {
            if !all.contains(lit) {
                all.push(lit.clone());
            }
        }
        all
    }

    /// The id of the rule an [`Event::rule`] index names (None: not this pack's).
    #[cfg(test)]
    pub(crate) fn rule_id(&self, index: u32) -> Option<&str> {
        self.rules.get(index as usize).map(|r| r.id.as_str())
    }

    /// Classifies one record: each `\n`-separated line in turn, with the
    /// record's timestamp. A multi-line record (a JSON message with its
    /// traceback) is self-contained: a fold still open at its end is closed,
    /// so its deferred event is reported now rather than at the next line.
    pub fn classify<F: FnMut(Event)>(
        &self,
        state: &mut ClassifyState,
        record: &Record<'_>,
        emit: &mut F,
    ) {
        close_stale_folds(state, record.stream, record.ts, emit);
        let (stream, facts) = state.split(record.stream);
        // A line terminator left on the record does not make it multi-line.
        let text = record.text.strip_suffix(b"\n").unwrap_or(record.text);
        if memchr::memchr(b'\n', text).is_none() {
            self.classify_line(stream, facts, record.ts, trim_cr(text), emit);
            return;
        }
        for line in text.split(|&b| b == b'\n') {
            self.classify_line(stream, facts, record.ts, trim_cr(line), emit);
        }
        close_fold(stream, emit);
    }

    /// Ends every open fold (end of input, file closed): reports the deferred
    /// error of an unattributed traceback, if any. Idempotent.
    pub fn finish<F: FnMut(Event)>(&self, state: &mut ClassifyState, emit: &mut F) {
        for stream in [&mut state.stdout, &mut state.stderr, &mut state.unknown] {
            close_fold(stream, emit);
        }
    }

    /// Classifies one line: a line continuing an open fold belongs to it;
    /// otherwise the winning rule (if any) emits its events and may open a
    /// fold for the traceback that follows.
    fn classify_line<F: FnMut(Event)>(
        &self,
        stream: &mut StreamState,
        facts: &mut FileFacts,
        ts: Option<Timestamp>,
        line: &[u8],
        emit: &mut F,
    ) {
        if self.fold_or_open(stream, ts, line, emit) {
            return;
        }
        let scan = self.scan(line);
        let Some(index) = scan.rule else {
            return;
        };
        let rule = &self.rules[index];
        let rows = if rule.needs_rows {
            rule.captured_rows(line)
        } else {
            None
        };
        if let Some(v) = rule.sets_version {
            facts.version = Some(v);
        }
        if rule.repeat_window_secs > 0 && is_repeat(rule, index, rows, ts, facts) {
            // The same loss reported again (LiteLLM flushes twice on
            // shutdown): its traceback is still folded, nothing counts.
            if rule.fold {
                stream.fold = Some(Fold::after_header(FoldOwner::Silent, true));
                stream.fold_last_ts = ts;
            }
            return;
        }
        let hit = RuleHit {
            index,
            rule,
            has_wording: scan.has_wording,
            rows,
            ts,
            line,
        };
        let counted = self.run_actions(&hit, stream, facts, emit);
        if rule.remember_rows {
            if let Some(rows) = rows {
                stream.remembered_rows = Some(RememberedRows { rows, ts });
            }
        }
        if rule.fold {
            let mut fold = Fold::after_header(rule.fold_owner(), counted);
            fold.rule = u32::try_from(index).ok();
            stream.fold = Some(fold);
            stream.fold_last_ts = ts;
        }
    }

    /// Folds the line into the stream's open fold when it continues it
    /// (closing the fold when it does not), or opens an unattributed fold
    /// on a bare traceback header; true when the line was taken.
    fn fold_or_open<F: FnMut(Event)>(
        &self,
        stream: &mut StreamState,
        ts: Option<Timestamp>,
        line: &[u8],
        emit: &mut F,
    ) -> bool {
        if let Some(open) = stream.fold.as_mut() {
            if open.advance(fold::shape(line)) {
                self.fold_line(open, ts, line, emit);
                stream.fold_last_ts = ts.or(stream.fold_last_ts);
                return true;
            }
            close_fold(stream, emit);
        }
        if fold::opens_unattributed(line) {
            let mut open = Fold::unattributed();
            self.fold_line(&mut open, ts, line, emit);
            stream.fold = Some(open);
            stream.fold_last_ts = ts;
            return true;
        }
        false
    }

    /// Emits the winning rule's events in its `emit` order; true when a DB
    /// connect error was counted (a fold after it must not count another).
    fn run_actions<F: FnMut(Event)>(
        &self,
        hit: &RuleHit<'_>,
        stream: &mut StreamState,
        facts: &mut FileFacts,
        emit: &mut F,
    ) -> bool {
        let (rule, ts) = (hit.rule, hit.ts);
        let mut counted = false;
        for action in &rule.actions {
            let kind = match *action {
                Action::SpendBatchFailed => {
                    self.spend_batch_failed(hit, stream, facts, emit);
                    continue;
                }
                Action::EngineRestart => {
                    if !engine_restart_is_new(hit, facts) {
                        continue;
                    }
                    EventKind::EngineRestart
                }
                Action::DbConnectError(op)
                    if (hit.has_wording || op == Operation::Database) && !counted =>
                {
                    counted = true;
                    EventKind::DbConnectError(op)
                }
                Action::DbConnectError(_) => continue,
                Action::Event(kind) => kind,
                Action::SpendRowsRequeued(source) | Action::SpendRowsLost(source) => {
                    let n = match source {
                        RowsSource::Captured => hit.rows,
                        RowsSource::Remembered => stream.take_remembered(ts),
                    };
                    let Some(n) = n else { continue };
                    if matches!(action, Action::SpendRowsLost(_)) {
                        EventKind::SpendRowsLost(n)
                    } else {
                        EventKind::SpendRowsRequeued(n)
                    }
                }
            };
            emit(Event {
                ts,
                kind,
                rule: u32::try_from(hit.index).ok(),
            });
        }
        counted
    }

    /// A failed spend batch, read by the LiteLLM family: 1.108 re-queues
    /// its rows, 1.83 drops the batch and loses them.
    fn spend_batch_failed<F: FnMut(Event)>(
        &self,
        hit: &RuleHit<'_>,
        stream: &mut StreamState,
        facts: &FileFacts,
        emit: &mut F,
    ) {
        let ts = hit.ts;
        let rule_index = u32::try_from(hit.index).ok();
        let rows = stream.take_remembered(ts);
        // No hint and no pin: 1.83's reading (the batch is gone),
        // the conservative one for billing.
        match self.version_pin.or(facts.version) {
            Some(VersionFamily::V1_108) => {
                if let Some(n) = rows {
                    emit(Event {
                        ts,
                        kind: EventKind::SpendRowsRequeued(n),
                        rule: rule_index,
                    });
                }
            }
            Some(VersionFamily::V1_83) | None => {
                emit(Event {
                    ts,
                    kind: EventKind::SpendBatchDropped,
                    rule: rule_index,
                });
                if let Some(n) = rows {
                    emit(Event {
                        ts,
                        kind: EventKind::SpendRowsLost(n),
                        rule: rule_index,
                    });
                }
            }
        }
    }

    /// A line folded into an open event: it may supply the event's
    /// connection wording (or, in an unattributed traceback, a look-alike).
    fn fold_line<F: FnMut(Event)>(
        &self,
        open: &mut Fold,
        ts: Option<Timestamp>,
        line: &[u8],
        emit: &mut F,
    ) {
        match open.owner {
            FoldOwner::Silent => {}
            FoldOwner::Operation(op) => {
                if !open.counted && self.scan(line).has_wording {
                    open.counted = true;
                    emit(Event {
                        ts,
                        kind: EventKind::DbConnectError(op),
                        rule: open.rule,
                    });
                }
            }
            FoldOwner::Unattributed => {
                if open.suppressed {
                    return;
                }
                let scan = self.scan(line);
                if scan.rule.is_some_and(|r| self.rules[r].suppress) {
                    open.suppressed = true;
                } else if scan.has_wording && !open.pending {
                    open.pending = true;
                    open.pending_ts = ts;
                }
            }
        }
    }

    /// Finds the winning rule and whether a wording is present. Lines with
    /// no literal return after one prefilter scan, without allocating.
    ///
    /// Every literal occurring in the line is seen: the search restarts one
    /// byte after each match start, so a literal beginning inside another
    /// one is found by a later search, and the literals a match contains
    /// (which leftmost-longest hides) come from `literal_implies`.
    fn scan(&self, line: &[u8]) -> LineScan {
        let mut scan = LineScan::default();
        // One Teddy pass over the anchors first: a line without one holds no
        // literal (the full automaton is too big for Teddy).
        if !self.buffer.is_match(line) {
            return scan;
        }
        // Literals already handled on this line: a rule's verdict depends on
        // the line only, so a literal repeated 100,000 times in a huge line
        // costs its regexes once. (Literals past the set's capacity are
        // simply handled again.)
        let mut seen = [0u64; SEEN_WORDS];
        let mut first_time = |literal: usize| -> bool {
            let (word, bit) = (literal / 64, 1u64 << (literal % 64));
            match seen.get_mut(word) {
                Some(w) if *w & bit != 0 => false,
                Some(w) => {
                    *w |= bit;
                    true
                }
                None => true,
            }
        };
        let mut from = 0;
        while from < line.len() {
            let found = match &self.packed {
                Some(packed) => packed.find_in(line, aho_corasick::Span::from(from..line.len())),
                None => {
                    let input = aho_corasick::Input::new(line).span(from..line.len());
                    // Errors cannot happen: unanchored leftmost search.
                    self.literals.try_find(input).ok().flatten()
                }
            };
            let Some(found) = found else {
                break;
            };
            let literal = found.pattern().as_usize();
            if first_time(literal) {
                self.note_literal(line, literal, &mut scan);
                for &inner in &self.literal_implies[literal] {
                    if first_time(inner as usize) {
                        self.note_literal(line, inner as usize, &mut scan);
                    }
                }
            }
            from = found.start() + 1;
        }
        scan
    }

    /// Records one literal found in `line`: its wording flag and the best
    /// rule (lowest index) among its rules whose conditions hold.
    fn note_literal(&self, line: &[u8], literal: usize, scan: &mut LineScan) {
        scan.has_wording |= self.literal_is_wording[literal];
        for &rule in &self.literal_rules[literal] {
            let rule = rule as usize;
            if scan.rule.is_some_and(|best| best <= rule) {
                break;
            }
            if self.rules[rule].accepts(line) {
                scan.rule = Some(rule);
                break;
            }
        }
    }
}

/// A line the winning rule matched: what its actions need.
struct RuleHit<'a> {
    index: usize,
    rule: &'a CompiledRule,
    /// A connection-failure wording is on the line.
    has_wording: bool,
    /// The row count the rule captured, if it needs one.
    rows: Option<u64>,
    ts: Option<Timestamp>,
    line: &'a [u8],
}

/// True when the line repeats the last repeatable rule hit (same rule, same
/// rows) within the rule's repeat window; records this hit as the last.
fn is_repeat(
    rule: &CompiledRule,
    index: usize,
    rows: Option<u64>,
    ts: Option<Timestamp>,
    facts: &mut FileFacts,
) -> bool {
    let this = (u32::try_from(index).unwrap_or(u32::MAX), rows.unwrap_or(0));
    let repeat = facts.last_repeatable.is_some_and(|(r, n, then)| {
        (r, n) == this
            && match (then, ts) {
                (Some(a), Some(b)) => {
                    b.0.saturating_sub(a.0)
                        <= (rule.repeat_window_secs as i64).saturating_mul(1_000_000_000)
                }
                _ => true,
            }
    });
    facts.last_repeatable = Some((this.0, this.1, ts));
    repeat
}

/// True when an engine-restart line names a query engine not seen before
/// (or names none): LiteLLM reports one death on several lines.
fn engine_restart_is_new(hit: &RuleHit<'_>, facts: &mut FileFacts) -> bool {
    let rule = hit.rule;
    match rule
        .has_pid_group
        .then(|| rule.captured(hit.line, PID_GROUP))
    {
        // `PID 0 is dead` names no process: the death was reported already.
        Some(Some(0)) => false,
        Some(Some(pid)) => facts.first_sight_of_engine(pid),
        _ => true,
    }
}

pub(super) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
