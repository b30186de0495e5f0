//! The tailer at DEFAULT settings (poll_interval 30 s, checkpoint_interval
//! 5 s), against the real agent binary: what a node does between two full
//! passes must be seen within one tick, not at the next safety rescan.

#[path = "support/agent.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{AgentProc, LogTree};

const BUDGET: &str = "litellm_sentinel_budget_cache_misses_total";

/// An agent config with nothing but the globs, the state file and the port:
/// every tailing setting at its default.
fn default_config(tree: &LogTree, port: u16, extra: &str) -> PathBuf {
    let p = tree.dir.path().join("agent.toml");
    let text = format!(
        "globs = [\"{}/*_*litellm*_*/*/*.log\"]\nstate_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nread_from = \"beginning\"\n{extra}",
        tree.pods().display(),
        tree.state_file().display()
    );
    std::fs::write(&p, text).expect("write config");
    p
}

fn budget_lines(n: usize) -> String {
    let t = support::now_ts();
    (0..n)
        .map(|_| support::cri(&t, "stderr", "Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed."))
        .collect()
}

/// Waits until the series equals `want`, at most `within`; panics with the
/// value seen and the time it took otherwise.
fn counted_within(agent: &AgentProc, labels: &[(&str, &str)], want: f64, within: Duration) {
    let start = Instant::now();
    let mut last = f64::NAN;
    while start.elapsed() < within {
        last = agent.value(BUDGET, labels);
        if last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{BUDGET}{labels:?} = {last} after {:?}, want {want}\nagent log:\n{}",
        start.elapsed(),
        agent.log_text()
    );
}

/// kubelet's rotation: `mv 0.log 0.log.<ts>; : > 0.log`, the runtime keeps
/// writing a moment to the old file, then to the new one. At default
/// settings the new file's lines are counted within the deadline (the issue:
/// 59 s later, after two 30 s full passes), and the old file is drained.
#[test]
fn rename_rotation_is_followed_within_a_tick_at_default_settings() {
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = default_config(&tree, port, "");
    let log = tree.log_path("llm", "litellm-edge");
    LogTree::append(&log, &budget_lines(2));
    let agent = AgentProc::start(&cfg, port);
    let l = [("pod", "litellm-edge")];
    counted_within(&agent, &l, 2.0, Duration::from_secs(20));
    // Several generations in a row, each rotated as soon as it was counted
    // (generations of a few seconds lost most of their lines before).
    let mut want = 2.0;
    for gen in 0..3 {
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open old");
        let rotated = log.with_file_name(format!("0.log.20261124-10150{gen}"));
        std::fs::rename(&log, &rotated).expect("rename");
        std::fs::File::create(&log).expect("create new 0.log");
        // The runtime's last write to the old file, after the rename.
        std::io::Write::write_all(&mut old, budget_lines(1).as_bytes()).expect("late write");
        drop(old);
        LogTree::append(&log, &budget_lines(3));
        want += 4.0;
        counted_within(&agent, &l, want, Duration::from_millis(2500));
    }
    // Nothing counted twice once things settle (one more checkpoint interval).
    let c0 = agent.value("litellm_sentinel_checkpoint_writes_total", &[]);
    support::wait_until(
        "a checkpoint after the rotations",
        Duration::from_secs(15),
        || agent.value("litellm_sentinel_checkpoint_writes_total", &[]) > c0,
    );
    assert_eq!(agent.value(BUDGET, &l), want);
}
