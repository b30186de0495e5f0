//! The table and `--json`: the report as text.

use std::fmt::Write;

use super::{model, PodReport, Report, ReportCounts};
use crate::model::{ConfigKind, Counter};

fn fmt_gap(g: Option<f64>) -> String {
    g.map(|g| format!("{g:.1}s")).unwrap_or_else(|| "-".into())
}

/// A start's gap for the table: `12.0s`, `open 40.0s` (still failing at the end), or `-`.
fn fmt_start_gap(p: &PodReport, s: &crate::timeline::Start) -> String {
    let g = fmt_gap(model::gap_seconds(s, p.detail.last_ts));
    if s.open && g != "-" {
        format!("open {g}")
    } else {
        g
    }
}

/// The human-readable table: a header, one row per pod (each start, its
/// outages and the pod's rarer counts indented under it), then the totals.
pub fn render_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:>6} {:>10} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9}",
        "POD",
        "STARTS",
        "LAST GAP",
        "DROPPED",
        "ROWS LOST",
        "MISSES",
        "DB ERRORS",
        "AT RISK",
        "MALFORMED"
    );
    for p in &r.pods {
        pod_row(&mut s, p);
        start_lines(&mut s, p);
        rare_count_lines(&mut s, &p.counts);
    }
    totals_line(&mut s, r);
    s
}

/// The pod's row under the header.
fn pod_row(s: &mut String, p: &PodReport) {
    let name = p.name();
    let c = &p.counts;
    let _ = writeln!(
        s,
        "{:<40} {:>6} {:>10} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9}",
        name,
        c[Counter::ProxyStarts],
        p.detail
            .starts
            .last()
            .map_or_else(|| "-".to_string(), |s| fmt_start_gap(p, s)),
        c[Counter::SpendBatchesDropped],
        c[Counter::SpendRowsLost],
        c[Counter::BudgetCacheMisses],
        c.db_connect_errors(),
        c[Counter::RequestsDuringGap],
        c.malformed_lines
    );
}

/// One line per start (its gap) and per mid-life outage after it.
fn start_lines(s: &mut String, p: &PodReport) {
    for (i, st) in p.detail.starts.iter().enumerate() {
        let at = st
            .listening_at
            .map(|t| t.to_string())
            .unwrap_or_else(|| "(no timestamp)".into());
        let _ = writeln!(
            s,
            "    start {}: accepting at {at}, gap {} ({}), {} requests inside",
            i + 1,
            fmt_start_gap(p, st),
            model::method_word(st.method),
            model::requests_in_gap(st)
        );
        for o in model::outages_of(st) {
            let _ = writeln!(
                s,
                "      outage at {}: {}{} ({}), {} requests served",
                o.started_at.map_or_else(|| "?".into(), |t| t.to_string()),
                if o.open { "open " } else { "" },
                fmt_gap(o.seconds),
                o.method,
                o.requests
            );
        }
    }
}

/// The pod's counts that have no column, each group only when non-zero.
fn rare_count_lines(s: &mut String, c: &ReportCounts) {
    let by_operation = c.db_connect_errors_by_operation();
    if !by_operation.is_empty() {
        let ops: Vec<String> = by_operation
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "    db connect errors: {}", ops.join(" "));
    }
    if c[Counter::SpendUpdatesFailed] + c[Counter::EngineRestarts] > 0 {
        let _ = writeln!(
            s,
            "    key/user/team spend updates not applied: {}, query-engine restarts: {}",
            c[Counter::SpendUpdatesFailed],
            c[Counter::EngineRestarts]
        );
    }
    if c[Counter::ConfigLoadFailures(ConfigKind::Deployments)]
        + c[Counter::ConfigLoadFailures(ConfigKind::Credentials)]
        + c[Counter::EngineDistroFallbacks]
        + c[Counter::SpendRowsRequeued]
        > 0
    {
        let _ = writeln!(
            s,
            "    deployments not loaded: {}, credentials not loaded: {}, engine distro fallbacks: {}, rows re-queued: {}",
            c[Counter::ConfigLoadFailures(ConfigKind::Deployments)], c[Counter::ConfigLoadFailures(ConfigKind::Credentials)], c[Counter::EngineDistroFallbacks], c[Counter::SpendRowsRequeued]
        );
    }
}

/// The TOTAL line.
fn totals_line(s: &mut String, r: &Report) {
    let t = &r.totals;
    let _ = writeln!(
        s,
        "\nTOTAL: {} pods, {} starts, {} spend batches dropped ({} rows lost, {} re-queued), {} spend updates not applied, {} budget-cache misses, {} DB connect errors, {} requests served during a gap, {} mid-life DB outages ({} requests during them), {} engine restarts, {} lines read ({} malformed)",
        r.pods.len(),
        t[Counter::ProxyStarts],
        t[Counter::SpendBatchesDropped],
        t[Counter::SpendRowsLost],
        t[Counter::SpendRowsRequeued],
        t[Counter::SpendUpdatesFailed],
        t[Counter::BudgetCacheMisses],
        t.db_connect_errors(),
        t[Counter::RequestsDuringGap],
        t[Counter::DbOutages],
        t[Counter::RequestsDuringOutage],
        t[Counter::EngineRestarts],
        t.lines,
        t.malformed_lines
    );
}

/// The JSON document of `report --json` (totals use the flat vocabulary of the docs).
pub fn render_json(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(t) = v.get_mut("totals").and_then(|t| t.as_object_mut()) {
        t.remove("db_connect_errors_by_operation");
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
