//! Per-pod start-up state: the gap between "proxy accepts traffic" and
//! "engine answers queries", and every count the metrics export.
//!
//! Input: [`Event`]s (from the log, per pod, in record order) and
//! [`ProbeOutcome`]s (from the probes). Output: the state itself, which the
//! metrics renderer, `/api/v1/pods`, `/gate`, `report` and the checkpoint read.
//!
//! The tracker is the single source of truth for pod counters: the metrics are
//! rendered from it and the checkpoint stores it whole, in the same snapshot
//! as the read offsets. That is what makes counts exactly-once across a
//! restart: nothing can be counted that the snapshot's offsets have not passed.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::classify::{ConfigKind, Event, EventKind, Operation};
use crate::format::PodRef;
use crate::probe::{FailureReason, ProbeOutcome, Target};
use crate::time::Timestamp;

/// How a start-up gap was measured; the `method` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Closed by the first successful engine (or readiness) probe: exact to one probe interval.
    Probe,
    /// Closed by the end of the DB-error burst in the log: an estimate.
    Log,
}

impl Method {
    /// The fixed label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Probe => "probe",
            Method::Log => "log",
        }
    }
}

/// Upper bounds (seconds) of the `startup_gap_seconds` histogram: the race lasts
/// from a second to many minutes, so the buckets span that range.
pub const GAP_BUCKETS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0,
];

/// Tunables of the state machine.
#[derive(Clone, Debug)]
pub struct TimelineConfig {
    /// Without probes, a gap closes after this long (record time) without a DB connect error.
    pub quiet_period_secs: f64,
    /// Cap on tracked pods; events of further pods are dropped and counted.
    pub max_pods: usize,
    /// How many past starts each pod keeps for the API and reports.
    pub starts_kept: usize,
    /// A pod with no live source is forgotten after this long (wall time).
    pub pod_ttl_secs: f64,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            quiet_period_secs: 60.0,
            max_pods: 2000,
            starts_kept: 32,
            pod_ttl_secs: 900.0,
        }
    }
}

/// Per-pod event counters (the `*_total` pod metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Indexed like [`Operation::ALL`].
    pub db_connect_errors: [u64; 7],
    pub spend_batches_dropped: u64,
    pub spend_rows_requeued: u64,
    pub spend_rows_lost: u64,
    pub budget_cache_misses: u64,
    pub deployment_load_failures: u64,
    pub credential_load_failures: u64,
    pub engine_distro_fallbacks: u64,
    pub proxy_starts: u64,
    pub requests_during_gap: u64,
}

impl Counts {
    /// DB connect errors of one operation.
    pub fn db_connect_errors_for(&self, op: Operation) -> u64 {
        self.db_connect_errors[op as usize]
    }

    /// All DB connect errors.
    pub fn db_connect_errors_total(&self) -> u64 {
        self.db_connect_errors.iter().sum()
    }

    /// Adds another pod's counts (for totals).
    pub fn add(&mut self, o: &Counts) {
        for (a, b) in self.db_connect_errors.iter_mut().zip(o.db_connect_errors) {
            *a += b;
        }
        self.spend_batches_dropped += o.spend_batches_dropped;
        self.spend_rows_requeued += o.spend_rows_requeued;
        self.spend_rows_lost += o.spend_rows_lost;
        self.budget_cache_misses += o.budget_cache_misses;
        self.deployment_load_failures += o.deployment_load_failures;
        self.credential_load_failures += o.credential_load_failures;
        self.engine_distro_fallbacks += o.engine_distro_fallbacks;
        self.proxy_starts += o.proxy_starts;
        self.requests_during_gap += o.requests_during_gap;
    }
}

/// One start of the proxy in a pod and its gap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// When Uvicorn started accepting traffic (None: the log had no timestamps).
    pub listening_at: Option<Timestamp>,
    /// When the engine answered its first probe after this start (probe method).
    pub engine_ready_at: Option<Timestamp>,
    /// The last DB connect error of the start-up burst (log method).
    pub last_db_error_at: Option<Timestamp>,
    /// Seconds of gap, once closed (None while open or without timestamps).
    pub gap_seconds: Option<f64>,
    /// How the gap is (or will be) measured.
    pub method: Method,
    /// True until the gap closes.
    pub open: bool,
}

impl Start {
    /// Whether a record at `ts` fell inside this start's gap. Requests read
    /// after a probe closed the gap still count when their timestamp is inside it.
    pub fn covers(&self, ts: Option<Timestamp>) -> bool {
        let after_start = match (self.listening_at, ts) {
            (Some(l), Some(t)) => t >= l,
            _ => true,
        };
        if self.open {
            return after_start;
        }
        match (self.listening_at, self.gap_seconds, ts) {
            (Some(l), Some(g), Some(t)) => after_start && t.seconds_since(l) < g,
            _ => false,
        }
    }
}

/// Everything the agent knows about one pod.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PodTimeline {
    pub counts: Counts,
    /// Most recent last; bounded by [`TimelineConfig::starts_kept`].
    pub starts: VecDeque<Start>,
    /// Newest record timestamp seen for this pod.
    pub last_record_at: Option<Timestamp>,
    /// Probe state per target (indexed like [`Target::ALL`]): None = not probed.
    #[serde(default)]
    pub probe_up: [Option<bool>; 3],
    /// Since when the gap-closing probe target has been up (down→up transition).
    #[serde(default)]
    pub up_since: Option<Timestamp>,
    /// Whether the proxy port was accepting connections at the last readiness probe.
    #[serde(default)]
    pub proxy_accepting: bool,
    /// Targets probed for this pod: with a gap-closing target, gaps use the probe method.
    /// Configuration, not state: re-registered at every start.
    #[serde(skip)]
    pub probed_targets: Vec<Target>,
    /// Wall time of the last activity (for expiry).
    #[serde(skip)]
    pub last_activity: Option<Timestamp>,
}

impl PodTimeline {
    /// The start whose gap is open, if any.
    pub fn open_start(&self) -> Option<&Start> {
        self.starts.back().filter(|s| s.open)
    }

    /// The target whose success closes a gap: the engine when probed, else LiteLLM's readiness.
    fn gap_target(&self) -> Option<Target> {
        if self.probed_targets.contains(&Target::Engine) {
            Some(Target::Engine)
        } else if self.probed_targets.contains(&Target::ProxyReadiness) {
            Some(Target::ProxyReadiness)
        } else {
            None
        }
    }

    /// The most recent closed gap and its method.
    pub fn last_gap(&self) -> Option<(f64, Method)> {
        self.starts
            .iter()
            .rev()
            .find_map(|s| s.gap_seconds.filter(|_| !s.open).map(|g| (g, s.method)))
    }
}

/// A histogram's state, kept here (not in the registry) so it survives restarts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GapHistogram {
    /// Cumulative-free bucket counts, one per [`GAP_BUCKETS`] entry (+Inf is `count`).
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl GapHistogram {
    fn observe(&mut self, v: f64) {
        if self.buckets.len() != GAP_BUCKETS.len() {
            self.buckets = vec![0; GAP_BUCKETS.len()];
        }
        if let Some(i) = GAP_BUCKETS.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

/// The serializable form of a [`Tracker`] (maps with struct keys as lists).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrackerState {
    pub pods: Vec<(PodRef, PodTimeline)>,
    pub histograms: Vec<(String, Method, GapHistogram)>,
    pub pods_dropped: u64,
}

/// All pods on this node (or the one pod of a sidecar).
#[derive(Debug, Default)]
pub struct Tracker {
    cfg: TimelineConfig,
    pods: HashMap<PodRef, PodTimeline>,
    histograms: HashMap<(String, Method), GapHistogram>,
    pods_dropped: u64,
}

impl Tracker {
    /// An empty tracker.
    pub fn new(cfg: TimelineConfig) -> Self {
        Tracker {
            cfg,
            ..Default::default()
        }
    }

    /// Replaces the state with a checkpointed one (counters continue from it).
    pub fn restore(&mut self, state: TrackerState) {
        self.pods = state.pods.into_iter().collect();
        self.histograms = state
            .histograms
            .into_iter()
            .map(|(ns, m, h)| ((ns, m), h))
            .collect();
        self.pods_dropped = state.pods_dropped;
    }

    /// A copy of the state for the checkpoint.
    pub fn snapshot(&self) -> TrackerState {
        TrackerState {
            pods: self
                .pods
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            histograms: self
                .histograms
                .iter()
                .map(|((ns, m), h)| (ns.clone(), *m, h.clone()))
                .collect(),
            pods_dropped: self.pods_dropped,
        }
    }

    /// Tracked pods, in no particular order.
    pub fn pods(&self) -> impl Iterator<Item = (&PodRef, &PodTimeline)> {
        self.pods.iter()
    }

    /// One pod's state.
    pub fn pod(&self, pod: &PodRef) -> Option<&PodTimeline> {
        self.pods.get(pod)
    }

    /// Gap histograms by (namespace, method).
    pub fn histograms(&self) -> impl Iterator<Item = (&str, Method, &GapHistogram)> {
        self.histograms
            .iter()
            .map(|((ns, m), h)| (ns.as_str(), *m, h))
    }

    /// Pods not tracked because the cap was reached.
    pub fn pods_dropped(&self) -> u64 {
        self.pods_dropped
    }

    /// The pod's state, created on first sight unless the cap is reached.
    fn entry(&mut self, pod: &PodRef) -> Option<&mut PodTimeline> {
        if !self.pods.contains_key(pod) {
            if self.pods.len() >= self.cfg.max_pods {
                self.pods_dropped += 1;
                return None;
            }
            self.pods.insert(pod.clone(), PodTimeline::default());
        }
        self.pods.get_mut(pod)
    }

    /// Declares which probe targets watch this pod (sidecar, demo): its gaps
    /// then close on the first successful probe instead of the quiet period.
    pub fn register_probes(&mut self, pod: &PodRef, targets: &[Target]) {
        if let Some(p) = self.entry(pod) {
            p.probed_targets = targets.to_vec();
            p.last_activity = Some(Timestamp::now());
        }
    }

    /// Applies one log event of `pod`.
    pub fn apply_event(&mut self, pod: &PodRef, ev: &Event) {
        let cfg = self.cfg.clone();
        let Some(p) = self.entry(pod) else { return };
        p.last_activity = Some(Timestamp::now());
        if let Some(ts) = ev.ts {
            p.last_record_at = Some(p.last_record_at.map_or(ts, |l| l.max(ts)));
        }
        let mut closed = None;
        if let Some(ts) = ev.ts {
            closed = close_if_quiet(p, ts, &cfg);
        }
        let in_gap = p.starts.back().is_some_and(|s| s.covers(ev.ts));
        let c = &mut p.counts;
        match ev.kind {
            EventKind::DbConnectError(op) => {
                c.db_connect_errors[op as usize] += 1;
                if let Some(s) = p.starts.back_mut().filter(|s| s.open) {
                    if let Some(ts) = ev.ts {
                        s.last_db_error_at = Some(s.last_db_error_at.map_or(ts, |l| l.max(ts)));
                    }
                }
            }
            EventKind::SpendBatchDropped => c.spend_batches_dropped += 1,
            EventKind::SpendRowsRequeued(n) => c.spend_rows_requeued += n,
            EventKind::SpendRowsLost(n) => c.spend_rows_lost += n,
            EventKind::BudgetCacheMiss => c.budget_cache_misses += 1,
            EventKind::ConfigLoadFailure(ConfigKind::Deployments) => {
                c.deployment_load_failures += 1
            }
            EventKind::ConfigLoadFailure(ConfigKind::Credentials) => {
                c.credential_load_failures += 1
            }
            EventKind::EngineDistroFallback => c.engine_distro_fallbacks += 1,
            EventKind::RequestServed => {
                if in_gap {
                    c.requests_during_gap += 1;
                }
            }
            EventKind::ProxyListening => {
                // A new start ends the previous one's gap, whatever its state.
                if let Some(prev) = close_open(p) {
                    closed = closed.or(Some(prev));
                }
                if let Some(c2) = self.open_start(pod, ev.ts) {
                    // `open_start` may close the new start at once (engine already up).
                    self.record_gap(&pod.namespace, c2);
                }
            }
        }
        if let Some(c) = closed {
            self.record_gap(&pod.namespace, c);
        }
    }

    /// Opens a new start for `pod`; returns a gap when it closes immediately.
    fn open_start(&mut self, pod: &PodRef, at: Option<Timestamp>) -> Option<(f64, Method)> {
        let kept = self.cfg.starts_kept;
        let p = self.pods.get_mut(pod)?;
        p.counts.proxy_starts += 1;
        let method = if p.gap_target().is_some() {
            Method::Probe
        } else {
            Method::Log
        };
        let mut start = Start {
            listening_at: at,
            engine_ready_at: None,
            last_db_error_at: None,
            gap_seconds: None,
            method,
            open: true,
        };
        if method == Method::Probe {
            if let (Some(up), Some(at)) = (p.up_since, at) {
                // The engine came up before or after the listening line was read:
                // either way the gap is known now.
                start.engine_ready_at = Some(up.max(at));
                start.gap_seconds = Some(up.seconds_since(at).max(0.0));
                start.open = false;
            }
        }
        let result = (!start.open).then(|| (start.gap_seconds.unwrap_or(0.0), method));
        p.starts.push_back(start);
        while p.starts.len() > kept.max(1) {
            p.starts.pop_front();
        }
        result
    }

    fn record_gap(&mut self, namespace: &str, (gap, method): (f64, Method)) {
        self.histograms
            .entry((namespace.to_string(), method))
            .or_default()
            .observe(gap);
    }

    /// Moves a pod's record clock forward (end of a read chunk): closes a
    /// log-method gap whose quiet period has passed in record time.
    pub fn advance(&mut self, pod: &PodRef, ts: Timestamp) {
        let cfg = self.cfg.clone();
        let Some(p) = self.pods.get_mut(pod) else {
            return;
        };
        p.last_record_at = Some(p.last_record_at.map_or(ts, |l| l.max(ts)));
        if let Some(c) = close_if_quiet(p, ts, &cfg) {
            self.record_gap(&pod.namespace, c);
        }
    }

    /// Live mode, called when every file has been read to its end: a pod whose
    /// log has been silent for the quiet period (wall time) has its log-method
    /// gap closed. The gap's value still comes from record timestamps.
    pub fn tick(&mut self, now: Timestamp) {
        let cfg = self.cfg.clone();
        let mut closed = Vec::new();
        for (pod, p) in self.pods.iter_mut() {
            let Some(s) = p.open_start() else { continue };
            if s.method != Method::Log {
                continue;
            }
            let last = p.last_record_at.or(s.listening_at);
            if last.is_some_and(|l| now.seconds_since(l) > cfg.quiet_period_secs) {
                if let Some(c) = close_open(p) {
                    closed.push((pod.namespace.clone(), c));
                }
            }
        }
        for (ns, c) in closed {
            self.record_gap(&ns, c);
        }
    }

    /// End of input (report): every open gap closes as of what was seen.
    pub fn finish(&mut self) {
        let mut closed = Vec::new();
        for (pod, p) in self.pods.iter_mut() {
            if p.open_start().is_some_and(|s| s.method == Method::Log) {
                if let Some(c) = close_open(p) {
                    closed.push((pod.namespace.clone(), c));
                }
            }
        }
        for (ns, c) in closed {
            self.record_gap(&ns, c);
        }
    }

    /// Applies a probe result for `pod`.
    pub fn apply_probe(&mut self, pod: &PodRef, o: &ProbeOutcome) {
        let Some(p) = self.entry(pod) else { return };
        p.last_activity = Some(o.at);
        let idx = Target::ALL.iter().position(|t| *t == o.target).unwrap_or(0);
        let was_up = p.probe_up[idx] == Some(true);
        let up = o.result.is_ok();
        p.probe_up[idx] = Some(up);
        let mut new_start = false;
        if o.target == Target::ProxyReadiness {
            // The proxy port answered at all (even "db": "Not connected"): it takes traffic.
            let accepting = !matches!(
                o.result,
                Err(FailureReason::Refused) | Err(FailureReason::Timeout)
            );
            // In a sidecar without logs, the port starting to accept is the start.
            new_start = accepting
                && !p.proxy_accepting
                && p.counts.proxy_starts == 0
                && p.last_record_at.is_none();
            p.proxy_accepting = accepting;
        }
        let mut closed = None;
        if p.gap_target() == Some(o.target) {
            if up && !was_up {
                p.up_since = Some(o.at);
                if let Some(s) = p
                    .starts
                    .back_mut()
                    .filter(|s| s.open && s.method == Method::Probe)
                {
                    s.engine_ready_at = Some(o.at);
                    s.open = false;
                    s.gap_seconds = s.listening_at.map(|l| o.at.seconds_since(l).max(0.0));
                    closed = s.gap_seconds.map(|g| (g, Method::Probe));
                }
            } else if !up {
                p.up_since = None;
            }
        }
        if let Some(c) = closed {
            self.record_gap(&pod.namespace, c);
        }
        if new_start {
            if let Some(c) = self.open_start(pod, Some(o.at)) {
                self.record_gap(&pod.namespace, c);
            }
        }
    }

    /// Forgets pods that have no live source (`live`) and no activity for the TTL.
    /// Returns how many were expired.
    pub fn expire(&mut self, now: Timestamp, live: &HashSet<PodRef>) -> usize {
        let ttl = self.cfg.pod_ttl_secs;
        let before = self.pods.len();
        self.pods.retain(|k, p| {
            if live.contains(k) {
                return true;
            }
            match p.last_activity {
                Some(a) => now.seconds_since(a) <= ttl,
                // Restored from a checkpoint, not seen since: give it a full TTL.
                None => {
                    p.last_activity = Some(now);
                    true
                }
            }
        });
        before - self.pods.len()
    }
}

/// Closes the open gap when `ts` is past its quiet deadline (log method only).
fn close_if_quiet(
    p: &mut PodTimeline,
    ts: Timestamp,
    cfg: &TimelineConfig,
) -> Option<(f64, Method)> {
    let s = p.starts.back()?;
    if !s.open || s.method != Method::Log {
        return None;
    }
    let anchor = s.last_db_error_at.or(s.listening_at)?;
    if ts.seconds_since(anchor) > cfg.quiet_period_secs {
        close_open(p)
    } else {
        None
    }
}

/// Closes the open gap (log method: end of the error burst; probe method
/// superseded by a new start: gap unknown). Returns the observed gap.
fn close_open(p: &mut PodTimeline) -> Option<(f64, Method)> {
    let s = p.starts.back_mut().filter(|s| s.open)?;
    s.open = false;
    match s.method {
        Method::Log => {
            let gap = match (s.listening_at, s.last_db_error_at) {
                (Some(l), Some(e)) => Some(e.seconds_since(l).max(0.0)),
                (Some(_), None) => Some(0.0),
                _ => None,
            };
            s.gap_seconds = gap;
            gap.map(|g| (g, Method::Log))
        }
        // A probe-method start that never saw the engine come up: no exact gap to report.
        Method::Probe => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts(s: f64) -> Option<Timestamp> {
        // Integer base + exact fractions: no f64 rounding in expected gaps.
        Some(Timestamp(
            1_700_000_000_000_000_000 + (s * 1e9).round() as i64,
        ))
    }
    fn ev(s: f64, kind: EventKind) -> Event {
        Event { ts: ts(s), kind }
    }
    fn pod() -> PodRef {
        PodRef {
            namespace: "llm".into(),
            pod: "litellm-0".into(),
        }
    }
    fn probe(s: f64, target: Target, result: Result<(), FailureReason>) -> ProbeOutcome {
        ProbeOutcome {
            target,
            at: ts(s).unwrap_or(Timestamp(0)),
            duration: Duration::from_millis(3),
            result,
            detail: Default::default(),
        }
    }

    #[test]
    fn log_gap_is_last_error_minus_listening() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.apply_event(&p, &ev(0.0, EventKind::ProxyListening));
        t.apply_event(
            &p,
            &ev(3.0, EventKind::DbConnectError(Operation::GetGenericData)),
        );
        t.apply_event(&p, &ev(4.0, EventKind::RequestServed));
        t.apply_event(
            &p,
            &ev(42.5, EventKind::DbConnectError(Operation::SpendLogsQueue)),
        );
        assert!(t.pod(&p).unwrap().open_start().is_some());
        t.advance(&p, ts(103.0).unwrap());
        assert!(
            t.pod(&p).unwrap().open_start().is_none(),
            "quiet period passed"
        );
        let pt = t.pod(&p).unwrap();
        assert_eq!(pt.last_gap(), Some((42.5, Method::Log)));
        assert_eq!(pt.counts.requests_during_gap, 1);
        assert_eq!(pt.counts.db_connect_errors_total(), 2);
        let (_, _, h) = t.histograms().next().unwrap();
        assert_eq!(h.count, 1);
        assert_eq!(h.sum, 42.5);
    }

    #[test]
    fn request_after_gap_is_not_at_risk_and_error_after_quiet_does_not_reopen() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.apply_event(&p, &ev(0.0, EventKind::ProxyListening));
        t.apply_event(&p, &ev(200.0, EventKind::DbConnectError(Operation::Other)));
        t.apply_event(&p, &ev(201.0, EventKind::RequestServed));
        let pt = t.pod(&p).unwrap();
        assert_eq!(pt.last_gap(), Some((0.0, Method::Log)));
        assert_eq!(pt.counts.requests_during_gap, 0);
        assert_eq!(pt.counts.db_connect_errors_total(), 1);
    }

    #[test]
    fn second_listening_is_a_new_start() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.apply_event(&p, &ev(0.0, EventKind::ProxyListening));
        t.apply_event(&p, &ev(5.0, EventKind::DbConnectError(Operation::Other)));
        t.apply_event(&p, &ev(10.0, EventKind::ProxyListening));
        let pt = t.pod(&p).unwrap();
        assert_eq!(pt.counts.proxy_starts, 2);
        assert_eq!(pt.starts.len(), 2);
        assert_eq!(pt.starts[0].gap_seconds, Some(5.0));
        assert!(pt.starts[1].open);
        t.finish();
        assert_eq!(t.pod(&p).unwrap().starts[1].gap_seconds, Some(0.0));
    }

    #[test]
    fn probe_closes_gap_exactly() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine]);
        t.apply_probe(
            &p,
            &probe(-1.0, Target::Engine, Err(FailureReason::Refused)),
        );
        t.apply_event(&p, &ev(0.0, EventKind::ProxyListening));
        t.apply_probe(&p, &probe(7.25, Target::Engine, Ok(())));
        let pt = t.pod(&p).unwrap();
        assert_eq!(pt.last_gap(), Some((7.25, Method::Probe)));
        assert_eq!(pt.starts[0].engine_ready_at, ts(7.25));
    }

    #[test]
    fn probe_success_read_before_listening_line_still_gives_gap() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine]);
        t.apply_probe(&p, &probe(5.0, Target::Engine, Ok(())));
        t.apply_event(&p, &ev(1.0, EventKind::ProxyListening));
        assert_eq!(t.pod(&p).unwrap().last_gap(), Some((4.0, Method::Probe)));
    }

    #[test]
    fn sidecar_without_log_opens_at_first_accepting_readiness_probe() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine, Target::ProxyReadiness]);
        t.apply_probe(
            &p,
            &probe(0.0, Target::ProxyReadiness, Err(FailureReason::Refused)),
        );
        assert_eq!(t.pod(&p).unwrap().counts.proxy_starts, 0);
        t.apply_probe(
            &p,
            &probe(2.0, Target::ProxyReadiness, Err(FailureReason::BadBody)),
        );
        assert!(t.pod(&p).unwrap().open_start().is_some());
        t.apply_probe(&p, &probe(9.0, Target::Engine, Ok(())));
        assert_eq!(t.pod(&p).unwrap().last_gap(), Some((7.0, Method::Probe)));
    }

    #[test]
    fn cap_on_pods_is_counted_not_fatal() {
        let mut t = Tracker::new(TimelineConfig {
            max_pods: 2,
            ..Default::default()
        });
        for i in 0..5 {
            let p = PodRef {
                namespace: "ns".into(),
                pod: format!("p{i}"),
            };
            t.apply_event(&p, &ev(0.0, EventKind::ProxyListening));
        }
        assert_eq!(t.pods().count(), 2);
        assert_eq!(t.pods_dropped(), 3);
    }

    #[test]
    fn snapshot_round_trip_keeps_counts_and_open_gap() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.apply_event(&p, &ev(0.0, EventKind::ProxyListening));
        t.apply_event(&p, &ev(1.0, EventKind::SpendBatchDropped));
        let json = serde_json::to_string(&t.snapshot()).unwrap();
        let mut t2 = Tracker::new(TimelineConfig::default());
        t2.restore(serde_json::from_str(&json).unwrap());
        t2.apply_event(&p, &ev(2.0, EventKind::DbConnectError(Operation::Other)));
        t2.advance(&p, ts(100.0).unwrap());
        let pt = t2.pod(&p).unwrap();
        assert_eq!(pt.counts.spend_batches_dropped, 1);
        assert_eq!(pt.last_gap(), Some((2.0, Method::Log)));
    }

    #[test]
    fn expiry_spares_live_pods() {
        let mut t = Tracker::new(TimelineConfig {
            pod_ttl_secs: 10.0,
            ..Default::default()
        });
        let (a, b) = (
            pod(),
            PodRef {
                namespace: "llm".into(),
                pod: "gone".into(),
            },
        );
        t.apply_event(&a, &ev(0.0, EventKind::ProxyListening));
        t.apply_event(&b, &ev(0.0, EventKind::ProxyListening));
        let live: HashSet<PodRef> = [a.clone()].into();
        assert_eq!(t.expire(Timestamp::now().plus_secs(60.0), &live), 1);
        assert!(t.pod(&a).is_some() && t.pod(&b).is_none());
    }
}
