//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/gate`, `/api/v1/pods`.
//!
//! Input: the metrics registry and the tracker (read-only). Output: HTTP.
//! Every handler answers from memory; none does I/O on the request path except
//! `/readyz`, which checks that the state directory is writable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::format::PodRef;
use crate::metrics::{Metrics, SharedTracker};
use crate::probe::Target;
use crate::time::{RfcTimestamp, Timestamp};
use crate::timeline::{Counts, PodTimeline};

/// What `/gate` requires before it answers 200.
#[derive(Clone, Debug, Default)]
pub struct GateConfig {
    /// The pod the gate speaks for (sidecar).
    pub pod: Option<PodRef>,
    /// Targets that must be up: the engine, plus the database when configured.
    pub required: Vec<Target>,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub tracker: SharedTracker,
    pub gate: GateConfig,
    /// Set by the tail loop once at least one glob is being watched (node role).
    pub watching: Arc<AtomicBool>,
    /// State file whose directory must be writable for `/readyz` (None: not checkpointing).
    pub state_file: Option<PathBuf>,
}

/// Builds the router (also used by tests without a socket).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/gate", get(gate))
        .route("/api/v1/pods", get(pods))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024))
        .with_state(state)
}

/// Serves plain HTTP on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_secured(listener, state, None, shutdown).await
}

/// What `--web.config.file` turns on for the server (TLS, basic auth,
/// response headers); `None` serves plain HTTP to anyone.
#[cfg(feature = "tls")]
pub type WebSecurity = Arc<crate::webconfig::WebRuntime>;
/// Built without the `tls` feature there is no web config: this type has no values.
#[cfg(not(feature = "tls"))]
pub type WebSecurity = std::convert::Infallible;

/// Why `--web.config.file` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WebSecurityError {
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Config(#[from] crate::webconfig::WebConfigError),
    #[error("web_config_file {0} is set, but this build has no TLS/basic-auth support (rebuild with the `tls` cargo feature)")]
    NotBuiltIn(PathBuf),
}

/// Loads `--web.config.file` for [`serve_secured`] (`None` when unset).
pub fn web_security(
    path: Option<&std::path::Path>,
) -> Result<Option<WebSecurity>, WebSecurityError> {
    let Some(path) = path else {
        return Ok(None);
    };
    #[cfg(feature = "tls")]
    return Ok(Some(crate::webconfig::WebRuntime::start(path)?));
    #[cfg(not(feature = "tls"))]
    Err(WebSecurityError::NotBuiltIn(path.to_path_buf()))
}

/// Connections served at once; more are closed as soon as they are accepted
/// (a scraper and the kubelet's probes need a handful).
pub const MAX_CONNECTIONS: usize = 256;

/// A client must send a request's headers within this time (slow clients
/// cannot hold connections open); idle keep-alive connections close after it too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves: HTTPS and basic auth when `web` says so,
/// at most [`MAX_CONNECTIONS`] connections, each with [`HEADER_READ_TIMEOUT`].
/// On shutdown it stops accepting, lets requests in flight finish and closes
/// idle connections, then returns.
pub async fn serve_secured(
    listener: tokio::net::TcpListener,
    state: AppState,
    web: Option<WebSecurity>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    #[allow(unused_mut)]
    let mut app = router(state);
    #[cfg(feature = "tls")]
    if let Some(w) = &web {
        app = w.protect(app);
    }
    #[cfg(not(feature = "tls"))]
    let _ = web; // always None: there is no web config without TLS support
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a receiver; `closed()` resolves once all are gone.
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, limit = MAX_CONNECTIONS, "connection limit reached; closing the new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, stop, done) = (app.clone(), stop_rx.clone(), done_rx.clone());
        #[cfg(feature = "tls")]
        let tls = web.clone().filter(|w| w.serves_tls());
        tokio::spawn(async move {
            let _slot = slot;
            let _done = done;
            #[cfg(feature = "tls")]
            if let Some(w) = tls {
                return serve_tls_connection(w, tcp, peer, app, stop).await;
            }
            serve_connection(tcp, app, stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Completes the TLS handshake (unless the server stops first), then serves the connection.
#[cfg(feature = "tls")]
async fn serve_tls_connection(
    web: WebSecurity,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let stream = tokio::select! {
        s = web.accept_tls(tcp, peer) => s,
        _ = stop.wait_for(|s| *s) => None,
    };
    if let Some(stream) = stream {
        serve_connection(stream, app, stop).await;
    }
}

/// Speaks HTTP/1.1 on one connection until it closes or the server stops.
async fn serve_connection<I>(io: I, app: Router, mut stop: tokio::sync::watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(
        hyper_util::rt::TokioIo::new(io),
        hyper_util::service::TowerToHyperService::new(app),
    );
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended with an error during shutdown");
    }
}

/// Binds the listen address with an error that says what to do.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {addr}: {e} (is another process using the port? set --listen)"
            ),
        )
    })
}

async fn metrics(State(s): State<AppState>) -> Response {
    match s.metrics.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    if !s.watching.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not watching any log glob yet\n",
        )
            .into_response();
    }
    if let Some(path) = &s.state_file {
        let path = path.clone();
        let ok = tokio::task::spawn_blocking(move || crate::state::dir_writable(&path))
            .await
            .unwrap_or(false);
        if !ok {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "state directory is not writable\n",
            )
                .into_response();
        }
    }
    (StatusCode::OK, "ready\n").into_response()
}

#[derive(Serialize)]
struct GateAnswer {
    ready: bool,
    reason: String,
}

/// 200 once every required target is up for the gated pod, 503 before, with a one-line JSON reason.
async fn gate(State(s): State<AppState>) -> Response {
    let (ready, reason) = gate_state(&s);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(GateAnswer { ready, reason })).into_response()
}

fn gate_state(s: &AppState) -> (bool, String) {
    let Some(pod) = &s.gate.pod else {
        return (
            false,
            "no pod is gated (run with --role sidecar and POD_NAMESPACE/POD_NAME)".into(),
        );
    };
    if s.gate.required.is_empty() {
        return (
            false,
            "no engine probe configured (set --engine-url or enable discovery)".into(),
        );
    }
    let Ok(t) = s.tracker.lock() else {
        return (false, "internal error".into());
    };
    let Some(p) = t.pod(pod) else {
        return (false, "no probe has answered yet".into());
    };
    for target in &s.gate.required {
        let idx = Target::ALL.iter().position(|x| x == target).unwrap_or(0);
        match p.probe_up[idx] {
            Some(true) => {}
            Some(false) => return (false, format!("{} probe is failing", target.as_str())),
            None => return (false, format!("{} probe has not run yet", target.as_str())),
        }
    }
    (true, "engine answers queries".into())
}

/// One start of the proxy, as the API shows it.
#[derive(Serialize)]
pub struct StartView {
    pub listening_at: Option<RfcTimestamp>,
    pub engine_ready_at: Option<RfcTimestamp>,
    pub gap_seconds: Option<f64>,
    pub method: &'static str,
    /// Inside a gap confirmed by a DB failure (provisional starts are not).
    pub in_gap: bool,
    /// The gap has not closed yet (confirmed or not).
    pub open: bool,
    pub confirmed: bool,
    /// Requests served inside the gap (attributed when it closed).
    pub requests: u64,
    pub outages: Vec<OutageView>,
}

/// One mid-life outage, as the API shows it.
#[derive(Serialize)]
pub struct OutageView {
    pub started_at: Option<RfcTimestamp>,
    pub ended_at: Option<RfcTimestamp>,
    pub seconds: Option<f64>,
    pub method: &'static str,
    pub requests: u64,
    pub open: bool,
}

/// A tracked pod, as `/api/v1/pods` shows it.
#[derive(Serialize)]
pub struct PodView {
    pub namespace: String,
    pub pod: String,
    pub in_gap: bool,
    pub in_outage: bool,
    pub listening_at: Option<RfcTimestamp>,
    pub engine_ready_at: Option<RfcTimestamp>,
    pub gap_seconds: Option<f64>,
    pub method: Option<&'static str>,
    pub engine_up: std::collections::BTreeMap<&'static str, bool>,
    pub counts: Counts,
    pub starts: Vec<StartView>,
}

impl PodView {
    /// The API view of one pod (also used by the demo's live table).
    pub fn new(pod: &PodRef, p: &PodTimeline) -> PodView {
        let latest = p.starts.back();
        let ts = |t: Option<Timestamp>| t.map(RfcTimestamp);
        PodView {
            namespace: pod.namespace.clone(),
            pod: pod.pod.clone(),
            in_gap: p.in_gap(),
            in_outage: p.in_outage(),
            listening_at: ts(latest.and_then(|s| s.listening_at)),
            engine_ready_at: ts(latest.and_then(|s| s.engine_ready_at)),
            gap_seconds: latest.and_then(|s| s.gap_seconds),
            method: latest.map(|s| s.method.as_str()),
            engine_up: Target::ALL
                .iter()
                .zip(p.probe_up)
                .filter_map(|(t, up)| up.map(|u| (t.as_str(), u)))
                .collect(),
            counts: p.counts.clone(),
            starts: p
                .starts
                .iter()
                .map(|s| StartView {
                    listening_at: ts(s.listening_at),
                    engine_ready_at: ts(s.engine_ready_at),
                    gap_seconds: s.gap_seconds,
                    method: s.method.as_str(),
                    in_gap: s.in_gap(),
                    open: s.open,
                    confirmed: s.confirmed,
                    requests: s.requests,
                    outages: s
                        .outages
                        .iter()
                        .map(|o| OutageView {
                            started_at: ts(o.started_at),
                            ended_at: ts(o.ended_at),
                            seconds: o.seconds,
                            method: o.method.as_str(),
                            requests: o.requests,
                            open: o.open,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Every tracked pod, sorted by namespace and name.
pub fn pod_views(tracker: &SharedTracker) -> Vec<PodView> {
    let Ok(t) = tracker.lock() else {
        return Vec::new();
    };
    let mut v: Vec<PodView> = t.pods().map(|(k, p)| PodView::new(k, p)).collect();
    v.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    v
}

#[derive(Serialize)]
struct PodsAnswer {
    pods: Vec<PodView>,
}

async fn pods(State(s): State<AppState>) -> Json<impl Serialize> {
    Json(PodsAnswer {
        pods: pod_views(&s.tracker),
    })
}
