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

mod handle;
pub mod view;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

pub use crate::model::Counts;
use crate::model::{Counter, Event, EventKind, FailureReason, PodRef, Target};
use crate::probe::ProbeOutcome;
use crate::time::{RfcTimestamp, Timestamp};
pub use handle::{SharedTracker, TrackerGuard, TrackerHandle};

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

/// How long without a DB failure (record time) ends a log-method gap or
/// outage. Real LiteLLM fails at least every few seconds while its engine is
/// down (per request, the DB health watchdog every ~1 s in 1.108+, the
/// `update_spend` job every 10 s + up to 9 s jitter), so 30 s outlasts every
/// lull inside one burst, yet separates a mid-life outage 30 s after the gap
/// from the gap itself (60 s merged the real 1.110.2 engine kill into it).
pub const DEFAULT_QUIET_PERIOD_SECS: f64 = 30.0;

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
            quiet_period_secs: DEFAULT_QUIET_PERIOD_SECS,
            max_pods: 2000,
            starts_kept: 32,
            pod_ttl_secs: 900.0,
        }
    }
}

/// A pod's probe states, read by name (v2) or from the v1 array.
mod probe_states {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer};

    use crate::model::Target;

    /// The v1 state file's array order ([`Target::ALL`] when it was written).
    const V1_ORDER: [Target; 3] = [Target::Engine, Target::ProxyReadiness, Target::Database];

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        ByName(BTreeMap<Target, bool>),
        Positional(Vec<Option<bool>>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Target, bool>, D::Error> {
        match Either::deserialize(d)? {
            Either::ByName(m) => Ok(m),
            Either::Positional(v) if v.len() == V1_ORDER.len() => Ok(V1_ORDER
                .into_iter()
                .zip(v)
                .filter_map(|(t, up)| up.map(|u| (t, u)))
                .collect()),
            Either::Positional(v) => Err(serde::de::Error::custom(format!(
                "probe_up: expected {} targets, found {}",
                V1_ORDER.len(),
                v.len()
            ))),
        }
    }
}

/// Requests seen while a gap or outage is open whose attribution waits for
/// its end (they count only if they fall inside it as finally measured).
/// Bounded: past [`PENDING_KEPT`] the oldest are summarised by count and range.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingRequests {
    /// Record times (ns), in arrival order.
    #[serde(default)]
    at: Vec<i64>,
    /// Requests no longer kept one by one, and their time range.
    #[serde(default)]
    overflow: u64,
    #[serde(default)]
    overflow_min: i64,
    #[serde(default)]
    overflow_max: i64,
}

/// Pending request times kept one by one per pod.
const PENDING_KEPT: usize = 8192;

impl PendingRequests {
    fn push(&mut self, t: Timestamp) {
        if self.at.len() >= PENDING_KEPT {
            let old = self.at.remove(0);
            if self.overflow == 0 {
                self.overflow_min = old;
                self.overflow_max = old;
            }
            self.overflow += 1;
            self.overflow_min = self.overflow_min.min(old);
            self.overflow_max = self.overflow_max.max(old);
        }
        self.at.push(t.0);
    }

    /// Removes and counts the requests at or before `bound` (`inclusive`) or
    /// strictly before it. The summarised ones count when their range is
    /// inside; otherwise they stay (at most an over-count bounded by them).
    fn take_until(&mut self, bound: Timestamp, inclusive: bool) -> u64 {
        let inside = |t: i64| if inclusive { t <= bound.0 } else { t < bound.0 };
        let before = self.at.len();
        self.at.retain(|&t| !inside(t));
        let mut n = (before - self.at.len()) as u64;
        if self.overflow > 0 && inside(self.overflow_min) {
            n += self.overflow;
            self.overflow = 0;
        }
        n
    }

    fn clear(&mut self) {
        *self = PendingRequests::default();
    }

    fn is_empty(&self) -> bool {
        self.at.is_empty() && self.overflow == 0
    }
}

/// A burst of DB failures (log) or an engine that stopped answering (probe)
/// after the start-up gap closed, in the same start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// First failure (log) / first failed probe (probe).
    pub started_at: Option<Timestamp>,
    /// Last failure seen so far (log method).
    pub last_failure_at: Option<Timestamp>,
    /// When the engine answered again (probe) or the burst's last failure (log), once closed.
    pub ended_at: Option<Timestamp>,
    /// Duration once closed; at the end of `report`'s input, how long it had lasted.
    pub seconds: Option<f64>,
    pub method: Method,
    /// Requests served inside it (attributed at its end).
    pub requests: u64,
    /// True until it ends.
    pub open: bool,
    /// Requests inside the burst so far (log method: up to its last failure).
    #[serde(default)]
    provisional_requests: u64,
}

/// An outage as the API and `report --json` show it (RFC 3339 times).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutageSummary {
    pub started_at: Option<RfcTimestamp>,
    pub ended_at: Option<RfcTimestamp>,
    /// Duration; for one still open at the end of the input, how long it had lasted.
    pub seconds: Option<f64>,
    pub method: &'static str,
    pub requests: u64,
    pub open: bool,
}

impl Outage {
    /// The outage in the outputs' vocabulary.
    pub fn summary(&self) -> OutageSummary {
        OutageSummary {
            started_at: self.started_at.map(RfcTimestamp),
            ended_at: self.ended_at.map(RfcTimestamp),
            seconds: self.seconds,
            method: self.method.as_str(),
            requests: self.requests,
            open: self.open,
        }
    }
}

/// One start of the proxy in a pod (one container run, whatever the number
/// of workers) and its gap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// When the proxy began accepting traffic (None: the log had no timestamps).
    pub listening_at: Option<Timestamp>,
    /// When every engine answered (probe method).
    pub engine_ready_at: Option<Timestamp>,
    /// The last DB connect error of the start-up burst (log method).
    pub last_db_error_at: Option<Timestamp>,
    /// Seconds of gap, once closed (None while open or without timestamps).
    pub gap_seconds: Option<f64>,
    /// How the gap is (or will be) measured.
    pub method: Method,
    /// True until the gap closes.
    pub open: bool,
    /// A DB failure (or a failed engine probe) after the start proved the gap
    /// real. An unconfirmed start closes with gap 0 and nothing at risk.
    #[serde(default)]
    pub confirmed: bool,
    /// Requests served inside the gap (attributed when it closes).
    #[serde(default)]
    pub requests: u64,
    /// Outages of this start, oldest first (bounded).
    #[serde(default)]
    pub outages: VecDeque<Outage>,
    /// Log method: requests up to the last failure so far.
    #[serde(default)]
    provisional_requests: u64,
    /// The run shut down (or was replaced) while this gap or its open outage
    /// was still failing, with no sign of recovery: it never closed.
    #[serde(default)]
    pub ended_while_failing: bool,
}

impl Start {
    /// A start that opened at `at`, its gap open and not yet confirmed.
    pub fn new(at: Option<Timestamp>, method: Method) -> Start {
        Start {
            listening_at: at,
            engine_ready_at: None,
            last_db_error_at: None,
            gap_seconds: None,
            method,
            open: true,
            confirmed: false,
            requests: 0,
            outages: VecDeque::new(),
            provisional_requests: 0,
            ended_while_failing: false,
        }
    }

    /// True while a confirmed gap is open: the pod is failing its DB calls now.
    pub fn in_gap(&self) -> bool {
        self.open && self.confirmed && !self.ended_while_failing
    }

    /// How long a still-open confirmed gap had been failing (listening → last failure).
    pub fn failing_seconds(&self) -> Option<f64> {
        match (self.listening_at, self.last_db_error_at) {
            (Some(l), Some(e)) if self.confirmed => Some(e.seconds_since(l).max(0.0)),
            _ => None,
        }
    }

    /// The open outage, if any.
    pub fn open_outage(&self) -> Option<&Outage> {
        self.outages.back().filter(|o| o.open)
    }

    /// Whether a late-read request at `t` falls inside this start's closed,
    /// confirmed gap.
    fn gap_covers(&self, t: Timestamp) -> bool {
        if self.open || !self.confirmed {
            return false;
        }
        let Some(l) = self.listening_at else {
            return false;
        };
        match self.method {
            Method::Log => self.last_db_error_at.is_some_and(|e| t >= l && t <= e),
            Method::Probe => self.engine_ready_at.is_some_and(|r| t >= l && t < r),
        }
    }
}

/// Where the current container run is: Uvicorn's lines tell a new run from
/// another worker of the same one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// `Started parent process` seen: workers follow, their lines are not new runs.
    #[serde(default)]
    pub parent: bool,
    /// The run's start is open (the first `Application startup complete.`).
    #[serde(default)]
    pub accepted: bool,
    /// `Uvicorn running on …` came before anything accepted (a fallback start).
    #[serde(default)]
    pub bound: bool,
    /// Its record time.
    #[serde(default)]
    pub bound_at: Option<Timestamp>,
    /// `Shutting down` seen: failures from here on are the shutdown's.
    #[serde(default)]
    pub stopping: bool,
}

/// Everything the agent knows about one pod.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PodTimeline {
    pub counts: Counts,
    /// Most recent last; bounded by [`TimelineConfig::starts_kept`].
    pub starts: VecDeque<Start>,
    /// Newest record timestamp seen for this pod.
    pub last_record_at: Option<Timestamp>,
    /// The last probe result per target (up or not); absent = not probed.
    /// Stored by name (a v1 state file's positional array is read too).
    #[serde(default, deserialize_with = "probe_states::deserialize")]
    pub probe_up: BTreeMap<Target, bool>,
    /// Since when the gap-closing probe target has been up (down→up transition).
    #[serde(default)]
    pub up_since: Option<Timestamp>,
    /// The latest failed probe of the gap-closing target.
    #[serde(default)]
    pub last_down_probe_at: Option<Timestamp>,
    /// Whether the proxy port was accepting connections at the last readiness probe.
    #[serde(default)]
    pub proxy_accepting: bool,
    /// The current container run (log lines).
    #[serde(default)]
    pub run: RunState,
    /// Requests not yet attributed (open gap or outage).
    #[serde(default)]
    pending: PendingRequests,
    /// Targets probed for this pod: with a gap-closing target, gaps use the probe method.
    /// Configuration, not state: re-registered at every start.
    #[serde(skip)]
    pub probed_targets: Vec<Target>,
    /// Wall time of the last activity (for expiry).
    #[serde(skip)]
    pub last_activity: Option<Timestamp>,
}

impl PodTimeline {
    /// The latest start while its gap is open (confirmed or not).
    pub fn open_start(&self) -> Option<&Start> {
        self.starts.back().filter(|s| s.open)
    }

    /// True while the pod is inside a confirmed start-up gap.
    pub fn in_gap(&self) -> bool {
        self.starts.back().is_some_and(Start::in_gap)
    }

    /// True while the latest start has an open outage.
    pub fn in_outage(&self) -> bool {
        self.starts
            .back()
            .is_some_and(|s| s.open_outage().is_some() && !s.ended_while_failing)
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
    /// Cumulative-free bucket counts, one per [`GAP_BUCKETS`] entry (+Inf is
    /// `count`). Stored by upper bound (`{"0.5": n, …}`), so changing the
    /// buckets re-buckets a saved histogram instead of shifting it; v1's
    /// positional array is read too.
    #[serde(with = "buckets_by_bound")]
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

/// [`GapHistogram::buckets`] by upper bound.
mod buckets_by_bound {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::GAP_BUCKETS;

    pub fn serialize<S: Serializer>(buckets: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let by_bound: Vec<(String, u64)> = GAP_BUCKETS
            .iter()
            .zip(buckets)
            .filter(|(_, n)| **n > 0)
            .map(|(b, n)| (b.to_string(), *n))
            .collect();
        s.collect_map(by_bound.iter().map(|(b, n)| (b.as_str(), n)))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        ByBound(BTreeMap<String, u64>),
        Positional(Vec<u64>),
    }

    /// A count saved under a bound this build does not have goes to the
    /// first bucket above it (every cumulative `le` stays a correct upper
    /// count); above the largest bound, only `count` (+Inf) holds it.
    fn add(buckets: &mut [u64], bound: f64, n: u64) {
        if let Some(i) = GAP_BUCKETS.iter().position(|b| bound <= *b) {
            buckets[i] += n;
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let mut buckets = vec![0; GAP_BUCKETS.len()];
        match Either::deserialize(d)? {
            Either::ByBound(m) => {
                for (bound, n) in m {
                    let b: f64 = bound.parse().map_err(|_| {
                        serde::de::Error::custom(format!("histogram bucket bound {bound:?}"))
                    })?;
                    add(&mut buckets, b, n);
                }
            }
            // v1: in the order of GAP_BUCKETS as it was (unchanged since).
            Either::Positional(v) if v.is_empty() => {}
            Either::Positional(v) if v.len() == GAP_BUCKETS.len() => buckets = v,
            Either::Positional(v) => {
                return Err(serde::de::Error::custom(format!(
                    "histogram: expected {} buckets, found {}",
                    GAP_BUCKETS.len(),
                    v.len()
                )))
            }
        }
        Ok(buckets)
    }
}

/// The serializable form of a [`Tracker`] (maps with struct keys as lists).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrackerState {
    pub pods: Vec<(PodRef, PodTimeline)>,
    pub histograms: Vec<(String, Method, GapHistogram)>,
    pub pods_dropped: u64,
    #[serde(default)]
    pub outage_histograms: Vec<(String, Method, GapHistogram)>,
}

/// Which histogram family an observation goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Measured {
    Gap,
    Outage,
}

/// All pods on this node (or the one pod of a sidecar).
#[derive(Debug, Default)]
pub struct Tracker {
    cfg: TimelineConfig,
    pods: HashMap<PodRef, PodTimeline>,
    histograms: HashMap<(String, Method), GapHistogram>,
    outage_histograms: HashMap<(String, Method), GapHistogram>,
    pods_dropped: u64,
    /// Changes whenever anything the outputs show may have changed (see
    /// [`Tracker::generation`]).
    generation: u64,
}

/// What a quiet period or a probe can change of a pod, cheap to compare: a
/// change moves the generation, an idle pass or a repeated probe result not.
type PodKey = (
    Option<Timestamp>,
    Option<Timestamp>,
    Option<Timestamp>,
    bool,
    BTreeMap<Target, bool>,
    Counts,
    Option<StartKey>,
);

/// The parts of the latest start a quiet period or a probe changes.
type StartKey = (
    Option<Timestamp>,
    bool,
    bool,
    Option<Timestamp>,
    bool,
    usize,
    Option<bool>,
);

fn pod_key(p: &PodTimeline) -> PodKey {
    (
        p.last_record_at,
        p.up_since,
        p.last_down_probe_at,
        p.proxy_accepting,
        p.probe_up.clone(),
        p.counts.clone(),
        p.starts.back().map(|s| {
            (
                s.listening_at,
                s.open,
                s.confirmed,
                s.engine_ready_at,
                s.ended_while_failing,
                s.outages.len(),
                s.outages.back().map(|o| o.open),
            )
        }),
    )
}

/// Outages kept per start for the API and reports.
const OUTAGES_KEPT: usize = 64;

/// A closed measurement to put into a histogram.
type Observation = (Measured, f64, Method);

impl Tracker {
    /// An empty tracker.
    pub fn new(cfg: TimelineConfig) -> Self {
        Tracker {
            cfg,
            ..Default::default()
        }
    }

    /// A number that changes whenever pod state the outputs show may have
    /// changed (counts, starts, gaps, outages, probe states, histograms, the
    /// set of pods): equal numbers mean equal `/metrics` and `/api/v1/pods`
    /// pod sections, so a rendering can be cached by it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Marks a change (also after recovering from a panic mid-update, whose
    /// partial change is unknown).
    pub(crate) fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Replaces the state with a checkpointed one (counters continue from it).
    pub fn restore(&mut self, state: TrackerState) {
        self.bump();
        // Older layouts were migrated when the file was read (`state::StateFile`).
        self.pods = state.pods.into_iter().collect();
        let to_map = |v: Vec<(String, Method, GapHistogram)>| {
            v.into_iter().map(|(ns, m, h)| ((ns, m), h)).collect()
        };
        self.histograms = to_map(state.histograms);
        self.outage_histograms = to_map(state.outage_histograms);
        self.pods_dropped = state.pods_dropped;
    }

    /// A copy of the state for the checkpoint, sorted (pods by name,
    /// histograms by namespace and method): the same state is the same bytes,
    /// so an unchanged checkpoint is recognised and not rewritten.
    pub fn snapshot(&self) -> TrackerState {
        let to_vec = |m: &HashMap<(String, Method), GapHistogram>| {
            let mut v: Vec<_> = m
                .iter()
                .map(|((ns, m), h)| (ns.clone(), *m, h.clone()))
                .collect();
            v.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
            v
        };
        let mut pods: Vec<_> = self
            .pods
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pods.sort_by(|a, b| a.0.cmp(&b.0));
        TrackerState {
            pods,
            histograms: to_vec(&self.histograms),
            pods_dropped: self.pods_dropped,
            outage_histograms: to_vec(&self.outage_histograms),
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

    /// Outage-duration histograms by (namespace, method).
    pub fn outage_histograms(&self) -> impl Iterator<Item = (&str, Method, &GapHistogram)> {
        self.outage_histograms
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
            self.bump();
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
    /// `now`: wall time (the pod counts as active).
    pub fn register_probes(&mut self, pod: &PodRef, targets: &[Target], now: Timestamp) {
        if let Some(p) = self.entry(pod) {
            p.probed_targets = targets.to_vec();
            p.last_activity = Some(now);
            self.bump();
        }
    }

    /// Applies one log event of `pod`. `now`: wall time, for expiry only
    /// (everything measured comes from the event's record time).
    pub fn apply_event(&mut self, pod: &PodRef, ev: &Event, now: Timestamp) {
        let cfg = self.cfg.clone();
        self.bump();
        let Some(p) = self.entry(pod) else { return };
        p.last_activity = Some(now);
        if let Some(ts) = ev.ts {
            p.last_record_at = Some(p.last_record_at.map_or(ts, |l| l.max(ts)));
        }
        let mut observed = Vec::new();
        if let Some(ts) = ev.ts {
            close_if_quiet(p, ts, &cfg, &mut observed);
        }
        if let Some((counter, n)) = ev.kind.counter() {
            p.counts.add(counter, n);
        }
        match ev.kind {
            EventKind::DbConnectError(_) => {
                if p.run.stopping {
                    // The run is shutting down (its engine often dies first).
                } else if !p.run.accepted && !p.run.parent {
                    if p.run.bound {
                        // A single server bound and failing without ever
                        // logging `Application startup complete.`: the bind
                        // was the start. (With workers, failures before the
                        // first accept are the workers' start-up, not traffic.)
                        open_start(p, p.run.bound_at, cfg.starts_kept, &mut observed);
                    }
                    db_failure(p, ev.ts);
                } else {
                    db_failure(p, ev.ts);
                }
            }
            EventKind::ProxyStopping => {
                if p.run.accepted && !p.run.stopping {
                    stop_run(p, &mut observed);
                }
                p.run.stopping = true;
            }
            // Counted above; nothing else to do.
            EventKind::SpendBatchDropped
            | EventKind::SpendRowsRequeued(_)
            | EventKind::SpendRowsLost(_)
            | EventKind::SpendUpdatesFailed
            | EventKind::EngineRestart
            | EventKind::BudgetCacheMiss
            | EventKind::ConfigLoadFailure(_)
            | EventKind::EngineDistroFallback => {}
            EventKind::RequestServed => {
                if !p.run.accepted && p.run.bound {
                    // Serving without ever logging `Application startup
                    // complete.`: the bind was the start.
                    open_start(p, p.run.bound_at, cfg.starts_kept, &mut observed);
                }
                request_served(p, ev.ts);
            }
            EventKind::ProcessStarted { parent } => {
                // After this run accepted traffic, a parent process (workers)
                // or a second single process is a new container run.
                if p.run.accepted && (parent || !p.run.parent) {
                    supersede(p, &mut observed);
                    p.run = RunState::default();
                }
                p.run.parent |= parent;
            }
            EventKind::ProxyAccepting => {
                if !p.run.accepted {
                    open_start(p, ev.ts, cfg.starts_kept, &mut observed);
                }
            }
            EventKind::ProxyListening => {
                if !p.run.accepted && !p.run.bound {
                    p.run.bound = true;
                    p.run.bound_at = ev.ts;
                }
            }
        }
        self.record(&pod.namespace, observed);
    }

    fn record(&mut self, namespace: &str, observed: Vec<Observation>) {
        if !observed.is_empty() {
            self.bump();
        }
        for (what, v, method) in observed {
            let map = match what {
                Measured::Gap => &mut self.histograms,
                Measured::Outage => &mut self.outage_histograms,
            };
            map.entry((namespace.to_string(), method))
                .or_default()
                .observe(v);
        }
    }

    /// Moves a pod's record clock forward (end of a read chunk): closes a
    /// log-method gap or outage whose quiet period has passed in record time.
    pub fn advance(&mut self, pod: &PodRef, ts: Timestamp) {
        let cfg = self.cfg.clone();
        let Some(p) = self.pods.get_mut(pod) else {
            return;
        };
        let before = pod_key(p);
        p.last_record_at = Some(p.last_record_at.map_or(ts, |l| l.max(ts)));
        let mut observed = Vec::new();
        close_if_quiet(p, ts, &cfg, &mut observed);
        if pod_key(p) != before {
            self.bump();
        }
        self.record(&pod.namespace, observed);
    }

    /// Live mode, called when every file has been read to its end: a pod whose
    /// log has been silent for the quiet period (wall time) has its log-method
    /// gap or outage closed. Their values still come from record timestamps.
    pub fn tick(&mut self, now: Timestamp) {
        let cfg = self.cfg.clone();
        let mut closed = Vec::new();
        let mut changed = false;
        for (pod, p) in self.pods.iter_mut() {
            let Some(s) = p.starts.back() else { continue };
            if s.method != Method::Log || !(s.open || s.open_outage().is_some()) {
                continue;
            }
            let last = p.last_record_at.or(s.listening_at);
            if last.is_some_and(|l| now.seconds_since(l) > cfg.quiet_period_secs) {
                let before = pod_key(p);
                let mut observed = Vec::new();
                close_if_quiet(p, now, &cfg, &mut observed);
                changed |= pod_key(p) != before;
                closed.push((pod.namespace.clone(), observed));
            }
        }
        if changed {
            self.bump();
        }
        for (ns, observed) in closed {
            self.record(&ns, observed);
        }
    }

    /// End of input (`report`): an unconfirmed gap closes with 0; a confirmed
    /// one whose quiet period the input did not reach stays open (still
    /// failing when the logs end), with the requests up to its last failure;
    /// so does an outage.
    pub fn finish(&mut self) {
        self.bump();
        let mut closed = Vec::new();
        for (pod, p) in self.pods.iter_mut() {
            let mut observed = Vec::new();
            if let Some(s) = p.starts.back_mut() {
                if s.open && !s.confirmed && s.method == Method::Log {
                    close_gap(s, &mut p.counts, &mut p.pending, None, &mut observed);
                } else if s.open {
                    if let Some(e) = s.last_db_error_at.filter(|_| s.confirmed) {
                        s.provisional_requests += p.pending.take_until(e, true);
                    }
                    s.requests += s.provisional_requests;
                    p.counts
                        .add(Counter::RequestsDuringGap, s.provisional_requests);
                    s.provisional_requests = 0;
                    p.pending.clear();
                } else if let Some(o) = s.outages.back_mut().filter(|o| o.open) {
                    if let Some(l) = o.last_failure_at {
                        o.provisional_requests += p.pending.take_until(l, true);
                    }
                    o.requests += o.provisional_requests;
                    p.counts
                        .add(Counter::RequestsDuringOutage, o.provisional_requests);
                    o.provisional_requests = 0;
                    p.pending.clear();
                    o.seconds = match (o.started_at, o.last_failure_at) {
                        (Some(a), Some(b)) => Some(b.seconds_since(a).max(0.0)),
                        _ => None,
                    };
                }
            }
            closed.push((pod.namespace.clone(), observed));
        }
        for (ns, observed) in closed {
            self.record(&ns, observed);
        }
    }

    /// Applies a probe result for `pod`.
    pub fn apply_probe(&mut self, pod: &PodRef, o: &ProbeOutcome) {
        let kept = self.cfg.starts_kept;
        let Some(p) = self.entry(pod) else { return };
        let before = pod_key(p);
        p.last_activity = Some(o.at);
        let was_up = p.probe_up.get(&o.target) == Some(&true);
        let up = o.result.is_ok();
        p.probe_up.insert(o.target, up);
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
                && p.counts[Counter::ProxyStarts] == 0
                && p.last_record_at.is_none();
            p.proxy_accepting = accepting;
        }
        let mut observed = Vec::new();
        if p.gap_target() == Some(o.target) {
            if up && !was_up {
                p.up_since = Some(o.at);
                engine_answered(p, o.at, &mut observed);
            } else if !up {
                p.up_since = None;
                p.last_down_probe_at = Some(o.at);
                engine_failed(p, o.at, was_up);
            }
        }
        if new_start {
            open_start(p, Some(o.at), kept, &mut observed);
            p.run.accepted = true;
        }
        if pod_key(p) != before {
            self.bump();
        }
        self.record(&pod.namespace, observed);
    }

    /// Forgets pods that have no live source (`live`) and no activity for the
    /// TTL, and the histograms of namespaces left without pods. Returns how
    /// many series groups (pods and histograms) were expired.
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
        let mut expired = before - self.pods.len();
        if expired > 0 {
            let namespaces: HashSet<&str> =
                self.pods.keys().map(|p| p.namespace.as_str()).collect();
            for map in [&mut self.histograms, &mut self.outage_histograms] {
                let n = map.len();
                map.retain(|(ns, _), _| namespaces.contains(ns.as_str()));
                expired += n - map.len();
            }
            self.bump();
        }
        expired
    }
}

/// Opens a new start (one container run) at `at`.
fn open_start(
    p: &mut PodTimeline,
    at: Option<Timestamp>,
    kept: usize,
    observed: &mut Vec<Observation>,
) {
    supersede(p, observed);
    p.run.accepted = true;
    p.counts.add(Counter::ProxyStarts, 1);
    let method = if p.gap_target().is_some() {
        Method::Probe
    } else {
        Method::Log
    };
    let mut start = Start::new(at, method);
    if method == Method::Probe {
        // A failed probe already read at or after the start confirms it.
        start.confirmed = match (p.last_down_probe_at, at) {
            (Some(d), Some(at)) => d >= at,
            _ => false,
        };
        if let (Some(up), Some(at)) = (p.up_since, at) {
            // The engine came up before or after the start was read: either
            // way the gap is known now.
            start.confirmed = p.last_down_probe_at.is_some_and(|d| d >= at && d < up);
            start.engine_ready_at = Some(up.max(at));
            start.gap_seconds = Some(if start.confirmed {
                up.seconds_since(at).max(0.0)
            } else {
                0.0
            });
            start.open = false;
            observed.push((Measured::Gap, start.gap_seconds.unwrap_or(0.0), method));
        }
    }
    p.pending.clear();
    p.starts.push_back(start);
    while p.starts.len() > kept.max(1) {
        p.starts.pop_front();
    }
}

/// A DB failure at `ts`: confirms and extends the open gap (log method), or
/// opens / extends an outage after the gap closed.
fn db_failure(p: &mut PodTimeline, ts: Option<Timestamp>) {
    let Some(s) = p.starts.back_mut() else {
        return;
    };
    if s.open {
        let after_start = match (s.listening_at, ts) {
            (Some(l), Some(t)) => t >= l,
            _ => true,
        };
        if !after_start {
            return;
        }
        s.confirmed = true;
        if let Some(t) = ts {
            s.last_db_error_at = Some(s.last_db_error_at.map_or(t, |l| l.max(t)));
            if s.method == Method::Log {
                s.provisional_requests += p.pending.take_until(t, true);
            }
        }
        return;
    }
    if s.method != Method::Log {
        // Probe-method pods measure outages by the probe (exact).
        return;
    }
    match s.outages.back_mut().filter(|o| o.open) {
        Some(o) => {
            if let Some(t) = ts {
                o.last_failure_at = Some(o.last_failure_at.map_or(t, |l| l.max(t)));
                o.provisional_requests += p.pending.take_until(t, true);
            }
        }
        None => {
            p.counts.add(Counter::DbOutages, 1);
            p.pending.clear();
            s.outages.push_back(Outage {
                started_at: ts,
                last_failure_at: ts,
                ended_at: None,
                seconds: None,
                method: Method::Log,
                requests: 0,
                open: true,
                provisional_requests: 0,
            });
            while s.outages.len() > OUTAGES_KEPT {
                s.outages.pop_front();
            }
        }
    }
}

/// A request served at `ts`: pending while a gap or outage is open, else
/// attributed at once when a late read falls inside a closed one.
fn request_served(p: &mut PodTimeline, ts: Option<Timestamp>) {
    let Some(s) = p.starts.back_mut() else {
        return;
    };
    let Some(t) = ts else {
        // Without record times only "while it is failing" can be told.
        if s.in_gap() {
            s.provisional_requests += 1;
        } else if let Some(o) = s.outages.back_mut().filter(|o| o.open) {
            o.provisional_requests += 1;
        }
        return;
    };
    if s.open {
        if s.listening_at.is_none_or(|l| t >= l) {
            p.pending.push(t);
        }
        return;
    }
    if let Some(o) = s.outages.back().filter(|o| o.open) {
        if o.started_at.is_none_or(|a| t >= a) {
            p.pending.push(t);
            return;
        }
    }
    if s.gap_covers(t) {
        s.requests += 1;
        p.counts.add(Counter::RequestsDuringGap, 1);
        return;
    }
    if let Some(o) = s
        .outages
        .iter_mut()
        .rev()
        .find(|o| !o.open && outage_covers(o, t))
    {
        o.requests += 1;
        p.counts.add(Counter::RequestsDuringOutage, 1);
    }
}

fn outage_covers(o: &Outage, t: Timestamp) -> bool {
    match (o.started_at, o.ended_at) {
        (Some(a), Some(e)) => match o.method {
            Method::Log => t >= a && t <= e,
            Method::Probe => t >= a && t < e,
        },
        _ => false,
    }
}

/// The gap-closing probe target answered at `at` (after not answering).
fn engine_answered(p: &mut PodTimeline, at: Timestamp, observed: &mut Vec<Observation>) {
    let Some(s) = p.starts.back_mut() else {
        return;
    };
    if s.open && s.method == Method::Probe {
        close_gap(s, &mut p.counts, &mut p.pending, Some(at), observed);
        return;
    }
    if let Some(o) = s
        .outages
        .back_mut()
        .filter(|o| o.open && o.method == Method::Probe)
    {
        o.open = false;
        o.ended_at = Some(at);
        o.seconds = o.started_at.map(|a| at.seconds_since(a).max(0.0));
        o.requests = p.pending.take_until(at, false);
        p.pending.clear();
        p.counts.add(Counter::RequestsDuringOutage, o.requests);
        observed.push((Measured::Outage, o.seconds.unwrap_or(0.0), Method::Probe));
    }
}

/// The gap-closing probe target failed at `at`; `was_up`: it answered before.
fn engine_failed(p: &mut PodTimeline, at: Timestamp, was_up: bool) {
    let Some(s) = p.starts.back_mut() else {
        return;
    };
    if s.open {
        if s.method == Method::Probe && s.listening_at.is_none_or(|l| at >= l) {
            s.confirmed = true;
        }
        return;
    }
    if s.method != Method::Probe || !was_up || s.open_outage().is_some() {
        return;
    }
    p.counts.add(Counter::DbOutages, 1);
    p.pending.clear();
    s.outages.push_back(Outage {
        started_at: Some(at),
        last_failure_at: Some(at),
        ended_at: None,
        seconds: None,
        method: Method::Probe,
        requests: 0,
        open: true,
        provisional_requests: 0,
    });
    while s.outages.len() > OUTAGES_KEPT {
        s.outages.pop_front();
    }
}

/// Closes the start's gap: probe method at `ready`, log method at its last
/// failure (0 when unconfirmed). Attributes its requests and records it.
fn close_gap(
    s: &mut Start,
    counts: &mut Counts,
    pending: &mut PendingRequests,
    ready: Option<Timestamp>,
    observed: &mut Vec<Observation>,
) {
    s.open = false;
    match (s.method, ready) {
        (Method::Probe, Some(r)) => {
            s.engine_ready_at = Some(r);
            if s.confirmed {
                s.gap_seconds = s.listening_at.map(|l| r.seconds_since(l).max(0.0));
                s.requests = pending.take_until(r, false);
            } else {
                s.gap_seconds = s.listening_at.map(|_| 0.0);
            }
        }
        _ => {
            if let Some(e) = s.last_db_error_at.filter(|_| s.confirmed) {
                s.provisional_requests += pending.take_until(e, true);
            }
            s.gap_seconds = match (s.listening_at, s.last_db_error_at) {
                (Some(l), Some(e)) if s.confirmed => Some(e.seconds_since(l).max(0.0)),
                (Some(_), _) => Some(0.0),
                _ => None,
            };
            s.requests = if s.confirmed {
                s.provisional_requests
            } else {
                0
            };
        }
    }
    pending.clear();
    counts.add(Counter::RequestsDuringGap, s.requests);
    if let Some(g) = s.gap_seconds {
        observed.push((Measured::Gap, g, s.method));
    }
}

/// Closes what the quiet period has ended by record time `ts` (log method):
/// the open gap, or the open outage.
fn close_if_quiet(
    p: &mut PodTimeline,
    ts: Timestamp,
    cfg: &TimelineConfig,
    observed: &mut Vec<Observation>,
) {
    let Some(s) = p.starts.back_mut() else {
        return;
    };
    if s.method != Method::Log || s.ended_while_failing {
        return;
    }
    if s.open {
        let anchor = if s.confirmed {
            s.last_db_error_at.or(s.listening_at)
        } else {
            s.listening_at
        };
        if anchor.is_some_and(|a| ts.seconds_since(a) > cfg.quiet_period_secs) {
            close_gap(s, &mut p.counts, &mut p.pending, None, observed);
        }
        return;
    }
    if let Some(o) = s.outages.back_mut().filter(|o| o.open) {
        if o.last_failure_at
            .is_some_and(|l| ts.seconds_since(l) > cfg.quiet_period_secs)
        {
            close_log_outage(o, &mut p.counts, &mut p.pending, observed);
        }
    }
}

fn close_log_outage(
    o: &mut Outage,
    counts: &mut Counts,
    pending: &mut PendingRequests,
    observed: &mut Vec<Observation>,
) {
    o.open = false;
    if let Some(l) = o.last_failure_at {
        o.provisional_requests += pending.take_until(l, true);
    }
    o.ended_at = o.last_failure_at;
    o.seconds = match (o.started_at, o.last_failure_at) {
        (Some(a), Some(b)) => Some(b.seconds_since(a).max(0.0)),
        _ => None,
    };
    o.requests = o.provisional_requests;
    pending.clear();
    counts.add(Counter::RequestsDuringOutage, o.requests);
    if let Some(v) = o.seconds {
        observed.push((Measured::Outage, v, o.method));
    }
}

/// The run is shutting down. An open gap or outage closes at its last
/// failure when requests were served after that failure without a new one
/// (the DB path worked again) or when no failure confirmed it; otherwise it
/// ended while still failing and stays open, its requests attributed up to
/// its last failure.
fn stop_run(p: &mut PodTimeline, observed: &mut Vec<Observation>) {
    let recovered = !p.pending.is_empty();
    let Some(s) = p.starts.back_mut() else {
        return;
    };
    let failing = (s.open && s.confirmed) || s.open_outage().is_some();
    if !failing || recovered || s.method == Method::Probe {
        supersede(p, observed);
        return;
    }
    s.ended_while_failing = true;
    if s.open {
        s.requests += s.provisional_requests;
        p.counts
            .add(Counter::RequestsDuringGap, s.provisional_requests);
        s.provisional_requests = 0;
    } else if let Some(o) = s.outages.back_mut().filter(|o| o.open) {
        o.requests += o.provisional_requests;
        p.counts
            .add(Counter::RequestsDuringOutage, o.provisional_requests);
        o.provisional_requests = 0;
        o.seconds = match (o.started_at, o.last_failure_at) {
            (Some(a), Some(b)) => Some(b.seconds_since(a).max(0.0)),
            _ => None,
        };
    }
    p.pending.clear();
}

/// A new start (or run) supersedes the current one: its open gap closes as
/// far as it was measured (log: at its last failure; probe: gap unknown), an
/// open outage ends at its last failure.
fn supersede(p: &mut PodTimeline, observed: &mut Vec<Observation>) {
    let Some(s) = p.starts.back_mut() else {
        return;
    };
    if s.ended_while_failing {
        return;
    }
    if s.open {
        match s.method {
            Method::Log => close_gap(s, &mut p.counts, &mut p.pending, None, observed),
            Method::Probe => {
                s.open = false;
                p.pending.clear();
            }
        }
    } else if let Some(o) = s.outages.back_mut().filter(|o| o.open) {
        match o.method {
            Method::Log => close_log_outage(o, &mut p.counts, &mut p.pending, observed),
            Method::Probe => {
                o.open = false;
                p.pending.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Operation;

    /// The wall clock the tests pass in (expiry is the only thing that reads it).
    const WALL: Timestamp = Timestamp(1_800_000_000_000_000_000);
    use std::time::Duration;

    fn ts(s: f64) -> Option<Timestamp> {
        // Integer base + exact fractions: no f64 rounding in expected gaps.
        Some(Timestamp(
            1_700_000_000_000_000_000 + (s * 1e9).round() as i64,
        ))
    }
    fn ev(s: f64, kind: EventKind) -> Event {
        Event {
            ts: ts(s),
            kind,
            rule: None,
        }
    }
    fn fail(s: f64) -> Event {
        ev(s, EventKind::DbConnectError(Operation::GetGenericData))
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
    fn apply(t: &mut Tracker, events: &[Event]) {
        for e in events {
            t.apply_event(&pod(), e, WALL);
        }
    }
    fn hist_count(t: &Tracker) -> u64 {
        t.histograms().map(|(_, _, h)| h.count).sum()
    }

    #[test]
    fn log_gap_ends_at_the_last_failure_and_counts_requests_inside_it_only() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(
            &mut t,
            &[
                ev(0.0, EventKind::ProxyAccepting),
                fail(3.0),
                ev(4.0, EventKind::RequestServed),
                fail(22.0),
                fail(42.5),
                ev(50.0, EventKind::RequestServed),
            ],
        );
        let pt = t.pod(&pod()).unwrap();
        assert!(pt.in_gap());
        assert_eq!(
            pt.counts[Counter::RequestsDuringGap],
            0,
            "attributed at close"
        );
        t.advance(&pod(), ts(103.0).unwrap());
        let pt = t.pod(&pod()).unwrap();
        assert!(!pt.in_gap() && pt.open_start().is_none());
        assert_eq!(pt.last_gap(), Some((42.5, Method::Log)));
        assert_eq!(
            pt.counts[Counter::RequestsDuringGap],
            1,
            "the request at 50 s was after the burst"
        );
        assert_eq!(pt.counts.db_connect_errors_total(), 3);
        let (_, _, h) = t.histograms().next().unwrap();
        assert_eq!((h.count, h.sum), (1, 42.5));
    }

    #[test]
    fn a_start_without_failures_has_gap_zero_and_nothing_at_risk() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(&mut t, &[ev(0.0, EventKind::ProxyAccepting)]);
        for i in 1..50 {
            t.apply_event(&pod(), &ev(f64::from(i), EventKind::RequestServed), WALL);
            assert!(!t.pod(&pod()).unwrap().in_gap(), "never in gap");
        }
        t.advance(&pod(), ts(200.0).unwrap());
        let pt = t.pod(&pod()).unwrap();
        assert_eq!(pt.last_gap(), Some((0.0, Method::Log)));
        assert_eq!(pt.counts[Counter::RequestsDuringGap], 0);
        assert_eq!(pt.counts[Counter::ProxyStarts], 1);
    }

    #[test]
    fn workers_make_one_start_at_the_first_application_startup_complete() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(
            &mut t,
            &[
                ev(0.0, EventKind::ProxyListening),
                ev(0.1, EventKind::ProcessStarted { parent: true }),
                ev(5.0, EventKind::ProcessStarted { parent: false }),
                ev(6.0, EventKind::ProcessStarted { parent: false }),
                fail(10.0),
                ev(43.0, EventKind::ProxyAccepting),
                ev(44.0, EventKind::ProxyAccepting),
                fail(60.0),
                // A worker respawned later is not a new run.
                ev(70.0, EventKind::ProcessStarted { parent: false }),
                ev(75.0, EventKind::ProxyAccepting),
            ],
        );
        t.advance(&pod(), ts(200.0).unwrap());
        let pt = t.pod(&pod()).unwrap();
        assert_eq!(pt.counts[Counter::ProxyStarts], 1);
        assert_eq!(pt.starts.len(), 1);
        assert_eq!(pt.starts[0].listening_at, ts(43.0));
        assert_eq!(pt.last_gap(), Some((17.0, Method::Log)));
        assert_eq!(
            pt.counts.db_connect_errors_total(),
            2,
            "errors before the start count too"
        );
    }

    #[test]
    fn single_process_restart_in_one_stream_is_a_new_start() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(
            &mut t,
            &[
                ev(0.0, EventKind::ProcessStarted { parent: false }),
                ev(1.0, EventKind::ProxyAccepting),
                ev(1.0, EventKind::ProxyListening),
                fail(6.0),
                ev(30.0, EventKind::ProcessStarted { parent: false }),
                ev(31.0, EventKind::ProxyAccepting),
                ev(31.0, EventKind::ProxyListening),
            ],
        );
        let pt = t.pod(&pod()).unwrap();
        assert_eq!(pt.counts[Counter::ProxyStarts], 2);
        assert_eq!(pt.starts[0].gap_seconds, Some(5.0));
        assert!(pt.starts[1].open && !pt.starts[1].confirmed);
        t.finish();
        assert_eq!(t.pod(&pod()).unwrap().starts[1].gap_seconds, Some(0.0));
    }

    #[test]
    fn uvicorn_running_is_the_start_when_no_startup_complete_is_logged() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(
            &mut t,
            &[
                ev(2.0, EventKind::ProxyListening),
                fail(5.0),
                ev(6.0, EventKind::RequestServed),
                fail(9.0),
            ],
        );
        t.advance(&pod(), ts(100.0).unwrap());
        let pt = t.pod(&pod()).unwrap();
        assert_eq!(pt.starts[0].listening_at, ts(2.0));
        assert_eq!(pt.last_gap(), Some((7.0, Method::Log)));
        assert_eq!(pt.counts[Counter::RequestsDuringGap], 1);
    }

    #[test]
    fn a_gap_still_failing_at_the_end_of_input_stays_open() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(
            &mut t,
            &[
                ev(0.0, EventKind::ProxyAccepting),
                fail(10.0),
                ev(15.0, EventKind::RequestServed),
                fail(20.0),
                ev(25.0, EventKind::RequestServed),
            ],
        );
        t.finish();
        let pt = t.pod(&pod()).unwrap();
        let s = &pt.starts[0];
        assert!(s.open && s.confirmed && pt.in_gap());
        assert_eq!(s.gap_seconds, None, "never reported as a closed gap");
        assert_eq!(s.failing_seconds(), Some(20.0));
        assert_eq!(s.requests, 1, "requests up to the last failure");
        assert_eq!(pt.last_gap(), None);
        assert_eq!(hist_count(&t), 0);
    }

    #[test]
    fn failures_after_the_gap_are_an_outage_of_the_same_start() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(&mut t, &[ev(0.0, EventKind::ProxyAccepting), fail(5.0)]);
        t.advance(&pod(), ts(70.0).unwrap());
        assert_eq!(t.pod(&pod()).unwrap().last_gap(), Some((5.0, Method::Log)));
        apply(
            &mut t,
            &[
                ev(190.0, EventKind::RequestServed),
                fail(200.0),
                ev(210.0, EventKind::RequestServed),
                fail(220.0),
                fail(240.0),
                ev(250.0, EventKind::RequestServed),
            ],
        );
        let pt = t.pod(&pod()).unwrap();
        assert!(pt.in_outage() && !pt.in_gap());
        assert_eq!(pt.counts[Counter::DbOutages], 1);
        t.advance(&pod(), ts(400.0).unwrap());
        let pt = t.pod(&pod()).unwrap();
        assert!(!pt.in_outage());
        let o = &pt.starts[0].outages[0];
        assert_eq!(
            (o.seconds, o.requests, o.method),
            (Some(40.0), 1, Method::Log)
        );
        assert_eq!(pt.counts[Counter::RequestsDuringOutage], 1);
        assert_eq!(pt.counts[Counter::ProxyStarts], 1);
        assert_eq!(
            pt.last_gap(),
            Some((5.0, Method::Log)),
            "the gap stays as it was"
        );
        let (_, m, h) = t.outage_histograms().next().unwrap();
        assert_eq!((m, h.count, h.sum), (Method::Log, 1, 40.0));
    }

    #[test]
    fn failures_during_shutdown_open_no_gap_or_outage() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(
            &mut t,
            &[
                ev(0.0, EventKind::ProxyAccepting),
                fail(20.0),
                ev(21.0, EventKind::RequestServed),
                ev(26.0, EventKind::ProxyStopping),
                fail(26.5),
                ev(26.6, EventKind::RequestServed),
            ],
        );
        t.finish();
        let pt = t.pod(&pod()).unwrap();
        assert_eq!(
            pt.last_gap(),
            Some((20.0, Method::Log)),
            "closed at the last failure before shutdown"
        );
        assert_eq!(pt.counts[Counter::RequestsDuringGap], 0);
        assert_eq!(pt.counts[Counter::DbOutages], 0);
        assert_eq!(
            pt.counts.db_connect_errors_total(),
            2,
            "still counted as errors"
        );
        // The next run starts clean.
        apply(
            &mut t,
            &[
                ev(40.0, EventKind::ProcessStarted { parent: false }),
                ev(41.0, EventKind::ProxyAccepting),
                fail(45.0),
            ],
        );
        let pt = t.pod(&pod()).unwrap();
        assert_eq!(pt.counts[Counter::ProxyStarts], 2);
        assert!(pt.in_gap());
    }

    #[test]
    fn a_run_shut_down_while_still_failing_keeps_its_gap_open() {
        let mut t = Tracker::new(TimelineConfig::default());
        apply(
            &mut t,
            &[
                ev(0.0, EventKind::ProxyAccepting),
                fail(5.0),
                ev(10.0, EventKind::RequestServed),
                fail(28.0),
                ev(29.0, EventKind::ProxyStopping),
                fail(36.0),
            ],
        );
        let pt = t.pod(&pod()).unwrap();
        let s = &pt.starts[0];
        assert!(s.open && s.ended_while_failing, "never closed: {s:?}");
        assert!(!pt.in_gap(), "a stopped run is not in its gap any more");
        assert_eq!((s.requests, pt.counts[Counter::RequestsDuringGap]), (1, 1));
        t.advance(&pod(), ts(500.0).unwrap());
        t.finish();
        let pt = t.pod(&pod()).unwrap();
        assert!(
            pt.starts[0].open,
            "the quiet period does not close it later"
        );
        assert_eq!(pt.starts[0].failing_seconds(), Some(28.0));
        assert_eq!(pt.counts[Counter::RequestsDuringGap], 1, "counted once");
        assert_eq!(hist_count(&t), 0);
    }

    #[test]
    fn probe_closes_a_confirmed_gap_exactly() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine], WALL);
        t.apply_event(&p, &ev(0.0, EventKind::ProxyAccepting), WALL);
        t.apply_probe(&p, &probe(1.0, Target::Engine, Err(FailureReason::Refused)));
        t.apply_event(&p, &ev(3.0, EventKind::RequestServed), WALL);
        t.apply_event(&p, &ev(8.0, EventKind::RequestServed), WALL);
        t.apply_probe(&p, &probe(7.25, Target::Engine, Ok(())));
        let pt = t.pod(&p).unwrap();
        assert_eq!(pt.last_gap(), Some((7.25, Method::Probe)));
        assert_eq!(pt.starts[0].engine_ready_at, ts(7.25));
        assert_eq!(
            pt.counts[Counter::RequestsDuringGap],
            1,
            "8 s is after readiness"
        );
        // A request read late whose time is inside the gap still counts.
        t.apply_event(&p, &ev(5.0, EventKind::RequestServed), WALL);
        assert_eq!(t.pod(&p).unwrap().counts[Counter::RequestsDuringGap], 2);
    }

    #[test]
    fn an_engine_ready_at_the_first_probe_is_no_gap() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine], WALL);
        t.apply_event(&p, &ev(0.0, EventKind::ProxyAccepting), WALL);
        t.apply_event(&p, &ev(0.5, EventKind::RequestServed), WALL);
        t.apply_probe(&p, &probe(0.9, Target::Engine, Ok(())));
        let pt = t.pod(&p).unwrap();
        assert_eq!(pt.last_gap(), Some((0.0, Method::Probe)));
        assert_eq!(pt.counts[Counter::RequestsDuringGap], 0);
    }

    #[test]
    fn probe_success_read_before_the_start_line_still_gives_the_gap() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine], WALL);
        t.apply_probe(&p, &probe(2.0, Target::Engine, Err(FailureReason::Refused)));
        t.apply_probe(&p, &probe(5.0, Target::Engine, Ok(())));
        t.apply_event(&p, &ev(1.0, EventKind::ProxyAccepting), WALL);
        assert_eq!(t.pod(&p).unwrap().last_gap(), Some((4.0, Method::Probe)));
    }

    #[test]
    fn an_engine_lost_after_the_gap_is_a_probe_outage() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine], WALL);
        t.apply_probe(&p, &probe(0.5, Target::Engine, Err(FailureReason::Refused)));
        t.apply_event(&p, &ev(0.0, EventKind::ProxyAccepting), WALL);
        t.apply_probe(&p, &probe(4.0, Target::Engine, Ok(())));
        t.apply_probe(
            &p,
            &probe(100.0, Target::Engine, Err(FailureReason::Refused)),
        );
        assert!(t.pod(&p).unwrap().in_outage());
        t.apply_event(&p, &ev(110.0, EventKind::RequestServed), WALL);
        t.apply_probe(
            &p,
            &probe(101.0, Target::Engine, Err(FailureReason::Refused)),
        );
        t.apply_probe(&p, &probe(130.0, Target::Engine, Ok(())));
        let pt = t.pod(&p).unwrap();
        let o = &pt.starts[0].outages[0];
        assert_eq!((o.seconds, o.requests, o.open), (Some(30.0), 1, false));
        assert_eq!(
            (
                pt.counts[Counter::DbOutages],
                pt.counts[Counter::RequestsDuringOutage]
            ),
            (1, 1)
        );
        assert_eq!(pt.last_gap(), Some((4.0, Method::Probe)));
    }

    #[test]
    fn sidecar_without_log_opens_at_first_accepting_readiness_probe() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine, Target::ProxyReadiness], WALL);
        t.apply_probe(
            &p,
            &probe(0.0, Target::ProxyReadiness, Err(FailureReason::Refused)),
        );
        assert_eq!(t.pod(&p).unwrap().counts[Counter::ProxyStarts], 0);
        t.apply_probe(
            &p,
            &probe(2.0, Target::ProxyReadiness, Err(FailureReason::BadBody)),
        );
        assert!(t.pod(&p).unwrap().open_start().is_some());
        t.apply_probe(&p, &probe(3.0, Target::Engine, Err(FailureReason::Refused)));
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
            t.apply_event(&p, &ev(0.0, EventKind::ProxyAccepting), WALL);
        }
        assert_eq!(t.pods().count(), 2);
        assert_eq!(t.pods_dropped(), 3);
    }

    #[test]
    fn snapshot_round_trip_keeps_counts_pending_requests_and_open_gap() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        apply(
            &mut t,
            &[
                ev(0.0, EventKind::ProxyAccepting),
                ev(1.0, EventKind::SpendBatchDropped),
                fail(1.5),
                ev(1.8, EventKind::RequestServed),
            ],
        );
        let json = serde_json::to_string(&t.snapshot()).unwrap();
        let mut t2 = Tracker::new(TimelineConfig::default());
        t2.restore(serde_json::from_str(&json).unwrap());
        t2.apply_event(&p, &fail(2.0), WALL);
        t2.advance(&p, ts(100.0).unwrap());
        let pt = t2.pod(&p).unwrap();
        assert_eq!(pt.counts[Counter::SpendBatchesDropped], 1);
        assert_eq!(pt.last_gap(), Some((2.0, Method::Log)));
        assert_eq!(
            pt.counts[Counter::RequestsDuringGap],
            1,
            "the pending request survived"
        );
        // A later worker's line is not a new start after a restore.
        t2.apply_event(&p, &ev(101.0, EventKind::ProxyAccepting), WALL);
        assert_eq!(t2.pod(&p).unwrap().counts[Counter::ProxyStarts], 1);
    }

    #[test]
    fn histograms_are_stored_by_bound_and_rebucketed_when_bounds_change() {
        let mut h = GapHistogram::default();
        h.observe(0.3);
        h.observe(20.25);
        h.observe(5000.0);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["buckets"], serde_json::json!({"0.5": 1, "30": 1}));
        let back: GapHistogram = serde_json::from_value(json).unwrap();
        assert_eq!(back, h);
        // v1's positional array.
        let v1: GapHistogram = serde_json::from_str(
            r#"{"buckets":[1,0,0,0,0,0,1,2,0,1,0,0,0,0],"sum":219.25,"count":5}"#,
        )
        .unwrap();
        assert_eq!(v1.buckets[7], 2);
        // A bound this build lacks: into the next one up.
        let other: GapHistogram =
            serde_json::from_str(r#"{"buckets":{"45":3,"3600":1},"sum":1.0,"count":4}"#).unwrap();
        let i60 = GAP_BUCKETS.iter().position(|b| *b == 60.0).unwrap();
        assert_eq!(other.buckets[i60], 3);
        assert_eq!(
            other.buckets.iter().sum::<u64>(),
            3,
            "above every bound: +Inf only"
        );
        assert!(
            serde_json::from_str::<GapHistogram>(r#"{"buckets":[1],"sum":0,"count":1}"#).is_err()
        );
    }

    #[test]
    fn pending_requests_are_bounded() {
        let mut pr = PendingRequests::default();
        for i in 0..(PENDING_KEPT as i64 + 100) {
            pr.push(Timestamp(i));
        }
        assert_eq!(pr.at.len(), PENDING_KEPT);
        assert_eq!(
            pr.take_until(Timestamp(i64::MAX), true),
            PENDING_KEPT as u64 + 100
        );
    }

    #[test]
    fn expiry_spares_live_pods_and_drops_histograms_of_empty_namespaces() {
        let mut t = Tracker::new(TimelineConfig {
            pod_ttl_secs: 10.0,
            ..Default::default()
        });
        let a = pod();
        let b = PodRef {
            namespace: "gone-ns".into(),
            pod: "gone".into(),
        };
        for p in [&a, &b] {
            t.apply_event(p, &ev(0.0, EventKind::ProxyAccepting), WALL);
            t.apply_event(p, &fail(1.0), WALL);
            t.advance(p, ts(100.0).unwrap());
        }
        assert_eq!(t.histograms().count(), 2);
        let live: HashSet<PodRef> = [a.clone()].into();
        assert_eq!(t.expire(WALL.plus_secs(60.0), &live), 2);
        assert!(t.pod(&a).is_some() && t.pod(&b).is_none());
        assert_eq!(t.histograms().count(), 1);
        assert_eq!(t.histograms().next().unwrap().0, "llm");
    }
}
