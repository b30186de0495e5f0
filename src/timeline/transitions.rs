//! The start-up state machine's transitions on one pod: a start opens, a
//! DB failure confirms or extends a gap or outage, a request is attributed,
//! a probe answers or fails, a quiet period closes. Each closed measurement
//! is returned as an [`Observation`] for the tracker's histograms.

use super::pod::{Outage, PendingRequests, PodTimeline, Start};
use super::{Method, TimelineConfig};
use crate::model::{Counter, Counts};
use crate::time::Timestamp;

/// Which histogram family an observation goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Measured {
    Gap,
    Outage,
}

/// A closed measurement to put into a histogram.
pub(super) type Observation = (Measured, f64, Method);

/// Outages kept per start for the API and reports.
const OUTAGES_KEPT: usize = 64;

/// Opens a new start (one container run) at `at`.
pub(super) fn open_start(
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
pub(super) fn db_failure(p: &mut PodTimeline, ts: Option<Timestamp>) {
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
pub(super) fn request_served(p: &mut PodTimeline, ts: Option<Timestamp>) {
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

pub(super) fn outage_covers(o: &Outage, t: Timestamp) -> bool {
    match (o.started_at, o.ended_at) {
        (Some(a), Some(e)) => match o.method {
            Method::Log => t >= a && t <= e,
            Method::Probe => t >= a && t < e,
        },
        _ => false,
    }
}

/// The gap-closing probe target answered at `at` (after not answering).
pub(super) fn engine_answered(p: &mut PodTimeline, at: Timestamp, observed: &mut Vec<Observation>) {
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
pub(super) fn engine_failed(p: &mut PodTimeline, at: Timestamp, was_up: bool) {
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
pub(super) fn close_gap(
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
pub(super) fn close_if_quiet(
    p: &mut PodTimeline,
    ts: Timestamp,
    cfg: &TimelineConfig,
    observed: &mut Vec<Observation>,
) {
    let Some(s) = p.starts.back_mut().filter(|s| s.closes_when_quiet()) else {
        return;
    };
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

pub(super) fn close_log_outage(
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
pub(super) fn stop_run(p: &mut PodTimeline, observed: &mut Vec<Observation>) {
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
pub(super) fn supersede(p: &mut PodTimeline, observed: &mut Vec<Observation>) {
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
