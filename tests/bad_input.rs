//! Bad input never stops the agent: each case checks that it keeps running
//! (`/healthz` 200), counts the problem under `lines_malformed_total{reason}`
//! or `read_errors_total{reason}`, keeps counting real events around it, and
//! (where memory is at stake) keeps its RSS bounded.

#[path = "support/agent.rs"]
mod support;

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
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!(
            "skipped: running as root, mode bits cannot deny root access (permission_denied untestable)"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tree = LogTree::new();
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
    let mut agent = AgentProc::start(&tree.config(port, ""), port);
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
