//! The readiness gate (`GET /gate`) and the per-pod engine state behind it.
//!
//! Input: every [`ProbeOutcome`] of the probed pods (the engine round, LiteLLM's
//! readiness, the database) and the pod's start count from the timeline.
//! Output: the `/gate` answer, the engine view in `/api/v1/pods`, and the
//! `engines_discovered`, `engines_up` and `litellm_build_info` series.
//!
//! **Why a latch by default.** A readiness probe that follows the database
//! turns a database blip into a full outage: every replica goes NotReady at
//! once and Kubernetes empties the Service, so requests that LiteLLM could
//! have served without the database (`allow_requests_on_db_unavailable`,
//! cached keys) fail too (LiteLLM PR #34935). The race this tool watches is
//! a *start-up* race, so the default mode, [`GateMode::Startup`], answers 503
//! from the proxy's start until every engine of the pod (one per Uvicorn
//! worker) has answered a raw `SELECT 1` — and the database probe, when one is
//! configured, and LiteLLM's port accepts connections, when it is probed —
//! and then 200 for the life of that proxy process, whatever
//! happens later. A new proxy process re-arms it: the engines found under a
//! different process tree (the container's first process changed: a container
//! restart), the proxy port refusing connections after it had accepted them
//! (LiteLLM's readiness probe), or a further start in the pod's log.
//!
//! [`GateMode::Follow`] follows the current state instead, with hysteresis:
//! it closes only after the required probes have failed for a span of at least
//! `gate_down_after` (30 s by default) with no success in between. It carries
//! the cascade risk above and is opt-in.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::format::PodRef;
use crate::probe::{EngineRound, FailureReason, ProbeDetail, ProbeOutcome, Target};
use crate::time::Timestamp;

/// How `/gate` decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// 503 until every engine answered after the proxy started, then 200 for
    /// the life of that proxy process (a database outage never empties the Service).
    #[default]
    Startup,
    /// The current state with hysteresis: 503 only after failures spanning
    /// `gate_down_after`. A database outage takes every replica out together.
    Follow,
}

impl GateMode {
    /// The value in the `/gate` body and the config file.
    pub const fn as_str(self) -> &'static str {
        match self {
            GateMode::Startup => "startup",
            GateMode::Follow => "follow",
        }
    }
}

/// The default hysteresis of [`GateMode::Follow`].
pub(crate) const DEFAULT_DOWN_AFTER: Duration = Duration::from_secs(30);

/// What `/gate` requires before it answers 200, and how it decides.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// The pod the gate speaks for (sidecar).
    pub pod: Option<PodRef>,
    /// Targets that must be up: the engine, plus the database when configured.
    pub required: Vec<Target>,
    /// Latch or follow.
    pub mode: GateMode,
    /// Follow mode: failures must span this long before the gate closes.
    pub down_after: Duration,
    /// LiteLLM's `/health/readiness` is probed: the gate also waits for the
    /// proxy port to accept connections (the engines come up during LiteLLM's
    /// start-up, before its port listens; Ready before that would send
    /// requests to a closed port).
    pub proxy_probed: bool,
    /// Startup mode: the open latch is kept here (proxy process identity and
    /// time), so a restart of the sidecar container alone, while the same
    /// proxy process runs, does not close the gate: if a sidecar bug made
    /// every sidecar restart during a database outage, re-arming would take
    /// every replica out of the Service, which is what the latch prevents.
    pub state_file: Option<std::path::PathBuf>,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            pod: None,
            required: Vec::new(),
            mode: GateMode::Startup,
            down_after: DEFAULT_DOWN_AFTER,
            proxy_probed: false,
            state_file: None,
        }
    }
}

/// An open latch as kept in [`GateConfig::state_file`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct SavedLatch {
    /// [`EngineRound::proxy`] of the process tree the latch opened for.
    proxy: u64,
    /// When it opened (unix seconds).
    open_since: f64,
}

fn load_latch(path: &std::path::Path) -> Option<SavedLatch> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable gate state file");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the gate state file");
            None
        }
    }
}

fn save_latch(path: &std::path::Path, latch: SavedLatch) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(&latch).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// The engine side of a pod in one word, for triage. A fixed vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineState {
    /// The engine is not probed, or no round has finished yet.
    Unknown,
    /// No engine process found, or nothing listens on its port: the engine
    /// has not started (start-up gap) or was killed and not yet respawned.
    NoEngine,
    /// Engines listen but at least one does not answer properly (timeout,
    /// HTTP error, unexpected body): wedged or overloaded.
    EngineNotAnswering,
    /// The engines answer, but with Prisma database errors (P1001, P1017,
    /// P2024, …), or the database probe fails: the database path is down,
    /// not the engine.
    EngineUpDatabaseUnreachable,
    /// Every engine answered the raw `SELECT 1`.
    Ready,
}

impl EngineState {
    fn of(engine: Option<Result<(), FailureReason>>, database: Option<bool>) -> EngineState {
        match engine {
            None => EngineState::Unknown,
            Some(Ok(())) if database == Some(false) => EngineState::EngineUpDatabaseUnreachable,
            Some(Ok(())) => EngineState::Ready,
            Some(Err(FailureReason::DbError)) => EngineState::EngineUpDatabaseUnreachable,
            Some(Err(FailureReason::Refused)) => EngineState::NoEngine,
            Some(Err(_)) => EngineState::EngineNotAnswering,
        }
    }
}

/// How long readiness episodes (first and last engine ready) are kept per pod.
const EPISODES_KEPT: usize = 16;

/// One way from "not every engine answers" to "every engine answers".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReadyEpisode {
    /// The first round in which at least one engine answered.
    pub first_ready_at: Timestamp,
    /// The first round in which every engine answered (the gap closes here).
    pub last_ready_at: Timestamp,
}

/// What the probes say about one pod, and its gate state.
#[derive(Clone, Debug, Default)]
pub struct PodProbeState {
    /// The last engine round (None until one finished).
    pub engines: Option<EngineRound>,
    /// The last result per target (indexed like [`Target::ALL`]).
    pub last: [Option<Result<(), FailureReason>>; 3],
    /// `litellm_version` from `/health/readiness`, or else the version of
    /// the proxy's installed litellm package (from `/proc`).
    pub version: Option<String>,
    /// Readiness episodes, most recent last.
    pub episodes: VecDeque<ReadyEpisode>,
    /// The round in which an engine first answered, in the current not-all-ready stretch.
    first_ready_pending: Option<Timestamp>,
    /// Whether every engine answered in the last round.
    all_ready: bool,
    /// The proxy port answered a readiness probe since the gate was (re-)armed.
    accepting_since_arm: bool,
    /// The proxy process tree the engines belonged to in the last round that knew it.
    proxy: Option<u64>,
    /// Follow mode: the gate closed after failures outlasted the hysteresis.
    closed_by_failures: bool,
    /// Whether the proxy port accepted connections at the last readiness probe.
    proxy_accepting: Option<bool>,
    /// Since when the gate is armed (waiting for the engines of this proxy process).
    armed_at: Option<Timestamp>,
    /// Results of the required targets since the gate was (re-)armed.
    since_arm: [Option<Result<(), FailureReason>>; 3],
    /// When the gate opened (startup: latched; follow: last opened).
    open_since: Option<Timestamp>,
    /// The first failure of a required target since it was last all up (follow).
    failing_since: Option<Timestamp>,
    /// The pod's start count when the gate opened (re-arm on a further start).
    starts_when_opened: u64,
    /// Why the gate was re-armed last (fixed vocabulary).
    rearmed_because: Option<&'static str>,
    /// The open latch was restored from the state file (sidecar restarted).
    restored: bool,
}

fn idx(t: Target) -> usize {
    Target::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

impl PodProbeState {
    /// The engine side in one word.
    pub fn engine_state(&self) -> EngineState {
        let db = self.last[idx(Target::Database)].map(|r| r.is_ok());
        EngineState::of(self.last[idx(Target::Engine)], db)
    }

    /// The first-ready time of the episode whose last-ready time is `last_ready`.
    pub(crate) fn first_ready_for(&self, last_ready: Timestamp) -> Option<Timestamp> {
        self.episodes
            .iter()
            .find(|e| e.last_ready_at == last_ready)
            .map(|e| e.first_ready_at)
    }

    fn rearm(&mut self, at: Timestamp, why: &'static str) {
        self.armed_at = Some(at);
        self.since_arm = [None; 3];
        self.open_since = None;
        self.failing_since = None;
        self.rearmed_because = Some(why);
        self.closed_by_failures = false;
        self.restored = false;
        // A start seen in the log is the proxy accepting ("Application startup
        // complete."); a restart seen by the probes must show its port again.
        self.accepting_since_arm = why == "new_proxy_start";
    }

    fn observe(&mut self, o: &ProbeOutcome, cfg: &GateConfig, starts: u64) {
        let i = idx(o.target);
        self.last[i] = Some(o.result);
        if self.armed_at.is_none() {
            self.armed_at = Some(o.at);
        }
        if o.target == Target::Engine {
            if o.result.is_ok() {
                if !self.all_ready {
                    let first = self.first_ready_pending.take().unwrap_or(o.at);
                    self.episodes.push_back(ReadyEpisode {
                        first_ready_at: first,
                        last_ready_at: o.at,
                    });
                    while self.episodes.len() > EPISODES_KEPT {
                        self.episodes.pop_front();
                    }
                }
                self.all_ready = true;
            } else {
                self.all_ready = false;
                if matches!(&o.detail, ProbeDetail::Engines(r) if r.up > 0) {
                    self.first_ready_pending.get_or_insert(o.at);
                }
            }
        }
        match &o.detail {
            ProbeDetail::Engines(round) => {
                if let Some(id) = round.proxy {
                    if self.proxy.is_some_and(|before| before != id) {
                        // The engines belong to another process tree: the
                        // proxy container was restarted.
                        self.rearm(o.at, "proxy_restarted");
                    }
                    self.proxy = Some(id);
                }
                if round.litellm_version.is_some() {
                    // Read from the proxy's installed packages: what runs
                    // when /health/readiness does not say (LiteLLM 1.110.2).
                    self.version.clone_from(&round.litellm_version);
                }
                self.engines = Some(round.clone());
            }
            ProbeDetail::Readiness { version } => {
                if version.is_some() {
                    self.version.clone_from(version);
                }
            }
            ProbeDetail::None => {}
        }
        if o.target == Target::ProxyReadiness {
            let accepting = !matches!(o.result, Err(FailureReason::Refused));
            if self.proxy_accepting == Some(true) && !accepting {
                // The proxy process is gone (container restart, crash): the next
                // one must pass the gate again.
                self.rearm(o.at, "proxy_restarted");
            }
            self.proxy_accepting = Some(accepting);
        }
        self.check_starts(starts, o.at);
        // Any probe that reached the port counts: a 503, a "db" that is not
        // connected, or an answer that did not come in time (LiteLLM 1.110.2's
        // readiness waits on its database check for up to 4 s) all mean the
        // port accepts connections. Only `refused` and a connect `timeout` do not.
        if o.target == Target::ProxyReadiness && o.result.err().is_none_or(FailureReason::connected)
        {
            self.accepting_since_arm = true;
        }
        if cfg.required.contains(&o.target) {
            self.since_arm[i] = Some(o.result);
        }
        if !cfg.required.is_empty() {
            self.decide(o.at, cfg, starts);
        }
    }

    /// A further proxy start seen in the pod's log (or by the probe) re-arms
    /// an open gate. The first start the agent sees never does: the gate was
    /// armed for it when the agent started.
    fn check_starts(&mut self, starts: u64, at: Timestamp) {
        if self.open_since.is_some() && starts > self.starts_when_opened.max(1) {
            self.rearm(at, "new_proxy_start");
        }
    }

    fn all_required_up(&self, cfg: &GateConfig) -> bool {
        !cfg.required.is_empty()
            && cfg
                .required
                .iter()
                .all(|t| self.since_arm[idx(*t)] == Some(Ok(())))
            && (!cfg.proxy_probed || self.accepting_since_arm)
    }

    fn decide(&mut self, at: Timestamp, cfg: &GateConfig, starts: u64) {
        let all_up = self.all_required_up(cfg);
        match cfg.mode {
            GateMode::Startup => {
                if self.open_since.is_none() && all_up {
                    self.open_since = Some(at);
                    self.starts_when_opened = starts;
                }
            }
            GateMode::Follow => {
                if all_up {
                    self.failing_since = None;
                    if self.open_since.is_none() {
                        self.open_since = Some(at);
                        self.starts_when_opened = starts;
                        self.closed_by_failures = false;
                    }
                } else if self.open_since.is_some() {
                    let first = *self.failing_since.get_or_insert(at);
                    if at.seconds_since(first) >= cfg.down_after.as_secs_f64() {
                        self.open_since = None;
                        self.failing_since = None;
                        self.closed_by_failures = true;
                    }
                }
            }
        }
    }
}

/// The gate and the probe state of every probed pod.
#[derive(Debug, Default)]
pub struct Gates {
    cfg: GateConfig,
    pods: HashMap<PodRef, PodProbeState>,
    /// A latch read from the state file, until the first engine round with a
    /// known proxy identity says whether it still applies.
    restored: Option<SavedLatch>,
}

/// Shared between the probe tasks (writers), `/gate`, `/api/v1/pods` and `/metrics`.
pub(crate) type SharedGates = Arc<Mutex<Gates>>;

impl Gates {
    /// A gate with `cfg` and no pod seen yet.
    pub fn new(cfg: GateConfig) -> Gates {
        let restored = match (&cfg.state_file, cfg.mode) {
            (Some(path), GateMode::Startup) => load_latch(path),
            _ => None,
        };
        Gates {
            cfg,
            pods: HashMap::new(),
            restored,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &GateConfig {
        &self.cfg
    }

    /// Applies one probe outcome of `pod`; `starts` is the pod's start count
    /// from the timeline (a further start re-arms the gate).
    pub(crate) fn observe(&mut self, pod: &PodRef, o: &ProbeOutcome, starts: u64) {
        let cfg = self.cfg.clone();
        let gated = cfg.pod.as_ref() == Some(pod);
        let p = self.pods.entry(pod.clone()).or_default();
        let was_open = p.open_since.is_some();
        let required = if gated {
            cfg.clone()
        } else {
            // Pods other than the gated one (the demo's) keep their engine view only.
            GateConfig {
                required: Vec::new(),
                ..cfg.clone()
            }
        };
        p.observe(o, &required, starts);
        if !gated || cfg.mode != GateMode::Startup {
            return;
        }
        if let (Some(saved), Some(id)) = (self.restored, p.proxy) {
            // The first identity seen decides: same proxy process = the latch holds.
            self.restored = None;
            if saved.proxy == id && p.open_since.is_none() {
                p.open_since = Some(Timestamp::from_secs_f64(saved.open_since));
                p.starts_when_opened = starts;
                p.restored = true;
                tracing::info!(
                    "gate latch restored: the sidecar restarted, the proxy process did not"
                );
            }
        }
        if let (false, Some(at), Some(id), Some(path)) =
            (was_open, p.open_since, p.proxy, cfg.state_file.as_deref())
        {
            let latch = SavedLatch {
                proxy: id,
                open_since: at.as_secs_f64(),
            };
            if let Err(e) = save_latch(path, latch) {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep the gate latch (a sidecar restart will re-arm the gate)");
            }
        }
    }

    /// Forgets a pod whose probes stopped.
    pub fn remove(&mut self, pod: &PodRef) {
        self.pods.remove(pod);
    }

    /// The probe state of `pod`.
    pub fn pod(&self, pod: &PodRef) -> Option<&PodProbeState> {
        self.pods.get(pod)
    }

    /// Every pod with probe state.
    pub fn pods(&self) -> impl Iterator<Item = (&PodRef, &PodProbeState)> {
        self.pods.iter()
    }
}

mod answer;
mod collector;

pub use answer::{EngineView, GateAnswer};
pub use collector::GateCollector;

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodRef {
        PodRef {
            namespace: "llm".into(),
            pod: "litellm-0".into(),
        }
    }

    fn gates(mode: GateMode, required: &[Target]) -> Gates {
        Gates::new(GateConfig {
            pod: Some(pod()),
            required: required.to_vec(),
            mode,
            down_after: Duration::from_secs(30),
            proxy_probed: false,
            state_file: None,
        })
    }

    fn engine(at: f64, discovered: u32, up: u32, db_errors: u32) -> ProbeOutcome {
        let round = EngineRound {
            discovered,
            up,
            db_errors,
            workers_without_engine: 0,
            proxy: None,
            litellm_version: None,
        };
        let result = crate::probe::engine::aggregate(
            &(0..discovered)
                .map(|i| {
                    if i < up {
                        Ok(())
                    } else if i < up + db_errors {
                        Err(FailureReason::DbError)
                    } else {
                        Err(FailureReason::Refused)
                    }
                })
                .collect::<Vec<_>>(),
        )
        .result;
        ProbeOutcome {
            target: Target::Engine,
            at: Timestamp::from_secs_f64(1_700_000_000.0 + at),
            duration: Duration::from_millis(1),
            result,
            detail: ProbeDetail::Engines(round),
        }
    }

    fn other(at: f64, target: Target, result: Result<(), FailureReason>) -> ProbeOutcome {
        ProbeOutcome {
            target,
            at: Timestamp::from_secs_f64(1_700_000_000.0 + at),
            duration: Duration::from_millis(1),
            result,
            detail: ProbeDetail::None,
        }
    }

    fn ts(at: f64) -> Timestamp {
        Timestamp::from_secs_f64(1_700_000_000.0 + at)
    }

    #[test]
    fn startup_latch_needs_every_engine_then_never_closes() {
        let mut g = gates(GateMode::Startup, &[Target::Engine]);
        let p = pod();
        let a = g.answer(Some(0), ts(0.0));
        assert!(!a.ready);
        assert_eq!(a.state, "waiting");
        g.observe(&p, &engine(1.0, 0, 0, 0), 1);
        assert!(g
            .answer(Some(1), ts(1.0))
            .reason
            .contains("no query-engine process"));
        g.observe(&p, &engine(2.0, 2, 1, 0), 1);
        let a = g.answer(Some(1), ts(2.0));
        assert!(!a.ready, "{a:?}");
        assert!(a.reason.contains("1 of 2 engines"), "{}", a.reason);
        g.observe(&p, &engine(20.0, 2, 2, 0), 1);
        let a = g.answer(Some(1), ts(20.0));
        assert!(a.ready && a.state == "open" && a.mode == "startup", "{a:?}");
        // The database goes away for minutes: the latch holds.
        for s in 21..400 {
            g.observe(&p, &engine(f64::from(s), 2, 0, 2), 1);
        }
        let a = g.answer(Some(1), ts(400.0));
        assert!(a.ready, "{a:?}");
        assert_eq!(a.engine_state, EngineState::EngineUpDatabaseUnreachable);
        // An engine killed and respawned: still open.
        g.observe(&p, &engine(401.0, 1, 1, 0), 1);
        assert!(g.answer(Some(1), ts(401.0)).ready);
        // first/last ready of the start.
        let st = g.pod(&p).unwrap();
        assert_eq!(st.first_ready_for(ts(20.0)), Some(ts(2.0)));
    }

    #[test]
    fn with_the_proxy_probed_the_gate_also_waits_for_its_port() {
        let mut g = gates(GateMode::Startup, &[Target::Engine]);
        g.cfg.proxy_probed = true;
        let p = pod();
        g.observe(
            &p,
            &other(0.5, Target::ProxyReadiness, Err(FailureReason::Refused)),
            0,
        );
        g.observe(&p, &engine(1.0, 2, 2, 0), 0);
        let a = g.answer(Some(0), ts(1.0));
        assert!(!a.ready, "{a:?}");
        assert!(a.reason.contains("accept connections"), "{}", a.reason);
        // A connect timeout is not "accepting" either.
        g.observe(
            &p,
            &other(1.5, Target::ProxyReadiness, Err(FailureReason::Timeout)),
            0,
        );
        assert!(!g.answer(Some(0), ts(1.5)).ready);
        // 1.83.14 answers 200 with "db": "Not connected": the port accepts.
        g.observe(
            &p,
            &other(2.0, Target::ProxyReadiness, Err(FailureReason::BadBody)),
            1,
        );
        let a = g.answer(Some(1), ts(2.0));
        assert!(a.ready, "{a:?}");
        assert_eq!(g.pod(&p).unwrap().open_since, Some(ts(2.0)));
    }

    #[test]
    fn the_version_comes_from_readiness_or_else_from_the_installed_packages() {
        let mut g = gates(GateMode::Startup, &[Target::Engine]);
        let p = pod();
        // 1.110.2: readiness says nothing about the version; unknown, no error.
        let mut r = other(0.5, Target::ProxyReadiness, Ok(()));
        r.detail = ProbeDetail::Readiness { version: None };
        g.observe(&p, &r, 1);
        assert_eq!(g.pod(&p).unwrap().version, None);
        // The engine round read it from the proxy's site-packages.
        let mut e = engine(1.0, 1, 1, 0);
        if let ProbeDetail::Engines(round) = &mut e.detail {
            round.litellm_version = Some("1.110.2".into());
        }
        g.observe(&p, &e, 1);
        assert_eq!(g.pod(&p).unwrap().version.as_deref(), Some("1.110.2"));
        // A later round or readiness answer without one does not forget it.
        g.observe(&p, &engine(2.0, 1, 1, 0), 1);
        g.observe(&p, &r, 1);
        assert_eq!(g.pod(&p).unwrap().version.as_deref(), Some("1.110.2"));
        // A readiness answer that carries one (1.83.14) is taken as given.
        r.detail = ProbeDetail::Readiness {
            version: Some("1.83.14".into()),
        };
        g.observe(&p, &r, 1);
        assert_eq!(g.pod(&p).unwrap().version.as_deref(), Some("1.83.14"));
    }

    #[test]
    fn a_readiness_probe_that_connected_and_timed_out_means_the_port_accepts() {
        // LiteLLM 1.110.2's /health/readiness accepts and then waits on its
        // database check past the probe timeout while the engine is down.
        let mut g = gates(GateMode::Startup, &[Target::Engine]);
        g.cfg.proxy_probed = true;
        let p = pod();
        g.observe(&p, &engine(1.0, 1, 1, 0), 1);
        assert!(!g.answer(Some(1), ts(1.0)).ready);
        g.observe(
            &p,
            &other(
                1.5,
                Target::ProxyReadiness,
                Err(FailureReason::ResponseTimeout),
            ),
            1,
        );
        let a = g.answer(Some(1), ts(1.5));
        assert!(a.ready, "{a:?}");
        assert_eq!(g.pod(&p).unwrap().open_since, Some(ts(1.5)));
    }

    #[test]
    fn startup_latch_rearms_on_a_new_proxy_process() {
        let mut g = gates(GateMode::Startup, &[Target::Engine]);
        g.cfg.proxy_probed = true;
        let p = pod();
        g.observe(
            &p,
            &other(0.0, Target::ProxyReadiness, Err(FailureReason::BadBody)),
            1,
        );
        g.observe(&p, &engine(1.0, 1, 1, 0), 1);
        assert!(g.answer(Some(1), ts(1.0)).ready);
        // A timeout is not a restart.
        g.observe(
            &p,
            &other(2.0, Target::ProxyReadiness, Err(FailureReason::Timeout)),
            1,
        );
        assert!(g.answer(Some(1), ts(2.0)).ready);
        // The proxy port refuses: the process is gone.
        g.observe(
            &p,
            &other(3.0, Target::ProxyReadiness, Err(FailureReason::Refused)),
            1,
        );
        let a = g.answer(Some(1), ts(3.0));
        assert!(!a.ready);
        assert_eq!(a.rearmed_because, Some("proxy_restarted"));
        assert!(a.reason.contains("has not run yet"), "{}", a.reason);
        g.observe(&p, &engine(8.0, 1, 1, 0), 1);
        // The new process's engines answer, but its port does not accept yet.
        assert!(!g.answer(Some(1), ts(8.0)).ready);
        g.observe(&p, &other(8.5, Target::ProxyReadiness, Ok(())), 1);
        g.observe(&p, &engine(9.0, 1, 1, 0), 1);
        assert!(g.answer(Some(1), ts(9.0)).ready);
        // A second start seen in the log re-arms too, even between probes.
        let a = g.answer(Some(2), ts(10.0));
        assert!(!a.ready);
        assert_eq!(a.rearmed_because, Some("new_proxy_start"));
        g.observe(&p, &engine(11.0, 1, 1, 0), 2);
        assert!(g.answer(Some(2), ts(11.0)).ready);
    }

    #[test]
    fn startup_latch_rearms_when_the_engines_belong_to_a_new_proxy_process() {
        let mut g = gates(GateMode::Startup, &[Target::Engine]);
        let p = pod();
        let with_proxy = |at: f64, up: u32, proxy: Option<u64>| {
            let mut o = engine(at, 1, up, 0);
            if let ProbeDetail::Engines(r) = &mut o.detail {
                r.proxy = proxy;
            }
            o
        };
        g.observe(&p, &with_proxy(1.0, 1, Some(7)), 1);
        assert!(g.answer(Some(1), ts(1.0)).ready);
        // No engine visible, or its ancestry unknown: no evidence of a new process.
        g.observe(&p, &with_proxy(2.0, 0, None), 1);
        assert!(g.answer(Some(1), ts(2.0)).ready);
        g.observe(&p, &with_proxy(3.0, 0, Some(8)), 1);
        let a = g.answer(Some(1), ts(3.0));
        assert!(!a.ready);
        assert_eq!(a.rearmed_because, Some("proxy_restarted"));
        g.observe(&p, &with_proxy(9.0, 1, Some(8)), 1);
        assert!(g.answer(Some(1), ts(9.0)).ready);
    }

    #[test]
    fn startup_requires_the_database_probe_when_configured() {
        let mut g = gates(GateMode::Startup, &[Target::Engine, Target::Database]);
        let p = pod();
        g.observe(&p, &engine(1.0, 1, 1, 0), 0);
        g.observe(
            &p,
            &other(1.1, Target::Database, Err(FailureReason::Refused)),
            0,
        );
        let a = g.answer(Some(0), ts(1.2));
        assert!(!a.ready);
        assert_eq!(a.engine_state, EngineState::EngineUpDatabaseUnreachable);
        g.observe(&p, &other(2.0, Target::Database, Ok(())), 0);
        assert!(g.answer(Some(0), ts(2.0)).ready);
    }

    #[test]
    fn follow_closes_only_after_failures_spanning_the_hysteresis() {
        let mut g = gates(GateMode::Follow, &[Target::Engine]);
        let p = pod();
        g.observe(&p, &engine(0.0, 1, 1, 0), 1);
        assert!(g.answer(Some(1), ts(0.0)).ready);
        for s in 1..30 {
            g.observe(&p, &engine(f64::from(s), 1, 0, 1), 1);
            let a = g.answer(Some(1), ts(f64::from(s)));
            assert!(a.ready, "at {s}s: {a:?}");
            assert_eq!(a.state, "holding");
        }
        // A success in between resets the span.
        g.observe(&p, &engine(29.5, 1, 1, 0), 1);
        g.observe(&p, &engine(31.0, 1, 0, 1), 1);
        assert!(g.answer(Some(1), ts(31.0)).ready);
        g.observe(&p, &engine(60.9, 1, 0, 1), 1);
        assert!(g.answer(Some(1), ts(60.9)).ready);
        g.observe(&p, &engine(61.0, 1, 0, 1), 1);
        let a = g.answer(Some(1), ts(61.0));
        assert!(!a.ready, "{a:?}");
        assert_eq!(a.state, "closed");
        assert!(a.reason.contains("db_error"), "{}", a.reason);
        g.observe(&p, &engine(62.0, 1, 1, 0), 1);
        assert!(g.answer(Some(1), ts(62.0)).ready);
    }

    #[test]
    fn latch_survives_a_sidecar_restart_for_the_same_proxy_process_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gate.json");
        let cfg = GateConfig {
            pod: Some(pod()),
            required: vec![Target::Engine],
            state_file: Some(file.clone()),
            ..GateConfig::default()
        };
        let round = |at: f64, up: u32, proxy: u64| {
            let mut o = engine(at, 1, up, 0);
            if let ProbeDetail::Engines(r) = &mut o.detail {
                r.proxy = Some(proxy);
            }
            o
        };
        let p = pod();
        let mut g = Gates::new(cfg.clone());
        g.observe(&p, &round(1.0, 1, 42), 1);
        assert!(g.answer(Some(1), ts(1.0)).ready);
        assert!(file.exists());
        // The sidecar restarts during a database outage: same proxy, engines failing.
        let mut g = Gates::new(cfg.clone());
        assert!(!g.answer(Some(0), ts(50.0)).ready, "nothing seen yet");
        g.observe(&p, &round(51.0, 0, 42), 0);
        let a = g.answer(Some(0), ts(51.0));
        assert!(a.ready, "{a:?}");
        assert!(a.reason.contains("restored"), "{}", a.reason);
        assert_eq!(a.open_since.map(|t| t.0), Some(ts(1.0)));
        // A new proxy process (other identity): the saved latch does not apply.
        let mut g = Gates::new(cfg.clone());
        g.observe(&p, &round(60.0, 0, 43), 0);
        assert!(!g.answer(Some(0), ts(60.0)).ready);
        // Follow mode never restores; a garbage file is ignored.
        std::fs::write(&file, b"not json").unwrap();
        let mut g = Gates::new(cfg);
        g.observe(&p, &round(70.0, 0, 42), 0);
        assert!(!g.answer(Some(0), ts(70.0)).ready);
    }

    #[test]
    fn unconfigured_and_ungated_pods() {
        let mut g = Gates::new(GateConfig::default());
        let a = g.answer(None, ts(0.0));
        assert!(!a.ready && a.state == "unconfigured");
        // A pod that is not the gated one keeps an engine view but no gate.
        let mut g = gates(GateMode::Startup, &[Target::Engine]);
        let demo = PodRef {
            namespace: "llm".into(),
            pod: "other".into(),
        };
        g.observe(&demo, &engine(1.0, 3, 3, 0), 1);
        assert_eq!(
            g.pod(&demo).unwrap().engines.as_ref().unwrap().discovered,
            3
        );
        assert!(!g.answer(Some(0), ts(1.0)).ready);
        let body = serde_json::to_string(&g.answer(Some(0), ts(1.0))).unwrap();
        assert!(!body.contains('\n'));
    }
}
