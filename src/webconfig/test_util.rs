//! Test helpers shared by the web config modules' tests.

use std::path::{Path, PathBuf};

use super::{WebConfig, WebConfigError};

pub(super) fn hash(pw: &str) -> String {
    bcrypt::hash(pw, 4).unwrap()
}

/// A self-signed certificate and its key, as PEM.
pub(super) fn cert_and_key() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

pub(super) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub(super) fn err_text(r: Result<WebConfig, WebConfigError>) -> String {
    r.unwrap_err().to_string()
}
