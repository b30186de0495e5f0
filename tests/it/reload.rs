//! Hot reload (file change and SIGHUP), a rejected bad config, and the
//! agent's own log formats — with the real binary.

use crate::support;

use std::time::Duration;

use support::{cri, now_ts, wait_until, AgentProc, LogTree};

const RELOADS: &str = "litellm_sentinel_config_reloads_total";

fn spend(ts: &str) -> String {
    cri(
        ts,
        "stderr",
        "Error in spend logs queue monitor: All connection attempts failed",
    )
}

#[test]
fn a_good_config_change_is_applied_and_a_bad_one_rejected() {
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = tree.config(port, "");
    let agent = AgentProc::start(&cfg, port);
    // A second tree that the first config does not cover.
    let other = tree.dir.path().join("other");
    let other_log =
        other.join("llm_litellm-new_7d3e8a42-0000-4000-8000-000000000099/litellm/0.log");
    std::fs::create_dir_all(other_log.parent().expect("parent")).expect("mkdir");
    LogTree::append(&other_log, &spend(&now_ts()));
    let text = std::fs::read_to_string(&cfg).expect("cfg");
    let both = text.replacen(
        "globs = [",
        &format!("globs = [\"{}/*_*litellm*_*/*/*.log\", ", other.display()),
        1,
    );
    // Good change, picked up from the file itself (no signal). A write can
    // reach the watcher as events on both sides of its settle time: one
    // reload or two, never a failure.
    let at_least = |result: &str, n: f64| {
        wait_until(
            &format!("{n} reload(s) {result}"),
            Duration::from_secs(20),
            || agent.value(RELOADS, &[("result", result)]) >= n,
        );
    };
    std::fs::write(&cfg, &both).expect("write cfg");
    at_least("success", 1.0);
    agent.wait_value(
        "litellm_sentinel_spend_batches_dropped_total",
        &[("pod", "litellm-new")],
        1.0,
    );
    // Bad change: an unknown key. Rejected, the old config stays in force.
    std::fs::write(&cfg, format!("{both}\nglobz = 1\n")).expect("write bad cfg");
    at_least("failure", 1.0);
    LogTree::append(&other_log, &spend(&now_ts()));
    agent.wait_value(
        "litellm_sentinel_spend_batches_dropped_total",
        &[("pod", "litellm-new")],
        2.0,
    );
    let log = std::fs::read_to_string(&agent.log).expect("agent log");
    assert!(
        log.contains("configuration rejected") && log.contains("globz"),
        "{log}"
    );
    // SIGHUP reloads too (the bad file is still there: another failure, still running).
    let (failures, successes) = (
        agent.value(RELOADS, &[("result", "failure")]),
        agent.value(RELOADS, &[("result", "success")]),
    );
    unsafe {
        libc::kill(agent.child.id() as i32, libc::SIGHUP);
    }
    at_least("failure", failures + 1.0);
    assert_eq!(agent.value(RELOADS, &[("result", "success")]), successes);
    std::fs::write(&cfg, &both).expect("restore cfg");
    at_least("success", successes + 1.0);
    assert_eq!(
        support::http_get(agent.addr, "/healthz").map(|r| r.0),
        Some(200)
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_the_effective_config() {
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = tree.config(
        port,
        "log_format = \"json\"\n[probe]\ndatabase_url = \"postgresql://llm:hunter2@db/litellm\"\n",
    );
    let agent = AgentProc::start(&cfg, port);
    let log = std::fs::read_to_string(&agent.log).expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let start = lines
        .iter()
        .find(|v| v["message"] == "effective configuration")
        .expect("start-up line");
    let c = start["config"].as_str().expect("config field");
    assert!(c.contains("globs") && c.contains("llm:***@db"), "{c}");
    assert!(!log.contains("hunter2"), "password leaked: {log}");
    assert!(lines
        .iter()
        .all(|v| v["level"].is_string() && v["timestamp"].is_string()));
}

/// A reload builds the new settings once: one compile of the rule pack at
/// start, one per reload (on main a reload compiled it three times: the
/// check, the load, and the check of the user pack). A reload rejected for
/// a broken user pack compiles nothing and keeps the old pack.
#[test]
fn a_reload_compiles_the_rule_pack_once() {
    let tree = LogTree::new();
    let port = support::free_port();
    let rules = tree.dir.path().join("rules.toml");
    std::fs::write(&rules, "").expect("empty user pack");
    let cfg = tree.config(port, &format!("rules = \"{}\"\n", rules.display()));
    let agent = AgentProc::start(&cfg, port);
    let compiles = || {
        agent
            .log_text()
            .lines()
            .filter(|l| l.contains("compiled the rule pack"))
            .count()
    };
    assert_eq!(compiles(), 1, "{}", agent.log_text());
    for n in 1..=2 {
        unsafe {
            libc::kill(agent.child.id() as i32, libc::SIGHUP);
        }
        agent.wait_value(RELOADS, &[("result", "success")], n as f64);
        assert_eq!(compiles(), 1 + n, "{}", agent.log_text());
    }
    // A broken user pack: rejected, nothing compiled, the old pack stays.
    std::fs::write(&rules, "[[rule]]\nid = 1\n").expect("bad pack");
    unsafe {
        libc::kill(agent.child.id() as i32, libc::SIGHUP);
    }
    // The write itself may trigger a reload too: one failure or two.
    wait_until("rejected reload", Duration::from_secs(20), || {
        agent.value(RELOADS, &[("result", "failure")]) >= 1.0
    });
    // The counter moves just before the ERROR line is written.
    wait_until("the rejection logged", Duration::from_secs(20), || {
        agent.log_text().contains("configuration rejected")
    });
    assert_eq!(compiles(), 3, "{}", agent.log_text());
    let log = agent.log_text();
    assert!(
        log.contains("configuration rejected") && log.contains("`rules`"),
        "{log}"
    );
}
