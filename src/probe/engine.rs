//! Probe of the Prisma query engine, done exactly as prisma-client-py talks
//! to it, so "up" here means "LiteLLM's own DB calls would work now".
//!
//! Wire format, from prisma-client-py (RobertCraigie/prisma-client-py):
//! - `src/prisma/engine/_query.py` (`spawn`): after starting the engine the
//!   client polls `GET /status` every 0.1 s; a JSON answer without `Errors`
//!   means connected. The engine answers `{"status":"ok"}`.
//! - `src/prisma/engine/_query.py` (`query`) and `src/prisma/engine/_http.py`
//!   (`request`, `_process_response_data`): queries go as `POST /` with the
//!   JSON body, `Accept: application/json`; a 2xx answer is parsed as JSON,
//!   must be an object, and a truthy `errors` member is raised as an error;
//!   non-2xx raises `EngineRequestError`.
//! - `src/prisma/generator/templates/client.py.jinja` (`query_raw`): the raw
//!   query's value is `resp['data']['result']`.
//!
//! Reasons: nothing listening (or no engine process found) → `refused`;
//! no answer by the deadline → `timeout`; non-2xx → `http_status`; anything
//! but the expected JSON (or a body carrying `errors`) → `bad_body`.

use std::path::PathBuf;

use hyper::body::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use super::discover::{self, EngineProcess};
use super::http::HttpClient;
use super::{Attempt, FailureReason};

/// The raw `SELECT 1` that prisma-client-py sends for `query_raw("SELECT 1")`
/// (`operation_name` "mutation", `queryRaw` with JSON-encoded parameters).
pub const RAW_QUERY_BODY: &str = r#"{"variables": {}, "operation_name": "mutation", "query": "mutation {\n  result: queryRaw\n  (\n    query: \"SELECT 1\"\n    parameters: \"[]\"\n  )\n}"}"#;

/// One engine probe against `base_url` (`http://127.0.0.1:<port>`): `GET
/// /status`, then the raw `SELECT 1` through `POST /`.
pub async fn probe_engine(
    client: &HttpClient,
    base_url: &str,
    deadline: Instant,
) -> Result<(), FailureReason> {
    let base = base_url.trim_end_matches('/');
    let status = client.get(&format!("{base}/status"), deadline).await?;
    if !status.status.is_success() {
        return Err(FailureReason::HttpStatus);
    }
    if !status_body_is_ok(&status.body) {
        return Err(FailureReason::BadBody);
    }
    let query = client
        .post_json(
            &format!("{base}/"),
            Bytes::from_static(RAW_QUERY_BODY.as_bytes()),
            deadline,
        )
        .await?;
    if !query.status.is_success() {
        return Err(FailureReason::HttpStatus);
    }
    if !query_body_is_ok(&query.body) {
        return Err(FailureReason::BadBody);
    }
    Ok(())
}

/// `true` for the engine's `/status` answer: a JSON object with
/// `"status": "ok"` (and no `Errors`, which prisma-client-py retries on).
pub fn status_body_is_ok(body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    map.get("status").and_then(Value::as_str) == Some("ok")
        && map.get("Errors").is_none_or(|e| !is_truthy(e))
}

/// `true` for a successful raw-query answer: a JSON object with a non-null
/// `data.result` and no (truthy) `errors`.
pub fn query_body_is_ok(body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    if map.get("errors").is_some_and(is_truthy) {
        return false;
    }
    map.get("data")
        .and_then(|d| d.get("result"))
        .is_some_and(|r| !r.is_null())
}

/// Python truthiness of a JSON value, as prisma-client-py's `if errors_data:`.
fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The engine target: a fixed URL, or one found in `/proc` and re-found after
/// every `refused` (LiteLLM 1.108 kills and restarts the engine on a new port).
pub(crate) struct EngineProber {
    client: HttpClient,
    fixed_url: Option<String>,
    proc_root: Option<PathBuf>,
    current: Option<EngineProcess>,
    last_reported: Option<EngineProcess>,
}

impl EngineProber {
    /// A prober for `fixed_url`, or, when that is `None`, for the engine found
    /// under `proc_root`. With neither, every attempt is `refused`.
    pub(crate) fn new(
        client: HttpClient,
        fixed_url: Option<String>,
        proc_root: Option<PathBuf>,
    ) -> Self {
        EngineProber {
            client,
            fixed_url,
            proc_root,
            current: None,
            last_reported: None,
        }
    }

    async fn discover(&mut self) -> Option<EngineProcess> {
        let root = self.proc_root.clone()?;
        // Reading /proc is blocking file I/O; keep it off the runtime threads.
        let found = tokio::task::spawn_blocking(move || discover::find_engine(&root))
            .await
            .ok()
            .flatten();
        if found != self.last_reported {
            match found {
                Some(p) => {
                    tracing::info!(pid = p.pid, port = p.port, "found the Prisma query engine")
                }
                None if self.last_reported.is_some() => {
                    tracing::info!("the Prisma query engine process is gone")
                }
                None => {}
            }
            self.last_reported = found;
        }
        found
    }

    async fn probe_once(&mut self, deadline: Instant) -> Result<(), FailureReason> {
        let url = match &self.fixed_url {
            Some(url) => url.clone(),
            None => {
                if self.current.is_none() {
                    self.current = self.discover().await;
                }
                match self.current {
                    Some(p) => format!("http://127.0.0.1:{}", p.port),
                    // No engine process (not started yet, or between restarts).
                    None => return Err(FailureReason::Refused),
                }
            }
        };
        let result = probe_engine(&self.client, &url, deadline).await;
        if result == Err(FailureReason::Refused) && self.fixed_url.is_none() {
            self.current = None; // re-discover on the next attempt
        }
        result
    }
}

impl Attempt for EngineProber {
    fn attempt(
        &mut self,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<(), FailureReason>> + Send + '_ {
        self.probe_once(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_query_body_is_the_prisma_client_py_request() {
        let v: Value = serde_json::from_str(RAW_QUERY_BODY).unwrap();
        assert_eq!(v["operation_name"], "mutation");
        assert_eq!(v["variables"], serde_json::json!({}));
        assert_eq!(
            v["query"],
            "mutation {\n  result: queryRaw\n  (\n    query: \"SELECT 1\"\n    parameters: \"[]\"\n  )\n}"
        );
    }

    #[test]
    fn status_body_classification() {
        assert!(status_body_is_ok(br#"{"status":"ok"}"#));
        assert!(status_body_is_ok(
            b"{ \"status\" : \"ok\" , \"extra\": 1 }\n"
        ));
        for bad in [
            &br#"{"status":"starting"}"#[..],
            br#"{"Errors":[{"error":"x"}],"status":"ok"}"#,
            br#"["ok"]"#,
            b"ok",
            b"",
            b"\xff\xfe\x00garbage",
            br#"{"status":"ok""#,
            b"<html><body>502 Bad Gateway</body></html>",
            b"\x1b[31m{\"status\":\"ok\"}\x1b[0m",
        ] {
            assert!(
                !status_body_is_ok(bad),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn query_body_classification() {
        // prisma-client-py >= 0.12 shape (columns/types/rows) and the older one.
        assert!(query_body_is_ok(
            br#"{"data":{"result":{"columns":["?column?"],"types":["int"],"rows":[[1]]}}}"#
        ));
        assert!(query_body_is_ok(
            br#"{"data":{"result":[{"?column?":{"prisma__type":"int","prisma__value":1}}]}}"#
        ));
        assert!(query_body_is_ok(br#"{"data":{"result":1},"errors":[]}"#));
        for bad in [
            // What the engine says when PostgreSQL went away under it.
            &br#"{"errors":[{"error":"Error occurred during query execution:\nConnectorError(ConnectorError { user_facing_error: None, kind: ConnectionError(Closed) })","user_facing_error":{"is_panic":false,"message":"Server has closed the connection.","error_code":"P1017"}}]}"#[..],
            br#"{"data":{"result":{"rows":[]}},"errors":[{"error":"x"}]}"#,
            br#"{"data":{}}"#,
            br#"{"data":{"result":null}}"#,
            br#"{"data":{"resu"#,
            br#"{"status":"ok"}"#,
            b"null",
            b"\xc3\x28 not json",
        ] {
            assert!(!query_body_is_ok(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn no_engine_anywhere_is_refused_without_network() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = EngineProber::new(HttpClient::new(), None, Some(dir.path().to_path_buf()));
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        assert_eq!(p.probe_once(deadline).await, Err(FailureReason::Refused));
        let mut none = EngineProber::new(HttpClient::new(), None, None);
        assert_eq!(none.probe_once(deadline).await, Err(FailureReason::Refused));
    }
}
