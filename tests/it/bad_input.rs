//! Bad input never stops the agent: each case checks that it keeps running
//! (`/healthz` 200), counts the problem under `lines_malformed_total{reason}`
//! or `read_errors_total{reason}`, keeps counting real events around it, and
//! (where memory is at stake) keeps its RSS bounded.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{cri, http_get, now_ts, wait_until, AgentProc, LogTree};

const DROPPED: &str = "litellm_sentinel_spend_batches_dropped_total";
const BUDGET: &str = "litellm_sentinel_budget_cache_misses_total";
const MALFORMED: &str = "litellm_sentinel_lines_malformed_total";
const READ_ERRORS: &str = "litellm_sentinel_read_errors_total";
const CHECKPOINTS: &str = "litellm_sentinel_checkpoint_writes_total";
const CHECKPOINT_FAILURES: &str = "litellm_sentinel_checkpoint_failures_total";

const SPEND_HEADER: &str = "\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:3905 - Error in spend logs queue monitor: All connection attempts failed";
const BUDGET_LINE: &str = "Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed.";

fn pod(name: &str) -> [(&str, &str); 2] {
    [("namespace", "llm"), ("pod", name)]
}

fn malformed(agent: &AgentProc, reason: &str) -> f64 {
    agent.value(MALFORMED, &[("reason", reason)])
}

fn read_errors(agent: &AgentProc, reason: &str) -> f64 {
    agent.value(READ_ERRORS, &[("reason", reason)])
}

fn assert_healthy(agent: &mut AgentProc) {
    assert!(
        agent.healthy(),
        "agent is not healthy:\n{}",
        agent.log_text()
    );
}

/// A first line that makes the file CRI (the format is detected per file).
fn first_line() -> String {
    cri(&now_ts(), "stdout", "INFO:     Started server process [1]")
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("write");
}

/// Waits until the agent has taken `n` more checkpoints (each after a pass over the files).
fn passes(agent: &AgentProc, n: f64) {
    let c0 = agent.value(CHECKPOINTS, &[]);
    wait_until("more checkpoints", Duration::from_secs(20), || {
        agent.value(CHECKPOINTS, &[]) >= c0 + n
    });
}

/// A config with its own `state_file`.
fn config_with_state(tree: &LogTree, port: u16, state_file: &Path, extra: &str) -> PathBuf {
    let p = tree.dir.path().join("agent-custom.toml");
    let text = format!(
        "globs = [\"{}/*_*litellm*_*/*/*.log\"]\nstate_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nread_from = \"beginning\"\ncheckpoint_interval = \"200ms\"\npoll_interval = \"500ms\"\n{extra}",
        tree.pods().display(),
        state_file.display()
    );
    std::fs::write(&p, text).expect("write config");
    p
}

#[test]
fn invalid_utf8_and_binary_garbage_do_not_stop_counting() {
    let tree = LogTree::new();
    let log = tree.log_path("llm", "litellm-garbage");
    let t = now_ts();
    let mut bytes = first_line().into_bytes();
    // Invalid UTF-8 inside an ordinary message and inside an event's own line.
    bytes.extend_from_slice(format!("{t} stdout F INFO:     caf\u{e9} ").as_bytes());
    bytes.extend_from_slice(b"\xff\xfe\xc3\x28 \xe2\x82 lone continuation \x80\x80\n");
    bytes.extend_from_slice(format!("{t} stderr F ").as_bytes());
    bytes.extend_from_slice(b"\xc3\x28");
    bytes.extend_from_slice(SPEND_HEADER.as_bytes());
    bytes.extend_from_slice(b" \xff\xff\n");
    // Binary garbage: NUL bytes inside a CRI message, then raw bytes (every value, newlines included).
    bytes.extend_from_slice(format!("{t} stdout F abc\0\0\x01\x02def\0\n").as_bytes());
    for round in 0..16u8 {
        bytes.extend((0u8..=255).map(|b| b.wrapping_mul(31).wrapping_add(round)));
    }
    bytes.push(b'\n');
    // An event after all of it still counts.
    bytes.extend_from_slice(cri(&t, "stderr", BUDGET_LINE).as_bytes());
    append_bytes(&log, &bytes);

    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    let l = pod("litellm-garbage");
    agent.wait_value(DROPPED, &l, 1.0);
    agent.wait_value(BUDGET, &l, 1.0);
    wait_until("binary lines counted", Duration::from_secs(10), || {
        malformed(&agent, "binary") >= 2.0
    });
    assert!(
        malformed(&agent, "bad_timestamp") + malformed(&agent, "missing_fields") >= 1.0,
        "the raw garbage lines are malformed CRI:\n{}",
        agent.metrics()
    );
    // The event line itself was not malformed: invalid UTF-8 in a message is just bytes.
    assert_eq!(malformed(&agent, "too_long"), 0.0);
    assert_healthy(&mut agent);
}

#[test]
fn ten_megabyte_lines_are_capped_and_memory_stays_bounded() {
    let tree = LogTree::new();
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    let rss_before = support::rss_kib(agent.pid()).expect("rss");
    let t = now_ts();

    // 1. One physical line of 10 MB, no newline yet.
    let long = tree.log_path("llm", "litellm-long");
    append_bytes(&long, first_line().as_bytes());
    let mut big = format!("{t} stderr F ").into_bytes();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    append_bytes(&long, &big);
    // 2. A 10 MB record in 16 KiB `P` chunks whose `F` comes last.
    let chunked = tree.log_path("llm", "litellm-chunked");
    append_bytes(&chunked, first_line().as_bytes());
    let chunk = "y".repeat(16 * 1024);
    let mut text = String::new();
    for _ in 0..640 {
        text.push_str(&format!("{t} stderr P {chunk}\n"));
    }
    append_bytes(&chunked, text.as_bytes());

    wait_until("20 MB read", Duration::from_secs(60), || {
        agent.value("litellm_sentinel_bytes_read_total", &[]) >= 20.0 * 1024.0 * 1024.0
    });
    let rss = support::rss_kib(agent.pid()).expect("rss");
    assert!(
        rss < 200 * 1024,
        "RSS {rss} KiB after 20 MB of over-long records (before: {rss_before} KiB)"
    );
    // The long line ends; the chunked record gets its `F`; events after both count.
    append_bytes(
        &long,
        format!("\n{}", cri(&t, "stderr", BUDGET_LINE)).as_bytes(),
    );
    append_bytes(
        &chunked,
        format!(
            "{}{}",
            cri(&t, "stderr", "end of the long record"),
            cri(&t, "stderr", BUDGET_LINE)
        )
        .as_bytes(),
    );
    agent.wait_value(BUDGET, &pod("litellm-long"), 1.0);
    agent.wait_value(BUDGET, &pod("litellm-chunked"), 1.0);
    // One over-long physical line, one over-long joined record: each counted once.
    agent.wait_value(MALFORMED, &[("reason", "too_long")], 2.0);
    let rss = support::rss_kib(agent.pid()).expect("rss");
    assert!(rss < 200 * 1024, "RSS {rss} KiB");
    assert_healthy(&mut agent);
}

#[test]
fn bad_timestamps_and_missing_fields_are_counted_by_reason() {
    let tree = LogTree::new();
    let log = tree.log_path("llm", "litellm-fields");
    let t = now_ts();
    let mut text = first_line();
    text.push_str("2026-13-45T99:61:00Z stderr F Error in spend logs queue monitor: All connection attempts failed\n");
    text.push_str("yesterday at noon stderr F hello\n");
    text.push_str(&format!("{t} stderr\n"));
    text.push_str(&format!("{t} stdin F not a stream\n"));
    text.push_str(&format!("{t} stdout X bad tag\n"));
    text.push_str(&cri(&t, "stderr", BUDGET_LINE));
    LogTree::append(&log, &text);
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    agent.wait_value(BUDGET, &pod("litellm-fields"), 1.0);
    agent.wait_value(MALFORMED, &[("reason", "bad_timestamp")], 2.0);
    agent.wait_value(MALFORMED, &[("reason", "missing_fields")], 3.0);
    // A bad timestamp loses the timestamp, not the event (issue 11): the
    // out-of-range record is still classified; the unframed lines are not.
    agent.wait_value(DROPPED, &pod("litellm-fields"), 1.0);
    assert_healthy(&mut agent);
}

#[test]
fn partial_record_without_final_chunk_is_flushed_when_the_file_goes() {
    let tree = LogTree::new();
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    let t = now_ts();
    let partial = format!(
        "{}{t} stderr P Error in spend logs queue monitor: All connection attempts failed\n",
        first_line()
    );
    // Deleted while open.
    let deleted = tree.log_path("llm", "litellm-deleted");
    LogTree::append(&deleted, &partial);
    // Rotated (rename + new file).
    let rotated = tree.log_path("llm", "litellm-rotated");
    LogTree::append(&rotated, &partial);
    wait_until("both files read", Duration::from_secs(20), || {
        agent.value("litellm_sentinel_lines_read_total", &[]) >= 4.0
    });
    // Nothing is emitted while the `F` may still come.
    assert_eq!(malformed(&agent, "unterminated_partial"), 0.0);
    let none_yet = agent.value(DROPPED, &pod("litellm-deleted"));
    assert!(none_yet.is_nan() || none_yet == 0.0, "{none_yet}");
    std::fs::remove_file(&deleted).expect("rm");
    std::fs::rename(&rotated, rotated.with_file_name("0.log.20261124-101500")).expect("mv");
    LogTree::append(&rotated, &cri(&t, "stdout", "INFO:     new file"));
    agent.wait_value(MALFORMED, &[("reason", "unterminated_partial")], 2.0);
    // The flushed record is a whole spend-queue header: it counts, once.
    agent.wait_value(DROPPED, &pod("litellm-deleted"), 1.0);
    agent.wait_value(DROPPED, &pod("litellm-rotated"), 1.0);
    passes(&agent, 5.0);
    assert_eq!(malformed(&agent, "unterminated_partial"), 2.0);
    assert_healthy(&mut agent);
}

#[test]
fn a_directory_named_like_the_log_is_a_read_error_reported_once() {
    let tree = LogTree::new();
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    let log = tree.log_path("llm", "litellm-dir");
    LogTree::append(
        &log,
        &format!("{}{}", first_line(), cri(&now_ts(), "stderr", BUDGET_LINE)),
    );
    agent.wait_value(BUDGET, &pod("litellm-dir"), 1.0);
    // The file is replaced by a directory of the same name.
    std::fs::remove_file(&log).expect("rm");
    std::fs::create_dir(&log).expect("mkdir 0.log");
    agent.wait_value(READ_ERRORS, &[("reason", "not_a_file")], 1.0);
    passes(&agent, 8.0);
    assert_eq!(
        read_errors(&agent, "not_a_file"),
        1.0,
        "reported on every pass instead of once"
    );
    // Other pods are still followed.
    let other = tree.log_path("llm", "litellm-other");
    LogTree::append(
        &other,
        &format!("{}{}", first_line(), cri(&now_ts(), "stderr", BUDGET_LINE)),
    );
    agent.wait_value(BUDGET, &pod("litellm-other"), 1.0);
    assert_eq!(agent.value(BUDGET, &pod("litellm-dir")), 1.0);
    assert_healthy(&mut agent);
}

#[test]
fn symlink_loops_in_the_pods_tree_neither_hang_nor_crash() {
    use std::os::unix::fs::symlink;
    let tree = LogTree::new();
    let pods = tree.pods();
    // A log that points at itself, two that point at each other.
    let own = tree.log_path("llm", "litellm-selfloop");
    symlink(&own, &own).expect("self loop");
    let dir = own.parent().expect("dir").to_path_buf();
    symlink(dir.join("b.log"), dir.join("a.log")).expect("a->b");
    symlink(dir.join("a.log"), dir.join("b.log")).expect("b->a");
    // A pod directory that is a link to the pods root, and a container
    // directory that is a link to its own pod directory.
    symlink(&pods, pods.join("llm_litellm-rootloop_uid1")).expect("root loop");
    let d = pods.join("llm_litellm-parentloop_uid2");
    std::fs::create_dir_all(&d).expect("mkdir");
    symlink(&d, d.join("litellm")).expect("parent loop");
    // A healthy pod next to them.
    let good = tree.log_path("llm", "litellm-good");
    LogTree::append(
        &good,
        &format!("{}{}", first_line(), cri(&now_ts(), "stderr", BUDGET_LINE)),
    );

    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    agent.wait_value(BUDGET, &pod("litellm-good"), 1.0);
    wait_until("the loops are reported", Duration::from_secs(10), || {
        read_errors(&agent, "io") >= 1.0
    });
    // Passes keep running: a later event is counted too.
    passes(&agent, 5.0);
    LogTree::append(&good, &cri(&now_ts(), "stderr", BUDGET_LINE));
    agent.wait_value(BUDGET, &pod("litellm-good"), 2.0);
    assert_healthy(&mut agent);
}

#[test]
fn five_thousand_pods_over_a_cap_of_one_hundred() {
    let tree = LogTree::new();
    let pods = tree.pods();
    let t = now_ts();
    let text = format!("{}{}", first_line(), cri(&t, "stderr", BUDGET_LINE));
    for i in 0..5000 {
        let d = pods
            .join(format!(
                "llm_litellm-{i:04}_7d3e8a42-0000-4000-8000-{i:012}"
            ))
            .join("litellm");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("0.log"), &text).expect("write");
    }
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, "max_pods = 100\n"), port);
    wait_until("every file read", Duration::from_secs(120), || {
        agent.value("litellm_sentinel_lines_read_total", &[]) >= 10_000.0
    });
    let m = agent.metrics();
    assert_eq!(
        support::metric(&m, "litellm_sentinel_pods_tracked", &[]),
        Some(100.0)
    );
    let dropped = support::metric(&m, "litellm_sentinel_pods_dropped_total", &[]).unwrap_or(0.0);
    assert!(dropped >= 4900.0, "pods_dropped_total = {dropped}");
    assert_eq!(
        support::metric_sum(&m, BUDGET, &[]),
        100.0,
        "events of tracked pods count, the others are dropped"
    );
    let (status, api) = http_get(agent.addr, "/api/v1/pods").expect("api");
    assert_eq!(status, 200);
    assert!(api.contains("litellm-"), "{api}");
    let rss = support::rss_kib(agent.pid()).expect("rss");
    assert!(rss < 200 * 1024, "RSS {rss} KiB with 5,000 files");
    assert_healthy(&mut agent);
}

#[test]
fn corrupt_or_truncated_state_file_is_moved_aside_and_counting_starts_over() {
    // A NEWER version is not corrupt: the agent refuses to start on it
    // (tests/tail_live.rs, state_file_of_a_newer_version_is_refused_not_reset).
    let cases: [(&str, &[u8]); 2] = [
        (
            "truncated",
            b"{\"version\":1,\"files\":[{\"position\":{\"id\":{\"dev\":2",
        ),
        ("garbage", b"\x00\xff\xfenot json at all\n\x1b[31m"),
    ];
    for (what, bytes) in cases {
        let tree = LogTree::new();
        let state = tree.state_file();
        std::fs::create_dir_all(state.parent().expect("state dir")).expect("mkdir");
        std::fs::write(&state, bytes).expect("write state");
        let log = tree.log_path("llm", "litellm-state");
        LogTree::append(
            &log,
            &format!("{}{}", first_line(), cri(&now_ts(), "stderr", BUDGET_LINE)),
        );
        let port = support::free_port();
        let cfg = tree.config(port, "");
        let mut agent = AgentProc::start(&cfg, port);
        agent.wait_value(BUDGET, &pod("litellm-state"), 1.0);
        let moved = state.with_extension("corrupt");
        assert_eq!(
            std::fs::read(&moved).ok().as_deref(),
            Some(bytes),
            "{what}: the corrupt file is kept as {}",
            moved.display()
        );
        let text = agent.log_text();
        assert!(
            text.contains("corrupt"),
            "{what}: the agent does not say the state was corrupt:\n{text}"
        );
        assert_healthy(&mut agent);
        // The fresh state file works: a restart does not count the line again.
        wait_until("fresh checkpoint", Duration::from_secs(10), || {
            std::fs::read_to_string(&state).is_ok_and(|s| s.contains("\"budget_cache_misses\":1"))
        });
        assert!(agent.sigterm().success());
        LogTree::append(&log, &cri(&now_ts(), "stderr", BUDGET_LINE));
        let agent = AgentProc::start(&cfg, port);
        agent.wait_value(BUDGET, &pod("litellm-state"), 2.0);
    }
}

#[test]
fn state_file_under_a_regular_file_fails_checkpoints_but_tailing_continues() {
    let tree = LogTree::new();
    let afile = tree.dir.path().join("afile");
    std::fs::write(&afile, b"I am a file, not a directory\n").expect("write");
    let state = afile.join("state.json");
    let log = tree.log_path("llm", "litellm-nostate");
    LogTree::append(
        &log,
        &format!("{}{}", first_line(), cri(&now_ts(), "stderr", BUDGET_LINE)),
    );
    let port = support::free_port();
    let cfg = config_with_state(&tree, port, &state, "");
    let mut agent = AgentProc::start_with(
        &[
            std::ffi::OsStr::new("run"),
            "--config".as_ref(),
            cfg.as_os_str(),
        ],
        &[],
        port,
        &tree.dir.path().join("agent-nostate.log"),
    );
    agent.wait_value(BUDGET, &pod("litellm-nostate"), 1.0);
    wait_until("checkpoint failures", Duration::from_secs(10), || {
        agent.value(CHECKPOINT_FAILURES, &[]) >= 3.0
    });
    LogTree::append(&log, &cri(&now_ts(), "stderr", BUDGET_LINE));
    agent.wait_value(BUDGET, &pod("litellm-nostate"), 2.0);
    assert_eq!(agent.value(CHECKPOINTS, &[]), 0.0);
    let (status, _) = http_get(agent.addr, "/readyz").expect("readyz");
    assert_eq!(
        status, 503,
        "/readyz must say the state directory is unusable"
    );
    let text = agent.log_text();
    assert!(text.contains("checkpoint failed"), "{text}");
    assert_eq!(
        text.matches("checkpoint failed").count(),
        1,
        "said once per failing streak:\n{text}"
    );
    assert_healthy(&mut agent);
}

#[test]
fn state_directory_lost_while_running_fails_checkpoints_then_recovers() {
    let tree = LogTree::new();
    let log = tree.log_path("llm", "litellm-lostdir");
    LogTree::append(
        &log,
        &format!("{}{}", first_line(), cri(&now_ts(), "stderr", BUDGET_LINE)),
    );
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    agent.wait_value(BUDGET, &pod("litellm-lostdir"), 1.0);
    wait_until("a checkpoint", Duration::from_secs(10), || {
        agent.value(CHECKPOINTS, &[]) >= 1.0
    });
    // The state directory becomes a regular file (unwritable for root too).
    let dir = tree.state_file().parent().expect("dir").to_path_buf();
    let aside = dir.with_extension("aside");
    std::fs::rename(&dir, &aside).expect("mv state dir");
    std::fs::write(&dir, b"not a directory").expect("file");
    let f0 = agent.value(CHECKPOINT_FAILURES, &[]);
    wait_until("checkpoint failures", Duration::from_secs(10), || {
        agent.value(CHECKPOINT_FAILURES, &[]) >= f0 + 3.0
    });
    LogTree::append(&log, &cri(&now_ts(), "stderr", BUDGET_LINE));
    agent.wait_value(BUDGET, &pod("litellm-lostdir"), 2.0);
    // It comes back: checkpoints succeed again.
    std::fs::remove_file(&dir).expect("rm file");
    std::fs::rename(&aside, &dir).expect("mv back");
    let w0 = agent.value(CHECKPOINTS, &[]);
    wait_until("checkpoints again", Duration::from_secs(10), || {
        agent.value(CHECKPOINTS, &[]) >= w0 + 2.0
    });
    assert!(agent.log_text().contains("checkpoint writes work again"));
    assert_healthy(&mut agent);
}

#[test]
fn permission_denied_paths_are_counted() {
    use std::os::unix::fs::PermissionsExt;
    // Mode bits deny root nothing: as root (CI) the agent runs as `nobody`,
    // as a DaemonSet with `runAsNonRoot` would.
    // SAFETY: geteuid has no preconditions.
    let user = (unsafe { libc::geteuid() } == 0).then_some((65534, 65534));
    let tree = LogTree::new();
    if user.is_some() {
        // The tree's own directory is 0700: let `nobody` in and let it
        // create its state directory there.
        std::fs::set_permissions(tree.dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod tree");
    }
    let unreadable = tree.log_path("llm", "litellm-noread");
    LogTree::append(&unreadable, &first_line());
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let closed = tree.log_path("llm", "litellm-nodir");
    LogTree::append(&closed, &first_line());
    let closed_dir = closed.parent().expect("dir").to_path_buf();
    std::fs::set_permissions(&closed_dir, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let good = tree.log_path("llm", "litellm-fine");
    LogTree::append(
        &good,
        &format!("{}{}", first_line(), cri(&now_ts(), "stderr", BUDGET_LINE)),
    );
    let port = support::free_port();
    let mut agent = AgentProc::start_as(&tree.config(port, ""), port, user);
    agent.wait_value(BUDGET, &pod("litellm-fine"), 1.0);
    let end = Instant::now() + Duration::from_secs(10);
    while read_errors(&agent, "permission_denied") < 2.0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = read_errors(&agent, "permission_denied");
    std::fs::set_permissions(&closed_dir, std::fs::Permissions::from_mode(0o755))
        .expect("chmod back");
    assert!(n >= 2.0, "permission_denied = {n}:\n{}", agent.metrics());
    assert_healthy(&mut agent);
}

/// Runs the binary to completion within a deadline; (exit code, stderr).
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let err = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = Command::new(support::bin())
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(err.reopen().expect("reopen"))
        .spawn()
        .expect("spawn");
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} {env:?} kept running with an unbounded setting");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(err.path()).unwrap_or_default();
    (status.code(), text)
}

/// Settings beyond their bounds, from the file, a flag or the environment:
/// the agent refuses to start (exit 1, or 2 for a flag clap rejects) with a
/// message naming the key; it never panics (exit 101) or starts and then
/// loses a thread. On main, the first two panicked / started.
#[test]
fn out_of_range_settings_are_refused_by_key_from_file_flag_and_env() {
    let tree = LogTree::new();
    let port = support::free_port();
    let file = |name: &str, extra: &str| -> String {
        let base = std::fs::read_to_string(tree.config(port, "")).expect("config");
        // Drop the base file's value of a key the case sets itself.
        let key = extra.split(['=', ' ']).next().unwrap_or("");
        let kept: String = base
            .lines()
            .filter(|l| key.is_empty() || !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .collect();
        let p = tree.dir.path().join(name);
        std::fs::write(&p, format!("{kept}{extra}\n")).expect("write");
        p.display().to_string()
    };
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                "check-config".into(),
                file("a.toml", "checkpoint_interval = \"99999999999999999999s\""),
            ],
            vec![],
            "checkpoint_interval",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                file("b.toml", "poll_interval = \"10000000000000000000s\""),
            ],
            vec![],
            "poll_interval",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                file("c.toml", "quiet_period = 1e300"),
            ],
            vec![],
            "quiet_period",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                file("d.toml", "otlp_interval = \"48h\""),
            ],
            vec![],
            "otlp_interval",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                file(
                    "e.toml",
                    "[probe]\nfast_interval = \"10000000000000000000s\"",
                ),
            ],
            vec![],
            "fast_interval",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                file("f.toml", "[probe]\nslow_interval = \"2h\""),
            ],
            vec![],
            "probe.slow_interval",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                file("g.toml", "max_line_bytes = 1000000000000"),
            ],
            vec![],
            "max_line_bytes",
        ),
        (
            vec!["run".into(), "-c".into(), file("h.toml", "")],
            vec![("LITELLM_SENTINEL_QUIET_PERIOD", "99999999999999h")],
            "quiet-period",
        ),
        (
            vec!["run".into(), "-c".into(), file("i.toml", "")],
            vec![("LITELLM_SENTINEL_QUIET_PERIOD", "2h")],
            "quiet_period",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                file("j.toml", ""),
                "--max-pods=1000000".into(),
            ],
            vec![],
            "max_pods",
        ),
        (
            vec!["run".into(), "-c".into(), file("k.toml", "")],
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "18446744073709551615"),
            ],
            "OTEL_METRIC_EXPORT_INTERVAL",
        ),
    ];
    for (args, env, key) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = run_to_exit(&args, env);
        assert!(
            matches!(code, Some(1) | Some(2)),
            "{args:?} {env:?}: exit {code:?}, want 1 or 2:\n{err}"
        );
        assert!(
            !err.contains("panicked"),
            "{args:?} {env:?} panicked:\n{err}"
        );
        assert!(
            err.contains(key),
            "{args:?} {env:?}: error does not name {key}:\n{err}"
        );
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to the hard limit; returns it.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    #[allow(clippy::unnecessary_cast)]
    let soft = lim.rlim_cur as u64;
    soft
}

/// One GET within `budget`: connect, send, read the status line. Returns the
/// status code, or why not.
fn timed_get(addr: std::net::SocketAddr, path: &str, budget: Duration) -> Result<u16, String> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, budget).map_err(|e| format!("connect: {e}"))?;
    let left = || {
        budget
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1))
    };
    s.set_write_timeout(Some(left())).ok();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        s.set_read_timeout(Some(left())).ok();
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed before a status line".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
        if start.elapsed() > budget {
            return Err(format!("no answer within {budget:?}"));
        }
    }
    let line = String::from_utf8_lossy(&buf);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))
}

/// `/healthz`, `/readyz` and `/gate` answer within 1 s, 30 times in a row,
/// while 300 slowloris clients (one header byte every 0.5 s, reconnecting
/// when closed) and 10,000 idle connections are held against the agent at
/// its default settings. On main (one cap of 256 shared by everything),
/// the probes were refused or timed out.
///
/// The flood needs ~10,400 descriptors in this process: the test raises its
/// soft RLIMIT_NOFILE to the hard limit and, where that is lower, sizes the
/// idle flood to what fits (printed, and at least 2,000, else it fails).
#[test]
fn probes_answer_within_a_second_under_slowloris_and_ten_thousand_idle_connections() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let soft = raise_nofile();
    let idle_n = 10_000usize.min(usize::try_from(soft).unwrap_or(0).saturating_sub(1_000));
    eprintln!("RLIMIT_NOFILE {soft}: holding {idle_n} idle connections and 300 slow ones");
    assert!(
        idle_n >= 2_000,
        "RLIMIT_NOFILE {soft} is too low for a meaningful flood"
    );

    let tree = LogTree::new();
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    let addr = agent.addr;
    let stop = Arc::new(AtomicBool::new(false));

    // 300 slowloris clients on one thread: a byte each every 0.5 s, reconnecting.
    let slow_connected = Arc::new(AtomicUsize::new(0));
    let slow = {
        let (stop, connected) = (stop.clone(), slow_connected.clone());
        std::thread::spawn(move || {
            let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            let mut socks: Vec<(Option<std::net::TcpStream>, usize)> =
                (0..300).map(|_| (None, 0)).collect();
            let mut reconnects = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let round = Instant::now();
                for (sock, sent) in socks.iter_mut() {
                    if sock.is_none() {
                        *sock =
                            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                                .ok();
                        *sent = 0;
                        reconnects += 1;
                    }
                    let Some(s) = sock else { continue };
                    let byte = head.get(*sent).copied().unwrap_or(b'a');
                    s.set_write_timeout(Some(Duration::from_millis(50))).ok();
                    if s.write_all(&[byte]).is_err() {
                        *sock = None;
                    } else {
                        *sent += 1;
                    }
                }
                connected.store(
                    socks.iter().filter(|(s, _)| s.is_some()).count(),
                    Ordering::Relaxed,
                );
                let pause = Duration::from_millis(500).saturating_sub(round.elapsed());
                std::thread::sleep(pause); // the attack's own pace, not a wait for a condition
            }
            reconnects
        })
    };
    wait_until(
        "300 slow clients connected",
        Duration::from_secs(20),
        || slow_connected.load(Ordering::Relaxed) >= 250,
    );

    // The idle flood: connect and hold, never send.
    let mut idle = Vec::with_capacity(idle_n);
    let mut failed = 0usize;
    let flood_start = Instant::now();
    for _ in 0..idle_n {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => idle.push(s),
            Err(_) => failed += 1,
        }
    }
    eprintln!(
        "idle flood: {} connected in {:?}, {failed} connects failed",
        idle.len(),
        flood_start.elapsed()
    );
    assert!(
        idle.len() >= idle_n * 9 / 10,
        "the flood itself did not connect"
    );

    let mut worst = Duration::ZERO;
    let mut failures = Vec::new();
    for round in 0..30 {
        for path in ["/healthz", "/readyz", "/gate"] {
            let t = Instant::now();
            match timed_get(addr, path, Duration::from_secs(1)) {
                Ok(code) => {
                    assert!(matches!(code, 200 | 503), "{path}: {code}");
                    worst = worst.max(t.elapsed());
                }
                Err(e) => failures.push(format!("round {round} {path}: {e}")),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reconnects = slow.join().expect("slow thread");
    eprintln!("90 probes under flood: worst {worst:?}, {} failed; slow clients reconnected {reconnects} times", failures.len());
    assert!(
        failures.is_empty(),
        "probes failed under the flood:\n{}",
        failures.join("\n")
    );
    drop(idle);
    assert_healthy(&mut agent);
}

/// Record times before 2000 or more than a day ahead are malformed time: the
/// record keeps its event but loses its time (issue 11: a bad timestamp
/// loses the timestamp, not the event). A 1677 start line must not open a
/// start whose gap wraps an i64 (on main it did, and the open gap read 0), a
/// year-2999 error must not hold a gap open for centuries.
#[test]
fn timestamps_before_2000_or_a_day_ahead_are_counted_as_malformed_time() {
    let tree = LogTree::new();
    let log = tree.log_path("llm", "litellm-epochs");
    let t = now_ts();
    let mut text = first_line();
    text.push_str(&cri(
        "1677-09-21T00:12:44.000000000Z",
        "stdout",
        "INFO:     Application startup complete.",
    ));
    text.push_str(&cri(
        "1999-12-31T23:59:59.999999999Z",
        "stderr",
        SPEND_HEADER,
    ));
    text.push_str(&cri("2999-01-01T00:00:00Z", "stderr", SPEND_HEADER));
    text.push_str(&cri(&t, "stderr", BUDGET_LINE));
    LogTree::append(&log, &text);
    let port = support::free_port();
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
    agent.wait_value(BUDGET, &pod("litellm-epochs"), 1.0);
    agent.wait_value(MALFORMED, &[("reason", "bad_timestamp")], 3.0);
    // Both spend headers still count (1.83 reading: dropped batches), timeless.
    assert_eq!(agent.value(DROPPED, &pod("litellm-epochs")), 2.0);
    let (_, api) = http_get(agent.addr, "/api/v1/pods").expect("api");
    assert!(!api.contains("1677") && !api.contains("2999"), "{api}");
    assert_healthy(&mut agent);
}

/// The agent logging into a file that its own glob matches (here with
/// RUST_LOG=debug: on main, a feedback loop of ever more lines) refuses to
/// start, naming `globs` and the file; a log file outside the globs is fine.
#[test]
fn a_glob_matching_the_agents_own_log_file_is_refused() {
    use std::process::{Command, Stdio};
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = tree.config(port, "");
    // A file the glob `pods/*_*litellm*_*/*/*.log` matches.
    let own = tree.log_path("monitoring", "litellm-sentinel-abc");
    let run = |log: &Path| {
        Command::new(support::bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("spawn")
    };
    let mut child = run(&own);
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            let size = std::fs::metadata(&own).map(|m| m.len()).unwrap_or(0);
            panic!("the agent kept running while tailing its own log ({size} bytes of it)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&own).expect("own log");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("globs") && text.contains("own log output") && text.contains("0.log"),
        "{text}"
    );
    // The same agent logging next to the tree (not under a glob) runs.
    let outside = tree.dir.path().join("agent.log");
    let mut child = run(&outside);
    wait_until("agent /healthz", Duration::from_secs(20), || {
        http_get(
            format!("127.0.0.1:{port}").parse().expect("addr"),
            "/healthz",
        )
        .is_some_and(|(s, _)| s == 200)
    });
    assert!(child.try_wait().expect("wait").is_none());
    let _ = child.kill();
    let _ = child.wait();
}

/// Every error prints its cause once: the binary's message for a missing
/// config file, rule pack, web config, report input and state directory
/// names the path and the key (or flag) and carries the OS error exactly
/// once. On main, `check-config /nonexistent.toml` printed
/// `No such file or directory (os error 2): No such file or directory (os error 2)`.
#[test]
fn every_error_prints_its_cause_once() {
    let tree = LogTree::new();
    let port = support::free_port();
    let cfg = tree.config(port, "");
    let cfg = cfg.to_str().expect("utf-8 path");
    let missing = tree.dir.path().join("missing");
    let m = |name: &str| missing.join(name).display().to_string();
    let cases: Vec<(Vec<String>, Option<i32>, &str)> = vec![
        (
            vec!["check-config".into(), m("config.toml")],
            Some(1),
            "cannot read config file",
        ),
        (
            vec!["run".into(), "--config".into(), m("config.toml")],
            Some(1),
            "cannot read config file",
        ),
        (
            vec![
                "run".into(),
                "--config".into(),
                cfg.into(),
                "--rules".into(),
                m("rules.toml"),
            ],
            Some(1),
            "`rules`: cannot read the rule pack",
        ),
        (
            vec![
                "run".into(),
                "--config".into(),
                cfg.into(),
                "--web.config.file".into(),
                m("web.yml"),
            ],
            Some(1),
            "`web_config_file`",
        ),
        (vec!["report".into(), m("pod.log")], Some(3), "cannot read"),
        (
            vec![
                "report".into(),
                "--rules".into(),
                m("rules.toml"),
                "-".into(),
            ],
            Some(2),
            "`rules`: cannot read the rule pack",
        ),
    ];
    for (args, code, what) in cases {
        let out = std::process::Command::new(support::bin())
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the binary");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), code, "{args:?}: {err}");
        assert!(
            err.contains(what) && err.contains("missing"),
            "{args:?}: {err}"
        );
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{args:?}: the cause must appear exactly once: {err}"
        );
    }
    // An unwritable state directory: the agent keeps running and says why once.
    let ro = tree.dir.path().join("ro");
    std::fs::create_dir_all(&ro).expect("mkdir");
    std::fs::write(ro.join("state"), b"a file, not a directory").expect("write");
    let cfg = tree.config(
        port,
        &format!("state_file = \"{}/state/state.json\"\n", ro.display()),
    );
    let text = std::fs::read_to_string(&cfg).expect("cfg");
    // The later `state_file` key would be a duplicate: keep only the new one.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("state_file") || l.contains("/ro/"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg, text).expect("write cfg");
    let agent = AgentProc::start(&cfg, port);
    wait_until("checkpoint failure", Duration::from_secs(20), || {
        agent.value(CHECKPOINT_FAILURES, &[]) >= 1.0
    });
    let log = agent.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("checkpoint failed"))
        .unwrap_or_else(|| panic!("no checkpoint failure logged: {log}"));
    assert!(line.contains("cannot write state file"), "{line}");
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
}
