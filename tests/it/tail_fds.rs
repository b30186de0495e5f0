//! Out of file descriptors (the issue: `ulimit -n 256` with 400 files
//! closed and reopened files from offset 0 in a loop, counts climbing).
//!
//! The test lowers RLIMIT_NOFILE, which is per process: it re-runs itself in
//! a child process of this test binary so the other areas, running on other
//! threads of this one, keep their descriptors.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use litellm_sentinel::tail::{FileId, FileKey, ReadErrorReason, TailConfig, TailSink, Tailer};

#[derive(Default)]
struct Rec {
    open: HashSet<FileKey>,
    lines: HashMap<String, u32>,
    errors: usize,
}

impl TailSink for Rec {
    fn opened(&mut self, key: FileKey, _id: FileId, _path: &Path, _resumed: bool) {
        self.open.insert(key);
    }
    fn line(&mut self, key: FileKey, line: &[u8], _truncated: bool) {
        assert!(self.open.contains(&key), "line for a key not open");
        *self
            .lines
            .entry(String::from_utf8_lossy(line).into_owned())
            .or_default() += 1;
    }
    fn truncated(&mut self, _key: FileKey) {}
    fn closed(&mut self, key: FileKey) {
        self.open.remove(&key);
    }
    fn read_error(&mut self, _path: &Path, _reason: ReadErrorReason) {
        self.errors += 1;
    }
}

fn set_soft_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = n.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// Set in the child process that runs the body of the test.
const CHILD_ENV: &str = "SENTINEL_TAIL_FDS_CHILD";

#[test]
fn out_of_descriptors_never_rereads_and_counts_what_vanished_unread() {
    if std::env::var_os(CHILD_ENV).is_some() {
        out_of_descriptors_body();
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "tail_fds::out_of_descriptors_never_rereads_and_counts_what_vanished_unread",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child run failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn out_of_descriptors_body() {
    let d = tempfile::tempdir().expect("tempdir");
    let files = 40;
    for i in 0..files {
        let text = format!("file-{i:02}-line-0\nfile-{i:02}-line-1\n");
        std::fs::write(d.path().join(format!("{i:02}.log")), text).expect("write");
    }
    let cfg = TailConfig {
        globs: vec![litellm_sentinel::tail::discover::Glob::new(&format!(
            "{}/*.log",
            d.path().display()
        ))
        .expect("glob")],
        max_line_bytes: 1024,
        poll_interval: Duration::from_secs(30),
        force_polling: false,
        start_at_end: false,
    };
    let mut t = Tailer::new(cfg, Vec::new());
    let open_now = std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64;
    set_soft_nofile(open_now + 12);
    let mut rec = Rec::default();
    for _ in 0..5 {
        t.request_full_pass();
        t.pass(&mut rec);
    }
    assert!(rec.errors > 0, "the limit did not bite");
    assert!(rec.open.len() < files, "{} files open", rec.open.len());
    assert!(
        rec.lines.values().all(|&n| n == 1),
        "re-read: {:?}",
        rec.lines
    );
    // Files that could not be opened are rotated away and deleted: their
    // bytes are counted as never read.
    let unopened: Vec<String> = (0..files)
        .map(|i| format!("file-{i:02}-line-0"))
        .filter(|l| !rec.lines.contains_key(l))
        .collect();
    assert!(!unopened.is_empty());
    let gone = &unopened[..2.min(unopened.len())];
    let mut gone_bytes = 0;
    for l in gone {
        let p = d.path().join(format!("{}.log", &l[5..7]));
        gone_bytes += std::fs::metadata(&p).expect("meta").len();
        std::fs::remove_file(p).expect("rm");
    }
    // Back to a sane limit: everything else is read, nothing twice.
    set_soft_nofile(4096);
    for _ in 0..3 {
        t.request_full_pass();
        t.pass(&mut rec);
    }
    assert_eq!(t.stats().rotated_bytes_unread, gone_bytes);
    for i in 0..files {
        for k in 0..2 {
            let l = format!("file-{i:02}-line-{k}");
            let want = u32::from(!gone.contains(&format!("file-{i:02}-line-0")));
            assert_eq!(rec.lines.get(&l).copied().unwrap_or(0), want, "{l}");
        }
    }
}
