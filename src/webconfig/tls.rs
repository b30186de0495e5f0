//! The rustls server configuration of a [`WebConfig`]: the ring provider
//! narrowed to the configured suites and curves, the certificate chain and
//! key, and the client-certificate verifier for mutual TLS.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{ClientAuth, PemSource, TlsSettings, TlsVersion, WebConfig};
use super::WebConfigError;

impl WebConfig {
    /// Builds the rustls server configuration (`None` without `tls_server_config`);
    /// reads the certificate, key and client CA files.
    pub fn tls_server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, WebConfigError> {
        match &self.tls {
            Some(t) => build_tls(t, &self.source).map(Some),
            None => Ok(None),
        }
    }
}

/// The ring provider, narrowed to the configured cipher suites and curves.
/// Errors are `(key, reason)`.
pub(super) fn crypto_provider(t: &TlsSettings) -> Result<CryptoProvider, (&'static str, String)> {
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
            let verifier = client_verifier(&ca_pem, t.client_auth, provider)
                .map_err(|reason| invalid(ca_key, reason))?;
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

/// The verifier of client certificates signed by the CA(s) in `ca_pem`
/// (optional ones for [`ClientAuth::VerifyIfGiven`]). Errors are the reason
/// for the client CA key.
fn client_verifier(
    ca_pem: &[u8],
    client_auth: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem) {
        let der = der.map_err(|e| format!("is not valid PEM ({e})"))?;
        roots
            .add(der)
            .map_err(|e| format!("holds a certificate that cannot be a trust anchor: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no `BEGIN CERTIFICATE` block; point it at the PEM of the CA that signs client certificates".into());
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let verifier = if client_auth == ClientAuth::VerifyIfGiven {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    verifier
        .build()
        .map_err(|e| format!("cannot verify client certificates: {e}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::test_util::{cert_and_key, err_text, write};
    use super::*;

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
}
