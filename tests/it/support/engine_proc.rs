//! Stand-in query engines as real processes, named and started the way
//! prisma-client-py starts the Prisma engine
//! (`query-engine-debian-openssl-3.0.x … -p <port> --enable-metrics --enable-raw-queries`),
//! so the sidecar finds them in `/proc` like real ones.
//!
//! The process is this test binary re-executed with argv[0] renamed, running
//! the ignored test that calls [`standin_process_main`]; the stand-in itself
//! is `litellm_sentinel::engine_standin` (the engine's wire format).
//!
//! Isolation: the machine runs other tests (and other people's) that start
//! `query-engine-*` processes too, so each test gets its own "proc root": a
//! directory holding one symlink `<pid> -> /proc/<pid>` per engine it
//! started. Discovery reads the real `/proc/<pid>/cmdline` through it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use litellm_sentinel::time::Timestamp;

/// argv[0] of the real Debian engine build (`comm` is `query-engine-de`).
pub const ENGINE_ARGV0: &str =
    "/root/.cache/prisma-python/binaries/5.17.0/393aa359c9ad4a4bb28630fb5613f9c281cde053/query-engine-debian-openssl-3.0.x";

/// A running stand-in engine process.
pub struct EngineProc {
    child: Child,
    stdin: Option<ChildStdin>,
    bound: mpsc::Receiver<Timestamp>,
    bound_at: Option<Timestamp>,
    pub port: u16,
}

impl EngineProc {
    /// Starts an engine on `port` that listens after `bind_after`, runs
    /// `helper_test` of the current test binary, and links it into `proc_root`.
    pub fn spawn(
        helper_test: &str,
        proc_root: &Path,
        port: u16,
        bind_after: Duration,
    ) -> EngineProc {
        let exe = std::env::current_exe().expect("test binary");
        let port_s = port.to_string();
        let mut child = Command::new(exe)
            .arg0(ENGINE_ARGV0)
            .args([
                helper_test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "--",
            ])
            .args(["-p", &port_s, "--enable-metrics", "--enable-raw-queries"])
            .env("SENTINEL_STANDIN_PROCESS", "1")
            .env(
                "SENTINEL_STANDIN_BIND_AFTER_MS",
                bind_after.as_millis().to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn stand-in engine");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, bound) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print `test <name> ... ` before the helper's own output.
                if let Some((_, nanos)) = line.split_once("STANDIN_BOUND_AT=") {
                    if let Ok(n) = nanos.trim().parse::<i64>() {
                        let _ = tx.send(Timestamp(n));
                    }
                }
            }
        });
        std::os::unix::fs::symlink(
            format!("/proc/{}", child.id()),
            proc_root.join(child.id().to_string()),
        )
        .expect("link into the proc root");
        EngineProc {
            stdin: child.stdin.take(),
            child,
            bound,
            bound_at: None,
            port,
        }
    }

    /// When the engine started listening (waits up to `deadline`).
    pub fn wait_bound(&mut self, deadline: Duration) -> Timestamp {
        if let Some(t) = self.bound_at {
            return t;
        }
        let t = self
            .bound
            .recv_timeout(deadline)
            .expect("stand-in engine never reported that it listens");
        self.bound_at = Some(t);
        t
    }

    /// From now on queries answer Prisma's P1001 (the database went away).
    pub fn database_gone(&mut self) {
        self.command("db_down");
    }

    /// Queries work again.
    pub fn database_back(&mut self) {
        self.command("healthy");
    }

    fn command(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{cmd}").expect("write to stand-in");
        stdin.flush().expect("flush");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as LiteLLM does to an engine that does not exit on SIGTERM.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EngineProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Links this test process and its ancestors (up to the one whose parent is
/// 0 or 1) into `proc_root`, so discovery sees a complete process tree above
/// the engines, as in a pod, and derives the proxy identity from it.
pub fn link_ancestors(proc_root: &Path) {
    let mut pid = std::process::id();
    for _ in 0..64 {
        let link = proc_root.join(pid.to_string());
        if !link.exists() {
            std::os::unix::fs::symlink(format!("/proc/{pid}"), &link).expect("link ancestor");
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after = &stat[stat.rfind(')').expect("comm") + 1..];
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("ppid");
        if ppid <= 1 {
            return;
        }
        pid = ppid;
    }
}

/// The body of the helper process: a stand-in engine on the `-p` port,
/// commands on stdin (`db_down`, `healthy`), exit at end of stdin. Returns
/// at once when not started by [`EngineProc::spawn`].
pub fn standin_process_main() {
    use litellm_sentinel::engine_standin::{EngineStandin, StandinMode, StandinOptions};
    if std::env::var_os("SENTINEL_STANDIN_PROCESS").is_none() {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .iter()
        .position(|a| a == "-p")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .expect("-p <port>");
    let bind_after = std::env::var("SENTINEL_STANDIN_BIND_AFTER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let standin = EngineStandin::start(StandinOptions {
            bind_after,
            port,
            ..Default::default()
        })
        .await
        .expect("stand-in");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut reported = false;
        loop {
            if !reported {
                if let Some(t) = standin.bound_at() {
                    println!("STANDIN_BOUND_AT={}", t.0);
                    let _ = std::io::stdout().flush();
                    reported = true;
                }
            }
            tokio::select! {
                cmd = rx.recv() => match cmd.as_deref() {
                    Some("db_down") => standin.set_mode(StandinMode::DbUnreachable),
                    Some("healthy") => standin.set_mode(StandinMode::Healthy),
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(5)), if !reported => {}
            }
        }
        standin.shutdown().await;
    });
}
