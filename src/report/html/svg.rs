//! One pod's SVG timeline on the page's shared time scale: the axis, the
//! lane names, the pod's life line, each start with its gap and mid-life
//! outages, the ledger's DB errors, engine restarts and losses, and the
//! requests served inside a gap or outage. Kept apart from the page's HTML
//! so the drawing's geometry lives in one place.

use std::fmt::Write;

use super::{clock, esc, fmt_secs, when};
use crate::classify::EventKind;
use crate::report::{model, PodDetail, PodReport, Report};
use crate::time::Timestamp;
use crate::timeline::Start;

/// The drawing's geometry (SVG user units).
const W: f64 = 1000.0;
const LEFT: f64 = 112.0;
const RIGHT: f64 = 992.0;

/// The shared time scale of every pod's timeline.
pub(super) struct Scale {
    pub(super) t0: Timestamp,
    pub(super) t1: Timestamp,
}

impl Scale {
    pub(super) fn of(r: &Report) -> Option<Scale> {
        let mut t0: Option<Timestamp> = None;
        let mut t1: Option<Timestamp> = None;
        for p in &r.pods {
            let firsts = p
                .detail
                .first_ts
                .into_iter()
                .chain(p.detail.starts.iter().filter_map(|s| s.listening_at));
            for t in firsts {
                t0 = Some(t0.map_or(t, |a| a.min(t)));
                t1 = Some(t1.map_or(t, |a| a.max(t)));
            }
            if let Some(t) = p.detail.last_ts {
                t1 = Some(t1.map_or(t, |a| a.max(t)));
            }
        }
        let (t0, t1) = (t0?, t1?);
        // A span of at least 10 s, with a little room on both sides.
        let span = t1.seconds_since(t0).max(10.0);
        Some(Scale {
            t0: t0.plus_secs(-span * 0.02),
            t1: t0.plus_secs(span * 1.02),
        })
    }

    fn x(&self, t: Timestamp) -> f64 {
        let span = self.t1.seconds_since(self.t0).max(1e-9);
        LEFT + (RIGHT - LEFT) * (t.seconds_since(self.t0) / span).clamp(0.0, 1.0)
    }

    /// Tick step (seconds) giving about eight ticks.
    fn step(&self) -> f64 {
        const STEPS: [f64; 18] = [
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
            7200.0, 10800.0, 21600.0, 43200.0, 86400.0,
        ];
        let span = self.t1.seconds_since(self.t0);
        STEPS
            .into_iter()
            .find(|s| span / s <= 10.0)
            .unwrap_or(86400.0 * (span / 86400.0 / 10.0).ceil())
    }
}

/// Lane positions in a pod's drawing.
const Y_LABEL: f64 = 14.0;
const Y_BAR: f64 = 22.0;
const BAR_H: f64 = 18.0;
const Y_ERR: f64 = 58.0;
const Y_REQ: f64 = 80.0;
const Y_LOSS: f64 = 102.0;
const Y_AXIS: f64 = 122.0;
const HEIGHT: f64 = 142.0;

/// A stretch of time in which requests were at risk (a gap or an outage).
type AtRisk = (Timestamp, Timestamp);

/// Draws one pod's timeline; `idx` makes its hatch patterns' ids unique on
/// the page.
pub(super) fn pod_svg(r: &Report, p: &PodReport, idx: usize, sc: &Scale, o: &mut String) {
    let d = &p.detail;
    let _ = writeln!(
        o,
        r#"<svg viewBox="0 0 {W} {HEIGHT}" role="img" aria-label="timeline of {}">"#,
        esc(&p.name())
    );
    let _ = writeln!(
        o,
        r#"<defs><pattern id="hatch{idx}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line class="hatch-line" x1="0" y1="0" x2="0" y2="6"/></pattern><pattern id="hatch-open{idx}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line class="hatch-open-line" x1="0" y1="0" x2="0" y2="6"/></pattern></defs>"#
    );
    axis(sc, o);
    lane_names(o);
    life_line(d, sc, o);
    let mut at_risk: Vec<AtRisk> = Vec::new();
    for (i, s) in d.starts.iter().enumerate() {
        let Some(at) = s.listening_at else { continue };
        if let Some(window) = gap_bar(d, s, i, at, idx, sc, o) {
            at_risk.push(window);
        }
        outage_bars(d, s, sc, &mut at_risk, o);
        start_mark(i, at, sc, o);
    }
    let losses = ledger_marks(r, p, sc, o);
    loss_markers(&losses, o);
    requests_at_risk(d, &at_risk, sc, o);
    let _ = writeln!(o, "</svg>");
}

/// The grid and the time axis with round ticks.
fn axis(sc: &Scale, o: &mut String) {
    let step = sc.step();
    let first = (sc.t0.as_secs_f64() / step).ceil() * step;
    let mut t = first;
    let _ = writeln!(o, r#"<g class="axis">"#);
    let _ = writeln!(
        o,
        r#"<line x1="{LEFT}" y1="{Y_AXIS}" x2="{RIGHT}" y2="{Y_AXIS}"/>"#
    );
    while t <= sc.t1.as_secs_f64() {
        let ts = Timestamp::from_secs_f64(t);
        let x = sc.x(ts);
        let label = if step >= 60.0 {
            clock(ts)[..5].to_string()
        } else {
            clock(ts)
        };
        let _ = writeln!(
            o,
            r#"<line class="grid" x1="{x:.1}" y1="{Y_BAR}" x2="{x:.1}" y2="{Y_AXIS}"/><line x1="{x:.1}" y1="{Y_AXIS}" x2="{x:.1}" y2="{:.1}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            Y_AXIS + 4.0,
            Y_AXIS + 16.0
        );
        t += step;
    }
    let _ = writeln!(o, "</g>");
}

/// Lane names in the left gutter.
fn lane_names(o: &mut String) {
    for (y, name) in [
        (Y_BAR + BAR_H / 2.0, "starts, gaps"),
        (Y_ERR, "DB errors"),
        (Y_REQ, "requests at risk"),
        (Y_LOSS, "spend lost"),
    ] {
        let _ = writeln!(o, r#"<text x="0" y="{:.1}">{name}</text>"#, y + 4.0);
    }
}

/// The pod's life: first to last record.
fn life_line(d: &PodDetail, sc: &Scale, o: &mut String) {
    if let (Some(a), Some(b)) = (d.first_ts, d.last_ts) {
        let _ = writeln!(
            o,
            r#"<line class="life" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke-width="2"><title>records from {} to {}</title></line>"#,
            sc.x(a),
            Y_BAR + BAR_H / 2.0,
            sc.x(b),
            Y_BAR + BAR_H / 2.0,
            when(a),
            when(b)
        );
    }
}

/// Start `i`'s start-up gap as a bar (solid: probe; hatched: log; open-ended
/// with an arrow: still failing) with its length as a label; returns the
/// gap's stretch, in which served requests were at risk.
fn gap_bar(
    d: &PodDetail,
    s: &Start,
    i: usize,
    at: Timestamp,
    idx: usize,
    sc: &Scale,
    o: &mut String,
) -> Option<AtRisk> {
    let x0 = sc.x(at);
    let g = model::gap_seconds(s, d.last_ts)?;
    let end = if s.open {
        d.last_ts.unwrap_or(at).max(at.plus_secs(g))
    } else {
        at.plus_secs(g)
    };
    let x1 = sc.x(end).max(x0 + 2.0);
    let (class, fill, what) = if s.open {
        (
            "gap-open",
            format!("url(#hatch-open{idx})"),
            format!(
                "still failing {} after the start when the logs end",
                fmt_secs(g)
            ),
        )
    } else if s.method == crate::timeline::Method::Probe {
        (
            "gap-probe",
            "var(--gap)".into(),
            format!("{} gap, probe (exact)", fmt_secs(g)),
        )
    } else {
        (
            "gap-log",
            format!("url(#hatch{idx})"),
            format!("{} gap, log (estimated)", fmt_secs(g)),
        )
    };
    if g > 0.0 || s.open {
        let _ = writeln!(
            o,
            r#"<rect class="{class}" style="fill:{fill}" x="{x0:.1}" y="{Y_BAR}" width="{:.1}" height="{BAR_H}" rx="2"><title>start {}: {what}</title></rect>"#,
            x1 - x0,
            i + 1
        );
        if s.open {
            let _ = writeln!(
                o,
                r#"<path class="open-head" d="M{x1:.1} {:.1} L{:.1} {:.1} L{x1:.1} {:.1} Z"/>"#,
                Y_BAR - 3.0,
                x1 + 9.0,
                Y_BAR + BAR_H / 2.0,
                Y_BAR + BAR_H + 3.0
            );
        }
    }
    let text = if s.open {
        format!("open {}", fmt_secs(g))
    } else if g > 0.0 {
        fmt_secs(g)
    } else {
        "no gap".into()
    };
    let _ = writeln!(
        o,
        r#"<text class="label" x="{:.1}" y="{Y_LABEL}">{}</text>"#,
        x0 + 4.0,
        esc(&text)
    );
    Some((at, end))
}

/// The start's mid-life DB outages as bars; each outage's stretch goes to
/// `at_risk`.
fn outage_bars(d: &PodDetail, s: &Start, sc: &Scale, at_risk: &mut Vec<AtRisk>, o: &mut String) {
    for out in model::outages_of(s) {
        let Some(a) = out.started_at else { continue };
        let b = out
            .ended_at
            .or(d.last_ts)
            .unwrap_or(a)
            .max(a.plus_secs(out.seconds.unwrap_or(0.0)));
        at_risk.push((a, b));
        let (xa, xb) = (sc.x(a), sc.x(b).max(sc.x(a) + 2.0));
        let _ = writeln!(
            o,
            r#"<rect class="outage" x="{xa:.1}" y="{Y_BAR}" width="{:.1}" height="{BAR_H}" rx="2"><title>DB outage{}: {} ({}), {} requests served</title></rect><text class="label" x="{:.1}" y="{Y_LABEL}">outage</text>"#,
            xb - xa,
            if out.open {
                " (still open at the end)"
            } else {
                ""
            },
            out.seconds.map_or_else(|| "?".into(), fmt_secs),
            esc(out.method),
            out.requests,
            xa + 2.0
        );
    }
}

/// Start `i`'s mark: a line with an arrow head where the proxy accepted.
fn start_mark(i: usize, at: Timestamp, sc: &Scale, o: &mut String) {
    let x0 = sc.x(at);
    let _ = writeln!(
        o,
        r#"<line class="start" x1="{x0:.1}" y1="{:.1}" x2="{x0:.1}" y2="{:.1}"><title>start {}: proxy accepting at {}</title></line><path class="start-head" d="M{x0:.1} {:.1} l-4 -6 h8 z"/>"#,
        Y_BAR - 4.0,
        Y_AXIS,
        i + 1,
        when(at),
        Y_BAR - 2.0
    );
}

/// Losses close together on the drawing, counted as one marker so their
/// labels never overlap.
#[derive(Debug, Default)]
struct LossMarker {
    x: f64,
    batches: u64,
    rows: u64,
    /// Key/user/team spend updates not applied.
    updates: u64,
}

/// The pod's ledger events: DB connect errors as a rug and engine restarts
/// as circles (drawn now), losses merged into markers (returned, drawn
/// after the rug).
fn ledger_marks(r: &Report, p: &PodReport, sc: &Scale, o: &mut String) -> Vec<LossMarker> {
    let mine = r
        .ledger
        .iter()
        .filter(|e| e.pod.namespace == p.namespace && e.pod.pod == p.pod);
    let mut losses: Vec<LossMarker> = Vec::new();
    let mut last_err_x = f64::NEG_INFINITY;
    for e in mine {
        let Some(t) = e.ts else { continue };
        let x = sc.x(t);
        match e.kind {
            // One tick per unit of x: a burst of thousands stays a small drawing.
            EventKind::DbConnectError(op) if x - last_err_x >= 1.0 => {
                let _ = writeln!(
                    o,
                    r#"<line class="dberr" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"><title>DB connect error ({}) at {}</title></line>"#,
                    Y_ERR - 6.0,
                    Y_ERR + 6.0,
                    op.as_str(),
                    when(t)
                );
                last_err_x = x;
            }
            EventKind::EngineRestart => {
                let _ = writeln!(
                    o,
                    r#"<circle class="restart" cx="{x:.1}" cy="{Y_ERR}" r="4.5"><title>query engine restarted by LiteLLM at {}</title></circle>"#,
                    when(t)
                );
            }
            ref k if model::is_loss(k) => {
                let rows = match e.kind {
                    EventKind::SpendRowsLost(n) => n,
                    _ => 0,
                };
                let batches = u64::from(e.kind == EventKind::SpendBatchDropped);
                let updates = u64::from(e.kind == EventKind::SpendUpdatesFailed);
                // Close markers merge, so their count labels never overlap.
                match losses.last_mut() {
                    Some(l) if x - l.x < 80.0 => {
                        l.batches += batches;
                        l.rows += rows;
                        l.updates += updates;
                    }
                    _ => losses.push(LossMarker {
                        x,
                        batches,
                        rows,
                        updates,
                    }),
                }
            }
            _ => {}
        }
    }
    losses
}

/// The loss markers with their counts as labels.
fn loss_markers(losses: &[LossMarker], o: &mut String) {
    for l in losses {
        let mut what = Vec::new();
        if l.batches > 0 {
            what.push(format!(
                "{} batch{}",
                l.batches,
                if l.batches == 1 { "" } else { "es" }
            ));
        }
        if l.rows > 0 {
            what.push(format!("{} rows", l.rows));
        }
        if l.updates > 0 {
            what.push(format!(
                "{} spend update{} not applied",
                l.updates,
                if l.updates == 1 { "" } else { "s" }
            ));
        }
        let what = what.join(", ");
        let x = l.x;
        let _ = writeln!(
            o,
            r#"<path class="loss" d="M{x:.1} {:.1} l6 6 l-6 6 l-6 -6 z"><title>spend lost: {what}</title></path><text class="loss-text" x="{:.1}" y="{:.1}">{what}</text>"#,
            Y_LOSS - 6.0,
            x + 8.0,
            Y_LOSS + 4.0
        );
    }
}

/// Requests served inside a gap or outage: one dot per distinct unit of x.
fn requests_at_risk(d: &PodDetail, at_risk: &[AtRisk], sc: &Scale, o: &mut String) {
    let mut last_req_x = f64::NEG_INFINITY;
    for &t in &d.requests {
        if at_risk.iter().any(|(a, b)| t >= *a && t <= *b) {
            let x = sc.x(t);
            if x - last_req_x >= 2.5 {
                let _ = writeln!(
                    o,
                    r#"<circle class="req" cx="{x:.1}" cy="{Y_REQ}" r="3"><title>request served at {}</title></circle>"#,
                    when(t)
                );
                last_req_x = x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_about_eight() {
        let sc = Scale {
            t0: Timestamp(0),
            t1: Timestamp(420 * 1_000_000_000),
        };
        assert_eq!(sc.step(), 60.0);
        assert_eq!(sc.x(Timestamp(0)), LEFT);
        assert_eq!(sc.x(Timestamp(420 * 1_000_000_000)), RIGHT);
        assert_eq!(fmt_secs(42.54), "42.5s");
        assert_eq!(fmt_secs(185.0), "3m 05s");
    }
}
