//! Optional PostgreSQL `SELECT 1`, to tell "the engine is not up" apart from
//! "the database itself is down or refusing us".
//!
//! The connection string holds the database password, so it lives in a
//! [`Secret`] whose `Debug`/`Display` print only a redacted form, and the
//! probe never formats a tokio-postgres error (its cause chain carries server
//! messages): failures are reduced to a [`FailureReason`] plus, at debug
//! level, the SQLSTATE code.
//!
//! The probe needs the `postgres` cargo feature (on by default). Without it
//! [`DATABASE_PROBE_AVAILABLE`] is `false`, `ProbeConfig::validate` reports a
//! configured database URL as an error and `spawn_probes` skips the target.

use std::fmt;

/// Whether this build can probe PostgreSQL (the `postgres` feature).
pub(crate) const DATABASE_PROBE_AVAILABLE: bool = cfg!(feature = "postgres");

/// A PostgreSQL connection string whose password must never be printed.
///
/// `Debug` and `Display` show [`Secret::redacted`]; there is no `Serialize`.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a connection string (URL `postgresql://…` or libpq `key=value`).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The connection string as [`crate::redact::redact`] shows it:
    /// `postgresql://user:***@host:port/db`, secret query parameters and
    /// libpq `password=` hidden; an ambiguous layout (an unencoded `/`, `?`
    /// or `#` before the last `@`) hides everything after the scheme.
    pub(crate) fn redacted(&self) -> String {
        crate::redact::redact(&self.0)
    }

    /// The real value, only for handing to the database driver.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret").field(&self.redacted()).finish()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(feature = "postgres")]
pub(crate) use enabled::DatabaseTarget;

#[cfg(feature = "postgres")]
mod enabled {
    use std::io;
    use std::str::FromStr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::Instant;
    use tokio_postgres::{NoTls, SimpleQueryMessage};

    use super::Secret;
    use crate::http_client::io_error_kind;
    use crate::probe::FailureReason;

    /// A parsed database target, cheap to clone per attempt.
    #[derive(Clone)]
    pub(crate) struct DatabaseTarget {
        secret: Arc<Secret>,
        /// `None` when the connection string does not parse (every attempt is `db_error`).
        config: Option<Arc<tokio_postgres::Config>>,
    }

    impl DatabaseTarget {
        pub(crate) fn new(secret: Secret) -> Self {
            // The parse error is not formatted: it can quote the input.
            let config = tokio_postgres::Config::from_str(secret.expose())
                .ok()
                .map(Arc::new);
            if config.is_none() {
                tracing::warn!(database = %secret.redacted(), "database URL does not parse; the database probe will report db_error");
            }
            DatabaseTarget {
                secret: Arc::new(secret),
                config,
            }
        }

        /// Connects (NoTls), runs `SELECT 1` and disconnects, all by `deadline`.
        pub(crate) async fn probe(&self, deadline: Instant) -> Result<(), FailureReason> {
            let Some(base) = &self.config else {
                return Err(FailureReason::DbError);
            };
            let mut config = (**base).clone();
            let remaining = deadline.saturating_duration_since(Instant::now());
            config.connect_timeout(remaining.max(Duration::from_millis(1)));
            let work = async move {
                let (client, connection) =
                    config.connect(NoTls).await.map_err(|e| self.failed(&e))?;
                // The connection future drives the socket; it ends when the
                // client is dropped (sends Terminate) or the server goes away.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let result = client.simple_query("SELECT 1").await;
                drop(client);
                let messages = result.map_err(|e| self.failed(&e))?;
                if messages
                    .iter()
                    .any(|m| matches!(m, SimpleQueryMessage::Row(_)))
                {
                    Ok(())
                } else {
                    Err(FailureReason::DbError)
                }
            };
            match tokio::time::timeout_at(deadline, work).await {
                Ok(result) => result,
                Err(_elapsed) => Err(FailureReason::Timeout),
            }
        }

        /// Classifies a driver error and logs only safe facts about it.
        fn failed(&self, e: &tokio_postgres::Error) -> FailureReason {
            let reason = classify(e);
            tracing::debug!(
                database = %self.secret.redacted(),
                reason = reason.as_str(),
                sqlstate = e.code().map(|c| c.code()).unwrap_or(""),
                "database probe failed"
            );
            reason
        }
    }

    /// `ECONNREFUSED` → refused, a connect timeout → timeout, anything else
    /// (authentication, unknown database, server starting up, …) → db_error.
    fn classify(e: &tokio_postgres::Error) -> FailureReason {
        match io_error_kind(e) {
            Some(io::ErrorKind::ConnectionRefused) => FailureReason::Refused,
            Some(io::ErrorKind::TimedOut) => FailureReason::Timeout,
            _ => FailureReason::DbError,
        }
    }
}

/// Stand-in when the `postgres` feature is off: never constructed by
/// `spawn_probes` (it checks [`DATABASE_PROBE_AVAILABLE`]), always `db_error`.
#[cfg(not(feature = "postgres"))]
#[derive(Clone)]
pub(crate) struct DatabaseTarget;

#[cfg(not(feature = "postgres"))]
impl DatabaseTarget {
    pub(crate) fn new(_secret: Secret) -> Self {
        DatabaseTarget
    }

    pub(crate) async fn probe(
        &self,
        _deadline: tokio::time::Instant,
    ) -> Result<(), super::FailureReason> {
        Err(super::FailureReason::DbError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "hunter2-S3cr3t";

    #[test]
    fn url_forms_are_redacted() {
        let cases = [
            (
                "postgresql://litellm:hunter2-S3cr3t@db.prod:5432/litellm",
                "postgresql://litellm:***@db.prod:5432/litellm",
            ),
            (
                "postgres://litellm:hunter2-S3cr3t@db/litellm?sslmode=require",
                "postgres://litellm:***@db/litellm?sslmode=require",
            ),
            (
                "POSTGRESQL://u:hunter2-S3cr3t@h/d",
                "postgresql://u:***@h/d",
            ),
            // Unencoded '@' and ':' inside the password.
            (
                "postgresql://u:hunter2@S3cr3t:x@h:1/d",
                "postgresql://u:***@h:1/d",
            ),
            // Password in the query string.
            (
                "postgresql://u@h/d?password=hunter2-S3cr3t",
                "postgresql://u@h/d?password=***",
            ),
            (
                "postgresql://h:5432/d?password=hunter2-S3cr3t&x=1",
                "postgresql://h:5432/d?password=***&…",
            ),
            // '@' inside a query value after a password-less userinfo: ambiguous.
            (
                "postgresql://u@h/d?password=hunter2@S3cr3t",
                "postgresql://***",
            ),
            // Unencoded '/' in the password: ambiguous.
            ("postgresql://u:hunter2/S3cr3t@h/d", "postgresql://***"),
            (
                "  postgresql://u:hunter2-S3cr3t@h/d\n",
                "postgresql://u:***@h/d",
            ),
        ];
        for (input, want) in cases {
            let s = Secret::new(input);
            assert_eq!(s.redacted(), want, "{want}");
            for shown in [
                s.redacted(),
                format!("{s}"),
                format!("{s:?}"),
                format!("{s:#?}"),
            ] {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(!shown.contains("S3cr3t"), "{shown}");
            }
        }
    }

    #[test]
    fn key_value_forms_are_redacted() {
        let cases = [
            (
                "host=db port=5432 user=litellm password=hunter2-S3cr3t dbname=x",
                "host=db port=5432 user=litellm password=*** dbname=x",
            ),
            (
                "host=db password='hunter2 S3cr3t host=evil' dbname=x",
                "host=db password=*** dbname=x",
            ),
            ("password = hunter2-S3cr3t", "password=***"),
            ("hunter2-S3cr3t", "***"),
            ("", ""),
            ("postgresql://", "postgresql://"),
        ];
        for (input, want) in cases {
            let s = Secret::new(input);
            assert_eq!(s.redacted(), want, "{input:?}");
            assert!(!format!("{s:?}").contains(PW));
        }
    }

    #[test]
    fn redaction_never_panics_and_never_leaks_on_messy_input() {
        for input in [
            "postgresql://\u{1F600}:hunter2-S3cr3t@\u{e9}h/d",
            "postgres://:hunter2-S3cr3t@",
            "postgresql://@@@",
            "postgresql://u:hunter2-S3cr3t\u{1b}[0m@h",
            "postgresql:/u:hunter2-S3cr3t@h",
        ] {
            let shown = Secret::new(input).redacted();
            assert!(!shown.contains(PW), "{input:?} -> {shown}");
        }
    }

    #[test]
    fn deserializes_transparently() {
        let s: Secret = serde_json::from_str("\"postgresql://u:hunter2-S3cr3t@h/d\"").unwrap();
        assert_eq!(s.expose(), "postgresql://u:hunter2-S3cr3t@h/d");
        assert_eq!(s.to_string(), "postgresql://u:***@h/d");
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn unparseable_url_is_db_error_and_nothing_listening_is_refused() {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let bad = DatabaseTarget::new(Secret::new("postgresql://u:hunter2-S3cr3t@h:notaport/d"));
        assert_eq!(
            bad.probe(deadline).await,
            Err(super::super::FailureReason::DbError)
        );

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let t = DatabaseTarget::new(Secret::new(format!(
            "postgresql://u:{PW}@127.0.0.1:{port}/d"
        )));
        assert_eq!(
            t.probe(deadline).await,
            Err(super::super::FailureReason::Refused)
        );
    }
}
