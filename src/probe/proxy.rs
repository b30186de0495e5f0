//! Probe of LiteLLM's own readiness endpoint, `GET /health/readiness`.
//!
//! Source: BerriAI/litellm `litellm/proxy/health_endpoints/_health_endpoints.py`
//! (`health_readiness`, `_db_health_readiness_check`). The body is
//! `{"status": "healthy", "db": <state>, "cache": …, "litellm_version": …}`
//! where `db` is `"connected"`, `"disconnected"` (the last `health_check()`
//! failed; a `connected` result is cached for 15 s) or `"Not connected"` (no
//! Prisma client at all).
//!
//! The HTTP status alone cannot be trusted: LiteLLM 1.83.14 answers **200**
//! with `"db": "disconnected"` while the engine is down; from 1.84.0 it
//! answers 503 when not connected (unless `allow_requests_on_db_unavailable`).
//! LiteLLM 1.110.2's public endpoint answers only `{"status", "db"}` (no
//! version) and waits on its database check first (`_db_health_readiness_check`:
//! `health_check()` bounded by 2 s, then a reconnect and a second check, the
//! whole bounded by 4 s), so while the engine is down it accepts the
//! connection and then answers 503 only after up to 4 s, past the probe
//! timeout: `response_timeout`. Every outcome that reached the proxy but
//! found it not ready is stamped at the connect (see [`Readiness`]).
//!
//! A completed TCP connect alone does not show that LiteLLM serves: with
//! `--num_workers N` Uvicorn's supervisor listens long before any worker
//! accepts, and the kernel completes handshakes into the backlog meanwhile.
//! So each readiness probe sends `GET /health/liveliness` alongside (it
//! touches no database and answers at once, as the real-LiteLLM harness's
//! "first accepted" uses it): a readiness request that connected and timed
//! out is `response_timeout` ("accepting", stamped at the liveliness
//! connect) only when the liveliness request got any HTTP answer; when both
//! hung, nothing serves the port yet and it is a `timeout`.
//!
//! So the decision reads the body:
//! - non-2xx → `http_status` (1.84+ "not ready", or any other error page);
//! - 2xx whose JSON body lacks `"db": "connected"` → `bad_body` (1.83.x
//!   "not ready": the answer is a readiness body, just not a ready one);
//! - 2xx with `"db": "connected"` → up.

use serde_json::Value;
use tokio::time::Instant;

use super::FailureReason;
use crate::http_client::HttpClient;

/// `<base>/health/readiness` for a LiteLLM base URL such as `http://127.0.0.1:4000`.
pub(crate) fn readiness_url(base: &str) -> String {
    format!("{}/health/readiness", base.trim_end_matches('/'))
}

/// `<base>/health/liveliness` (LiteLLM's "I'm alive!", no database involved).
pub(crate) fn liveliness_url(base: &str) -> String {
    format!("{}/health/liveliness", base.trim_end_matches('/'))
}

/// What one readiness probe learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `Ok` when the proxy says its database is connected.
    pub result: Result<(), FailureReason>,
    /// The `litellm_version` the body carried (any status: it names what runs).
    pub version: Option<String>,
    /// When the proxy accepted the TCP connection (`None`: it did not). A
    /// probe that connected knows "the port accepts" from this moment, even
    /// if the answer then times out or says "not ready".
    pub accepted_at: Option<Instant>,
}

/// One readiness probe of `url` (a full `/health/readiness` URL), with
/// `liveliness` (the `/health/liveliness` URL) asked alongside to tell a
/// proxy that serves but is slow to answer readiness from a port nobody
/// serves yet (see the module docs).
pub(crate) async fn probe_readiness(
    client: &HttpClient,
    url: &str,
    liveliness: &str,
    deadline: Instant,
) -> Readiness {
    let (timed, alive) = tokio::join!(
        client.get_timed(url, deadline),
        client.get_timed(liveliness, deadline)
    );
    let accepted_at = timed.connected_at;
    let resp = match timed.result {
        Ok(r) => r,
        Err(crate::http_client::HttpError::Timeout) => {
            // Connected, then no answer in time: busy (1.110.2's readiness
            // waiting on its database check) if the proxy answered
            // liveliness, else a port whose workers do not serve yet.
            return match alive.result {
                Ok(_) => Readiness {
                    result: Err(FailureReason::ResponseTimeout),
                    version: None,
                    accepted_at: alive.connected_at.or(accepted_at),
                },
                Err(_) => Readiness {
                    result: Err(FailureReason::Timeout),
                    version: None,
                    accepted_at: None,
                },
            };
        }
        Err(e) => {
            return Readiness {
                result: Err(e.into()),
                version: None,
                accepted_at,
            }
        }
    };
    let version = litellm_version(&resp.body);
    let result = if !resp.status.is_success() {
        Err(FailureReason::HttpStatus)
    } else if readiness_body_says_connected(&resp.body) {
        Ok(())
    } else {
        Err(FailureReason::BadBody)
    };
    Readiness {
        result,
        version,
        accepted_at,
    }
}

/// Longest `litellm_version` accepted (real ones are like `1.83.14`).
const VERSION_LIMIT: usize = 64;

/// `litellm_version` from a readiness body, when it looks like a version:
/// it becomes a metric label, so anything else (odd characters, too long)
/// is dropped rather than exported.
pub fn litellm_version(body: &[u8]) -> Option<String> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    sane_version(map.get("litellm_version")?.as_str()?)
}

/// `v` when it looks like a LiteLLM version (a digit first, then only
/// `[0-9A-Za-z.+-]`, at most 64 bytes): it becomes a metric label.
pub(crate) fn sane_version(v: &str) -> Option<String> {
    let sane = !v.is_empty()
        && v.len() <= VERSION_LIMIT
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
    sane.then(|| v.to_string())
}

/// `true` when the readiness body is a JSON object with `"db": "connected"`.
pub(crate) fn readiness_body_says_connected(body: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map.get("db").and_then(Value::as_str) == Some("connected"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_joins_without_double_slash() {
        assert_eq!(
            readiness_url("http://127.0.0.1:4000"),
            "http://127.0.0.1:4000/health/readiness"
        );
        assert_eq!(
            readiness_url("http://127.0.0.1:4000/"),
            "http://127.0.0.1:4000/health/readiness"
        );
    }

    #[test]
    fn version_is_read_only_when_it_looks_like_one() {
        assert_eq!(
            litellm_version(
                br#"{"status":"healthy","db":"connected","litellm_version":"1.83.14"}"#
            ),
            Some("1.83.14".into())
        );
        assert_eq!(
            litellm_version(br#"{"litellm_version":"1.110.2-rc.1+build5"}"#),
            Some("1.110.2-rc.1+build5".into())
        );
        for bad in [
            &br#"{"litellm_version":""}"#[..],
            br#"{"litellm_version":"v1.2"}"#,
            br#"{"litellm_version":"1.2 sk-secret"}"#,
            br#"{"litellm_version":"1.2\n"}"#,
            br#"{"litellm_version":1.2}"#,
            br#"{"db":"connected"}"#,
            b"not json",
        ] {
            assert_eq!(
                litellm_version(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!(r#"{{"litellm_version":"1{}"}}"#, "0".repeat(64));
        assert_eq!(litellm_version(long.as_bytes()), None);
    }

    #[test]
    fn body_classification() {
        assert!(readiness_body_says_connected(
            br#"{"status":"healthy","db":"connected","cache":null,"litellm_version":"1.83.14","success_callbacks":["sync_deployment_callback_on_success"],"use_aiohttp_transport":true,"log_level":"WARNING","is_detailed_debug":false}"#
        ));
        for bad in [
            &br#"{"status":"healthy","db":"disconnected","cache":null,"litellm_version":"1.83.14"}"#[..],
            br#"{"status":"healthy","db":"Not connected"}"#,
            br#"{"status":"healthy"}"#,
            br#"{"db":"Connected"}"#,
            br#"{"db":true}"#,
            br#"{"detail":"Service Unhealthy (Client is not connected to the query engine, you must call `connect()` before attempting to query data.)"}"#,
            b"\"I'm alive!\"",
            b"\xff\xfe",
            br#"{"db":"connec"#,
        ] {
            assert!(!readiness_body_says_connected(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
