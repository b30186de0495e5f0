//! The rule pack: TOML rules compiled into one literal prefilter.
//!
//! Every rule names literals (`contains`); all literals of all rules plus
//! the connection-failure wordings go into one multi-literal searcher (SIMD
//! Teddy, Aho-Corasick as the fallback). A line that contains none of them —
//! about 99% of a LiteLLM log — costs one scan and no allocation. Only lines
//! with a literal hit run the rules' regexes (each at most once per line),
//! and only the winning rule (the first in pack order) runs its captures.
//! Uvicorn access lines, the most common hits, are parsed without a regex.
//! The pack format is documented at the top of `rules/litellm.toml`.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use super::fold::{self, Fold, FoldOwner};
use super::prefilter::BufferPrefilter;
use super::{ConfigKind, Event, EventKind, Operation, VersionFamily};
use crate::format::{Record, Stream};
use crate::time::Timestamp;

const BUILTIN_SOURCE: &str = include_str!("../../rules/litellm.toml");
const BUILTIN_ORIGIN: &str = "built-in pack";
/// Shorter literals would make most lines candidates and defeat the prefilter.
const MIN_LITERAL_LEN: usize = 4;
/// A remembered `logs_count` older than this belongs to some other batch.
const REMEMBERED_ROWS_MAX_AGE_NANOS: i64 = 300 * 1_000_000_000;
/// Capacity (in 64-bit words) of the per-line "literal already seen" set.
const SEEN_WORDS: usize = 8;
/// The capture group that carries a row count.
const ROWS_GROUP: &str = "n";
/// The capture group that carries a query-engine PID (`engine_restart`).
const PID_GROUP: &str = "pid";
/// Engine PIDs remembered per file so a SIGTERM, SIGKILL and "is dead" line
/// about one engine count one restart.
const ENGINE_PIDS_KEPT: usize = 8;

/// Why a rule pack was rejected; the message names the pack and the rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The text is not TOML, or a top-level key is wrong.
    #[error("{origin}: not a valid rule pack: {message}")]
    Toml { origin: String, message: String },
    /// One rule is wrong.
    #[error("rule `{id}` ({origin}): {problem}")]
    Rule {
        id: String,
        origin: String,
        problem: RuleProblem,
    },
    /// The combined literal automaton could not be built (too many / too long literals).
    #[error("{origin}: cannot build the literal matcher: {message}")]
    Matcher { origin: String, message: String },
}

/// What is wrong with one rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleProblem {
    /// Unknown key, wrong type, missing required key.
    #[error("{0}")]
    Shape(String),
    /// `pattern` or `unless` does not compile.
    #[error("bad regex in `{key}`: {message}")]
    BadRegex { key: &'static str, message: String },
    /// An `emit` entry that is not an event name.
    #[error("unknown event `{0}` in `emit`")]
    UnknownEvent(String),
    /// The same id twice in one pack.
    #[error("duplicate id in this pack")]
    DuplicateId,
    /// Any other inconsistency (missing `operation`, short literal, …).
    #[error("{0}")]
    Invalid(String),
}

/// The whole pack as written in TOML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackSpec {
    #[serde(default)]
    connection_failure: Option<WordingSpec>,
    /// Kept as raw tables so a rule's errors can name its id.
    #[serde(default)]
    rule: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WordingSpec {
    contains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    #[serde(default)]
    #[allow(dead_code)] // documentation for humans; kept so the key is accepted
    description: String,
    #[serde(default)]
    contains: Option<OneOrMany>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    unless: Option<String>,
    emit: Vec<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    access_status: Option<String>,
    #[serde(default)]
    access_skip_paths: Vec<String>,
    #[serde(default)]
    rows: Option<String>,
    #[serde(default)]
    remember_rows: bool,
    #[serde(default)]
    sets_version: Option<String>,
    #[serde(default)]
    repeat_window_secs: u64,
    #[serde(default)]
    fold: bool,
    #[serde(default = "default_true")]
    enabled: bool,
}

fn default_true() -> bool {
    true
}

/// Where a row count comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowsSource {
    /// The rule's `(?P<n>…)` group.
    Captured,
    /// The stream's remembered count (1.83 retry lines), used once.
    Remembered,
}

/// One thing a matching rule does, in `emit` order.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// Counted only when a connection wording is on the line (or in the fold).
    DbConnectError(Operation),
    /// Counted unconditionally.
    Event(EventKind),
    SpendRowsRequeued(RowsSource),
    SpendRowsLost(RowsSource),
    /// The spend-log monitor error: dropped or re-queued by version.
    SpendBatchFailed,
    /// One engine killed or lost, counted once per PID.
    EngineRestart,
}

/// A Uvicorn access-line condition, checked without a regex because access
/// lines are the most common lines of a busy proxy.
#[derive(Debug)]
struct AccessFilter {
    /// First digit of the status class (`b'2'` for "2xx").
    status_class: u8,
    /// Path prefixes that do not count (probes, metrics).
    skip_paths: Vec<Vec<u8>>,
}

impl AccessFilter {
    fn accepts(&self, line: &[u8]) -> bool {
        match parse_access_line(line) {
            Some(access) => {
                access.status[0] == self.status_class
                    && !self
                        .skip_paths
                        .iter()
                        .any(|skip| access.path.starts_with(skip))
            }
            None => false,
        }
    }
}

/// The parts of a Uvicorn access line the rules look at.
#[derive(Debug, PartialEq, Eq)]
struct AccessLine<'a> {
    path: &'a [u8],
    status: [u8; 3],
}

/// Parses `<client> - "<METHOD> <path> HTTP/<v>" <status>[ <reason>]`
/// anywhere in the line (text mode has an `INFO:     ` prefix, JSON mode not).
fn parse_access_line(line: &[u8]) -> Option<AccessLine<'_>> {
    let open = memchr::memmem::find(line, b" - \"")?;
    let rest = &line[open + 4..];
    let method_len = rest.iter().position(|&b| !b.is_ascii_uppercase())?;
    if method_len == 0 {
        return None;
    }
    let rest = rest[method_len..].strip_prefix(b" ")?;
    let path_len = memchr::memchr(b' ', rest)?;
    let (path, rest) = rest.split_at(path_len);
    let rest = rest.strip_prefix(b" HTTP/")?;
    let close = memchr::memchr(b'"', rest)?;
    let rest = rest[close + 1..].strip_prefix(b" ")?;
    let (status, after) = rest.split_at_checked(3)?;
    if !status.iter().all(u8::is_ascii_digit) || !(after.is_empty() || after[0] == b' ') {
        return None;
    }
    Some(AccessLine {
        path,
        status: [status[0], status[1], status[2]],
    })
}

/// A rule ready for matching.
#[derive(Debug)]
struct CompiledRule {
    id: String,
    literals: Vec<Vec<u8>>,
    pattern: Option<Regex>,
    unless: Option<Regex>,
    access: Option<AccessFilter>,
    actions: Vec<Action>,
    remember_rows: bool,
    /// A line only this LiteLLM family logs: it sets the file's version.
    sets_version: Option<VersionFamily>,
    /// Seconds within which the same row count from this rule is the same loss.
    repeat_window_secs: u64,
    fold: bool,
    suppress: bool,
    /// Whether the pattern has a `pid` group (engine restarts dedupe by it).
    has_pid_group: bool,
    /// Whether any action needs the `n` capture.
    needs_rows: bool,
    /// `enabled = false`: the rule only removes a built-in rule of its id.
    enabled: bool,
}

impl CompiledRule {
    /// The rule's regex conditions (its literal has already been seen).
    fn accepts(&self, line: &[u8]) -> bool {
        self.access.as_ref().is_none_or(|a| a.accepts(line))
            && self.pattern.as_ref().is_none_or(|p| p.is_match(line))
            && self.unless.as_ref().is_none_or(|u| !u.is_match(line))
    }

    /// The owner of the fold this rule's header opens.
    fn fold_owner(&self) -> FoldOwner {
        if self.suppress {
            return FoldOwner::Silent;
        }
        self.actions
            .iter()
            .find_map(|a| match a {
                Action::DbConnectError(op) => Some(FoldOwner::Operation(*op)),
                _ => None,
            })
            .unwrap_or(FoldOwner::Silent)
    }

    /// The `n` group of the pattern as a number, if the line has one.
    fn captured_rows(&self, line: &[u8]) -> Option<u64> {
        self.captured(line, ROWS_GROUP)
    }

    /// A numeric named group of the pattern, if the line has one.
    fn captured(&self, line: &[u8], group: &str) -> Option<u64> {
        let caps = self.pattern.as_ref()?.captures(line)?;
        parse_u64(caps.name(group)?.as_bytes())
    }
}

/// A rule pack compiled for matching: immutable, shared by all files.
#[derive(Debug)]
pub struct RulePack {
    rules: Vec<CompiledRule>,
    /// Leftmost-longest automaton over every literal (SIMD prefilter).
    literals: AhoCorasick,
    /// The same literals as a bare SIMD (Teddy) searcher, when the CPU and
    /// the literal count allow one: less per-call overhead than `literals`.
    packed: Option<aho_corasick::packed::Searcher>,
    /// Per literal: the rules that name it, in priority order.
    literal_rules: Vec<Vec<u32>>,
    /// Per literal: whether it is a connection-failure wording.
    literal_is_wording: Vec<bool>,
    /// Per literal: the other literals it contains (found with it for free).
    literal_implies: Vec<Vec<u32>>,
    /// The LiteLLM family the user pinned (config `litellm_version`, `report
    /// --litellm-version`); overrides what a file's own lines say.
    version_pin: Option<VersionFamily>,
    /// The same literals (and their JSON forms) for whole read buffers.
    buffer: BufferPrefilter,
}

/// Per-stream state: the open fold and the remembered spend row count.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct StreamState {
    #[serde(default)]
    fold: Option<Fold>,
    /// Record time of the open fold's newest line.
    #[serde(default)]
    fold_last_ts: Option<Timestamp>,
    #[serde(default)]
    remembered_rows: Option<RememberedRows>,
}

/// A `logs_count` from a 1.83 retry line, waiting for the batch's final error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct RememberedRows {
    rows: u64,
    ts: Option<Timestamp>,
}

impl StreamState {
    /// Takes the remembered count if it is recent enough to be this batch's.
    fn take_remembered(&mut self, now: Option<Timestamp>) -> Option<u64> {
        let kept = self.remembered_rows.take()?;
        match (kept.ts, now) {
            (Some(then), Some(now))
                if now.0.saturating_sub(then.0) > REMEMBERED_ROWS_MAX_AGE_NANOS =>
            {
                None
            }
            _ => Some(kept.rows),
        }
    }
}

/// Classification state of one file: folds per stream plus the remembered
/// spend row count. Small; saved in the checkpoint with the file offset.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifyState {
    #[serde(default)]
    stdout: StreamState,
    #[serde(default)]
    stderr: StreamState,
    #[serde(default)]
    unknown: StreamState,
    #[serde(default)]
    facts: FileFacts,
}

/// What a file's earlier lines tell about the later ones, whatever the stream.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct FileFacts {
    /// The LiteLLM family the file's own lines showed (retry wordings).
    #[serde(default)]
    version: Option<VersionFamily>,
    /// The engine PIDs whose loss was already counted, newest last.
    #[serde(default)]
    engine_pids: Vec<u64>,
    /// The last counted line of a rule with `repeat_window_secs`: (rule, rows, time).
    #[serde(default)]
    last_repeatable: Option<(u32, u64, Option<Timestamp>)>,
}

impl FileFacts {
    /// True the first time `pid` is seen (then remembered).
    fn first_sight_of_engine(&mut self, pid: u64) -> bool {
        if self.engine_pids.contains(&pid) {
            return false;
        }
        if self.engine_pids.len() >= ENGINE_PIDS_KEPT {
            self.engine_pids.remove(0);
        }
        self.engine_pids.push(pid);
        true
    }
}

impl ClassifyState {
    fn split(&mut self, stream: Stream) -> (&mut StreamState, &mut FileFacts) {
        let s = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
            Stream::Unknown => &mut self.unknown,
        };
        (s, &mut self.facts)
    }

    /// The LiteLLM family this file's lines showed so far, if any.
    pub fn version(&self) -> Option<VersionFamily> {
        self.facts.version
    }

    /// True when a traceback is being folded in some stream (its event may
    /// still be pending; see [`RulePack::finish`]).
    pub fn has_open_fold(&self) -> bool {
        self.stdout.fold.is_some() || self.stderr.fold.is_some() || self.unknown.fold.is_some()
    }
}

/// What the literal scan found on one line.
#[derive(Clone, Copy, Debug, Default)]
struct LineScan {
    /// The winning rule (first in pack order whose conditions hold).
    rule: Option<usize>,
    /// A connection-failure wording is on the line.
    has_wording: bool,
}

impl RulePack {
    /// The built-in pack (`rules/litellm.toml`, compiled into the binary).
    pub fn builtin() -> Result<RulePack, RuleError> {
        let (mut rules, wordings) = parse_pack(BUILTIN_SOURCE, BUILTIN_ORIGIN)?;
        rules.retain(|rule| rule.enabled);
        RulePack::compile(rules, wordings, BUILTIN_ORIGIN)
    }

    /// The built-in pack extended by a user pack: a user rule with a built-in
    /// id replaces that rule in place (or removes it with `enabled = false`);
    /// new ids are tried before all built-in rules; user wordings are added.
    pub fn with_user_pack(user_toml: &str, origin: &str) -> Result<RulePack, RuleError> {
        let user_origin = format!("user pack {origin}");
        let (mut builtin, mut wordings) = parse_pack(BUILTIN_SOURCE, BUILTIN_ORIGIN)?;
        let (user, user_wordings) = parse_pack(user_toml, &user_origin)?;
        wordings.extend(user_wordings);
        let mut added = Vec::new();
        for rule in user {
            match builtin.iter_mut().find(|b| b.id == rule.id) {
                Some(slot) => *slot = rule,
                None => added.push(rule),
            }
        }
        added.extend(builtin);
        added.retain(|rule| rule.enabled);
        RulePack::compile(added, wordings, &user_origin)
    }

    /// Pins the LiteLLM family for every file (None: each file's own lines decide).
    pub fn with_version_pin(mut self, pin: Option<VersionFamily>) -> RulePack {
        self.version_pin = pin;
        self
    }

    /// The pinned LiteLLM family, if any.
    pub fn version_pin(&self) -> Option<VersionFamily> {
        self.version_pin
    }

    /// The built-in pack's TOML, for `litellm-sentinel rules`.
    pub fn builtin_source() -> &'static str {
        BUILTIN_SOURCE
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
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// The prefilter the buffer scanner runs over whole read buffers.
    pub fn buffer_prefilter(&self) -> &BufferPrefilter {
        &self.buffer
    }

    /// The id of the rule an [`Event::rule`] index names (None: not this pack's).
    pub fn rule_id(&self, index: u32) -> Option<&str> {
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

    fn classify_line<F: FnMut(Event)>(
        &self,
        stream: &mut StreamState,
        facts: &mut FileFacts,
        ts: Option<Timestamp>,
        line: &[u8],
        emit: &mut F,
    ) {
        if let Some(open) = stream.fold.as_mut() {
            if open.advance(fold::shape(line)) {
                self.fold_line(open, ts, line, emit);
                stream.fold_last_ts = ts.or(stream.fold_last_ts);
                return;
            }
            close_fold(stream, emit);
        }
        if fold::opens_unattributed(line) {
            let mut open = Fold::unattributed();
            self.fold_line(&mut open, ts, line, emit);
            stream.fold = Some(open);
            stream.fold_last_ts = ts;
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
        if rule.repeat_window_secs > 0 {
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
            if repeat {
                // The same loss reported again (LiteLLM flushes twice on
                // shutdown): its traceback is still folded, nothing counts.
                if rule.fold {
                    stream.fold = Some(Fold::after_header(FoldOwner::Silent, true));
                    stream.fold_last_ts = ts;
                }
                return;
            }
        }
        let mut counted = false;
        for action in &rule.actions {
            let kind = match *action {
                Action::SpendBatchFailed => {
                    let rule_index = u32::try_from(index).ok();
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
                    continue;
                }
                Action::EngineRestart => {
                    let first = match rule.has_pid_group.then(|| rule.captured(line, PID_GROUP)) {
                        // `PID 0 is dead` names no process: the death was reported already.
                        Some(Some(0)) => false,
                        Some(Some(pid)) => facts.first_sight_of_engine(pid),
                        _ => true,
                    };
                    if !first {
                        continue;
                    }
                    EventKind::EngineRestart
                }
                Action::DbConnectError(op)
                    if (scan.has_wording || op == Operation::Database) && !counted =>
                {
                    counted = true;
                    EventKind::DbConnectError(op)
                }
                Action::DbConnectError(_) => continue,
                Action::Event(kind) => kind,
                Action::SpendRowsRequeued(source) | Action::SpendRowsLost(source) => {
                    let n = match source {
                        RowsSource::Captured => rows,
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
                rule: u32::try_from(index).ok(),
            });
        }
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

    /// Builds the automata over all rule literals and wordings.
    fn compile(
        rules: Vec<CompiledRule>,
        wordings: Vec<Vec<u8>>,
        origin: &str,
    ) -> Result<RulePack, RuleError> {
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut literal_rules: Vec<Vec<u32>> = Vec::new();
        let mut literal_is_wording: Vec<bool> = Vec::new();
        let mut slot = |lit: &[u8]| -> usize {
            *index.entry(lit.to_vec()).or_insert_with(|| {
                literals.push(lit.to_vec());
                literal_rules.push(Vec::new());
                literal_is_wording.push(false);
                literals.len() - 1
            })
        };
        let mut rule_slots = Vec::new();
        for (n, rule) in rules.iter().enumerate() {
            for lit in &rule.literals {
                rule_slots.push((slot(lit), n));
            }
        }
        let wording_slots: Vec<usize> = wordings.iter().map(|w| slot(w)).collect();
        for (at, n) in rule_slots {
            let n = u32::try_from(n).map_err(|_| RuleError::Matcher {
                origin: origin.to_owned(),
                message: "too many rules".to_owned(),
            })?;
            if !literal_rules[at].contains(&n) {
                literal_rules[at].push(n);
            }
        }
        for at in wording_slots {
            literal_is_wording[at] = true;
        }
        let literal_implies = literals
            .iter()
            .map(|outer| {
                (0..literals.len())
                    .filter(|&inner| {
                        literals[inner] != *outer
                            && memchr::memmem::find(outer, &literals[inner]).is_some()
                    })
                    .filter_map(|inner| u32::try_from(inner).ok())
                    .collect()
            })
            .collect();
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&literals)
            .map_err(|e| RuleError::Matcher {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?;
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(&literals)
            .build();
        let buffer = BufferPrefilter::build(&literals).map_err(|message| RuleError::Matcher {
            origin: origin.to_owned(),
            message,
        })?;
        Ok(RulePack {
            buffer,
            literals: automaton,
            packed,
            rules,
            literal_rules,
            literal_is_wording,
            literal_implies,
            version_pin: None,
        })
    }
}

/// A traceback is written in one go: once a record of another stream of the
/// file is more than this much newer than a fold's last line, that fold is
/// complete (its deferred event must not wait for its own stream's next line,
/// which may come minutes later, after the gap it belongs to has closed).
const FOLD_SETTLE_NANOS: i64 = 1_000_000_000;

/// Closes the folds of the other streams that `ts` shows complete.
fn close_stale_folds<F: FnMut(Event)>(
    state: &mut ClassifyState,
    current: Stream,
    ts: Option<Timestamp>,
    emit: &mut F,
) {
    let Some(now) = ts else { return };
    for (stream, st) in [
        (Stream::Stdout, &mut state.stdout),
        (Stream::Stderr, &mut state.stderr),
        (Stream::Unknown, &mut state.unknown),
    ] {
        if stream == current || st.fold.is_none() {
            continue;
        }
        if st
            .fold_last_ts
            .is_some_and(|l| now.0.saturating_sub(l.0) > FOLD_SETTLE_NANOS)
        {
            close_fold(st, emit);
        }
    }
}

/// Ends the stream's fold, reporting its deferred event.
fn close_fold<F: FnMut(Event)>(stream: &mut StreamState, emit: &mut F) {
    if let Some(event) = stream.fold.take().and_then(Fold::settle) {
        emit(event);
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Decimal digits to a number; `None` when empty, not digits, or too large.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Parses and checks one pack; returns its rules (in order, disabled ones
/// included so they can switch off a built-in rule) and its wordings.
fn parse_pack(source: &str, origin: &str) -> Result<(Vec<CompiledRule>, Vec<Vec<u8>>), RuleError> {
    let spec: PackSpec = toml::from_str(source).map_err(|e| RuleError::Toml {
        origin: origin.to_owned(),
        message: e.to_string(),
    })?;
    let mut wordings = Vec::new();
    if let Some(w) = spec.connection_failure {
        for literal in w.contains {
            if literal.len() < MIN_LITERAL_LEN {
                return Err(RuleError::Toml {
                    origin: origin.to_owned(),
                    message: format!(
                        "connection_failure wording `{literal}` is shorter than {MIN_LITERAL_LEN} bytes"
                    ),
                });
            }
            wordings.push(literal.into_bytes());
        }
    }
    let mut seen: Vec<String> = Vec::new();
    let mut rules = Vec::new();
    for (position, table) in spec.rule.into_iter().enumerate() {
        let id = match table.get("id").and_then(|v| v.as_str()) {
            Some(id) => id.to_owned(),
            None => format!("#{}", position + 1),
        };
        let fail = |problem: RuleProblem| RuleError::Rule {
            id: id.clone(),
            origin: origin.to_owned(),
            problem,
        };
        let rule: RuleSpec =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    fail(RuleProblem::Shape(e.message().trim().to_owned()))
                })?;
        if seen.contains(&rule.id) {
            return Err(fail(RuleProblem::DuplicateId));
        }
        seen.push(rule.id.clone());
        rules.push(compile_rule(&rule).map_err(fail)?);
    }
    Ok((rules, wordings))
}

/// Checks one rule and compiles its regexes.
fn compile_rule(spec: &RuleSpec) -> Result<CompiledRule, RuleProblem> {
    let valid_id = !spec.id.is_empty()
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_id {
        return Err(RuleProblem::Invalid(
            "`id` must be letters, digits, `_`, `-` or `.`".to_owned(),
        ));
    }
    let pattern = compile_regex("pattern", spec.pattern.as_deref())?;
    let unless = compile_regex("unless", spec.unless.as_deref())?;
    let literals: Vec<Vec<u8>> = match &spec.contains {
        Some(OneOrMany::One(one)) => vec![one.clone().into_bytes()],
        Some(OneOrMany::Many(many)) => many.iter().map(|l| l.clone().into_bytes()).collect(),
        None => match spec.pattern.as_deref() {
            Some(p) if is_plain_literal(p) => vec![p.as_bytes().to_vec()],
            _ => {
                return Err(RuleProblem::Invalid(
                    "`contains` is required (a literal every matching line has) unless `pattern` is a plain literal"
                        .to_owned(),
                ))
            }
        },
    };
    if literals.is_empty() {
        return Err(RuleProblem::Invalid("`contains` is empty".to_owned()));
    }
    if let Some(short) = literals.iter().find(|l| l.len() < MIN_LITERAL_LEN) {
        return Err(RuleProblem::Invalid(format!(
            "`contains` literal `{}` is shorter than {MIN_LITERAL_LEN} bytes; it would make nearly every line a candidate",
            String::from_utf8_lossy(short)
        )));
    }

    let operation = match spec.operation.as_deref() {
        None => None,
        Some(name) => Some(Operation::parse(name).ok_or_else(|| {
            RuleProblem::Invalid(format!(
                "unknown operation `{name}` (one of: {})",
                Operation::ALL.map(Operation::as_str).join(", ")
            ))
        })?),
    };
    let config = match spec.config.as_deref() {
        None => None,
        Some("deployments") => Some(ConfigKind::Deployments),
        Some("credentials") => Some(ConfigKind::Credentials),
        Some(other) => {
            return Err(RuleProblem::Invalid(format!(
                "unknown config `{other}` (one of: deployments, credentials)"
            )))
        }
    };
    let rows = match spec.rows.as_deref() {
        None | Some("captured") => RowsSource::Captured,
        Some("remembered") => RowsSource::Remembered,
        Some(other) => {
            return Err(RuleProblem::Invalid(format!(
                "unknown rows `{other}` (one of: captured, remembered)"
            )))
        }
    };
    let access = match spec.access_status.as_deref() {
        None if spec.access_skip_paths.is_empty() => None,
        None => {
            return Err(RuleProblem::Invalid(
                "`access_skip_paths` needs `access_status`".to_owned(),
            ))
        }
        Some(class) => match class.as_bytes() {
            [digit @ b'1'..=b'5', b'x', b'x'] => Some(AccessFilter {
                status_class: *digit,
                skip_paths: spec
                    .access_skip_paths
                    .iter()
                    .map(|p| p.clone().into_bytes())
                    .collect(),
            }),
            _ => {
                return Err(RuleProblem::Invalid(format!(
                    "`access_status` must be a status class like \"2xx\", not `{class}`"
                )))
            }
        },
    };
    let has_rows_group = pattern
        .as_ref()
        .is_some_and(|p| p.capture_names().any(|n| n == Some(ROWS_GROUP)));

    if spec.emit.is_empty() {
        return Err(RuleProblem::Invalid(
            "`emit` is empty; use [\"suppress\"] for a look-alike that must count nothing"
                .to_owned(),
        ));
    }
    let mut actions = Vec::new();
    let mut suppress = false;
    for name in &spec.emit {
        let action = match name.as_str() {
            "suppress" => {
                suppress = true;
                continue;
            }
            "db_connect_error" => Action::DbConnectError(operation.ok_or_else(|| {
                RuleProblem::Invalid("`db_connect_error` needs `operation`".to_owned())
            })?),
            "spend_batch_dropped" => Action::Event(EventKind::SpendBatchDropped),
            "spend_rows_requeued" => Action::SpendRowsRequeued(rows),
            "spend_rows_lost" => Action::SpendRowsLost(rows),
            "budget_cache_miss" => Action::Event(EventKind::BudgetCacheMiss),
            "config_load_failure" => {
                Action::Event(EventKind::ConfigLoadFailure(config.ok_or_else(|| {
                    RuleProblem::Invalid("`config_load_failure` needs `config`".to_owned())
                })?))
            }
            "engine_distro_fallback" => Action::Event(EventKind::EngineDistroFallback),
            "spend_batch_failed" => Action::SpendBatchFailed,
            "spend_updates_failed" => Action::Event(EventKind::SpendUpdatesFailed),
            "engine_restart" => Action::EngineRestart,
            "process_started" => Action::Event(EventKind::ProcessStarted { parent: false }),
            "parent_process_started" => Action::Event(EventKind::ProcessStarted { parent: true }),
            "proxy_accepting" => Action::Event(EventKind::ProxyAccepting),
            "proxy_listening" => Action::Event(EventKind::ProxyListening),
            "proxy_stopping" => Action::Event(EventKind::ProxyStopping),
            "request_served" => Action::Event(EventKind::RequestServed),
            other => return Err(RuleProblem::UnknownEvent(other.to_owned())),
        };
        actions.push(action);
    }
    if suppress && !actions.is_empty() {
        return Err(RuleProblem::Invalid(
            "`suppress` must be the only entry of `emit`".to_owned(),
        ));
    }
    let row_actions = actions
        .iter()
        .filter(|a| matches!(a, Action::SpendRowsLost(_) | Action::SpendRowsRequeued(_)));
    let mut needs_rows = spec.remember_rows;
    for action in row_actions {
        match action {
            Action::SpendRowsRequeued(RowsSource::Remembered) => {
                return Err(RuleProblem::Invalid(
                    "rows = \"remembered\" applies to `spend_rows_lost` only".to_owned(),
                ))
            }
            Action::SpendRowsRequeued(RowsSource::Captured)
            | Action::SpendRowsLost(RowsSource::Captured) => {
                needs_rows = true;
            }
            _ => {}
        }
    }
    if needs_rows && !has_rows_group {
        return Err(RuleProblem::Invalid(format!(
            "row counts need a `(?P<{ROWS_GROUP}>[0-9]+)` group in `pattern`"
        )));
    }
    if spec.operation.is_some()
        && !actions
            .iter()
            .any(|a| matches!(a, Action::DbConnectError(_)))
    {
        return Err(RuleProblem::Invalid(
            "`operation` is set but `emit` has no `db_connect_error`".to_owned(),
        ));
    }
    let sets_version = match spec.sets_version.as_deref() {
        None => None,
        Some(v) => Some(VersionFamily::parse(v).ok_or_else(|| {
            RuleProblem::Invalid(format!(
                "`sets_version` must be a LiteLLM version like \"1.83\" or \"1.108\", not `{v}`"
            ))
        })?),
    };
    let has_pid_group = pattern
        .as_ref()
        .is_some_and(|p| p.capture_names().any(|n| n == Some(PID_GROUP)));
    if spec.config.is_some() && !spec.emit.iter().any(|e| e == "config_load_failure") {
        return Err(RuleProblem::Invalid(
            "`config` is set but `emit` has no `config_load_failure`".to_owned(),
        ));
    }
    Ok(CompiledRule {
        id: spec.id.clone(),
        literals,
        pattern,
        unless,
        access,
        actions,
        remember_rows: spec.remember_rows,
        sets_version,
        repeat_window_secs: spec.repeat_window_secs,
        fold: spec.fold,
        suppress,
        has_pid_group,
        needs_rows,
        enabled: spec.enabled,
    })
}

fn compile_regex(key: &'static str, source: Option<&str>) -> Result<Option<Regex>, RuleProblem> {
    let Some(source) = source else {
        return Ok(None);
    };
    RegexBuilder::new(source)
        .unicode(false)
        .build()
        .map(Some)
        .map_err(|e| RuleProblem::BadRegex {
            key,
            message: e.to_string(),
        })
}

/// True when `pattern` has no regex syntax, so it can serve as its own literal.
fn is_plain_literal(pattern: &str) -> bool {
    !pattern.bytes().any(|b| b"\\.+*?()|[]{}^$".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::EventKind::*;
    use crate::classify::Operation as Op;
    use crate::classify::VersionFamily;

    const SEC: i64 = 1_000_000_000;

    /// The built-in pack, compiled once for all tests.
    fn pack() -> &'static RulePack {
        static PACK: std::sync::OnceLock<RulePack> = std::sync::OnceLock::new();
        PACK.get_or_init(|| RulePack::builtin().expect("built-in pack compiles"))
    }

    /// One record per line (text mode); line `i` has timestamp `i` seconds.
    fn run_plain(pack: &RulePack, text: &str) -> Vec<Event> {
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let record = Record {
                ts: Some(Timestamp(i as i64 * SEC)),
                stream: Stream::Unknown,
                text: line.as_bytes(),
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        }
        pack.finish(&mut state, &mut |e| events.push(e));
        events
    }

    /// The ledger's hook: every event names the rule that matched, a folded
    /// one its header's rule, a traceback no header owns none.
    #[test]
    fn events_carry_the_index_of_the_rule_that_matched() {
        let pack = pack();
        let events = run_plain(
            pack,
            "10:15:02 - LiteLLM Proxy:ERROR: utils.py:3905 - Error in spend logs queue monitor: boom\n\
             Traceback (most recent call last):\n\
             \x20 File \"x.py\", line 1, in f\n\
             httpx.ConnectError: All connection attempts failed\n\
             INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)\n\
             Traceback (most recent call last):\n\
             \x20 File \"x.py\", line 1, in f\n\
             httpx.ConnectError: All connection attempts failed",
        );
        let named: Vec<(EventKind, Option<&str>)> = events
            .iter()
            .map(|e| (e.kind, e.rule.and_then(|i| pack.rule_id(i))))
            .collect();
        let header = named[0].1.expect("the header names its rule");
        assert!(named.len() >= 4, "{named:?}");
        assert!(
            named
                .iter()
                .take_while(|(k, _)| *k != ProxyListening)
                .all(|(_, r)| *r == Some(header)),
            "{named:?}"
        );
        assert!(named
            .iter()
            .any(|(k, r)| *k == ProxyListening && r.is_some()));
        assert_eq!(named.last(), Some(&(DbConnectError(Op::Other), None)));
        assert_eq!(pack.rule_id(u32::MAX), None);
    }

    /// Mixed JSON_LOGS output: a JSON line becomes one record whose text is
    /// `message` (+ `\n` + `stacktrace`), as the format module delivers it.
    fn run_json(pack: &RulePack, text: &str) -> Vec<Event> {
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let owned: String = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(value) if value.get("message").is_some() => {
                    let mut text = value["message"].as_str().unwrap_or_default().to_owned();
                    if let Some(stack) = value.get("stacktrace").and_then(|s| s.as_str()) {
                        text.push('\n');
                        text.push_str(stack);
                    }
                    text
                }
                _ => line.to_owned(),
            };
            let record = Record {
                ts: Some(Timestamp(i as i64 * SEC)),
                stream: Stream::Stderr,
                text: owned.as_bytes(),
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        }
        pack.finish(&mut state, &mut |e| events.push(e));
        events
    }

    fn kinds(events: &[Event]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    fn count(events: &[Event], kind: EventKind) -> usize {
        events.iter().filter(|e| e.kind == kind).count()
    }

    const MONITOR_1_83: &str = "\x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - Error in spend logs queue monitor: All connection attempts failed";

    fn spend_retries(wording: &str, logs_count: u32) -> String {
        (1..=4)
            .map(|k| {
                format!(
                    "18:33:4{k} - LiteLLM Proxy:WARNING: utils.py:3000 - Spend tracking - {wording} writing spend logs, retry {k}/3. logs_count={logs_count}, error=All connection attempts failed\n"
                )
            })
            .collect()
    }

    #[test]
    fn the_monitor_error_is_a_drop_in_1_83_and_a_requeue_in_1_108() {
        let old = format!(
            "{}{}",
            spend_retries("DB connection error", 37),
            MONITOR_1_83
        );
        let mut buf = Vec::new();
        let old =
            String::from_utf8(crate::format::ansi::strip_ansi(old.as_bytes(), &mut buf).to_vec())
                .unwrap();
        let events = run_plain(pack(), &old);
        assert_eq!(count(&events, SpendBatchDropped), 1);
        assert_eq!(count(&events, SpendRowsLost(37)), 1);
        assert_eq!(count(&events, DbConnectError(Op::SpendLogsQueue)), 5);

        let new = format!(
            "{}18:33:50 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor: All connection attempts failed",
            spend_retries("transient DB error", 12)
        );
        let events = run_plain(pack(), &new);
        assert_eq!(
            count(&events, SpendBatchDropped),
            0,
            "1.108 re-queued the batch"
        );
        assert_eq!(count(&events, SpendRowsRequeued(12)), 1);
        assert!(!events.iter().any(|e| matches!(e.kind, SpendRowsLost(_))));

        // No hint in the file: the user's pin decides.
        let bare = "Error in spend logs queue monitor: All connection attempts failed";
        assert_eq!(count(&run_plain(pack(), bare), SpendBatchDropped), 1);
        let pinned = RulePack::builtin()
            .unwrap()
            .with_version_pin(VersionFamily::parse("1.110.2"));
        assert_eq!(count(&run_plain(&pinned, bare), SpendBatchDropped), 0);
        // A pin beats the file's own wording.
        let pinned_old = RulePack::builtin()
            .unwrap()
            .with_version_pin(Some(VersionFamily::V1_83));
        let events = run_plain(&pinned_old, &new);
        assert_eq!(count(&events, SpendBatchDropped), 1);
        assert_eq!(count(&events, SpendRowsLost(12)), 1);
    }

    #[test]
    fn rows_lost_on_exit_count_once_with_their_traceback() {
        let text = "\
Error flushing spend logs queue on shutdown: All connection attempts failed
Spend tracking - 4 spend log rows could not be written or parked in Redis and will be lost on exit
Traceback (most recent call last):
  File \"litellm/proxy/proxy_server.py\", line 970, in shutdown
    await flush()
httpx.ConnectError: All connection attempts failed";
        let events = run_plain(pack(), text);
        assert_eq!(
            kinds(&events),
            vec![DbConnectError(Op::SpendLogsQueue), SpendRowsLost(4)]
        );
    }

    #[test]
    fn an_engine_killed_then_reaped_is_one_restart_per_pid() {
        let text = "\
18:40:01 - LiteLLM Proxy:WARNING: utils.py:1 - Sent SIGTERM to prisma-query-engine PID 812 during reconnect.
18:40:03 - LiteLLM Proxy:WARNING: utils.py:1 - Sent SIGKILL to prisma-query-engine PID 812 (did not exit after SIGTERM).
18:40:03 - LiteLLM Proxy:WARNING: utils.py:1 - prisma-query-engine PID 812 is dead; reconnecting.
18:41:00 - LiteLLM Proxy:ERROR: utils.py:1 - prisma-query-engine PID 990 exited (waitpid thread); triggering reconnect.
18:41:30 - LiteLLM Proxy:INFO: utils.py:1 - Found prisma-query-engine PID 1200";
        let events = run_plain(pack(), text);
        assert_eq!(kinds(&events), vec![EngineRestart, EngineRestart]);
    }

    #[test]
    fn a_traceback_settles_when_another_stream_moves_on() {
        let pack = pack();
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        let lines: [(Stream, i64, &str); 4] = [
            (Stream::Stderr, 10, "Traceback (most recent call last):"),
            (
                Stream::Stderr,
                10,
                "httpx.ConnectError: All connection attempts failed",
            ),
            (
                Stream::Stdout,
                10,
                "INFO:     10.0.0.7:1 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
            ),
            (
                Stream::Stdout,
                12,
                "INFO:     10.0.0.7:2 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
            ),
        ];
        for (stream, sec, text) in lines {
            let record = Record {
                ts: Some(Timestamp(sec * SEC)),
                stream,
                text: text.as_bytes(),
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        }
        // The stderr traceback's event came out before the 12 s request, not
        // at the next stderr line (which never came).
        assert_eq!(
            kinds(&events),
            vec![RequestServed, DbConnectError(Op::Other), RequestServed]
        );
        assert_eq!(events[1].ts, Some(Timestamp(10 * SEC)));
    }

    #[test]
    fn version_families_parse_from_release_strings() {
        assert_eq!(VersionFamily::parse("1.83.14"), Some(VersionFamily::V1_83));
        assert_eq!(VersionFamily::parse("1.83"), Some(VersionFamily::V1_83));
        assert_eq!(
            VersionFamily::parse("v1.108.7"),
            Some(VersionFamily::V1_108)
        );
        assert_eq!(VersionFamily::parse("1.110.2"), Some(VersionFamily::V1_108));
        assert_eq!(VersionFamily::parse("2.0"), Some(VersionFamily::V1_108));
        assert_eq!(VersionFamily::parse("latest"), None);
        assert_eq!(VersionFamily::parse("1.x"), None);
    }

    #[test]
    fn pack_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RulePack>();
    }

    #[test]
    fn trailing_newline_does_not_end_a_text_fold() {
        // Records that still carry their `\n` must fold like bare lines.
        let pack = pack();
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        for line in include_str!("../../tests/fixtures/classify/two_spend_failures.log")
            .split_inclusive('\n')
        {
            let record = Record {
                ts: None,
                stream: Stream::Stdout,
                text: line.as_bytes(),
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        }
        pack.finish(&mut state, &mut |e| events.push(e));
        assert_eq!(count(&events, DbConnectError(Op::Other)), 0, "{events:?}");
        assert_eq!(count(&events, SpendBatchDropped), 2);
    }

    #[test]
    fn builtin_pack_compiles_with_unique_ids() {
        let pack = pack();
        assert!(pack.len() >= 20, "{} rules", pack.len());
        assert!(!pack.is_empty());
        let mut ids: Vec<&str> = pack.ids().collect();
        assert_eq!(ids[0], "provider_connection_error");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), pack.len());
        assert!(RulePack::builtin_source().starts_with("# litellm-sentinel built-in rule pack"));
    }

    #[test]
    fn seed_six_error_lines() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/seed_six_errors.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![
                EngineDistroFallback,
                EngineDistroFallback,
                ProcessStarted { parent: false },
                ProxyAccepting,
                ProxyListening,
                DbConnectError(Op::Other),
                DbConnectError(Op::GetGenericData),
                SpendBatchDropped,
                DbConnectError(Op::SpendLogsQueue),
                BudgetCacheMiss,
                ConfigLoadFailure(ConfigKind::Deployments),
                DbConnectError(Op::AddDeployment),
                ConfigLoadFailure(ConfigKind::Credentials),
                DbConnectError(Op::GetCredentials),
            ]
        );
        // Events carry the timestamp of their own line.
        assert_eq!(events[4].ts, Some(Timestamp(7 * SEC)));
        assert_eq!(events[13].ts, Some(Timestamp(13 * SEC)));
    }

    #[test]
    fn seed_excerpts_fold_file_lines_and_error_line() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/seed_excerpts.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![
                SpendBatchDropped,
                DbConnectError(Op::SpendLogsQueue),
                BudgetCacheMiss,
                DbConnectError(Op::BudgetLookup),
                RequestServed,
            ]
        );
        // The budget line has no wording; its folded `Error:` line (line 4) does.
        assert_eq!(events[3].ts, Some(Timestamp(4 * SEC)));
    }

    #[test]
    fn full_spend_queue_traceback_is_one_batch_and_one_error() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/spend_queue_traceback.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![
                SpendBatchDropped,
                DbConnectError(Op::SpendLogsQueue),
                RequestServed
            ]
        );
        assert_eq!(events[0].ts, Some(Timestamp(0)));
    }

    #[test]
    fn retries_then_monitor_error_report_logs_count_once() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/spend_queue_retries_1_83.log"),
        );
        let retry = DbConnectError(Op::SpendLogsQueue);
        assert_eq!(
            kinds(&events),
            vec![
                retry,
                RequestServed,
                retry,
                retry,
                RequestServed,
                retry,
                SpendBatchDropped,
                SpendRowsLost(37),
                DbConnectError(Op::SpendLogsQueue),
                // The second batch had no retry lines: its rows are unknown.
                SpendBatchDropped,
                DbConnectError(Op::SpendLogsQueue),
            ]
        );
    }

    #[test]
    fn json_logs_give_the_same_events_as_text() {
        let events = run_json(
            pack(),
            include_str!("../../tests/fixtures/classify/spend_queue_json_logs.log"),
        );
        let retry = DbConnectError(Op::SpendLogsQueue);
        assert_eq!(
            kinds(&events),
            vec![
                EngineDistroFallback,
                ProxyListening,
                retry,
                RequestServed,
                retry,
                retry,
                retry,
                SpendBatchDropped,
                SpendRowsLost(12),
                DbConnectError(Op::SpendLogsQueue),
                ConfigLoadFailure(ConfigKind::Credentials),
                DbConnectError(Op::GetCredentials),
                BudgetCacheMiss,
                DbConnectError(Op::BudgetLookup),
                SpendUpdatesFailed,
                DbConnectError(Op::UpdateSpend),
                RequestServed,
            ]
        );
    }

    #[test]
    fn apscheduler_update_spend_failure_is_one_update_spend_error() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/update_spend_job.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![SpendUpdatesFailed, DbConnectError(Op::UpdateSpend)]
        );
        // The header has no wording; the first wording is on line 15.
        assert_eq!(events[1].ts, Some(Timestamp(15 * SEC)));
    }

    #[test]
    fn standalone_traceback_counts_other_once_before_the_next_line() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/standalone_traceback.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![DbConnectError(Op::Other), RequestServed]
        );
        assert_eq!(events[0].ts, Some(Timestamp(6 * SEC)));
    }

    #[test]
    fn standalone_traceback_at_end_of_input_needs_finish() {
        let pack = pack();
        let text = include_str!("../../tests/fixtures/classify/standalone_traceback.log");
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        for line in text.lines().take(7) {
            let record = Record {
                ts: None,
                stream: Stream::Stderr,
                text: line.as_bytes(),
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        }
        assert!(events.is_empty());
        assert!(state.has_open_fold());
        pack.finish(&mut state, &mut |e| events.push(e));
        pack.finish(&mut state, &mut |e| events.push(e));
        assert_eq!(kinds(&events), vec![DbConnectError(Op::Other)]);
        assert!(!state.has_open_fold());
    }

    #[test]
    fn two_consecutive_spend_failures_are_two_batches() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/two_spend_failures.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![
                SpendBatchDropped,
                DbConnectError(Op::SpendLogsQueue),
                SpendBatchDropped,
                DbConnectError(Op::SpendLogsQueue),
            ]
        );
    }

    #[test]
    fn line_right_after_a_fold_is_still_classified() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/fold_then_error.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![
                ConfigLoadFailure(ConfigKind::Deployments),
                DbConnectError(Op::AddDeployment),
                ConfigLoadFailure(ConfigKind::Credentials),
                DbConnectError(Op::GetCredentials),
                BudgetCacheMiss,
                DbConnectError(Op::BudgetLookup),
                DbConnectError(Op::GetGenericData),
            ]
        );
    }

    #[test]
    fn access_lines_count_2xx_non_probe_requests_only() {
        let text = include_str!("../../tests/fixtures/classify/access_lines.log");
        let events = run_plain(pack(), text);
        assert!(events.iter().all(|e| e.kind == RequestServed));
        let served: Vec<i64> = events
            .iter()
            .filter_map(|e| e.ts)
            .map(|t| t.0 / SEC)
            .collect();
        // Lines 0-4 (2xx API calls, HTTP/1.0 too), 18 (JSON mode), 21.
        assert_eq!(served, vec![0, 1, 2, 3, 4, 18, 21]);
    }

    #[test]
    fn look_alikes_count_nothing_but_database_failures_count_as_database() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/lookalikes.log"),
        );
        // Provider and cost-map connection errors count nothing; the
        // database's own failures (P1001, P1000, pool timeout) are
        // `operation="database"`, never the engine start-up.
        assert_eq!(kinds(&events), vec![DbConnectError(Op::Database); 3]);
    }

    #[test]
    fn prefixed_1_83_line_without_ansi() {
        let line = "18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor: All connection attempts failed";
        let events = run_plain(pack(), line);
        assert_eq!(
            kinds(&events),
            vec![SpendBatchDropped, DbConnectError(Op::SpendLogsQueue)]
        );
    }

    #[test]
    fn newer_litellm_spend_wordings() {
        let events = run_plain(
            pack(),
            include_str!("../../tests/fixtures/classify/v1_108_spend.log"),
        );
        assert_eq!(
            kinds(&events),
            vec![
                DbConnectError(Op::SpendLogsQueue),
                DbConnectError(Op::SpendLogsQueue),
                SpendRowsRequeued(2),
                DbConnectError(Op::UpdateSpend),
                DbConnectError(Op::Other),
                // The shutdown flush is no loss of its own: the next line is.
                DbConnectError(Op::SpendLogsQueue),
                SpendRowsLost(4),
                SpendRowsLost(17),
                EngineDistroFallback,
            ]
        );
    }

    #[test]
    fn folds_are_per_stream() {
        let pack = pack();
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        let lines: [(Stream, &str); 6] = [
            (Stream::Stderr, "Error in spend logs queue monitor: boom"),
            (Stream::Stderr, "Traceback (most recent call last):"),
            (
                Stream::Stdout,
                "INFO:     10.0.0.7:1 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
            ),
            (
                Stream::Stderr,
                "  File \"litellm/proxy/utils.py\", line 3880, in update_spend_logs",
            ),
            (
                Stream::Stdout,
                "INFO:     10.0.0.7:2 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
            ),
            (
                Stream::Stderr,
                "httpx.ConnectError: All connection attempts failed",
            ),
        ];
        for (stream, line) in lines {
            let record = Record {
                ts: None,
                stream,
                text: line.as_bytes(),
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        }
        pack.finish(&mut state, &mut |e| events.push(e));
        assert_eq!(
            kinds(&events),
            vec![
                SpendBatchDropped,
                RequestServed,
                RequestServed,
                DbConnectError(Op::SpendLogsQueue)
            ]
        );
    }

    #[test]
    fn multi_line_record_settles_its_traceback_at_record_end() {
        let pack = pack();
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        let text = b"Exception in ASGI application\nTraceback (most recent call last):\n  File \"x.py\", line 1, in f\n    g()\nprisma.engine.errors.EngineConnectionError: Could not connect to the query engine";
        let record = Record {
            ts: Some(Timestamp(5)),
            stream: Stream::Stderr,
            text,
        };
        pack.classify(&mut state, &record, &mut |e| events.push(e));
        assert_eq!(
            events,
            vec![Event {
                ts: Some(Timestamp(5)),
                kind: DbConnectError(Op::Other),
                rule: None,
            }]
        );
        assert!(!state.has_open_fold());
    }

    #[test]
    fn remembered_rows_expire_and_are_used_once() {
        let pack = pack();
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        let mut feed = |secs: i64, line: &str, events: &mut Vec<Event>| {
            let record = Record {
                ts: Some(Timestamp(secs * SEC)),
                stream: Stream::Stdout,
                text: line.as_bytes(),
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        };
        feed(0, "Spend tracking - DB connection error writing spend logs, retry 4/3. logs_count=9, error=x", &mut events);
        feed(400, "Error in spend logs queue monitor: x", &mut events);
        feed(401, "Spend tracking - DB connection error writing spend logs, retry 4/3. logs_count=99999999999999999999999, error=x", &mut events);
        feed(402, "Error in spend logs queue monitor: x", &mut events);
        assert_eq!(kinds(&events), vec![SpendBatchDropped, SpendBatchDropped]);
    }

    #[test]
    fn state_survives_a_checkpoint_mid_traceback() {
        let pack = pack();
        let text = include_str!("../../tests/fixtures/classify/spend_queue_retries_1_83.log");
        let whole = run_plain(pack, text);
        for cut in 1..text.lines().count() {
            let mut state = ClassifyState::default();
            let mut events = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if i == cut {
                    let saved = serde_json::to_string(&state).expect("serializes");
                    state = serde_json::from_str(&saved).expect("deserializes");
                }
                let record = Record {
                    ts: Some(Timestamp(i as i64 * SEC)),
                    stream: Stream::Unknown,
                    text: line.as_bytes(),
                };
                pack.classify(&mut state, &record, &mut |e| events.push(e));
            }
            pack.finish(&mut state, &mut |e| events.push(e));
            assert_eq!(events, whole, "cut at line {cut}");
        }
    }

    #[test]
    fn messy_bytes_do_not_confuse_matching() {
        let pack = pack();
        let mut state = ClassifyState::default();
        let mut events = Vec::new();
        let inputs: [&[u8]; 5] = [
            b"\xff\xfeBudget lookup failed for \xc3\x28; cache will not be populated. Error: All connection attempts failed.\r",
            b"INFO:     10.0.0.7:1 - \"GET /v1/\xff\xfe HTTP/1.1\" 200 OK",
            b"Error in spend logs queue monitor: All connection attempts fai",
            b"",
            b"\x00\x00\x00",
        ];
        for text in inputs {
            let record = Record {
                ts: None,
                stream: Stream::Unknown,
                text,
            };
            pack.classify(&mut state, &record, &mut |e| events.push(e));
        }
        assert_eq!(
            kinds(&events),
            vec![
                BudgetCacheMiss,
                DbConnectError(Op::BudgetLookup),
                RequestServed,
                SpendBatchDropped, // truncated: no wording, no DB error
            ]
        );
        assert_eq!(count(&events, SpendRowsLost(0)), 0);
    }

    #[test]
    fn uvicorn_lifespan_traceback_is_unattributed() {
        let text = "ERROR:    Traceback (most recent call last):\n\
                    \x20 File \"/usr/lib/python3.13/site-packages/starlette/routing.py\", line 694, in lifespan\n\
                    \x20   async with self.lifespan_context(app) as maybe_state:\n\
                    prisma.engine.errors.EngineConnectionError: Could not connect to the query engine\n\
                    \n\
                    ERROR:    Application startup failed. Exiting.";
        let events = run_plain(pack(), text);
        assert_eq!(kinds(&events), vec![DbConnectError(Op::Other)]);
        assert_eq!(events[0].ts, Some(Timestamp(3 * SEC)));
    }

    #[test]
    fn update_spend_logs_header_but_not_its_frames() {
        let text = "litellm.proxy.utils.py::update_spend_logs() - All connection attempts failed\n\
                    \x20 File \"/usr/lib/python3.13/site-packages/litellm/proxy/utils.py\", line 3880, in update_spend_logs\n\
                    \x20   await ProxyUpdateSpend.update_spend_logs(\n\
                    httpx.ConnectError: All connection attempts failed";
        let events = run_plain(pack(), text);
        assert_eq!(kinds(&events), vec![DbConnectError(Op::SpendLogsQueue)]);
    }

    #[test]
    fn scan_sees_partially_overlapping_literals() {
        // `monitor: All conn` starts inside a built-in literal and the wording
        // starts inside it: all three must be seen on one line.
        let user = "[[rule]]\nid = \"overlap\"\ncontains = \"monitor: All conn\"\nemit = [\"db_connect_error\"]\noperation = \"other\"\n";
        let pack = RulePack::with_user_pack(user, "overlap.toml").expect("compiles");
        let events = run_plain(
            &pack,
            "Error in spend logs queue monitor: All connection attempts failed",
        );
        assert_eq!(kinds(&events), vec![DbConnectError(Op::Other)]);
    }

    #[test]
    fn huge_line_with_repeated_literals_stays_linear() {
        // 80,000 candidates whose regex fails: each literal is judged once.
        let line = "Budget lookup failed for x ".repeat(80_000)
            + "httpx.ConnectError: All connection attempts failed";
        let start = std::time::Instant::now();
        let events = run_plain(pack(), &line);
        assert_eq!(kinds(&events), vec![DbConnectError(Op::Other)]);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn access_line_parser() {
        let parse = |l: &[u8]| {
            parse_access_line(l).map(|a| (String::from_utf8_lossy(a.path).into_owned(), a.status))
        };
        assert_eq!(
            parse(b"INFO:     10.0.0.7:46642 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"),
            Some(("/v1/chat/completions".to_owned(), *b"200"))
        );
        assert_eq!(
            parse(b"10.0.0.7:46642 - \"GET /health/readiness HTTP/1.1\" 503"),
            Some(("/health/readiness".to_owned(), *b"503"))
        );
        for not_access in [
            &b"HTTP Request: POST http://ollama:11434/api/chat \"HTTP/1.1 200 OK\""[..],
            b"10.0.0.7:1 - \"POST /x HTTP/1.1\" 20",
            b"10.0.0.7:1 - \"POST /x HTTP/1.1\" 2000",
            b"10.0.0.7:1 - \"post /x HTTP/1.1\" 200",
            b"10.0.0.7:1 - \"POST /x\" 200",
            b"10.0.0.7:1 - \"POST /x HTTP/1.1",
        ] {
            assert_eq!(
                parse(not_access),
                None,
                "{}",
                String::from_utf8_lossy(not_access)
            );
        }
    }

    // ----- user packs -------------------------------------------------------

    const USER_PACK: &str = r#"
[connection_failure]
contains = ["Engine is still warming up"]

[[rule]]
id = "hypercorn_listening"
description = "We run LiteLLM under hypercorn."
contains = "Hypercorn running on"
emit = ["proxy_listening"]

[[rule]]
id = "budget_lookup_failed"
description = "Override: count the miss, not the DB error."
pattern = "Budget lookup failed for"
emit = ["budget_cache_miss"]

[[rule]]
id = "gunicorn_listening"
emit = ["proxy_listening"]
contains = "Listening at: http"
enabled = false

[[rule]]
id = "warming"
contains = "query engine warming"
emit = ["db_connect_error"]
operation = "other"
"#;

    #[test]
    fn user_pack_overrides_adds_and_disables_rules() {
        let builtin = pack();
        let pack = RulePack::with_user_pack(USER_PACK, "/etc/litellm-sentinel/rules.toml")
            .expect("user pack compiles");
        assert_eq!(pack.len(), builtin.len() + 2 - 1);
        let ids: Vec<&str> = pack.ids().collect();
        assert_eq!(&ids[..2], ["hypercorn_listening", "warming"]);
        assert!(!ids.contains(&"gunicorn_listening"));
        let events = run_plain(
            &pack,
            "Hypercorn running on http://0.0.0.0:4000 (CTRL + C to quit)\n\
             Budget lookup failed for user; cache will not be populated. Error: All connection attempts failed.\n\
             [INFO] Listening at: http://0.0.0.0:4000 (1)\n\
             query engine warming: Engine is still warming up\n\
             query engine warming: not yet",
        );
        assert_eq!(
            kinds(&events),
            vec![ProxyListening, BudgetCacheMiss, DbConnectError(Op::Other)]
        );
    }

    fn user_error(toml: &str) -> String {
        match RulePack::with_user_pack(toml, "/etc/x.toml") {
            Ok(_) => panic!("pack should be rejected:\n{toml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_user_packs_are_rejected_naming_the_rule() {
        let bad_regex = user_error("[[rule]]\nid = \"budget_miss\"\ncontains = \"Budget\"\npattern = '(unclosed'\nemit = [\"budget_cache_miss\"]\n");
        assert!(
            bad_regex
                .starts_with("rule `budget_miss` (user pack /etc/x.toml): bad regex in `pattern`"),
            "{bad_regex}"
        );

        let unknown_key = user_error(
            "[[rule]]\nid = \"typo\"\ncontains = \"Budget\"\nemits = [\"budget_cache_miss\"]\n",
        );
        assert!(
            unknown_key.starts_with("rule `typo` (user pack /etc/x.toml): "),
            "{unknown_key}"
        );
        assert!(unknown_key.contains("emits"), "{unknown_key}");

        let unknown_event = user_error(
            "[[rule]]\nid = \"ev\"\ncontains = \"Budget\"\nemit = [\"budget_cache_mis\"]\n",
        );
        assert_eq!(
            unknown_event,
            "rule `ev` (user pack /etc/x.toml): unknown event `budget_cache_mis` in `emit`"
        );

        let duplicate = user_error(
            "[[rule]]\nid = \"dup\"\ncontains = \"abcd\"\nemit = [\"suppress\"]\n\
             [[rule]]\nid = \"dup\"\ncontains = \"efgh\"\nemit = [\"suppress\"]\n",
        );
        assert_eq!(
            duplicate,
            "rule `dup` (user pack /etc/x.toml): duplicate id in this pack"
        );

        let no_operation = user_error(
            "[[rule]]\nid = \"op\"\ncontains = \"abcd\"\nemit = [\"db_connect_error\"]\n",
        );
        assert!(
            no_operation.contains("rule `op`") && no_operation.contains("needs `operation`"),
            "{no_operation}"
        );

        let short =
            user_error("[[rule]]\nid = \"short\"\ncontains = \"ab\"\nemit = [\"suppress\"]\n");
        assert!(
            short.contains("rule `short`") && short.contains("shorter than 4"),
            "{short}"
        );

        let no_group = user_error(
            "[[rule]]\nid = \"rows\"\ncontains = \"lost rows\"\nemit = [\"spend_rows_lost\"]\n",
        );
        assert!(
            no_group.contains("rule `rows`") && no_group.contains("(?P<n>"),
            "{no_group}"
        );

        let no_literal =
            user_error("[[rule]]\nid = \"lit\"\npattern = 'a.*b'\nemit = [\"suppress\"]\n");
        assert!(
            no_literal.contains("rule `lit`") && no_literal.contains("`contains` is required"),
            "{no_literal}"
        );

        let missing_id = user_error("[[rule]]\ncontains = \"abcd\"\nemit = [\"suppress\"]\n");
        assert!(
            missing_id.starts_with("rule `#1` (user pack /etc/x.toml): "),
            "{missing_id}"
        );

        let top_level = user_error("[rules]\nx = 1\n");
        assert!(
            top_level.starts_with("user pack /etc/x.toml: not a valid rule pack"),
            "{top_level}"
        );

        let access = user_error("[[rule]]\nid = \"acc\"\ncontains = \"HTTP/1.1\"\naccess_status = \"200\"\nemit = [\"request_served\"]\n");
        assert!(
            access.contains("rule `acc`") && access.contains("status class"),
            "{access}"
        );

        let mixed_suppress = user_error("[[rule]]\nid = \"mix\"\ncontains = \"abcd\"\nemit = [\"suppress\", \"proxy_listening\"]\n");
        assert!(mixed_suppress.contains("only entry"), "{mixed_suppress}");
    }

    #[test]
    fn same_id_twice_in_the_builtin_style_is_an_error_even_across_packs_only_when_within_one() {
        // Overriding a built-in id is fine; only a pack repeating its own id fails.
        let ok = "[[rule]]\nid = \"proxy_listening\"\ncontains = \"Uvicorn running on \"\nemit = [\"proxy_listening\"]\n";
        assert!(RulePack::with_user_pack(ok, "ok.toml").is_ok());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn contains_any(pack: &RulePack, line: &[u8]) -> bool {
            pack.literals.is_match(line)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
                let pack = pack();
                let mut state = ClassifyState::default();
                for text in &records {
                    let record = Record { ts: None, stream: Stream::Stdout, text };
                    pack.classify(&mut state, &record, &mut |_| {});
                }
                pack.finish(&mut state, &mut |_| {});
            }

            #[test]
            fn lines_without_a_rule_literal_emit_nothing(
                lines in proptest::collection::vec(
                    prop_oneof![
                        "[ -~]{0,120}",
                        Just("Traceback (most recent call last):".to_owned()),
                        Just("  File \"x.py\", line 1, in f".to_owned()),
                        Just("httpx.ConnectError: boom".to_owned()),
                        Just("Error: All connection attempts fail".to_owned()),
                        Just(String::new()),
                    ],
                    0..30,
                )
            ) {
                let pack = pack();
                let mut state = ClassifyState::default();
                let mut events = Vec::new();
                for line in lines.iter().filter(|l| !contains_any(pack, l.as_bytes())) {
                    let record = Record { ts: None, stream: Stream::Unknown, text: line.as_bytes() };
                    pack.classify(&mut state, &record, &mut |e| events.push(e));
                }
                pack.finish(&mut state, &mut |e| events.push(e));
                prop_assert!(events.is_empty(), "{events:?}");
            }

            #[test]
            fn known_lines_survive_random_surroundings(prefix in "[ -~]{0,40}", suffix in "[ -~]{0,40}") {
                // A header embedded in arbitrary text still counts exactly one batch.
                let pack = pack();
                let line = format!("{prefix}Error in spend logs queue monitor: All connection attempts failed{suffix}");
                let events = run_plain(pack, &line);
                prop_assert_eq!(count(&events, SpendBatchDropped), 1);
            }
        }
    }
}

/// Throughput check: `cargo test --release --lib classify::rules::throughput -- --ignored --nocapture`.
#[cfg(test)]
mod throughput {
    use super::*;

    fn corpus(access_share_percent: usize) -> Vec<u8> {
        let quiet = [
            "18:33:49 - LiteLLM Proxy:INFO: proxy_server.py:4012 - Request received for model=gpt-4o-mini, user_api_key_alias=team-search-prod, call_id=6f1c2a0e-9b7d-4c55-8a7e-1b2f3c4d5e6f",
            "18:33:49 - LiteLLM:DEBUG: utils.py:4410 - model_info: {'key': 'gpt-4o-mini', 'max_tokens': 16384, 'input_cost_per_token': 1.5e-07, 'output_cost_per_token': 6e-07}",
            "18:33:50 - LiteLLM Router:INFO: router.py:1085 - litellm.acompletion(model=azure/gpt-4o-mini-eu) 200 OK",
        ];
        let access = "INFO:     10.0.0.7:46642 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK";
        let mut out = Vec::new();
        let mut i = 0usize;
        while out.len() < 64 << 20 {
            let line = if i % 100 < access_share_percent {
                access
            } else if i % 1000 == 999 {
                "Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed."
            } else {
                quiet[i % quiet.len()]
            };
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            i += 1;
        }
        out
    }

    #[test]
    #[ignore = "timing; run in release"]
    fn throughput() {
        let pack = RulePack::builtin().expect("compiles");
        for share in [0, 20, 50] {
            let data = corpus(share);
            let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
            let start = std::time::Instant::now();
            let mut state = ClassifyState::default();
            let mut n = 0u64;
            for &line in &lines {
                let record = Record {
                    ts: None,
                    stream: Stream::Stdout,
                    text: line,
                };
                pack.classify(&mut state, &record, &mut |_| n += 1);
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "access {share:>2}%: {:.0} MB/s ({n} events)",
                data.len() as f64 / secs / 1e6
            );
        }
    }
}
