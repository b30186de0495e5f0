//! The report's only view of the timeline and event model.
//!
//! Everything `report` renders (table, JSON, ledger, HTML, `--fail-on`) reads
//! starts, outages and event kinds through these functions, so a change of
//! the model (issue 12: outages, open gaps, new counts and event kinds) is
//! made here once and every output follows.

use crate::classify::EventKind;
use crate::time::Timestamp;
use crate::timeline::{Method, Start};

/// A mid-life outage of one start, as the report draws and checks it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct OutageView {
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub seconds: Option<f64>,
    pub method: &'static str,
    pub requests: u64,
    pub open: bool,
}

/// The mid-life outages of a start.
pub(crate) fn outages_of(start: &Start) -> Vec<OutageView> {
    start
        .outages
        .iter()
        .map(|o| OutageView {
            started_at: o.started_at,
            ended_at: o.ended_at,
            seconds: o.seconds,
            method: o.method.as_str(),
            requests: o.requests,
            open: o.open,
        })
        .collect()
}

/// How long a start's gap lasted (closed), or had lasted when the input
/// ended (open): the end of the bar the HTML draws and `gap>` checks.
pub fn gap_seconds(start: &Start, last_record: Option<Timestamp>) -> Option<f64> {
    if start.open {
        let l = start.listening_at?;
        let end = start.last_db_error_at.or(last_record)?;
        return Some(end.seconds_since(l).max(0.0));
    }
    start.gap_seconds
}

/// Requests served inside a start's gap as the timeline measured it.
pub(crate) fn requests_in_gap(start: &Start) -> u64 {
    start.requests
}

/// The method's word for people ("exact" probe, "estimated" log).
pub(crate) fn method_word(m: Method) -> &'static str {
    match m {
        Method::Probe => "probe, exact",
        Method::Log => "log, estimated",
    }
}

/// One event in the ledger's vocabulary: its kind, operation (or what failed
/// to load) and rows. `None`: not a ledger line (requests are counted in the
/// report, not listed). MERGE POINT (issue 12): new event kinds get a line here.
pub(crate) struct LedgerKind {
    pub kind: &'static str,
    pub operation: Option<&'static str>,
    pub rows_lost: u64,
    pub rows_requeued: u64,
}

/// The ledger's view of an event kind.
pub(crate) fn ledger_kind(k: &EventKind) -> Option<LedgerKind> {
    let plain = |kind| LedgerKind {
        kind,
        operation: None,
        rows_lost: 0,
        rows_requeued: 0,
    };
    Some(match *k {
        EventKind::DbConnectError(op) => LedgerKind {
            operation: Some(op.as_str()),
            ..plain("db_connect_error")
        },
        EventKind::SpendBatchDropped => plain("spend_batch_dropped"),
        EventKind::SpendRowsRequeued(n) => LedgerKind {
            rows_requeued: n,
            ..plain("spend_rows_requeued")
        },
        EventKind::SpendRowsLost(n) => LedgerKind {
            rows_lost: n,
            ..plain("spend_rows_lost")
        },
        EventKind::BudgetCacheMiss => plain("budget_cache_miss"),
        EventKind::ConfigLoadFailure(kind) => LedgerKind {
            operation: Some(kind.as_str()),
            ..plain("config_load_failure")
        },
        EventKind::EngineDistroFallback => plain("engine_distro_fallback"),
        EventKind::SpendUpdatesFailed => plain("spend_updates_failed"),
        EventKind::EngineRestart => plain("engine_restart"),
        EventKind::ProxyAccepting => plain("proxy_accepting"),
        EventKind::ProxyListening => plain("proxy_listening"),
        // Process and shutdown lines are context, not ledger entries.
        EventKind::ProcessStarted { .. } | EventKind::ProxyStopping => return None,
        EventKind::RequestServed => return None,
    })
}

/// Events the HTML marks on a pod's line (losses), as opposed to context.
pub(crate) fn is_loss(k: &EventKind) -> bool {
    matches!(
        k,
        EventKind::SpendBatchDropped | EventKind::SpendRowsLost(_) | EventKind::SpendUpdatesFailed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Operation;

    fn start(open: bool, gap: Option<f64>) -> Start {
        let mut s = Start::new(Some(Timestamp(0)), Method::Log);
        s.last_db_error_at = Some(Timestamp(5_000_000_000));
        s.gap_seconds = gap;
        s.open = open;
        s.confirmed = open || gap.is_some_and(|g| g > 0.0);
        s
    }

    #[test]
    fn open_gaps_last_until_their_last_failure() {
        assert_eq!(gap_seconds(&start(true, None), None), Some(5.0));
        assert_eq!(gap_seconds(&start(false, Some(3.0)), None), Some(3.0));
        assert!(start(false, Some(3.0)).confirmed);
        assert!(!start(false, Some(0.0)).confirmed);
    }

    #[test]
    fn ledger_names_follow_the_rule_pack_vocabulary() {
        let k = ledger_kind(&EventKind::DbConnectError(Operation::SpendLogsQueue)).unwrap();
        assert_eq!(
            (k.kind, k.operation),
            ("db_connect_error", Some("spend_logs_queue"))
        );
        assert_eq!(
            ledger_kind(&EventKind::SpendRowsLost(7)).unwrap().rows_lost,
            7
        );
        assert_eq!(
            ledger_kind(&EventKind::SpendRowsRequeued(9))
                .unwrap()
                .rows_requeued,
            9
        );
        assert!(ledger_kind(&EventKind::RequestServed).is_none());
    }
}
