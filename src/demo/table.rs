//! The demo's screen: URLs, a legend, and the live table, all read from the
//! agent's `/metrics` (as a user's Prometheus would see them).

use std::net::SocketAddr;
use std::path::Path;

use super::scrape::Exposition;
use super::script::{PodPlan, Watch};
use crate::time::Timestamp;

/// What each column and state of the table means, shown under the URLs.
const LEGEND: &[&str] = &[
    "POD        the simulated LiteLLM pod (namespace llm), started one after the other as in a rolling deploy",
    "LITELLM    its release: 1.83.x drops a failed spend batch, 1.108+ re-queues it",
    "WATCHED    sidecar: a probe finds the exact gap; logs: only the node DaemonSet reads its logs (estimate)",
    "STATE      starting: its proxy has not taken traffic yet",
    "           IN GAP: the proxy takes traffic, its Prisma query engine does not answer yet",
    "           ready: the gap is over (probe: the engine answered; logs: no DB error for the quiet period)",
    "GAP        start-up gap: proxy taking traffic -> engine answering (… = still open)",
    "DROPPED    spend-log batches LiteLLM dropped: requests that are never billed",
    "LOST       spend-log rows in the dropped batches; REQUEUED: rows put back on the queue (not lost)",
    "MISSES     budget lookups that failed: the budget cache stays empty, every request hits the DB",
    "AT RISK    requests served inside the gap (their spend may be lost); counted when the gap closes",
    "DB ERRORS  failed database calls (httpx.ConnectError: All connection attempts failed)",
];

/// The lines above the table: title, URLs, legend. Printed again on every
/// redraw, so clearing the screen never hides where to look.
pub(crate) fn header_lines(
    pods: usize,
    addr: SocketAddr,
    logs: &Path,
    links: &[String],
) -> Vec<String> {
    let mut out = vec![
        format!(
            "litellm-sentinel demo: rolling deploy of {pods} LiteLLM pod{}, watched by the real agent",
            if pods == 1 { "" } else { "s" }
        ),
        format!("  metrics: http://{addr}/metrics   pods: http://{addr}/api/v1/pods"),
    ];
    for link in links {
        match link.split_once('=') {
            Some((label, url)) => out.push(format!("  {label}: {url}")),
            None => out.push(format!("  {link}")),
        }
    }
    out.push(format!("  logs:    {}", logs.display()));
    out.push(String::new());
    out.extend(LEGEND.iter().map(|l| format!("  {l}")));
    out.push(String::new());
    out
}

const P: &str = "litellm_sentinel_";

/// The table's columns: heading and width (negative: left-aligned).
const COLUMNS: [(&str, i8); 11] = [
    ("POD", -22),
    ("LITELLM", -8),
    ("WATCHED", -8),
    ("STATE", -8),
    ("GAP", 8),
    ("DROPPED", 7),
    ("LOST", 5),
    ("REQUEUED", 8),
    ("MISSES", 6),
    ("AT RISK", 7),
    ("DB ERRORS", 9),
];

fn row(cells: [String; 11]) -> String {
    let mut out = String::new();
    for (i, (cell, (_, width))) in cells.iter().zip(COLUMNS).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let w = usize::from(width.unsigned_abs());
        if width < 0 {
            out.push_str(&format!("{cell:<w$}"));
        } else {
            out.push_str(&format!("{cell:>w$}"));
        }
    }
    out
}

/// The table of the pods started so far, from one scrape.
pub fn table(plans: &[PodPlan], m: &Exposition, now: Timestamp) -> Vec<String> {
    let mut out = vec![row(COLUMNS.map(|(h, _)| h.to_string()))];
    for plan in plans {
        let with = [
            ("namespace", plan.pod.namespace.as_str()),
            ("pod", plan.pod.pod.as_str()),
        ];
        let v = |name: &str| m.value(&format!("{P}{name}"), &with);
        let n = |name: &str| v(name).unwrap_or(0.0);
        let started = n("proxy_starts_total") > 0.0;
        let in_gap = n("in_startup_gap") > 0.0;
        let closed = m
            .select(&format!("{P}last_startup_gap_seconds"), &with)
            .map(|s| s.value)
            .next();
        let (state, gap) = match (started, in_gap, closed) {
            (_, true, _) => (
                "IN GAP",
                v("startup_gap_open_since_timestamp_seconds")
                    .map_or("…".into(), |t| format!("{:.1}s…", now.as_secs_f64() - t)),
            ),
            (true, false, Some(g)) => ("ready", format!("{g:.2}s")),
            _ => ("starting", "-".into()),
        };
        let db_errors: f64 = m
            .select(&format!("{P}db_connect_errors_total"), &with)
            .map(|s| s.value)
            .sum();
        out.push(row([
            plan.pod.pod.clone(),
            plan.family.version().into(),
            match plan.watch {
                Watch::Sidecar => "sidecar",
                Watch::LogsOnly => "logs",
            }
            .into(),
            state.into(),
            gap,
            n("spend_batches_dropped_total").to_string(),
            n("spend_rows_lost_total").to_string(),
            n("spend_rows_requeued_total").to_string(),
            n("budget_cache_misses_total").to_string(),
            // Attributed when the gap closes (until then: …).
            if in_gap {
                "…".to_string()
            } else {
                n("requests_during_gap_total").to_string()
            },
            db_errors.to_string(),
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::script::Family;
    use crate::format::PodRef;
    use std::time::Duration;

    #[test]
    fn header_has_the_urls_and_a_legend_line_per_column_and_state() {
        let addr: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let h = header_lines(
            3,
            addr,
            Path::new("/tmp/demo/pods"),
            &["prometheus alerts=http://127.0.0.1:9090/alerts".into()],
        );
        let text = h.join("\n");
        assert!(text.contains("http://127.0.0.1:9464/metrics"), "{text}");
        assert!(text.contains("http://127.0.0.1:9464/api/v1/pods"), "{text}");
        assert!(
            text.contains("prometheus alerts: http://127.0.0.1:9090/alerts"),
            "{text}"
        );
        let columns = table(&[], &Exposition::default(), Timestamp(0));
        for (column, _) in COLUMNS {
            assert!(columns[0].contains(column), "{columns:?}");
            assert!(
                h.iter().any(
                    |l| l.trim_start().starts_with(column) || l.contains(&format!("{column}:"))
                ),
                "no legend for column {column}: {text}"
            );
        }
        for state in ["starting:", "IN GAP:", "ready:"] {
            assert!(text.contains(state), "no legend for state {state}: {text}");
        }
        // Every line fits a 110-column terminal.
        assert!(h.iter().all(|l| l.chars().count() <= 110), "{text}");
        assert!(
            columns.iter().all(|l| l.chars().count() <= 110),
            "{columns:?}"
        );
    }

    #[test]
    fn rows_come_from_the_scrape() {
        let plans: Vec<PodPlan> = ["a", "b", "c"]
            .iter()
            .map(|p| PodPlan {
                pod: PodRef {
                    namespace: "llm".into(),
                    pod: (*p).into(),
                },
                family: Family::V1_83,
                watch: Watch::Sidecar,
                engine_delay: Duration::from_secs(1),
                rows_seed: 1,
            })
            .collect();
        let m = Exposition::parse(
            "litellm_sentinel_proxy_starts_total{namespace=\"llm\",pod=\"a\"} 1\n\
             litellm_sentinel_in_startup_gap{namespace=\"llm\",pod=\"a\"} 1\n\
             litellm_sentinel_startup_gap_open_since_timestamp_seconds{namespace=\"llm\",pod=\"a\"} 100\n\
             litellm_sentinel_proxy_starts_total{namespace=\"llm\",pod=\"b\"} 1\n\
             litellm_sentinel_in_startup_gap{namespace=\"llm\",pod=\"b\"} 0\n\
             litellm_sentinel_last_startup_gap_seconds{namespace=\"llm\",pod=\"b\",method=\"probe\"} 7.25\n\
             litellm_sentinel_spend_batches_dropped_total{namespace=\"llm\",pod=\"b\"} 3\n\
             litellm_sentinel_db_connect_errors_total{namespace=\"llm\",pod=\"b\",operation=\"other\"} 2\n\
             litellm_sentinel_db_connect_errors_total{namespace=\"llm\",pod=\"b\",operation=\"budget_lookup\"} 5\n",
        )
        .unwrap();
        let t = table(&plans, &m, Timestamp::from_secs_f64(103.5));
        assert!(t[1].contains("IN GAP") && t[1].contains("3.5s…"), "{t:?}");
        assert!(
            t[1].contains(" … "),
            "requests at risk are counted at the close: {t:?}"
        );
        assert!(t[2].contains("ready") && t[2].contains("7.25s"), "{t:?}");
        assert!(t[2].trim_end().ends_with(" 7"), "DB errors summed: {t:?}");
        assert!(t[3].contains("starting"), "{t:?}");
    }
}
