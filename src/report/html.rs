//! `--html FILE`: the post-mortem as one self-contained page for an incident
//! document — the totals, then one SVG timeline per pod on a shared UTC time
//! scale: proxy starts, the start-up gap as a bar (solid: probe, exact;
//! hatched: log, estimated; open-ended with an arrow: still failing when the
//! logs end), mid-life outages, DB errors as a rug, requests served inside a
//! gap as dots, and dropped batches / lost rows as markers with their counts.
//!
//! No external assets and no JavaScript: it opens from a mail attachment or
//! an air-gapped laptop, follows the reader's light or dark theme
//! (`prefers-color-scheme`) and prints on white. Every text that comes from
//! the input (pod names, paths) is escaped; no log text is ever included.

use std::fmt::Write;

mod svg;

use super::{model, PodReport, Report};
use crate::model::Counter;
use crate::time::Timestamp;
use svg::Scale;

/// Escapes text for HTML and SVG content and attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
:root{--bg:#ffffff;--fg:#1d2430;--muted:#5c6675;--line:#c9d0da;--card:#f4f6f9;
--gap:#2f6fdf;--gap-log:#2f6fdf;--open:#c2410c;--outage:#d97706;--loss:#c81e1e;--err:#8a94a6;--req:#0f8a5f;--start:#1d2430}
@media (prefers-color-scheme: dark){:root{--bg:#11151c;--fg:#e6e9ef;--muted:#9aa4b5;--line:#343c4a;--card:#1a2029;
--gap:#6ea1ff;--gap-log:#6ea1ff;--open:#fb923c;--outage:#fbbf24;--loss:#ff6b6b;--err:#7d8799;--req:#34d399;--start:#e6e9ef}}
@media print{:root{--bg:#fff;--fg:#000;--muted:#444;--line:#bbb;--card:#f2f2f2;--gap:#1f4fbf;--gap-log:#1f4fbf;--open:#b33a00;--outage:#b36b00;--loss:#b00000;--err:#777;--req:#0a6b48;--start:#000}
 body{margin:0} section.pod{break-inside:avoid} .cards{break-inside:avoid}}
*{box-sizing:border-box}
body{background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;padding:0 20px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:0 0 2px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.meta,.facts,.note{color:var(--muted);margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin:16px 0 20px}
.card{background:var(--card);border-radius:8px;padding:10px 12px;border-left:4px solid var(--line)}
.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
.card span{color:var(--muted);font-size:12px}
.card.bad{border-left-color:var(--loss)} .card.bad b{color:var(--loss)}
.card.warn{border-left-color:var(--outage)}
section.pod{border-top:1px solid var(--line);padding:14px 0 8px}
svg{width:100%;height:auto;display:block;overflow:visible}
svg text{fill:var(--muted);font:11px system-ui,sans-serif}
svg .label{fill:var(--fg);font-weight:600}
svg .axis line,svg .life{stroke:var(--line)}
svg .grid{stroke:var(--line);stroke-dasharray:2 3}
svg .start{stroke:var(--start);stroke-width:2}
svg .start-head{fill:var(--start)}
svg .gap-probe{fill:var(--gap);opacity:.85}
svg .gap-log{stroke:var(--gap-log);stroke-width:1.2}
svg .gap-open{stroke:var(--open);stroke-width:1.2;stroke-dasharray:5 3}
svg .open-head{fill:var(--open)}
svg .outage{fill:var(--outage);opacity:.8}
svg .dberr{stroke:var(--err);stroke-width:1}
svg .req{fill:var(--req)}
svg .restart{fill:none;stroke:var(--outage);stroke-width:1.6}
tr.outage-row td{color:var(--outage)}
svg .loss{fill:var(--loss)}
svg .loss-text{fill:var(--loss);font-weight:600}
.hatch-line{stroke:var(--gap-log);stroke-width:2}
.hatch-open-line{stroke:var(--open);stroke-width:2}
table{border-collapse:collapse;margin:6px 0 4px;font-size:13px}
td,th{padding:2px 12px 2px 0;text-align:left;font-variant-numeric:tabular-nums}
th{color:var(--muted);font-weight:500}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:var(--muted);font-size:12px;margin:0 0 6px}
.legend svg{width:auto;display:inline;vertical-align:middle;margin-right:6px}
"#;

/// `HH:MM:SS` (UTC) of a timestamp.
fn clock(t: Timestamp) -> String {
    let s = t.to_string();
    s.get(11..19).unwrap_or(&s).to_string()
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn when(t: Timestamp) -> String {
    let s = t.to_string();
    format!(
        "{} {} UTC",
        s.get(..10).unwrap_or(""),
        s.get(11..19).unwrap_or("")
    )
}

fn fmt_secs(s: f64) -> String {
    if s >= 120.0 {
        format!("{}m {:02}s", (s / 60.0).floor(), (s % 60.0).round() as u64)
    } else {
        format!("{s:.1}s")
    }
}

/// The class of a card whose count is a loss: red when any.
fn bad(n: u64) -> &'static str {
    if n > 0 {
        "bad"
    } else {
        ""
    }
}

/// The class of a card whose value deserves a look: amber when `yes`.
fn warn(yes: bool) -> &'static str {
    if yes {
        "warn"
    } else {
        ""
    }
}

/// The longest start-up gap of any pod, in seconds.
fn longest_gap(r: &Report) -> Option<f64> {
    r.pods
        .iter()
        .flat_map(|p| {
            p.detail
                .starts
                .iter()
                .filter_map(|s| model::gap_seconds(s, p.detail.last_ts))
        })
        .fold(None, |a: Option<f64>, g| Some(a.map_or(g, |a| a.max(g))))
}

/// The totals as cards; `data-total` names the report field.
fn cards(r: &Report, o: &mut String) {
    let t = &r.totals;
    let longest = longest_gap(r);
    let count = |c: Counter| t[c].to_string();
    // (report field, value, label, class)
    let cards: [(&str, String, &str, &str); 13] = [
        ("pods", r.pods.len().to_string(), "pods", ""),
        (
            "proxy_starts",
            count(Counter::ProxyStarts),
            "proxy starts",
            "",
        ),
        (
            "longest_gap",
            longest.map_or_else(|| "–".into(), fmt_secs),
            "longest start-up gap",
            warn(longest.is_some_and(|g| g > 0.0)),
        ),
        (
            "spend_batches_dropped",
            count(Counter::SpendBatchesDropped),
            "spend batches dropped",
            bad(t[Counter::SpendBatchesDropped]),
        ),
        (
            "spend_rows_lost",
            count(Counter::SpendRowsLost),
            "spend rows lost",
            bad(t[Counter::SpendRowsLost]),
        ),
        (
            "spend_rows_requeued",
            count(Counter::SpendRowsRequeued),
            "spend rows re-queued",
            "",
        ),
        (
            "requests_during_gap",
            count(Counter::RequestsDuringGap),
            "requests served during a gap",
            warn(t[Counter::RequestsDuringGap] > 0),
        ),
        (
            "db_connect_errors",
            t.db_connect_errors().to_string(),
            "DB connect errors",
            "",
        ),
        (
            "budget_cache_misses",
            count(Counter::BudgetCacheMisses),
            "budget-cache misses",
            "",
        ),
        (
            "db_outages",
            count(Counter::DbOutages),
            "mid-life DB outages",
            warn(t[Counter::DbOutages] > 0),
        ),
        (
            "requests_during_outage",
            count(Counter::RequestsDuringOutage),
            "requests served during an outage",
            warn(t[Counter::RequestsDuringOutage] > 0),
        ),
        (
            "spend_updates_failed",
            count(Counter::SpendUpdatesFailed),
            "key/user/team spend updates not applied",
            bad(t[Counter::SpendUpdatesFailed]),
        ),
        (
            "engine_restarts",
            count(Counter::EngineRestarts),
            "query-engine restarts",
            "",
        ),
    ];
    let _ = writeln!(o, r#"<div class="cards">"#);
    for (key, value, label, class) in cards {
        let _ = writeln!(
            o,
            r#"<div class="card {class}" data-total="{key}"><b>{}</b><span>{}</span></div>"#,
            esc(&value),
            esc(label)
        );
    }
    let _ = writeln!(o, "</div>");
}

const LEGEND: &str = r##"<div class="legend">
<span><svg width="26" height="12"><line class="start" x1="3" y1="0" x2="3" y2="12"/></svg>proxy start</span>
<span><svg width="26" height="12"><rect class="gap-probe" x="0" y="1" width="26" height="10"/></svg>gap (probe, exact)</span>
<span><svg width="26" height="12"><defs><pattern id="lg-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line class="hatch-line" x1="0" y1="0" x2="0" y2="6"/></pattern></defs><rect fill="url(#lg-hatch)" stroke="var(--gap-log)" x="0.5" y="1.5" width="25" height="9"/></svg>gap (log, estimated)</span>
<span><svg width="26" height="12"><rect class="gap-open" x="0.5" y="1.5" width="20" height="9" fill="none"/><path class="open-head" d="M20 0 L26 6 L20 12 Z"/></svg>gap still open at the end of the logs</span>
<span><svg width="26" height="12"><rect class="outage" x="0" y="1" width="26" height="10"/></svg>mid-life DB outage</span>
<span><svg width="26" height="12"><line class="dberr" x1="5" y1="1" x2="5" y2="11"/><line class="dberr" x1="9" y1="1" x2="9" y2="11"/><line class="dberr" x1="11" y1="1" x2="11" y2="11"/></svg>DB connect errors</span>
<span><svg width="26" height="12"><circle class="restart" cx="8" cy="6" r="4.5"/></svg>query engine restarted</span>
<span><svg width="26" height="12"><circle class="req" cx="8" cy="6" r="3"/></svg>request served inside a gap or outage</span>
<span><svg width="26" height="12"><path class="loss" d="M8 0 L14 6 L8 12 L2 6 Z"/></svg>spend batch dropped / rows lost</span>
</div>
"##;

/// One pod's section: its facts, its timeline and a table of its starts.
fn pod_section(r: &Report, p: &PodReport, idx: usize, sc: Option<&Scale>, o: &mut String) {
    let _ = writeln!(
        o,
        r#"<section class="pod" id="pod-{idx}" data-pod="{}">"#,
        esc(&p.name())
    );
    let _ = writeln!(o, "<h2>{}</h2>", esc(&p.name()));
    let _ = writeln!(o, r#"<p class="facts">{}</p>"#, esc(&facts(p).join(" · ")));
    match sc {
        Some(sc) if p.detail.first_ts.is_some() => svg::pod_svg(r, p, idx, sc, o),
        _ => {
            let _ = writeln!(
                o,
                r#"<p class="note">No record times in this pod's input: gaps need record times (use <code>kubectl logs --timestamps</code>).</p>"#
            );
        }
    }
    if !p.detail.starts.is_empty() {
        starts_table(p, o);
    }
    let _ = writeln!(o, "</section>");
}

/// The pod's counts as short phrases, the rare ones only when non-zero.
fn facts(p: &PodReport) -> Vec<String> {
    let c = &p.counts;
    let mut facts = vec![format!(
        "{} proxy start{}",
        c[Counter::ProxyStarts],
        if c[Counter::ProxyStarts] == 1 {
            ""
        } else {
            "s"
        }
    )];
    if let Some(s) = p.detail.starts.last() {
        if let Some(g) = model::gap_seconds(s, p.detail.last_ts) {
            facts.push(format!(
                "last gap {}{} ({})",
                if s.open { "open " } else { "" },
                fmt_secs(g),
                model::method_word(s.method)
            ));
        }
    }
    facts.push(format!(
        "{} spend batches dropped",
        c[Counter::SpendBatchesDropped]
    ));
    facts.push(format!("{} rows lost", c[Counter::SpendRowsLost]));
    if c[Counter::SpendRowsRequeued] > 0 {
        facts.push(format!("{} rows re-queued", c[Counter::SpendRowsRequeued]));
    }
    facts.push(format!(
        "{} requests during a gap",
        c[Counter::RequestsDuringGap]
    ));
    facts.push(format!("{} DB connect errors", c.db_connect_errors()));
    facts.push(format!(
        "{} budget-cache misses",
        c[Counter::BudgetCacheMisses]
    ));
    for (n, what) in [
        (c[Counter::DbOutages], "mid-life DB outages"),
        (c[Counter::SpendUpdatesFailed], "spend updates not applied"),
        (c[Counter::EngineRestarts], "engine restarts"),
    ] {
        if n > 0 {
            facts.push(format!("{n} {what}"));
        }
    }
    facts
}

/// One row per start (its gap) and per mid-life outage after it.
fn starts_table(p: &PodReport, o: &mut String) {
    let _ = writeln!(
        o,
        "<table><tr><th></th><th>from (UTC)</th><th>how long</th><th>measured by</th><th>requests inside</th></tr>"
    );
    for (i, s) in p.detail.starts.iter().enumerate() {
        let gap = match model::gap_seconds(s, p.detail.last_ts) {
            Some(g) if s.open => format!("open, still failing after {}", fmt_secs(g)),
            Some(g) if g > 0.0 => fmt_secs(g),
            Some(_) => "no gap".into(),
            None => "–".into(),
        };
        let _ = writeln!(
            o,
            "<tr><td>start {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            s.listening_at.map_or_else(|| "(no time)".into(), when),
            esc(&gap),
            model::method_word(s.method),
            model::requests_in_gap(s)
        );
        for out in model::outages_of(s) {
            let how_long = match out.seconds {
                Some(g) if out.open => format!("open, still failing after {}", fmt_secs(g)),
                Some(g) => fmt_secs(g),
                None => "–".into(),
            };
            let _ = writeln!(
                o,
                "<tr class=\"outage-row\"><td>outage</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                out.started_at.map_or_else(|| "(no time)".into(), when),
                esc(&how_long),
                esc(out.method),
                out.requests
            );
        }
    }
    let _ = writeln!(o, "</table>");
}

/// The page.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let sc = Scale::of(r);
    let range = match (&sc, r.window) {
        (_, Some(w)) if w.since.is_some() || w.until.is_some() => format!(
            "Window {} – {}",
            w.since.map_or_else(|| "start".into(), when),
            w.until.map_or_else(|| "end".into(), when)
        ),
        (Some(sc), _) => {
            let span = sc.t1.seconds_since(sc.t0) / 1.04;
            format!(
                "Records from {} ({} shown)",
                when(sc.t0.plus_secs(span * 0.02)),
                fmt_secs(span)
            )
        }
        (None, _) => "No record times in the input".into(),
    };
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>LiteLLM post-mortem: {} pods</title>
<style>{CSS}</style></head><body>
<header><h1>LiteLLM start-up race: post-mortem</h1>
<p class="meta">{} · {} pods · {} lines read ({} malformed) · times in UTC · litellm-sentinel {}</p></header>
"#,
        r.pods.len(),
        esc(&range),
        r.pods.len(),
        r.totals.lines,
        r.totals.malformed_lines,
        env!("CARGO_PKG_VERSION")
    );
    cards(r, &mut o);
    o.push_str(LEGEND);
    for (i, p) in r.pods.iter().enumerate() {
        pod_section(r, p, i, sc.as_ref(), &mut o);
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_input_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }

    /// The pods' sections (without the legend, which shows every symbol).
    fn pod_part(page: &str) -> &str {
        &page[page.find(r#"<section class="pod""#).expect("a pod section")..]
    }

    fn pod_with(start: crate::timeline::Start, last: Timestamp) -> Report {
        let detail = super::super::PodDetail {
            first_ts: start.listening_at,
            last_ts: Some(last),
            starts: vec![start],
            ..Default::default()
        };
        Report {
            window: None,
            pods: vec![PodReport {
                namespace: "llm".into(),
                pod: "litellm-<0>".into(),
                starts: Vec::new(),
                counts: Default::default(),
                detail,
            }],
            totals: Default::default(),
            ledger: Vec::new(),
            sources: Vec::new(),
            rule_ids: Vec::new(),
            hints: Vec::new(),
        }
    }

    #[test]
    fn an_open_gap_is_drawn_open_ended_to_the_end_of_the_logs() {
        let sec = 1_000_000_000;
        let mut start =
            crate::timeline::Start::new(Some(Timestamp(100 * sec)), crate::timeline::Method::Probe);
        start.last_db_error_at = Some(Timestamp(130 * sec));
        start.confirmed = true;
        let page = render(&pod_with(start, Timestamp(160 * sec)));
        let page = pod_part(&page);
        assert!(page.contains(r#"class="gap-open""#), "{page}");
        assert!(page.contains(r#"class="open-head""#));
        assert!(page.contains("open 30.0s"));
        assert!(page.contains("still failing 30.0s after the start"));
        // Names from the input are escaped, in text and attributes.
        assert!(page.contains("llm/litellm-&lt;0&gt;") && !page.contains("litellm-<0>"));
    }

    #[test]
    fn a_closed_probe_gap_is_solid_and_a_log_gap_hatched() {
        let sec = 1_000_000_000;
        let mut start =
            crate::timeline::Start::new(Some(Timestamp(100 * sec)), crate::timeline::Method::Probe);
        start.engine_ready_at = Some(Timestamp(112 * sec));
        start.gap_seconds = Some(12.0);
        start.open = false;
        start.confirmed = true;
        let page = render(&pod_with(start.clone(), Timestamp(160 * sec)));
        let page = pod_part(&page);
        assert!(page.contains(r#"class="gap-probe""#) && !page.contains(r#"class="gap-open""#));
        assert!(page.contains("12.0s gap, probe (exact)"));
        start.method = crate::timeline::Method::Log;
        let page = render(&pod_with(start, Timestamp(160 * sec)));
        assert!(page.contains(r#"class="gap-log" style="fill:url(#hatch0)""#));
    }
}
