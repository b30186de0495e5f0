//! Basic auth against the bcrypt hashes of the web config: one bcrypt at a
//! time (bounded queue), a keyed cache of verified credentials, and a decoy
//! hash so that an unknown user name costs as long as a wrong password.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::HeaderValue;

use super::reload::Active;

/// Waiting longer than this for the (single) bcrypt slot answers 429: a flood
/// of wrong passwords must not queue requests without bound.
const BCRYPT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Verified credentials kept in memory (the cache is cleared when full).
const AUTH_CACHE_CAPACITY: usize = 1024;

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

/// The system random generator failed (the cache key cannot be made).
#[derive(Debug)]
pub(super) struct NoRandom;

/// Checks credentials; lives as long as the server (the cache is cleared on reload).
pub(super) struct Authenticator {
    /// HMACs of verified (user, hash, password) triples: bcrypt is slow on purpose.
    cache: Mutex<HashSet<[u8; 32]>>,
    cache_key: ring::hmac::Key,
    /// One bcrypt at a time (it is CPU-heavy by design; the agent has little CPU).
    bcrypt_slot: tokio::sync::Semaphore,
}

impl Authenticator {
    pub(super) fn new() -> Result<Authenticator, NoRandom> {
        let rng = ring::rand::SystemRandom::new();
        let cache_key =
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).map_err(|_| NoRandom)?;
        Ok(Authenticator {
            cache: Mutex::new(HashSet::new()),
            cache_key,
            bcrypt_slot: tokio::sync::Semaphore::new(1),
        })
    }

    /// Forgets every verified credential (the users or their hashes changed).
    pub(super) fn clear(&self) {
        crate::sync::lock(&self.cache).clear();
    }

    /// Checks an `Authorization` header against the users of `active`.
    pub(super) async fn check(
        &self,
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
                None => active.decoy.hash(&active.config.basic_auth_users),
            };
            let matches = bcrypt::verify(&password, hash).unwrap_or(false);
            known.is_some() && matches
        })
        .await
        .unwrap_or(false);
        if !ok {
            return AuthOutcome::Denied;
        }
        if let Some(k) = key {
            let mut cache = crate::sync::lock(&self.cache);
            if cache.len() >= AUTH_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(k);
        }
        AuthOutcome::Allowed
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        crate::sync::lock(&self.cache).contains(key)
    }

    /// Verified credentials held now (tests).
    #[cfg(test)]
    fn cached_len(&self) -> usize {
        crate::sync::lock(&self.cache).len()
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
}

/// A bcrypt hash verified against for unknown users, so that a wrong user
/// name takes as long as a wrong password (no user enumeration by timing).
#[derive(Default)]
pub(super) struct Decoy(OnceLock<String>);

impl Decoy {
    /// The decoy hash, with the highest cost among `users`' hashes (made once).
    fn hash(&self, users: &std::collections::BTreeMap<String, String>) -> &str {
        self.0.get_or_init(|| {
            let cost = users
                .values()
                .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            bcrypt::hash(b"litellm-sentinel decoy password", cost).unwrap_or_default()
        })
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

#[cfg(test)]
mod tests {
    use super::super::reload::WebRuntime;
    use axum::http::header::AUTHORIZATION;
    use axum::http::HeaderMap;
    use std::time::{Duration, Instant};

    impl WebRuntime {
        /// Checks the `Authorization` header against the users in force.
        pub(crate) async fn authorize(self: &Arc<Self>, headers: &HeaderMap) -> AuthOutcome {
            let active = self.refresh().await;
            self.auth.check(&active, headers.get(AUTHORIZATION)).await
        }
    }

    use super::super::test_util::{hash, write};
    use super::*;

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
        assert_eq!(rt.auth.cached_len(), 1);
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
        assert_eq!(rt.auth.cached_len(), 1, "failures are not cached");

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
