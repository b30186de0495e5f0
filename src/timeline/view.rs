//! The outputs' view of the timeline: one pod as `/api/v1/pods` shows it,
//! also read by the demo's live table. Built from the tracker (and, for a
//! probed pod, the gate's engine state) at request time.

use serde::Serialize;

use crate::gate::{EngineView, SharedGates};
use crate::model::PodRef;
use crate::time::{RfcTimestamp, Timestamp};

use super::{Counts, Outage, OutageSummary, PodTimeline, SharedTracker};

/// One start of the proxy, as the API shows it.
#[derive(Serialize)]
pub struct StartView {
    pub listening_at: Option<RfcTimestamp>,
    pub engine_ready_at: Option<RfcTimestamp>,
    pub gap_seconds: Option<f64>,
    pub method: &'static str,
    /// Inside a gap confirmed by a DB failure (provisional starts are not).
    pub in_gap: bool,
    /// The gap has not closed yet (confirmed or not).
    pub open: bool,
    pub confirmed: bool,
    /// Requests served inside the gap (attributed when it closed).
    pub requests: u64,
    pub outages: Vec<OutageSummary>,
    /// Sidecar: the first probe round in which one engine answered after this start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines_first_ready_at: Option<RfcTimestamp>,
    /// Sidecar: the first round in which every engine answered (the gap closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines_last_ready_at: Option<RfcTimestamp>,
}

/// A tracked pod, as `/api/v1/pods` shows it.
#[derive(Serialize)]
pub struct PodView {
    pub namespace: String,
    pub pod: String,
    pub in_gap: bool,
    pub in_outage: bool,
    pub listening_at: Option<RfcTimestamp>,
    pub engine_ready_at: Option<RfcTimestamp>,
    pub gap_seconds: Option<f64>,
    pub method: Option<&'static str>,
    pub engine_up: std::collections::BTreeMap<&'static str, bool>,
    pub counts: Counts,
    pub starts: Vec<StartView>,
    /// Sidecar: the engines of the pod (count, state, LiteLLM version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines: Option<EngineView>,
}

impl PodView {
    /// The API view of one pod (also used by the demo's live table).
    pub fn new(pod: &PodRef, p: &PodTimeline) -> PodView {
        let latest = p.starts.back();
        let ts = |t: Option<Timestamp>| t.map(RfcTimestamp);
        PodView {
            namespace: pod.namespace.clone(),
            pod: pod.pod.clone(),
            in_gap: p.in_gap(),
            in_outage: p.in_outage(),
            listening_at: ts(latest.and_then(|s| s.listening_at)),
            engine_ready_at: ts(latest.and_then(|s| s.engine_ready_at)),
            gap_seconds: latest.and_then(|s| s.gap_seconds),
            method: latest.map(|s| s.method.as_str()),
            engine_up: p.probe_up.iter().map(|(t, up)| (t.as_str(), *up)).collect(),
            counts: p.counts.clone(),
            starts: p
                .starts
                .iter()
                .map(|s| StartView {
                    listening_at: ts(s.listening_at),
                    engine_ready_at: ts(s.engine_ready_at),
                    gap_seconds: s.gap_seconds,
                    method: s.method.as_str(),
                    in_gap: s.in_gap(),
                    open: s.open,
                    confirmed: s.confirmed,
                    requests: s.requests,
                    outages: s.outages.iter().map(Outage::summary).collect(),
                    engines_first_ready_at: None,
                    engines_last_ready_at: None,
                })
                .collect(),
            engines: None,
        }
    }
}

/// Every tracked pod, sorted by namespace and name.
pub fn pod_views(tracker: &SharedTracker) -> Vec<PodView> {
    let t = tracker.lock();
    let mut v: Vec<PodView> = t.pods().map(|(k, p)| PodView::new(k, p)).collect();
    v.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    v
}

/// Adds the engine view and each start's first/last engine-ready times to
/// the `/api/v1/pods` views of probed pods.
pub(crate) fn annotate(views: &mut [PodView], gates: &SharedGates) {
    let g = crate::sync::lock(gates);
    for v in views {
        let key = PodRef {
            namespace: v.namespace.clone(),
            pod: v.pod.clone(),
        };
        let Some(p) = g.pod(&key) else { continue };
        v.engines = Some(EngineView::new(p));
        for s in &mut v.starts {
            let Some(ready) = s.engine_ready_at else {
                continue;
            };
            if let Some(first) = p.first_ready_for(ready.0) {
                s.engines_first_ready_at = Some(RfcTimestamp(first));
                s.engines_last_ready_at = Some(ready);
            }
        }
    }
}
