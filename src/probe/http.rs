//! A deliberately tiny HTTP/1.1 client for the readiness probes.
//!
//! The probes only talk plain HTTP to localhost (the query engine binds
//! `127.0.0.1:<port>`, LiteLLM listens on the pod's own port), so there is no
//! TLS here. Every request carries a deadline covering connect, response head
//! and body, and bodies are read with a size limit, so a misbehaving peer can
//! neither stall a probe past its timeout nor make the agent buffer megabytes.
//!
//! Connection pooling is switched off on purpose: each probe opens a fresh
//! connection, which is what "the engine accepts connections now" means, and
//! a connection kept alive to a process that has since been killed and
//! replaced (LiteLLM 1.108 restarts the engine on another port) cannot make a
//! dead engine look alive.

use std::error::Error as StdError;
use std::io;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

/// Largest response body a probe reads (the engine's `SELECT 1` answer and
/// LiteLLM's readiness JSON are a few hundred bytes).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Why an HTTP exchange produced no usable response. Carries no peer text, so
/// it is always safe to log.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed as an absolute `http://` URL.
    #[error("invalid probe URL")]
    InvalidUrl,
    /// Nothing listens on the port (`ECONNREFUSED`).
    #[error("connection refused")]
    Refused,
    /// The deadline passed before the whole response had arrived.
    #[error("timed out")]
    Timeout,
    /// Connecting failed for another reason (unreachable, reset, DNS).
    #[error("could not connect")]
    Connect,
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
pub struct HttpResponse {
    /// HTTP status code.
    pub status: StatusCode,
    /// The complete body, at most the client's body limit.
    pub body: Bytes,
}

/// Plain-HTTP client shared by the engine and proxy probes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    body_limit: usize,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client without connection reuse and with [`DEFAULT_BODY_LIMIT`].
    pub fn new() -> Self {
        Self::with_body_limit(DEFAULT_BODY_LIMIT)
    }

    /// A client reading at most `body_limit` bytes of any response body.
    pub fn with_body_limit(body_limit: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        HttpClient { client, body_limit }
    }

    /// `GET url`, asking for JSON (as prisma-client-py does for `/status`).
    pub async fn get(&self, url: &str, deadline: Instant) -> Result<HttpResponse, HttpError> {
        self.send(Method::GET, url, None, deadline).await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<HttpResponse, HttpError> {
        self.send(Method::POST, url, Some(body), deadline).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        deadline: Instant,
    ) -> Result<HttpResponse, HttpError> {
        let uri: Uri = url.parse().map_err(|_| HttpError::InvalidUrl)?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(HttpError::InvalidUrl);
        }
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

        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(classify_client_error)?;
            let status = response.status();
            let collected = Limited::new(response.into_body(), self.body_limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        HttpError::BodyTooLarge
                    } else {
                        HttpError::Body
                    }
                })?;
            Ok(HttpResponse {
                status,
                body: collected.to_bytes(),
            })
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(HttpError::Timeout),
        }
    }
}

/// Maps a hyper-util client error to a reason by walking its cause chain for
/// the underlying `io::Error` (hyper-util wraps it in its `ConnectError`).
fn classify_client_error(err: hyper_util::client::legacy::Error) -> HttpError {
    let io_kind = io_error_kind(&err);
    if err.is_connect() {
        return match io_kind {
            Some(io::ErrorKind::ConnectionRefused) => HttpError::Refused,
            Some(io::ErrorKind::TimedOut) => HttpError::Timeout,
            _ => HttpError::Connect,
        };
    }
    match io_kind {
        Some(io::ErrorKind::TimedOut) => HttpError::Timeout,
        _ => HttpError::Request,
    }
}

/// The kind of the first `io::Error` in an error's cause chain.
pub(crate) fn io_error_kind(err: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    // Bounded walk: cause chains are short, but never trust a cycle.
    for _ in 0..16 {
        let e = current?;
        if let Some(io_err) = e.downcast_ref::<io::Error>() {
            return Some(io_err.kind());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[tokio::test]
    async fn silent_peer_times_out_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let holder = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            // Hold the connection open without answering.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(sock);
        });
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
}
