//! One pod's state: its starts, gaps, outages, pending requests and probe
//! states, and the gap histograms. Plain data (serialised whole into the
//! checkpoint); the transitions are in `transitions`, driven by the tracker.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Method, GAP_BUCKETS};
use crate::model::{Counts, Target};
use crate::time::{RfcTimestamp, Timestamp};

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

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
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
    pub(super) at: Vec<i64>,
    /// Requests no longer kept one by one, and their time range.
    #[serde(default)]
    pub(super) overflow: u64,
    #[serde(default)]
    pub(super) overflow_min: i64,
    #[serde(default)]
    pub(super) overflow_max: i64,
}

/// Pending request times kept one by one per pod.
pub(super) const PENDING_KEPT: usize = 8192;

impl PendingRequests {
    pub(super) fn push(&mut self, t: Timestamp) {
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
    pub(super) fn take_until(&mut self, bound: Timestamp, inclusive: bool) -> u64 {
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

    pub(super) fn clear(&mut self) {
        *self = PendingRequests::default();
    }

    pub(super) fn is_empty(&self) -> bool {
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
    pub(super) provisional_requests: u64,
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
    pub(super) provisional_requests: u64,
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
    pub(crate) fn open_outage(&self) -> Option<&Outage> {
        self.outages.back().filter(|o| o.open)
    }

    /// A log-method gap or outage is open that enough quiet record time
    /// would close (see `close_if_quiet`).
    pub(super) fn closes_when_quiet(&self) -> bool {
        self.method == Method::Log
            && !self.ended_while_failing
            && (self.open || self.open_outage().is_some())
    }

    /// Whether a late-read request at `t` falls inside this start's closed,
    /// confirmed gap.
    pub(super) fn gap_covers(&self, t: Timestamp) -> bool {
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
    /// Most recent last; bounded by [`super::TimelineConfig::starts_kept`].
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
    pub(super) pending: PendingRequests,
    /// Targets probed for this pod: with a gap-closing target, gaps use the probe method.
    /// Configuration, not state: re-registered at every start.
    #[serde(skip)]
    pub probed_targets: Vec<Target>,
    /// Wall time of the last activity (for expiry).
    #[serde(skip)]
    pub last_activity: Option<Timestamp>,
    /// [`PodTimeline::requests_matter_until`] as of the pod's last change,
    /// for the tail loop (see [`RequestsCell`]).
    #[serde(skip)]
    pub(crate) requests: Arc<RequestsCell>,
}

impl PodTimeline {
    /// The latest start while its gap is open (confirmed or not).
    #[cfg(test)]
    pub(crate) fn open_start(&self) -> Option<&Start> {
        self.starts.back().filter(|s| s.open)
    }

    /// True while the pod is inside a confirmed start-up gap.
    pub fn in_gap(&self) -> bool {
        self.starts.back().is_some_and(Start::in_gap)
    }

    /// True while the latest start has an open outage.
    pub(crate) fn in_outage(&self) -> bool {
        self.starts
            .back()
            .is_some_and(|s| s.open_outage().is_some() && !s.ended_while_failing)
    }

    /// Up to which record time a request served by this pod can still
    /// change its timeline: `None` while any can (its run is bound but not
    /// accepting — a request would open the start — or its latest start or
    /// outage is open: requests wait for the verdict); otherwise the latest
    /// time a closed gap or outage covers (a request read late may fall
    /// inside one), `i64::MIN` when there is none. Past that, a
    /// request-served event only moves the record clock, so the scanner
    /// may skip access lines. It mirrors `Tracker::apply_event`'s
    /// `RequestServed` branch; the property test `tests/it/scan.rs` holds
    /// the scanner to the line-by-line result.
    pub(crate) fn requests_matter_until(&self) -> Option<Timestamp> {
        if self.run.bound && !self.run.accepted {
            return None;
        }
        if self
            .starts
            .back()
            .is_some_and(|s| s.open || s.outages.back().is_some_and(|o| o.open))
        {
            return None;
        }
        let mut until = Timestamp(i64::MIN);
        for s in &self.starts {
            let ends = [s.last_db_error_at, s.engine_ready_at, s.listening_at];
            let outage_ends = s
                .outages
                .iter()
                .flat_map(|o| [o.ended_at, o.last_failure_at, o.started_at]);
            for end in ends.into_iter().chain(outage_ends).flatten() {
                until = until.max(end);
            }
        }
        Some(until)
    }

    /// The target whose success closes a gap: the engine when probed, else LiteLLM's readiness.
    pub(super) fn gap_target(&self) -> Option<Target> {
        if self.probed_targets.contains(&Target::Engine) {
            Some(Target::Engine)
        } else if self.probed_targets.contains(&Target::ProxyReadiness) {
            Some(Target::ProxyReadiness)
        } else {
            None
        }
    }

    /// The most recent closed gap and its method.
    pub(crate) fn last_gap(&self) -> Option<(f64, Method)> {
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
    pub(super) fn observe(&mut self, v: f64) {
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

    pub(crate) fn serialize<S: Serializer>(buckets: &[u64], s: S) -> Result<S::Ok, S::Error> {
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
    pub(super) fn add(buckets: &mut [u64], bound: f64, n: u64) {
        if let Some(i) = GAP_BUCKETS.iter().position(|b| bound <= *b) {
            buckets[i] += n;
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
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

/// A pod's [`PodTimeline::requests_matter_until`], published by the
/// tracker after every change of the pod. The scanner asks it before every
/// block the tail loop reads (thousands a second on a busy node); with this
/// handle, kept per file, the answer is one atomic load instead of a pod
/// lookup under the tracker's lock and a walk of the pod's starts.
#[derive(Debug)]
pub(crate) struct RequestsCell(AtomicI64);

/// Not published yet, or the pod was forgotten: ask the tracker.
const UNKNOWN: i64 = i64::MAX;
/// Published `None`: requests matter now.
const MATTER: i64 = i64::MAX - 1;

impl Default for RequestsCell {
    fn default() -> Self {
        RequestsCell(AtomicI64::new(UNKNOWN))
    }
}

impl RequestsCell {
    /// The published answer; None when the tracker must be asked.
    pub(crate) fn get(&self) -> Option<Option<Timestamp>> {
        match self.0.load(Ordering::Acquire) {
            UNKNOWN => None,
            MATTER => Some(None),
            t => Some(Some(Timestamp(t))),
        }
    }

    /// Publishes an answer. A time at the very end of the range reads as
    /// "requests matter" (the conservative answer: every line is looked at).
    pub(super) fn publish(&self, until: Option<Timestamp>) {
        let v = until.map_or(MATTER, |t| t.0.min(MATTER));
        self.0.store(v, Ordering::Release);
    }

    /// The pod is gone from the tracker: holders must ask again.
    pub(super) fn invalidate(&self) {
        self.0.store(UNKNOWN, Ordering::Release);
    }
}
