//! End-to-end tests of the readiness probes: the probe runner against the
//! engine stand-in (late bind, wedged, 500, wrong body, nothing listening),
//! engine discovery through a fake and the real `/proc`, LiteLLM's
//! `/health/readiness` against a tiny axum server, and a real PostgreSQL.
//!
//! No fixed sleeps: every wait is a condition polled against a deadline.

#[cfg(feature = "postgres")]
use crate::support::postgres as postgres_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use litellm_sentinel::engine_standin::{EngineStandin, StandinMode, StandinOptions};
use litellm_sentinel::probe::discover::{find_engines, EngineProcess};
use litellm_sentinel::probe::{
    spawn_probes, FailureReason, ProbeConfig, ProbeDetail, ProbeOutcome, Secret, Target,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Scheduling slack allowed on top of one fast interval (2-core CI machines
/// running other test binaries at the same time).
const SLACK: Duration = Duration::from_millis(150);
const FAST: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------- helpers

/// Everything any test in this binary logs through `tracing` (and `log`,
/// which tokio-postgres uses), at every level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            use tracing_subscriber::util::SubscriberInitExt;
            let buf = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&buf);
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || SharedBuf(Arc::clone(&sink)))
                .finish()
                .try_init();
            buf
        })
        .clone()
}

struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running probe set whose outcomes the test reads.
struct Probes {
    rx: mpsc::Receiver<ProbeOutcome>,
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Probes {
    fn start(cfg: ProbeConfig) -> Probes {
        captured_logs();
        let (tx, rx) = mpsc::channel(256);
        let (stop, stop_rx) = watch::channel(false);
        let handles = spawn_probes(cfg, tx, stop_rx);
        Probes { rx, stop, handles }
    }

    async fn next(&mut self) -> ProbeOutcome {
        tokio::time::timeout(Duration::from_secs(15), self.rx.recv())
            .await
            .expect("no probe outcome within 15 s")
            .expect("probe channel closed")
    }

    /// Outcomes until (and including) the first one matching `pred`.
    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&ProbeOutcome) -> bool,
    ) -> Vec<ProbeOutcome> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "{what}: not seen by the deadline; got {seen:?}"
            );
            let o = self.next().await;
            let done = pred(&o);
            seen.push(o);
            if done {
                return seen;
            }
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .expect("probe task did not stop on shutdown")
                .expect("probe task panicked");
        }
    }
}

fn engine_cfg(url: String, timeout: Duration) -> ProbeConfig {
    ProbeConfig {
        engine_url: Some(url),
        fast_interval: FAST,
        slow_interval: Duration::from_secs(10),
        timeout,
        ..Default::default()
    }
}

async fn first_engine_outcome(url: String, timeout: Duration) -> ProbeOutcome {
    let mut p = Probes::start(engine_cfg(url, timeout));
    let o = p.next().await;
    p.stop().await;
    assert_eq!(o.target, Target::Engine);
    o
}

// ---------------------------------------------------------------- engine

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_first_success_is_within_one_fast_interval_of_bind() {
    let standin = EngineStandin::start(StandinOptions {
        bind_after: Duration::from_millis(400),
        mode: StandinMode::Healthy,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut probes = Probes::start(engine_cfg(standin.url(), Duration::from_secs(1)));
    let seen = probes
        .until("first engine success", |o| o.result.is_ok())
        .await;
    probes.stop().await;

    let bound_at = standin.bound_at().expect("stand-in bound");
    let first_ok = seen.last().unwrap();
    assert!(
        seen.len() > 1,
        "the engine should have been refused before it bound: {seen:?}"
    );
    assert!(
        seen[..seen.len() - 1]
            .iter()
            .all(|o| o.result == Err(FailureReason::Refused)),
        "{seen:?}"
    );
    assert!(
        first_ok.at >= bound_at,
        "success {:?} before bind {:?}",
        first_ok.at,
        bound_at
    );
    let lag = Duration::from_nanos((first_ok.at.0 - bound_at.0) as u64);
    assert!(
        lag <= FAST + SLACK,
        "first success {lag:?} after bind; allowed {:?}",
        FAST + SLACK
    );
    // The measured start-up gap covers the whole bind delay.
    let gap = first_ok.at.seconds_since(seen[0].at);
    assert!(gap >= 0.3, "gap {gap}");
    standin.shutdown().await;
}

#[tokio::test]
async fn wedged_engine_times_out() {
    let s = EngineStandin::start(StandinOptions {
        mode: StandinMode::AcceptButNeverAnswer,
        ..Default::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let o = first_engine_outcome(s.url(), Duration::from_millis(300)).await;
    // Accepted, then silent: not a connect timeout.
    assert_eq!(o.result, Err(FailureReason::ResponseTimeout));
    assert!(o.duration >= Duration::from_millis(290), "{o:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    s.shutdown().await;
}

#[tokio::test]
async fn engine_500_is_http_status() {
    let s = EngineStandin::start(StandinOptions {
        mode: StandinMode::Status500,
        ..Default::default()
    })
    .await
    .unwrap();
    let o = first_engine_outcome(s.url(), Duration::from_secs(2)).await;
    assert_eq!(o.result, Err(FailureReason::HttpStatus));
    s.shutdown().await;
}

#[tokio::test]
async fn engine_wrong_body_is_bad_body() {
    let s = EngineStandin::start(StandinOptions {
        mode: StandinMode::WrongBody,
        ..Default::default()
    })
    .await
    .unwrap();
    let o = first_engine_outcome(s.url(), Duration::from_secs(2)).await;
    assert_eq!(o.result, Err(FailureReason::BadBody));
    s.shutdown().await;
}

#[tokio::test]
async fn nothing_listening_is_refused() {
    let o = first_engine_outcome(
        format!("http://127.0.0.1:{}", crate::support::free_port()),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(o.result, Err(FailureReason::Refused));
}

#[tokio::test]
async fn healthy_engine_is_up_and_then_polled_slowly() {
    let s = EngineStandin::start(StandinOptions::default())
        .await
        .unwrap();
    let mut p = Probes::start(engine_cfg(s.url(), Duration::from_secs(2)));
    assert_eq!(p.next().await.result, Ok(()));
    // Up → slow interval (10 s): nothing more arrives within a few fast intervals.
    assert!(tokio::time::timeout(FAST * 6, p.rx.recv()).await.is_err());
    p.stop().await;
    s.shutdown().await;
}

/// A healthy engine is re-probed only every slow interval, but one that is
/// killed in between is noticed within about one fast interval: its port
/// stops accepting and the next round starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_dies_while_up_is_refused_within_a_fast_interval() {
    let s = EngineStandin::start(StandinOptions::default())
        .await
        .unwrap();
    let mut p = Probes::start(engine_cfg(s.url(), Duration::from_secs(1)));
    assert_eq!(p.next().await.result, Ok(()));
    s.shutdown().await;
    let gone = litellm_sentinel::time::Timestamp::now();
    let o = p.next().await;
    p.stop().await;
    assert_eq!(o.result, Err(FailureReason::Refused), "{o:?}");
    let lag = o.at.seconds_since(gone);
    assert!(
        lag <= (FAST + SLACK).as_secs_f64(),
        "noticed {lag:.3}s after the engine went away (slow interval 10 s)"
    );
}

/// The same with discovery: the engine's process vanishing from `/proc`
/// (LiteLLM killed it) is enough, before any port is tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_engine_leaving_proc_is_probed_again_within_a_fast_interval() {
    let proc_root = tempfile::tempdir().unwrap();
    let s = EngineStandin::start(StandinOptions::default())
        .await
        .unwrap();
    write_engine_proc(proc_root.path(), 4242, s.port());
    let mut probes = Probes::start(ProbeConfig {
        discover_engine: true,
        proc_root: proc_root.path().to_path_buf(),
        fast_interval: FAST,
        slow_interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        ..Default::default()
    });
    probes.until("engine up", |o| o.result.is_ok()).await;
    // The process is gone from /proc; its port still answers (the stand-in
    // runs on): only the scan can tell.
    std::fs::remove_dir_all(proc_root.path().join("4242")).unwrap();
    let gone = litellm_sentinel::time::Timestamp::now();
    let o = probes.next().await;
    assert_eq!(o.result, Err(FailureReason::Refused), "{o:?}");
    assert!(
        o.at.seconds_since(gone) <= (FAST + SLACK).as_secs_f64(),
        "noticed {:.3}s after the process left /proc",
        o.at.seconds_since(gone)
    );
    // Respawned (another pid, the same port here): up again within a fast interval.
    write_engine_proc(proc_root.path(), 5151, s.port());
    let back = litellm_sentinel::time::Timestamp::now();
    let o = probes.until("engine back", |o| o.result.is_ok()).await;
    let up = o.last().unwrap();
    assert!(
        up.at.seconds_since(back) <= (FAST + SLACK).as_secs_f64(),
        "respawn seen {:.3}s after it",
        up.at.seconds_since(back)
    );
    probes.stop().await;
    s.shutdown().await;
}

// ---------------------------------------------------------------- discovery

/// Writes `<root>/<pid>/cmdline` as prisma-client-py would start the engine.
fn write_engine_proc(root: &Path, pid: u32, port: u16) {
    let dir = root.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let cmdline = format!(
        "/root/.cache/prisma-python/binaries/5.17.0/393aa359c9ad/query-engine-debian-openssl-3.0.x\0-p\0{port}\0--enable-metrics\0--enable-raw-queries\0"
    );
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    std::fs::write(dir.join("comm"), "query-engine-de\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_engine_is_rediscovered_after_a_restart_on_a_new_port() {
    let proc_root = tempfile::tempdir().unwrap();
    let mut probes = Probes::start(ProbeConfig {
        discover_engine: true,
        proc_root: proc_root.path().to_path_buf(),
        fast_interval: FAST,
        slow_interval: FAST * 2, // keep re-checking while up, to see the kill
        timeout: Duration::from_secs(1),
        ..Default::default()
    });
    // No engine process yet: refused.
    assert_eq!(probes.next().await.result, Err(FailureReason::Refused));

    let first = EngineStandin::start(StandinOptions::default())
        .await
        .unwrap();
    write_engine_proc(proc_root.path(), 4242, first.port());
    probes
        .until("engine found and up", |o| o.result.is_ok())
        .await;

    // LiteLLM 1.108 kills the engine and starts a new one on another port.
    first.shutdown().await;
    std::fs::remove_dir_all(proc_root.path().join("4242")).unwrap();
    let second = EngineStandin::start(StandinOptions::default())
        .await
        .unwrap();
    probes
        .until("old engine refused", |o| {
            o.result == Err(FailureReason::Refused)
        })
        .await;
    write_engine_proc(proc_root.path(), 5151, second.port());
    probes.until("new engine up", |o| o.result.is_ok()).await;
    probes.stop().await;
    second.shutdown().await;
}

/// LiteLLM 1.110.2's readiness does not name its version; the engine round
/// reads it from the `litellm-<version>.dist-info` next to the packages the
/// engines' parent (the proxy's Python) has loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_round_reads_the_litellm_version_from_the_proxys_packages() {
    let proc_root = tempfile::tempdir().unwrap();
    let s = EngineStandin::start(StandinOptions::default())
        .await
        .unwrap();
    let site = "/app/.venv/lib/python3.11/site-packages";
    let proxy = proc_root.path().join("10");
    std::fs::create_dir_all(&proxy).unwrap();
    std::fs::write(
        proxy.join("cmdline"),
        "/app/.venv/bin/python\0/app/.venv/bin/litellm\0",
    )
    .unwrap();
    std::fs::write(proxy.join("comm"), "litellm\n").unwrap();
    let stat = |pid: u32, comm: &str, ppid: u32| {
        format!(
            "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1000 0 0\n"
        )
    };
    std::fs::write(proxy.join("stat"), stat(10, "litellm", 0)).unwrap();
    std::fs::write(
        proxy.join("maps"),
        format!("7f3b2d400000-7f3b2d5a0000 r-xp 00000000 08:01 5521 {site}/pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so\n"),
    )
    .unwrap();
    let pkgs = proxy.join("root").join(site.trim_start_matches('/'));
    std::fs::create_dir_all(pkgs.join("litellm-1.110.2.dist-info")).unwrap();
    std::fs::create_dir_all(pkgs.join("litellm_proxy_extras-0.4.110.dist-info")).unwrap();
    write_engine_proc(proc_root.path(), 4242, s.port());
    std::fs::write(
        proc_root.path().join("4242/stat"),
        stat(4242, "query-engine-de", 10),
    )
    .unwrap();
    let mut probes = Probes::start(ProbeConfig {
        discover_engine: true,
        proc_root: proc_root.path().to_path_buf(),
        fast_interval: FAST,
        timeout: Duration::from_secs(1),
        ..Default::default()
    });
    let seen = probes.until("engine up", |o| o.result.is_ok()).await;
    probes.stop().await;
    let ProbeDetail::Engines(round) = &seen.last().unwrap().detail else {
        panic!("{seen:?}");
    };
    assert_eq!(
        round.litellm_version.as_deref(),
        Some("1.110.2"),
        "{round:?}"
    );
    s.shutdown().await;
}

/// Not a real test: the body of the fake engine process spawned by
/// `real_proc_discovery_through_listening_socket` (argv[0] is renamed to
/// `query-engine-…`; it listens on an ephemeral port and gives no `-p`).
#[test]
#[ignore = "helper process, spawned by real_proc_discovery_through_listening_socket"]
fn helper_fake_query_engine_process() {
    if std::env::var_os("SENTINEL_FAKE_ENGINE").is_none() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("FAKE_ENGINE_PORT={}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    // Live until the parent closes stdin.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn real_proc_discovery_through_listening_socket() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .arg0("query-engine-sentinel-selftest")
        .args([
            "probe::helper_fake_query_engine_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SENTINEL_FAKE_ENGINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test <name> ... ` before the helper's own output.
            if let Some((_, port)) = line.split_once("FAKE_ENGINE_PORT=") {
                let _ = tx.send(port.trim().parse::<u16>().unwrap());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("helper never reported its port");
    let pid = child.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let found = loop {
        let engines = find_engines(Path::new("/proc"));
        if engines.iter().any(|e| e.pid == pid) || std::time::Instant::now() > deadline {
            break engines;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(child.stdin.take()); // helper exits
    let _ = child.wait();
    assert!(
        found.contains(&EngineProcess { pid, port }),
        "pid {pid} listening on {port} not found in /proc: {found:?}"
    );
}

// ---------------------------------------------------------------- LiteLLM readiness

/// A tiny stand-in for LiteLLM answering `/health/readiness` with a fixed response.
async fn fake_litellm(
    status: StatusCode,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new().route(
        "/health/readiness",
        get(move || async move {
            (status, [("content-type", "application/json")], body).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

async fn first_readiness_outcome(status: StatusCode, body: &'static str) -> ProbeOutcome {
    let (base, server) = fake_litellm(status, body).await;
    let mut p = Probes::start(ProbeConfig {
        proxy_url: Some(base),
        fast_interval: FAST,
        timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let o = p.next().await;
    p.stop().await;
    server.abort();
    assert_eq!(o.target, Target::ProxyReadiness);
    o
}

#[tokio::test]
async fn readiness_200_not_connected_is_bad_body() {
    // LiteLLM 1.83.14 with no Prisma client: HTTP 200, but not ready.
    let o = first_readiness_outcome(
        StatusCode::OK,
        r#"{"status":"healthy","db":"Not connected","cache":null,"litellm_version":"1.83.14","success_callbacks":[],"use_aiohttp_transport":true,"log_level":"WARNING","is_detailed_debug":false}"#,
    )
    .await;
    assert_eq!(o.result, Err(FailureReason::BadBody));
    // 1.83.14 while the engine is down: still 200.
    let o = first_readiness_outcome(
        StatusCode::OK,
        r#"{"status":"healthy","db":"disconnected"}"#,
    )
    .await;
    assert_eq!(o.result, Err(FailureReason::BadBody));
}

#[tokio::test]
async fn readiness_connected_is_up() {
    let o = first_readiness_outcome(
        StatusCode::OK,
        r#"{"status":"healthy","db":"connected","cache":null,"litellm_version":"1.83.14"}"#,
    )
    .await;
    assert_eq!(o.result, Ok(()));
}

#[tokio::test]
async fn readiness_503_is_http_status() {
    // LiteLLM >= 1.84 when the DB is not connected.
    let o = first_readiness_outcome(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"detail":"Service Unhealthy (Client is not connected to the query engine, you must call `connect()` before attempting to query data.)"}"#,
    )
    .await;
    assert_eq!(o.result, Err(FailureReason::HttpStatus));
}

#[tokio::test]
async fn readiness_without_a_version_is_up_with_the_version_unknown() {
    // LiteLLM 1.110.2's public answer: `status` and `db` only.
    let o =
        first_readiness_outcome(StatusCode::OK, r#"{"status":"healthy","db":"connected"}"#).await;
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.detail, ProbeDetail::Readiness { version: None });
}

#[tokio::test]
async fn readiness_nothing_listening_is_refused() {
    let mut p = Probes::start(ProbeConfig {
        proxy_url: Some(format!("http://127.0.0.1:{}", crate::support::free_port())),
        fast_interval: FAST,
        timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let o = p.next().await;
    p.stop().await;
    assert_eq!(o.result, Err(FailureReason::Refused));
}

/// LiteLLM 1.110.2's `/health/readiness` while its engine is down: it accepts
/// and answers only after its database check gives up (up to 4 s), past the
/// probe timeout. That is `response_timeout`, known at the connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_that_accepts_and_hangs_is_a_response_timeout_stamped_at_the_connect() {
    let app = Router::new().route(
        "/health/readiness",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            StatusCode::SERVICE_UNAVAILABLE
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let timeout = Duration::from_millis(400);
    let before = litellm_sentinel::time::Timestamp::now();
    let mut p = Probes::start(ProbeConfig {
        proxy_url: Some(base),
        fast_interval: FAST,
        timeout,
        ..Default::default()
    });
    let o = p.next().await;
    let received = litellm_sentinel::time::Timestamp::now();
    p.stop().await;
    server.abort();
    assert_eq!(o.result, Err(FailureReason::ResponseTimeout), "{o:?}");
    assert!(o.duration >= timeout - Duration::from_millis(10), "{o:?}");
    // Stamped at the connect (right after the attempt began), not at the
    // deadline: the port accepted then.
    assert!(o.at >= before, "{o:?}");
    assert!(
        received.seconds_since(o.at) >= timeout.as_secs_f64() * 0.75,
        "stamped {:.3}s before it was received",
        received.seconds_since(o.at)
    );
}

/// Uvicorn's supervisor with `--num_workers 2` listens long before a worker
/// accepts: the kernel completes the handshake, nobody answers anything.
/// That is not "the proxy accepts" (neither readiness nor liveliness
/// answers): a connect-level `timeout`, not `response_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_listens_but_serves_nothing_is_a_timeout_not_accepting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut p = Probes::start(ProbeConfig {
        proxy_url: Some(base),
        fast_interval: FAST,
        timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let o = p.next().await;
    p.stop().await;
    assert_eq!(o.result, Err(FailureReason::Timeout), "{o:?}");
    assert!(!FailureReason::Timeout.connected());
    drop(listener);
}

// ---------------------------------------------------------------- PostgreSQL

fn db_cfg(url: String) -> ProbeConfig {
    ProbeConfig {
        database_url: Some(Secret::new(url)),
        fast_interval: FAST,
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

#[cfg(feature = "postgres")]
async fn first_db_outcome(url: String) -> ProbeOutcome {
    let cfg = db_cfg(url);
    assert!(
        cfg.targets().contains(&Target::Database),
        "built without the postgres feature?"
    );
    let mut p = Probes::start(cfg);
    let o = p.next().await;
    p.stop().await;
    assert_eq!(o.target, Target::Database);
    o
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_postgres_up_wrong_password_and_stopped() {
    let logs = captured_logs();
    let mut pg = postgres_support::PgServer::start();
    let password = pg.password().to_owned();
    let mut shown: Vec<String> = Vec::new();

    let up = first_db_outcome(pg.url()).await;
    assert_eq!(up.result, Ok(()), "server log:\n{}", pg.log());
    shown.push(format!("{up:?}"));

    let wrong = first_db_outcome(pg.url_with_password("not-the-password")).await;
    assert_eq!(wrong.result, Err(FailureReason::DbError));
    shown.push(format!("{wrong:?}"));

    // A database that does not exist is a database-side error too.
    let url_no_db = format!(
        "postgresql://{}:{password}@127.0.0.1:{}/no_such_database",
        postgres_support::PG_USER,
        pg.port()
    );
    let no_db = first_db_outcome(url_no_db).await;
    assert_eq!(no_db.result, Err(FailureReason::DbError));

    pg.stop();
    let down = first_db_outcome(pg.url()).await;
    assert!(
        matches!(
            down.result,
            Err(FailureReason::Refused) | Err(FailureReason::DbError)
        ),
        "{down:?}"
    );
    shown.push(format!("{down:?}"));

    // The password appears nowhere we print: outcomes, config, reasons, logs.
    let cfg = db_cfg(pg.url());
    shown.push(format!("{cfg:?}"));
    shown.push(format!("{:#?}", cfg.database_url));
    shown.push(cfg.database_url.as_ref().unwrap().to_string());
    shown.extend(FailureReason::ALL.iter().map(|r| r.as_str().to_owned()));
    let log_text =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        log_text.contains("database"),
        "expected probe log lines to be captured:\n{log_text}"
    );
    shown.push(log_text);
    for text in &shown {
        assert!(!text.contains(&password), "password leaked in: {text}");
    }
}

#[test]
fn probe_config_debug_never_shows_the_password() {
    let cfg = db_cfg(
        "postgresql://litellm:Sup3r-Secret-PW@db.internal:5432/litellm?sslmode=disable".into(),
    );
    let text = format!("{cfg:?}");
    assert!(
        text.contains("postgresql://litellm:***@db.internal:5432/litellm"),
        "{text}"
    );
    assert!(!text.contains("Sup3r-Secret-PW"), "{text}");
}
