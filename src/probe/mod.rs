//! Direct readiness probes: the Prisma query engine, LiteLLM's
//! `/health/readiness` and (optionally) PostgreSQL itself.
//!
//! The log method can only estimate when the engine came up (recovery is not
//! logged at LiteLLM's default level), so the sidecar asks the engine
//! directly, exactly the way prisma-client-py does. Each configured target
//! gets its own task that emits a [`ProbeOutcome`] per attempt; the timeline
//! turns the first success after a start into the exact start-up gap.
//!
//! Scheduling: a target that is failing (or has never answered) is probed on
//! the fast interval (250 ms by default) so the gap is measured to within one
//! fast interval; once it answers it drops to the slow interval (10 s).
//! Attempts start on a fixed cadence measured from the previous attempt's
//! start, so a slow attempt does not stretch the measurement error. While
//! the engine is up it is still *watched* every fast interval between slow
//! rounds (the same processes in `/proc`, each port accepting a connect; see
//! `EngineProber::still_there` in engine.rs): a killed engine starts the next
//! round at once, so an outage opens within one fast interval of the kill
//! and an engine respawned between two slow rounds is not missed.

pub mod discover;
pub mod engine;
pub mod postgres;
pub mod proxy;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use postgres::Secret;

use crate::time::Timestamp;

/// The probe vocabulary lives in the shared model; these paths stay for its users.
pub use crate::model::{FailureReason, Target};

impl From<crate::http_client::HttpError> for FailureReason {
    /// Connection-level failures are "refused" (nothing usable listens), a
    /// deadline is "timeout" while connecting and "response_timeout" after
    /// the peer accepted, and a broken or oversized answer is "bad_body".
    fn from(e: crate::http_client::HttpError) -> Self {
        use crate::http_client::HttpError as H;
        match e {
            H::InvalidUrl | H::Refused | H::Connect | H::Tls => FailureReason::Refused,
            H::ConnectTimeout => FailureReason::Timeout,
            H::Timeout => FailureReason::ResponseTimeout,
            H::Request | H::BodyTooLarge | H::Body => FailureReason::BadBody,
        }
    }
}

/// The result of one probe attempt.
#[derive(Clone, Debug)]
pub struct ProbeOutcome {
    /// What was probed.
    pub target: Target,
    /// Wall clock when the probe knew its answer: when it finished, or, for
    /// a readiness probe that reached a proxy that is not ready (a 503, a
    /// `"db"` other than `connected`, or no answer in time), when the proxy
    /// accepted the connection, since that is what such an outcome reports.
    pub at: Timestamp,
    /// How long the attempt took.
    pub duration: Duration,
    /// `Ok` when the target is ready.
    pub result: Result<(), FailureReason>,
    /// What the attempt learned besides up/down (engine counts, LiteLLM version).
    pub detail: ProbeDetail,
}

/// Facts an attempt learned beyond its result. Values are counts or a
/// version string checked against a strict pattern: never free text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProbeDetail {
    /// Nothing more (the database probe, or an attempt cut off by its deadline).
    #[default]
    None,
    /// One round over every engine process of the pod (one per Uvicorn worker).
    Engines(EngineRound),
    /// LiteLLM's `/health/readiness` answered; `litellm_version` when it had a sane one.
    Readiness {
        /// e.g. `1.83.14` (only `[0-9A-Za-z.+-]`, at most 64 bytes).
        version: Option<String>,
    },
}

/// The result of probing every engine of the pod in one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineRound {
    /// Engine processes found (1 for a fixed `engine_url`).
    pub discovered: u32,
    /// Of those, how many answered the raw `SELECT 1`.
    pub up: u32,
    /// Of those, how many answered with a Prisma database error (P1001, P1017, P2024, …):
    /// the engine runs, its database does not answer.
    pub db_errors: u32,
    /// Uvicorn workers seen without an engine process (not spawned yet, or
    /// killed and not yet respawned): the round is not up while any is.
    pub workers_without_engine: u32,
    /// Identity of the proxy process the engines belong to (see
    /// [`discover::EngineScan::proxy`]); a change means a new proxy process.
    pub proxy: Option<u64>,
    /// The LiteLLM version installed where the engines' parents run (see
    /// [`discover::installed_litellm_version`]), when it could be read: the
    /// version for proxies whose `/health/readiness` does not carry it.
    pub litellm_version: Option<String>,
}

/// The outcome of one [`Attempt`]: the result plus what it learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attempted {
    /// `Ok` when the target is ready.
    pub result: Result<(), FailureReason>,
    /// Extra facts (see [`ProbeDetail`]).
    pub detail: ProbeDetail,
    /// When the result was known, if before the attempt ended (see
    /// [`ProbeOutcome::at`]); `None` means at the end.
    pub known_at: Option<Instant>,
}

impl From<Result<(), FailureReason>> for Attempted {
    fn from(result: Result<(), FailureReason>) -> Self {
        Attempted {
            result,
            detail: ProbeDetail::None,
            known_at: None,
        }
    }
}

/// Where and how often to probe. Targets left unset are not probed.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Fixed engine URL (`http://127.0.0.1:<port>`); overrides discovery.
    pub engine_url: Option<String>,
    /// Find the engine in `proc_root` (sidecar with `shareProcessNamespace`).
    pub discover_engine: bool,
    /// Root of the process filesystem (`/proc`; a fixture tree in tests).
    pub proc_root: PathBuf,
    /// LiteLLM base URL, e.g. `http://127.0.0.1:4000`.
    pub proxy_url: Option<String>,
    /// PostgreSQL URL; only ever printed redacted.
    pub database_url: Option<Secret>,
    /// Interval while a target is failing or has never answered.
    pub fast_interval: Duration,
    /// Interval while a target is up.
    pub slow_interval: Duration,
    /// Deadline for one attempt (connect, request and response together).
    pub timeout: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            engine_url: None,
            discover_engine: false,
            proc_root: PathBuf::from("/proc"),
            proxy_url: None,
            database_url: None,
            fast_interval: Duration::from_millis(250),
            slow_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
        }
    }
}

/// A probe configuration that cannot work, reported at config time.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeConfigError {
    /// A database URL was given but the binary was built without `postgres`.
    #[error("database probe configured but this build has no PostgreSQL support (feature \"postgres\" is off)")]
    DatabaseProbeUnavailable,
    /// A URL is not an absolute `http://host[:port]` URL.
    #[error("{field} must be an absolute http:// URL, got {value:?}")]
    InvalidUrl {
        /// Which setting.
        field: &'static str,
        /// The offending value (engine and proxy URLs carry no secrets).
        value: String,
    },
    /// An interval or timeout of zero would spin.
    #[error("{field} must be greater than zero")]
    ZeroDuration {
        /// Which setting.
        field: &'static str,
    },
}

impl ProbeConfig {
    /// The targets that [`spawn_probes`] will run for this configuration.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        if self.engine_url.is_some() || self.discover_engine {
            targets.push(Target::Engine);
        }
        if self.proxy_url.is_some() {
            targets.push(Target::ProxyReadiness);
        }
        if self.database_url.is_some() && postgres::DATABASE_PROBE_AVAILABLE {
            targets.push(Target::Database);
        }
        targets
    }

    /// Checks the configuration so mistakes surface at start-up, not as a
    /// stream of "refused" outcomes.
    pub fn validate(&self) -> Result<(), ProbeConfigError> {
        for (field, value) in [
            ("engine_url", &self.engine_url),
            ("proxy_url", &self.proxy_url),
        ] {
            if let Some(url) = value {
                if !is_plain_http_url(url) {
                    return Err(ProbeConfigError::InvalidUrl {
                        field,
                        value: url.clone(),
                    });
                }
            }
        }
        for (field, d) in [
            ("fast_interval", self.fast_interval),
            ("slow_interval", self.slow_interval),
            ("timeout", self.timeout),
        ] {
            if d.is_zero() {
                return Err(ProbeConfigError::ZeroDuration { field });
            }
        }
        if self.database_url.is_some() && !postgres::DATABASE_PROBE_AVAILABLE {
            return Err(ProbeConfigError::DatabaseProbeUnavailable);
        }
        Ok(())
    }
}

fn is_plain_http_url(url: &str) -> bool {
    match url.parse::<hyper::Uri>() {
        Ok(uri) => uri.scheme_str() == Some("http") && uri.host().is_some(),
        Err(_) => false,
    }
}

/// Starts one task per configured target. Each sends a [`ProbeOutcome`] per
/// attempt to `out` and stops when `shutdown` becomes `true` (or its sender is
/// dropped, or `out` is closed). A database URL in a build without the
/// `postgres` feature is skipped with a warning ([`ProbeConfig::validate`]
/// reports it as an error up front). Must be called inside a Tokio runtime.
pub fn spawn_probes(
    cfg: ProbeConfig,
    out: mpsc::Sender<ProbeOutcome>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    let schedule = Schedule {
        fast: cfg.fast_interval.max(Duration::from_millis(1)),
        slow: cfg.slow_interval.max(Duration::from_millis(1)),
        timeout: cfg.timeout.max(Duration::from_millis(1)),
    };
    let client = crate::http_client::HttpClient::new();

    if cfg.engine_url.is_some() || cfg.discover_engine {
        let prober = engine::EngineProber::new(
            client.clone(),
            cfg.engine_url.clone(),
            cfg.discover_engine.then(|| cfg.proc_root.clone()),
        );
        handles.push(tokio::spawn(run_loop(
            Target::Engine,
            schedule,
            out.clone(),
            shutdown.clone(),
            prober,
        )));
    }

    if let Some(base) = cfg.proxy_url.clone() {
        let url = proxy::readiness_url(&base);
        let live = proxy::liveliness_url(&base);
        let client = client.clone();
        let attempt = FnAttempt(move |deadline| {
            let client = client.clone();
            let url = url.clone();
            let live = live.clone();
            async move {
                let r = proxy::probe_readiness(&client, &url, &live, deadline).await;
                Attempted {
                    result: r.result,
                    detail: ProbeDetail::Readiness { version: r.version },
                    known_at: r.accepted_at.filter(|_| r.result.is_err()),
                }
            }
        });
        handles.push(tokio::spawn(run_loop(
            Target::ProxyReadiness,
            schedule,
            out.clone(),
            shutdown.clone(),
            attempt,
        )));
    }

    if let Some(secret) = cfg.database_url.clone() {
        if postgres::DATABASE_PROBE_AVAILABLE {
            let target = postgres::DatabaseTarget::new(secret);
            let attempt = FnAttempt(move |deadline| {
                let target = target.clone();
                async move { Attempted::from(target.probe(deadline).await) }
            });
            handles.push(tokio::spawn(run_loop(
                Target::Database,
                schedule,
                out.clone(),
                shutdown.clone(),
                attempt,
            )));
        } else {
            tracing::warn!(
                database = %secret.redacted(),
                "database probe configured but this build lacks the \"postgres\" feature; not probing the database"
            );
        }
    }
    handles
}

/// How long past its deadline an attempt may take before the backstop cuts it
/// off: attempts end at the deadline themselves and report the details.
const BACKSTOP_GRACE: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug)]
struct Schedule {
    fast: Duration,
    slow: Duration,
    timeout: Duration,
}

/// One probe attempt against a deadline. Implemented by the engine prober
/// (which keeps discovery state between attempts) and by [`FnAttempt`].
pub(crate) trait Attempt: Send + 'static {
    /// Runs one attempt; must finish by `deadline` (callers also enforce it).
    fn attempt(&mut self, deadline: Instant) -> impl Future<Output = Attempted> + Send + '_;

    /// Whether [`Attempt::still_there`] is worth calling between attempts
    /// while the target is up. Without it a target that died is noticed only
    /// at the next attempt, one slow interval (10 s) later.
    fn watches(&self) -> bool {
        false
    }

    /// A cheap check, run every fast interval while the target is up, that
    /// what the last attempt found is still there (for the engine: the same
    /// processes in `/proc`, each port accepting). `false` starts the next
    /// full attempt at once, so a killed engine is an outage from within one
    /// fast interval of its death, and one respawned between two slow
    /// rounds is not missed. Must finish by `deadline`.
    fn still_there(&mut self, _deadline: Instant) -> impl Future<Output = bool> + Send + '_ {
        std::future::ready(true)
    }
}

/// A stateless attempt built from a closure.
pub(crate) struct FnAttempt<F>(pub(crate) F);

impl<F, Fut> Attempt for FnAttempt<F>
where
    F: FnMut(Instant) -> Fut + Send + 'static,
    Fut: Future<Output = Attempted> + Send + 'static,
{
    fn attempt(&mut self, deadline: Instant) -> impl Future<Output = Attempted> + Send + '_ {
        (self.0)(deadline)
    }
}

/// The per-target loop: attempt, report, wait (fast while failing, slow while
/// up, measured from the attempt's start), until shutdown.
async fn run_loop<A: Attempt>(
    target: Target,
    schedule: Schedule,
    out: mpsc::Sender<ProbeOutcome>,
    mut shutdown: watch::Receiver<bool>,
    mut prober: A,
) {
    let mut previous: Option<Result<(), FailureReason>> = None;
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let started = Instant::now();
        let deadline = started + schedule.timeout;
        // The outer timeout is a backstop: attempts honour the deadline
        // themselves (an engine round reports which engines timed out), but a
        // stuck one must still end as a timeout.
        let attempt = tokio::time::timeout_at(deadline + BACKSTOP_GRACE, prober.attempt(deadline));
        // A probe in flight must not delay shutdown.
        let attempted = tokio::select! {
            r = attempt => r.unwrap_or_else(|_| Attempted::from(Err(FailureReason::Timeout))),
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() { return; }
                continue;
            }
        };
        let duration = started.elapsed();
        let result = attempted.result;
        let now = Timestamp::now();
        let at = match attempted.known_at {
            Some(known) => now.plus_secs(-known.elapsed().as_secs_f64()),
            None => now,
        };
        let outcome = ProbeOutcome {
            target,
            at,
            duration,
            result,
            detail: attempted.detail,
        };
        log_transition(target, previous, result);
        previous = Some(result);
        if out.send(outcome).await.is_err() {
            return; // nobody listens any more
        }
        let wait = if result.is_ok() {
            schedule.slow
        } else {
            schedule.fast
        };
        let next = started + wait;
        if result.is_ok() && prober.watches() && schedule.fast < wait {
            if !watch_until(target, schedule, next, &mut shutdown, &mut prober).await {
                return;
            }
        } else if !sleep_or_shutdown(next, &mut shutdown).await {
            return;
        }
    }
}

/// Sleeps until `until`; `false` when shutdown came first.
async fn sleep_or_shutdown(until: Instant, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return true,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() { return false; }
            }
        }
    }
}

/// While a watching target is up: runs [`Attempt::still_there`] every fast
/// interval until `next` (the next full attempt), returning early when the
/// check fails so the next attempt starts at once. `false` on shutdown.
async fn watch_until<A: Attempt>(
    target: Target,
    schedule: Schedule,
    next: Instant,
    shutdown: &mut watch::Receiver<bool>,
    prober: &mut A,
) -> bool {
    let mut tick = Instant::now() + schedule.fast;
    while tick < next {
        if !sleep_or_shutdown(tick, shutdown).await {
            return false;
        }
        let deadline = tick + schedule.timeout;
        let check =
            tokio::time::timeout_at(deadline + BACKSTOP_GRACE, prober.still_there(deadline));
        let there = tokio::select! {
            r = check => r.unwrap_or(false),
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() { return false; }
                // Not a stop: recheck at the next tick.
                true
            }
        };
        if !there {
            tracing::debug!(
                target = target.as_str(),
                "probe target changed between attempts; probing now"
            );
            return true;
        }
        // A slow check must not make the checks run back to back.
        tick = (tick + schedule.fast).max(Instant::now() + schedule.fast / 2);
    }
    sleep_or_shutdown(next, shutdown).await
}

fn log_transition(
    target: Target,
    previous: Option<Result<(), FailureReason>>,
    now: Result<(), FailureReason>,
) {
    match (previous, now) {
        (Some(Ok(())), Ok(())) => {}
        (_, Ok(())) => tracing::info!(target = target.as_str(), "probe target is up"),
        (Some(Err(before)), Err(reason)) if before == reason => {
            tracing::debug!(
                target = target.as_str(),
                reason = reason.as_str(),
                "probe still failing"
            )
        }
        (_, Err(reason)) => {
            tracing::info!(
                target = target.as_str(),
                reason = reason.as_str(),
                "probe target is down"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_metric_contract() {
        let t: Vec<_> = Target::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(t, ["engine", "proxy_readiness", "database"]);
        let r: Vec<_> = FailureReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            r,
            [
                "refused",
                "timeout",
                "response_timeout",
                "http_status",
                "bad_body",
                "db_error"
            ]
        );
    }

    #[test]
    fn validate_rejects_bad_urls_and_zero_durations() {
        let ok = ProbeConfig {
            proxy_url: Some("http://127.0.0.1:4000".into()),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = ProbeConfig {
            engine_url: Some("127.0.0.1:4000".into()),
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ProbeConfigError::InvalidUrl {
                field: "engine_url",
                ..
            })
        ));
        let tls = ProbeConfig {
            proxy_url: Some("https://x:1".into()),
            ..Default::default()
        };
        assert!(tls.validate().is_err());
        let zero = ProbeConfig {
            fast_interval: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            zero.validate(),
            Err(ProbeConfigError::ZeroDuration {
                field: "fast_interval"
            })
        );
    }

    #[test]
    fn targets_follow_the_configuration() {
        assert!(ProbeConfig::default().targets().is_empty());
        let cfg = ProbeConfig {
            discover_engine: true,
            proxy_url: Some("http://127.0.0.1:4000".into()),
            database_url: Some(Secret::new("postgresql://u:pw@db:5432/litellm")),
            ..Default::default()
        };
        let mut expected = vec![Target::Engine, Target::ProxyReadiness];
        if postgres::DATABASE_PROBE_AVAILABLE {
            expected.push(Target::Database);
        }
        assert_eq!(cfg.targets(), expected);
        assert!(!format!("{cfg:?}").contains("pw@"));
    }

    #[test]
    fn http_errors_map_to_reasons() {
        use crate::http_client::HttpError as H;
        assert_eq!(FailureReason::from(H::Refused), FailureReason::Refused);
        assert_eq!(FailureReason::from(H::Connect), FailureReason::Refused);
        assert_eq!(
            FailureReason::from(H::ConnectTimeout),
            FailureReason::Timeout
        );
        assert_eq!(
            FailureReason::from(H::Timeout),
            FailureReason::ResponseTimeout
        );
        let connected: Vec<_> = FailureReason::ALL
            .iter()
            .filter(|r| r.connected())
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            connected,
            ["response_timeout", "http_status", "bad_body", "db_error"]
        );
        assert_eq!(FailureReason::from(H::BodyTooLarge), FailureReason::BadBody);
        assert_eq!(FailureReason::from(H::Request), FailureReason::BadBody);
    }

    #[tokio::test]
    async fn loop_stops_on_shutdown_and_uses_fast_interval_while_failing() {
        let (tx, mut rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let schedule = Schedule {
            fast: Duration::from_millis(10),
            slow: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
        };
        let handle = tokio::spawn(run_loop(
            Target::Engine,
            schedule,
            tx,
            stop_rx,
            FnAttempt(|_deadline| async { Attempted::from(Err(FailureReason::Refused)) }),
        ));
        // Several failing attempts arrive quickly (fast interval).
        for _ in 0..3 {
            let o = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(o.result, Err(FailureReason::Refused));
            assert_eq!(o.target, Target::Engine);
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn loop_slows_down_once_up_and_shutdown_interrupts_the_wait() {
        let (tx, mut rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let schedule = Schedule {
            fast: Duration::from_millis(10),
            slow: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
        };
        let handle = tokio::spawn(run_loop(
            Target::Database,
            schedule,
            tx,
            stop_rx,
            FnAttempt(|_d| async { Attempted::from(Ok(())) }),
        ));
        let o = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o.result, Ok(()));
        // Up: next attempt is an hour away, so nothing arrives soon.
        assert!(tokio::time::timeout(Duration::from_millis(100), rx.recv())
            .await
            .is_err());
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }

    /// Up, and watched between attempts through a flag.
    struct Watched {
        there: std::sync::Arc<std::sync::atomic::AtomicBool>,
        checks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Attempt for Watched {
        fn attempt(&mut self, _deadline: Instant) -> impl Future<Output = Attempted> + Send + '_ {
            std::future::ready(Attempted::from(Ok(())))
        }
        fn watches(&self) -> bool {
            true
        }
        fn still_there(&mut self, _deadline: Instant) -> impl Future<Output = bool> + Send + '_ {
            use std::sync::atomic::Ordering;
            self.checks.fetch_add(1, Ordering::SeqCst);
            std::future::ready(self.there.load(Ordering::SeqCst))
        }
    }

    #[tokio::test]
    async fn a_watched_target_that_vanishes_is_attempted_again_at_once() {
        use std::sync::atomic::Ordering;
        let (tx, mut rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let schedule = Schedule {
            fast: Duration::from_millis(10),
            slow: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
        };
        let there = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let checks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handle = tokio::spawn(run_loop(
            Target::Engine,
            schedule,
            tx,
            stop_rx,
            Watched {
                there: there.clone(),
                checks: checks.clone(),
            },
        ));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.result, Ok(()));
        // Up and still there: checked every fast interval, no new attempt.
        let end = Instant::now() + Duration::from_secs(5);
        while checks.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < end, "not watched between attempts");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(rx.try_recv().is_err(), "attempted again while still there");
        // Gone: the next attempt comes at once, not an hour later.
        there.store(false, Ordering::SeqCst);
        let again = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no attempt after the target vanished")
            .unwrap();
        assert!(again.at.seconds_since(first.at) < 5.0, "{again:?}");
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_interrupts_an_attempt_in_flight() {
        let (tx, _rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let schedule = Schedule {
            fast: Duration::from_millis(10),
            slow: Duration::from_secs(10),
            timeout: Duration::from_secs(3600),
        };
        let handle = tokio::spawn(run_loop(
            Target::Engine,
            schedule,
            tx,
            stop_rx,
            FnAttempt(|_d| async { std::future::pending::<Attempted>().await }),
        ));
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }
}
