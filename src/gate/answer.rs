//! The `/gate` answer (HTTP 200 or 503 with one line of JSON, and the
//! sentence for humans) and the engine view of `/api/v1/pods`, read from the
//! latch state the probes keep in [`Gates`].

use serde::Serialize;

use super::{idx, EngineState, GateConfig, GateMode, Gates, PodProbeState};
use crate::probe::Target;
use crate::time::{RfcTimestamp, Timestamp};

/// The `/gate` answer: one line of JSON. Counts, timestamps and fixed words
/// only: nothing a peer sent, so nothing secret.
#[derive(Clone, Debug, Serialize)]
pub struct GateAnswer {
    /// `true` with HTTP 200.
    pub ready: bool,
    /// `startup` or `follow`.
    pub mode: &'static str,
    /// `waiting` (armed, engines not all up yet), `open`, `holding` (follow:
    /// failing, within the hysteresis), `closed` (follow: failed longer than
    /// it), `unconfigured`.
    pub state: &'static str,
    /// What the engines say (see [`EngineState`]).
    pub engine_state: EngineState,
    /// Engine processes found / answering in the last round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines_discovered: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines_up: Option<u32>,
    /// Since when the gate is open (startup: latched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_since: Option<RfcTimestamp>,
    /// Since when the gate waits for this proxy process's engines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub armed_since: Option<RfcTimestamp>,
    /// Why it was re-armed last (`proxy_restarted`, `new_proxy_start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rearmed_because: Option<&'static str>,
    /// One sentence for humans.
    pub reason: String,
}

impl Gates {
    /// The `/gate` answer now; `starts` is the gated pod's start count (a
    /// further start seen in its log re-arms the gate even between probes).
    pub fn answer(&mut self, starts: Option<u64>, now: Timestamp) -> GateAnswer {
        let cfg = self.cfg.clone();
        let unconfigured = |reason: &str| GateAnswer {
            ready: false,
            mode: cfg.mode.as_str(),
            state: "unconfigured",
            engine_state: EngineState::Unknown,
            engines_discovered: None,
            engines_up: None,
            open_since: None,
            armed_since: None,
            rearmed_because: None,
            reason: reason.to_string(),
        };
        let Some(pod) = &cfg.pod else {
            return unconfigured(
                "no pod is gated (run with --role sidecar and POD_NAMESPACE/POD_NAME)",
            );
        };
        if cfg.required.is_empty() {
            return unconfigured(
                "no engine probe configured (set --engine-url or enable discovery)",
            );
        }
        let Some(p) = self.pods.get_mut(pod) else {
            let mut a = unconfigured("no probe has answered yet; waiting for the engines");
            a.state = "waiting";
            return a;
        };
        if let Some(s) = starts {
            p.check_starts(s, now);
        }
        let engine_state = p.engine_state();
        let (discovered, up) = p
            .engines
            .as_ref()
            .map_or((None, None), |r| (Some(r.discovered), Some(r.up)));
        let ready = p.open_since.is_some();
        let (state, reason) = match (cfg.mode, p.open_since, p.failing_since) {
            (GateMode::Startup, Some(at), _) => (
                "open",
                format!(
                    "every engine answered SELECT 1 at {}; open for the life of this proxy process ({} now){}",
                    at,
                    engine_state_words(engine_state),
                    if p.restored {
                        "; restored after a sidecar restart"
                    } else {
                        ""
                    }
                ),
            ),
            (GateMode::Follow, Some(_), Some(first)) => (
                "holding",
                format!(
                    "failing for {:.1}s ({}); closes after {}s of failures",
                    now.seconds_since(first).max(0.0),
                    engine_state_words(engine_state),
                    cfg.down_after.as_secs_f64()
                ),
            ),
            (GateMode::Follow, Some(_), None) => (
                "open",
                engine_state_words(engine_state).to_string(),
            ),
            (_, None, _) => {
                let what = waiting_reason(p, &cfg);
                let state = if p.closed_by_failures {
                    "closed"
                } else {
                    "waiting"
                };
                (state, what)
            }
        };
        GateAnswer {
            ready,
            mode: cfg.mode.as_str(),
            state,
            engine_state,
            engines_discovered: discovered,
            engines_up: up,
            open_since: p.open_since.map(RfcTimestamp),
            armed_since: p.armed_at.map(RfcTimestamp),
            rearmed_because: p.rearmed_because,
            reason,
        }
    }
}

fn engine_state_words(s: EngineState) -> &'static str {
    match s {
        EngineState::Unknown => "engine state unknown",
        EngineState::NoEngine => "no engine listening",
        EngineState::EngineNotAnswering => "an engine does not answer",
        EngineState::EngineUpDatabaseUnreachable => "engine up, database unreachable",
        EngineState::Ready => "every engine answers queries",
    }
}

fn waiting_reason(p: &PodProbeState, cfg: &GateConfig) -> String {
    for t in &cfg.required {
        match p.since_arm[idx(*t)] {
            Some(Ok(())) => {}
            None => return format!("{} probe has not run yet", t.as_str()),
            Some(Err(reason)) => {
                return match (*t, p.engines.as_ref()) {
                    (Target::Engine, Some(r)) if r.workers_without_engine > 0 => format!(
                        "engine probe is failing: {} Uvicorn worker(s) have no query-engine process yet ({} of {} engines answer)",
                        r.workers_without_engine, r.up, r.discovered
                    ),
                    (Target::Engine, Some(r)) if r.discovered == 0 => {
                        "engine probe is failing: no query-engine process found yet".to_string()
                    }
                    (Target::Engine, Some(r)) => format!(
                        "engine probe is failing ({}): {} of {} engines answer, {} with a database error",
                        reason.as_str(),
                        r.up,
                        r.discovered,
                        r.db_errors
                    ),
                    _ => format!("{} probe is failing ({})", t.as_str(), reason.as_str()),
                };
            }
        }
    }
    if cfg.proxy_probed && !p.accepting_since_arm {
        return "every engine answers; waiting for the LiteLLM port to accept connections (proxy_readiness)"
            .to_string();
    }
    "waiting for the engines".to_string()
}

/// The engine part of a pod in `/api/v1/pods`.
#[derive(Clone, Debug, Serialize)]
pub struct EngineView {
    /// See [`EngineState`].
    pub state: EngineState,
    pub discovered: Option<u32>,
    pub up: Option<u32>,
    /// Uvicorn workers seen without an engine process in the last round.
    pub workers_without_engine: Option<u32>,
    /// `litellm_version` from `/health/readiness`, or else the proxy's installed litellm package.
    pub litellm_version: Option<String>,
}

impl EngineView {
    /// The view of one pod's probe state.
    pub fn new(p: &PodProbeState) -> EngineView {
        EngineView {
            state: p.engine_state(),
            discovered: p.engines.as_ref().map(|r| r.discovered),
            up: p.engines.as_ref().map(|r| r.up),
            workers_without_engine: p.engines.as_ref().map(|r| r.workers_without_engine),
            litellm_version: p.version.clone(),
        }
    }
}
