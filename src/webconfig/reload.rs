//! The web config in force for a running server, and its reload: the file
//! and the PEM files it names are stamped, re-checked at most once per
//! interval, and a changed version replaces the old one only if it is valid.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tokio_rustls::TlsAcceptor;

use super::accept::HandshakeStats;
use super::auth::{Authenticator, Decoy};
use super::config::WebConfig;
use super::WebConfigError;

/// How often, at most, the web config and its files are checked for changes.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

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
pub(super) struct Active {
    pub(super) config: WebConfig,
    pub(super) acceptor: Option<TlsAcceptor>,
    /// The configured response headers, ready to insert.
    pub(super) headers: HeaderMap,
    stamps: Vec<FileStamp>,
    /// Verified against for unknown users (per generation: its cost follows the users').
    pub(super) decoy: Decoy,
}

impl Active {
    fn load(path: &Path) -> Result<Active, WebConfigError> {
        // Each file is stamped before it is read: a change while loading is
        // then seen at the next check.
        let mut stamps = stamp(&[path.to_path_buf()]);
        let config = WebConfig::read(path)?;
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
            decoy: Decoy::default(),
        })
    }
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
    pub(super) auth: Authenticator,
    pub(super) handshakes: HandshakeStats,
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
    pub(crate) fn with_recheck_interval(
        path: &Path,
        recheck_interval: Duration,
    ) -> Result<Arc<WebRuntime>, WebConfigError> {
        let active = Active::load(path)?;
        let auth = Authenticator::new().map_err(|_no_random| WebConfigError::Invalid {
            path: path.to_path_buf(),
            key: "basic_auth_users".into(),
            reason: "the system random generator failed; cannot key the credential cache".into(),
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
            auth,
            handshakes: HandshakeStats::default(),
        }))
    }

    /// Whether connections are TLS (decided at start).
    pub(crate) fn serves_tls(&self) -> bool {
        self.serves_tls
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
    pub(super) async fn refresh(self: &Arc<Self>) -> Arc<Active> {
        let due = {
            let mut last = crate::sync::lock(&self.last_check);
            let due = last.elapsed() >= self.recheck_interval;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
        }
        self.snapshot()
    }

    /// Re-reads the config when its files changed; keeps the old one if the new one is invalid.
    pub(crate) fn reload_if_changed(&self) {
        let current = self.snapshot();
        let now = stamp(&current.config.watched_files());
        if now == current.stamps {
            return;
        }
        let mut rejected = crate::sync::lock(&self.rejected);
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
                self.auth.clear();
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
}
