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

use crate::gate::SharedGates;
use crate::metrics::Metrics;
use crate::time::Timestamp;
use crate::timeline::SharedTracker;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub tracker: SharedTracker,
    /// The gate and the probe state of every probed pod (src/gate.rs).
    pub gates: SharedGates,
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
        .route("/api/v1/pods", get(api::pods))
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
pub(crate) type WebSecurity = Arc<crate::webconfig::WebRuntime>;
/// Built without the `tls` feature there is no web config: this type has no values.
#[cfg(not(feature = "tls"))]
pub(crate) type WebSecurity = std::convert::Infallible;

/// Why `--web.config.file` cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebSecurityError {
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Config(#[from] crate::webconfig::WebConfigError),
    #[error("web_config_file {0} is set, but this build has no TLS/basic-auth support (rebuild with the `tls` cargo feature)")]
    // Built only without the `tls` feature.
    #[cfg_attr(feature = "tls", allow(dead_code))]
    NotBuiltIn(PathBuf),
}

/// Loads `--web.config.file` for [`serve_secured`] (`None` when unset).
pub(crate) fn web_security(
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

/// Most connections held at once, whatever the file-descriptor limit allows
/// (an idle HTTP/1 connection costs a socket and a few KiB).
pub(crate) const MAX_CONNECTIONS: usize = 1024;

/// A client must send a request's headers within this time (slow clients
/// cannot hold connections open); idle keep-alive connections close after it too.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections this process can hold: [`MAX_CONNECTIONS`], or half
/// of what `RLIMIT_NOFILE` leaves after 256 descriptors for log files,
/// inotify and the state file, whichever is lower (at least 32).
pub(crate) fn connection_cap() -> usize {
    let soft = nofile_limit();
    let spare = usize::try_from(soft.saturating_sub(256)).unwrap_or(usize::MAX) / 2;
    spare.clamp(32, MAX_CONNECTIONS)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 65536), as Go
/// programs do at start: the default soft limit of 1024 is what a flood of
/// idle connections would exhaust first. Failure leaves the limit as it is.
pub(crate) fn raise_nofile_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let hard = lim.maximum.unwrap_or(u64::MAX);
    let want = hard.min(65_536);
    if lim.current.is_some_and(|cur| want > cur) {
        lim.current = Some(want);
        if setrlimit(Resource::Nofile, lim).is_err() {
            tracing::debug!("cannot raise RLIMIT_NOFILE");
        }
    }
}

/// The soft `RLIMIT_NOFILE` (`u64::MAX` when unlimited).
fn nofile_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// What one connection is doing, for admission.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// No request in flight: TLS handshake, headers not yet complete, or
    /// keep-alive between requests. May be evicted.
    Idle,
    /// This many requests in flight: never evicted.
    Busy(usize),
    /// Chosen for eviction: its task closes it; no new request starts on it.
    Evicted,
    /// Its task has ended.
    Closed,
}

/// One admitted connection.
#[derive(Debug)]
struct Conn {
    phase: std::sync::Mutex<Phase>,
    evicted: tokio::sync::Notify,
}

impl Conn {
    /// Marks a request in flight; `None` once the connection is evicted.
    fn begin(self: &Arc<Self>) -> Option<BusyGuard> {
        let mut p = crate::sync::lock(&self.phase);
        *p = match *p {
            Phase::Idle => Phase::Busy(1),
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Evicted | Phase::Closed => return None,
        };
        Some(BusyGuard(self.clone()))
    }

    /// Evicts the connection if it is idle.
    fn evict_if_idle(&self) -> bool {
        let mut p = crate::sync::lock(&self.phase);
        if *p != Phase::Idle {
            return false;
        }
        *p = Phase::Evicted;
        self.evicted.notify_one();
        true
    }

    fn phase(&self) -> Phase {
        *crate::sync::lock(&self.phase)
    }
}

/// Ends a request: the connection is idle again once none is in flight.
struct BusyGuard(Arc<Conn>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut p = crate::sync::lock(&self.0.phase);
        *p = match *p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            Phase::Busy(_) => Phase::Idle,
            other => other,
        };
    }
}

/// Connection admission: at most `cap` connections; when full, a new
/// connection evicts the oldest idle one (slow clients that never finish
/// their headers, idle keep-alives, stalled TLS handshakes), so the
/// kubelet's `/healthz` and `/readyz` and the `/gate` probe always get in:
/// a new connection can only be evicted after every idle connection admitted
/// before it. Only when every held connection has a request in flight is the
/// new one closed (handlers answer from memory, so that is a real overload).
/// Admission and eviction cost O(1) amortised: a flood of thousands of idle
/// connections is churned through at accept speed.
#[derive(Debug)]
pub(crate) struct Admission {
    cap: usize,
    state: std::sync::Mutex<AdmissionState>,
}

#[derive(Debug, Default)]
struct AdmissionState {
    /// Admitted and neither evicted nor closed.
    live: usize,
    /// Admission order; evicted and closed entries are dropped lazily.
    order: std::collections::VecDeque<Arc<Conn>>,
}

/// An admitted connection's slot; freed on drop.
struct Admitted {
    admission: Arc<Admission>,
    conn: Arc<Conn>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut st = crate::sync::lock(&self.admission.state);
        {
            let mut p = crate::sync::lock(&self.conn.phase);
            if *p != Phase::Evicted {
                st.live = st.live.saturating_sub(1);
            }
            *p = Phase::Closed;
        }
        st.trim_front();
    }
}

impl AdmissionState {
    fn trim_front(&mut self) {
        while self
            .order
            .front()
            .is_some_and(|c| matches!(c.phase(), Phase::Evicted | Phase::Closed))
        {
            self.order.pop_front();
        }
    }

    fn evict_oldest_idle(&mut self) -> bool {
        self.trim_front();
        let hit = self.order.iter().position(|c| c.evict_if_idle());
        if hit.is_some() {
            self.live = self.live.saturating_sub(1);
            self.trim_front();
        }
        hit.is_some()
    }
}

impl Admission {
    /// Admission for at most `cap` connections (at least 1).
    pub fn new(cap: usize) -> Arc<Admission> {
        Arc::new(Admission {
            cap: cap.max(1),
            state: std::sync::Mutex::new(AdmissionState::default()),
        })
    }

    /// Connections held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        crate::sync::lock(&self.state).live
    }

    fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut st = crate::sync::lock(&self.state);
        if st.live >= self.cap && !st.evict_oldest_idle() {
            return None;
        }
        let conn = Arc::new(Conn {
            phase: std::sync::Mutex::new(Phase::Idle),
            evicted: tokio::sync::Notify::new(),
        });
        st.live += 1;
        st.order.push_back(conn.clone());
        // Closed entries behind a long-lived one: compact now and then.
        if st.order.len() > 2 * self.cap + 16 {
            st.order
                .retain(|c| !matches!(c.phase(), Phase::Evicted | Phase::Closed));
        }
        Some(Admitted {
            admission: self.clone(),
            conn,
        })
    }

    /// Frees a slot (and its descriptor, once its task ends) by closing the
    /// oldest idle connection; `false` when every connection is busy.
    fn evict_one(&self) -> bool {
        crate::sync::lock(&self.state).evict_oldest_idle()
    }
}

/// Serves until `shutdown` resolves: HTTPS and basic auth when `web` says so,
/// at most [`connection_cap`] connections under [`Admission`], each with
/// [`HEADER_READ_TIMEOUT`]. On shutdown it stops accepting, lets requests in
/// flight finish and closes idle connections, then returns.
pub(crate) async fn serve_secured(
    listener: tokio::net::TcpListener,
    state: AppState,
    web: Option<WebSecurity>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    raise_nofile_limit();
    serve_with_admission(
        listener,
        state,
        web,
        Admission::new(connection_cap()),
        shutdown,
    )
    .await
}

/// [`serve_secured`] with a given admission (tests use a small cap).
pub(crate) async fn serve_with_admission(
    listener: tokio::net::TcpListener,
    state: AppState,
    web: Option<WebSecurity>,
    admission: Arc<Admission>,
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
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE/ENFILE: close the longest-idle connection and
                    // retry at once; otherwise back off instead of spinning.
                    if admission.evict_one() {
                        tracing::debug!(error = %e, "accept failed; closed the longest-idle connection");
                        tokio::task::yield_now().await;
                    } else {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let Some(admitted) = admission.admit() else {
            tracing::debug!(%peer, limit = admission.cap, "every connection is busy; closing the new one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, stop, done) = (app.clone(), stop_rx.clone(), done_rx.clone());
        #[cfg(feature = "tls")]
        let tls = web.clone().filter(|w| w.serves_tls());
        tokio::spawn(async move {
            let _done = done;
            let conn = admitted.conn.clone();
            let serve = async {
                #[cfg(feature = "tls")]
                if let Some(w) = tls {
                    return serve_tls_connection(w, tcp, peer, app, conn.clone(), stop).await;
                }
                serve_connection(tcp, app, conn.clone(), stop).await;
            };
            tokio::select! {
                () = serve => {}
                () = conn.evicted.notified() => {
                    tracing::trace!(%peer, "closed an idle connection to admit a new one");
                }
            }
            drop(admitted);
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
    conn: Arc<Conn>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let stream = tokio::select! {
        s = web.accept_tls(tcp, peer) => s,
        _ = stop.wait_for(|s| *s) => None,
    };
    if let Some(stream) = stream {
        serve_connection(stream, app, conn, stop).await;
    }
}

/// Speaks HTTP/1.1 on one connection until it closes or the server stops;
/// each request marks the connection busy (not evictable) while it runs.
async fn serve_connection<I>(
    io: I,
    app: Router,
    conn: Arc<Conn>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let inner = hyper_util::service::TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |req| {
        use hyper::service::Service;
        let busy = conn.begin();
        let fut = busy.is_some().then(|| inner.call(req));
        async move {
            match (busy, fut) {
                (Some(guard), Some(fut)) => {
                    let r = fut.await;
                    drop(guard);
                    r
                }
                // Evicted between its headers and now: the connection is closing.
                _ => Ok((
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONNECTION, "close")],
                )
                    .into_response()),
            }
        }
    });
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
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

/// Listen backlog: a burst of connections (a flood, or many scrapers at
/// once) waits in the kernel instead of having its SYNs dropped (the
/// kernel caps it at `net.core.somaxconn`).
pub(crate) const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listen address with an error that says what to do.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let explain = |e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {addr}: {e} (is another process using the port? set --listen)"
            ),
        )
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(explain)?;
    socket.set_reuseaddr(true).map_err(explain)?;
    socket.bind(addr).map_err(explain)?;
    socket.listen(LISTEN_BACKLOG).map_err(explain)
}

/// `/metrics`: the text exposition, gzip-compressed when the scraper accepts
/// it (Prometheus does); the pod families come from the render cache.
async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers);
    let body = if gzip {
        s.metrics.gzip_page().and_then(|page| page.gzip())
    } else {
        s.metrics.page().and_then(|page| page.text_chunks())
    }
    .map(Chunks::new);
    match body {
        Ok(body) => {
            let mut r = Response::new(axum::body::Body::new(body));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            h.insert(
                header::VARY,
                header::HeaderValue::from_static("Accept-Encoding"),
            );
            if gzip {
                h.insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            r
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): `gzip` or
/// `x-gzip` with a non-zero weight, or `*` unless gzip is refused by name.
pub(crate) fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
                })
                .next_back()
                .map_or(1.0, |v| v.parse::<f32>().unwrap_or(0.0));
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                return q > 0.0;
            }
            if coding == "*" {
                star = q > 0.0;
            }
        }
    }
    star
}

/// A response body of a few byte chunks sent in order with an exact length
/// (the cached pod part is sent without copying it).
struct Chunks {
    chunks: std::collections::VecDeque<axum::body::Bytes>,
    remaining: u64,
}

impl Chunks {
    fn new(chunks: Vec<axum::body::Bytes>) -> Chunks {
        let chunks: std::collections::VecDeque<_> =
            chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks { chunks, remaining }
    }
}

impl axum::body::HttpBody for Chunks {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let next = self.chunks.pop_front();
        if let Some(c) = &next {
            self.remaining -= c.len() as u64;
        }
        std::task::Poll::Ready(next.map(|c| Ok(hyper::body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
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

/// `/gate`: 200 or 503 with a one-line JSON body; the decision is src/gate.rs's.
async fn gate(State(s): State<AppState>) -> Response {
    let starts = crate::sync::lock(&s.gates)
        .config()
        .pod
        .clone()
        .and_then(|pod| {
            let t = s.tracker.lock();
            t.pod(&pod)
                .map(|p| p.counts[crate::model::Counter::ProxyStarts])
        });
    let mut g = crate::sync::lock(&s.gates);
    let answer = g.answer(starts, Timestamp::now());
    let code = if answer.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(answer)).into_response()
}

mod api;

pub use api::{
    pod_page, pod_views, PodMatch, PodView, PodsAnswer, PodsQuery, StartView, DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PodRef;

    #[test]
    fn a_full_house_evicts_the_oldest_idle_never_a_busy_one() {
        let adm = Admission::new(3);
        let a = adm.admit().unwrap();
        let b = adm.admit().unwrap();
        let c = adm.admit().unwrap();
        let busy_a = a.conn.begin().unwrap();
        let d = adm.admit().expect("an idle connection to evict");
        assert_eq!(b.conn.phase(), Phase::Evicted, "b: the oldest idle one");
        assert!(
            b.conn.begin().is_none(),
            "no request starts on an evicted connection"
        );
        assert_eq!(adm.len(), 3);
        let busy_d = d.conn.begin().unwrap();
        let e = adm.admit().unwrap();
        assert_eq!(c.conn.phase(), Phase::Evicted);
        let busy_e = e.conn.begin().unwrap();
        assert!(
            adm.admit().is_none(),
            "every connection busy: the new one is refused"
        );
        // A finished request makes its connection evictable again.
        drop(busy_a);
        let f = adm.admit().unwrap();
        assert_eq!(a.conn.phase(), Phase::Evicted);
        // Dropping an admitted connection frees its slot; dropping evicted ones changes nothing.
        drop((b, c, a));
        assert_eq!(adm.len(), 3);
        drop(f);
        assert_eq!(adm.len(), 2);
        assert!(adm.admit().is_some());
        drop((busy_d, busy_e));
    }

    #[test]
    fn churn_keeps_the_queue_bounded() {
        let adm = Admission::new(4);
        let keep = adm.admit().unwrap();
        let _busy = keep.conn.begin().unwrap();
        for _ in 0..10_000 {
            drop(adm.admit().unwrap());
        }
        let held: Vec<_> = (0..10_000).filter_map(|_| adm.admit()).collect();
        assert_eq!(adm.len(), 4);
        assert!(adm.state.lock().unwrap().order.len() <= 2 * 4 + 16 + 1);
        drop(held);
    }

    fn state(pods: usize) -> AppState {
        use crate::model::{Event, EventKind};
        let tracker = SharedTracker::new(crate::timeline::Tracker::new(Default::default()));
        {
            let mut t = tracker.lock();
            for n in 0..pods {
                let pod = PodRef::new(format!("ns-{}", n % 3), format!("litellm-{n:04}"));
                t.apply_event(
                    &pod,
                    &Event {
                        ts: Some(Timestamp(1_700_000_000_000_000_000)),
                        kind: EventKind::BudgetCacheMiss,
                        rule: None,
                    },
                    Timestamp(1_700_000_000_000_000_000),
                );
            }
        }
        AppState {
            metrics: Arc::new(Metrics::new(tracker.clone()).unwrap()),
            tracker,
            gates: Default::default(),
            watching: Arc::new(AtomicBool::new(true)),
            state_file: None,
        }
    }

    async fn get(
        state: &AppState,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        use http_body_util::BodyExt as _;
        use hyper::service::Service as _;
        let svc = hyper_util::service::TowerToHyperService::new(router(state.clone()));
        let mut req = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = svc
            .call(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        if let Some(len) = parts.headers.get(header::CONTENT_LENGTH) {
            assert_eq!(len.to_str().unwrap(), bytes.len().to_string());
        }
        (parts.status, parts.headers, bytes)
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        let h = |v: &str| {
            let mut m = axum::http::HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("identity, GZIP;q=0.5"));
        assert!(h("br;q=1.0, x-gzip"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("*, gzip;q=0"));
        assert!(!h("identity"));
        assert!(!h("br, deflate"));
        assert!(!accepts_gzip(&axum::http::HeaderMap::new()));
    }

    #[tokio::test]
    async fn metrics_are_gzipped_only_when_accepted_and_decode_to_the_same_page() {
        use std::io::Read as _;
        let s = state(300);
        let (status, plain_h, plain) = get(&s, "/metrics", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(plain_h.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain_h[header::VARY], "Accept-Encoding");
        assert_eq!(
            plain_h[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = String::from_utf8(plain.clone()).unwrap();
        assert!(text.contains("litellm_sentinel_pods_tracked 300\n"));
        assert!(text.contains("litellm_sentinel_build_info{"));

        let (status, gz_h, gz) =
            get(&s, "/metrics", &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(gz_h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gz_h[header::VARY], "Accept-Encoding");
        let mut d = flate2::read::GzDecoder::new(&gz[..]);
        let mut decoded = Vec::new();
        d.read_to_end(&mut decoded).unwrap();
        assert_eq!(decoded, plain, "gzip decodes to the plain page");
        assert!(
            gz.len() * 5 < plain.len(),
            "{} vs {}",
            gz.len(),
            plain.len()
        );

        let (_, refused_h, refused) = get(&s, "/metrics", &[("accept-encoding", "gzip;q=0")]).await;
        assert!(refused_h.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(refused, plain);
    }

    #[tokio::test]
    async fn a_real_connection_gets_the_gzip_page_with_its_exact_length() {
        use std::io::Read as _;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let s = state(50);
        let want = s.metrics.render().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, s, async {
            let _ = stop_rx.await;
        }));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        c.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split + 4..];
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("\r\ncontent-encoding: gzip"), "{head}");
        assert!(head.contains("\r\nvary: accept-encoding"), "{head}");
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, want);
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn pods_are_filtered_and_paged_without_gaps_or_repeats() {
        let s = state(25);
        let page = |body: &[u8]| serde_json::from_slice::<serde_json::Value>(body).unwrap();
        // Default: every pod on one page, no token.
        let (status, _, body) = get(&s, "/api/v1/pods", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let all = page(&body);
        assert_eq!(all["pods"].as_array().unwrap().len(), 25);
        assert_eq!(all["total"], 25);
        assert!(all.get("continue").is_none());

        // Pages of 4 in namespace ns-1 (pods 1, 4, 7, …, 22: 8 pods).
        let mut seen = Vec::new();
        let mut uri = "/api/v1/pods?namespace=ns-1&limit=4".to_string();
        loop {
            let (status, _, body) = get(&s, &uri, &[]).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            let p = page(&body);
            assert_eq!(p["total"], 8);
            let pods = p["pods"].as_array().unwrap();
            assert!(pods.len() <= 4);
            seen.extend(pods.iter().map(|v| {
                assert_eq!(v["namespace"], "ns-1");
                v["pod"].as_str().unwrap().to_string()
            }));
            match p.get("continue").and_then(|c| c.as_str()) {
                Some(token) => {
                    uri = format!("/api/v1/pods?namespace=ns-1&limit=4&continue={token}")
                }
                None => break,
            }
        }
        let want: Vec<String> = (0..25)
            .filter(|n| n % 3 == 1)
            .map(|n| format!("litellm-{n:04}"))
            .collect();
        assert_eq!(seen, want);

        let (_, _, body) = get(&s, "/api/v1/pods?pod=litellm-0007", &[]).await;
        let one = page(&body);
        assert_eq!(one["total"], 1);
        assert_eq!(one["pods"][0]["namespace"], "ns-1");
        let (_, _, body) = get(&s, "/api/v1/pods?pod=litellm-001*", &[]).await;
        assert_eq!(page(&body)["total"], 10);
        let (_, _, body) = get(&s, "/api/v1/pods?namespace=nope", &[]).await;
        assert_eq!(page(&body)["pods"].as_array().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn bad_pod_parameters_are_400_with_the_reason() {
        let s = state(3);
        for (uri, says) in [
            (
                "/api/v1/pods?limit=0",
                "`limit` must be an integer from 1 to 1000",
            ),
            (
                "/api/v1/pods?limit=1001",
                "`limit` must be an integer from 1 to 1000",
            ),
            ("/api/v1/pods?limit=ten", "`limit`"),
            ("/api/v1/pods?continue=abc", "`continue` is not a token"),
            ("/api/v1/pods?continue=p1zz", "`continue` is not a token"),
            ("/api/v1/pods?namepsace=x", "unknown parameter `namepsace`"),
            ("/api/v1/pods?pod=a&pod=b", "more than once"),
            ("/api/v1/pods?pod=", "`pod` must be"),
            ("/api/v1/pods?pod=a*b*", "`pod` must be"),
        ] {
            let (status, h, body) = get(&s, uri, &[]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(h[header::CONTENT_TYPE], "application/json", "{uri}");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let error = v["error"].as_str().unwrap();
            assert!(error.contains(says), "{uri}: {error}");
        }
    }

    #[test]
    fn the_cap_follows_the_descriptor_limit() {
        let cap = connection_cap();
        assert!((32..=MAX_CONNECTIONS).contains(&cap), "{cap}");
        let soft = nofile_limit();
        assert!(
            cap as u64 <= soft.saturating_sub(256) / 2 || cap == 32,
            "{cap} vs {soft}"
        );
    }
}
