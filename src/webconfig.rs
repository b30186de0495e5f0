//! `--web.config.file`: HTTPS and basic auth for the HTTP server, configured
//! the way Prometheus exporters are (exporter-toolkit's web config YAML), so
//! that the same file, the same bcrypt hashes and the same Prometheus scrape
//! config work here.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths: relative to this file
//!   key_file: server.key
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! ```
//!
//! Like exporter-toolkit, the file and the files it names are re-read when
//! they change (checked at most once a second, when a connection or request
//! arrives), so a rotated certificate or a new user needs no restart. Turning
//! TLS on or off does need one. A file that no longer validates is reported
//! once and the previous configuration stays in force.
//!
//! Basic auth exempts the kubelet's probe paths ([`AUTH_EXEMPT_PATHS`]):
//! liveness, readiness and the sidecar's `/gate` are called by the kubelet,
//! which cannot easily send credentials, and they disclose nothing beyond
//! "up / ready". Everything else (`/metrics`, `/api/v1/pods`, unknown paths)
//! needs credentials.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Paths served without credentials even when `basic_auth_users` is set: the
/// kubelet's liveness, readiness and gate probes (they cannot easily send
/// credentials, and say no more than "up" or "ready").
pub const AUTH_EXEMPT_PATHS: &[&str] = &["/healthz", "/readyz", "/gate"];

/// The realm in `WWW-Authenticate` (browsers show it in the login prompt).
pub const REALM: &str = "litellm-sentinel";

/// A TLS handshake (or the first byte of it) must arrive within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the web config and its files are checked for changes.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Waiting longer than this for the (single) bcrypt slot answers 429: a flood
/// of wrong passwords must not queue requests without bound.
const BCRYPT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Verified credentials kept in memory (the cache is cleared when full).
const AUTH_CACHE_CAPACITY: usize = 1024;

/// At most one debug line about failed TLS handshakes per this interval.
const HANDSHAKE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Response headers the web config may set, with their allowed values (empty: any value).
/// The same list as exporter-toolkit, so that configs stay portable.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Why a web config was rejected. Each message names the file, the key and what to do.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read the web config file {path} (check --web.config.file / web_config_file)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("web config file {path}: `{key}`: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("web config file {path}: `{key}`: cannot read {file} (the path is relative to the web config file's directory)")]
    ReadReferenced {
        path: PathBuf,
        key: &'static str,
        file: PathBuf,
        source: std::io::Error,
    },
}

/// PEM text for TLS, from a file (`*_file`) or inline in the web config.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(p) => write!(f, "File({})", p.display()),
            // Inline text can be a private key: never print it.
            PemSource::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// Whether clients must present a certificate signed by `client_ca_file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (the default): no client certificate is asked for.
    None,
    /// `VerifyClientCertIfGiven`: a certificate is optional, but verified when sent.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: mutual TLS.
    RequireAndVerify,
}

/// A TLS protocol version (rustls speaks 1.2 and 1.3 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `tls_server_config`, validated, with file paths resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    pub cert: PemSource,
    pub key: PemSource,
    pub client_auth: ClientAuth,
    pub client_ca: Option<PemSource>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites by their IANA (= Go) names; empty: rustls' defaults. TLS 1.3 suites are not configurable (as in Go).
    pub cipher_suites: Vec<String>,
    /// Go curve names (`X25519`, `CurveP256`, `CurveP384`); empty: rustls' defaults.
    pub curve_preferences: Vec<String>,
    /// Pick the cipher suite by the server's order rather than the client's.
    pub prefer_server_cipher_suites: bool,
}

/// A parsed and validated web config: what the server needs to protect itself.
#[derive(Clone, PartialEq)]
pub struct WebConfig {
    /// The file it came from (relative paths inside it are resolved against its directory).
    pub source: PathBuf,
    /// `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// User name → bcrypt hash; empty: no authentication.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Extra response headers (names and values checked against exporter-toolkit's list).
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // User names only: hashes stay out of logs.
        f.debug_struct("WebConfig")
            .field("source", &self.source)
            .field("tls", &self.tls)
            .field("basic_auth_users", &self.basic_auth_users.keys())
            .field("headers", &self.headers)
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    client_ca: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    client_allowed_sans: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

impl WebConfig {
    /// Reads and validates a web config, including its certificate and key
    /// (readable, valid PEM, key matches certificate) and its password hashes.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let bytes = std::fs::read(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = WebConfig::from_yaml(&bytes, path)?;
        cfg.tls_server_config()?;
        Ok(cfg)
    }

    /// Parses web config YAML (no files are read); relative paths are
    /// resolved against the directory of `source`, as exporter-toolkit does.
    pub fn from_yaml(bytes: &[u8], source: &Path) -> Result<WebConfig, WebConfigError> {
        let path = source.to_path_buf();
        // An empty file (or one with only comments) is a valid, empty config.
        let raw: RawWebConfig = if is_blank_yaml(bytes) {
            RawWebConfig::default()
        } else {
            serde_saphyr::from_slice(bytes).map_err(|e| WebConfigError::Syntax {
                path: path.clone(),
                message: yaml_error_line(&e.to_string()),
            })?
        };
        let invalid = |key: &str, reason: String| WebConfigError::Invalid {
            path: path.clone(),
            key: key.to_string(),
            reason,
        };
        if raw.rate_limit.is_some() {
            return Err(invalid(
                "rate_limit",
                "is not supported by litellm-sentinel; remove it (the server already limits connections and request time)".into(),
            ));
        }
        let dir = source.parent().unwrap_or(Path::new(""));
        let tls = match raw.tls_server_config {
            Some(t) => parse_tls(t, dir, &invalid)?,
            None => None,
        };
        let mut basic_auth_users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(invalid(
                    &key,
                    "a user name cannot contain `:` (basic auth separates user and password with it)".into(),
                ));
            }
            check_bcrypt_hash(&hash).map_err(|reason| invalid(&key, reason))?;
            basic_auth_users.insert(user, hash);
        }
        let mut headers = BTreeMap::new();
        if let Some(http) = raw.http_server_config {
            if http.http2 == Some(true) {
                return Err(invalid(
                    "http_server_config.http2",
                    "this server speaks HTTP/1.1 only; remove `http2` or set it to false".into(),
                ));
            }
            for (name, value) in http.headers.unwrap_or_default() {
                check_header(&name, &value).map_err(|reason| {
                    invalid(&format!("http_server_config.headers.{name}"), reason)
                })?;
                headers.insert(name, value);
            }
        }
        Ok(WebConfig {
            source: path,
            tls,
            basic_auth_users,
            headers,
        })
    }

    /// Builds the rustls server configuration (`None` without `tls_server_config`);
    /// reads the certificate, key and client CA files.
    pub fn tls_server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, WebConfigError> {
        match &self.tls {
            Some(t) => build_tls(t, &self.source).map(Some),
            None => Ok(None),
        }
    }

    /// The files whose changes trigger a reload: this file and the PEM files it names.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.source.clone()];
        if let Some(t) = &self.tls {
            for src in [Some(&t.cert), Some(&t.key), t.client_ca.as_ref()]
                .into_iter()
                .flatten()
            {
                if let PemSource::File(p) = src {
                    files.push(p.clone());
                }
            }
        }
        files
    }
}

/// True when the YAML has nothing but whitespace, comments or a document marker.
fn is_blank_yaml(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'\n').all(|line| {
        let t = line.trim_ascii();
        t.is_empty() || t.starts_with(b"#") || t == b"---"
    })
}

/// The first line of a YAML error ("line L column C: what"): the rest is a
/// source snippet, which could echo an inline key into the logs.
fn yaml_error_line(s: &str) -> String {
    let first = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(s);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // The parser's hint names its own API, not something a user can set.
    match first.find(", set DuplicateKeyPolicy") {
        Some(i) => format!("{} (each key may appear once)", &first[..i]),
        None => first.to_string(),
    }
}

/// A config path relative to the config file's directory; `""` means unset (as in Go).
fn resolve(dir: &Path, value: Option<String>) -> Option<PathBuf> {
    let v = value.filter(|v| !v.is_empty())?;
    let p = PathBuf::from(v);
    Some(if p.is_absolute() { p } else { dir.join(p) })
}

fn parse_tls(
    t: RawTls,
    dir: &Path,
    invalid: &dyn Fn(&str, String) -> WebConfigError,
) -> Result<Option<TlsSettings>, WebConfigError> {
    let k = |s: &str| format!("tls_server_config.{s}");
    if t.client_allowed_sans.is_some() {
        return Err(invalid(
            &k("client_allowed_sans"),
            "is not supported by litellm-sentinel; use a dedicated client CA (`client_ca_file`) for the allowed clients instead".into(),
        ));
    }
    let cert_file = resolve(dir, t.cert_file);
    let key_file = resolve(dir, t.key_file);
    let cert_inline = t.cert.filter(|s| !s.is_empty());
    let key_inline = t.key.filter(|s| !s.is_empty());
    let ca_file = resolve(dir, t.client_ca_file);
    let ca_inline = t.client_ca.filter(|s| !s.is_empty());
    let auth_type = t.client_auth_type.filter(|s| !s.is_empty());
    let enabled = cert_file.is_some()
        || key_file.is_some()
        || cert_inline.is_some()
        || key_inline.is_some()
        || ca_file.is_some()
        || ca_inline.is_some()
        || auth_type.is_some();
    if !enabled {
        // exporter-toolkit: a tls_server_config without any of these means plain HTTP.
        return Ok(None);
    }
    let pick = |file: Option<PathBuf>, inline: Option<String>, name: &str| match (file, inline) {
        (Some(_), Some(_)) => Err(invalid(
            &k(&format!("{name}_file")),
            format!("set either `{name}_file` or `{name}`, not both"),
        )),
        (Some(f), None) => Ok(Some(PemSource::File(f))),
        (None, Some(s)) => Ok(Some(PemSource::Inline(s))),
        (None, None) => Ok(None),
    };
    let cert = pick(cert_file, cert_inline, "cert")?.ok_or_else(|| {
        invalid(
            &k("cert_file"),
            "is missing: TLS needs a certificate (PEM) next to `key_file`".into(),
        )
    })?;
    let key = pick(key_file, key_inline, "key")?.ok_or_else(|| {
        invalid(
            &k("key_file"),
            "is missing: TLS needs the certificate's private key (PEM)".into(),
        )
    })?;
    let client_ca = pick(ca_file, ca_inline, "client_ca")?;
    let client_auth = match auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerify,
        Some(other @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => {
            return Err(invalid(
                &k("client_auth_type"),
                format!("`{other}` accepts client certificates without verifying them and is not supported; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with `client_ca_file`"),
            ))
        }
        Some(other) => {
            return Err(invalid(
                &k("client_auth_type"),
                format!("`{other}` is not a client auth type; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            ))
        }
    };
    match (client_auth, &client_ca) {
        (ClientAuth::None, Some(_)) => {
            return Err(invalid(
                &k("client_auth_type"),
                "a client CA is configured but no client auth type: set RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove the client CA".into(),
            ))
        }
        (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify, None) => {
            return Err(invalid(
                &k("client_ca_file"),
                "is missing: verifying client certificates needs the CA that signs them".into(),
            ))
        }
        _ => {}
    }
    let version = |key: &str, v: Option<String>, default: TlsVersion| match v.as_deref() {
        None | Some("") => Ok(default),
        Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        Some(old @ ("TLS10" | "TLS11")) => Err(invalid(
            &k(key),
            format!("`{old}` is not supported: this server speaks TLS 1.2 and 1.3 only; use TLS12"),
        )),
        Some(other) => Err(invalid(
            &k(key),
            format!("`{other}` is not a TLS version; use TLS12 or TLS13"),
        )),
    };
    let min_version = version("min_version", t.min_version, TlsVersion::Tls12)?;
    let max_version = version("max_version", t.max_version, TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err(invalid(
            &k("min_version"),
            "is above `max_version`: no TLS version would be left".into(),
        ));
    }
    let settings = TlsSettings {
        cert,
        key,
        client_auth,
        client_ca,
        min_version,
        max_version,
        cipher_suites: t.cipher_suites.unwrap_or_default(),
        curve_preferences: t.curve_preferences.unwrap_or_default(),
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
    };
    // Names are checked now (no file I/O) so that a typo is reported with its key.
    crypto_provider(&settings).map_err(|(key, reason)| invalid(&k(key), reason))?;
    Ok(Some(settings))
}

/// Checks that `hash` is a bcrypt hash (`$2a$`, `$2b$` or `$2y$`, cost 4–31).
fn check_bcrypt_hash(hash: &str) -> Result<(), String> {
    let hint =
        "store a bcrypt hash, e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`, never the password";
    let parts: bcrypt::HashParts = hash
        .parse()
        .map_err(|e| format!("is not a bcrypt hash ({e}); {hint}"))?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is out of range (4 to 31); {hint}"
        ));
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    let Some((canonical, allowed)) = ALLOWED_HEADERS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    else {
        let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "this header cannot be configured; allowed: {}",
            names.join(", ")
        ));
    };
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Err(format!(
            "`{value}` is not allowed for {canonical}; use one of: {}",
            allowed.join(", ")
        ));
    }
    HeaderValue::from_str(value)
        .map_err(|_| format!("`{value}` is not a valid header value (control characters?)"))?;
    Ok(())
}

/// The ring provider, narrowed to the configured cipher suites and curves.
/// Errors are `(key, reason)`.
fn crypto_provider(t: &TlsSettings) -> Result<CryptoProvider, (&'static str, String)> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        let name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        let tls12_names: Vec<String> = provider
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_)))
            .map(name)
            .collect();
        let all: Vec<String> = provider.cipher_suites.iter().map(name).collect();
        for wanted in &t.cipher_suites {
            if !all.iter().any(|n| n == wanted) {
                return Err((
                    "cipher_suites",
                    format!(
                        "`{wanted}` is not available (rustls offers only AEAD suites); TLS 1.2 suites available: {}",
                        tls12_names.join(", ")
                    ),
                ));
            }
        }
        // Configured TLS 1.2 suites in the configured order, then every TLS 1.3 suite.
        let mut ordered = Vec::new();
        for wanted in &t.cipher_suites {
            ordered.extend(provider.cipher_suites.iter().copied().filter(|s| {
                matches!(s, rustls::SupportedCipherSuite::Tls12(_)) && &name(s) == wanted
            }));
        }
        if ordered.is_empty() && t.min_version == TlsVersion::Tls12 {
            return Err((
                "cipher_suites",
                format!(
                    "names no TLS 1.2 suite, so TLS 1.2 clients could not connect; add one of {} or set `min_version: TLS13`",
                    tls12_names.join(", ")
                ),
            ));
        }
        ordered.extend(
            provider
                .cipher_suites
                .iter()
                .copied()
                .filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_))),
        );
        provider.cipher_suites = ordered;
    }
    if !t.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for wanted in &t.curve_preferences {
            let group = match wanted.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                other => {
                    return Err((
                        "curve_preferences",
                        format!("`{other}` is not available; use X25519, CurveP256 or CurveP384"),
                    ))
                }
            };
            groups.extend(
                provider
                    .kx_groups
                    .iter()
                    .copied()
                    .filter(|g| g.name() == group),
            );
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

fn read_pem(src: &PemSource, source: &Path, key: &'static str) -> Result<Vec<u8>, WebConfigError> {
    match src {
        PemSource::Inline(s) => Ok(s.as_bytes().to_vec()),
        PemSource::File(p) => std::fs::read(p).map_err(|e| WebConfigError::ReadReferenced {
            path: source.to_path_buf(),
            key,
            file: p.clone(),
            source: e,
        }),
    }
}

fn build_tls(t: &TlsSettings, source: &Path) -> Result<Arc<rustls::ServerConfig>, WebConfigError> {
    let invalid = |key: &str, reason: String| WebConfigError::Invalid {
        path: source.to_path_buf(),
        key: format!("tls_server_config.{key}"),
        reason,
    };
    let (cert_key, key_key, ca_key) = match (&t.cert, &t.key) {
        (PemSource::File(_), _) | (_, PemSource::File(_)) => {
            ("cert_file", "key_file", "client_ca_file")
        }
        _ => ("cert", "key", "client_ca"),
    };
    let cert_pem = read_pem(&t.cert, source, "tls_server_config.cert_file")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert_key, format!("is not valid PEM ({e}); it must hold the server certificate, then any intermediates")))?;
    if chain.is_empty() {
        return Err(invalid(
            cert_key,
            "holds no `BEGIN CERTIFICATE` block; point it at the PEM certificate (not the key)"
                .into(),
        ));
    }
    let key_pem = read_pem(&t.key, source, "tls_server_config.key_file")?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            key_key,
            format!("holds no usable private key ({e}); it must be a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`"),
        )
    })?;
    let provider = Arc::new(crypto_provider(t).map_err(|(k, r)| invalid(k, r))?);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            invalid(
                "min_version",
                format!("cannot be used with these cipher suites and curves: {e}"),
            )
        })?;
    let builder = match (&t.client_ca, t.client_auth) {
        (Some(ca), ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify) => {
            let ca_pem = read_pem(ca, source, "tls_server_config.client_ca_file")?;
            let mut roots = rustls::RootCertStore::empty();
            for der in CertificateDer::pem_slice_iter(&ca_pem) {
                let der = der.map_err(|e| invalid(ca_key, format!("is not valid PEM ({e})")))?;
                roots.add(der).map_err(|e| {
                    invalid(
                        ca_key,
                        format!("holds a certificate that cannot be a trust anchor: {e}"),
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(invalid(
                    ca_key,
                    "holds no `BEGIN CERTIFICATE` block; point it at the PEM of the CA that signs client certificates".into(),
                ));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            );
            let verifier = if t.client_auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| invalid(ca_key, format!("cannot verify client certificates: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, private_key).map_err(|e| {
        invalid(
            key_key,
            format!(
                "does not fit `{cert_key}` ({e}); the key must be the certificate's private key"
            ),
        )
    })?;
    config.ignore_client_order = t.prefer_server_cipher_suites;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What identifies a file version: modification time, size and inode (a
/// Kubernetes Secret update swaps a symlink, which changes all three).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    seen: Option<(SystemTime, u64, u64)>,
}

fn stamp(files: &[PathBuf]) -> Vec<FileStamp> {
    files
        .iter()
        .map(|p| FileStamp {
            path: p.clone(),
            seen: std::fs::metadata(p).ok().map(|m| {
                #[cfg(unix)]
                let ino = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let ino = 0;
                (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), ino)
            }),
        })
        .collect()
}

/// One loaded generation of the web config.
struct Active {
    config: WebConfig,
    acceptor: Option<TlsAcceptor>,
    headers: HeaderMap,
    stamps: Vec<FileStamp>,
    /// Verified against for unknown users, so that a wrong user name takes as
    /// long as a wrong password (no user enumeration by timing).
    decoy_hash: OnceLock<String>,
}

impl Active {
    fn load(path: &Path) -> Result<Active, WebConfigError> {
        // Each file is stamped before it is read: a change while loading is
        // then seen at the next check.
        let mut stamps = stamp(&[path.to_path_buf()]);
        let bytes = std::fs::read(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = WebConfig::from_yaml(&bytes, path)?;
        stamps.extend(stamp(config.watched_files().get(1..).unwrap_or_default()));
        let acceptor = config.tls_server_config()?.map(TlsAcceptor::from);
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            // Both were checked by `check_header`; skip rather than panic if not.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        Ok(Active {
            config,
            acceptor,
            headers,
            stamps,
            decoy_hash: OnceLock::new(),
        })
    }

    /// The decoy hash, with the highest cost among the users' hashes.
    fn decoy(&self) -> &str {
        self.decoy_hash.get_or_init(|| {
            let cost = self
                .config
                .basic_auth_users
                .values()
                .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            bcrypt::hash(b"litellm-sentinel decoy password", cost).unwrap_or_default()
        })
    }
}

/// Outcome of checking a request's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// No users configured, or the credentials match.
    Allowed,
    /// Missing, malformed or wrong credentials.
    Denied,
    /// Too many password checks are queued; try again later.
    Busy,
}

#[derive(Default)]
struct HandshakeLog {
    last: Option<Instant>,
    suppressed: u64,
}

/// The web config in force for a running server: TLS acceptor, basic-auth
/// users with a verification cache, response headers; reloaded when its
/// files change.
pub struct WebRuntime {
    path: PathBuf,
    serves_tls: bool,
    active: RwLock<Arc<Active>>,
    last_check: Mutex<Instant>,
    recheck_interval: Duration,
    /// Stamps of a rejected version, so that it is reported once, not every second.
    rejected: Mutex<Option<Vec<FileStamp>>>,
    /// HMACs of verified (user, hash, password) triples: bcrypt is slow on purpose.
    auth_cache: Mutex<HashSet<[u8; 32]>>,
    cache_key: ring::hmac::Key,
    /// One bcrypt at a time (it is CPU-heavy by design; the agent has little CPU).
    bcrypt_slot: tokio::sync::Semaphore,
    handshake_failures: AtomicU64,
    handshake_log: Mutex<HandshakeLog>,
}

impl fmt::Debug for WebRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRuntime")
            .field("path", &self.path)
            .field("serves_tls", &self.serves_tls)
            .finish_non_exhaustive()
    }
}

impl WebRuntime {
    /// Loads the web config for serving. Whether TLS is served is fixed from
    /// here on; certificates, users and headers follow the files.
    pub fn start(path: &Path) -> Result<Arc<WebRuntime>, WebConfigError> {
        WebRuntime::with_recheck_interval(path, RECHECK_INTERVAL)
    }

    /// As [`WebRuntime::start`], with another change-check interval (tests use zero).
    pub fn with_recheck_interval(
        path: &Path,
        recheck_interval: Duration,
    ) -> Result<Arc<WebRuntime>, WebConfigError> {
        let active = Active::load(path)?;
        let rng = ring::rand::SystemRandom::new();
        let cache_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).map_err(|_| {
            WebConfigError::Invalid {
                path: path.to_path_buf(),
                key: "basic_auth_users".into(),
                reason: "the system random generator failed; cannot key the credential cache"
                    .into(),
            }
        })?;
        tracing::info!(
            file = %path.display(),
            tls = active.acceptor.is_some(),
            basic_auth_users = active.config.basic_auth_users.len(),
            "web config loaded"
        );
        Ok(Arc::new(WebRuntime {
            path: path.to_path_buf(),
            serves_tls: active.acceptor.is_some(),
            active: RwLock::new(Arc::new(active)),
            last_check: Mutex::new(Instant::now()),
            recheck_interval,
            rejected: Mutex::new(None),
            auth_cache: Mutex::new(HashSet::new()),
            cache_key,
            bcrypt_slot: tokio::sync::Semaphore::new(1),
            handshake_failures: AtomicU64::new(0),
            handshake_log: Mutex::new(HandshakeLog::default()),
        }))
    }

    /// Whether connections are TLS (decided at start).
    pub fn serves_tls(&self) -> bool {
        self.serves_tls
    }

    /// TLS handshakes that failed or timed out since start (plain HTTP sent to the TLS port counts).
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// The web config in force now.
    pub fn config(&self) -> WebConfig {
        self.snapshot().config.clone()
    }

    fn snapshot(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The config in force, after reloading it if its files changed (checked
    /// at most once per interval, off the async threads).
    async fn refresh(self: &Arc<Self>) -> Arc<Active> {
        let due = match self.last_check.lock() {
            Ok(mut last) if last.elapsed() >= self.recheck_interval => {
                *last = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
        }
        self.snapshot()
    }

    /// Re-reads the config when its files changed; keeps the old one if the new one is invalid.
    pub fn reload_if_changed(&self) {
        let current = self.snapshot();
        let now = stamp(&current.config.watched_files());
        if now == current.stamps {
            return;
        }
        let mut rejected = match self.rejected.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if rejected.as_ref() == Some(&now) {
            return;
        }
        let outcome = Active::load(&self.path).and_then(|a| {
            if a.acceptor.is_some() != self.serves_tls {
                Err(WebConfigError::Invalid {
                    path: self.path.clone(),
                    key: "tls_server_config".into(),
                    reason: "turning TLS on or off needs a restart of litellm-sentinel".into(),
                })
            } else {
                Ok(a)
            }
        });
        match outcome {
            Ok(new) => {
                tracing::info!(
                    file = %self.path.display(),
                    basic_auth_users = new.config.basic_auth_users.len(),
                    "web config changed: reloaded"
                );
                *rejected = None;
                if let Ok(mut cache) = self.auth_cache.lock() {
                    cache.clear();
                }
                match self.active.write() {
                    Ok(mut a) => *a = Arc::new(new),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "web config changed but is invalid; the previous one stays in force");
                *rejected = Some(now);
            }
        }
    }

    /// Adds basic auth (except on [`AUTH_EXEMPT_PATHS`]) and the configured
    /// response headers in front of `router`.
    pub fn protect(self: &Arc<Self>, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), guard))
    }

    /// Checks the `Authorization` header against the users in force.
    pub async fn authorize(self: &Arc<Self>, headers: &HeaderMap) -> AuthOutcome {
        let active = self.refresh().await;
        self.authorize_with(&active, headers.get(AUTHORIZATION))
            .await
    }

    async fn authorize_with(
        self: &Arc<Self>,
        active: &Arc<Active>,
        header: Option<&HeaderValue>,
    ) -> AuthOutcome {
        let users = &active.config.basic_auth_users;
        if users.is_empty() {
            return AuthOutcome::Allowed;
        }
        let Some((user, password)) = header.and_then(|h| parse_basic(h.as_bytes())) else {
            return AuthOutcome::Denied;
        };
        let known = std::str::from_utf8(&user)
            .ok()
            .and_then(|u| users.get(u))
            .cloned();
        let key = known
            .as_ref()
            .map(|hash| self.cache_key_for(&user, hash, &password));
        if let Some(k) = &key {
            if self.cached(k) {
                return AuthOutcome::Allowed;
            }
        }
        let Ok(Ok(_slot)) =
            tokio::time::timeout(BCRYPT_QUEUE_TIMEOUT, self.bcrypt_slot.acquire()).await
        else {
            return AuthOutcome::Busy;
        };
        if let Some(k) = &key {
            // Another request may have verified the same credentials meanwhile.
            if self.cached(k) {
                return AuthOutcome::Allowed;
            }
        }
        let active = active.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = match &known {
                Some(h) => h.as_str(),
                None => active.decoy(),
            };
            let matches = bcrypt::verify(&password, hash).unwrap_or(false);
            known.is_some() && matches
        })
        .await
        .unwrap_or(false);
        if !ok {
            return AuthOutcome::Denied;
        }
        if let (Some(k), Ok(mut cache)) = (key, self.auth_cache.lock()) {
            if cache.len() >= AUTH_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(k);
        }
        AuthOutcome::Allowed
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.auth_cache
            .lock()
            .map(|c| c.contains(key))
            .unwrap_or(false)
    }

    fn cache_key_for(&self, user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.cache_key);
        for part in [user, hash.as_bytes(), password] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(&tag.as_ref()[..32]);
        out
    }

    /// Completes the TLS handshake of an accepted connection, within
    /// [`TLS_HANDSHAKE_TIMEOUT`]. A plain HTTP request gets a 400 that says to
    /// use https. Failures are counted and logged at debug level, rate-limited;
    /// `None` means the connection is done.
    pub async fn accept_tls(
        self: &Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let acceptor = self.refresh().await.acceptor.clone()?;
        let handshake = async {
            let mut first = [0u8; 1];
            match tcp.peek(&mut first).await {
                // 0x16: a TLS handshake record. An ASCII letter: an HTTP method.
                Ok(1) if first[0].is_ascii_uppercase() => {
                    let mut tcp = tcp;
                    let _ = tcp
                        .write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server: use https://\n")
                        .await;
                    let _ = tcp.shutdown().await;
                    // Drain the unread request (bounded): closing a socket with
                    // unread bytes sends a reset, which can hide the answer.
                    let mut sink = [0u8; 4096];
                    for _ in 0..16 {
                        match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut sink))
                            .await
                        {
                            Ok(Ok(n)) if n > 0 => continue,
                            _ => break,
                        }
                    }
                    return Err("plain HTTP request on the TLS port".to_string());
                }
                Ok(0) => return Err("connection closed before the handshake".to_string()),
                Err(e) => return Err(e.to_string()),
                Ok(_) => {}
            }
            acceptor.accept(tcp).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(reason)) => {
                self.note_handshake_failure(peer, &reason);
                None
            }
            Err(_) => {
                self.note_handshake_failure(peer, "handshake timed out");
                None
            }
        }
    }

    fn note_handshake_failure(&self, peer: SocketAddr, reason: &str) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
        let Ok(mut log) = self.handshake_log.lock() else {
            return;
        };
        if log
            .last
            .is_some_and(|t| t.elapsed() < HANDSHAKE_LOG_INTERVAL)
        {
            log.suppressed += 1;
            return;
        }
        tracing::debug!(
            %peer,
            reason,
            suppressed_since_last = log.suppressed,
            total = self.handshake_failures(),
            "TLS handshake failed"
        );
        log.last = Some(Instant::now());
        log.suppressed = 0;
    }
}

/// Splits `Basic <base64(user:password)>` into user and password bytes.
fn parse_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine;
    let header = header.trim_ascii();
    let (scheme, rest) = header.split_at(header.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// The middleware of [`WebRuntime::protect`].
async fn guard(State(rt): State<Arc<WebRuntime>>, req: Request, next: Next) -> Response {
    let active = rt.refresh().await;
    let exempt = AUTH_EXEMPT_PATHS.contains(&req.uri().path());
    let outcome = if exempt {
        AuthOutcome::Allowed
    } else {
        rt.authorize_with(&active, req.headers().get(AUTHORIZATION))
            .await
    };
    let mut response = match outcome {
        AuthOutcome::Allowed => next.run(req).await,
        AuthOutcome::Denied => {
            let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
                r.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            r
        }
        AuthOutcome::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            "too many password checks in flight; retry later\n",
        )
            .into_response(),
    };
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pw: &str) -> String {
        bcrypt::hash(pw, 4).unwrap()
    }

    /// A self-signed certificate and its key, as PEM.
    fn cert_and_key() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn err_text(r: Result<WebConfig, WebConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn good_file_with_relative_paths_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        write(dir.path(), "tls/server.crt", &cert);
        write(dir.path(), "tls/server.key", &key);
        let h = hash("s3cret");
        let cfg = write(
            dir.path(),
            "web.yml",
            &format!(
                "# exporter-toolkit style\ntls_server_config:\n  cert_file: tls/server.crt\n  key_file: tls/server.key\n  min_version: TLS12\nbasic_auth_users:\n  prometheus: '{h}'\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n"
            ),
        );
        let c = WebConfig::load(&cfg).unwrap();
        let tls = c.tls.as_ref().unwrap();
        assert_eq!(tls.cert, PemSource::File(dir.path().join("tls/server.crt")));
        assert_eq!(tls.key, PemSource::File(dir.path().join("tls/server.key")));
        assert_eq!(tls.min_version, TlsVersion::Tls12);
        assert_eq!(c.basic_auth_users.get("prometheus"), Some(&h));
        assert_eq!(
            c.headers.get("X-Frame-Options").map(String::as_str),
            Some("deny")
        );
        assert_eq!(c.watched_files().len(), 3);
        // The hash never shows in Debug output.
        assert!(!format!("{c:?}").contains(&h));
        assert!(c.tls_server_config().unwrap().is_some());
    }

    #[test]
    fn empty_and_comment_only_files_mean_plain_http_without_auth() {
        for text in ["", "# nothing yet\n\n", "---\n"] {
            let c = WebConfig::from_yaml(text.as_bytes(), Path::new("/etc/web.yml")).unwrap();
            assert!(c.tls.is_none() && c.basic_auth_users.is_empty(), "{text:?}");
        }
        // A tls_server_config with nothing set is plain HTTP, as in exporter-toolkit.
        let c = WebConfig::from_yaml(b"tls_server_config:\n  cert_file: ''\n", Path::new("w.yml"))
            .unwrap();
        assert!(c.tls.is_none());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err_text(WebConfig::from_yaml(
            b"basic_auth_user:\n  a: b\n",
            Path::new("/etc/web.yml"),
        ));
        assert!(
            e.contains("basic_auth_user") && e.contains("/etc/web.yml"),
            "{e}"
        );
        let e = err_text(WebConfig::from_yaml(
            b"tls_server_config:\n  cert_fiel: a.crt\n  key_file: a.key\n",
            Path::new("w.yml"),
        ));
        assert!(e.contains("cert_fiel"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn missing_cert_and_unreadable_files_say_which_key() {
        let e = err_text(WebConfig::from_yaml(
            b"tls_server_config:\n  key_file: a.key\n",
            Path::new("/etc/sentinel/web.yml"),
        ));
        assert!(
            e.contains("tls_server_config.cert_file") && e.contains("missing"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
        );
        let e = err_text(WebConfig::load(&cfg));
        assert!(
            e.contains("cert_file")
                && e.contains(&dir.path().join("nope.crt").display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn garbage_pem_and_mismatched_key_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key();
        let (_, other_key) = cert_and_key();
        write(dir.path(), "c.crt", &cert);
        write(dir.path(), "k.key", &key);
        write(dir.path(), "other.key", &other_key);
        std::fs::write(dir.path().join("junk.crt"), b"\x1b[31mnot a cert\xff\xfe\n").unwrap();
        let load = |c: &str, k: &str| {
            let p = write(
                dir.path(),
                "web.yml",
                &format!("tls_server_config:\n  cert_file: {c}\n  key_file: {k}\n"),
            );
            WebConfig::load(&p)
        };
        load("c.crt", "k.key").unwrap();
        let e = err_text(load("junk.crt", "k.key"));
        assert!(
            e.contains("cert_file") && e.contains("BEGIN CERTIFICATE"),
            "{e}"
        );
        let e = err_text(load("k.key", "k.key"));
        assert!(e.contains("cert_file"), "key given as cert: {e}");
        let e = err_text(load("c.crt", "c.crt"));
        assert!(e.contains("key_file"), "cert given as key: {e}");
        let e = err_text(load("c.crt", "other.key"));
        assert!(e.contains("key_file") && e.contains("private key"), "{e}");
    }

    #[test]
    fn bad_hashes_and_user_names_are_rejected() {
        for (yaml, key) in [
            ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice"),
            ("basic_auth_users:\n  alice: '$1$abc$def'\n", "basic_auth_users.alice"),
            ("basic_auth_users:\n  alice: ''\n", "basic_auth_users.alice"),
            (
                // cost 99
                "basic_auth_users:\n  alice: '$2y$99$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi'\n",
                "basic_auth_users.alice",
            ),
        ] {
            let e = err_text(WebConfig::from_yaml(yaml.as_bytes(), Path::new("w.yml")));
            assert!(e.contains(key) && e.contains("bcrypt"), "{yaml}: {e}");
            assert!(!e.contains("hunter2"), "the bad value is not echoed: {e}");
        }
        let e = err_text(WebConfig::from_yaml(
            format!("basic_auth_users:\n  'a:b': '{}'\n", hash("x")).as_bytes(),
            Path::new("w.yml"),
        ));
        assert!(e.contains("cannot contain `:`"), "{e}");
        let e = err_text(WebConfig::from_yaml(
            format!(
                "basic_auth_users:\n  a: '{}'\n  a: '{}'\n",
                hash("x"),
                hash("y")
            )
            .as_bytes(),
            Path::new("w.yml"),
        ));
        assert!(e.contains('a'), "duplicate user: {e}");
    }

    #[test]
    fn unsupported_but_valid_settings_are_rejected_clearly() {
        for (yaml, needle) in [
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n", "RequireAndVerifyClientCert"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Bogus\n", "not a client auth type"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca.crt\n", "client auth type"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n", "TLS12"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n", "max_version"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [CurveP521]\n", "X25519"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n", "client_allowed_sans"),
            ("http_server_config:\n  http2: true\n", "HTTP/1.1"),
            ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "allowed"),
            ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "deny"),
            ("rate_limit:\n  burst: 10\n  interval: 1s\n", "rate_limit"),
        ] {
            let e = err_text(WebConfig::from_yaml(yaml.as_bytes(), Path::new("w.yml")));
            assert!(e.contains(needle), "{yaml}: {e}");
        }
    }

    #[test]
    fn cipher_suites_curves_and_mutual_tls_build() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key();
        write(dir.path(), "c.crt", &cert);
        write(dir.path(), "k.key", &key);
        write(dir.path(), "ca.crt", &cert);
        let p = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: c.crt\n  key_file: k.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n",
        );
        let c = WebConfig::load(&p).unwrap();
        let sc = c.tls_server_config().unwrap().unwrap();
        assert!(!sc.ignore_client_order);
        assert_eq!(c.tls.unwrap().client_auth, ClientAuth::RequireAndVerify);
    }

    #[test]
    fn inline_pem_works_and_is_not_printed() {
        let (cert, key) = cert_and_key();
        let yaml = format!(
            "tls_server_config:\n  cert: |\n{}\n  key: |\n{}\n",
            cert.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            key.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let c = WebConfig::from_yaml(yaml.as_bytes(), Path::new("w.yml")).unwrap();
        assert!(c.tls_server_config().unwrap().is_some());
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn basic_header_parsing_never_panics_on_junk() {
        use base64::Engine;
        let enc = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            parse_basic(format!("Basic {}", enc(b"al:ice:pw")).as_bytes()),
            Some((b"al".to_vec(), b"ice:pw".to_vec()))
        );
        assert_eq!(
            parse_basic(format!("bAsIc   {}  ", enc(b"u:\xff\xfe")).as_bytes()),
            Some((b"u".to_vec(), b"\xff\xfe".to_vec()))
        );
        for junk in [
            &b""[..],
            b"Basic",
            b"Basic ",
            b"Bearer abc",
            b"Basic !!!notbase64",
            b"Basic dXNlcg==", // "user": no colon
            b"\x1b[31mBasic\xff",
        ] {
            assert_eq!(parse_basic(junk), None, "{junk:?}");
        }
    }

    fn auth_header(user: &[u8], pw: &[u8]) -> HeaderMap {
        use base64::Engine;
        let mut cred = user.to_vec();
        cred.push(b':');
        cred.extend_from_slice(pw);
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(cred)
            ))
            .unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn authorization_caches_successes_and_follows_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  alice: '{}'\n", hash("pw1")),
        );
        let rt = WebRuntime::with_recheck_interval(&p, Duration::ZERO).unwrap();
        assert!(!rt.serves_tls());
        assert_eq!(rt.authorize(&HeaderMap::new()).await, AuthOutcome::Denied);
        assert_eq!(
            rt.authorize(&auth_header(b"alice", b"pw1")).await,
            AuthOutcome::Allowed
        );
        assert_eq!(rt.auth_cache.lock().unwrap().len(), 1);
        assert_eq!(
            rt.authorize(&auth_header(b"alice", b"pw1")).await,
            AuthOutcome::Allowed
        );
        assert_eq!(
            rt.authorize(&auth_header(b"alice", b"wrong")).await,
            AuthOutcome::Denied
        );
        assert_eq!(
            rt.authorize(&auth_header(b"mallory", b"pw1")).await,
            AuthOutcome::Denied
        );
        assert_eq!(
            rt.authorize(&auth_header(b"\xffalice", b"pw1")).await,
            AuthOutcome::Denied
        );
        assert_eq!(
            rt.auth_cache.lock().unwrap().len(),
            1,
            "failures are not cached"
        );

        // Password changed in the file: the old one stops working without a restart.
        std::fs::write(
            &p,
            format!("basic_auth_users:\n  alice: '{}'\n", hash("pw2")),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rt.authorize(&auth_header(b"alice", b"pw1")).await == AuthOutcome::Allowed {
            assert!(
                Instant::now() < deadline,
                "the new hash was never picked up"
            );
            // Same-size rewrite within the mtime granularity: touch again.
            std::fs::write(
                &p,
                format!("basic_auth_users:\n  alice: '{}'\n\n", hash("pw2")),
            )
            .unwrap();
        }
        assert_eq!(
            rt.authorize(&auth_header(b"alice", b"pw2")).await,
            AuthOutcome::Allowed
        );

        // An invalid edit keeps the previous config.
        std::fs::write(&p, "basic_auth_users:\n  alice: plaintext\n").unwrap();
        rt.reload_if_changed();
        assert_eq!(
            rt.authorize(&auth_header(b"alice", b"pw2")).await,
            AuthOutcome::Allowed
        );
        assert_eq!(rt.config().basic_auth_users.len(), 1);
    }

    #[tokio::test]
    async fn no_users_means_no_auth() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
        );
        let rt = WebRuntime::start(&p).unwrap();
        assert_eq!(rt.authorize(&HeaderMap::new()).await, AuthOutcome::Allowed);
    }
}
