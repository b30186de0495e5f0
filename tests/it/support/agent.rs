//! Helpers for tests that run the real `litellm-sentinel` binary: a CRI log
//! tree, the agent process on a free loopback port, and `/metrics` reads.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_litellm-sentinel")
}

/// A free loopback port (bound then released; the agent binds it right
/// after), taken from OUTSIDE the kernel's ephemeral range: a port a test
/// reserves this way and connects to later (a stand-in engine that starts
/// late) was once handed by bind(0) to another test's listener meanwhile,
/// and the connect that had to fail succeeded. bind(0) and connect() never
/// hand out ports below the range.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let (start, end) = [(10000, lo), (hi + 1, 65536)]
        .into_iter()
        .find(|(a, b)| b.saturating_sub(*a) >= 1000)
        .unwrap_or_else(|| panic!("the ephemeral range {lo}-{hi} leaves no ports for the tests"));
    for _ in 0..200 {
        // A random pick (RandomState is seeded per instance).
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = (start + (h.finish() % u64::from(end - start)) as u32) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port outside the ephemeral range {lo}-{hi}");
}

/// Polls `cond` until it holds or `deadline` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(cond(), "timed out after {deadline:?} waiting for: {what}");
}

/// A minimal HTTP GET (the tests need no client crate).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies: good enough to search in, since chunk sizes are on their own lines.
    Some((status, body))
}

/// The value of one series in a Prometheus text exposition.
pub fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            return None;
        }
        if labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            value.parse().ok()
        } else {
            None
        }
    })
}

/// A CRI record line with the given RFC 3339 timestamp.
pub fn cri(ts: &str, stream: &str, msg: &str) -> String {
    format!("{ts} {stream} F {msg}\n")
}

/// Now as an RFC 3339 timestamp (what containerd writes).
pub fn now_ts() -> String {
    litellm_sentinel::time::Timestamp::now().to_string()
}

/// A `/var/log/pods`-shaped tree in a temp dir.
pub struct LogTree {
    pub dir: tempfile::TempDir,
}

impl LogTree {
    pub fn new() -> LogTree {
        LogTree {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn pods(&self) -> PathBuf {
        self.dir.path().join("pods")
    }
    /// `<pods>/<ns>_<pod>_<uid>/litellm/0.log`, directories created.
    pub fn log_path(&self, ns: &str, pod: &str) -> PathBuf {
        let d = self
            .pods()
            .join(format!(
                "{ns}_{pod}_7d3e8a42-0000-4000-8000-00000000{:04}",
                pod.len()
            ))
            .join("litellm");
        std::fs::create_dir_all(&d).expect("mkdir");
        d.join("0.log")
    }
    pub fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open log");
        f.write_all(text.as_bytes()).expect("append");
    }
    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state").join("state.json")
    }
    /// An agent config for this tree.
    pub fn config(&self, port: u16, extra: &str) -> PathBuf {
        let p = self.dir.path().join("agent.toml");
        let text = format!(
            "globs = [\"{}/*_*litellm*_*/*/*.log\"]\nstate_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nread_from = \"beginning\"\ncheckpoint_interval = \"200ms\"\npoll_interval = \"500ms\"\n{extra}",
            self.pods().display(),
            self.state_file().display()
        );
        std::fs::write(&p, text).expect("write config");
        p
    }
}

/// The agent as a child process; killed on drop.
pub struct AgentProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl AgentProc {
    pub fn start(config: &Path, port: u16) -> AgentProc {
        AgentProc::start_as(config, port, None)
    }

    /// [`AgentProc::start`] as another user (`uid`, `gid`), e.g. `nobody`
    /// when the tests run as root and need permissions to deny something.
    pub fn start_as(config: &Path, port: u16, user: Option<(u32, u32)>) -> AgentProc {
        use std::os::unix::process::CommandExt;
        let log = config.with_extension(format!("{}.log", Instant::now().elapsed().as_nanos()));
        let logf = std::fs::File::create(&log).expect("agent log");
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf);
        if let Some((uid, gid)) = user {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("spawn agent");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let a = AgentProc { child, addr, log };
        wait_until("agent /healthz", Duration::from_secs(20), || {
            http_get(addr, "/healthz").is_some_and(|(s, _)| s == 200)
        });
        a
    }
    pub fn metrics(&self) -> String {
        http_get(self.addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.metrics(), name, labels).unwrap_or(f64::NAN)
    }
    /// Waits until the series has exactly `want`.
    pub fn wait_value(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let mut last = f64::NAN;
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            last = self.value(name, labels);
            if last == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{name}{labels:?} = {last}, want {want}\nagent log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
    pub fn sigterm(mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        // The DaemonSet contract: a final checkpoint and exit within 5 s.
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                Instant::now() < end,
                "agent did not exit within 5 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AgentProc {
    /// Starts the binary with `args` (e.g. `run --config …`) and extra
    /// environment (`RUST_LOG` defaults to `info`), stderr into `log`; waits
    /// for `/healthz` on `port`. For tests that need their own flags, env or
    /// one log file per restart.
    pub fn start_with<S: AsRef<std::ffi::OsStr>>(
        args: &[S],
        env: &[(&str, &str)],
        port: u16,
        log: &Path,
    ) -> AgentProc {
        let logf = std::fs::File::create(log).expect("agent log");
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn agent");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut a = AgentProc {
            child,
            addr,
            log: log.to_path_buf(),
        };
        let end = Instant::now() + Duration::from_secs(20);
        while http_get(addr, "/healthz").is_none_or(|(s, _)| s != 200) {
            if let Ok(Some(st)) = a.child.try_wait() {
                panic!(
                    "agent exited ({st}) before /healthz answered:\n{}",
                    a.log_text()
                );
            }
            assert!(
                Instant::now() < end,
                "agent /healthz did not answer within 20 s:\n{}",
                a.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the agent logged so far (stderr).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// `/healthz` answers 200 and the process has not exited.
    pub fn healthy(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
            && http_get(self.addr, "/healthz").is_some_and(|(s, _)| s == 200)
    }
}

/// Resident set size of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The sum of every series of `name` whose labels include `labels`.
pub fn metric_sum(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            if n != name
                || !labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            {
                return None;
            }
            value.parse::<f64>().ok()
        })
        .sum()
}
