//! What a probe checks and why it fails: metric labels and checkpoint keys.

use serde::{Deserialize, Serialize};

/// What a probe checked. Used as the `target` metric label and, by name, as
/// the key of a pod's probe states in the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The Prisma query-engine subprocess (`GET /status`, then `SELECT 1` through it).
    Engine,
    /// LiteLLM's `GET /health/readiness` (`"db": "connected"`).
    ProxyReadiness,
    /// PostgreSQL itself (`SELECT 1`), to tell "engine not up" from "database down".
    Database,
}

impl Target {
    /// Every target, in label order (for pre-registering metric series).
    pub const ALL: [Target; 3] = [Target::Engine, Target::ProxyReadiness, Target::Database];

    /// The metric label value (also the serde name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Target::Engine => "engine",
            Target::ProxyReadiness => "proxy_readiness",
            Target::Database => "database",
        }
    }
}

/// Why a probe failed. A fixed vocabulary (the `reason` metric label): never
/// free text from the peer, which could carry connection strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Nothing listens (or, for the engine, no engine process was found).
    Refused,
    /// The connection was not accepted within the probe timeout (nothing
    /// usable listens: a full backlog, dropped SYNs).
    Timeout,
    /// The peer accepted the connection but sent no complete answer within
    /// the probe timeout: something listens and is busy or wedged. LiteLLM
    /// 1.110.2's `/health/readiness` does this for up to 4 s while its
    /// database check waits on an engine that is not up yet, so for the proxy
    /// this still means "the port accepts connections".
    ResponseTimeout,
    /// An HTTP answer with a non-2xx status.
    HttpStatus,
    /// An answer that is not what a ready peer sends.
    BadBody,
    /// The database answered with an error or could not be reached behind a
    /// running peer: PostgreSQL itself (authentication, missing database, …),
    /// or the engine answering a Prisma database error (P1001, P1017, P2024,
    /// …): "engine up, database unreachable".
    DbError,
}

impl FailureReason {
    /// Every reason, in label order.
    pub const ALL: [FailureReason; 6] = [
        FailureReason::Refused,
        FailureReason::Timeout,
        FailureReason::ResponseTimeout,
        FailureReason::HttpStatus,
        FailureReason::BadBody,
        FailureReason::DbError,
    ];

    /// The metric label value (also the serde name).
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::Refused => "refused",
            FailureReason::Timeout => "timeout",
            FailureReason::ResponseTimeout => "response_timeout",
            FailureReason::HttpStatus => "http_status",
            FailureReason::BadBody => "bad_body",
            FailureReason::DbError => "db_error",
        }
    }

    /// Whether a probe that failed this way still reached a listening peer
    /// that accepted the connection (everything but `refused` and a connect
    /// `timeout`). For the proxy this is "the port accepts connections".
    pub const fn connected(self) -> bool {
        !matches!(self, FailureReason::Refused | FailureReason::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_label_values() {
        for t in Target::ALL {
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
        for r in FailureReason::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
    }
}
