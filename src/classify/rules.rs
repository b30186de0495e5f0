//! The rule pack: TOML rules compiled into one literal prefilter.
//!
//! Every rule names literals (`contains`); all literals of all rules plus
//! the connection-failure wordings go into one Aho-Corasick automaton. A
//! line that contains none of them — about 99% of a LiteLLM log — costs one
//! SIMD scan and no allocation. Only lines with a literal hit run the rules'
//! regexes, and only the winning rule (the first in pack order) runs its
//! captures. The pack format is documented at the top of `rules/litellm.toml`.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use super::fold::{self, Fold, FoldOwner};
use super::{ConfigKind, Event, EventKind, Operation};
use crate::format::{Record, Stream};
use crate::time::Timestamp;

const BUILTIN_SOURCE: &str = include_str!("../../rules/litellm.toml");
const BUILTIN_ORIGIN: &str = "built-in pack";
/// Shorter literals would make most lines candidates and defeat the prefilter.
const MIN_LITERAL_LEN: usize = 4;
/// A remembered `logs_count` older than this belongs to some other batch.
const REMEMBERED_ROWS_MAX_AGE_NANOS: i64 = 300 * 1_000_000_000;
/// The capture group that carries a row count.
const ROWS_GROUP: &str = "n";

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
    rows: Option<String>,
    #[serde(default)]
    remember_rows: bool,
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
}

/// A rule ready for matching.
#[derive(Debug)]
struct CompiledRule {
    id: String,
    literals: Vec<Vec<u8>>,
    pattern: Option<Regex>,
    unless: Option<Regex>,
    actions: Vec<Action>,
    remember_rows: bool,
    fold: bool,
    suppress: bool,
    /// Whether any action needs the `n` capture.
    needs_rows: bool,
}

impl CompiledRule {
    /// The rule's regex conditions (its literal has already been seen).
    fn accepts(&self, line: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.is_match(line))
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
        let caps = self.pattern.as_ref()?.captures(line)?;
        parse_u64(caps.name(ROWS_GROUP)?.as_bytes())
    }
}

/// A rule pack compiled for matching: immutable, shared by all files.
#[derive(Debug)]
pub struct RulePack {
    rules: Vec<CompiledRule>,
    /// Leftmost-first automaton: the fast "any literal at all?" test (SIMD).
    any_literal: AhoCorasick,
    /// Standard automaton: every (overlapping) literal of a candidate line.
    all_literals: AhoCorasick,
    /// Per literal: the rules that name it, in priority order.
    literal_rules: Vec<Vec<u32>>,
    /// Per literal: whether it is a connection-failure wording.
    literal_is_wording: Vec<bool>,
}

/// Per-stream state: the open fold and the remembered spend row count.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct StreamState {
    #[serde(default)]
    fold: Option<Fold>,
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
}

impl ClassifyState {
    fn stream_mut(&mut self, stream: Stream) -> &mut StreamState {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
            Stream::Unknown => &mut self.unknown,
        }
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
        let (rules, wordings) = parse_pack(BUILTIN_SOURCE, BUILTIN_ORIGIN)?;
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
        RulePack::compile(added, wordings, &user_origin)
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

    /// Classifies one record: each `\n`-separated line in turn, with the
    /// record's timestamp. A fold opened inside a multi-line record (a JSON
    /// message with its traceback) ends with the record.
    pub fn classify<F: FnMut(Event)>(
        &self,
        state: &mut ClassifyState,
        record: &Record<'_>,
        emit: &mut F,
    ) {
        let stream = state.stream_mut(record.stream);
        let text = record.text;
        if memchr::memchr(b'\n', text).is_none() {
            self.classify_line(stream, record.ts, trim_cr(text), emit);
            return;
        }
        for line in text.split(|&b| b == b'\n') {
            self.classify_line(stream, record.ts, trim_cr(line), emit);
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
        ts: Option<Timestamp>,
        line: &[u8],
        emit: &mut F,
    ) {
        if let Some(open) = stream.fold.as_mut() {
            if open.advance(fold::shape(line)) {
                self.fold_line(open, ts, line, emit);
                return;
            }
            close_fold(stream, emit);
        }
        if fold::opens_unattributed(line) {
            let mut open = Fold::unattributed();
            self.fold_line(&mut open, ts, line, emit);
            stream.fold = Some(open);
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
        let mut counted = false;
        for action in &rule.actions {
            let kind = match *action {
                Action::DbConnectError(op) if scan.has_wording && !counted => {
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
            emit(Event { ts, kind });
        }
        if rule.remember_rows {
            if let Some(rows) = rows {
                stream.remembered_rows = Some(RememberedRows { rows, ts });
            }
        }
        if rule.fold {
            stream.fold = Some(Fold::after_header(rule.fold_owner(), counted));
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
    fn scan(&self, line: &[u8]) -> LineScan {
        let mut scan = LineScan::default();
        if !self.any_literal.is_match(line) {
            return scan;
        }
        let Ok(matches) = self.all_literals.try_find_overlapping_iter(line) else {
            return scan; // unreachable: the automaton is built with MatchKind::Standard
        };
        for found in matches {
            let literal = found.pattern().as_usize();
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
        scan
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
        let build = |kind: MatchKind| {
            AhoCorasick::builder()
                .match_kind(kind)
                .build(&literals)
                .map_err(|e| RuleError::Matcher {
                    origin: origin.to_owned(),
                    message: e.to_string(),
                })
        };
        Ok(RulePack {
            any_literal: build(MatchKind::LeftmostFirst)?,
            all_literals: build(MatchKind::Standard)?,
            rules,
            literal_rules,
            literal_is_wording,
        })
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

/// Parses and checks one pack; returns its enabled rules (in order) and wordings.
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
        let compiled = compile_rule(&rule).map_err(fail)?;
        if rule.enabled {
            rules.push(compiled);
        }
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
            "proxy_listening" => Action::Event(EventKind::ProxyListening),
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
        actions,
        remember_rows: spec.remember_rows,
        fold: spec.fold,
        suppress,
        needs_rows,
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
