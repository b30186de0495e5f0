//! The tailer at DEFAULT settings (poll_interval 60 s, checkpoint_interval
//! 5 s), against the real agent binary: what a node does between two full
//! passes must be seen within one tick, not at the next safety rescan.

use crate::support;

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

/// `report` over a pod directory caught between kubelet's compression and
/// its removal of the plain file: `0.log.<ts>` and `0.log.<ts>.gz` hold the
/// same generation, counted once (the issue: 9 instead of 5).
#[test]
fn report_counts_a_rotated_file_and_its_gz_copy_once() {
    let tree = LogTree::new();
    let log = tree.log_path("llm", "litellm-edge");
    let rotated = log.with_file_name("0.log.20261124-101500");
    std::fs::write(&rotated, budget_lines(4)).expect("rotated");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(log.with_file_name("0.log.20261124-101500.gz")).expect("gz"),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut enc, &std::fs::read(&rotated).expect("read")).expect("gz");
    enc.finish().expect("gz finish");
    LogTree::append(&log, &budget_lines(1));
    let out = std::process::Command::new(support::bin())
        .args(["report", "--json"])
        .arg(tree.pods())
        .output()
        .expect("report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"budget_cache_misses\":5") || text.contains("\"budget_cache_misses\": 5"),
        "{text}"
    );
}

/// Two agents on one state file would overwrite each other's checkpoints
/// (and one would count everything again after a restart): the second one
/// refuses to start and says why.
#[test]
fn second_agent_on_the_same_state_file_refuses_to_start() {
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = default_config(&tree, port, "");
    LogTree::append(&tree.log_path("llm", "litellm-edge"), &budget_lines(1));
    let first = AgentProc::start(&cfg, port);
    let cfg2 = tree.dir.path().join("second.toml");
    let text = std::fs::read_to_string(&cfg).expect("cfg").replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", support::free_port()),
    );
    std::fs::write(&cfg2, text).expect("cfg2");
    let mut second = std::process::Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&cfg2)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = second.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < end,
            "the second agent did not refuse to start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(!status.success());
    assert!(err.contains("locked by another litellm-sentinel"), "{err}");
    // The first one is unaffected.
    counted_within(
        &first,
        &[("pod", "litellm-edge")],
        1.0,
        Duration::from_secs(10),
    );
}

/// A state file from a newer release is somebody else's layout: the agent
/// refuses to start (and says so) instead of resetting offsets and counters.
#[test]
fn state_file_of_a_newer_version_is_refused_not_reset() {
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = default_config(&tree, port, "");
    let state = tree.state_file();
    std::fs::create_dir_all(state.parent().expect("dir")).expect("mkdir");
    let newer = br#"{"version":999,"layout":"from the future"}"#;
    std::fs::write(&state, newer).expect("state");
    let out = std::process::Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("version 999") && err.contains("refusing to start"),
        "{err}"
    );
    assert_eq!(std::fs::read(&state).expect("state kept"), newer);
}

/// A pod logging faster than the agent reads (the issue: 250 MB/s held the
/// tail thread, another pod's event took 14.2 s and no checkpoint was
/// written): another pod's event is counted within a deadline while the
/// flood is still being read, and checkpoints go on.
#[test]
fn flooding_pod_cannot_starve_another_pod_or_the_checkpoint() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = default_config(&tree, port, "checkpoint_interval = \"1s\"\n");
    let flood = tree.log_path("llm", "litellm-flood");
    let quiet = tree.log_path("llm", "litellm-quiet-one");
    LogTree::append(&flood, &budget_lines(1));
    LogTree::append(&quiet, &budget_lines(1));
    let agent = AgentProc::start(&cfg, port);
    counted_within(
        &agent,
        &[("pod", "litellm-quiet-one")],
        1.0,
        Duration::from_secs(20),
    );
    counted_within(
        &agent,
        &[("pod", "litellm-flood")],
        1.0,
        Duration::from_secs(20),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    // The flood is sized to the reader: the writer keeps LEAD bytes ahead of
    // what the agent has read, however fast it reads (a debug build decodes
    // these lines at a few MB/s, a release build at well over 100 MB/s: a
    // fixed rate either floods a debug agent or lets a release one keep up).
    // MAX_FLOOD bounds the disk it takes if an agent reads faster still.
    const LEAD: u64 = 96_000_000;
    const MAX_FLOOD: u64 = 3_000_000_000;
    let writer = {
        let (stop, written, flood, addr) =
            (stop.clone(), written.clone(), flood.clone(), agent.addr);
        std::thread::spawn(move || {
            let t = support::now_ts();
            // JSON_LOGS lines with a `\u` escape (Python's json.dumps writes
            // any non-ASCII character so): each must be decoded, whatever
            // the scanner skips.
            let chunk: String = (0..8000)
                .map(|i| support::cri(&t, "stdout", &format!("{{\"message\": \"litellm.acompletion(model=gpt-4o-mini) 200 OK caf\\u00e9 {i}\", \"level\": \"INFO\"}}")))
                .collect();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&flood)
                .expect("flood");
            let end = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                let read = support::http_get(addr, "/metrics")
                    .and_then(|(_, body)| {
                        support::metric(&body, "litellm_sentinel_bytes_read_total", &[])
                    })
                    .unwrap_or(0.0) as u64;
                while written.load(Ordering::Relaxed) < (read + LEAD).min(MAX_FLOOD) {
                    std::io::Write::write_all(&mut f, chunk.as_bytes()).expect("write");
                    written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                // Scraping more often only loads the agent it measures.
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Until the agent is well behind.
    let bytes_read = |a: &AgentProc| a.value("litellm_sentinel_bytes_read_total", &[]);
    support::wait_until(
        "the flood outruns the agent",
        Duration::from_secs(20),
        || written.load(Ordering::Relaxed) as f64 > bytes_read(&agent) + 64e6,
    );
    let c0 = agent.value("litellm_sentinel_checkpoint_writes_total", &[]);
    LogTree::append(&quiet, &budget_lines(1));
    counted_within(
        &agent,
        &[("pod", "litellm-quiet-one")],
        2.0,
        Duration::from_secs(3),
    );
    support::wait_until(
        "a checkpoint during the flood",
        Duration::from_secs(5),
        || agent.value("litellm_sentinel_checkpoint_writes_total", &[]) > c0,
    );
    let behind = written.load(Ordering::Relaxed) as f64 - bytes_read(&agent);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(
        behind > 0.0,
        "the flood was read up: the test did not flood (the agent read more than \
         {MAX_FLOOD} bytes before the checks were done)"
    );
}

/// A glob removed by a hot reload and added back later (the issue: spend
/// drops 1 → 2): the file resumes at its position; only what was written
/// meanwhile is counted.
#[test]
fn glob_removed_and_re_added_by_reload_counts_nothing_twice() {
    let tree = LogTree::new();
    let port = support::free_port();
    // A short safety rescan so the unmatched file closes within the test.
    let cfg = default_config(&tree, port, "poll_interval = \"300ms\"\n");
    let log = tree.log_path("llm", "litellm-edge");
    LogTree::append(&log, &budget_lines(2));
    let agent = AgentProc::start(&cfg, port);
    let l = [("pod", "litellm-edge")];
    counted_within(&agent, &l, 2.0, Duration::from_secs(20));
    let text = std::fs::read_to_string(&cfg).expect("cfg");
    let elsewhere = text.replacen(
        &format!("{}/", tree.pods().display()),
        &format!("{}/", tree.dir.path().join("nowhere").display()),
        1,
    );
    assert_ne!(elsewhere, text);
    std::fs::write(&cfg, &elsewhere).expect("cfg");
    let reloads = "litellm_sentinel_config_reloads_total";
    agent.wait_value(reloads, &[("result", "success")], 1.0);
    agent.wait_value("litellm_sentinel_files_watched", &[], 0.0);
    LogTree::append(&log, &budget_lines(1));
    std::fs::write(&cfg, &text).expect("cfg");
    agent.wait_value(reloads, &[("result", "success")], 2.0);
    counted_within(&agent, &l, 3.0, Duration::from_secs(10));
    let c0 = agent.value("litellm_sentinel_checkpoint_writes_total", &[]);
    support::wait_until("settle", Duration::from_secs(15), || {
        agent.value("litellm_sentinel_checkpoint_writes_total", &[]) >= c0 + 2.0
    });
    assert_eq!(agent.value(BUDGET, &l), 3.0);
}
