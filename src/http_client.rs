//! The agent's one HTTP/1.1 client: the readiness probes and the OTLP push.
//!
//! Every exchange carries a deadline covering connect, response head and
//! body, and bodies are read with a size limit, so a misbehaving peer can
//! neither stall a caller past its deadline nor make the agent buffer
//! megabytes. Errors carry no peer text, so they are always safe to log.
//!
//! Two kinds of client, one code path:
//!
//! - [`HttpClient::new`] (the probes): plain `http://` only, and no connection
//!   reuse on purpose: each probe opens a fresh connection, which is what
//!   "the engine accepts connections now" means, and a connection kept alive
//!   to a process that has since been killed and replaced (LiteLLM 1.108
//!   restarts the engine on another port) cannot make a dead engine look
//!   alive. The connect is done here, not in hyper-util's pool, so that
//!   [`HttpClient::get_timed`] can say *when* the peer accepted and tell a
//!   connect that timed out ([`HttpError::ConnectTimeout`]: nothing accepted)
//!   from a response that timed out ([`HttpError::Timeout`]: the peer accepted
//!   and then kept quiet, as LiteLLM 1.110.2's `/health/readiness` does for
//!   up to 4 s while its database check waits on a missing engine).
//! - [`HttpClient::kept_alive`] (OTLP): connections are pooled, and with a
//!   rustls configuration (the `tls` feature) `https://` URLs are spoken too:
//!   the TLS handshake happens in this module's connector, below hyper's pool.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest response body read by default (the engine's `SELECT 1` answer,
/// LiteLLM's readiness JSON and an OTLP export response are a few hundred bytes).
pub(crate) const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Why an HTTP exchange produced no usable response. Carries no peer text, so
/// it is always safe to log.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpError {
    /// The URL is not an absolute URL of a scheme this client speaks, or the
    /// request could not be built from it.
    #[error("invalid URL")]
    InvalidUrl,
    /// Nothing listens on the port (`ECONNREFUSED`).
    #[error("connection refused")]
    Refused,
    /// The deadline passed before the TCP connection was accepted.
    #[error("timed out connecting")]
    ConnectTimeout,
    /// The deadline passed before the whole response had arrived. On a
    /// probe client (fresh connections) this means the peer *accepted* the
    /// connection; on a kept-alive client the connect may be included.
    #[error("timed out waiting for the response")]
    Timeout,
    /// Connecting failed for another reason (unreachable, reset, DNS).
    #[error("could not connect")]
    Connect,
    /// The TLS handshake failed (certificate not trusted, name mismatch, mTLS refused).
    #[error("TLS handshake failed")]
    Tls,
    /// The connection broke or the peer spoke something that is not HTTP/1.1.
    #[error("request failed after connecting")]
    Request,
    /// The body exceeded the size limit.
    #[error("response body too large")]
    BodyTooLarge,
    /// Reading the body failed midway.
    #[error("reading the response body failed")]
    Body,
}

/// A fully read response: status and (size-limited) body.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    /// HTTP status code.
    pub status: StatusCode,
    /// The complete body, at most the client's body limit.
    pub body: Bytes,
}

/// A response whose head arrived; the body may still have failed (some
/// callers only need the status).
#[derive(Debug)]
pub(crate) struct HttpExchange {
    /// HTTP status code.
    pub status: StatusCode,
    /// The body, or why it could not be read in full.
    pub body: Result<Bytes, HttpError>,
}

/// A result plus when the peer accepted the TCP connection (`None` when it
/// never did, or on a kept-alive client, which cannot tell).
#[derive(Debug)]
pub(crate) struct Timed<T> {
    /// When the TCP connect completed.
    pub connected_at: Option<Instant>,
    /// What the exchange produced.
    pub result: Result<T, HttpError>,
}

/// How requests reach the peer.
#[derive(Clone, Debug)]
enum Transport {
    /// A fresh TCP connection per request, connected here (probes).
    Fresh,
    /// hyper-util's pooled client (OTLP).
    Pooled(Client<Connector, Full<Bytes>>),
}

/// The HTTP client. Cheap to clone (clones share the connection pool).
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    transport: Transport,
    body_limit: usize,
    /// Whether `https://` URLs are spoken (a TLS configuration was given).
    https: bool,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A plain-HTTP client without connection reuse and with [`DEFAULT_BODY_LIMIT`] (probes).
    pub fn new() -> Self {
        Self::with_body_limit(DEFAULT_BODY_LIMIT)
    }

    /// As [`HttpClient::new`], reading at most `body_limit` bytes of any response body.
    pub(crate) fn with_body_limit(body_limit: usize) -> Self {
        HttpClient {
            transport: Transport::Fresh,
            body_limit,
            https: false,
        }
    }

    /// A client that keeps connections alive (OTLP push): `connect_timeout`
    /// bounds the TCP connect, and with `tls` it also speaks `https://`.
    pub(crate) fn kept_alive(connect_timeout: Duration, tls: Option<TlsClientConfig>) -> Self {
        let https = tls.is_some();
        let client =
            Client::builder(TokioExecutor::new()).build(Connector::new(Some(connect_timeout), tls));
        HttpClient {
            transport: Transport::Pooled(client),
            body_limit: DEFAULT_BODY_LIMIT,
            https,
        }
    }

    /// `GET url`, asking for JSON (as prisma-client-py does for `/status`).
    pub async fn get(&self, url: &str, deadline: Instant) -> Result<HttpResponse, HttpError> {
        self.get_timed(url, deadline).await.result
    }

    /// As [`HttpClient::get`], with when the peer accepted the connection: a
    /// probe that connected learned "the port accepts" at that moment, even
    /// if the answer then timed out or was an error page.
    pub(crate) async fn get_timed(&self, url: &str, deadline: Instant) -> Timed<HttpResponse> {
        let mut connected_at = None;
        let result = self
            .json(Method::GET, url, None, deadline, &mut connected_at)
            .await;
        Timed {
            connected_at,
            result,
        }
    }

    /// `POST url` with a JSON body.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<HttpResponse, HttpError> {
        self.json(Method::POST, url, Some(body), deadline, &mut None)
            .await
    }

    async fn json(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        deadline: Instant,
        connected_at: &mut Option<Instant>,
    ) -> Result<HttpResponse, HttpError> {
        let uri: Uri = url.parse().map_err(|_| HttpError::InvalidUrl)?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| HttpError::InvalidUrl)?;
        let exchange = self.exchange_at(request, deadline, connected_at).await?;
        Ok(HttpResponse {
            status: exchange.status,
            body: exchange.body?,
        })
    }

    /// Sends `request` (its URI absolute) and reads the response head and
    /// body, all before `deadline`.
    pub(crate) async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        deadline: Instant,
    ) -> Result<HttpExchange, HttpError> {
        self.exchange_at(request, deadline, &mut None).await
    }

    async fn exchange_at(
        &self,
        request: Request<Full<Bytes>>,
        deadline: Instant,
        connected_at: &mut Option<Instant>,
    ) -> Result<HttpExchange, HttpError> {
        let uri = request.uri();
        if uri.host().is_none_or(str::is_empty) || !self.client_speaks(uri) {
            return Err(HttpError::InvalidUrl);
        }
        match &self.transport {
            Transport::Fresh => {
                fresh_exchange(request, deadline, self.body_limit, connected_at).await
            }
            Transport::Pooled(client) => {
                let exchange = async {
                    let response = client
                        .request(request)
                        .await
                        .map_err(classify_client_error)?;
                    Ok(read_body(response, self.body_limit).await)
                };
                match tokio::time::timeout_at(deadline, exchange).await {
                    Ok(result) => result,
                    Err(_elapsed) => Err(HttpError::Timeout),
                }
            }
        }
    }

    /// Whether the URI's scheme is one this client speaks.
    fn client_speaks(&self, uri: &Uri) -> bool {
        match uri.scheme_str() {
            Some("http") => true,
            Some("https") => self.https,
            _ => false,
        }
    }
}

/// What `kept_alive` needs for `https://`: a rustls client configuration.
#[cfg(feature = "tls")]
pub(crate) type TlsClientConfig = std::sync::Arc<rustls::ClientConfig>;
/// Without the `tls` feature there is no configuration to give.
#[cfg(not(feature = "tls"))]
pub(crate) type TlsClientConfig = std::convert::Infallible;

/// Reads a response's status and (size-limited) body.
async fn read_body(response: hyper::Response<hyper::body::Incoming>, limit: usize) -> HttpExchange {
    let status = response.status();
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                HttpError::BodyTooLarge
            } else {
                HttpError::Body
            }
        });
    HttpExchange { status, body }
}

/// Aborts a spawned task when dropped (the connection driver of a fresh
/// exchange must not outlive it: a peer that never answers would keep the
/// socket open).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request on a fresh TCP connection: connect (the deadline passing
/// here is [`HttpError::ConnectTimeout`]), note when it was accepted in
/// `connected_at`, then send and read the response (the deadline passing
/// here is [`HttpError::Timeout`]).
async fn fresh_exchange(
    request: Request<Full<Bytes>>,
    deadline: Instant,
    body_limit: usize,
    connected_at: &mut Option<Instant>,
) -> Result<HttpExchange, HttpError> {
    let uri = request.uri().clone();
    let host = uri
        .host()
        .ok_or(HttpError::InvalidUrl)?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let tcp =
        match tokio::time::timeout_at(deadline, TcpStream::connect((host.as_str(), port))).await {
            Err(_elapsed) => return Err(HttpError::ConnectTimeout),
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    io::ErrorKind::ConnectionRefused => HttpError::Refused,
                    io::ErrorKind::TimedOut => HttpError::ConnectTimeout,
                    _ => HttpError::Connect,
                })
            }
            Ok(Ok(tcp)) => tcp,
        };
    *connected_at = Some(Instant::now());
    // Requests are small and latency matters more than packets; failing to
    // set it only costs latency.
    if tcp.set_nodelay(true).is_err() {
        tracing::debug!("could not set TCP_NODELAY on a probe connection");
    }
    // hyper's connection API sends the URI as given: origin form plus Host.
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(HOST) {
        let authority = uri.authority().ok_or(HttpError::InvalidUrl)?.as_str();
        let value = HeaderValue::from_str(authority).map_err(|_| HttpError::InvalidUrl)?;
        parts.headers.insert(HOST, value);
    }
    parts.uri = uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse()
        .map_err(|_| HttpError::InvalidUrl)?;
    let request = Request::from_parts(parts, body);
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| classify_hyper_error(&e))?;
        // The driver's own error is the one the request or body reports.
        let _driver = AbortOnDrop(tokio::spawn(async move {
            if conn.await.is_err() {
                tracing::trace!("probe connection ended with an error");
            }
        }));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| classify_hyper_error(&e))?;
        Ok(read_body(response, body_limit).await)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(result) => result,
        Err(_elapsed) => Err(HttpError::Timeout),
    }
}

/// Maps a hyper error after connecting to a reason.
fn classify_hyper_error(err: &hyper::Error) -> HttpError {
    match io_error_kind(err) {
        Some(io::ErrorKind::TimedOut) => HttpError::Timeout,
        _ => HttpError::Request,
    }
}

/// Maps a hyper-util client error to a reason by walking its cause chain for
/// the underlying `io::Error` (hyper-util wraps it in its `ConnectError`).
fn classify_client_error(err: hyper_util::client::legacy::Error) -> HttpError {
    if find_cause::<TlsHandshakeError>(&err).is_some() {
        return HttpError::Tls;
    }
    let io_kind = io_error_kind(&err);
    if err.is_connect() {
        return match io_kind {
            Some(io::ErrorKind::ConnectionRefused) => HttpError::Refused,
            Some(io::ErrorKind::TimedOut) => HttpError::ConnectTimeout,
            _ => HttpError::Connect,
        };
    }
    match io_kind {
        Some(io::ErrorKind::TimedOut) => HttpError::Timeout,
        _ => HttpError::Request,
    }
}

/// The first error of type `E` in an error's cause chain.
fn find_cause<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    // Bounded walk: cause chains are short, but never trust a cycle.
    for _ in 0..16 {
        let e = current?;
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The kind of the first `io::Error` in an error's cause chain.
pub(crate) fn io_error_kind(err: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    find_cause::<io::Error>(err).map(io::Error::kind)
}

/// A TLS handshake that failed (its cause is not kept: it can quote the peer).
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake failed")]
struct TlsHandshakeError;

/// An `https://` URL given to a client without TLS.
#[derive(Debug, thiserror::Error)]
#[error("https is not configured for this client")]
struct NoTls;

/// TCP via hyper-util's connector, then TLS for `https://` when configured.
#[derive(Clone)]
struct Connector {
    http: HttpConnector,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    fn new(connect_timeout: Option<Duration>, tls: Option<TlsClientConfig>) -> Connector {
        let mut http = HttpConnector::new();
        // Requests are small and latency matters more than packets.
        http.set_nodelay(true);
        http.set_connect_timeout(connect_timeout);
        // The scheme is checked before a request is sent; TLS is layered here.
        http.enforce_http(false);
        #[cfg(feature = "tls")]
        let tls = tls.map(tokio_rustls::TlsConnector::from);
        #[cfg(not(feature = "tls"))]
        if let Some(never) = tls {
            match never {}
        }
        Connector {
            http,
            #[cfg(feature = "tls")]
            tls,
        }
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme_str() == Some("https");
        let mut http = self.http.clone();
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        Box::pin(async move {
            if !https {
                return Ok(Stream::Plain(http.call(uri).await?));
            }
            #[cfg(feature = "tls")]
            if let Some(tls) = tls {
                let host = uri
                    .host()
                    .unwrap_or_default()
                    .trim_matches(['[', ']'])
                    .to_string();
                let name =
                    rustls::pki_types::ServerName::try_from(host).map_err(|_| TlsHandshakeError)?;
                let tcp = http.call(uri).await?.into_inner();
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|_| TlsHandshakeError)?;
                return Ok(Stream::Tls(Box::new(TokioIo::new(stream))));
            }
            Err(NoTls.into())
        })
    }
}

/// A connection: plain TCP or TLS over TCP.
enum Stream {
    Plain(TokioIo<TcpStream>),
    #[cfg(feature = "tls")]
    /// Boxed: a TLS session is a kilobyte, a TCP stream a few words.
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(s) => s.connected(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.inner().get_ref().0.connected(),
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// Serves one raw HTTP response to the first connection.
    async fn one_shot(response: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(&response).await;
            let _ = sock.shutdown().await;
        });
        format!("http://{addr}/status")
    }

    #[tokio::test]
    async fn reads_status_and_body() {
        let url = one_shot(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}"
                .to_vec(),
        )
        .await;
        let resp = HttpClient::new().get(&url, soon()).await.unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(&resp.body[..], b"{\"status\":\"ok\"}");
    }

    #[tokio::test]
    async fn refused_when_nothing_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = HttpClient::new()
            .get(&format!("http://127.0.0.1:{port}/status"), soon())
            .await
            .unwrap_err();
        assert_eq!(err, HttpError::Refused);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_rejected() {
        let mut response = b"HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n".to_vec();
        response.extend(std::iter::repeat_n(b'x', 2000));
        let url = one_shot(response).await;
        let err = HttpClient::with_body_limit(100)
            .get(&url, soon())
            .await
            .unwrap_err();
        assert_eq!(err, HttpError::BodyTooLarge);
    }

    #[tokio::test]
    async fn garbage_instead_of_http_is_a_request_error() {
        let url =
            one_shot(b"\x00\xffSSH-2.0-OpenSSH_9.2\r\n\x1b[31mnot http\x1b[0m".to_vec()).await;
        let err = HttpClient::new().get(&url, soon()).await.unwrap_err();
        assert_eq!(err, HttpError::Request);
    }

    #[tokio::test]
    async fn truncated_body_is_a_body_error() {
        let url = one_shot(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"stat".to_vec()).await;
        let err = HttpClient::new().get(&url, soon()).await.unwrap_err();
        assert!(
            matches!(err, HttpError::Body | HttpError::Request),
            "{err:?}"
        );
    }

    /// A peer that accepts one connection and never answers on it.
    async fn silent_peer() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let holder = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(sock);
        });
        (addr, holder)
    }

    #[tokio::test]
    async fn silent_peer_times_out_at_the_deadline() {
        let (addr, holder) = silent_peer().await;
        let start = Instant::now();
        let err = HttpClient::new()
            .get(
                &format!("http://{addr}/status"),
                start + Duration::from_millis(200),
            )
            .await
            .unwrap_err();
        assert_eq!(err, HttpError::Timeout);
        assert!(start.elapsed() < Duration::from_secs(5));
        holder.abort();
    }

    #[tokio::test]
    async fn get_timed_says_when_the_peer_accepted() {
        // A silent peer: accepted (connected_at set, near the start), then
        // the response timed out.
        let (addr, holder) = silent_peer().await;
        let start = Instant::now();
        let t = HttpClient::new()
            .get_timed(
                &format!("http://{addr}/health/readiness"),
                start + Duration::from_millis(300),
            )
            .await;
        assert_eq!(t.result.unwrap_err(), HttpError::Timeout);
        let at = t.connected_at.expect("accepted");
        assert!(
            at >= start && at - start < Duration::from_millis(250),
            "{:?}",
            at - start
        );
        holder.abort();
        // Nothing listening: refused, never connected.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = HttpClient::new()
            .get_timed(
                &format!("http://127.0.0.1:{port}/"),
                Instant::now() + Duration::from_secs(2),
            )
            .await;
        assert_eq!(t.result.unwrap_err(), HttpError::Refused);
        assert!(t.connected_at.is_none());
    }

    #[tokio::test]
    async fn rejects_non_http_urls() {
        let c = HttpClient::new();
        for bad in [
            "https://127.0.0.1:1/",
            "127.0.0.1:4000",
            "",
            "http://",
            "ftp://x/",
        ] {
            assert_eq!(
                c.get(bad, soon()).await.unwrap_err(),
                HttpError::InvalidUrl,
                "{bad}"
            );
        }
    }

    /// Connections accepted and requests served on an already-used connection.
    #[derive(Default)]
    struct Counts {
        accepted: AtomicUsize,
        reused: AtomicUsize,
    }

    /// Serves `200 ok` to every request on every connection of `listener`
    /// (TLS when `tls` is given), counting connections and reuse.
    #[cfg(feature = "tls")]
    type Acceptor = tokio_rustls::TlsAcceptor;
    /// Without TLS support there is no acceptor to give.
    #[cfg(not(feature = "tls"))]
    #[derive(Clone)]
    enum Acceptor {}

    async fn counting_server(listener: TcpListener, tls: Option<Acceptor>) -> Arc<Counts> {
        let counts = Arc::new(Counts::default());
        let all = counts.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                all.accepted.fetch_add(1, Ordering::SeqCst);
                let (tls, all) = (tls.clone(), all.clone());
                tokio::spawn(async move {
                    let served = Arc::new(AtomicUsize::new(0));
                    let service = hyper::service::service_fn(move |_req| {
                        if served.fetch_add(1, Ordering::SeqCst) > 0 {
                            all.reused.fetch_add(1, Ordering::SeqCst);
                        }
                        async {
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        #[cfg(not(feature = "tls"))]
                        Some(never) => match never {},
                        #[cfg(feature = "tls")]
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                        None => http.serve_connection(TokioIo::new(tcp), service).await,
                    };
                });
            }
        });
        counts
    }

    /// Sends requests until one is served on a kept-alive connection (the
    /// pool returns a connection asynchronously, so the second request may
    /// still race a fresh connect); fails after a deadline.
    async fn until_reused(c: &HttpClient, url: &str, counts: &Counts) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while counts.reused.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "no connection was ever reused");
            let r = c.get(url, soon()).await.unwrap();
            assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"ok"[..]));
        }
    }

    #[tokio::test]
    async fn probe_clients_open_a_fresh_connection_every_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/status", listener.local_addr().unwrap());
        let counts = counting_server(listener, None).await;
        let c = HttpClient::new();
        for _ in 0..5 {
            let r = c.get(&url, soon()).await.unwrap();
            assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"ok"[..]));
        }
        assert_eq!(counts.accepted.load(Ordering::SeqCst), 5);
        assert_eq!(counts.reused.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn kept_alive_clients_reuse_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
        let counts = counting_server(listener, None).await;
        let c = HttpClient::kept_alive(Duration::from_secs(5), None);
        until_reused(&c, &url, &counts).await;
        // Without a TLS configuration, https is not spoken.
        assert_eq!(
            c.get("https://localhost:1/", soon()).await.unwrap_err(),
            HttpError::InvalidUrl
        );
    }

    #[cfg(feature = "tls")]
    mod tls {
        use super::*;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        /// A TLS acceptor for a self-signed `localhost` certificate, and the certificate.
        fn acceptor() -> (tokio_rustls::TlsAcceptor, CertificateDer<'static>) {
            let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
            let cert = ck.cert.der().clone();
            let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.clone()], key)
                .unwrap();
            (tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert)
        }

        fn client_trusting(roots: Vec<CertificateDer<'static>>) -> HttpClient {
            let mut store = rustls::RootCertStore::empty();
            for c in roots {
                store.add(c).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth();
            HttpClient::kept_alive(Duration::from_secs(5), Some(Arc::new(config)))
        }

        #[tokio::test]
        async fn https_is_verified_and_kept_alive() {
            let (acceptor, cert) = acceptor();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let counts = counting_server(listener, Some(acceptor)).await;
            let c = client_trusting(vec![cert]);
            let url = format!("https://localhost:{port}/v1/metrics");
            until_reused(&c, &url, &counts).await;
            // The same client still speaks plain http.
            let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let plain_url = format!("http://{}/", plain.local_addr().unwrap());
            counting_server(plain, None).await;
            assert_eq!(
                c.get(&plain_url, soon()).await.unwrap().status,
                StatusCode::OK
            );
        }

        #[tokio::test]
        async fn an_untrusted_or_misnamed_server_is_a_tls_error() {
            let (acceptor, cert) = acceptor();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            counting_server(listener, Some(acceptor)).await;
            let untrusting = client_trusting(Vec::new());
            let url = format!("https://localhost:{port}/");
            assert_eq!(
                untrusting.get(&url, soon()).await.unwrap_err(),
                HttpError::Tls
            );
            // Trusted certificate, but for another name than the one dialled.
            let trusting = client_trusting(vec![cert]);
            let by_ip = format!("https://127.0.0.1:{port}/");
            assert_eq!(
                trusting.get(&by_ip, soon()).await.unwrap_err(),
                HttpError::Tls
            );
        }

        #[tokio::test]
        async fn plain_http_on_the_https_port_is_not_mistaken_for_success() {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            counting_server(listener, None).await;
            let err = client_trusting(Vec::new())
                .get(&format!("https://localhost:{port}/"), soon())
                .await
                .unwrap_err();
            assert_eq!(err, HttpError::Tls);
        }
    }
}
