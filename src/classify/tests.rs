//! Tests of the rule pack: matching, folding, user packs, the access-line parser.

use super::access::parse_access_line;
use super::*;
use crate::classify::EventKind::*;
use crate::classify::Operation as Op;
use crate::classify::VersionFamily;
use crate::format::{Record, Stream};
use crate::time::Timestamp;

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
    let old = String::from_utf8(crate::format::ansi::strip_ansi(old.as_bytes(), &mut buf).to_vec())
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
    for line in
        include_str!("../../tests/fixtures/classify/two_spend_failures.log").split_inclusive('\n')
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
    feed(
        0,
        "Spend tracking - DB connection error writing spend logs, retry 4/3. logs_count=9, error=x",
        &mut events,
    );
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
        bad_regex.starts_with("rule `budget_miss` (user pack /etc/x.toml): bad regex in `pattern`"),
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

    let unknown_event =
        user_error("[[rule]]\nid = \"ev\"\ncontains = \"Budget\"\nemit = [\"budget_cache_mis\"]\n");
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

    let no_operation =
        user_error("[[rule]]\nid = \"op\"\ncontains = \"abcd\"\nemit = [\"db_connect_error\"]\n");
    assert!(
        no_operation.contains("rule `op`") && no_operation.contains("needs `operation`"),
        "{no_operation}"
    );

    let short = user_error("[[rule]]\nid = \"short\"\ncontains = \"ab\"\nemit = [\"suppress\"]\n");
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

    let mixed_suppress = user_error(
        "[[rule]]\nid = \"mix\"\ncontains = \"abcd\"\nemit = [\"suppress\", \"proxy_listening\"]\n",
    );
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
