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
//! not accepted by the deadline → `timeout`; accepted but no answer by the
//! deadline → `response_timeout`; non-2xx → `http_status`; an answer
//! carrying a Prisma *database* error (`P1001` can't reach the database,
//! `P1017` server closed the connection, `P2024` pool timeout, …) →
//! `db_error`: the engine runs, its database does not answer; anything else
//! but the expected JSON → `bad_body`.
//!
//! A pod runs one engine per Uvicorn worker (`--num_workers`), each on its
//! own random port, and LiteLLM kills and respawns them on new ports. With
//! discovery, every attempt is one *round*: find every engine process now,
//! probe them all at once, and report one aggregated result (up only when
//! every engine answered) with the counts ([`EngineRound`]).

use std::path::PathBuf;

use hyper::body::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use super::discover::{self, EngineProcess};
use super::{Attempt, Attempted, EngineRound, FailureReason, ProbeDetail};
use crate::http_client::HttpClient;

/// The raw `SELECT 1` that prisma-client-py sends for `query_raw("SELECT 1")`
/// (`operation_name` "mutation", `queryRaw` with JSON-encoded parameters).
pub(crate) const RAW_QUERY_BODY: &str = r#"{"variables": {}, "operation_name": "mutation", "query": "mutation {\n  result: queryRaw\n  (\n    query: \"SELECT 1\"\n    parameters: \"[]\"\n  )\n}"}"#;

/// One engine probe against `base_url` (`http://127.0.0.1:<port>`): `GET
/// /status`, then the raw `SELECT 1` through `POST /`.
pub(crate) async fn probe_engine(
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
        // An engine may send its error object with a 5xx: a database error is still one.
        if carries_database_error(&query.body) {
            return Err(FailureReason::DbError);
        }
        return Err(FailureReason::HttpStatus);
    }
    classify_query_body(&query.body)
}

/// Prisma error codes that mean the *database* failed behind a running
/// engine (prisma.io/docs/orm/reference/error-reference): P1000 authentication,
/// P1001 can't reach the server, P1002 timed out, P1003 no such database,
/// P1008 operation timed out, P1010 access denied, P1011 TLS, P1017 server
/// closed the connection, P2024 timed out fetching a pool connection, P2037
/// too many database connections.
pub(crate) const DATABASE_ERROR_CODES: [&str; 10] = [
    "P1000", "P1001", "P1002", "P1003", "P1008", "P1010", "P1011", "P1017", "P2024", "P2037",
];

/// The raw-query answer classified: `Ok` for a result, `DbError` for a
/// Prisma database error, `BadBody` for anything else.
pub(crate) fn classify_query_body(body: &[u8]) -> Result<(), FailureReason> {
    if query_body_is_ok(body) {
        Ok(())
    } else if carries_database_error(body) {
        Err(FailureReason::DbError)
    } else {
        Err(FailureReason::BadBody)
    }
}

/// `true` when an engine answer's `errors` hold a Prisma database error:
/// a `user_facing_error.error_code` from [`DATABASE_ERROR_CODES`] (or a bare
/// `error_code`/`code` member with one). The message text is never used.
pub(crate) fn carries_database_error(body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let Some(Value::Array(errors)) = map.get("errors") else {
        return false;
    };
    let is_db_code = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|c| DATABASE_ERROR_CODES.contains(&c))
    };
    errors.iter().any(|e| {
        is_db_code(e.get("user_facing_error").and_then(|u| u.get("error_code")))
            || is_db_code(e.get("error_code"))
            || is_db_code(e.get("code"))
    })
}

/// `true` for the engine's `/status` answer: a JSON object with
/// `"status": "ok"` (and no `Errors`, which prisma-client-py retries on).
pub(crate) fn status_body_is_ok(body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    map.get("status").and_then(Value::as_str) == Some("ok")
        && map.get("Errors").is_none_or(|e| !is_truthy(e))
}

/// `true` for a successful raw-query answer: a JSON object with a non-null
/// `data.result` and no (truthy) `errors`.
pub(crate) fn query_body_is_ok(body: &[u8]) -> bool {
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

/// The engine target: a fixed URL, or every engine process found in `/proc`,
/// re-found on every attempt (workers' engines appear one by one, and LiteLLM
/// kills and respawns them on new ports).
pub(crate) struct EngineProber {
    client: HttpClient,
    fixed_url: Option<String>,
    proc_root: Option<PathBuf>,
    last_reported: Vec<EngineProcess>,
    /// What the last round probed (engines found, workers without one), for
    /// [`EngineProber::still_there`] to compare a fresh scan with.
    last_round: Option<(Vec<EngineProcess>, u32)>,
    /// The LiteLLM version read for a set of engine parents (read again only
    /// when the parents change: a new worker or proxy process).
    version: Option<(Vec<u32>, Option<String>)>,
}

impl EngineProber {
    /// A prober for `fixed_url`, or, when that is `None`, for the engines found
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
            last_reported: Vec::new(),
            last_round: None,
            version: None,
        }
    }

    async fn discover(&mut self) -> discover::EngineScan {
        let Some(root) = self.proc_root.clone() else {
            return discover::EngineScan::default();
        };
        // Reading /proc is blocking file I/O; keep it off the runtime threads.
        let scan = tokio::task::spawn_blocking(move || discover::scan(&root))
            .await
            .unwrap_or_default();
        let found = &scan.engines;
        if *found != self.last_reported {
            let ports: Vec<u16> = found.iter().map(|p| p.port).collect();
            let pids: Vec<u32> = found.iter().map(|p| p.pid).collect();
            if found.is_empty() {
                tracing::info!("no Prisma query engine process (yet)");
            } else {
                tracing::info!(
                    engines = found.len(),
                    ?pids,
                    ?ports,
                    "Prisma query engine processes changed"
                );
            }
            self.last_reported = found.clone();
        }
        scan
    }

    /// Between rounds while up: the same engine processes are in `/proc`
    /// (none died, was respawned, or went missing from a worker) and every
    /// engine port still accepts a TCP connection. A killed engine vanishes
    /// from `/proc` (or leaves a zombie with an empty cmdline) and its port
    /// refuses at once, so this notices it within one fast interval instead
    /// of at the next slow round. Only a connect, no request: cheap for the
    /// engine, and an engine that accepts but no longer answers is still
    /// the next round's to find.
    pub(crate) async fn still_there(&mut self, deadline: Instant) -> bool {
        let addrs: Vec<(String, u16)> = match &self.fixed_url {
            Some(url) => match host_port(url) {
                Some(a) => vec![a],
                None => return true,
            },
            None => {
                let scan = self.discover().await;
                let now = (scan.engines, scan.workers_without_engine);
                if self.last_round.as_ref() != Some(&now) {
                    return false;
                }
                now.0
                    .iter()
                    .map(|p| ("127.0.0.1".to_string(), p.port))
                    .collect()
            }
        };
        let mut set = tokio::task::JoinSet::new();
        for (host, port) in addrs {
            set.spawn(async move {
                matches!(
                    tokio::time::timeout_at(
                        deadline,
                        tokio::net::TcpStream::connect((host.as_str(), port))
                    )
                    .await,
                    Ok(Ok(_))
                )
            });
        }
        let mut all = true;
        while let Some(joined) = set.join_next().await {
            all &= joined.unwrap_or(false);
        }
        all
    }

    /// The LiteLLM version installed for these engine parents, read from
    /// `/proc` once per set of parents (it cannot change under a running
    /// process) and remembered, including "could not be read".
    async fn installed_version(&mut self, parents: &[u32]) -> Option<String> {
        if parents.is_empty() {
            return None;
        }
        if let Some((known, version)) = &self.version {
            if known.as_slice() == parents {
                return version.clone();
            }
        }
        let root = self.proc_root.clone()?;
        let pids = parents.to_vec();
        let version =
            tokio::task::spawn_blocking(move || discover::installed_litellm_version(&root, &pids))
                .await
                .unwrap_or_default();
        match &version {
            Some(v) => tracing::info!(version = %v, "LiteLLM version read from the proxy's installed packages"),
            None => tracing::debug!("LiteLLM version not readable from /proc (maps or root not accessible, or no litellm dist-info)"),
        }
        self.version = Some((parents.to_vec(), version.clone()));
        version
    }

    /// One round: every engine probed concurrently against `deadline`.
    pub(crate) async fn round(&mut self, deadline: Instant) -> Attempted {
        let (urls, missing, proxy, version) = match &self.fixed_url {
            Some(url) => (vec![url.clone()], 0, None, None),
            None => {
                let scan = self.discover().await;
                self.last_round = Some((scan.engines.clone(), scan.workers_without_engine));
                let urls: Vec<String> = scan
                    .engines
                    .iter()
                    .map(|p| format!("http://127.0.0.1:{}", p.port))
                    .collect();
                let version = self.installed_version(&scan.engine_parents).await;
                (urls, scan.workers_without_engine, scan.proxy, version)
            }
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, url) in urls.iter().cloned().enumerate() {
            let client = self.client.clone();
            set.spawn(async move { (i, probe_engine(&client, &url, deadline).await) });
        }
        let mut results = vec![Err(FailureReason::Timeout); urls.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, r)) = joined {
                results[i] = r;
            }
        }
        let mut attempted = aggregate(&results);
        if let ProbeDetail::Engines(round) = &mut attempted.detail {
            round.workers_without_engine = missing;
            round.proxy = proxy;
            round.litellm_version = version;
        }
        if missing > 0 && attempted.result.is_ok() {
            attempted.result = Err(FailureReason::Refused);
        }
        attempted
    }
}

/// One result for the round: up only when every engine answered; a failure
/// is `db_error` only when every failing engine answered a database error
/// (else the first other reason, in pid order: an engine that is not there
/// is the more basic problem). No engine at all is `refused`.
pub(crate) fn aggregate(results: &[Result<(), FailureReason>]) -> Attempted {
    let count = |f: &dyn Fn(&Result<(), FailureReason>) -> bool| {
        u32::try_from(results.iter().filter(|r| f(r)).count()).unwrap_or(u32::MAX)
    };
    let round = EngineRound {
        discovered: u32::try_from(results.len()).unwrap_or(u32::MAX),
        up: count(&|r| r.is_ok()),
        db_errors: count(&|r| *r == Err(FailureReason::DbError)),
        workers_without_engine: 0,
        proxy: None,
        litellm_version: None,
    };
    let result = if results.is_empty() {
        Err(FailureReason::Refused)
    } else if let Some(other) = results
        .iter()
        .find_map(|r| r.err().filter(|e| *e != FailureReason::DbError))
    {
        Err(other)
    } else if round.db_errors > 0 {
        Err(FailureReason::DbError)
    } else {
        Ok(())
    };
    Attempted {
        result,
        detail: ProbeDetail::Engines(round),
        known_at: None,
    }
}

/// `host` and `port` of an `http://host[:port]` URL (port 80 when absent).
fn host_port(url: &str) -> Option<(String, u16)> {
    let uri: hyper::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_matches(['[', ']']).to_string();
    Some((host, uri.port_u16().unwrap_or(80)))
}

impl Attempt for EngineProber {
    fn attempt(
        &mut self,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Attempted> + Send + '_ {
        self.round(deadline)
    }

    fn watches(&self) -> bool {
        true
    }

    fn still_there(
        &mut self,
        deadline: Instant,
    ) -> impl std::future::Future<Output = bool> + Send + '_ {
        EngineProber::still_there(self, deadline)
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
        let none_found = p.round(deadline).await;
        assert_eq!(none_found.result, Err(FailureReason::Refused));
        assert_eq!(
            none_found.detail,
            ProbeDetail::Engines(EngineRound::default())
        );
        let mut none = EngineProber::new(HttpClient::new(), None, None);
        assert_eq!(
            none.round(deadline).await.result,
            Err(FailureReason::Refused)
        );
    }

    /// What the engine answers when PostgreSQL is unreachable or went away.
    const P1001: &[u8] = br#"{"errors":[{"error":"Can't reach database server at `db:5432`","user_facing_error":{"is_panic":false,"message":"Can't reach database server at `db`:`5432`","meta":{"database_host":"db","database_port":5432},"error_code":"P1001"}}]}"#;
    const P1017: &[u8] = br#"{"errors":[{"error":"Error occurred during query execution:\nConnectorError(ConnectorError { user_facing_error: None, kind: ConnectionError(Closed) })","user_facing_error":{"is_panic":false,"message":"Server has closed the connection.","error_code":"P1017"}}]}"#;
    const P2024: &[u8] = br#"{"errors":[{"error":"Timed out fetching a new connection from the connection pool.","user_facing_error":{"is_panic":false,"message":"Timed out fetching a new connection from the connection pool.","meta":{"connection_limit":9,"timeout":10},"error_code":"P2024"}}]}"#;

    #[test]
    fn prisma_database_errors_are_db_error_not_bad_body() {
        for body in [P1001, P1017, P2024] {
            assert_eq!(classify_query_body(body), Err(FailureReason::DbError));
        }
        // Not a database error: a validation error, garbage, a stray code field.
        for body in [
            &br#"{"errors":[{"error":"x","user_facing_error":{"is_panic":false,"message":"Failed to validate the query","error_code":"P2009"}}]}"#[..],
            br#"{"errors":[{"error":"P1001"}]}"#,
            br#"{"errors":{"error_code":"P1001"}}"#,
            br#"{"data":{"resu"#,
            b"",
        ] {
            assert_eq!(classify_query_body(body), Err(FailureReason::BadBody), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(
            classify_query_body(
                br#"{"data":{"result":{"columns":["?column?"],"types":["int"],"rows":[[1]]}}}"#
            ),
            Ok(())
        );
    }

    #[test]
    fn round_aggregation() {
        use FailureReason::*;
        let agg = |r: &[Result<(), FailureReason>]| {
            let a = aggregate(r);
            let ProbeDetail::Engines(round) = a.detail else {
                panic!("no round")
            };
            (a.result, round.discovered, round.up, round.db_errors)
        };
        assert_eq!(agg(&[]), (Err(Refused), 0, 0, 0));
        assert_eq!(agg(&[Ok(()), Ok(())]), (Ok(()), 2, 2, 0));
        // One of two workers' engines not up yet: down.
        assert_eq!(agg(&[Ok(()), Err(Refused)]), (Err(Refused), 2, 1, 0));
        assert_eq!(agg(&[Err(DbError), Ok(())]), (Err(DbError), 2, 1, 1));
        // An engine that is not there outranks a database error of another.
        assert_eq!(agg(&[Err(DbError), Err(Timeout)]), (Err(Timeout), 2, 0, 1));
    }
}
