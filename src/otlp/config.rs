//! The OTLP settings: the agent's `otlp_endpoint` / `otlp_interval` plus the
//! standard OpenTelemetry environment variables, checked (files read and
//! parsed) when they are read, not at the first push. Self-contained: the
//! agent's config passes plain values in.

use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::Uri;

use super::resource::ResourceInfo;
use super::{DEFAULT_TIMEOUT, METRICS_PATH};
use crate::redact::redact as redact_url;

/// Environment variable names (the OpenTelemetry SDK spellings).
pub mod env {
    /// Base URL; `/v1/metrics` is appended.
    pub(crate) const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// Full metrics URL, used as is; wins over every base URL.
    pub(crate) const METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
    /// `k=v,k2=v2`, values percent-decoded. Values are secrets.
    pub(crate) const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    /// Push interval in milliseconds.
    pub(crate) const INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
    /// Per-push deadline in milliseconds.
    pub(crate) const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
    /// Must be `http/protobuf` when set (the only protocol the agent speaks).
    pub(crate) const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// Signal-specific form of [`PROTOCOL`]; wins over it.
    pub(crate) const METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
    /// `gzip` or `none`.
    pub(crate) const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
    /// Signal-specific form of [`COMPRESSION`]; wins over it.
    pub(crate) const METRICS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
    /// PEM file of the CA(s) that verify the server (https).
    pub(crate) const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
    /// Signal-specific form of [`CERTIFICATE`]; wins over it.
    pub(crate) const METRICS_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE";
    /// PEM client certificate (chain) for mTLS.
    pub(crate) const CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
    /// Signal-specific form of [`CLIENT_CERTIFICATE`]; wins over it.
    pub(crate) const METRICS_CLIENT_CERTIFICATE: &str =
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE";
    /// PEM private key of the client certificate.
    pub(crate) const CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
    /// Signal-specific form of [`CLIENT_KEY`]; wins over it.
    pub(crate) const METRICS_CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY";
    /// `k=v,k2=v2` resource attributes, values percent-decoded.
    pub(crate) const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// `service.name`; wins over a `service.name` in [`RESOURCE_ATTRIBUTES`].
    pub(crate) const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
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

/// Where and how to push. Built from the agent's settings and the standard
/// OTel environment variables by [`OtlpConfig::from_lookup`] /
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
pub fn env_var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

impl OtlpConfig {
    /// The OTLP settings from the `OTEL_*` variables read through `lookup`
    /// ([`env_var`] for the process environment; tests pass their own)
    /// plus the agent's `otlp_endpoint` and `otlp_interval`
    /// (`OTEL_METRIC_EXPORT_INTERVAL` overrides it); `Ok(None)` when no
    /// endpoint is configured anywhere (OTLP push off).
    ///
    /// Endpoint precedence, as in the OTel SDKs: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
    /// (full URL), then the flag's endpoint, then `OTEL_EXPORTER_OTLP_ENDPOINT` (both base URLs).
    pub(crate) fn from_lookup(
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
            super::tls::client_config(&tls, [ca, client_cert, client_key])?;
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

pub(super) fn is_https(url: &str) -> bool {
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
        let value =
            String::from_utf8(percent_decoded(value.trim())).map_err(|_| invalid_value())?;
        HeaderValue::from_str(&value).map_err(|_| invalid_value())?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as is.
pub(super) fn percent_decoded(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(text).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::lookup;
    use super::super::DEFAULT_INTERVAL;
    use super::*;

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
        assert_eq!(percent_decoded("a%20b"), b"a b".to_vec());
        assert_eq!(percent_decoded("%"), b"%".to_vec());
        assert_eq!(percent_decoded("%2"), b"%2".to_vec());
        assert_eq!(percent_decoded("%zz%41"), b"%zzA".to_vec());
        assert_eq!(percent_decoded("%ff"), vec![0xff]);
    }
}
