//! OTLP/HTTP push of the agent's metrics (`http/protobuf`, cumulative temporality).
//!
//! Many clusters collect through an OpenTelemetry Collector instead of
//! scraping. The `prometheus::Registry` that serves `/metrics` stays the one
//! source of truth: every push gathers it and converts the families with
//! [`to_request`], so an OTLP backend sees the same names, units and values
//! as a scrape (counters keep their `_total` suffix).
//!
//! Transport: `http://` to a collector in the cluster, or `https://` straight
//! to a managed backend (rustls, the `tls` feature): server certificates are
//! verified against `OTEL_EXPORTER_OTLP_CERTIFICATE` when set, else against
//! the Mozilla roots compiled in (the image is `FROM scratch`, with no CA
//! bundle); `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` / `_CLIENT_KEY` add mTLS.
//! `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` compresses bodies (a 5–10× smaller
//! push). The resource carries `service.name` (`OTEL_SERVICE_NAME`),
//! `service.version`, `service.instance.id` (the pod uid `POD_UID` in the
//! sidecar, else the node name `NODE_NAME`, else the host name) and
//! `OTEL_RESOURCE_ATTRIBUTES`. Every setting is checked (files read and
//! parsed) when the configuration is read, not at the first push.
//!
//! Header values (`OTEL_EXPORTER_OTLP_HEADERS`) are usually API keys: they
//! are never logged, never put in an error, and `OtlpConfig`'s `Debug`
//! redacts them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, summary_data_point, AggregationTemporality, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{self as prom, MetricFamily, MetricType};
use prost::Message;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::redact::redact as redact_url;

/// `service.name` of the agent, and the name of its instrumentation scope.
pub const SERVICE_NAME: &str = "litellm-sentinel";
/// Path of the OTLP/HTTP metrics endpoint, appended to a base endpoint.
pub const METRICS_PATH: &str = "/v1/metrics";
/// Push interval when neither the config nor `OTEL_METRIC_EXPORT_INTERVAL` sets one (OTel default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Per-push deadline when `OTEL_EXPORTER_OTLP_TIMEOUT` is unset (OTel default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay after a failed push; doubles up to the interval.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// Largest collector response read (an `ExportMetricsServiceResponse` is tiny).
const RESPONSE_LIMIT: usize = 64 * 1024;

/// Environment variable names (the OpenTelemetry SDK spellings).
pub mod env {
    /// Base URL; `/v1/metrics` is appended.
    pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// Full metrics URL, used as is; wins over every base URL.
    pub const METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
    /// `k=v,k2=v2`, values percent-decoded. Values are secrets.
    pub const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    /// Push interval in milliseconds.
    pub const INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
    /// Per-push deadline in milliseconds.
    pub const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
    /// Must be `http/protobuf` when set (the only protocol the agent speaks).
    pub const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// Signal-specific form of [`PROTOCOL`]; wins over it.
    pub const METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
    /// `gzip` or `none`.
    pub const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
    /// Signal-specific form of [`COMPRESSION`]; wins over it.
    pub const METRICS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
    /// PEM file of the CA(s) that verify the server (https).
    pub const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
    /// Signal-specific form of [`CERTIFICATE`]; wins over it.
    pub const METRICS_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE";
    /// PEM client certificate (chain) for mTLS.
    pub const CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
    /// Signal-specific form of [`CLIENT_CERTIFICATE`]; wins over it.
    pub const METRICS_CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE";
    /// PEM private key of the client certificate.
    pub const CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
    /// Signal-specific form of [`CLIENT_KEY`]; wins over it.
    pub const METRICS_CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY";
    /// `k=v,k2=v2` resource attributes, values percent-decoded.
    pub const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// `service.name`; wins over a `service.name` in [`RESOURCE_ATTRIBUTES`].
    pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// The pod's uid (Downward API `metadata.uid`): `service.instance.id` of a sidecar.
    pub const POD_UID: &str = "POD_UID";
    /// The node's name (Downward API `spec.nodeName`): `k8s.node.name`, and
    /// `service.instance.id` of the node agent.
    pub const NODE_NAME: &str = "NODE_NAME";
}

/// Body compression of the pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain protobuf (the OTel default).
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// PEM files for an `https://` endpoint (paths only; read when the client is built).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    /// CA certificate(s) that verify the server; `None`: the compiled-in Mozilla roots.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate (chain) for mTLS.
    pub client_cert: Option<std::path::PathBuf>,
    /// Private key of the client certificate.
    pub client_key: Option<std::path::PathBuf>,
}

/// Why the OTLP settings were rejected. Messages name the setting and never
/// contain a header value (URLs have their password redacted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpError {
    /// An `https://` endpoint in a build without the `tls` feature.
    #[error("{setting} = `{url}`: this build has no TLS (built without the `tls` feature); use an http:// collector, e.g. http://otel-collector:4318")]
    Https { setting: &'static str, url: String },
    /// Not an absolute `http(s)://host[:port][/path]` URL.
    #[error(
        "{setting} = `{url}` is not an absolute http:// or https:// URL (e.g. http://otel-collector:4318)"
    )]
    InvalidUrl { setting: &'static str, url: String },
    /// A compression other than `gzip` / `none`.
    #[error("{setting} = `{value}`: only gzip and none are supported")]
    UnsupportedCompression {
        setting: &'static str,
        value: String,
    },
    /// A certificate or key file that cannot be read or parsed.
    #[error("{setting} = `{path}`: {problem}")]
    TlsFile {
        setting: &'static str,
        path: String,
        problem: String,
    },
    /// A client certificate without its key or the other way round.
    #[error(
        "{} and {} must be set together (mTLS)",
        env::CLIENT_CERTIFICATE,
        env::CLIENT_KEY
    )]
    ClientCertWithoutKey,
    /// A resource attribute entry without `=` or with an empty key; only its position is given.
    #[error(
        "{}: entry {index} is not `key=value` (entries are comma-separated)",
        env::RESOURCE_ATTRIBUTES
    )]
    MalformedResourceAttribute { index: usize },
    /// A header entry without `=`; only its position is given (it may hold a secret).
    #[error(
        "{}: entry {index} is not `name=value` (entries are comma-separated)",
        env::HEADERS
    )]
    MalformedHeader { index: usize },
    /// A header name that HTTP does not allow; only its position is given.
    #[error("{}: entry {index} has an invalid header name", env::HEADERS)]
    InvalidHeaderName { index: usize },
    /// A header value that HTTP does not allow (control characters, invalid UTF-8 after decoding).
    #[error(
        "{}: the value of header `{name}` is not a valid HTTP header value (value not shown)",
        env::HEADERS
    )]
    InvalidHeaderValue { name: String },
    /// A millisecond setting that is not a positive integer of at most one day.
    #[error(
        "{setting} = `{value}` is not a whole number of milliseconds from 1 to 86400000 (1 day)"
    )]
    InvalidMillis {
        setting: &'static str,
        value: String,
    },
    /// `grpc` or `http/json` asked for.
    #[error("{setting} = `{value}`: only http/protobuf is supported (use the collector's OTLP/HTTP receiver, port 4318)")]
    UnsupportedProtocol {
        setting: &'static str,
        value: String,
    },
}

/// Where and how to push. Built from the config and the standard OTel
/// environment variables by [`OtlpConfig::from_env_and_flag`] /
/// [`OtlpConfig::from_lookup`].
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Full URL of the metrics endpoint (`/v1/metrics` already appended to a base URL).
    pub endpoint: String,
    /// Extra request headers (e.g. an API key for a gateway). Values are secrets.
    pub headers: Vec<(String, String)>,
    /// Time between pushes.
    pub interval: Duration,
    /// Deadline of one push (connect, send, response).
    pub timeout: Duration,
    /// Body compression.
    pub compression: Compression,
    /// Certificate files for `https://` (ignored for `http://`).
    pub tls: TlsFiles,
    /// Who pushes: the OTLP resource.
    pub resource: ResourceInfo,
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, _)| format!("{k}=***"))
            .collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &redact_url(&self.endpoint))
            .field("headers", &headers)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("tls", &self.tls)
            .field("resource", &self.resource)
            .finish()
    }
}

/// Reads an environment variable; empty counts as unset (Kubernetes manifests
/// often set `value: ""`), non-UTF-8 is kept lossily so that it fails validation visibly.
fn env_var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

impl OtlpConfig {
    /// The OTLP settings from the process environment plus the `otlp_endpoint`
    /// setting (flag, file or `OTEL_EXPORTER_OTLP_ENDPOINT`); `Ok(None)` when
    /// no endpoint is configured anywhere (OTLP push off).
    ///
    /// Endpoint precedence, as in the OTel SDKs: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
    /// (full URL), then `flag_endpoint`, then `OTEL_EXPORTER_OTLP_ENDPOINT` (both base URLs).
    pub fn from_env_and_flag(
        flag_endpoint: Option<String>,
    ) -> Result<Option<OtlpConfig>, OtlpError> {
        Self::from_lookup(flag_endpoint, DEFAULT_INTERVAL, env_var)
    }

    /// The agent's settings: `otlp_endpoint` and `otlp_interval` from the
    /// config, the rest (and overrides) from the OTel environment variables.
    pub fn from_env_and_config(
        cfg: &crate::config::Config,
    ) -> Result<Option<OtlpConfig>, OtlpError> {
        Self::from_lookup(cfg.otlp_endpoint.clone(), cfg.otlp_interval.0, env_var)
    }

    /// [`OtlpConfig::from_env_and_flag`] with the variables read through
    /// `lookup` (tests, and the agent passing its own default interval from
    /// the config file; `OTEL_METRIC_EXPORT_INTERVAL` overrides it).
    pub fn from_lookup(
        flag_endpoint: Option<String>,
        default_interval: Duration,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, OtlpError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let endpoint = if let Some(full) = get(env::METRICS_ENDPOINT) {
            checked_url(env::METRICS_ENDPOINT, full.trim())?
        } else if let Some(base) = flag_endpoint.filter(|v| !v.trim().is_empty()) {
            metrics_url("otlp_endpoint", base.trim())?
        } else if let Some(base) = get(env::ENDPOINT) {
            metrics_url(env::ENDPOINT, base.trim())?
        } else {
            return Ok(None);
        };
        for setting in [env::METRICS_PROTOCOL, env::PROTOCOL] {
            if let Some(p) = get(setting) {
                if p.trim() != "http/protobuf" {
                    return Err(OtlpError::UnsupportedProtocol { setting, value: p });
                }
                break;
            }
        }
        let headers = match get(env::HEADERS) {
            Some(h) => parse_headers(&h)?,
            None => Vec::new(),
        };
        let interval = match get(env::INTERVAL) {
            Some(v) => parse_millis(env::INTERVAL, &v)?,
            None => default_interval,
        };
        let timeout = match get(env::TIMEOUT) {
            Some(v) => parse_millis(env::TIMEOUT, &v)?,
            None => DEFAULT_TIMEOUT,
        };
        // The signal-specific variable wins over the general one.
        let pick = |specific: &'static str, general: &'static str| {
            get(specific)
                .map(|v| (specific, v))
                .or_else(|| get(general).map(|v| (general, v)))
        };
        let compression = match pick(env::METRICS_COMPRESSION, env::COMPRESSION) {
            None => Compression::None,
            Some((_, v)) if v.trim().eq_ignore_ascii_case("none") => Compression::None,
            Some((_, v)) if v.trim().eq_ignore_ascii_case("gzip") => Compression::Gzip,
            Some((setting, value)) => {
                return Err(OtlpError::UnsupportedCompression { setting, value })
            }
        };
        let path = |specific, general| {
            pick(specific, general).map(|(s, v)| (s, std::path::PathBuf::from(v.trim())))
        };
        let ca = path(env::METRICS_CERTIFICATE, env::CERTIFICATE);
        let client_cert = path(env::METRICS_CLIENT_CERTIFICATE, env::CLIENT_CERTIFICATE);
        let client_key = path(env::METRICS_CLIENT_KEY, env::CLIENT_KEY);
        if client_cert.is_some() != client_key.is_some() {
            return Err(OtlpError::ClientCertWithoutKey);
        }
        let tls = TlsFiles {
            ca: ca.as_ref().map(|(_, p)| p.clone()),
            client_cert: client_cert.as_ref().map(|(_, p)| p.clone()),
            client_key: client_key.as_ref().map(|(_, p)| p.clone()),
        };
        if is_https(&endpoint) {
            // Read and parse the files now: a typo fails at start-up, not at every push.
            #[cfg(feature = "tls")]
            tls::client_config(&tls, [ca, client_cert, client_key])?;
        }
        let resource = ResourceInfo::from_lookup(&lookup)?;
        Ok(Some(OtlpConfig {
            endpoint,
            headers,
            interval,
            timeout,
            compression,
            tls,
            resource,
        }))
    }
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
}

/// Checks that `url` is an absolute http(s) URL with a host.
fn checked_url(setting: &'static str, url: &str) -> Result<String, OtlpError> {
    let shown = || redact_url(url);
    let uri: Uri = url.parse().map_err(|_| OtlpError::InvalidUrl {
        setting,
        url: shown(),
    })?;
    let has_host = uri.host().is_some_and(|h| !h.is_empty());
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") && has_host => Ok(url.to_string()),
        Some(s) if s.eq_ignore_ascii_case("https") && has_host => {
            if cfg!(feature = "tls") {
                Ok(url.to_string())
            } else {
                Err(OtlpError::Https {
                    setting,
                    url: shown(),
                })
            }
        }
        _ => Err(OtlpError::InvalidUrl {
            setting,
            url: shown(),
        }),
    }
}

/// The metrics URL of a base endpoint: `/v1/metrics` joined onto its path
/// (unless the path already ends so), a query string kept after it.
fn metrics_url(setting: &'static str, base: &str) -> Result<String, OtlpError> {
    checked_url(setting, base)?;
    // Split off a fragment (never sent) and a query string, join the path.
    let without_fragment = base.split('#').next().unwrap_or(base);
    let (before_query, query) = match without_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (without_fragment, None),
    };
    let trimmed = before_query.trim_end_matches('/');
    let mut full = if trimmed.ends_with(METRICS_PATH) {
        trimmed.to_string()
    } else {
        format!("{trimmed}{METRICS_PATH}")
    };
    if let Some(q) = query {
        full.push('?');
        full.push_str(q);
    }
    checked_url(setting, &full)
}

/// Parses a positive number of milliseconds.
fn parse_millis(setting: &'static str, value: &str) -> Result<Duration, OtlpError> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 && ms <= 86_400_000 => Ok(Duration::from_millis(ms)),
        _ => Err(OtlpError::InvalidMillis {
            setting,
            value: value.to_string(),
        }),
    }
}

/// Parses `k=v,k2=v2` (W3C baggage style): names and values trimmed, values
/// percent-decoded, empty entries skipped. Errors never contain a value.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, OtlpError> {
    let mut out = Vec::new();
    for (index, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let (name, value) = entry
            .split_once('=')
            .ok_or(OtlpError::MalformedHeader { index })?;
        let name = name.trim();
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| OtlpError::InvalidHeaderName { index })?;
        let invalid_value = || OtlpError::InvalidHeaderValue {
            name: header_name.as_str().to_string(),
        };
        let value = String::from_utf8(percent_decode(value.trim().as_bytes()))
            .map_err(|_| invalid_value())?;
        HeaderValue::from_str(&value).map_err(|_| invalid_value())?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(hi), Some(lo)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Who is pushing: becomes the OTLP resource.
///
/// The agent's own pod name is deliberately not sent as `k8s.pod.name`: that
/// attribute names the *watched* LiteLLM pod on each data point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// `service.name`: `OTEL_SERVICE_NAME`, else a `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, else `litellm-sentinel`.
    pub service_name: String,
    /// `service.version` (the crate version).
    pub service_version: String,
    /// `service.instance.id`: tells the agents apart in a backend that has
    /// no scrape target labels (the pod uid of a sidecar, the node of a node
    /// agent, else the host name).
    pub instance_id: Option<String>,
    /// `k8s.node.name`, from the Downward API (`NODE_NAME`).
    pub node_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES` (without `service.name`); they win over the
    /// attributes above on the same key.
    pub extra: Vec<(String, String)>,
}

impl ResourceInfo {
    /// The resource of this process from the environment (see [`ResourceInfo::from_lookup`]).
    pub fn from_env() -> Result<ResourceInfo, OtlpError> {
        Self::from_lookup(&env_var)
    }

    /// The resource from variables read through `lookup`: `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`, `POD_UID`, `NODE_NAME`.
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<ResourceInfo, OtlpError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut extra = match get(env::RESOURCE_ATTRIBUTES) {
            Some(text) => parse_resource_attributes(&text)?,
            None => Vec::new(),
        };
        let from_attrs = extra
            .iter()
            .position(|(k, _)| k == "service.name")
            .map(|i| extra.remove(i).1);
        let node_name = get(env::NODE_NAME);
        let instance_id = get(env::POD_UID)
            .or_else(|| node_name.clone())
            .or_else(hostname);
        Ok(ResourceInfo {
            service_name: get(env::SERVICE_NAME)
                .or(from_attrs)
                .unwrap_or_else(|| SERVICE_NAME.to_string()),
            service_version: env!("CARGO_PKG_VERSION").to_string(),
            instance_id,
            node_name,
            extra,
        })
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let mut attrs: Vec<(String, String)> = vec![
            ("service.name".into(), self.service_name.clone()),
            ("service.version".into(), self.service_version.clone()),
        ];
        if let Some(id) = &self.instance_id {
            attrs.push(("service.instance.id".into(), id.clone()));
        }
        if let Some(node) = &self.node_name {
            attrs.push(("k8s.node.name".into(), node.clone()));
        }
        for (k, v) in &self.extra {
            match attrs.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => attrs.push((k.clone(), v.clone())),
            }
        }
        attrs.iter().map(|(k, v)| string_kv(k, v)).collect()
    }
}

/// The host name (the pod name in Kubernetes), `None` if it cannot be read.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at
    // most that many and we stop at the first NUL (or the buffer's end).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .map(str::to_string)
        .filter(|h| !h.is_empty())
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded).
fn parse_resource_attributes(text: &str) -> Result<Vec<(String, String)>, OtlpError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (index, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let (key, value) = entry
            .split_once('=')
            .ok_or(OtlpError::MalformedResourceAttribute { index })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(OtlpError::MalformedResourceAttribute { index });
        }
        let value = String::from_utf8_lossy(&percent_decode(value.trim().as_bytes())).into_owned();
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key.to_string(), value)),
        }
    }
    Ok(out)
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The OTLP attribute key of a Prometheus label: Kubernetes labels follow the
/// semantic conventions, everything else keeps its name.
fn attribute_key(label: &str) -> &str {
    match label {
        "namespace" => "k8s.namespace.name",
        "pod" => "k8s.pod.name",
        other => other,
    }
}

fn attributes(m: &prom::Metric) -> Vec<KeyValue> {
    m.get_label()
        .iter()
        .map(|l| string_kv(attribute_key(l.name()), l.value()))
        .collect()
}

/// The OTLP unit from the Prometheus name's unit suffix (ignoring `_total`).
fn unit_for(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_bytes") {
        "By"
    } else {
        "1"
    }
}

/// Converts a gathered registry into one OTLP export request: one resource,
/// one scope, one OTLP metric per non-empty family, cumulative temporality.
///
/// `start_time_unix_nano` is when the cumulative series started (the agent's
/// start); `now_unix_nano` stamps every point that carries no timestamp.
pub fn to_request(
    families: &[MetricFamily],
    resource: &ResourceInfo,
    start_time_unix_nano: u64,
    now_unix_nano: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter_map(|f| convert_family(f, start_time_unix_nano, now_unix_nano))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.attributes(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    // The scope is the instrumenting code, whatever the service is called.
                    name: SERVICE_NAME.to_string(),
                    version: resource.service_version.clone(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One family as an OTLP metric; `None` when it has no series.
fn convert_family(f: &MetricFamily, start: u64, now: u64) -> Option<Metric> {
    let series = f.get_metric();
    if series.is_empty() {
        return None;
    }
    let time = |m: &prom::Metric| match u64::try_from(m.timestamp_ms()) {
        Ok(ms) if ms > 0 => ms.saturating_mul(1_000_000),
        _ => now,
    };
    let number = |m: &prom::Metric, start: u64, v: f64| NumberDataPoint {
        attributes: attributes(m),
        start_time_unix_nano: start,
        time_unix_nano: time(m),
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match f.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: series
                .iter()
                .map(|m| number(m, start, m.get_counter().get_value()))
                .collect(),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: series
                .iter()
                .map(|m| number(m, 0, m.get_gauge().get_value()))
                .collect(),
        }),
        // The prometheus crate has no untyped metric (its text encoder refuses
        // them), so no family of ours is untyped: nothing to convert.
        MetricType::UNTYPED => return None,
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: series
                .iter()
                .map(|m| {
                    let h = m.get_histogram();
                    let (explicit_bounds, bucket_counts, count) = histogram_buckets(h);
                    HistogramDataPoint {
                        attributes: attributes(m),
                        start_time_unix_nano: start,
                        time_unix_nano: time(m),
                        count,
                        sum: Some(h.get_sample_sum()),
                        bucket_counts,
                        explicit_bounds,
                        ..Default::default()
                    }
                })
                .collect(),
            aggregation_temporality: cumulative,
        }),
        MetricType::SUMMARY => metric::Data::Summary(Summary {
            data_points: series
                .iter()
                .map(|m| {
                    let s = m.get_summary();
                    SummaryDataPoint {
                        attributes: attributes(m),
                        start_time_unix_nano: start,
                        time_unix_nano: time(m),
                        count: s.sample_count(),
                        sum: s.sample_sum(),
                        quantile_values: s
                            .get_quantile()
                            .iter()
                            .map(|q| summary_data_point::ValueAtQuantile {
                                quantile: q.quantile(),
                                value: q.value(),
                            })
                            .collect(),
                        ..Default::default()
                    }
                })
                .collect(),
        }),
    };
    Some(Metric {
        name: f.name().to_string(),
        description: f.help().to_string(),
        unit: unit_for(f.name()).to_string(),
        data: Some(data),
        ..Default::default()
    })
}

/// Prometheus cumulative buckets → OTLP `(explicit_bounds, bucket_counts, count)`.
///
/// OTLP counts each bucket on its own and has one more bucket than bounds
/// (the overflow above the last bound), so `+Inf` is not a bound. Malformed
/// input (bounds not increasing, NaN, counts going down) never panics: such
/// buckets are merged into the next one, and `count` is raised if needed so
/// that the bucket counts always add up to it.
fn histogram_buckets(h: &prom::Histogram) -> (Vec<f64>, Vec<u64>, u64) {
    let mut bounds = Vec::new();
    let mut counts = Vec::new();
    let mut below = 0u64;
    for b in h.get_bucket() {
        let ub = b.upper_bound();
        if !ub.is_finite() || bounds.last().is_some_and(|last| ub <= *last) {
            continue;
        }
        let cumulative = b.cumulative_count().max(below);
        bounds.push(ub);
        counts.push(cumulative - below);
        below = cumulative;
    }
    let count = h.get_sample_count().max(below);
    counts.push(count - below);
    (bounds, counts, count)
}

/// Nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

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

/// An OTLP/HTTP client; connections to the collector are kept alive.
struct OtlpClient {
    transport: Transport,
    endpoint: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    compression: Compression,
}

/// How requests reach the endpoint.
enum Transport {
    /// `http://`: hyper-util's pooled client.
    Plain(Client<HttpConnector, Full<Bytes>>),
    /// `https://`: one kept-alive TLS connection, re-opened when it closes.
    #[cfg(feature = "tls")]
    Tls(tls::TlsTransport),
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
        let transport = if is_https(&cfg.endpoint) {
            #[cfg(feature = "tls")]
            {
                let config = tls::client_config(&cfg.tls, [None, None, None])?;
                Transport::Tls(tls::TlsTransport::new(&cfg.endpoint, config)?)
            }
            #[cfg(not(feature = "tls"))]
            return Err(OtlpError::Https {
                setting: "otlp endpoint",
                url: redact_url(&cfg.endpoint),
            });
        } else {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(cfg.timeout));
            Transport::Plain(Client::builder(TokioExecutor::new()).build(connector))
        };
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
            transport,
            endpoint: cfg.endpoint.clone(),
            headers,
            timeout: cfg.timeout,
            compression: cfg.compression,
        })
    }

    /// The request for one body (built per attempt: a TLS retry needs a fresh one).
    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>, PushError> {
        let uri: Uri = self.endpoint.parse().map_err(|_| PushError::Build)?;
        let mut builder = Request::builder().method(Method::POST);
        match &self.transport {
            Transport::Plain(_) => builder = builder.uri(uri),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => {
                // A bare connection: origin-form target plus Host.
                let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
                builder = builder
                    .uri(target)
                    .header(hyper::header::HOST, t.host_header());
            }
        }
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
        let exchange = async {
            let response = match &self.transport {
                Transport::Plain(client) => {
                    client.request(self.request(body)?).await.map_err(|e| {
                        if e.is_connect() {
                            PushError::Connect
                        } else {
                            PushError::Request
                        }
                    })?
                }
                #[cfg(feature = "tls")]
                Transport::Tls(t) => t.send(|| self.request(body.clone())).await?,
            };
            let status = response.status();
            // Read (and bound) the body so the connection can be reused.
            let body = Limited::new(response.into_body(), RESPONSE_LIMIT)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if !status.is_success() {
                return Err(PushError::Status(status.as_u16()));
            }
            let partial = ExportMetricsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .unwrap_or_default();
            Ok(PushOk {
                rejected: partial.rejected_data_points,
                message: partial.error_message,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(PushError::Timeout),
        }
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

/// `https://` transport: rustls (ring), one kept-alive HTTP/1.1 connection.
#[cfg(feature = "tls")]
mod tls {
    use std::path::Path;
    use std::sync::Arc;

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::client::conn::http1;
    use hyper::{Request, Response, Uri};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, RootCertStore};
    use tokio::sync::Mutex;

    use super::{env, OtlpError, PushError, TlsFiles};

    fn file_error(setting: &'static str, path: &Path, problem: impl Into<String>) -> OtlpError {
        OtlpError::TlsFile {
            setting,
            path: path.display().to_string(),
            problem: problem.into(),
        }
    }

    fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, OtlpError> {
        std::fs::read(path).map_err(|e| file_error(setting, path, format!("cannot read: {e}")))
    }

    fn certs(
        setting: &'static str,
        path: &Path,
    ) -> Result<Vec<CertificateDer<'static>>, OtlpError> {
        let pem = read(setting, path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(setting, path, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(file_error(setting, path, "no certificate in the file"));
        }
        Ok(certs)
    }

    /// The rustls client configuration for `files`. `settings` names the
    /// variables the paths came from (for error messages), else the general names.
    pub(super) fn client_config(
        files: &TlsFiles,
        settings: [Option<(&'static str, std::path::PathBuf)>; 3],
    ) -> Result<Arc<ClientConfig>, OtlpError> {
        let [ca_s, cert_s, key_s] = settings.map(|s| s.map(|(name, _)| name));
        let mut roots = RootCertStore::empty();
        match &files.ca {
            Some(path) => {
                let setting = ca_s.unwrap_or(env::CERTIFICATE);
                for cert in certs(setting, path)? {
                    roots.add(cert).map_err(|e| {
                        file_error(setting, path, format!("unusable CA certificate: {e}"))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OtlpError::TlsFile {
                setting: env::CERTIFICATE,
                path: String::new(),
                problem: e.to_string(),
            })?
            .with_root_certificates(roots);
        let mut config = match (&files.client_cert, &files.client_key) {
            (Some(cert_path), Some(key_path)) => {
                let cert_setting = cert_s.unwrap_or(env::CLIENT_CERTIFICATE);
                let key_setting = key_s.unwrap_or(env::CLIENT_KEY);
                let chain = certs(cert_setting, cert_path)?;
                let key_pem = read(key_setting, key_path)?;
                // The key's bytes never reach a message.
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|_| file_error(key_setting, key_path, "not a PEM private key"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    file_error(
                        key_setting,
                        key_path,
                        format!("does not fit the client certificate: {e}"),
                    )
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(OtlpError::ClientCertWithoutKey),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// One kept-alive TLS connection to the endpoint's host.
    pub(super) struct TlsTransport {
        connector: tokio_rustls::TlsConnector,
        host: String,
        port: u16,
        server_name: ServerName<'static>,
        host_header: String,
        sender: Mutex<Option<http1::SendRequest<Full<Bytes>>>>,
    }

    impl TlsTransport {
        pub(super) fn new(
            endpoint: &str,
            config: Arc<ClientConfig>,
        ) -> Result<TlsTransport, OtlpError> {
            let invalid = || OtlpError::InvalidUrl {
                setting: env::ENDPOINT,
                url: crate::redact::redact(endpoint),
            };
            let uri: Uri = endpoint.parse().map_err(|_| invalid())?;
            let host = uri
                .host()
                .ok_or_else(invalid)?
                .trim_matches(['[', ']'])
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let server_name = ServerName::try_from(host.clone()).map_err(|_| invalid())?;
            let host_header = match uri.port_u16() {
                Some(p) => format!("{}:{p}", uri.host().unwrap_or_default()),
                None => uri.host().unwrap_or_default().to_string(),
            };
            Ok(TlsTransport {
                connector: tokio_rustls::TlsConnector::from(config),
                host,
                port,
                server_name,
                host_header,
                sender: Mutex::new(None),
            })
        }

        pub(super) fn host_header(&self) -> &str {
            &self.host_header
        }

        async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>, PushError> {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|_| PushError::Connect)?;
            // Pushes are small and rare: do not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            let stream = self
                .connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|_| PushError::Tls)?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| PushError::Request)?;
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%error, "OTLP TLS connection ended");
                }
            });
            Ok(sender)
        }

        /// Sends a request on the kept-alive connection; a connection the
        /// server closed meanwhile is replaced once.
        pub(super) async fn send(
            &self,
            request: impl Fn() -> Result<Request<Full<Bytes>>, PushError>,
        ) -> Result<Response<Incoming>, PushError> {
            let mut slot = self.sender.lock().await;
            let reused = match slot.take() {
                Some(mut s) if !s.is_closed() => s.ready().await.is_ok().then_some(s),
                _ => None,
            };
            let was_reused = reused.is_some();
            let mut sender = match reused {
                Some(s) => s,
                None => self.connect().await?,
            };
            let response = match sender.send_request(request()?).await {
                Ok(r) => r,
                Err(_) if was_reused => {
                    sender = self.connect().await?;
                    sender
                        .send_request(request()?)
                        .await
                        .map_err(|_| PushError::Request)?
                }
                Err(_) => return Err(PushError::Request),
            };
            *slot = Some(sender);
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn resource() -> ResourceInfo {
        ResourceInfo {
            service_name: SERVICE_NAME.into(),
            service_version: "9.9.9".into(),
            instance_id: Some("node-a".into()),
            node_name: Some("node-a".into()),
            extra: Vec::new(),
        }
    }

    fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
        attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        })
    }

    fn find<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
        req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    fn number(p: &NumberDataPoint) -> f64 {
        match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => f64::NAN,
        }
    }

    #[test]
    fn counters_become_monotonic_cumulative_sums_with_k8s_attributes() {
        let r = Registry::new();
        let c = IntCounterVec::new(
            Opts::new(
                "litellm_sentinel_db_connect_errors_total",
                "DB calls that failed.",
            ),
            &["namespace", "pod", "operation"],
        )
        .unwrap();
        r.register(Box::new(c.clone())).unwrap();
        // Label values as messy as real pods get: unicode, quotes, empty.
        c.with_label_values(&["llm", "litellm-7d9f\u{e9}\"x", "spend_logs_queue"])
            .inc_by(3);
        c.with_label_values(&["", "p", "budget"]).inc();
        let req = to_request(&r.gather(), &resource(), 1_000, 5_000);
        let m = find(&req, "litellm_sentinel_db_connect_errors_total");
        assert_eq!(m.unit, "1");
        assert_eq!(m.description, "DB calls that failed.");
        let Some(metric::Data::Sum(sum)) = &m.data else {
            panic!("not a sum: {m:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(sum.data_points.len(), 2);
        let p = sum
            .data_points
            .iter()
            .find(|p| str_attr(&p.attributes, "operation").as_deref() == Some("spend_logs_queue"))
            .unwrap();
        assert_eq!(number(p), 3.0);
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (1_000, 5_000));
        assert_eq!(
            str_attr(&p.attributes, "k8s.namespace.name").as_deref(),
            Some("llm")
        );
        assert_eq!(
            str_attr(&p.attributes, "k8s.pod.name").as_deref(),
            Some("litellm-7d9f\u{e9}\"x")
        );
        assert!(str_attr(&p.attributes, "namespace").is_none());
        assert!(str_attr(&p.attributes, "pod").is_none());
    }

    #[test]
    fn gauges_keep_name_and_get_units_from_the_suffix() {
        let r = Registry::new();
        let lag = IntGauge::new("litellm_sentinel_tail_lag_bytes", "Lag.").unwrap();
        lag.set(4096);
        r.register(Box::new(lag)).unwrap();
        let req = to_request(&r.gather(), &resource(), 1, 2);
        let m = find(&req, "litellm_sentinel_tail_lag_bytes");
        assert_eq!(m.unit, "By");
        let Some(metric::Data::Gauge(g)) = &m.data else {
            panic!("not a gauge")
        };
        assert_eq!(number(&g.data_points[0]), 4096.0);
        assert!(g.data_points[0].attributes.is_empty());
        assert_eq!(unit_for("litellm_sentinel_in_startup_gap_seconds"), "s");
        assert_eq!(unit_for("litellm_sentinel_x_seconds_total"), "s");
        assert_eq!(unit_for("litellm_sentinel_bytes_read_total"), "1");
        assert_eq!(unit_for("litellm_sentinel_pods_tracked"), "1");
    }

    #[test]
    fn histograms_get_per_bucket_counts_without_inf() {
        let r = Registry::new();
        let h = HistogramVec::new(
            HistogramOpts::new("litellm_sentinel_probe_duration_seconds", "Probe time.")
                .buckets(vec![0.01, 0.1, 1.0]),
            &["target"],
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        for v in [0.005, 0.05, 0.05, 0.5, 7.0] {
            h.with_label_values(&["engine"]).observe(v);
        }
        let req = to_request(&r.gather(), &resource(), 10, 20);
        let m = find(&req, "litellm_sentinel_probe_duration_seconds");
        assert_eq!(m.unit, "s");
        let Some(metric::Data::Histogram(hist)) = &m.data else {
            panic!("not a histogram")
        };
        assert_eq!(
            hist.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &hist.data_points[0];
        assert_eq!(p.explicit_bounds, vec![0.01, 0.1, 1.0]);
        assert_eq!(p.bucket_counts, vec![1, 2, 1, 1]);
        assert_eq!(p.count, 5);
        assert!((p.sum.unwrap() - 7.605).abs() < 1e-9);
        assert_eq!(str_attr(&p.attributes, "target").as_deref(), Some("engine"));
    }

    fn prom_hist(buckets: &[(f64, u64)], count: u64) -> prom::Histogram {
        let mut h = prom::Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(1.0);
        h.set_bucket(
            buckets
                .iter()
                .map(|(ub, c)| {
                    let mut b = prom::Bucket::default();
                    b.set_upper_bound(*ub);
                    b.set_cumulative_count(*c);
                    b
                })
                .collect(),
        );
        h
    }

    #[test]
    fn explicit_inf_bucket_and_malformed_buckets_never_break_the_invariant() {
        // An explicit +Inf bucket (other exporters write one) is the overflow bucket.
        let (b, c, n) = histogram_buckets(&prom_hist(&[(1.0, 2), (5.0, 3), (f64::INFINITY, 4)], 4));
        assert_eq!((b, c, n), (vec![1.0, 5.0], vec![2, 1, 1], 4));
        // Garbage: NaN bound, bounds going down, counts going down, count too small.
        let (b, c, n) = histogram_buckets(&prom_hist(
            &[(1.0, 5), (f64::NAN, 9), (0.5, 6), (2.0, 3), (3.0, 8)],
            2,
        ));
        assert_eq!(b, vec![1.0, 2.0, 3.0]);
        assert_eq!(c.len(), b.len() + 1);
        assert_eq!(c.iter().sum::<u64>(), n);
        assert_eq!(n, 8);
        // No buckets at all.
        assert_eq!(histogram_buckets(&prom_hist(&[], 7)), (vec![], vec![7], 7));
    }

    #[test]
    fn resource_and_scope() {
        let req = to_request(&[], &resource(), 0, 0);
        let rm = &req.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert_eq!(
            str_attr(attrs, "service.name").as_deref(),
            Some("litellm-sentinel")
        );
        assert_eq!(str_attr(attrs, "service.version").as_deref(), Some("9.9.9"));
        assert_eq!(str_attr(attrs, "k8s.node.name").as_deref(), Some("node-a"));
        assert_eq!(rm.scope_metrics.len(), 1);
        assert_eq!(
            rm.scope_metrics[0].scope.as_ref().unwrap().name,
            "litellm-sentinel"
        );
        assert!(rm.scope_metrics[0].metrics.is_empty());
        let no_node = ResourceInfo {
            node_name: None,
            ..resource()
        };
        let req = to_request(&[], &no_node, 0, 0);
        let attrs = &req.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert!(str_attr(attrs, "k8s.node.name").is_none());
        assert_eq!(
            ResourceInfo::from_env().unwrap().service_version,
            env!("CARGO_PKG_VERSION")
        );
    }

    #[test]
    fn resource_from_otel_variables_and_the_downward_api() {
        let attrs_of = |vars: &[(&str, &str)]| {
            let r = ResourceInfo::from_lookup(&lookup(vars)).unwrap();
            let req = to_request(&[], &r, 0, 0);
            req.resource_metrics[0].resource.clone().unwrap().attributes
        };
        // Node agent: the node is the instance.
        let a = attrs_of(&[(env::NODE_NAME, "node-a")]);
        assert_eq!(
            str_attr(&a, "service.instance.id").as_deref(),
            Some("node-a")
        );
        assert_eq!(str_attr(&a, "service.name").as_deref(), Some(SERVICE_NAME));
        // Sidecar: the pod uid wins over the node.
        let a = attrs_of(&[(env::NODE_NAME, "node-a"), (env::POD_UID, "5e0c-uid")]);
        assert_eq!(
            str_attr(&a, "service.instance.id").as_deref(),
            Some("5e0c-uid")
        );
        assert_eq!(str_attr(&a, "k8s.node.name").as_deref(), Some("node-a"));
        // OTEL_RESOURCE_ATTRIBUTES: percent-decoded, later entries win, they
        // override detected attributes; service.name from it unless
        // OTEL_SERVICE_NAME is set.
        let a = attrs_of(&[
            (env::NODE_NAME, "node-a"),
            (
                env::RESOURCE_ATTRIBUTES,
                "deployment.environment=prod, k8s.cluster.name=eu%2D1,service.name=from-attrs,team=a,team=llm,service.instance.id=custom",
            ),
        ]);
        assert_eq!(str_attr(&a, "service.name").as_deref(), Some("from-attrs"));
        assert_eq!(
            str_attr(&a, "deployment.environment").as_deref(),
            Some("prod")
        );
        assert_eq!(str_attr(&a, "k8s.cluster.name").as_deref(), Some("eu-1"));
        assert_eq!(str_attr(&a, "team").as_deref(), Some("llm"));
        assert_eq!(
            str_attr(&a, "service.instance.id").as_deref(),
            Some("custom")
        );
        assert_eq!(a.iter().filter(|kv| kv.key == "service.name").count(), 1);
        let a = attrs_of(&[
            (env::RESOURCE_ATTRIBUTES, "service.name=from-attrs"),
            (env::SERVICE_NAME, "llm-sentinel-eu"),
        ]);
        assert_eq!(
            str_attr(&a, "service.name").as_deref(),
            Some("llm-sentinel-eu")
        );
        // No Downward API at all: the host name identifies the instance.
        let a = attrs_of(&[]);
        assert_eq!(str_attr(&a, "service.instance.id"), hostname());
        assert!(
            ResourceInfo::from_lookup(&lookup(&[(env::RESOURCE_ATTRIBUTES, "a=1,oops")]))
                .is_err_and(|e| e == OtlpError::MalformedResourceAttribute { index: 1 })
        );
    }

    #[test]
    fn compression_and_certificate_settings() {
        let base = [(env::ENDPOINT, "http://c:4318")];
        let cfg = |extra: &[(&str, &str)]| {
            let vars: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
            OtlpConfig::from_lookup(None, DEFAULT_INTERVAL, lookup(&vars))
        };
        assert_eq!(cfg(&[]).unwrap().unwrap().compression, Compression::None);
        assert_eq!(
            cfg(&[(env::COMPRESSION, "gzip")])
                .unwrap()
                .unwrap()
                .compression,
            Compression::Gzip
        );
        assert_eq!(
            cfg(&[
                (env::COMPRESSION, "gzip"),
                (env::METRICS_COMPRESSION, "none")
            ])
            .unwrap()
            .unwrap()
            .compression,
            Compression::None
        );
        assert_eq!(
            cfg(&[(env::COMPRESSION, "zstd")]).unwrap_err(),
            OtlpError::UnsupportedCompression {
                setting: env::COMPRESSION,
                value: "zstd".into()
            }
        );
        assert_eq!(
            cfg(&[(env::CLIENT_CERTIFICATE, "/c.pem")]).unwrap_err(),
            OtlpError::ClientCertWithoutKey
        );
        // For http:// the files are not needed, so not read.
        let c = cfg(&[(env::CERTIFICATE, "/nonexistent/ca.pem")])
            .unwrap()
            .unwrap();
        assert_eq!(
            c.tls.ca.as_deref(),
            Some(std::path::Path::new("/nonexistent/ca.pem"))
        );
    }

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

    #[test]
    fn the_real_registry_converts_with_the_same_names() {
        let tracker = Arc::new(crate::metrics::TrackerMutex::new(
            crate::timeline::Tracker::new(Default::default()),
        ));
        let metrics = Metrics::new(tracker).unwrap();
        metrics.agent.otlp_export_failures.inc();
        let families = metrics.gather();
        let req = to_request(&families, &resource(), 1, 2);
        let names: Vec<&str> = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        for f in &families {
            if !f.get_metric().is_empty() {
                assert!(names.contains(&f.name()), "{} missing", f.name());
            }
        }
        let m = find(&req, "litellm_sentinel_otlp_export_failures_total");
        let Some(metric::Data::Sum(s)) = &m.data else {
            panic!("not a sum")
        };
        assert_eq!(number(&s.data_points[0]), 1.0);
        // Round trip through the wire format.
        let decoded = ExportMetricsServiceRequest::decode(&req.encode_to_vec()[..]).unwrap();
        assert_eq!(decoded, req);
    }

    #[test]
    fn no_endpoint_means_off() {
        assert_eq!(
            OtlpConfig::from_lookup(None, DEFAULT_INTERVAL, lookup(&[])).unwrap(),
            None
        );
        // Empty values (`value: ""` in a manifest) count as unset.
        assert_eq!(
            OtlpConfig::from_lookup(
                Some(" ".into()),
                DEFAULT_INTERVAL,
                lookup(&[(env::ENDPOINT, ""), (env::HEADERS, "a=b")])
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn base_endpoint_gets_the_metrics_path_and_defaults() {
        let c = OtlpConfig::from_lookup(
            None,
            DEFAULT_INTERVAL,
            lookup(&[(env::ENDPOINT, "http://otel-collector:4318/")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://otel-collector:4318/v1/metrics");
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert!(c.headers.is_empty());
        for (base, full) in [
            ("http://c:4318", "http://c:4318/v1/metrics"),
            ("http://c:4318/v1/metrics", "http://c:4318/v1/metrics"),
            ("http://gw/otlp", "http://gw/otlp/v1/metrics"),
            // Joined onto the path, never after a query string.
            (
                "http://gw/otlp?tenant=a",
                "http://gw/otlp/v1/metrics?tenant=a",
            ),
            (
                "https://gw/otlp/?tenant=a&x=1",
                "https://gw/otlp/v1/metrics?tenant=a&x=1",
            ),
            ("http://gw?tenant=a", "http://gw/v1/metrics?tenant=a"),
            (
                "https://gw:4318/v1/metrics?t=1",
                "https://gw:4318/v1/metrics?t=1",
            ),
        ] {
            let c = OtlpConfig::from_lookup(Some(base.into()), DEFAULT_INTERVAL, lookup(&[]))
                .unwrap()
                .unwrap();
            assert_eq!(c.endpoint, full, "{base}");
        }
    }

    #[test]
    fn metrics_endpoint_wins_and_is_used_as_is() {
        let c = OtlpConfig::from_lookup(
            Some("http://flag:4318".into()),
            DEFAULT_INTERVAL,
            lookup(&[
                (env::ENDPOINT, "http://base:4318"),
                (
                    env::METRICS_ENDPOINT,
                    "http://metrics-only:9999/custom/path",
                ),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://metrics-only:9999/custom/path");
        // Without it, the flag beats the generic env var.
        let c = OtlpConfig::from_lookup(
            Some("http://flag:4318".into()),
            DEFAULT_INTERVAL,
            lookup(&[(env::ENDPOINT, "http://base:4318")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://flag:4318/v1/metrics");
    }

    #[test]
    fn headers_are_percent_decoded_and_never_shown() {
        let c = OtlpConfig::from_lookup(
            None,
            Duration::from_secs(15),
            lookup(&[
                (env::ENDPOINT, "http://c:4318"),
                (
                    env::HEADERS,
                    " api-key = s3cr%3Dt%20key ,, Authorization=Basic%20dXNlcjpwYXNz,x-odd=100%,",
                ),
                (env::INTERVAL, "250"),
                (env::TIMEOUT, "1500"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            c.headers,
            vec![
                ("api-key".to_string(), "s3cr=t key".to_string()),
                (
                    "Authorization".to_string(),
                    "Basic dXNlcjpwYXNz".to_string()
                ),
                ("x-odd".to_string(), "100%".to_string()),
            ]
        );
        assert_eq!(c.interval, Duration::from_millis(250));
        assert_eq!(c.timeout, Duration::from_millis(1500));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr") && !shown.contains("dXNlcjpwYXNz"),
            "{shown}"
        );
        assert!(shown.contains("api-key=***"), "{shown}");
        // The config's interval is the default when the env var is unset.
        let c = OtlpConfig::from_lookup(
            None,
            Duration::from_secs(15),
            lookup(&[(env::ENDPOINT, "http://c:4318")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.interval, Duration::from_secs(15));
    }

    #[test]
    fn bad_headers_are_errors_without_the_secret() {
        let err = |h: &str| {
            OtlpConfig::from_lookup(
                None,
                DEFAULT_INTERVAL,
                lookup(&[(env::ENDPOINT, "http://c:4318"), (env::HEADERS, h)]),
            )
            .unwrap_err()
        };
        let e = err("api-key=ok,Bearer hunter2");
        assert_eq!(e, OtlpError::MalformedHeader { index: 1 });
        assert!(!e.to_string().contains("hunter2"));
        let e = err("Authorization: Bearer hunter2=x");
        assert_eq!(e, OtlpError::InvalidHeaderName { index: 0 });
        assert!(!e.to_string().contains("hunter2"));
        // A decoded newline (header injection) or invalid UTF-8.
        for bad in ["api-key=hunter2%0D%0AX-Evil: 1", "api-key=hunter2%FF"] {
            let e = err(bad);
            assert!(matches!(e, OtlpError::InvalidHeaderValue { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains("api-key") && !msg.contains("hunter2"), "{msg}");
        }
    }

    #[test]
    fn https_is_accepted_and_its_files_are_checked_when_read() {
        let c = OtlpConfig::from_lookup(
            Some("https://otlp.example.com".into()),
            DEFAULT_INTERVAL,
            lookup(&[]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "https://otlp.example.com/v1/metrics");
        // A missing CA file fails at start-up, naming the variable, not at every push.
        let e = OtlpConfig::from_lookup(
            None,
            DEFAULT_INTERVAL,
            lookup(&[
                (env::METRICS_ENDPOINT, "HTTPS://c/v1/metrics"),
                (env::CERTIFICATE, "/nonexistent/ca.pem"),
            ]),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                OtlpError::TlsFile {
                    setting: env::CERTIFICATE,
                    ..
                }
            ),
            "{e:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("key.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = OtlpConfig::from_lookup(
            None,
            DEFAULT_INTERVAL,
            lookup(&[
                (env::ENDPOINT, "https://c"),
                (env::CLIENT_CERTIFICATE, garbage.to_str().unwrap()),
                (env::CLIENT_KEY, garbage.to_str().unwrap()),
            ]),
        )
        .unwrap_err();
        assert!(matches!(e, OtlpError::TlsFile { .. }), "{e:?}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    }

    #[test]
    fn garbage_endpoints_are_rejected_clearly() {
        for bad in [
            "otel-collector:4318",
            "http://",
            "ftp://c/",
            "\x1b[31mhttp://c\x1b[0m",
            "http://c d/",
        ] {
            let e =
                OtlpConfig::from_lookup(None, DEFAULT_INTERVAL, lookup(&[(env::ENDPOINT, bad)]))
                    .unwrap_err();
            assert!(
                matches!(
                    e,
                    OtlpError::InvalidUrl {
                        setting: env::ENDPOINT,
                        ..
                    }
                ),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn config_keys_validate_like_the_pusher() {
        use crate::config::Config;
        let c = Config::from_toml(
            "otlp_endpoint = \"http://otel-collector:4318\"\notlp_interval = \"15s\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let o = OtlpConfig::from_lookup(c.otlp_endpoint.clone(), c.otlp_interval.0, lookup(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(o.endpoint, "http://otel-collector:4318/v1/metrics");
        assert_eq!(o.interval, Duration::from_secs(15));
        let https = Config {
            otlp_endpoint: Some("https://otlp.example.com".into()),
            ..Config::default()
        };
        https.validate().unwrap();
        let bad = Config {
            otlp_endpoint: Some("ftp://otel-collector:4318".into()),
            ..Config::default()
        };
        let msg = bad.validate().unwrap_err().to_string();
        assert!(
            msg.starts_with("`otlp_endpoint`") && msg.contains("http://"),
            "{msg}"
        );
        let zero = Config {
            otlp_interval: crate::config::HumanDuration(Duration::ZERO),
            ..Config::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("otlp_interval"));
    }

    #[test]
    fn bad_numbers_and_protocols_are_rejected() {
        let with = |k: &str, v: &str| {
            OtlpConfig::from_lookup(
                None,
                DEFAULT_INTERVAL,
                lookup(&[(env::ENDPOINT, "http://c:4318"), (k, v)]),
            )
        };
        for v in ["0", "-5", "1.5s", "60s", "abc"] {
            assert!(
                matches!(with(env::INTERVAL, v), Err(OtlpError::InvalidMillis { .. })),
                "{v}"
            );
            assert!(
                matches!(with(env::TIMEOUT, v), Err(OtlpError::InvalidMillis { .. })),
                "{v}"
            );
        }
        assert!(matches!(
            with(env::PROTOCOL, "grpc"),
            Err(OtlpError::UnsupportedProtocol { .. })
        ));
        assert!(with(env::PROTOCOL, "http/protobuf").is_ok());
        // The signal-specific protocol wins over the generic one.
        assert!(OtlpConfig::from_lookup(
            None,
            DEFAULT_INTERVAL,
            lookup(&[
                (env::ENDPOINT, "http://c:4318"),
                (env::PROTOCOL, "grpc"),
                (env::METRICS_PROTOCOL, "http/protobuf"),
            ]),
        )
        .is_ok());
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode(b"a%20b"), b"a b");
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"%2"), b"%2");
        assert_eq!(percent_decode(b"%zz%41"), b"%zzA");
        assert_eq!(percent_decode(b"%ff"), vec![0xff]);
    }
}
