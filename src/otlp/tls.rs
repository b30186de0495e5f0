//! The rustls client configuration of an `https://` endpoint: the CA from
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` or the compiled-in Mozilla roots (the
//! image has no CA bundle), and the client certificate for mTLS.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::{env, OtlpError, TlsFiles};

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

fn certs(setting: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, OtlpError> {
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
