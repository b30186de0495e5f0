//! The sidecar role end to end, in process: the query-engine stand-in binds
//! late (the real Prisma engine cannot be downloaded here; the stand-in
//! answers `/status` and raw queries with the engine's wire format, see
//! src/engine_standin.rs), a fake LiteLLM answers `/health/readiness` from
//! the start. `/gate` must flip from 503 to 200 at engine readiness, and the
//! gap measured by the probe must be within one probe interval of the truth.

#[path = "support/agent.rs"]
mod support;

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
    let proxy_up_at = Timestamp::now();
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
    let agent = Agent::start(cfg, Vec::new()).await.expect("agent");
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
    let truth = bound.seconds_since(proxy_up_at);

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
    // Opened at the first readiness probe that connected, closed at the first
    // engine success: each within one fast interval (plus scheduling slack).
    let slack = FAST.as_secs_f64() + 0.2;
    assert!(
        (gap - truth).abs() <= slack,
        "measured gap {gap:.3}s, truth {truth:.3}s"
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
