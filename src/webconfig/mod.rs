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
//!
//! One job per file: `config` parses and validates the YAML, `tls`
//! builds the rustls server configuration, `reload` keeps the
//! configuration in force and follows its files, `auth` checks basic-auth
//! credentials, `accept` completes TLS handshakes (answering plain HTTP
//! sent to the TLS port), `middleware` puts auth and headers in front of
//! the router.

use std::path::PathBuf;
use std::time::Duration;

mod accept;
mod auth;
mod config;
mod middleware;
mod reload;
#[cfg(test)]
mod test_util;
mod tls;

pub use auth::AuthOutcome;
pub use config::{ClientAuth, PemSource, TlsSettings, TlsVersion, WebConfig};
pub use reload::WebRuntime;

/// Paths served without credentials even when `basic_auth_users` is set: the
/// kubelet's liveness, readiness and gate probes (they cannot easily send
/// credentials, and say no more than "up" or "ready").
pub(crate) const AUTH_EXEMPT_PATHS: &[&str] = &["/healthz", "/readyz", "/gate"];

/// The realm in `WWW-Authenticate` (browsers show it in the login prompt).
pub(crate) const REALM: &str = "litellm-sentinel";

/// A TLS handshake (or the first byte of it) must arrive within this time.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
