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
//!
//! Files: this one holds the [`Tracker`] (all pods, histograms, the cap,
//! expiry); `pod` the per-pod data; `transitions` the state machine's steps;
//! `handle` the [`TrackerHandle`] shared between threads (poison recovery,
//! [`TrackerHandle::generation`]); `view` the API's [`view::PodView`]. The
//! tracker never reads a clock: callers pass `now` (wall time, used for
//! expiry only; everything measured comes from record and probe times).

mod handle;
mod pod;
mod transitions;
pub mod view;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::model::Counts;
use crate::model::{Counter, Event, EventKind, FailureReason, PodRef, Target};
use crate::probe::ProbeOutcome;
use crate::time::Timestamp;
pub use handle::{SharedTracker, TrackerGuard, TrackerHandle};
pub(crate) use pod::RequestsCell;
pub use pod::{GapHistogram, Outage, OutageSummary, PendingRequests, PodTimeline, RunState, Start};
use transitions::*;

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
pub(crate) const GAP_BUCKETS: [f64; 14] = [
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

/// The serializable form of a [`Tracker`] (maps with struct keys as lists).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrackerState {
    pub pods: Vec<(PodRef, PodTimeline)>,
    pub histograms: Vec<(String, Method, GapHistogram)>,
    pub pods_dropped: u64,
    #[serde(default)]
    pub outage_histograms: Vec<(String, Method, GapHistogram)>,
}

/// All pods on this node (or the one pod of a sidecar).
#[derive(Debug, Default)]
pub struct Tracker {
    cfg: TimelineConfig,
    /// Looked up for every decoded line and block: a fast hasher (pod
    /// names are the cluster's, bounded by `max_pods`).
    pods: rustc_hash::FxHashMap<PodRef, PodTimeline>,
    histograms: HashMap<(String, Method), GapHistogram>,
    outage_histograms: HashMap<(String, Method), GapHistogram>,
    pods_dropped: u64,
    /// Changes whenever anything the outputs show may have changed (see
    /// [`Tracker::generation`]).
    generation: u64,
    /// Moves on every change of any state the checkpoint holds (a superset
    /// of `generation`): an unchanged number means an unchanged snapshot.
    changes: u64,
}

/// What `/metrics` shows of a pod, compared before and after each change
/// without allocating: when it is equal, the generation stays, so a log
/// chunk, an access line or a repeated probe answer that changes nothing
/// shown keeps the cached page. (Histograms, the pod set and the dropped
/// count move the generation where they change.)
#[derive(Clone, Copy, PartialEq, Eq)]
struct ShownKey {
    /// Counters only grow: equal sums mean equal counts.
    counts_total: u64,
    /// Two bits per probe target: not probed, down, up.
    probe_up: u8,
    latest_start: Option<StartKey>,
}

/// The parts of the latest start `/metrics` shows (open, confirmed, its
/// open-since time, the outage state); a new start changes `listening_at`
/// or the number of starts kept.
type StartKey = (
    Option<Timestamp>,
    bool,
    bool,
    bool,
    usize,
    Option<bool>,
    usize,
);

/// Tells the pod's [`RequestsCell`] holders the new answer (after every change).
fn publish(p: &PodTimeline) {
    p.requests.publish(p.requests_matter_until());
}

fn shown_key(p: &PodTimeline) -> ShownKey {
    let probe_up = Target::ALL.iter().enumerate().fold(0u8, |bits, (i, t)| {
        let v = match p.probe_up.get(t) {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        };
        bits | (v << (2 * i))
    });
    ShownKey {
        counts_total: p.counts.iter().fold(0u64, |a, (_, v)| a.wrapping_add(v)),
        probe_up,
        latest_start: p.starts.back().map(|s| {
            (
                s.listening_at,
                s.open,
                s.confirmed,
                s.ended_while_failing,
                s.outages.len(),
                s.outages.back().map(|o| o.open),
                p.starts.len(),
            )
        }),
    }
}

impl Tracker {
    /// An empty tracker.
    pub fn new(cfg: TimelineConfig) -> Self {
        Tracker {
            cfg,
            ..Default::default()
        }
    }

    /// A number that changes whenever pod state `/metrics` shows may have
    /// changed (counts, starts, gaps, outages, probe states, histograms, the
    /// set of pods): equal numbers mean equal pod families, so their
    /// rendering can be cached by it. Record clocks and request bookkeeping
    /// that nothing exports until a gap closes do not move it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A number that changes whenever the checkpointed state may have
    /// changed (equal numbers: no new snapshot needed).
    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    /// Marks a change (also after recovering from a panic mid-update, whose
    /// partial change is unknown).
    pub(crate) fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.changes = self.changes.wrapping_add(1);
    }

    /// Replaces the state with a checkpointed one (counters continue from it).
    pub fn restore(&mut self, state: TrackerState) {
        self.bump();
        // Older layouts were migrated when the file was read (`state::StateFile`).
        for p in self.pods.values() {
            p.requests.invalidate();
        }
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

    /// Up to which record time a request served by `pod` can still change
    /// the tracker: `None` while the pod is not tracked yet, else
    /// [`PodTimeline::requests_matter_until`].
    pub(crate) fn requests_matter_until(&self, pod: &PodRef) -> Option<Timestamp> {
        self.pod(pod)?.requests_matter_until()
    }

    /// The pod's published [`Tracker::requests_matter_until`] (None while
    /// the pod is not tracked): read it instead of asking per block.
    pub(crate) fn requests_cell(&self, pod: &PodRef) -> Option<Arc<RequestsCell>> {
        let p = self.pod(pod)?;
        publish(p);
        Some(Arc::clone(&p.requests))
    }

    /// Gap histograms by (namespace, method).
    pub fn histograms(&self) -> impl Iterator<Item = (&str, Method, &GapHistogram)> {
        self.histograms
            .iter()
            .map(|((ns, m), h)| (ns.as_str(), *m, h))
    }

    /// Outage-duration histograms by (namespace, method).
    pub(crate) fn outage_histograms(&self) -> impl Iterator<Item = (&str, Method, &GapHistogram)> {
        self.outage_histograms
            .iter()
            .map(|((ns, m), h)| (ns.as_str(), *m, h))
    }

    /// Pods not tracked because the cap was reached.
    pub(crate) fn pods_dropped(&self) -> u64 {
        self.pods_dropped
    }

    /// The pod's state, created on first sight unless the cap is reached.
    fn entry(&mut self, pod: &PodRef) -> Option<&mut PodTimeline> {
        self.changes = self.changes.wrapping_add(1);
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
    pub(crate) fn register_probes(&mut self, pod: &PodRef, targets: &[Target], now: Timestamp) {
        if let Some(p) = self.entry(pod) {
            p.probed_targets = targets.to_vec();
            p.last_activity = Some(now);
            self.bump();
        }
    }

    /// Applies one log event of `pod`. `now`: wall time, for expiry only
    /// (everything measured comes from the event's record time).
    pub(crate) fn apply_event(&mut self, pod: &PodRef, ev: &Event, now: Timestamp) {
        let cfg = self.cfg.clone();
        let Some(p) = self.entry(pod) else { return };
        let before = shown_key(p);
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
        publish(p);
        if shown_key(p) != before {
            self.bump();
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
    pub(crate) fn advance(&mut self, pod: &PodRef, ts: Timestamp) {
        let cfg = self.cfg.clone();
        self.changes = self.changes.wrapping_add(1);
        let Some(p) = self.pods.get_mut(pod) else {
            return;
        };
        p.last_record_at = Some(p.last_record_at.map_or(ts, |l| l.max(ts)));
        // Called per file per pass: nothing open, nothing to close.
        if !p.starts.back().is_some_and(|s| s.closes_when_quiet()) {
            return;
        }
        let before = shown_key(p);
        let mut observed = Vec::new();
        close_if_quiet(p, ts, &cfg, &mut observed);
        publish(p);
        if shown_key(p) != before {
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
                let before = shown_key(p);
                let mut observed = Vec::new();
                close_if_quiet(p, now, &cfg, &mut observed);
                publish(p);
                changed |= shown_key(p) != before;
                self.changes = self.changes.wrapping_add(1);
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
            publish(p);
            closed.push((pod.namespace.clone(), observed));
        }
        for (ns, observed) in closed {
            self.record(&ns, observed);
        }
    }

    /// Applies a probe result for `pod`.
    pub(crate) fn apply_probe(&mut self, pod: &PodRef, o: &ProbeOutcome) {
        let kept = self.cfg.starts_kept;
        let Some(p) = self.entry(pod) else { return };
        let before = shown_key(p);
        p.last_activity = Some(o.at);
        let was_up = p.probe_up.get(&o.target) == Some(&true);
        let up = o.result.is_ok();
        p.probe_up.insert(o.target, up);
        let mut new_start = false;
        if o.target == Target::ProxyReadiness {
            // The proxy port accepted the probe's connection (even if it then
            // said "db": "Not connected" or, like LiteLLM 1.110.2, kept quiet
            // past the probe timeout): it takes traffic.
            let accepting = o.result.err().is_none_or(FailureReason::connected);
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
        publish(p);
        if shown_key(p) != before {
            self.bump();
        }
        self.record(&pod.namespace, observed);
    }

    /// Forgets pods that have no live source (`is_live`) and no activity for
    /// the TTL, and the histograms of namespaces left without pods. Returns
    /// how many series groups (pods and histograms) were expired.
    pub(crate) fn expire(&mut self, now: Timestamp, is_live: &dyn Fn(&PodRef) -> bool) -> usize {
        let ttl = self.cfg.pod_ttl_secs;
        let before = self.pods.len();
        self.pods.retain(|k, p| {
            if is_live(k) {
                return true;
            }
            let keep = match p.last_activity {
                Some(a) => now.seconds_since(a) <= ttl,
                // Restored from a checkpoint, not seen since: give it a full TTL.
                None => {
                    p.last_activity = Some(now);
                    true
                }
            };
            if !keep {
                p.requests.invalidate();
            }
            keep
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

#[cfg(test)]
mod tests {
    use super::pod::PENDING_KEPT;
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
    fn generation_moves_on_probe_changes_not_on_repeated_answers() {
        let mut t = Tracker::new(TimelineConfig::default());
        let p = pod();
        t.register_probes(&p, &[Target::Engine], WALL);
        t.apply_event(&p, &ev(0.0, EventKind::ProxyAccepting), WALL);
        t.apply_probe(&p, &probe(1.0, Target::Engine, Err(FailureReason::Refused)));
        let g = t.generation();
        t.apply_probe(&p, &probe(2.0, Target::Engine, Ok(())));
        assert_ne!(t.generation(), g, "the gap closed");
        let g = t.generation();
        for s in [3.0, 4.0, 5.0] {
            t.apply_probe(&p, &probe(s, Target::Engine, Ok(())));
        }
        assert_eq!(
            t.generation(),
            g,
            "the same answer again changes nothing shown"
        );
        t.tick(ts(500.0).unwrap());
        let live: HashSet<PodRef> = [p.clone()].into();
        assert_eq!(t.expire(WALL, &|p| live.contains(p)), 0);
        assert_eq!(t.generation(), g, "an idle tick or expiry pass neither");
        t.apply_probe(&p, &probe(6.0, Target::Engine, Err(FailureReason::Timeout)));
        assert_ne!(t.generation(), g, "the engine went away");
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
        assert_eq!(t.expire(WALL.plus_secs(60.0), &|p| live.contains(p)), 2);
        assert!(t.pod(&a).is_some() && t.pod(&b).is_none());
        assert_eq!(t.histograms().count(), 1);
        assert_eq!(t.histograms().next().unwrap().0, "llm");
    }
}
