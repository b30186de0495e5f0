//! What a simulated LiteLLM pod logs, line by line, as the real releases do
//! (see `../shared/LITELLM.md` and the rule pack's audit files), and the
//! ground truth of what it logged: the numbers the agent must find.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::engine_standin::EngineStandin;
use crate::format::PodRef;
use crate::time::Timestamp;

/// The two LiteLLM behaviours a spend-log write failure has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// 1.83.x (the user's 1.83.14): ANSI colours everywhere; a failed spend
    /// batch is taken off the queue and **dropped** (never billed).
    V1_83,
    /// 1.108+ (1.110.2, the newest): plain text; the batch is **re-queued**
    /// and written once the engine is up (nothing lost).
    V1_110,
}

impl Family {
    /// The release the demo imitates.
    pub fn version(self) -> &'static str {
        match self {
            Family::V1_83 => "1.83.14",
            Family::V1_110 => "1.110.2",
        }
    }
}

/// How the agent watches the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watch {
    /// A sidecar probes the pod's query engine: the gap is exact.
    Sidecar,
    /// Only the node agent (DaemonSet) reads its logs: the gap is estimated
    /// from the end of the DB error burst.
    LogsOnly,
}

/// One pod of the rolling deploy.
#[derive(Clone, Debug)]
pub(crate) struct PodPlan {
    pub pod: PodRef,
    pub family: Family,
    pub watch: Watch,
    /// How long after the proxy starts its query engine binds its port.
    pub engine_delay: Duration,
    /// Seed of this pod's spend-batch sizes.
    pub rows_seed: u64,
}

/// What the demo wrote for one pod: the counts the agent must export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Truth {
    pub proxy_starts: u64,
    pub spend_batches_dropped: u64,
    pub spend_rows_lost: u64,
    pub spend_rows_requeued: u64,
    pub budget_cache_misses: u64,
    pub requests_during_gap: u64,
    pub deployment_load_failures: u64,
    pub credential_load_failures: u64,
    pub engine_distro_fallbacks: u64,
    /// Failed DB calls by the `operation` label the agent gives them.
    pub db_connect_errors: BTreeMap<&'static str, u64>,
}

impl Truth {
    fn db_error(&mut self, operation: &'static str) {
        *self.db_connect_errors.entry(operation).or_default() += 1;
    }
}

/// A played pod: its ground truth, with the moments that define the gap.
#[derive(Clone, Debug)]
pub(crate) struct Played {
    /// Record time of `Application startup complete.`: the proxy takes traffic.
    pub listening_at: Timestamp,
    /// When the engine stand-in bound its port (its own clock).
    pub bound_at: Timestamp,
    /// Record time of the last DB failure the pod logged.
    pub last_failure_at: Option<Timestamp>,
    /// How long the last beat took (from the check before it to the check
    /// that saw the engine bound): the bind came at most this long after the
    /// last failure, so the log estimate is within it.
    pub last_beat: Duration,
    pub truth: Truth,
}

impl Played {
    /// The true gap: proxy taking traffic → engine listening.
    pub(crate) fn true_gap(&self) -> f64 {
        self.bound_at.seconds_since(self.listening_at)
    }

    /// Where the log method must put the gap's end: the last DB failure
    /// after the proxy took traffic (none: no gap, 0).
    pub(crate) fn log_gap(&self) -> f64 {
        self.last_failure_at
            .filter(|l| *l > self.listening_at)
            .map_or(0.0, |l| l.seconds_since(self.listening_at))
    }
}

/// Tiny deterministic PRNG (xorshift64*): the demo needs repeatable delays, not crypto.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(if span == 0 { 0 } else { self.next() % span })
    }
}

/// Appends CRI records to one container log, stamped with the current time.
pub(crate) struct CriWriter {
    file: std::fs::File,
}

impl CriWriter {
    pub fn create(path: &Path) -> Result<CriWriter> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(CriWriter { file })
    }

    /// Writes each line of `text` as one `F` record (what containerd does for
    /// a multi-line print) and returns the record time, exactly as written
    /// (microseconds).
    pub fn write(&mut self, stream: &str, text: &str) -> Result<Timestamp> {
        let now = Timestamp::now();
        let ts = Timestamp(now.0 - now.0.rem_euclid(1_000));
        let stamp = ts.to_string();
        let mut buf = String::new();
        for line in text.lines() {
            buf.push_str(&format!("{stamp} {stream} F {line}\n"));
        }
        self.file
            .write_all(buf.as_bytes())
            .context("cannot write the simulated log")?;
        Ok(ts)
    }
}

fn clock() -> String {
    let t = Timestamp::now().to_string();
    t[11..19].to_string()
}

/// A LiteLLM logger line: 1.83 colours it (the escape sits between the level
/// and the colon), 1.108+ does not when stdout is not a terminal.
fn litellm(family: Family, level: &str, file: &str, msg: &str) -> String {
    match family {
        Family::V1_83 => format!(
            "\x1b[92m{} - LiteLLM Proxy:{level}\x1b[0m: {file} - {msg}",
            clock()
        ),
        Family::V1_110 => format!("{} - LiteLLM Proxy:{level}: {file} - {msg}", clock()),
    }
}

const SPEND_TRACEBACK: &str = r#"Traceback (most recent call last):
  File "/usr/lib/python3.13/site-packages/httpx/_transports/default.py", line 101, in map_httpcore_exceptions
    yield
  File "/usr/lib/python3.13/site-packages/httpcore/_async/connection.py", line 124, in _connect
    stream = await self._network_backend.connect_tcp(**kwargs)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
httpcore.ConnectError: All connection attempts failed

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/usr/lib/python3.13/site-packages/litellm/proxy/utils.py", line 3880, in update_spend_logs
    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)
  File "/usr/lib/python3.13/site-packages/prisma/engine/http.py", line 97, in request
    response = await self.session.request(method, url, **kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
httpx.ConnectError: All connection attempts failed"#;

/// How long past its planned delay the demo waits for an engine stand-in
/// that could not bind its port (someone took it) before giving up.
const BIND_GRACE: Duration = Duration::from_secs(10);

/// One pod's log while it plays.
struct Pod<'a> {
    w: &'a mut CriWriter,
    family: Family,
    truth: Truth,
    last_failure_at: Option<Timestamp>,
}

impl Pod<'_> {
    fn out(&mut self, text: &str) -> Result<Timestamp> {
        self.w.write("stdout", text)
    }

    fn err(&mut self, text: &str) -> Result<Timestamp> {
        self.w.write("stderr", text)
    }

    /// A LiteLLM line reporting a failed DB call.
    fn failure(&mut self, level: &str, file: &str, msg: &str) -> Result<()> {
        let line = litellm(self.family, level, file, msg);
        let ts = self.err(&line)?;
        self.last_failure_at = Some(ts);
        Ok(())
    }

    /// The proxy process starting, up to the moment it takes traffic.
    fn boot(&mut self) -> Result<Timestamp> {
        let f = self.family;
        match f {
            Family::V1_83 => {
                // The wolfi-based image: the Prisma CLI falls back (twice).
                for _ in 0..2 {
                    self.err("prisma:warn Prisma doesn't know which engines to download for the Linux distro \"wolfi\". Falling back to Prisma engines built \"debian\".")?;
                    self.truth.engine_distro_fallbacks += 1;
                }
                self.err("INFO:     Started server process [1]\nINFO:     Waiting for application startup.")?;
                self.out("\x1b[32mLiteLLM: Proxy initialized with Config, Set models:\x1b[0m\n\x1b[32m    gpt-4o\x1b[0m\n\x1b[32m    claude-sonnet\x1b[0m")?;
                // A look-alike: the model cost map fetch is not the DB.
                self.err(&format!("\x1b[92m{} - LiteLLM:WARNING\x1b[0m: get_model_cost_map.py:271 - LiteLLM: model cost map fetch attempt 1/3 failed (ConnectError fetching https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json)", clock()))?;
                let at = self.err("INFO:     Application startup complete.\nINFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)")?;
                // 1.83 loads deployments and credentials after it listens.
                self.failure("ERROR", "proxy_server.py:3155", "litellm.proxy.proxy_server.py::ProxyConfig:add_deployment - All connection attempts failed")?;
                self.truth.deployment_load_failures += 1;
                self.truth.db_error("add_deployment");
                self.failure("ERROR", "proxy_server.py:3380", "litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - All connection attempts failed")?;
                self.truth.credential_load_failures += 1;
                self.truth.db_error("get_credentials");
                Ok(at)
            }
            Family::V1_110 => {
                self.err("INFO:     Started server process [1]\nINFO:     Waiting for application startup.")?;
                self.out("LiteLLM: Proxy initialized with Config, Set models:\n    gpt-4o\n    claude-sonnet")?;
                // 1.108+ does DB work in its lifespan, before it takes traffic
                // (allow_requests_on_db_unavailable: true keeps it booting).
                self.failure("WARNING", "utils.py:7034", "LiteLLM Prisma Client Exception connect(): Could not connect to the query engine")?;
                self.truth.db_error("other");
                self.failure("ERROR", "proxy_server.py:8913", "litellm.proxy_server.py::add_deployment() - Error getting new models from DB - All connection attempts failed")?;
                self.truth.deployment_load_failures += 1;
                self.truth.db_error("add_deployment");
                self.failure("ERROR", "proxy_server.py:9421", "litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - All connection attempts failed")?;
                self.truth.credential_load_failures += 1;
                self.truth.db_error("get_credentials");
                self.err("INFO:     Application startup complete.\nINFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)")
            }
        }
    }

    /// One attempt of the spend-log writer (`attempt` 1..=4; LiteLLM makes
    /// four against `n_retry_times = 3`). The fourth ends the batch: 1.83
    /// drops it, 1.108+ re-queues it.
    fn spend_write(&mut self, attempt: u64, rows: u64) -> Result<()> {
        let wording = match self.family {
            Family::V1_83 => "DB connection error",
            Family::V1_110 => "transient DB error",
        };
        self.failure("WARNING", "utils.py:3866", &format!("Spend tracking - {wording} writing spend logs, retry {attempt}/3. logs_count={rows}, error=All connection attempts failed"))?;
        self.truth.db_error("spend_logs_queue");
        if attempt < 4 {
            return Ok(());
        }
        let header = litellm(
            self.family,
            "ERROR",
            "utils.py:3905",
            "Error in spend logs queue monitor: All connection attempts failed",
        );
        let ts = self.err(&format!("{header}\n{SPEND_TRACEBACK}"))?;
        self.last_failure_at = Some(ts);
        self.truth.db_error("spend_logs_queue");
        match self.family {
            Family::V1_83 => {
                self.truth.spend_batches_dropped += 1;
                self.truth.spend_rows_lost += rows;
            }
            Family::V1_110 => self.truth.spend_rows_requeued += rows,
        }
        Ok(())
    }

    /// One beat of the gap: a readiness probe, every other beat a chat
    /// completion served (written before that beat's failures, so it lies
    /// inside the gap by record time) with its failed budget lookup, a
    /// background read every third beat, and the spend writer's next attempt
    /// (every beat: the log method then ends the gap within one beat of the
    /// engine's bind).
    fn beat(&mut self, i: u64, serial: u64, rows: &mut Rng, batch_rows: &mut u64) -> Result<()> {
        let client = format!("10.0.{}.{}:{}", serial, 10 + i % 200, 40000 + i % 20000);
        self.out(&format!(
            "INFO:     {client} - \"GET /health/readiness HTTP/1.1\" 200 OK"
        ))?;
        if i.is_multiple_of(2) {
            self.out(&format!(
                "INFO:     {client} - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"
            ))?;
            self.truth.requests_during_gap += 1;
            let msg = "Budget lookup failed for user; cache will not be populated. Each request will hit the database.";
            match self.family {
                Family::V1_83 => self.failure(
                    "WARNING",
                    "auth_checks.py:511",
                    &format!("{msg}\nError: All connection attempts failed."),
                )?,
                Family::V1_110 => self.failure(
                    "ERROR",
                    "auth_checks.py:536",
                    &format!("{msg} Error: All connection attempts failed."),
                )?,
            }
            self.truth.budget_cache_misses += 1;
            self.truth.db_error("budget_lookup");
        }
        if i.is_multiple_of(3) {
            match self.family {
                Family::V1_83 => {
                    self.failure("ERROR", "utils.py:2721", "LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed")?;
                    self.truth.db_error("get_generic_data");
                }
                Family::V1_110 => {
                    self.failure("WARNING", "utils.py:8178", "LiteLLM Prisma Client Exception health_check(): All connection attempts failed")?;
                    self.truth.db_error("other");
                }
            }
        }
        let attempt = i % 4 + 1;
        if attempt == 1 {
            *batch_rows = 5 + rows.next() % 56;
        }
        self.spend_write(attempt, *batch_rows)
    }
}

/// Writes one pod's start-up until its engine listens; returns what it wrote.
pub(crate) async fn play(
    w: &mut CriWriter,
    plan: &PodPlan,
    engine: &EngineStandin,
    tick: Duration,
    serial: u64,
) -> Result<Played> {
    let mut pod = Pod {
        w,
        family: plan.family,
        truth: Truth {
            proxy_starts: 1,
            ..Truth::default()
        },
        last_failure_at: None,
    };
    let listening_at = pod.boot()?;
    let give_up = tokio::time::Instant::now() + plan.engine_delay + BIND_GRACE;
    let mut rows = Rng(plan.rows_seed.max(1));
    let mut batch_rows = 0;
    let mut i: u64 = 0;
    let mut checked = std::time::Instant::now();
    let (bound_at, last_beat) = loop {
        let now = std::time::Instant::now();
        if let Some(b) = engine.bound_at() {
            break (b, now - checked);
        }
        checked = now;
        if tokio::time::Instant::now() > give_up {
            bail!(
                "the engine stand-in of {} did not bind its port {} (taken by another process?)",
                plan.pod.pod,
                engine.port()
            );
        }
        pod.beat(i, serial, &mut rows, &mut batch_rows)?;
        i += 1;
        tokio::time::sleep(tick).await;
    };
    Ok(Played {
        listening_at,
        bound_at,
        last_failure_at: pod.last_failure_at,
        last_beat,
        truth: pod.truth,
    })
}

/// Normal traffic once the engine answers: it must not count as at risk.
pub(crate) fn after_gap(w: &mut CriWriter, serial: u64) -> Result<()> {
    for k in 0..3 {
        w.write(
            "stdout",
            &format!(
                "INFO:     10.0.{serial}.{k}:5100{k} - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"
            ),
        )?;
    }
    Ok(())
}

/// The pod is stopped (the demo ends): Uvicorn's shutdown lines.
pub(crate) fn shut_down(w: &mut CriWriter) -> Result<()> {
    w.write(
        "stderr",
        "INFO:     Shutting down\nINFO:     Waiting for application shutdown.\nINFO:     Application shutdown complete.\nINFO:     Finished server process [1]",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_log(family: Family, f: impl FnOnce(&mut Pod<'_>)) -> (String, Truth, Option<Timestamp>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = CriWriter::create(&path).unwrap();
        let mut pod = Pod {
            w: &mut w,
            family,
            truth: Truth::default(),
            last_failure_at: None,
        };
        f(&mut pod);
        let (truth, last) = (pod.truth, pod.last_failure_at);
        (std::fs::read_to_string(&path).unwrap(), truth, last)
    }

    #[test]
    fn a_failed_spend_batch_is_dropped_by_1_83_and_requeued_by_1_110() {
        for family in [Family::V1_83, Family::V1_110] {
            let (text, truth, _) = pod_log(family, |p| {
                for attempt in 1..=4 {
                    p.spend_write(attempt, 17).unwrap();
                }
            });
            let wording = match family {
                Family::V1_83 => "DB connection error",
                Family::V1_110 => "transient DB error",
            };
            assert!(
                text.contains(&format!(
                    "Spend tracking - {wording} writing spend logs, retry 4/3. logs_count=17"
                )),
                "{text}"
            );
            assert!(text.contains("Error in spend logs queue monitor"), "{text}");
            assert_eq!(truth.db_connect_errors["spend_logs_queue"], 5);
            match family {
                Family::V1_83 => {
                    assert_eq!(
                        (truth.spend_batches_dropped, truth.spend_rows_lost),
                        (1, 17)
                    );
                    assert_eq!(truth.spend_rows_requeued, 0);
                    assert!(text.contains("\x1b[92m"), "1.83 colours its lines");
                }
                Family::V1_110 => {
                    assert_eq!((truth.spend_batches_dropped, truth.spend_rows_lost), (0, 0));
                    assert_eq!(truth.spend_rows_requeued, 17);
                    assert!(!text.contains('\x1b'), "1.110 does not colour off a TTY");
                }
            }
            // Every record is a CRI line with a µs timestamp.
            for line in text.lines() {
                let (ts, rest) = line.split_once(' ').unwrap();
                assert!(Timestamp::parse_rfc3339(ts.as_bytes()).is_some(), "{line}");
                assert!(
                    rest.starts_with("stderr F ") || rest.starts_with("stdout F "),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn a_beat_logs_its_request_before_its_failures() {
        let (text, truth, last) = pod_log(Family::V1_83, |p| {
            let mut rows = Rng(7);
            let mut batch = 0;
            p.beat(0, 1, &mut rows, &mut batch).unwrap();
        });
        let request = text.find("POST /v1/chat/completions").unwrap();
        let budget = text.find("Budget lookup failed").unwrap();
        assert!(request < budget, "{text}");
        assert_eq!(truth.requests_during_gap, 1);
        assert_eq!(truth.budget_cache_misses, 1);
        // The request's record time is not after the beat's last failure.
        let req_line = text.lines().find(|l| l.contains("POST /v1")).unwrap();
        let req_ts =
            Timestamp::parse_rfc3339(req_line.split(' ').next().unwrap().as_bytes()).unwrap();
        assert!(last.unwrap() >= req_ts);
        assert_eq!(
            truth.db_connect_errors.values().sum::<u64>(),
            3,
            "budget lookup, get_generic_data, spend retry 1/3: {truth:?}"
        );
    }
}
