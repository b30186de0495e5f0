//! The rule pack's schema and its compilation: TOML rules (the built-in
//! `rules/litellm.toml`, optionally extended or overridden by a user pack)
//! checked and compiled into [`RulePack`]'s rules and literal automata.
//! The pack format is documented at the top of `rules/litellm.toml`.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use super::access::AccessFilter;
use super::fold::FoldOwner;
use super::matcher::RulePack;
use super::prefilter::BufferPrefilter;
use super::{ConfigKind, EventKind, Operation, VersionFamily};

pub(super) const BUILTIN_SOURCE: &str = include_str!("../../rules/litellm.toml");

pub(super) const BUILTIN_ORIGIN: &str = "built-in pack";

/// Shorter literals would make most lines candidates and defeat the prefilter.
pub(super) const MIN_LITERAL_LEN: usize = 4;

/// The capture group that carries a row count.
pub(super) const ROWS_GROUP: &str = "n";

/// The capture group that carries a query-engine PID (`engine_restart`).
pub(super) const PID_GROUP: &str = "pid";

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
pub(super) struct PackSpec {
    #[serde(default)]
    connection_failure: Option<WordingSpec>,
    /// Kept as raw tables so a rule's errors can name its id.
    #[serde(default)]
    rule: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WordingSpec {
    contains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleSpec {
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

pub(super) fn default_true() -> bool {
    true
}

/// Where a row count comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowsSource {
    /// The rule's `(?P<n>…)` group.
    Captured,
    /// The stream's remembered count (1.83 retry lines), used once.
    Remembered,
}

/// One thing a matching rule does, in `emit` order.
#[derive(Clone, Copy, Debug)]
pub(super) enum Action {
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

/// A rule ready for matching.
#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) id: String,
    pub(super) literals: Vec<Vec<u8>>,
    pub(super) pattern: Option<Regex>,
    pub(super) unless: Option<Regex>,
    pub(super) access: Option<AccessFilter>,
    pub(super) actions: Vec<Action>,
    pub(super) remember_rows: bool,
    /// A line only this LiteLLM family logs: it sets the file's version.
    pub(super) sets_version: Option<VersionFamily>,
    /// Seconds within which the same row count from this rule is the same loss.
    pub(super) repeat_window_secs: u64,
    pub(super) fold: bool,
    pub(super) suppress: bool,
    /// Whether the pattern has a `pid` group (engine restarts dedupe by it).
    pub(super) has_pid_group: bool,
    /// Whether any action needs the `n` capture.
    pub(super) needs_rows: bool,
    /// `enabled = false`: the rule only removes a built-in rule of its id.
    pub(super) enabled: bool,
}

impl CompiledRule {
    /// The rule's regex conditions (its literal has already been seen).
    pub(super) fn accepts(&self, line: &[u8]) -> bool {
        self.access.as_ref().is_none_or(|a| a.accepts(line))
            && self.pattern.as_ref().is_none_or(|p| p.is_match(line))
            && self.unless.as_ref().is_none_or(|u| !u.is_match(line))
    }

    /// The owner of the fold this rule's header opens.
    pub(super) fn fold_owner(&self) -> FoldOwner {
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
    pub(super) fn captured_rows(&self, line: &[u8]) -> Option<u64> {
        self.captured(line, ROWS_GROUP)
    }

    /// A numeric named group of the pattern, if the line has one.
    pub(super) fn captured(&self, line: &[u8], group: &str) -> Option<u64> {
        let caps = self.pattern.as_ref()?.captures(line)?;
        parse_u64(caps.name(group)?.as_bytes())
    }
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
    pub(crate) fn with_user_pack(user_toml: &str, origin: &str) -> Result<RulePack, RuleError> {
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

    /// The built-in pack's TOML, for `litellm-sentinel rules`.
    pub fn builtin_source() -> &'static str {
        BUILTIN_SOURCE
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
        // A full DFA: the pack has more literals than Teddy takes, and the
        // default (a contiguous NFA) was the largest share of `report`'s
        // time on busy proxies (every access line during a gap is scanned).
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
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
        let matcher_error = |message| RuleError::Matcher {
            origin: origin.to_owned(),
            message,
        };
        let buffer = BufferPrefilter::build(&literals).map_err(matcher_error)?;
        // Without the literals only request-served rules name (the access
        // lines, most of a busy proxy's hits): for pods where a request
        // changes nothing (see `crate::pipeline`).
        let only_requests = |at: usize| {
            !literal_is_wording[at]
                && literal_rules[at].iter().all(|&r| {
                    matches!(
                        rules[r as usize].actions[..],
                        [Action::Event(EventKind::RequestServed)]
                    )
                })
        };
        let without: Vec<Vec<u8>> = (0..literals.len())
            .filter(|&at| !only_requests(at))
            .map(|at| literals[at].clone())
            .collect();
        let buffer_without_requests = BufferPrefilter::build(&without).map_err(matcher_error)?;
        Ok(RulePack {
            buffer,
            buffer_without_requests,
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

/// Decimal digits to a number; `None` when empty, not digits, or too large.
pub(super) fn parse_u64(digits: &[u8]) -> Option<u64> {
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
pub(super) fn parse_pack(
    source: &str,
    origin: &str,
) -> Result<(Vec<CompiledRule>, Vec<Vec<u8>>), RuleError> {
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

/// Checks one rule and compiles its regexes. The checks run in a fixed
/// order, so a rule with several mistakes always reports the same one.
pub(super) fn compile_rule(spec: &RuleSpec) -> Result<CompiledRule, RuleProblem> {
    check_id(&spec.id)?;
    let pattern = compile_regex("pattern", spec.pattern.as_deref())?;
    let unless = compile_regex("unless", spec.unless.as_deref())?;
    let literals = rule_literals(spec)?;
    let operation = parse_operation(spec.operation.as_deref())?;
    let config = parse_config(spec.config.as_deref())?;
    let rows = parse_rows(spec.rows.as_deref())?;
    let access = access_filter(spec)?;
    let has_rows_group = pattern
        .as_ref()
        .is_some_and(|p| p.capture_names().any(|n| n == Some(ROWS_GROUP)));
    let (actions, suppress) = emit_actions(&spec.emit, operation, config, rows)?;
    let needs_rows = needs_rows(spec.remember_rows, &actions)?;
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
    let sets_version = parse_sets_version(spec.sets_version.as_deref())?;
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

/// A rule id is letters, digits, `_`, `-` or `.`: it appears in metrics
/// labels and the ledger.
fn check_id(id: &str) -> Result<(), RuleProblem> {
    let valid_id = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_id {
        return Err(RuleProblem::Invalid(
            "`id` must be letters, digits, `_`, `-` or `.`".to_owned(),
        ));
    }
    Ok(())
}

/// The rule's literals for the prefilter: `contains`, or a plain-literal
/// `pattern` itself; none may be so short that nearly every line hits it.
fn rule_literals(spec: &RuleSpec) -> Result<Vec<Vec<u8>>, RuleProblem> {
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
    Ok(literals)
}

/// The rule's `operation` (which DB call failed), if set.
fn parse_operation(name: Option<&str>) -> Result<Option<Operation>, RuleProblem> {
    let Some(name) = name else {
        return Ok(None);
    };
    Operation::parse(name).map(Some).ok_or_else(|| {
        RuleProblem::Invalid(format!(
            "unknown operation `{name}` (one of: {})",
            Operation::ALL.map(Operation::as_str).join(", ")
        ))
    })
}

/// The rule's `config` (which config failed to load), if set.
fn parse_config(name: Option<&str>) -> Result<Option<ConfigKind>, RuleProblem> {
    match name {
        None => Ok(None),
        Some("deployments") => Ok(Some(ConfigKind::Deployments)),
        Some("credentials") => Ok(Some(ConfigKind::Credentials)),
        Some(other) => Err(RuleProblem::Invalid(format!(
            "unknown config `{other}` (one of: deployments, credentials)"
        ))),
    }
}

/// Where the rule's row counts come from (default: its own capture).
fn parse_rows(name: Option<&str>) -> Result<RowsSource, RuleProblem> {
    match name {
        None | Some("captured") => Ok(RowsSource::Captured),
        Some("remembered") => Ok(RowsSource::Remembered),
        Some(other) => Err(RuleProblem::Invalid(format!(
            "unknown rows `{other}` (one of: captured, remembered)"
        ))),
    }
}

/// The access-line filter (`access_status`, `access_skip_paths`), if set.
fn access_filter(spec: &RuleSpec) -> Result<Option<AccessFilter>, RuleProblem> {
    match spec.access_status.as_deref() {
        None if spec.access_skip_paths.is_empty() => Ok(None),
        None => Err(RuleProblem::Invalid(
            "`access_skip_paths` needs `access_status`".to_owned(),
        )),
        Some(class) => match class.as_bytes() {
            [digit @ b'1'..=b'5', b'x', b'x'] => Ok(Some(AccessFilter {
                status_class: *digit,
                skip_paths: spec
                    .access_skip_paths
                    .iter()
                    .map(|p| p.clone().into_bytes())
                    .collect(),
            })),
            _ => Err(RuleProblem::Invalid(format!(
                "`access_status` must be a status class like \"2xx\", not `{class}`"
            ))),
        },
    }
}

/// The actions `emit` names, and whether the rule only suppresses (a
/// look-alike that must count nothing).
fn emit_actions(
    emit: &[String],
    operation: Option<Operation>,
    config: Option<ConfigKind>,
    rows: RowsSource,
) -> Result<(Vec<Action>, bool), RuleProblem> {
    if emit.is_empty() {
        return Err(RuleProblem::Invalid(
            "`emit` is empty; use [\"suppress\"] for a look-alike that must count nothing"
                .to_owned(),
        ));
    }
    let mut actions = Vec::new();
    let mut suppress = false;
    for name in emit {
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
    Ok((actions, suppress))
}

/// Whether the rule must capture a row count: it remembers rows, or one of
/// its actions counts captured rows.
fn needs_rows(remember_rows: bool, actions: &[Action]) -> Result<bool, RuleProblem> {
    let row_actions = actions
        .iter()
        .filter(|a| matches!(a, Action::SpendRowsLost(_) | Action::SpendRowsRequeued(_)));
    let mut needs_rows = remember_rows;
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
    Ok(needs_rows)
}

/// The LiteLLM family a rule's line reveals (`sets_version`), if set.
fn parse_sets_version(v: Option<&str>) -> Result<Option<VersionFamily>, RuleProblem> {
    let Some(v) = v else {
        return Ok(None);
    };
    VersionFamily::parse(v).map(Some).ok_or_else(|| {
        RuleProblem::Invalid(format!(
            "`sets_version` must be a LiteLLM version like \"1.83\" or \"1.108\", not `{v}`"
        ))
    })
}

pub(super) fn compile_regex(
    key: &'static str,
    source: Option<&str>,
) -> Result<Option<Regex>, RuleProblem> {
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
pub(super) fn is_plain_literal(pattern: &str) -> bool {
    !pattern.bytes().any(|b| b"\\.+*?()|[]{}^$".contains(&b))
}
