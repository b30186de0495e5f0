//! A stand-in for the Prisma query engine, for tests and the `demo` command.
//!
//! **The real Prisma query-engine binary cannot be downloaded in this
//! environment**, so this is a stand-in that follows the engine's HTTP wire
//! format as prisma-client-py (RobertCraigie/prisma-client-py) uses it:
//! - `src/prisma/engine/_query.py`: the client starts the engine with
//!   `-p <port>`, then polls `GET /status` every 0.1 s until a JSON answer
//!   without `Errors`; the engine answers `{"status":"ok"}`. Queries are
//!   `POST /` with a JSON body.
//! - `src/prisma/engine/_http.py`: a 2xx JSON object is the answer unless it
//!   has a truthy `errors`; non-2xx is an `EngineRequestError`.
//! - `src/prisma/generator/templates/client.py.jinja` (`query_raw`) reads
//!   `resp['data']['result']`, and `src/prisma/_raw_query.py`
//!   (`deserialize_raw_results`) reads `columns`, `types` and `rows` from it,
//!   so `SELECT 1` answers
//!   `{"data":{"result":{"columns":["?column?"],"types":["int"],"rows":[[1]]}}}`.
//!   `executeRaw` answers the affected-row count, `{"data":{"result":1}}`.
//!
//! Like the real engine it can start late: it listens only after
//! `bind_after` (the real engine binds only after it has connected to
//! PostgreSQL), which is exactly the start-up race the sentinel measures.
//! [`EngineStandin::bound_at`] records the real moment it started listening,
//! the ground truth for gap measurements in tests.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::time::Timestamp;

/// How the stand-in behaves once listening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StandinMode {
    /// Answers like a healthy engine connected to its database.
    #[default]
    Healthy,
    /// Accepts TCP connections and never answers (a wedged engine).
    AcceptButNeverAnswer,
    /// Answers every request with HTTP 500.
    Status500,
    /// `/status` is fine, but queries get a truncated, unparseable body.
    WrongBody,
    /// The engine runs but its database is gone: `/status` is fine, queries
    /// answer Prisma's `P1001 Can't reach database server` (HTTP 200 with `errors`).
    DbUnreachable,
}

/// Options for [`EngineStandin::start`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StandinOptions {
    /// Delay before listening. The port is chosen (and reported) at once.
    pub bind_after: Duration,
    /// Behaviour once listening.
    pub mode: StandinMode,
    /// Listen on this loopback port instead of a free one (0: pick one), as
    /// the real engine does with `-p <port>`.
    pub port: u16,
}

/// A running stand-in. Stops on [`EngineStandin::shutdown`] or when dropped.
#[derive(Debug)]
pub struct EngineStandin {
    port: u16,
    bound_at: Arc<OnceLock<Timestamp>>,
    mode: Arc<std::sync::Mutex<StandinMode>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Starts a stand-in; same as [`EngineStandin::start`].
pub async fn start(opts: StandinOptions) -> io::Result<EngineStandin> {
    EngineStandin::start(opts).await
}

/// How long a late bind keeps retrying when someone grabbed the port.
const LATE_BIND_RETRY: Duration = Duration::from_secs(1);
/// Connections held open in `AcceptButNeverAnswer` mode (oldest dropped beyond).
const MAX_HELD_CONNECTIONS: usize = 1024;

impl EngineStandin {
    /// Picks a free loopback port and starts listening on it now (when
    /// `bind_after` is zero; bind errors are returned) or after `bind_after`.
    ///
    /// A delayed start reserves the port by binding `127.0.0.1:0`, reading
    /// the port and closing that socket, then binds the port again after the
    /// delay. Another process could take the port in between (a tiny race on
    /// a busy machine): the late bind retries for a second and then gives up
    /// with a warning, leaving [`bound_at`](Self::bound_at) `None`; callers
    /// waiting on it should use a deadline.
    pub async fn start(opts: StandinOptions) -> io::Result<EngineStandin> {
        let bound_at = Arc::new(OnceLock::new());
        let (stop, stop_rx) = watch::channel(false);
        let mode = Arc::new(std::sync::Mutex::new(opts.mode));
        let (port, task) = if opts.bind_after.is_zero() {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port)).await?;
            let port = listener.local_addr()?.port();
            let _ = bound_at.set(Timestamp::now());
            (
                port,
                tokio::spawn(serve(listener, Arc::clone(&mode), stop_rx)),
            )
        } else {
            let port = if opts.port != 0 {
                opts.port
            } else {
                let reserve = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
                let port = reserve.local_addr()?.port();
                drop(reserve);
                port
            };
            let bound = Arc::clone(&bound_at);
            let task = tokio::spawn(late_bind(port, opts, Arc::clone(&mode), bound, stop_rx));
            (port, task)
        };
        Ok(EngineStandin {
            port,
            bound_at,
            mode,
            stop,
            task: Some(task),
        })
    }

    /// The loopback port (fixed from the start, even before listening).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, the URL prisma-client-py would use.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Switches the behaviour of an HTTP-answering stand-in from the next
    /// request on (e.g. healthy → [`StandinMode::DbUnreachable`]: the
    /// database went away). [`StandinMode::AcceptButNeverAnswer`] only takes
    /// effect when set before the stand-in listens.
    pub fn set_mode(&self, mode: StandinMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// When it started listening (`None` until then): the ground truth.
    pub fn bound_at(&self) -> Option<Timestamp> {
        self.bound_at.get().copied()
    }

    /// Stops listening and closes connections (like the engine being killed).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for EngineStandin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn late_bind(
    port: u16,
    opts: StandinOptions,
    mode: SharedMode,
    bound_at: Arc<OnceLock<Timestamp>>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::time::sleep(opts.bind_after) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let give_up = tokio::time::Instant::now() + LATE_BIND_RETRY;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < give_up =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                tracing::warn!(port, error = %e, "engine stand-in could not bind its reserved port");
                return;
            }
        }
    };
    let _ = bound_at.set(Timestamp::now());
    serve(listener, mode, stop).await;
}

type SharedMode = Arc<std::sync::Mutex<StandinMode>>;

fn current(mode: &SharedMode) -> StandinMode {
    *mode.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve(listener: TcpListener, mode: SharedMode, stop: watch::Receiver<bool>) {
    match current(&mode) {
        StandinMode::AcceptButNeverAnswer => hold_connections(listener, stop).await,
        _ => {
            let app = Router::new()
                .route("/status", get(status))
                .route("/", post(query))
                .fallback(|| async { StatusCode::NOT_FOUND })
                .with_state(mode);
            let mut stop = stop;
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "engine stand-in server failed");
            }
        }
    }
}

async fn hold_connections(listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut held: std::collections::VecDeque<TcpStream> = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((sock, _)) = accepted {
                    if held.len() >= MAX_HELD_CONNECTIONS {
                        held.pop_front();
                    }
                    held.push_back(sock);
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn status(State(mode): State<SharedMode>) -> Response {
    match current(&mode) {
        StandinMode::Status500 => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"internal error"}"#,
        ),
        _ => json(StatusCode::OK, r#"{"status":"ok"}"#),
    }
}

/// prisma-client-py's `query_raw` result for `SELECT 1` (see the module docs).
pub(crate) const SELECT_ONE_RESPONSE: &str =
    r#"{"data":{"result":{"columns":["?column?"],"types":["int"],"rows":[[1]]}}}"#;
const EXECUTE_RAW_RESPONSE: &str = r#"{"data":{"result":1}}"#;
/// The engine's GraphQL-error shape (HTTP 200 with `errors`), for requests
/// the stand-in does not implement.
const UNSUPPORTED_RESPONSE: &str = r#"{"errors":[{"error":"engine stand-in: only queryRaw/executeRaw are implemented","user_facing_error":{"is_panic":false,"message":"Failed to validate the query: the engine stand-in only implements raw queries","error_code":"P2009"}}]}"#;

/// Prisma's answer when PostgreSQL cannot be reached behind a running engine.
pub(crate) const P1001_RESPONSE: &str = r#"{"errors":[{"error":"Can't reach database server at `127.0.0.1:5432`\n\nPlease make sure your database server is running at `127.0.0.1:5432`.","user_facing_error":{"is_panic":false,"message":"Can't reach database server at `127.0.0.1`:`5432`\n\nPlease make sure your database server is running at `127.0.0.1`:`5432`.","meta":{"database_host":"127.0.0.1","database_port":5432},"error_code":"P1001"}}]}"#;

async fn query(State(mode): State<SharedMode>, body: Bytes) -> Response {
    match current(&mode) {
        StandinMode::DbUnreachable => json(StatusCode::OK, P1001_RESPONSE),
        StandinMode::Status500 => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"internal error"}"#,
        ),
        StandinMode::WrongBody => json(StatusCode::OK, r#"{"data":{"resu"#),
        _ => {
            let query_text = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("query").and_then(|q| q.as_str()).map(str::to_owned))
                .unwrap_or_default();
            if query_text.contains("queryRaw") {
                json(StatusCode::OK, SELECT_ONE_RESPONSE)
            } else if query_text.contains("executeRaw") {
                json(StatusCode::OK, EXECUTE_RAW_RESPONSE)
            } else {
                json(StatusCode::OK, UNSUPPORTED_RESPONSE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::HttpClient;
    use crate::probe::engine::{query_body_is_ok, status_body_is_ok, RAW_QUERY_BODY};

    fn deadline() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn healthy_answers_like_the_engine() {
        let s = EngineStandin::start(StandinOptions::default())
            .await
            .unwrap();
        assert!(s.bound_at().is_some());
        let c = HttpClient::new();
        let st = c
            .get(&format!("{}/status", s.url()), deadline())
            .await
            .unwrap();
        assert!(st.status.is_success() && status_body_is_ok(&st.body));
        let q = c
            .post_json(
                &format!("{}/", s.url()),
                Bytes::from_static(RAW_QUERY_BODY.as_bytes()),
                deadline(),
            )
            .await
            .unwrap();
        assert!(q.status.is_success());
        assert_eq!(&q.body[..], SELECT_ONE_RESPONSE.as_bytes());
        assert!(query_body_is_ok(&q.body));
        // Garbage request: engine-style errors body, which is not "up".
        let g = c
            .post_json(
                &format!("{}/", s.url()),
                Bytes::from_static(b"\xff{not json"),
                deadline(),
            )
            .await
            .unwrap();
        assert!(g.status.is_success() && !query_body_is_ok(&g.body));
        s.shutdown().await;
    }

    #[tokio::test]
    async fn database_gone_answers_p1001_after_a_mode_switch() {
        let s = EngineStandin::start(StandinOptions::default())
            .await
            .unwrap();
        let c = HttpClient::new();
        let q = |c: HttpClient, url: String| async move {
            c.post_json(
                &format!("{url}/"),
                Bytes::from_static(RAW_QUERY_BODY.as_bytes()),
                deadline(),
            )
            .await
            .unwrap()
        };
        assert!(query_body_is_ok(&q(c.clone(), s.url()).await.body));
        s.set_mode(StandinMode::DbUnreachable);
        let r = q(c.clone(), s.url()).await;
        assert!(r.status.is_success());
        assert_eq!(
            crate::probe::engine::classify_query_body(&r.body),
            Err(crate::probe::FailureReason::DbError)
        );
        // /status still says the engine runs.
        let st = c
            .get(&format!("{}/status", s.url()), deadline())
            .await
            .unwrap();
        assert!(status_body_is_ok(&st.body));
        s.shutdown().await;
    }

    #[tokio::test]
    async fn late_bind_refuses_until_bound_then_answers() {
        let s = EngineStandin::start(StandinOptions {
            bind_after: Duration::from_millis(200),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(s.bound_at().is_none());
        let c = HttpClient::new();
        let url = format!("{}/status", s.url());
        assert_eq!(
            c.get(&url, deadline()).await.unwrap_err(),
            crate::http_client::HttpError::Refused
        );
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.bound_at().is_none() {
            assert!(tokio::time::Instant::now() < until, "never bound");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(c.get(&url, deadline()).await.unwrap().status.is_success());
        let port = s.port();
        s.shutdown().await;
        let after = c
            .get(&format!("http://127.0.0.1:{port}/status"), deadline())
            .await
            .unwrap_err();
        assert_eq!(after, crate::http_client::HttpError::Refused);
    }

    #[tokio::test]
    async fn dropping_before_bind_cancels_it() {
        let s = EngineStandin::start(StandinOptions {
            bind_after: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .unwrap();
        let bound = Arc::clone(&s.bound_at);
        drop(s);
        tokio::task::yield_now().await;
        assert!(bound.get().is_none());
    }
}
