//! The pusher: every interval it gathers the registry, converts it, and
//! POSTs it through the shared HTTP client (pooled keep-alive; rustls for
//! `https://`), with backoff on failure, and a final push at shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Uri};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{is_https, Compression, OtlpConfig, OtlpError};
use super::convert::{to_request, unix_nanos_now};
use super::resource::ResourceInfo;
use super::INITIAL_BACKOFF;
use crate::http_client::{HttpClient, HttpError};
use crate::metrics::Metrics;
use crate::redact::redact as redact_url;
use http_body_util::Full;

/// Why one push failed. Carries no header value and no response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The collector answered with a non-2xx status.
    #[error("collector answered HTTP {0}")]
    Status(u16),
    /// No complete answer before the timeout.
    #[error("timed out")]
    Timeout,
    /// Could not connect (refused, DNS, unreachable).
    #[error("could not connect")]
    Connect,
    /// The connection broke after connecting.
    #[error("request failed after connecting")]
    Request,
    /// The request could not be built (header or URL rejected by hyper).
    #[error("request could not be built")]
    Build,
    /// The TLS handshake failed (certificate not trusted, name mismatch, mTLS refused).
    #[error("TLS handshake failed")]
    Tls,
}

impl From<HttpError> for PushError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::InvalidUrl => PushError::Build,
            HttpError::Refused | HttpError::Connect => PushError::Connect,
            HttpError::Timeout | HttpError::ConnectTimeout => PushError::Timeout,
            HttpError::Tls => PushError::Tls,
            HttpError::Request | HttpError::BodyTooLarge | HttpError::Body => PushError::Request,
        }
    }
}

/// An OTLP/HTTP client; connections to the collector are kept alive.
struct OtlpClient {
    http: HttpClient,
    endpoint: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    compression: Compression,
}

/// How a successful push went.
#[derive(Debug, Default)]
struct PushOk {
    /// Data points the collector rejected (OTLP partial success).
    rejected: i64,
    /// The collector's reason for rejecting them (peer text).
    message: String,
}

impl OtlpClient {
    fn new(cfg: &OtlpConfig) -> Result<OtlpClient, OtlpError> {
        let invalid = || OtlpError::InvalidUrl {
            setting: "otlp endpoint",
            url: redact_url(&cfg.endpoint),
        };
        let tls = if is_https(&cfg.endpoint) {
            #[cfg(feature = "tls")]
            {
                Some(super::tls::client_config(&cfg.tls, [None, None, None])?)
            }
            #[cfg(not(feature = "tls"))]
            return Err(OtlpError::Https {
                setting: "otlp endpoint",
                url: redact_url(&cfg.endpoint),
            });
        } else {
            None
        };
        let endpoint: Uri = cfg.endpoint.parse().map_err(|_| invalid())?;
        // Validated at config time; an entry that still fails is skipped, not logged (secret).
        let headers = cfg
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .map(|(k, mut v)| {
                v.set_sensitive(true);
                (k, v)
            })
            .collect();
        Ok(OtlpClient {
            http: HttpClient::kept_alive(cfg.timeout, tls),
            endpoint,
            headers,
            timeout: cfg.timeout,
            compression: cfg.compression,
        })
    }

    /// The request for one (already compressed) body.
    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>, PushError> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone());
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        if self.compression == Compression::Gzip {
            builder = builder.header(
                hyper::header::CONTENT_ENCODING,
                HeaderValue::from_static("gzip"),
            );
        }
        builder
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("litellm-sentinel/", env!("CARGO_PKG_VERSION"))),
            )
            .body(Full::new(body))
            .map_err(|_| PushError::Build)
    }

    /// POSTs one protobuf body (gzipped when configured); success is any 2xx
    /// answer within the timeout.
    async fn post(&self, body: Vec<u8>) -> Result<PushOk, PushError> {
        let body = match self.compression {
            Compression::None => Bytes::from(body),
            Compression::Gzip => Bytes::from(gzip(&body).map_err(|_| PushError::Build)?),
        };
        let deadline = Instant::now() + self.timeout;
        let response = self.http.exchange(self.request(body)?, deadline).await?;
        if !response.status.is_success() {
            return Err(PushError::Status(response.status.as_u16()));
        }
        // The body was read (bounded) so the connection can be reused; an
        // unreadable one is a success without partial-success details.
        let partial = ExportMetricsServiceResponse::decode(response.body.unwrap_or_default())
            .ok()
            .and_then(|r| r.partial_success)
            .unwrap_or_default();
        Ok(PushOk {
            rejected: partial.rejected_data_points,
            message: partial.error_message,
        })
    }
}

/// Gzips a body (level 6, the zlib default: most of the gain for little CPU).
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    enc.finish()
}

/// Gathers, converts, encodes and posts the registry once.
async fn push_once(
    client: &OtlpClient,
    metrics: &Metrics,
    resource: &ResourceInfo,
    start: u64,
) -> Result<PushOk, PushError> {
    let request = to_request(&metrics.gather(), resource, start, unix_nanos_now());
    client.post(request.encode_to_vec()).await
}

/// Pushes the registry every `cfg.interval` until `shutdown` turns true (or
/// its sender is dropped), then pushes once more (bounded by the timeout) and
/// ends.
///
/// A failed push (transport error or non-2xx) counts in
/// `litellm_sentinel_otlp_export_failures_total` and is retried with
/// exponential backoff (1 s doubling, capped at the interval). The pusher is
/// its own task, so a slow or dead collector never delays tailing, probes or
/// `/metrics`. It warns once per failing streak and says when pushes work again.
pub fn spawn_pusher(
    cfg: OtlpConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match OtlpClient::new(&cfg) {
            Ok(c) => c,
            Err(error) => {
                // Checked when the configuration was read; only a file changed since gets here.
                tracing::error!(%error, "OTLP push disabled: its client cannot be built");
                return;
            }
        };
        let resource = cfg.resource.clone();
        let start = unix_nanos_now();
        let endpoint = redact_url(&cfg.endpoint);
        let initial_backoff = INITIAL_BACKOFF.min(cfg.interval);
        let mut backoff = initial_backoff;
        let mut failing = false;
        let mut partial_warned = false;
        let mut next = Instant::now() + cfg.interval;
        tracing::info!(%endpoint, interval = ?cfg.interval, headers = cfg.headers.len(), compression = ?cfg.compression, service_name = %resource.service_name, "pushing metrics over OTLP/HTTP");
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep_until(next) => false,
                // Err: the sender is gone, which also means stop.
                _ = shutdown.wait_for(|stop| *stop) => true,
            };
            match push_once(&client, &metrics, &resource, start).await {
                Ok(ok) => {
                    if failing {
                        tracing::info!(%endpoint, "OTLP push works again");
                        failing = false;
                    }
                    if ok.rejected > 0 && !partial_warned {
                        // Said once: the same rejection would repeat every interval.
                        let reason: String = ok.message.chars().take(200).collect();
                        tracing::warn!(%endpoint, rejected = ok.rejected, %reason, "the collector rejected some data points");
                        partial_warned = true;
                    }
                    backoff = initial_backoff;
                    next = Instant::now() + cfg.interval;
                }
                Err(error) => {
                    metrics.agent.otlp_export_failures.inc();
                    if !failing && !stopping {
                        tracing::warn!(%endpoint, %error, "OTLP push failed; retrying with backoff (counted in litellm_sentinel_otlp_export_failures_total)");
                        failing = true;
                    }
                    next = Instant::now() + backoff;
                    backoff = (backoff * 2).min(cfg.interval);
                }
            }
            if stopping {
                tracing::debug!("OTLP pusher stopped after a final push");
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = b"litellm_sentinel ".repeat(100);
        let packed = gzip(&body).unwrap();
        assert!(packed.len() < body.len() / 5, "{} bytes", packed.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
