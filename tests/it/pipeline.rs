//! End-to-end tests of the core pipeline with the real binary: live tailing,
//! every kind of rotation, restarts (SIGTERM and SIGKILL) with exactly-once
//! counts, the user's seed lines, look-alikes, and `report` on a fixture
//! rolling deploy. Waits are conditions with deadlines, never fixed sleeps.

use crate::support;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use support::{cri, metric, now_ts, wait_until, AgentProc, LogTree};

const DROPPED: &str = "litellm_sentinel_spend_batches_dropped_total";
const DBERR: &str = "litellm_sentinel_db_connect_errors_total";

/// A 1.83.x spend-queue failure: header + traceback, as separate CRI records.
fn spend_failure(ts: &str) -> String {
    let mut s = cri(ts, "stderr", "\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:3905 - Error in spend logs queue monitor: All connection attempts failed");
    for l in [
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.13/site-packages/litellm/proxy/utils.py\", line 3880, in update_spend_logs",
        "    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)",
        "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "httpcore.ConnectError: All connection attempts failed",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        "  File \"/usr/lib/python3.13/site-packages/prisma/engine/http.py\", line 97, in request",
        "httpx.ConnectError: All connection attempts failed",
    ] {
        s.push_str(&cri(ts, "stderr", l));
    }
    s
}

/// `report --json PATH`, which must succeed, parsed.
fn report_json(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new(support::bin())
        .args(["report", "--json"])
        .arg(path)
        .output()
        .expect("run report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report --json prints JSON")
}

fn labels(pod: &str) -> [(&str, &str); 2] {
    [("namespace", "llm"), ("pod", pod)]
}

#[test]
fn live_tail_counts_a_spend_queue_traceback_once_and_ignores_look_alikes() {
    let tree = LogTree::new();
    let port = support::free_port();
    let agent = AgentProc::start(&tree.config(port, ""), port);
    // The pod appears after the agent started: a new directory is picked up.
    let log = tree.log_path("llm", "litellm-abc");
    let t = now_ts();
    let mut text = cri(
        &t,
        "stdout",
        "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)",
    );
    text.push_str(&spend_failure(&t));
    text.push_str(&cri(&t, "stdout", "LiteLLM: model cost map fetch attempt 1/3 failed (ConnectError fetching https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json)"));
    text.push_str(&cri(
        &t,
        "stderr",
        "litellm.APIConnectionError: OllamaException - All connection attempts failed",
    ));
    text.push_str(&cri(
        &t,
        "stdout",
        "INFO:     10.0.0.7:46642 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
    ));
    LogTree::append(&log, &text);
    let l = labels("litellm-abc");
    agent.wait_value(DROPPED, &l, 1.0);
    agent.wait_value("litellm_sentinel_in_startup_gap", &l, 1.0);
    // Requests are attributed when the gap closes, by record time.
    assert_eq!(
        agent.value("litellm_sentinel_requests_during_gap_total", &l),
        0.0
    );
    let since = agent.value(
        "litellm_sentinel_startup_gap_open_since_timestamp_seconds",
        &l,
    );
    assert!(since > 1.7e9, "open-since gauge: {since}");
    // A record 61 s later (past the quiet period): the gap closes at its last
    // failure; the request at the failure's time was inside it, this one not.
    let later = litellm_sentinel::time::Timestamp::now()
        .plus_secs(61.0)
        .to_string();
    LogTree::append(
        &log,
        &cri(
            &later,
            "stdout",
            "INFO:     10.0.0.7:46643 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
        ),
    );
    agent.wait_value("litellm_sentinel_requests_during_gap_total", &l, 1.0);
    agent.wait_value("litellm_sentinel_in_startup_gap", &l, 0.0);
    let m = agent.metrics();
    assert_eq!(
        metric(
            &m,
            DBERR,
            &[("pod", "litellm-abc"), ("operation", "spend_logs_queue")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, DBERR, &[("pod", "litellm-abc"), ("operation", "other")]),
        Some(0.0),
        "folded traceback counted twice:\n{m}"
    );
    assert_eq!(
        metric(
            &m,
            "litellm_sentinel_startup_gap_open_since_timestamp_seconds",
            &l
        ),
        None,
        "no open gap, no open-since series"
    );
    assert_eq!(
        metric(&m, "litellm_sentinel_proxy_starts_total", &l),
        Some(1.0)
    );
    let (status, api) = support::http_get(agent.addr, "/api/v1/pods").expect("api");
    assert_eq!(status, 200);
    for field in [
        "\"listening_at\"",
        "\"engine_ready_at\"",
        "\"gap_seconds\"",
        "\"method\"",
        "\"counts\"",
        "\"in_gap\"",
    ] {
        assert!(api.contains(field), "/api/v1/pods lacks {field}: {api}");
    }
    // promtool must accept the exposition when it is installed (make test installs it).
    if let Ok(out) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().map(|mut s| s.write_all(m.as_bytes()));
            c.wait_with_output()
        })
    {
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_rotation_kind_loses_and_duplicates_nothing() {
    let tree = LogTree::new();
    let port = support::free_port();
    let log = tree.log_path("llm", "litellm-rot");
    LogTree::append(
        &log,
        &cri(
            &now_ts(),
            "stdout",
            "INFO:     Uvicorn running on http://0.0.0.0:4000",
        ),
    );
    let agent = AgentProc::start(&tree.config(port, ""), port);
    let l = labels("litellm-rot");
    let mut want = 0.0;
    let drop_batch = |agent: &AgentProc, want: &mut f64| {
        LogTree::append(&log, &spend_failure(&now_ts()));
        *want += 1.0;
        agent.wait_value(DROPPED, &l, *want);
    };
    drop_batch(&agent, &mut want);
    // 1. rename + create: lines written to the old file after the rename still count.
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open");
    let rotated = log.with_file_name("0.log.20261124-101500");
    std::fs::rename(&log, &rotated).expect("rename");
    old.write_all(spend_failure(&now_ts()).as_bytes())
        .expect("late write");
    want += 1.0;
    drop(old);
    drop_batch(&agent, &mut want); // lands in the new 0.log
    agent.wait_value(DROPPED, &l, want);
    // 2. kubelet gzips the rotated file and removes the plain one.
    let gz = std::fs::File::create(rotated.with_extension("20261124-101500.gz")).expect("gz");
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    enc.write_all(&std::fs::read(&rotated).expect("read rotated"))
        .expect("gz write");
    enc.finish().expect("gz finish");
    std::fs::remove_file(&rotated).expect("rm rotated");
    drop_batch(&agent, &mut want);
    // 3. copytruncate: content copied away, file truncated in place, writing goes on.
    std::fs::copy(&log, log.with_file_name("0.log.copy")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .expect("truncate");
    drop_batch(&agent, &mut want);
    // 4. delete while open: whatever was written before the delete is counted.
    LogTree::append(&log, &spend_failure(&now_ts()));
    want += 1.0;
    std::fs::remove_file(&log).expect("rm");
    agent.wait_value(DROPPED, &l, want);
    // Nothing counted twice once every file was drained and dropped (the
    // deleted and rotated files close after two idle full passes).
    wait_until(
        "all files drained and closed",
        Duration::from_secs(20),
        || agent.value("litellm_sentinel_files_watched", &[]) == 0.0,
    );
    assert_eq!(agent.value(DROPPED, &l), want);
    assert_eq!(
        agent.value(
            DBERR,
            &[("pod", "litellm-rot"), ("operation", "spend_logs_queue")]
        ),
        want
    );
}

#[test]
fn restarts_continue_counters_and_count_every_line_once() {
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = tree.config(port, "");
    let log = tree.log_path("llm", "litellm-rst");
    let l = labels("litellm-rst");
    LogTree::append(
        &log,
        &cri(
            &now_ts(),
            "stdout",
            "INFO:     Uvicorn running on http://0.0.0.0:4000",
        ),
    );
    LogTree::append(&log, &spend_failure(&now_ts()));
    let agent = AgentProc::start(&cfg, port);
    agent.wait_value(DROPPED, &l, 1.0);
    // SIGTERM: a final checkpoint; lines appended while down are read once on restart.
    let st = agent.sigterm();
    assert!(st.success(), "agent exit status after SIGTERM: {st:?}");
    LogTree::append(&log, &spend_failure(&now_ts()));
    let agent = AgentProc::start(&cfg, port);
    agent.wait_value(DROPPED, &l, 2.0);
    // Wait until a checkpoint has captured the count, then SIGKILL (no final checkpoint).
    let state = tree.state_file();
    wait_until("checkpoint with 2 batches", Duration::from_secs(10), || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("\"spend_batches_dropped\":2"))
    });
    agent.sigkill();
    LogTree::append(&log, &spend_failure(&now_ts()));
    LogTree::append(&log, &spend_failure(&now_ts()));
    let agent = AgentProc::start(&cfg, port);
    agent.wait_value(DROPPED, &l, 4.0);
    assert_eq!(
        agent.value("litellm_sentinel_proxy_starts_total", &l),
        1.0,
        "the listening line was counted again"
    );
    assert_eq!(
        agent.value(
            DBERR,
            &[("pod", "litellm-rst"), ("operation", "spend_logs_queue")]
        ),
        4.0
    );
}

/// The user's report (shared/seed): each of its lines produces the documented event.
#[test]
fn seed_lines_produce_their_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("litellm-seed.log");
    let lines = [
        "prisma:warn Prisma doesn't know which engines to download for the Linux distro \"wolfi\".",
        "Falling back to Prisma engines built \"debian\".",
        "httpx.ConnectError: All connection attempts failed",
        "LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed",
        "Error in spend logs queue monitor: All connection attempts failed",
        "  File \"litellm/proxy/utils.py\", line 3880, in update_spend_logs",
        "    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)",
        "Budget lookup failed for user; cache will not be populated. Each request will hit the database.",
        "Error: All connection attempts failed.",
        "litellm.proxy.proxy_server.py::ProxyConfig:add_deployment - All connection attempts failed",
        "litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - All connection attempts failed",
    ];
    std::fs::write(&f, lines.join("\n") + "\n").expect("write");
    let v = report_json(&f);
    let t = &v["totals"];
    assert_eq!(t["engine_distro_fallbacks"], 1);
    assert_eq!(t["spend_batches_dropped"], 1);
    assert_eq!(t["budget_cache_misses"], 1);
    assert_eq!(t["deployment_load_failures"], 1);
    assert_eq!(t["credential_load_failures"], 1);
    let ops = &v["pods"][0]["counts"]["db_connect_errors_by_operation"];
    for (op, n) in [
        ("other", 1),
        ("get_generic_data", 1),
        ("spend_logs_queue", 1),
        ("budget_lookup", 1),
        ("add_deployment", 1),
        ("get_credentials", 1),
    ] {
        assert_eq!(ops[op], n, "operation {op}: {ops}");
    }
    assert_eq!(t["db_connect_errors"], 6);
    // No timestamps in this input: the gap is unknown, not zero.
    assert_eq!(v["pods"][0]["starts"].as_array().map(Vec::len), Some(0));
}

#[test]
fn report_on_fixture_rolling_deploy_gives_planned_counts_and_gaps() {
    report_gives_planned_counts("rolling-deploy");
}

#[test]
fn report_on_newer_and_never_up_pods_gives_planned_requeues_outages_and_open_gaps() {
    report_gives_planned_counts("versions");
}

/// `report --json` over `tests/fixtures/<tree>` gives exactly `<tree>.expected.json`.
fn report_gives_planned_counts(tree: &str) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let got = report_json(&fixtures.join(tree));
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join(format!("{tree}.expected.json"))).expect("expected"),
    )
    .expect("json");
    let pods = got["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), want["pods"].as_object().map_or(0, |p| p.len()));
    let mut totals = std::collections::BTreeMap::<String, i64>::new();
    for (name, exp) in want["pods"].as_object().expect("pods") {
        let p = pods
            .iter()
            .find(|p| p["pod"] == name.as_str())
            .unwrap_or_else(|| panic!("pod {name} missing: {got}"));
        assert_eq!(p["namespace"], "llm");
        let c = &p["counts"];
        for key in [
            "proxy_starts",
            "db_connect_errors",
            "spend_batches_dropped",
            "budget_cache_misses",
            "deployment_load_failures",
            "credential_load_failures",
            "engine_distro_fallbacks",
            "requests_during_gap",
        ] {
            assert_eq!(c[key], exp[key], "{name}.{key}: {c}");
            *totals.entry(key.to_string()).or_default() += exp[key].as_i64().unwrap_or(0);
        }
        // Counts only some pods plan: 0 wherever a pod does not name them.
        for key in [
            "spend_rows_requeued",
            "spend_rows_lost",
            "spend_updates_failed",
            "db_outages",
            "requests_during_outage",
            "engine_restarts",
        ] {
            let want_n = exp.get(key).and_then(|v| v.as_i64()).unwrap_or(0);
            assert_eq!(c[key].as_i64(), Some(want_n), "{name}.{key}: {c}");
        }
        let starts = p["starts"].as_array().expect("starts");
        let outages: Vec<f64> = starts
            .iter()
            .flat_map(|s| s["outages"].as_array().cloned().unwrap_or_default())
            .map(|o| o["seconds"].as_f64().unwrap_or(f64::NAN))
            .collect();
        let want_outages: Vec<f64> = exp
            .get("outages")
            .and_then(|o| o.as_array())
            .map(|o| o.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        assert_eq!(outages, want_outages, "{name} outages");
        let open_failing: Vec<f64> = starts
            .iter()
            .filter(|s| s["open"] == true)
            .map(|s| s["failing_seconds"].as_f64().unwrap_or(f64::NAN))
            .collect();
        let want_open: Vec<f64> = exp
            .get("open_failing")
            .and_then(|o| o.as_array())
            .map(|o| o.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        assert_eq!(open_failing, want_open, "{name} gaps still open at the end");
        for (op, n) in exp["ops"].as_object().expect("ops") {
            assert_eq!(
                c["db_connect_errors_by_operation"][op], *n,
                "{name} operation {op}: {c}"
            );
        }
        if let Some(m) = exp.get("malformed_lines") {
            assert_eq!(c["malformed_lines"], *m, "{name}.malformed_lines");
        }
        let gaps: Vec<f64> = starts
            .iter()
            .filter(|s| s["open"] == false)
            .map(|s| s["gap_seconds"].as_f64().unwrap_or(f64::NAN))
            .collect();
        let want_gaps: Vec<f64> = exp["gaps"]
            .as_array()
            .expect("gaps")
            .iter()
            .filter_map(|g| g.as_f64())
            .collect();
        assert_eq!(gaps, want_gaps, "{name} gaps");
        assert!(p["starts"]
            .as_array()
            .expect("starts")
            .iter()
            .all(|s| s["method"] == "log" && s["listening_at"].is_string()));
    }
    for (k, v) in totals {
        assert_eq!(got["totals"][&k], v, "totals.{k}");
    }
    // The table form names every pod.
    let table = Command::new(support::bin())
        .arg("report")
        .arg(fixtures.join(tree))
        .output()
        .expect("report");
    let text = String::from_utf8_lossy(&table.stdout);
    for name in want["pods"].as_object().expect("pods").keys() {
        assert!(text.contains(&format!("llm/{name}")), "{text}");
    }
    assert!(text.contains("TOTAL"), "{text}");
}

#[test]
fn report_names_an_unreadable_path_and_exits_3() {
    let out = Command::new(support::bin())
        .args(["report", "/nonexistent/litellm-logs"])
        .output()
        .expect("report");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/litellm-logs"));
}

#[test]
fn check_config_rejects_unknown_keys_and_prints_effective_config() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "globz = [\"/x/*.log\"]\n").expect("write");
    let out = Command::new(support::bin())
        .args(["check-config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("globz"));
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "globs = [\"/var/log/pods/*/*/*.log\"]\n[probe]\ndatabase_url = \"postgresql://llm:hunter2@db/litellm\"\n").expect("write");
    let out = Command::new(support::bin())
        .args(["check-config"])
        .arg(&good)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("quiet_period") && text.contains("llm:***@db") && !text.contains("hunter2"),
        "{text}"
    );
    // The effective settings: what was compiled, and what the conversion resolved.
    assert!(
        text.starts_with("# effective configuration\n# rules: ")
            && text.contains("compiled (built-in)")
            && text.contains("tailing: yes; probes: database")
            && text.contains("discover_engine = false"),
        "{text}"
    );
    // What it prints is itself a config that converts to the same settings.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, text.as_bytes()).expect("write");
    let out = Command::new(support::bin())
        .args(["check-config"])
        .arg(&again)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    // A conversion error names the key and what to do, and nothing twice.
    let bad = dir.path().join("listen.toml");
    std::fs::write(&bad, "listen = \"localhost\"\n").expect("write");
    let out = Command::new(support::bin())
        .args(["check-config"])
        .arg(&bad)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: `listen`: `localhost` is not host:port")
            && err.contains("e.g. 0.0.0.0:9464"),
        "{err}"
    );
    assert_eq!(err.matches("invalid socket address").count(), 1, "{err}");
}

/// `demo` with short delays on a free port; returns its output.
fn run_demo(extra: &[&str]) -> std::process::Output {
    let port = support::free_port();
    Command::new(support::bin())
        .args([
            "demo",
            "--min-engine-delay",
            "1s",
            "--max-engine-delay",
            "2s",
            "--tick",
            "100ms",
            "--quiet-period",
            "1s",
            "--no-live",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .output()
        .expect("demo")
}

#[test]
fn demo_runs_to_completion_and_its_counts_match_the_simulation() {
    let dir = tempfile::tempdir().expect("tmp");
    let dir_arg = dir.path().to_str().expect("utf-8 path").to_string();
    let out = run_demo(&["--pods", "3", "--dir", &dir_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("All counts match what was simulated"),
        "{stdout}"
    );
    // The three set-ups: both LiteLLM families with a sidecar, and a
    // logs-only pod (the node DaemonSet path).
    for heading in [
        "LiteLLM 1.83.14, sidecar probe",
        "LiteLLM 1.110.2, sidecar probe",
        "LiteLLM 1.83.14, logs only (node DaemonSet, no sidecar)",
    ] {
        assert!(stdout.contains(heading), "no pod {heading:?}:\n{stdout}");
    }
    let lines: Vec<&str> = stdout.lines().collect();
    let checks: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("    ok ") || l.starts_with("    FAIL "))
        .collect();
    assert!(checks.len() >= 30, "{stdout}");
    assert!(checks.iter().all(|l| l.starts_with("    ok ")), "{stdout}");
    // Gaps: two from the probe, one from the logs, each against the bind.
    assert_eq!(
        checks
            .iter()
            .filter(|l| l.contains("start-up gap (probe)"))
            .count(),
        2,
        "{stdout}"
    );
    assert_eq!(
        checks
            .iter()
            .filter(|l| l.contains("start-up gap (logs)"))
            .count(),
        1,
        "{stdout}"
    );
    // 1.83 drops batches, 1.110 re-queues them: both appear with numbers.
    let value = |what: &str, nth: usize| -> u64 {
        let l = checks
            .iter()
            .filter(|l| l.contains(what))
            .nth(nth)
            .unwrap_or_else(|| panic!("no {what:?} #{nth}: {stdout}"));
        let rest = &l[l.find(what).unwrap() + what.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(value("spend batches dropped", 0) > 0, "{stdout}");
    assert_eq!(value("spend batches dropped", 1), 0, "{stdout}");
    assert!(value("spend rows re-queued", 1) > 0, "{stdout}");
    assert_eq!(value("spend rows re-queued", 0), 0, "{stdout}");
    assert!(value("requests at risk", 2) > 0, "{stdout}");
    // The logs stay (--dir) and the post-mortem over them agrees with the
    // live agent on the money: batches, rows, requests at risk.
    assert!(stdout.contains("litellm-sentinel report "), "{stdout}");
    let rollout = lines
        .iter()
        .find(|l| l.trim_start().starts_with("Across the rollout:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let numbers: Vec<u64> = rollout
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let v = report_json(&dir.path().join("pods"));
    let t = &v["totals"];
    assert_eq!(
        numbers,
        [
            t["spend_batches_dropped"].as_u64().unwrap(),
            t["spend_rows_lost"].as_u64().unwrap(),
            t["spend_rows_requeued"].as_u64().unwrap(),
            t["requests_during_gap"].as_u64().unwrap(),
        ],
        "{rollout}\n{t}"
    );
    assert_eq!(t["proxy_starts"], 3, "{t}");
    // A second run into the same tree would double every number: refused.
    let again = run_demo(&["--pods", "1", "--dir", &dir_arg]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("holds an earlier demo's logs"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn demo_fails_and_names_what_differed_when_an_expectation_is_wrong() {
    // A hidden test-only flag makes the demo expect one more lost row and a
    // gap one second longer for its first pod: the check must catch both.
    let out = run_demo(&[
        "--pods",
        "1",
        "--check-skew",
        "spend_rows_lost",
        "--check-skew",
        "gap",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("All counts match"), "{stdout}");
    assert!(
        stdout.contains("2 of ") && stdout.contains("checks FAILED"),
        "{stdout}"
    );
    assert!(
        stderr.contains("2 of ") && stderr.contains("checks failed"),
        "{stderr}"
    );
    // The lost-rows line names both numbers and the series; they differ by
    // exactly the injected one, so the measured side is the agent's.
    let line = stderr
        .lines()
        .find(|l| l.contains("spend rows lost: simulated "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("litellm_sentinel_spend_rows_lost_total{namespace=\"llm\",pod=\""),
        "{line}"
    );
    let num = |after: &str| -> u64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(num("simulated "), num("/metrics ") + 1, "{line}");
    assert!(
        stderr.contains("start-up gap (probe): simulated ")
            && stderr.contains("last_startup_gap_seconds{namespace=\"llm\",pod=\""),
        "{stderr}"
    );
    // Every other check passed.
    assert!(
        stdout
            .lines()
            .filter(|l| l.starts_with("    FAIL "))
            .count()
            == 2,
        "{stdout}"
    );
}

#[test]
fn demo_help_explains_what_it_does_and_every_flag() {
    let out = Command::new(support::bin())
        .args(["demo", "--help"])
        .output()
        .expect("demo --help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for needle in [
        "rolling deploy",
        "1.83.14",
        "1.110.2",
        "logs only",
        "/metrics",
        "bind",
        "Exit status",
        "Ctrl-C",
        "--pods",
        "--min-engine-delay",
        "--max-engine-delay",
        "--tick",
        "--quiet-period",
        "--seed",
        "--listen",
        "--dir",
        "--no-live",
        "--keep",
        "--link",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
    assert!(
        !text.contains("check-skew"),
        "a test-only flag is shown:\n{text}"
    );
    // Options the check could not hold are refused before anything runs
    // (a wrong test-only expectation name too).
    for (args, says) in [
        (
            &["--check-skew", "nonsense"][..],
            "unknown check \"nonsense\"",
        ),
        (
            &["--min-engine-delay", "0s"][..],
            "--min-engine-delay must be at least 100ms",
        ),
        (
            &["--tick", "2s", "--quiet-period", "3s"][..],
            "--quiet-period must be at least twice --tick",
        ),
        (&["--pods", "0"][..], "--pods must be at least 1"),
    ] {
        let out = Command::new(support::bin())
            .arg("demo")
            .args(args)
            .args(["--listen", "127.0.0.1:1"])
            .output()
            .expect("demo");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn demo_live_table_redraws_from_metrics_and_never_clears_the_summary() {
    let port = support::free_port();
    let out = Command::new(support::bin())
        .args([
            "demo",
            "--pods",
            "1",
            "--min-engine-delay",
            "1500ms",
            "--max-engine-delay",
            "1500ms",
            "--tick",
            "100ms",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // The first redraw comes at once; each one repeats the URLs and legend.
    let frames: Vec<&str> = stdout.split("\x1b[2J\x1b[H").collect();
    assert!(frames.len() >= 2, "no redraw: {stdout}");
    for frame in &frames[1..frames.len() - 1] {
        assert!(
            frame.contains("/metrics") && frame.contains("AT RISK "),
            "{frame}"
        );
        assert!(frame.contains("POD "), "{frame}");
    }
    // The last frame ends with the final table and the whole summary.
    let last = frames.last().unwrap();
    assert!(
        last.contains("Summary:") && last.contains("All counts match"),
        "{last}"
    );
}

#[test]
fn demo_stops_cleanly_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let port = support::free_port();
    let mut child = Command::new(support::bin())
        .args([
            "demo",
            "--min-engine-delay",
            "30s",
            "--max-engine-delay",
            "40s",
            "--no-live",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // The banner names the metrics URL once the agent listens.
    let banner = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("/metrics"))
        .expect("banner");
    assert!(
        banner.contains(&format!("127.0.0.1:{port}/metrics")),
        "{banner}"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(status.success(), "demo exit after Ctrl-C: {status:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
}

#[test]
fn demo_keep_serves_after_the_simulation_until_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let port = support::free_port();
    let mut child = Command::new(support::bin())
        .args([
            "demo",
            "--pods",
            "1",
            "--min-engine-delay",
            "1s",
            "--max-engine-delay",
            "1s",
            "--tick",
            "100ms",
            "--no-live",
            "--keep",
            "--link",
            "alerts=http://127.0.0.1:1/alerts",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let done = line.starts_with("--keep:");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("All counts match"), "{text}");
    assert!(text.contains("alerts: http://127.0.0.1:1/alerts"), "{text}");
    assert!(
        text.contains("AT RISK    requests served inside the gap"),
        "{text}"
    );
    // The simulation is over and the agent still answers, with its counts.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, body) =
        support::http_get(addr, "/metrics").expect("/metrics after the simulation");
    assert_eq!(status, 200);
    let starts: f64 = body
        .lines()
        .filter(|l| l.starts_with("litellm_sentinel_proxy_starts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(starts, 1.0, "{body}");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "--keep exited on its own"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(status.success(), "demo exit after Ctrl-C: {status:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
}

#[test]
fn a_headerless_traceback_at_the_end_of_a_file_counts_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("litellm-tail.log");
    let text = "\
2026-11-24T10:00:00Z INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)
2026-11-24T10:00:01Z Traceback (most recent call last):
2026-11-24T10:00:01Z   File \"/usr/lib/python3.13/site-packages/prisma/engine/http.py\", line 97, in request
2026-11-24T10:00:01Z     response = await self.session.request(method, url, **kwargs)
2026-11-24T10:00:01Z httpx.ConnectError: All connection attempts failed
";
    std::fs::write(&f, text).expect("write");
    let v = report_json(&f);
    assert_eq!(
        v["pods"][0]["counts"]["db_connect_errors_by_operation"]["other"], 1,
        "{v}"
    );
    assert_eq!(v["totals"]["db_connect_errors"], 1);
    // The log ends one second after the start, still failing: an open gap.
    let start = &v["pods"][0]["starts"][0];
    assert_eq!(start["open"], true, "{v}");
    assert_eq!(start["gap_seconds"], serde_json::Value::Null);
    assert_eq!(start["failing_seconds"], 1.0);
}
