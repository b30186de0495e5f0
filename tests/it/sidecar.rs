//! The sidecar role end to end, in process: the query-engine stand-in binds
//! late (the real Prisma engine cannot be downloaded here; the stand-in
//! answers `/status` and raw queries with the engine's wire format, see
//! src/engine_standin.rs), a fake LiteLLM answers `/health/readiness` from
//! the start. `/gate` must flip from 503 to 200 at engine readiness, and the
//! gap measured by the probe must be within one probe interval of the truth.
//!
//! The multi-engine tests run stand-in engines as real processes named like
//! the Prisma engine with `-p <port>` (tests/support/engine_proc.rs), found
//! through `/proc` like real ones: two workers' engines coming up apart, an
//! engine killed and respawned on a new port, and the database going away
//! behind a running engine (Prisma P1001) under both gate modes.

use crate::support;
use crate::support::engine_proc;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use litellm_sentinel::agent::Agent;
use litellm_sentinel::config::{Config, HumanDuration, Role};
use litellm_sentinel::engine_standin::{EngineStandin, StandinOptions};
use litellm_sentinel::time::Timestamp;

const FAST: Duration = Duration::from_millis(50);

async fn get_async(addr: std::net::SocketAddr, path: &'static str) -> Option<(u16, String)> {
    tokio::task::spawn_blocking(move || support::http_get(addr, path))
        .await
        .ok()
        .flatten()
}

async fn wait_for<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < end {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn wait_for_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < end {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_flips_at_engine_readiness_and_the_gap_is_exact() {
    // Fake LiteLLM: the port accepts from now on, the DB is "Not connected" (1.83.14 answers 200).
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let app = Router::new().route(
        "/health/readiness",
        get(|| async {
            axum::Json(serde_json::json!({"status": "healthy", "db": "Not connected"}))
        }),
    );
    tokio::spawn(async move { axum::serve(proxy, app).await });

    let engine = EngineStandin::start(StandinOptions {
        bind_after: Duration::from_millis(1500),
        ..Default::default()
    })
    .await
    .expect("standin");
    let mut cfg = Config {
        role: Role::Sidecar,
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    cfg.probe.engine_url = Some(engine.url());
    cfg.probe.proxy_url = Some(proxy_url);
    cfg.probe.namespace = Some("llm".into());
    cfg.probe.pod = Some("litellm-0".into());
    cfg.probe.fast_interval = HumanDuration(FAST);
    cfg.probe.slow_interval = HumanDuration(Duration::from_millis(200));
    cfg.probe.timeout = HumanDuration(Duration::from_millis(500));
    let before_start = Timestamp::now();
    let agent = Agent::start(cfg, Vec::new()).await.expect("agent");
    let after_start = Timestamp::now();
    let addr = agent.addr;

    let (code, body) = get_async(addr, "/gate").await.expect("gate");
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).expect("one-line JSON reason");
    assert_eq!(v["ready"], false);
    assert!(
        v["reason"].as_str().is_some_and(|r| r.contains("engine")),
        "{v}"
    );
    assert!(!body.trim().contains('\n'));

    wait_for("engine bound", || engine.bound_at().is_some()).await;
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if get_async(addr, "/gate")
            .await
            .is_some_and(|(c, _)| c == 200)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "/gate never turned 200");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bound = engine.bound_at().expect("bound");

    let (_, api) = get_async(addr, "/api/v1/pods").await.expect("api");
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    let pod = &v["pods"][0];
    assert_eq!(pod["namespace"], "llm");
    assert_eq!(pod["pod"], "litellm-0");
    assert_eq!(pod["method"], "probe");
    assert_eq!(pod["in_gap"], false);
    assert!(
        pod["listening_at"].is_string() && pod["engine_ready_at"].is_string(),
        "{pod}"
    );
    assert_eq!(pod["engine_up"]["engine"], true);
    let gap = pod["gap_seconds"].as_f64().expect("gap");
    // Opened at the first readiness probe that connected (the proxy accepts
    // from before the agent starts, so: the agent's first probe), closed at
    // the first engine success: each within one fast interval of the truth
    // (plus scheduling slack on a loaded machine).
    let slack = FAST.as_secs_f64() + 0.3;
    let parse = |v: &serde_json::Value| {
        Timestamp::parse_rfc3339(v.as_str().expect("timestamp").as_bytes()).expect("rfc3339")
    };
    let (opened, closed) = (parse(&pod["listening_at"]), parse(&pod["engine_ready_at"]));
    assert!(
        opened >= before_start && opened.seconds_since(after_start) <= slack,
        "start opened at {opened:?}, agent started {before_start:?}..{after_start:?}"
    );
    let lag = closed.seconds_since(bound);
    assert!(
        (0.0..=slack).contains(&lag),
        "gap closed {lag:.3}s after the engine listened"
    );
    assert!(
        (gap - closed.seconds_since(opened)).abs() < 1e-3,
        "gap {gap} is not engine_ready_at - listening_at"
    );

    let (_, m) = get_async(addr, "/metrics").await.expect("metrics");
    let l = [("namespace", "llm"), ("pod", "litellm-0")];
    assert_eq!(
        support::metric(
            &m,
            "litellm_sentinel_engine_up",
            &[l[0], l[1], ("target", "engine")]
        ),
        Some(1.0)
    );
    assert_eq!(
        support::metric(
            &m,
            "litellm_sentinel_engine_up",
            &[l[0], l[1], ("target", "proxy_readiness")]
        ),
        Some(0.0)
    );
    assert!(
        support::metric(
            &m,
            "litellm_sentinel_probe_failures_total",
            &[("target", "engine"), ("reason", "refused")]
        )
        .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert!(support::metric(
        &m,
        "litellm_sentinel_probe_failures_total",
        &[("target", "proxy_readiness"), ("reason", "bad_body")]
    )
    .is_some_and(|v| v >= 1.0));
    assert_eq!(
        support::metric(
            &m,
            "litellm_sentinel_startup_gap_seconds_count",
            &[("namespace", "llm"), ("method", "probe")]
        ),
        Some(1.0)
    );
    assert_eq!(
        support::metric(&m, "litellm_sentinel_in_startup_gap", &l),
        Some(0.0)
    );
    assert_eq!(
        support::metric(&m, "litellm_sentinel_proxy_starts_total", &l),
        Some(1.0)
    );
    assert!(m.contains("litellm_sentinel_probe_duration_seconds_bucket{target=\"engine\""));

    // The engine goes away (LiteLLM kills it, the database blips): at the
    // default `gate = "startup"` the gate stays open for the life of this
    // proxy process, so a database outage cannot empty the Service.
    engine.shutdown().await;
    wait_for_async("engine probe failing", || async {
        get_async(addr, "/api/v1/pods")
            .await
            .is_some_and(|(_, b)| b.contains(r#""engine":false"#))
    })
    .await;
    let (code, body) = get_async(addr, "/gate").await.expect("gate");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).expect("json");
    assert_eq!(v["mode"], "startup");
    assert_eq!(v["state"], "open");
    assert_eq!(v["engine_state"], "no_engine");
    agent.shutdown().await;
}

// ------------------------------------------------------------ engine processes

use engine_proc::EngineProc;
use litellm_sentinel::gate::GateMode;

const HELPER: &str = "sidecar::helper_engine_standin_process";

/// Not a real test: the body of the stand-in engine processes.
#[test]
#[ignore = "helper process, spawned by the engine-process tests"]
fn helper_engine_standin_process() {
    engine_proc::standin_process_main();
}

/// A fake LiteLLM 1.83.14 (`/health/readiness` 200, DB connected, its version).
async fn fake_litellm() -> String {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let url = format!("http://{}", proxy.local_addr().expect("addr"));
    let app = Router::new().route(
        "/health/readiness",
        get(|| async {
            axum::Json(serde_json::json!({
                "status": "healthy", "db": "connected", "cache": null,
                "litellm_version": "1.83.14"
            }))
        }),
    );
    tokio::spawn(async move { axum::serve(proxy, app).await });
    url
}

/// A sidecar agent discovering engines under `proc_root`, otherwise at the
/// default gate settings unless `gate` says otherwise.
async fn sidecar(
    proc_root: &std::path::Path,
    proxy_url: &str,
    gate: Option<(GateMode, Duration)>,
) -> Agent {
    sidecar_with(proc_root, proxy_url, gate, true).await
}

/// `fast`: short probe intervals; otherwise every probe setting is the default.
async fn sidecar_with(
    proc_root: &std::path::Path,
    proxy_url: &str,
    gate: Option<(GateMode, Duration)>,
    fast: bool,
) -> Agent {
    let mut cfg = Config {
        role: Role::Sidecar,
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    if let Some((mode, down_after)) = gate {
        cfg.gate = mode;
        cfg.gate_down_after = HumanDuration(down_after);
    }
    cfg.probe.proc_root = proc_root.to_path_buf();
    cfg.probe.proxy_url = Some(proxy_url.to_string());
    cfg.probe.namespace = Some("llm".into());
    cfg.probe.pod = Some("litellm-0".into());
    if fast {
        cfg.probe.fast_interval = HumanDuration(FAST);
        cfg.probe.slow_interval = HumanDuration(Duration::from_millis(200));
        cfg.probe.timeout = HumanDuration(Duration::from_millis(500));
    }
    Agent::start(cfg, Vec::new()).await.expect("agent")
}

async fn gate_json(addr: std::net::SocketAddr) -> (u16, serde_json::Value) {
    let (code, body) = get_async(addr, "/gate").await.expect("gate");
    let v = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    (code, v)
}

async fn metric_now(addr: std::net::SocketAddr, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let (_, m) = get_async(addr, "/metrics").await?;
    let mut labels = vec![("namespace", "llm"), ("pod", "litellm-0")];
    labels.extend_from_slice(extra);
    support::metric(&m, name, &labels)
}

fn rfc(v: &serde_json::Value) -> Timestamp {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    Timestamp::parse_rfc3339(s.as_bytes()).unwrap_or_else(|| panic!("bad timestamp {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_opens_only_after_every_workers_engine_answers_and_survives_a_respawn() {
    let root = tempfile::tempdir().expect("proc root");
    // The whole process tree above the engines is visible, as in a pod: the
    // proxy identity is known, and a respawn must not look like a new proxy.
    engine_proc::link_ancestors(root.path());
    let proxy = fake_litellm().await;
    // Two Uvicorn workers: worker 1's engine listens at once, worker 2's 2 s later.
    let mut first = EngineProc::spawn(HELPER, root.path(), support::free_port(), Duration::ZERO);
    let mut second = EngineProc::spawn(
        HELPER,
        root.path(),
        support::free_port(),
        Duration::from_secs(2),
    );
    // A process just spawned can be missing from one scan (seen: one engine
    // of two, its cmdline complete a moment later); the agent rescans every
    // interval, so the test waits for a scan that sees both.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let scan = loop {
        let scan = litellm_sentinel::probe::discover::scan(root.path());
        if scan.engines.len() == 2 || std::time::Instant::now() > deadline {
            break scan;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(scan.engines.len(), 2, "{scan:?}");
    assert!(scan.proxy.is_some(), "proxy identity unknown: {scan:?}");
    let agent = sidecar(root.path(), &proxy, None).await;
    let addr = agent.addr;

    wait_for_async("both engines found, one answering", || async {
        metric_now(addr, "litellm_sentinel_engines_discovered", &[]).await == Some(2.0)
            && metric_now(addr, "litellm_sentinel_engines_up", &[]).await == Some(1.0)
    })
    .await;
    let (code, v) = gate_json(addr).await;
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["mode"], "startup");
    assert_eq!(v["state"], "waiting");
    assert!(
        v["reason"]
            .as_str()
            .is_some_and(|r| r.contains("1 of 2 engines")),
        "{v}"
    );
    assert_eq!(
        metric_now(addr, "litellm_sentinel_engine_up", &[("target", "engine")]).await,
        Some(0.0),
        "engine_up is 1 only when every engine answers"
    );

    let first_bound = first.wait_bound(Duration::from_secs(20));
    let second_bound = second.wait_bound(Duration::from_secs(20));
    wait_for_async("/gate 200", || async { gate_json(addr).await.0 == 200 }).await;
    let (_, v) = gate_json(addr).await;
    assert!(
        rfc(&v["open_since"]) >= second_bound,
        "opened before worker 2's engine listened: {v}"
    );

    let (_, api) = get_async(addr, "/api/v1/pods").await.expect("api");
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    let pod = &api["pods"][0];
    assert_eq!(pod["engines"]["discovered"], 2, "{pod}");
    assert_eq!(pod["engines"]["up"], 2);
    assert_eq!(pod["engines"]["state"], "ready");
    assert_eq!(pod["engines"]["litellm_version"], "1.83.14");
    let start = &pod["starts"][0];
    let (first_ready, last_ready) = (
        rfc(&start["engines_first_ready_at"]),
        rfc(&start["engines_last_ready_at"]),
    );
    assert_eq!(
        start["engines_last_ready_at"], start["engine_ready_at"],
        "{start}"
    );
    assert!(
        first_ready >= first_bound && last_ready >= second_bound,
        "{start}"
    );
    let slack = FAST.as_secs_f64() + 0.45;
    assert!(
        last_ready.seconds_since(second_bound) <= slack,
        "gap closed {:.3}s after the last engine listened",
        last_ready.seconds_since(second_bound)
    );
    // The agent saw one engine of two answering (waited for above), so the
    // first engine's readiness was recorded before the second listened.
    assert!(first_ready < second_bound, "{start}");
    assert_eq!(
        metric_now(addr, "litellm_sentinel_engine_up", &[("target", "engine")]).await,
        Some(1.0)
    );
    assert_eq!(
        metric_now(
            addr,
            "litellm_sentinel_litellm_build_info",
            &[("version", "1.83.14")]
        )
        .await,
        Some(1.0)
    );

    // LiteLLM kills worker 1's engine and respawns it on a new port; the new
    // one listens 500 ms later. The latched gate stays open throughout.
    let old_port = first.port;
    first.kill();
    let mut respawned = EngineProc::spawn(
        HELPER,
        root.path(),
        support::free_port(),
        Duration::from_millis(500),
    );
    assert_ne!(respawned.port, old_port);
    let respawned_bound = respawned.wait_bound(Duration::from_secs(20));
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, v) = gate_json(addr).await;
        assert_eq!(code, 200, "the latched gate closed during a respawn: {v}");
        assert!(v["rearmed_because"].is_null(), "{v}");
        let seen_after_bind = v["engines_up"] == 2 && Timestamp::now() > respawned_bound;
        if seen_after_bind
            && metric_now(addr, "litellm_sentinel_engines_up", &[]).await == Some(2.0)
            && metric_now(addr, "litellm_sentinel_engines_discovered", &[]).await == Some(2.0)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "respawned engine never probed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.shutdown().await;
    drop((second, respawned));
}

/// An engine that dies after the gap closed is a mid-life outage measured
/// by the probe: from the first failed round to the first round in which
/// its replacement answers; the start-up gap stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_is_a_probe_outage_with_its_duration() {
    let root = tempfile::tempdir().expect("proc root");
    engine_proc::link_ancestors(root.path());
    let proxy = fake_litellm().await;
    let mut engine = EngineProc::spawn(HELPER, root.path(), support::free_port(), Duration::ZERO);
    engine.wait_bound(Duration::from_secs(20));
    let agent = sidecar(root.path(), &proxy, None).await;
    let addr = agent.addr;
    wait_for_async("/gate 200", || async { gate_json(addr).await.0 == 200 }).await;
    let gap_before = metric_now(addr, "litellm_sentinel_last_startup_gap_seconds", &[]).await;

    let killed_at = Timestamp::now();
    engine.kill();
    wait_for_async("the outage is seen", || async {
        metric_now(addr, "litellm_sentinel_in_db_outage", &[]).await == Some(1.0)
    })
    .await;
    let mut respawned = EngineProc::spawn(
        HELPER,
        root.path(),
        support::free_port(),
        Duration::from_millis(1500),
    );
    let bound_at = respawned.wait_bound(Duration::from_secs(20));
    wait_for_async("the outage ends", || async {
        metric_now(addr, "litellm_sentinel_in_db_outage", &[]).await == Some(0.0)
    })
    .await;
    assert_eq!(
        metric_now(addr, "litellm_sentinel_db_outages_total", &[]).await,
        Some(1.0)
    );
    // The histogram is per namespace and method (no pod label).
    let (_, m) = get_async(addr, "/metrics").await.expect("metrics");
    let hist = [("namespace", "llm"), ("method", "probe")];
    assert_eq!(
        support::metric(&m, "litellm_sentinel_db_outage_seconds_count", &hist),
        Some(1.0)
    );
    let measured = support::metric(&m, "litellm_sentinel_db_outage_seconds_sum", &hist)
        .expect("outage duration");
    let truth = bound_at.seconds_since(killed_at);
    let slack = FAST.as_secs_f64() + 0.45;
    assert!(
        (measured - truth).abs() <= slack,
        "outage measured {measured:.3}s, engine down {truth:.3}s"
    );
    assert_eq!(
        metric_now(addr, "litellm_sentinel_last_startup_gap_seconds", &[]).await,
        gap_before,
        "the start-up gap stays as it was"
    );
    let (code, _) = gate_json(addr).await;
    assert_eq!(code, 200, "the latched gate stays open through the outage");
    agent.shutdown().await;
    drop(respawned);
}

/// At the default slow interval (10 s) a killed engine is still an outage
/// from its death, not from the next slow round: the sidecar watches the
/// engine processes every fast interval. The replacement comes back well
/// within one slow interval, which a round every 10 s would miss entirely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_is_noticed_within_a_fast_interval_at_the_default_slow_interval() {
    let root = tempfile::tempdir().expect("proc root");
    engine_proc::link_ancestors(root.path());
    let proxy = fake_litellm().await;
    let mut engine = EngineProc::spawn(HELPER, root.path(), support::free_port(), Duration::ZERO);
    engine.wait_bound(Duration::from_secs(20));
    let mut cfg = Config {
        role: Role::Sidecar,
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    cfg.probe.proc_root = root.path().to_path_buf();
    cfg.probe.proxy_url = Some(proxy);
    cfg.probe.namespace = Some("llm".into());
    cfg.probe.pod = Some("litellm-0".into());
    cfg.probe.fast_interval = HumanDuration(FAST);
    cfg.probe.slow_interval = HumanDuration(Duration::from_secs(10));
    let agent = Agent::start(cfg, Vec::new()).await.expect("agent");
    let addr = agent.addr;
    wait_for_async("/gate 200", || async { gate_json(addr).await.0 == 200 }).await;

    let killed_at = Timestamp::now();
    engine.kill();
    let mut respawned = EngineProc::spawn(
        HELPER,
        root.path(),
        support::free_port(),
        Duration::from_millis(800),
    );
    let bound_at = respawned.wait_bound(Duration::from_secs(20));
    wait_for_async("the outage is over", || async {
        metric_now(addr, "litellm_sentinel_db_outages_total", &[]).await == Some(1.0)
            && metric_now(addr, "litellm_sentinel_in_db_outage", &[]).await == Some(0.0)
    })
    .await;
    let (_, api) = get_async(addr, "/api/v1/pods").await.expect("api");
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    let outage = &api["pods"][0]["starts"][0]["outages"][0];
    let slack = FAST.as_secs_f64() + 0.45;
    let started = rfc(&outage["started_at"]);
    assert!(
        (0.0..=slack).contains(&started.seconds_since(killed_at)),
        "outage started {:.3}s after the kill (slow interval 10 s): {outage}",
        started.seconds_since(killed_at)
    );
    let measured = outage["seconds"].as_f64().expect("seconds");
    let truth = bound_at.seconds_since(killed_at);
    assert!(
        (measured - truth).abs() <= slack,
        "outage measured {measured:.3}s, engine down {truth:.3}s"
    );
    let (code, _) = gate_json(addr).await;
    assert_eq!(code, 200, "the latched gate stays open through the outage");
    agent.shutdown().await;
    drop(respawned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_behind_a_running_engine_startup_holds_follow_closes_after_hysteresis() {
    const DOWN_AFTER: Duration = Duration::from_secs(2);
    let root = tempfile::tempdir().expect("proc root");
    let proxy = fake_litellm().await;
    let mut engine = EngineProc::spawn(HELPER, root.path(), support::free_port(), Duration::ZERO);
    engine.wait_bound(Duration::from_secs(20));
    let latch = sidecar(root.path(), &proxy, None).await; // default: gate = "startup"
    let follow = sidecar(root.path(), &proxy, Some((GateMode::Follow, DOWN_AFTER))).await;
    for a in [latch.addr, follow.addr] {
        wait_for_async("/gate 200", || async { gate_json(a).await.0 == 200 }).await;
    }

    engine.database_gone();
    let gone = tokio::time::Instant::now();
    wait_for_async("follow sidecar sees the database error", || async {
        gate_json(follow.addr).await.1["engine_state"] == "engine_up_database_unreachable"
    })
    .await;
    let (code, v) = gate_json(follow.addr).await;
    if gone.elapsed() < DOWN_AFTER {
        assert_eq!(code, 200, "follow closed before the hysteresis: {v}");
        assert_eq!(v["state"], "holding");
    }
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let closed = loop {
        let (code, v) = gate_json(follow.addr).await;
        if code == 503 {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "follow never closed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        gone.elapsed() >= DOWN_AFTER,
        "closed {:?} after the database went, hysteresis {DOWN_AFTER:?}",
        gone.elapsed()
    );
    assert_eq!(closed["mode"], "follow");
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["engine_state"], "engine_up_database_unreachable");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("db_error")),
        "{closed}"
    );

    // The latch (default mode) never closed.
    let (code, v) = gate_json(latch.addr).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["engine_state"], "engine_up_database_unreachable");
    let (_, m) = get_async(latch.addr, "/metrics").await.expect("metrics");
    assert!(
        support::metric(
            &m,
            "litellm_sentinel_probe_failures_total",
            &[("target", "engine"), ("reason", "db_error")]
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert_eq!(
        support::metric(
            &m,
            "litellm_sentinel_probe_failures_total",
            &[("target", "engine"), ("reason", "bad_body")]
        ),
        Some(0.0)
    );

    // The database comes back: follow opens again.
    engine.database_back();
    wait_for_async("follow reopens", || async {
        gate_json(follow.addr).await.0 == 200
    })
    .await;
    latch.shutdown().await;
    follow.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_settings_two_workers_gate_waits_for_the_second_engine() {
    // Default probe intervals (250 ms fast, 10 s slow, 2 s timeout) and the
    // default gate: the second worker's engine listens 1.5 s after the first.
    let root = tempfile::tempdir().expect("proc root");
    let proxy = fake_litellm().await;
    let mut first = EngineProc::spawn(HELPER, root.path(), support::free_port(), Duration::ZERO);
    let mut second = EngineProc::spawn(
        HELPER,
        root.path(),
        support::free_port(),
        Duration::from_millis(1500),
    );
    let agent = sidecar_with(root.path(), &proxy, None, false).await;
    let addr = agent.addr;
    first.wait_bound(Duration::from_secs(20));
    let second_bound = second.wait_bound(Duration::from_secs(20));
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let opened = loop {
        let (code, v) = gate_json(addr).await;
        if code == 200 {
            break v;
        }
        assert!(tokio::time::Instant::now() < end, "/gate never opened: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(opened["mode"], "startup");
    assert_eq!(opened["engines_discovered"], 2);
    assert_eq!(opened["engines_up"], 2);
    let open_since = rfc(&opened["open_since"]);
    assert!(open_since >= second_bound, "{opened}");
    // One fast interval (250 ms) after the bind, plus scheduling slack.
    assert!(
        open_since.seconds_since(second_bound) <= 0.25 + 0.5,
        "opened {:.3}s after the second engine listened",
        open_since.seconds_since(second_bound)
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_waits_for_the_litellm_port_even_when_the_engines_answer() {
    // LiteLLM connects Prisma during its start-up, before its port listens:
    // Ready at that point would send requests to a closed port.
    let root = tempfile::tempdir().expect("proc root");
    let mut engine = EngineProc::spawn(HELPER, root.path(), support::free_port(), Duration::ZERO);
    engine.wait_bound(Duration::from_secs(20));
    let port = support::free_port();
    let agent = sidecar(root.path(), &format!("http://127.0.0.1:{port}"), None).await;
    let addr = agent.addr;
    wait_for_async("engines answer", || async {
        metric_now(addr, "litellm_sentinel_engines_up", &[]).await == Some(1.0)
    })
    .await;
    let (code, v) = gate_json(addr).await;
    assert_eq!(code, 503, "{v}");
    assert!(
        v["reason"]
            .as_str()
            .is_some_and(|r| r.contains("accept connections")),
        "{v}"
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the proxy port");
    let app = Router::new().route(
        "/health/readiness",
        get(|| async { axum::Json(serde_json::json!({"status": "healthy", "db": "connected"})) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    wait_for_async("/gate 200 once the port accepts", || async {
        gate_json(addr).await.0 == 200
    })
    .await;
    agent.shutdown().await;
}

/// LiteLLM 1.110.2's public `/health/readiness` while the engine is down:
/// it accepts the connection and then waits on its database check
/// (`_db_health_readiness_check`, bounded by 4 s) before answering 503
/// `{"status": "healthy", "db": "disconnected"}`, longer than the probe
/// timeout. Once the engine answers, it answers 200 `"db": "connected"`
/// at once (and, like 1.110.2, without `litellm_version`).
async fn fake_litellm_1_110(engine_addr: String) -> String {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let url = format!("http://{}", proxy.local_addr().expect("addr"));
    let app = Router::new()
        .route("/health/liveliness", get(|| async { "I'm alive!" }))
        .route(
            "/health/readiness",
            get(move || {
                let engine_addr = engine_addr.clone();
                async move {
                    if tokio::net::TcpStream::connect(&engine_addr).await.is_ok() {
                        return (
                            axum::http::StatusCode::OK,
                            axum::Json(serde_json::json!({"status": "healthy", "db": "connected"})),
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"status": "healthy", "db": "disconnected"})),
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(proxy, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readiness_probe_that_connects_and_hangs_opens_the_start_at_the_connect() {
    // The engine's port is fixed up front; the engine itself starts only once
    // the agent has seen the proxy hang, so the true gap is known to be long.
    let engine_port = support::free_port();
    let engine_addr = format!("127.0.0.1:{engine_port}");
    let proxy_url = fake_litellm_1_110(engine_addr.clone()).await;
    let mut cfg = Config {
        role: Role::Sidecar,
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    cfg.probe.engine_url = Some(format!("http://{engine_addr}"));
    cfg.probe.proxy_url = Some(proxy_url);
    cfg.probe.namespace = Some("llm".into());
    cfg.probe.pod = Some("litellm-0".into());
    cfg.probe.fast_interval = HumanDuration(FAST);
    cfg.probe.slow_interval = HumanDuration(Duration::from_millis(200));
    cfg.probe.timeout = HumanDuration(Duration::from_millis(300));
    let before_start = Timestamp::now();
    let agent = Agent::start(cfg, Vec::new()).await.expect("agent");
    let addr = agent.addr;
    let response_timeouts = || async move {
        support::metric(
            &get_async(addr, "/metrics").await.expect("metrics").1,
            "litellm_sentinel_probe_failures_total",
            &[
                ("target", "proxy_readiness"),
                ("reason", "response_timeout"),
            ],
        )
    };
    // Two hung probes: the proxy has been accepting for at least one timeout.
    wait_for_async("readiness probes that connected and timed out", || async {
        response_timeouts().await.is_some_and(|n| n >= 2.0)
    })
    .await;
    let (code, v) = gate_json(addr).await;
    assert_eq!(code, 503, "no engine yet: {v}");
    let hung_seen = Timestamp::now();
    let engine = EngineStandin::start(StandinOptions {
        port: engine_port,
        ..Default::default()
    })
    .await
    .expect("standin");
    let bound = engine.bound_at().expect("bound");
    wait_for_async("/gate 200", || async { gate_json(addr).await.0 == 200 }).await;
    let (_, api) = get_async(addr, "/api/v1/pods").await.expect("api");
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    let pod = &v["pods"][0];
    assert_eq!(pod["method"], "probe", "{pod}");
    let slack = FAST.as_secs_f64() + 0.3;
    let (opened, closed) = (rfc(&pod["listening_at"]), rfc(&pod["engine_ready_at"]));
    // The proxy accepted the agent's first probes and hung: the start opened
    // at a connect, before any probe got an answer (none did before the
    // engine came up), not when the first answer came.
    assert!(
        opened >= before_start && opened < hung_seen,
        "start opened at {opened:?}; agent started {before_start:?}, hung probes seen by {hung_seen:?}"
    );
    let lag = closed.seconds_since(bound);
    assert!(
        (-0.05..=slack).contains(&lag),
        "gap closed {lag:.3}s after the engine listened"
    );
    let gap = pod["gap_seconds"].as_f64().expect("gap");
    assert!(
        (gap - closed.seconds_since(opened)).abs() < 1e-3 && gap >= bound.seconds_since(hung_seen),
        "gap {gap}: the start opened before {hung_seen:?}, the engine bound at {bound:?}"
    );
    // 1.110.2's readiness carries no litellm_version: unknown, not an error.
    assert!(pod["engines"]["litellm_version"].is_null(), "{pod}");
    let (_, m) = get_async(addr, "/metrics").await.expect("metrics");
    assert!(!m.contains("litellm_sentinel_litellm_build_info{"), "{m}");
    agent.shutdown().await;
    engine.shutdown().await;
}
