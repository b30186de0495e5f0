//! The web config file's schema: the YAML as exporter-toolkit reads it,
//! validated into a [`WebConfig`] (no TLS objects are built here; see `tls`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use axum::http::HeaderValue;
use serde::Deserialize;

use super::WebConfigError;

/// Response headers the web config may set, with their allowed values (empty: any value).
/// The same list as exporter-toolkit, so that configs stay portable.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

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
        let cfg = WebConfig::read(path)?;
        cfg.tls_server_config()?;
        Ok(cfg)
    }

    /// Reads and parses the file (the PEM files it names are not read).
    pub(super) fn read(path: &Path) -> Result<WebConfig, WebConfigError> {
        let bytes = std::fs::read(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        WebConfig::from_yaml(&bytes, path)
    }

    /// Parses web config YAML (no files are read); relative paths are
    /// resolved against the directory of `source`, as exporter-toolkit does.
    pub(crate) fn from_yaml(bytes: &[u8], source: &Path) -> Result<WebConfig, WebConfigError> {
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

    /// The files whose changes trigger a reload: this file and the PEM files it names.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
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

/// Builds the `invalid` error of a `tls_server_config` key.
type Invalid<'a> = &'a dyn Fn(&str, String) -> WebConfigError;

fn tls_key(s: &str) -> String {
    format!("tls_server_config.{s}")
}

fn parse_tls(
    t: RawTls,
    dir: &Path,
    invalid: Invalid<'_>,
) -> Result<Option<TlsSettings>, WebConfigError> {
    if t.client_allowed_sans.is_some() {
        return Err(invalid(
            &tls_key("client_allowed_sans"),
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
    let cert = pem_source(cert_file, cert_inline, "cert", invalid)?.ok_or_else(|| {
        invalid(
            &tls_key("cert_file"),
            "is missing: TLS needs a certificate (PEM) next to `key_file`".into(),
        )
    })?;
    let key = pem_source(key_file, key_inline, "key", invalid)?.ok_or_else(|| {
        invalid(
            &tls_key("key_file"),
            "is missing: TLS needs the certificate's private key (PEM)".into(),
        )
    })?;
    let client_ca = pem_source(ca_file, ca_inline, "client_ca", invalid)?;
    let client_auth = client_auth(auth_type.as_deref(), client_ca.is_some(), invalid)?;
    let min_version = tls_version("min_version", t.min_version, TlsVersion::Tls12, invalid)?;
    let max_version = tls_version("max_version", t.max_version, TlsVersion::Tls13, invalid)?;
    if min_version > max_version {
        return Err(invalid(
            &tls_key("min_version"),
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
    super::tls::crypto_provider(&settings)
        .map_err(|(key, reason)| invalid(&tls_key(key), reason))?;
    Ok(Some(settings))
}

/// `<name>_file` or inline `<name>`: at most one of them.
fn pem_source(
    file: Option<PathBuf>,
    inline: Option<String>,
    name: &str,
    invalid: Invalid<'_>,
) -> Result<Option<PemSource>, WebConfigError> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(invalid(
            &tls_key(&format!("{name}_file")),
            format!("set either `{name}_file` or `{name}`, not both"),
        )),
        (Some(f), None) => Ok(Some(PemSource::File(f))),
        (None, Some(s)) => Ok(Some(PemSource::Inline(s))),
        (None, None) => Ok(None),
    }
}

/// `client_auth_type`, checked against whether a client CA is configured.
fn client_auth(
    auth_type: Option<&str>,
    has_ca: bool,
    invalid: Invalid<'_>,
) -> Result<ClientAuth, WebConfigError> {
    let client_auth = match auth_type {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerify,
        Some(other @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => {
            return Err(invalid(
                &tls_key("client_auth_type"),
                format!("`{other}` accepts client certificates without verifying them and is not supported; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with `client_ca_file`"),
            ))
        }
        Some(other) => {
            return Err(invalid(
                &tls_key("client_auth_type"),
                format!("`{other}` is not a client auth type; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            ))
        }
    };
    match (client_auth, has_ca) {
        (ClientAuth::None, true) => Err(invalid(
            &tls_key("client_auth_type"),
            "a client CA is configured but no client auth type: set RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove the client CA".into(),
        )),
        (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify, false) => Err(invalid(
            &tls_key("client_ca_file"),
            "is missing: verifying client certificates needs the CA that signs them".into(),
        )),
        _ => Ok(client_auth),
    }
}

/// `min_version` / `max_version` (Go's names); `default` when unset.
fn tls_version(
    key: &str,
    value: Option<String>,
    default: TlsVersion,
    invalid: Invalid<'_>,
) -> Result<TlsVersion, WebConfigError> {
    match value.as_deref() {
        None | Some("") => Ok(default),
        Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        Some(old @ ("TLS10" | "TLS11")) => Err(invalid(
            &tls_key(key),
            format!("`{old}` is not supported: this server speaks TLS 1.2 and 1.3 only; use TLS12"),
        )),
        Some(other) => Err(invalid(
            &tls_key(key),
            format!("`{other}` is not a TLS version; use TLS12 or TLS13"),
        )),
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::test_util::{cert_and_key, err_text, hash, write};
    use super::*;

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
}
