//! The rule pack against the audit tables of LiteLLM's own source.
//!
//! `rules/audit/<version>.tsv` lists, per LiteLLM release, every warning-or-
//! worse message template on the DB / Prisma / spend / budget / credential /
//! deployment / config / health paths (plus the Uvicorn start-up lines) with
//! the events the built-in pack must produce for it (see
//! `rules/audit/README.md`). This test renders each template with each
//! connection-failure wording, feeds it through the real decoder and the
//! built-in pack as LiteLLM prints it — text with the `HH:MM:SS - LiteLLM
//! Proxy:LEVEL: file.py:N - ` prefix, the same with 1.83's ANSI colours, and
//! `JSON_LOGS=True` — and asserts the table's verdict. A new LiteLLM release
//! is one more table and a reviewed diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use litellm_sentinel::classify::{ClassifyState, ConfigKind, EventKind, Operation, RulePack};
use litellm_sentinel::format::decoder::Decoder;
use litellm_sentinel::format::{Format, MalformedReason, Record, RecordSink};

/// `{err}` renderings: what `str(e)` gives for the connection failures the
/// start-up race produces (httpx, prisma-client-py).
const WORDINGS: [(&str, &str); 4] = [
    ("httpx.ConnectError", "All connection attempts failed"),
    (
        "prisma.engine.errors.EngineConnectionError",
        "Could not connect to the query engine",
    ),
    (
        "prisma.errors.ClientNotConnectedError",
        "Not connected to the query engine",
    ),
    (
        "prisma.errors.ClientNotConnectedError",
        "Client is not connected to the query engine, you must call `connect()` before attempting to query data.",
    ),
];
/// The row count rendered for `{n}`.
const ROWS: u64 = 37;
/// The PID rendered for `{pid}`.
const PID: u64 = 4242;

/// One row of an audit table.
#[derive(Debug)]
struct Row {
    table: String,
    line: usize,
    template: String,
    source: String,
    level: String,
    verdict: String,
}

impl Row {
    fn what(&self) -> String {
        format!("{} line {} ({})", self.table, self.line, self.template)
    }

    fn ignored(&self) -> bool {
        self.verdict.starts_with("ignored:")
    }

    /// LiteLLM's own loggers get the LiteLLM prefix and have a JSON_LOGS
    /// form; Uvicorn lines get Uvicorn's prefix; apscheduler and bare
    /// Prisma / PostgreSQL texts are printed as they are (never JSON).
    fn origin(&self) -> Origin {
        if self.source.starts_with("litellm/") {
            Origin::Litellm
        } else if self.source.starts_with("uvicorn/") {
            Origin::Uvicorn
        } else {
            Origin::Bare
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Litellm,
    Uvicorn,
    Bare,
}

/// The LiteLLM family a table is for (decides the priming lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V183,
    V1108,
}

fn family_of(table: &str) -> Family {
    let minor: u64 = table
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("table name {table} is not a LiteLLM version"));
    if minor < 108 {
        Family::V183
    } else {
        Family::V1108
    }
}

fn audit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/audit")
}

fn tables() -> Vec<(String, Vec<Row>)> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(audit_dir())
        .expect("rules/audit exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tsv"))
        .collect();
    paths.sort();
    for path in paths {
        let table = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("read table");
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().expect("header line");
        assert_eq!(
            header, "template\tsource\tlevel\tverdict\tnotes",
            "{table}: header"
        );
        let mut rows = Vec::new();
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let cells: Vec<&str> = line.split('\t').collect();
            assert_eq!(cells.len(), 5, "{table} line {}: 5 cells", i + 1);
            rows.push(Row {
                table: table.clone(),
                line: i + 1,
                template: cells[0].replace("\\n", "\n"),
                source: cells[1].to_owned(),
                level: cells[2].to_owned(),
                verdict: cells[3].to_owned(),
            });
        }
        out.push((table, rows));
    }
    out
}

/// A rendered message: the message text (may hold `\n`) and the traceback
/// LiteLLM attaches with `exc_info` (text: the following lines; JSON:
/// `stacktrace`).
struct Rendered {
    message: String,
    exc_info: Option<String>,
}

fn traceback(exc: &str, wording: &str) -> String {
    [
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.13/site-packages/litellm/proxy/utils.py\", line 100, in update_spend",
        "    await prisma_client.db.query_raw(\"SELECT 1\")",
        "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        &format!("{exc}: {wording}"),
    ]
    .join("\n")
}

fn render(template: &str, wording: (&str, &str)) -> Rendered {
    let (exc, text) = wording;
    let (body, exc_info) = match template.strip_suffix("\n{traceback}") {
        Some(body) => (body, Some(traceback(exc, text))),
        None => (template, None),
    };
    // `{=value}`: a field the row spells out (e.g. the 1.83 tag table).
    let mut body = body.to_owned();
    while let Some(start) = body.find("{=") {
        let Some(len) = body[start..].find('}') else {
            panic!("{template}: unclosed `{{=`")
        };
        let value = body[start + 2..start + len].to_owned();
        body.replace_range(start..start + len + 1, &value);
    }
    let message = body
        .replace("{tb}", &traceback(exc, text))
        .replace("{err}", text)
        .replace("{n}", &ROWS.to_string())
        .replace("{k}", "2")
        .replace("{pid}", &PID.to_string())
        .replace("{…}", "user");
    for placeholder in ["{err}", "{n}", "{k}", "{pid}", "{tb}", "{traceback}", "{…}"] {
        assert!(
            !message.contains(placeholder),
            "{template}: `{placeholder}` left (only a trailing `\\n{{traceback}}` is exc_info)"
        );
    }
    Rendered { message, exc_info }
}

/// The physical lines of one rendered message in each output form.
#[derive(Clone, Copy, Debug)]
enum Form {
    Text,
    Ansi,
    Json,
}

fn physical_lines(row: &Row, r: &Rendered, form: Form) -> Option<Vec<String>> {
    let origin = row.origin();
    let level = row.level.as_str();
    match form {
        Form::Text | Form::Ansi => {
            let mut lines: Vec<String> = r.message.split('\n').map(str::to_owned).collect();
            let first = match (origin, form) {
                (Origin::Litellm, Form::Text) => {
                    format!(
                        "18:23:48 - LiteLLM Proxy:{level}: utils.py:8349 - {}",
                        lines[0]
                    )
                }
                (Origin::Litellm, _) => format!(
                    "\x1b[92m18:23:48 - LiteLLM Proxy:{level}\x1b[0m: utils.py:8349 - {}",
                    lines[0]
                ),
                (Origin::Uvicorn, Form::Text) => format!("{level}:     {}", lines[0]),
                (Origin::Uvicorn, _) => format!("\x1b[32m{level}\x1b[0m:     {}", lines[0]),
                (Origin::Bare, Form::Text) => lines[0].clone(),
                (Origin::Bare, _) => return None,
            };
            lines[0] = first;
            if let Some(tb) = &r.exc_info {
                lines.extend(tb.split('\n').map(str::to_owned));
            }
            Some(lines)
        }
        Form::Json => {
            let component = match origin {
                Origin::Litellm => "LiteLLM Proxy",
                Origin::Uvicorn => "uvicorn.error",
                Origin::Bare => return None,
            };
            let mut obj = serde_json::json!({
                "message": r.message,
                "level": level,
                "timestamp": "2026-11-24T18:27:15.595834",
                "component": component,
                "logger": "utils.py:8349",
            });
            if let Some(tb) = &r.exc_info {
                obj["stacktrace"] = serde_json::Value::String(tb.clone());
            }
            Some(vec![obj.to_string()])
        }
    }
}

/// Decodes lines like the agent does and classifies every record.
struct Classifier<'p> {
    pack: &'p RulePack,
    state: ClassifyState,
    events: Vec<EventKind>,
    malformed: Vec<MalformedReason>,
}

impl RecordSink for Classifier<'_> {
    fn record(&mut self, record: Record<'_>) {
        let events = &mut self.events;
        self.pack
            .classify(&mut self.state, &record, &mut |e| events.push(e.kind));
    }
    fn malformed(&mut self, reason: MalformedReason) {
        self.malformed.push(reason);
    }
}

impl<'p> Classifier<'p> {
    fn new(pack: &'p RulePack) -> Self {
        Classifier {
            pack,
            state: ClassifyState::default(),
            events: Vec::new(),
            malformed: Vec::new(),
        }
    }

    /// Feeds lines and returns the events they produced (folds closed).
    fn feed(&mut self, decoder: &mut Decoder, lines: &[String]) -> Vec<EventKind> {
        let before = self.events.len();
        for line in lines {
            decoder.push_line(line.as_bytes(), self);
        }
        decoder.finish(self);
        let events = &mut self.events;
        self.pack
            .finish(&mut self.state, &mut |e| events.push(e.kind));
        self.events.split_off(before)
    }
}

fn operation(name: &str) -> Operation {
    Operation::parse(name).unwrap_or_else(|| panic!("unknown operation `{name}` in a verdict"))
}

/// What the table says, as event kinds; `remember` / `version` are checks
/// made with a probe line after the row.
#[derive(Debug, Default)]
struct Verdict {
    events: Vec<EventKind>,
    /// Needs a primed remembered count (a `(remembered)` item).
    needs_prime: bool,
    /// `remember_rows(n)`: the next monitor error takes ROWS.
    remembers: bool,
    /// `sets_version(…)`.
    sets: Option<Family>,
}

fn parse_verdict(row: &Row) -> Verdict {
    let mut v = Verdict::default();
    if row.ignored() {
        return v;
    }
    for item in row.verdict.split('+') {
        let (name, arg) = match item.split_once('(') {
            Some((name, rest)) => (
                name,
                Some(
                    rest.strip_suffix(')')
                        .unwrap_or_else(|| panic!("{}: bad item {item}", row.what())),
                ),
            ),
            None => (item, None),
        };
        let rows = |arg: Option<&str>, v: &mut Verdict| -> u64 {
            match arg {
                Some("n") => ROWS,
                Some("remembered") => {
                    v.needs_prime = true;
                    ROWS
                }
                other => panic!(
                    "{}: rows must be n or remembered, not {other:?}",
                    row.what()
                ),
            }
        };
        let kind = match (name, arg) {
            ("db_connect_error", Some(op)) => EventKind::DbConnectError(operation(op)),
            ("spend_batch_dropped", None) => EventKind::SpendBatchDropped,
            ("spend_rows_lost", a) => EventKind::SpendRowsLost(rows(a, &mut v)),
            ("spend_rows_requeued", a) => EventKind::SpendRowsRequeued(rows(a, &mut v)),
            ("spend_updates_failed", None) => EventKind::SpendUpdatesFailed,
            ("engine_restart", None) => EventKind::EngineRestart,
            ("process_started", None) => EventKind::ProcessStarted { parent: false },
            ("parent_process_started", None) => EventKind::ProcessStarted { parent: true },
            ("proxy_accepting", None) => EventKind::ProxyAccepting,
            ("proxy_listening", None) => EventKind::ProxyListening,
            ("request_served", None) => EventKind::RequestServed,
            ("budget_cache_miss", None) => EventKind::BudgetCacheMiss,
            ("engine_distro_fallback", None) => EventKind::EngineDistroFallback,
            ("config_load_failure", Some("deployments")) => {
                EventKind::ConfigLoadFailure(ConfigKind::Deployments)
            }
            ("config_load_failure", Some("credentials")) => {
                EventKind::ConfigLoadFailure(ConfigKind::Credentials)
            }
            ("remember_rows", Some("n")) => {
                v.remembers = true;
                continue;
            }
            ("sets_version", Some("1.83")) => {
                v.sets = Some(Family::V183);
                continue;
            }
            ("sets_version", Some("1.108")) => {
                v.sets = Some(Family::V1108);
                continue;
            }
            _ => panic!("{}: unknown verdict item `{item}`", row.what()),
        };
        v.events.push(kind);
    }
    v
}

/// The version's final spend-log retry line (the 4/3 attempt), which keeps
/// its logs_count for the next line and sets the family.
fn prime_line(family: Family, wording: &str) -> String {
    let wording_kind = match family {
        Family::V183 => "DB connection error",
        Family::V1108 => "transient DB error",
    };
    format!(
        "18:23:47 - LiteLLM Proxy:WARNING: utils.py:8306 - Spend tracking - {wording_kind} writing spend logs, retry 4/3. logs_count={ROWS}, error={wording}"
    )
}

/// A monitor error with no traceback: reads the remembered count and the
/// file's family.
fn monitor_probe() -> String {
    "18:23:49 - LiteLLM Proxy:ERROR: utils.py:8814 - Error in spend logs queue monitor: All connection attempts failed".to_owned()
}

fn sorted(mut v: Vec<EventKind>) -> Vec<String> {
    let mut s: Vec<String> = v.drain(..).map(|e| format!("{e:?}")).collect();
    s.sort();
    s
}

/// Runs one row in one form with one wording; returns a failure text.
fn check(pack: &RulePack, row: &Row, form: Form, wording: (&str, &str)) -> Option<String> {
    let verdict = parse_verdict(row);
    let rendered = render(&row.template, wording);
    let lines = physical_lines(row, &rendered, form)?;
    let family = family_of(&row.table);
    let mut c = Classifier::new(pack);
    let mut decoder = Decoder::new(Format::Plain, 1 << 20);
    if verdict.needs_prime {
        c.feed(&mut decoder, &[prime_line(family, wording.1)]);
    }
    let got = c.feed(&mut decoder, &lines);
    if !c.malformed.is_empty() {
        return Some(format!("{}: malformed {:?}", row.what(), c.malformed));
    }
    if sorted(got.clone()) != sorted(verdict.events.clone()) {
        return Some(format!(
            "{} [{form:?}, {:?}]: expected {:?}, got {:?}\n  lines: {lines:?}",
            row.what(),
            wording.1,
            verdict.events,
            got
        ));
    }
    if verdict.remembers || verdict.sets.is_some() {
        let probe = c.feed(&mut decoder, &[monitor_probe()]);
        let db = EventKind::DbConnectError(Operation::SpendLogsQueue);
        let family = verdict.sets.unwrap_or(Family::V183);
        let rows = verdict.remembers.then_some(ROWS);
        let want: Vec<EventKind> = match (family, rows) {
            (Family::V183, Some(n)) => vec![
                EventKind::SpendBatchDropped,
                EventKind::SpendRowsLost(n),
                db,
            ],
            (Family::V183, None) => vec![EventKind::SpendBatchDropped, db],
            (Family::V1108, Some(n)) => vec![EventKind::SpendRowsRequeued(n), db],
            (Family::V1108, None) => vec![db],
        };
        if sorted(probe.clone()) != sorted(want.clone()) {
            return Some(format!(
                "{} [{form:?}]: a monitor error after it should give {want:?} (remember_rows / sets_version), got {probe:?}",
                row.what()
            ));
        }
    }
    None
}

#[test]
fn every_audited_template_gets_its_verdict_in_text_ansi_and_json_logs() {
    let pack = RulePack::builtin().expect("built-in pack compiles");
    let tables = tables();
    let names: Vec<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
    for want in ["1.83.14", "1.108.7", "1.110.2"] {
        assert!(
            names.contains(&want),
            "no audit table for {want}: {names:?}"
        );
    }
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (_, rows) in &tables {
        assert!(
            rows.len() >= 40,
            "a table with {} rows is not an audit",
            rows.len()
        );
        for row in rows {
            // An ignored message must stay ignored with the generic httpx
            // wording (a Redis or provider error never says "query engine").
            let wordings: &[(&str, &str)] = if row.ignored() {
                &WORDINGS[..1]
            } else {
                &WORDINGS[..]
            };
            for &wording in wordings {
                for form in [Form::Text, Form::Ansi, Form::Json] {
                    if physical_lines(row, &render(&row.template, wording), form).is_some() {
                        checked += 1;
                    }
                    if let Some(f) = check(&pack, row, form, wording) {
                        failures.push(f);
                    }
                }
            }
        }
    }
    assert!(checked > 500, "only {checked} renderings checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} renderings disagree with the audit:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn audit_tables_are_well_formed_and_name_only_pack_vocabulary() {
    let mut templates: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, rows) in tables() {
        for row in &rows {
            assert!(
                ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&row.level.as_str()),
                "{}: level {}",
                row.what(),
                row.level
            );
            assert!(
                !row.source.contains(".py:")
                    || !row
                        .source
                        .split(".py:")
                        .nth(1)
                        .is_some_and(|f| f.starts_with(|c: char| c.is_ascii_digit())),
                "{}: source names a line number",
                row.what()
            );
            if row.ignored() {
                assert!(
                    row.verdict.len() > "ignored: ".len() + 5,
                    "{}: an ignored row says why",
                    row.what()
                );
            }
            // parse_verdict panics on anything outside the vocabulary.
            let _ = parse_verdict(row);
            templates
                .entry(row.template.clone())
                .or_default()
                .push(table.clone());
        }
    }
    for (template, in_tables) in &templates {
        let mut dedup = in_tables.clone();
        dedup.dedup();
        assert_eq!(&dedup, in_tables, "{template} twice in one table");
    }
}

#[test]
fn a_1_83_spend_drop_and_a_1_108_requeue_read_differently_from_the_same_monitor_line() {
    // The decisive pair, spelled out: same monitor line, opposite meanings.
    let pack = RulePack::builtin().expect("built-in pack compiles");
    for (family, want) in [
        (
            Family::V183,
            vec![
                EventKind::SpendBatchDropped,
                EventKind::SpendRowsLost(ROWS),
                EventKind::DbConnectError(Operation::SpendLogsQueue),
            ],
        ),
        (
            Family::V1108,
            vec![
                EventKind::SpendRowsRequeued(ROWS),
                EventKind::DbConnectError(Operation::SpendLogsQueue),
            ],
        ),
    ] {
        let mut c = Classifier::new(&pack);
        let mut d = Decoder::new(Format::Plain, 1 << 20);
        let retry = c.feed(
            &mut d,
            &[prime_line(family, "All connection attempts failed")],
        );
        assert_eq!(
            retry,
            vec![EventKind::DbConnectError(Operation::SpendLogsQueue)]
        );
        assert_eq!(sorted(c.feed(&mut d, &[monitor_probe()])), sorted(want));
        // The count is used once: a second monitor error has no rows.
        let again = c.feed(&mut d, &[monitor_probe()]);
        assert!(
            !again.iter().any(|e| matches!(
                e,
                EventKind::SpendRowsLost(_) | EventKind::SpendRowsRequeued(_)
            )),
            "{family:?}: remembered rows reused: {again:?}"
        );
    }
}

#[test]
fn an_early_retry_that_succeeds_leaves_no_count_for_a_later_error() {
    // 1/3 fails, 2/3 succeeds (no line): a later monitor error for another
    // reason must not take the 1/3 line's logs_count.
    let pack = RulePack::builtin().expect("built-in pack compiles");
    let mut c = Classifier::new(&pack);
    let mut d = Decoder::new(Format::Plain, 1 << 20);
    c.feed(
        &mut d,
        &["18:23:47 - LiteLLM Proxy:WARNING: utils.py:1 - Spend tracking - DB connection error writing spend logs, retry 1/3. logs_count=37, error=All connection attempts failed".to_owned()],
    );
    let got = c.feed(&mut d, &[monitor_probe()]);
    assert_eq!(
        sorted(got),
        sorted(vec![
            EventKind::SpendBatchDropped,
            EventKind::DbConnectError(Operation::SpendLogsQueue)
        ])
    );
}

#[test]
fn one_engine_killed_three_ways_is_one_restart_and_a_new_pid_is_another() {
    let pack = RulePack::builtin().expect("built-in pack compiles");
    let mut c = Classifier::new(&pack);
    let mut d = Decoder::new(Format::Plain, 1 << 20);
    let lines: Vec<String> = [
        "18:23:47 - LiteLLM Proxy:WARNING: prisma_client.py:420 - Sent SIGTERM to prisma-query-engine PID 4242 during reconnect.",
        "18:23:52 - LiteLLM Proxy:WARNING: prisma_client.py:428 - Sent SIGKILL to prisma-query-engine PID 4242 (did not exit after SIGTERM).",
        "18:23:52 - LiteLLM Proxy:ERROR: utils.py:6862 - prisma-query-engine PID 4242 exited (waitpid thread); triggering reconnect.",
        "18:24:30 - LiteLLM Proxy:WARNING: utils.py:7095 - prisma-query-engine PID 4300 is dead; reconnecting.",
    ]
    .map(str::to_owned)
    .to_vec();
    let got = c.feed(&mut d, &lines);
    assert_eq!(
        got,
        vec![EventKind::EngineRestart, EventKind::EngineRestart]
    );
}

/// LiteLLM's text prefix for a message at `level`.
fn litellm(level: &str, msg: &str) -> String {
    format!("18:23:48 - LiteLLM Proxy:{level}: utils.py:1 - {msg}")
}

fn tb_lines() -> Vec<String> {
    traceback("httpx.ConnectError", "All connection attempts failed")
        .split('\n')
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_1_108_shutdown_loses_the_stated_rows_once_and_its_tracebacks_count_nothing_more() {
    // Order as in 1.108.7's source: the drain's write fails four times (the
    // 4/3 attempt re-queues), `_park_remaining_spend_logs` (a finally block)
    // reports the loss with the write error attached, then
    // `_flush_spend_logs_queue_on_shutdown` logs the error with its traceback.
    let pack = RulePack::builtin().expect("built-in pack compiles");
    let mut c = Classifier::new(&pack);
    let mut d = Decoder::new(Format::Plain, 1 << 20);
    let mut lines = Vec::new();
    for k in 1..=4 {
        lines.push(litellm(
            "WARNING",
            &format!("Spend tracking - transient DB error writing spend logs, retry {k}/3. logs_count=12, error=All connection attempts failed"),
        ));
    }
    lines.push(litellm(
        "ERROR",
        "Spend tracking - 12 spend log rows could not be written or parked in Redis and will be lost on exit",
    ));
    lines.extend(tb_lines());
    lines.push(litellm(
        "ERROR",
        "Error flushing spend logs queue on shutdown: All connection attempts failed",
    ));
    lines.extend(tb_lines());
    let got = c.feed(&mut d, &lines);
    let db = EventKind::DbConnectError(Operation::SpendLogsQueue);
    assert_eq!(
        sorted(got),
        sorted(vec![db, db, db, db, EventKind::SpendRowsLost(12), db])
    );
}

#[test]
fn a_1_83_daily_tag_drop_counts_its_batch_size_once_after_the_fourth_attempt() {
    let pack = RulePack::builtin().expect("built-in pack compiles");
    let mut c = Classifier::new(&pack);
    let mut d = Decoder::new(Format::Plain, 1 << 20);
    let mut lines = Vec::new();
    for _ in 0..4 {
        lines.push(litellm(
            "ERROR",
            "Daily tag spend batch upsert failed. Table: LiteLLM_DailyTagSpend, Constraint: tag_date_api_key_model_custom_llm_provider_mcp_namespaced_tool_name_endpoint, Batch size: 9, Error: All connection attempts failed",
        ));
        lines.extend(tb_lines());
    }
    lines.push(litellm(
        "ERROR",
        "Error updating daily tag spend: All connection attempts failed",
    ));
    let got = c.feed(&mut d, &lines);
    let db = EventKind::DbConnectError(Operation::UpdateSpend);
    assert_eq!(
        sorted(got),
        sorted(vec![db, db, db, db, EventKind::SpendRowsLost(9), db])
    );
}

#[test]
fn a_1_108_retry_that_recovers_leaves_nothing_for_a_later_loss_line() {
    // 1/3 … 3/3 fail, the 4th attempt succeeds (no line): the daily tag
    // error that follows must not count those logs_count rows as lost.
    let pack = RulePack::builtin().expect("built-in pack compiles");
    let mut c = Classifier::new(&pack);
    let mut d = Decoder::new(Format::Plain, 1 << 20);
    let mut lines: Vec<String> = (1..=3)
        .map(|k| {
            litellm(
                "WARNING",
                &format!("Spend tracking - transient DB error writing spend logs, retry {k}/3. logs_count=50, error=All connection attempts failed"),
            )
        })
        .collect();
    lines.push(litellm(
        "ERROR",
        "Error updating daily tag spend: All connection attempts failed",
    ));
    let got = c.feed(&mut d, &lines);
    assert!(
        !got.iter().any(|e| matches!(e, EventKind::SpendRowsLost(_))),
        "{got:?}"
    );
    assert_eq!(got.len(), 4, "{got:?}");
}
