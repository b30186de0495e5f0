//! The demo's self-check: what each simulated pod logged (and when its
//! engine bound its port) against what the agent's `/metrics` says, one
//! line per number, in words an SRE reads at a glance.

use std::time::Duration;

use super::scrape::Exposition;
use super::script::{Family, Played, PodPlan, Truth, Watch};

const P: &str = "litellm_sentinel_";

/// Added to the one-interval bound of a gap: timer lateness on a busy
/// machine plus the probe's own round trip (`GET /status`, `SELECT 1`) and
/// the microsecond rounding of record times.
pub(crate) const SCHEDULING_SLACK: Duration = Duration::from_millis(50);

/// Rounding between a record time (µs) and a gauge (f64 seconds).
const EXACT: f64 = 0.002;

/// What the check allows a measured gap to differ by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tolerance {
    /// The sidecar's probe interval while the engine does not answer.
    pub probe_interval: Duration,
}

/// A deliberately wrong expectation (hidden `--check-skew`), so tests can
/// prove that a wrong number fails the demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Skew {
    /// The first pod's gap is expected one second longer.
    Gap,
    /// The first pod's count with this check key is expected one higher.
    Count(String),
}

impl Skew {
    /// `gap` or a check key (`spend_rows_lost`, `db_connect_errors:budget_lookup`, …).
    pub fn parse(s: &str) -> Result<Skew, String> {
        match s {
            "gap" => Ok(Skew::Gap),
            k if COUNTERS.iter().any(|c| c.key == k)
                || k.strip_prefix("db_connect_errors:")
                    .is_some_and(|op| !op.is_empty()) =>
            {
                Ok(Skew::Count(k.to_string()))
            }
            _ => Err(format!("unknown check {s:?}")),
        }
    }
}

/// One compared number.
#[derive(Clone, Debug)]
pub(crate) struct Check {
    pub ok: bool,
    /// `=` for a count, `≈` for a gap (equal within its tolerance).
    pub relation: char,
    pub what: String,
    pub simulated: String,
    pub measured: String,
    /// One line: what the number means for the business.
    pub meaning: String,
    /// The series it was read from.
    pub series: String,
}

struct Counter {
    key: &'static str,
    metric: &'static str,
    label: Option<(&'static str, &'static str)>,
    what: &'static str,
    get: fn(&Truth) -> u64,
    /// Shown even when both sides are 0 (the point is that it is 0).
    always: bool,
    meaning: fn(Family) -> &'static str,
}

const COUNTERS: &[Counter] = &[
    Counter {
        key: "proxy_starts",
        metric: "proxy_starts_total",
        label: None,
        what: "proxy starts",
        get: |t| t.proxy_starts,
        always: true,
        meaning: |_| "container runs that began taking traffic (one per new pod)",
    },
    Counter {
        key: "requests_during_gap",
        metric: "requests_during_gap_total",
        label: None,
        what: "requests at risk",
        get: |t| t.requests_during_gap,
        always: true,
        meaning: |_| {
            "chat completions served while the DB was unreachable: their spend may not be recorded"
        },
    },
    Counter {
        key: "spend_batches_dropped",
        metric: "spend_batches_dropped_total",
        label: None,
        what: "spend batches dropped",
        get: |t| t.spend_batches_dropped,
        always: true,
        meaning: |f| match f {
            Family::V1_83 => {
                "batches 1.83 took off the queue and never wrote: requests that are never billed"
            }
            Family::V1_110 => {
                "none: 1.108+ puts a failed batch back on the queue instead of dropping it"
            }
        },
    },
    Counter {
        key: "spend_rows_lost",
        metric: "spend_rows_lost_total",
        label: None,
        what: "spend rows lost",
        get: |t| t.spend_rows_lost,
        always: true,
        meaning: |f| match f {
            Family::V1_83 => {
                "spend-log rows in those batches (logs_count of their last retry): unbilled usage"
            }
            Family::V1_110 => "none: nothing was lost, the rows were re-queued",
        },
    },
    Counter {
        key: "spend_rows_requeued",
        metric: "spend_rows_requeued_total",
        label: None,
        what: "spend rows re-queued",
        get: |t| t.spend_rows_requeued,
        always: true,
        meaning: |f| match f {
            Family::V1_83 => "none: 1.83 never re-queues, what fails is dropped",
            Family::V1_110 => {
                "rows put back on the queue, written once the engine answers: billed late, not lost"
            }
        },
    },
    Counter {
        key: "budget_cache_misses",
        metric: "budget_cache_misses_total",
        label: None,
        what: "budget cache misses",
        get: |t| t.budget_cache_misses,
        always: true,
        meaning: |_| {
            "budget lookups that failed: the budget cache stays empty, every request hits the DB"
        },
    },
    Counter {
        key: "deployments_not_loaded",
        metric: "config_load_failures_total",
        label: Some(("kind", "deployments")),
        what: "deployments not loaded",
        get: |t| t.deployment_load_failures,
        always: false,
        meaning: |_| "models stored in the DB were not loaded at start-up",
    },
    Counter {
        key: "credentials_not_loaded",
        metric: "config_load_failures_total",
        label: Some(("kind", "credentials")),
        what: "credentials not loaded",
        get: |t| t.credential_load_failures,
        always: false,
        meaning: |_| "provider credentials stored in the DB were not loaded at start-up",
    },
    Counter {
        key: "engine_distro_fallbacks",
        metric: "engine_distro_fallback_total",
        label: None,
        what: "engine distro fallbacks",
        get: |t| t.engine_distro_fallbacks,
        always: false,
        meaning: |_| {
            "the wolfi image fell back to Prisma's debian engine build (a slower engine start)"
        },
    },
    Counter {
        key: "db_outages",
        metric: "db_outages_total",
        label: None,
        what: "DB outages after the gap",
        get: |_| 0,
        always: true,
        meaning: |_| "none: once up, the engine kept answering",
    },
    Counter {
        key: "in_startup_gap",
        metric: "in_startup_gap",
        label: None,
        what: "still in its gap",
        get: |_| 0,
        always: true,
        meaning: |_| "0: the agent has closed this pod's gap",
    },
];

fn operation_meaning(op: &str) -> &'static str {
    match op {
        "add_deployment" => "loading deployments at start-up",
        "get_credentials" => "loading credentials at start-up",
        "get_generic_data" => "background reads of config and settings",
        "spend_logs_queue" => "spend-log writes: each retry and the final monitor error",
        "budget_lookup" => "per-request budget lookups",
        "other" => "other Prisma calls (connect, health_check)",
        _ => "DB calls of this kind",
    }
}

fn series(metric: &str, pod: &PodPlan, label: Option<(&str, &str)>) -> String {
    let extra = label.map_or(String::new(), |(k, v)| format!(",{k}=\"{v}\""));
    format!(
        "{P}{metric}{{namespace=\"{}\",pod=\"{}\"{extra}}}",
        pod.pod.namespace, pod.pod.pod
    )
}

fn read(m: &Exposition, metric: &str, pod: &PodPlan, label: Option<(&str, &str)>) -> Option<f64> {
    let name = format!("{P}{metric}");
    let mut with = vec![
        ("namespace", pod.pod.namespace.as_str()),
        ("pod", pod.pod.pod.as_str()),
    ];
    with.extend(label);
    m.value(&name, &with)
}

fn count_check(
    what: String,
    simulated: u64,
    measured: Option<f64>,
    meaning: String,
    series: String,
) -> Check {
    // A counter the agent never touched may be absent: that reads as 0.
    let m = measured.unwrap_or(0.0);
    Check {
        ok: m == simulated as f64,
        relation: '=',
        what,
        simulated: simulated.to_string(),
        measured: if m.fract() == 0.0 {
            format!("{m:.0}")
        } else {
            format!("{m}")
        },
        meaning,
        series,
    }
}

fn gap_check(plan: &PodPlan, played: &Played, m: &Exposition, tol: &Tolerance, skew: f64) -> Check {
    let ms = |s: f64| s * 1000.0;
    match plan.watch {
        Watch::Sidecar => {
            let truth = played.true_gap() + skew;
            let measured = read(
                m,
                "last_startup_gap_seconds",
                plan,
                Some(("method", "probe")),
            );
            let limit = (tol.probe_interval + SCHEDULING_SLACK).as_secs_f64();
            let late = measured.map(|g| g - truth);
            let ok = late.is_some_and(|d| (-EXACT..=limit).contains(&d));
            Check {
                ok,
                relation: '≈',
                what: "start-up gap (probe)".into(),
                simulated: format!("{truth:.3}s"),
                measured: measured.map_or("absent".into(), |g| format!("{g:.3}s")),
                meaning: match late {
                    Some(d) if d < -EXACT => format!(
                        "the probe saw the engine answer {:.0} ms before it bound its port: impossible, the gap is wrong",
                        ms(-d)
                    ),
                    Some(d) => format!(
                        "the proxy took traffic {truth:.2} s before its engine bound; the probe saw it {:.0} ms after the bind (allowed: one {:.0} ms probe interval + {:.0} ms)",
                        ms(d),
                        ms(tol.probe_interval.as_secs_f64()),
                        ms(SCHEDULING_SLACK.as_secs_f64())
                    ),
                    None => "the sidecar probe measured no closed gap for this pod".into(),
                },
                series: series("last_startup_gap_seconds", plan, Some(("method", "probe"))),
            }
        }
        Watch::LogsOnly => {
            let bind = played.true_gap() + skew;
            let last_failure = played.log_gap() + skew;
            let measured = read(m, "last_startup_gap_seconds", plan, Some(("method", "log")));
            let limit = played.last_beat.as_secs_f64() + EXACT;
            let ok = measured.is_some_and(|g| {
                (g - last_failure).abs() <= EXACT && (-EXACT..=limit).contains(&(bind - g))
            });
            Check {
                ok,
                relation: '≈',
                what: "start-up gap (logs)".into(),
                simulated: format!("{bind:.3}s"),
                measured: measured.map_or("absent".into(), |g| format!("{g:.3}s")),
                meaning: match measured {
                    Some(g) => format!(
                        "from the logs alone: it ends at the last DB failure, {:.0} ms before the engine bound (allowed: the last log beat, {:.0} ms; a sidecar measures it exactly)",
                        ms(bind - g),
                        ms(played.last_beat.as_secs_f64())
                    ),
                    None => "the agent has not closed this pod's gap from its logs".into(),
                },
                series: series("last_startup_gap_seconds", plan, Some(("method", "log"))),
            }
        }
    }
}

/// Every check of one pod, in the order the summary prints them.
pub(crate) fn pod_checks(
    plan: &PodPlan,
    played: &Played,
    m: &Exposition,
    tol: &Tolerance,
    skews: &[Skew],
) -> Vec<Check> {
    let bump = |key: &str| {
        u64::from(
            skews
                .iter()
                .any(|s| matches!(s, Skew::Count(k) if k == key)),
        )
    };
    let gap_skew = if skews.contains(&Skew::Gap) { 1.0 } else { 0.0 };
    let mut out = vec![gap_check(plan, played, m, tol, gap_skew)];
    for c in COUNTERS {
        let simulated = (c.get)(&played.truth) + bump(c.key);
        let measured = read(m, c.metric, plan, c.label);
        if !c.always && simulated == 0 && measured.unwrap_or(0.0) == 0.0 {
            continue;
        }
        out.push(count_check(
            c.what.into(),
            simulated,
            measured,
            (c.meaning)(plan.family).into(),
            series(c.metric, plan, c.label),
        ));
    }
    // Every operation either side knows: one the agent invented fails too.
    let name = format!("{P}db_connect_errors_total");
    let with = [
        ("namespace", plan.pod.namespace.as_str()),
        ("pod", plan.pod.pod.as_str()),
    ];
    let mut ops: Vec<String> = played
        .truth
        .db_connect_errors
        .keys()
        .map(|k| k.to_string())
        .collect();
    for s in m.select(&name, &with) {
        if let Some(op) = s.label("operation") {
            if s.value != 0.0 && !ops.iter().any(|o| o == op) {
                ops.push(op.to_string());
            }
        }
    }
    ops.sort();
    for op in ops {
        let key = format!("db_connect_errors:{op}");
        let simulated = played
            .truth
            .db_connect_errors
            .get(op.as_str())
            .copied()
            .unwrap_or(0)
            + bump(&key);
        let label = Some(("operation", op.as_str()));
        out.push(count_check(
            format!("DB errors: {op}"),
            simulated,
            read(m, "db_connect_errors_total", plan, label),
            format!(
                "failed DB calls (All connection attempts failed) in {}",
                operation_meaning(&op)
            ),
            series("db_connect_errors_total", plan, label),
        ));
    }
    out
}

/// The one-line heading of a pod in the summary.
pub(crate) fn pod_heading(plan: &PodPlan, played: &Played) -> String {
    let watched = match plan.watch {
        Watch::Sidecar => "sidecar probe: exact gap",
        Watch::LogsOnly => "logs only (node DaemonSet, no sidecar): estimated gap",
    };
    format!(
        "{}/{}  LiteLLM {}, {watched}; its engine bound {:.2} s after the proxy took traffic",
        plan.pod.namespace,
        plan.pod.pod,
        plan.family.version(),
        played.true_gap()
    )
}

/// A printed line of a check.
pub(crate) fn check_line(c: &Check) -> String {
    format!(
        "    {:<4} {:<28} {:>9} {} {:<9} {}",
        if c.ok { "ok" } else { "FAIL" },
        c.what,
        c.simulated,
        if c.ok { c.relation } else { '≠' },
        c.measured,
        c.meaning
    )
}

/// What differed, for the error message.
pub(crate) fn mismatch(plan: &PodPlan, c: &Check) -> String {
    format!(
        "{}/{} {}: simulated {}, /metrics {} ({})",
        plan.pod.namespace, plan.pod.pod, c.what, c.simulated, c.measured, c.series
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::PodRef;
    use crate::time::Timestamp;

    fn plan(watch: Watch, family: Family) -> PodPlan {
        PodPlan {
            pod: PodRef {
                namespace: "llm".into(),
                pod: "p".into(),
            },
            family,
            watch,
            engine_delay: Duration::from_secs(5),
            rows_seed: 1,
        }
    }

    fn played() -> Played {
        let mut truth = Truth {
            proxy_starts: 1,
            spend_batches_dropped: 2,
            spend_rows_lost: 40,
            budget_cache_misses: 3,
            requests_during_gap: 3,
            ..Truth::default()
        };
        truth.db_connect_errors.insert("budget_lookup", 3);
        truth.db_connect_errors.insert("spend_logs_queue", 10);
        Played {
            listening_at: Timestamp::from_secs_f64(1000.0),
            bound_at: Timestamp::from_secs_f64(1005.0),
            last_failure_at: Some(Timestamp::from_secs_f64(1004.6)),
            last_beat: Duration::from_millis(500),
            truth,
        }
    }

    fn metrics(gap: f64, method: &str, dropped: u64, extra: &str) -> Exposition {
        let l = "namespace=\"llm\",pod=\"p\"";
        Exposition::parse(&format!(
            "{P}last_startup_gap_seconds{{{l},method=\"{method}\"}} {gap}\n\
             {P}proxy_starts_total{{{l}}} 1\n\
             {P}requests_during_gap_total{{{l}}} 3\n\
             {P}spend_batches_dropped_total{{{l}}} {dropped}\n\
             {P}spend_rows_lost_total{{{l}}} 40\n\
             {P}spend_rows_requeued_total{{{l}}} 0\n\
             {P}budget_cache_misses_total{{{l}}} 3\n\
             {P}in_startup_gap{{{l}}} 0\n\
             {P}db_connect_errors_total{{{l},operation=\"budget_lookup\"}} 3\n\
             {P}db_connect_errors_total{{{l},operation=\"spend_logs_queue\"}} 10\n{extra}"
        ))
        .unwrap()
    }

    const TOL: Tolerance = Tolerance {
        probe_interval: Duration::from_millis(250),
    };

    fn failed(checks: &[Check]) -> Vec<String> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.clone())
            .collect()
    }

    #[test]
    fn a_probe_gap_must_lie_within_one_probe_interval_after_the_bind() {
        let p = plan(Watch::Sidecar, Family::V1_83);
        for (gap, ok) in [(5.0, true), (5.29, true), (4.99, false), (5.31, false)] {
            let c = pod_checks(&p, &played(), &metrics(gap, "probe", 2, ""), &TOL, &[]);
            assert_eq!(c[0].ok, ok, "gap {gap}: {c:?}");
            assert_eq!(failed(&c).len(), usize::from(!ok), "{c:?}");
        }
        // Read from the wrong method: absent, fails.
        let c = pod_checks(&p, &played(), &metrics(5.1, "log", 2, ""), &TOL, &[]);
        assert_eq!(failed(&c), ["start-up gap (probe)"]);
        assert_eq!(c[0].measured, "absent");
    }

    #[test]
    fn a_log_gap_must_end_at_the_last_failure_within_one_beat_of_the_bind() {
        let p = plan(Watch::LogsOnly, Family::V1_83);
        let c = pod_checks(&p, &played(), &metrics(4.6, "log", 2, ""), &TOL, &[]);
        assert!(failed(&c).is_empty(), "{c:?}");
        // Not the last failure: wrong, even though close to the bind.
        let c = pod_checks(&p, &played(), &metrics(4.9, "log", 2, ""), &TOL, &[]);
        assert_eq!(failed(&c), ["start-up gap (logs)"]);
        // The last failure more than one beat before the bind is a wrong simulation.
        let mut early = played();
        early.last_failure_at = Some(Timestamp::from_secs_f64(1004.0));
        let c = pod_checks(&p, &early, &metrics(4.0, "log", 2, ""), &TOL, &[]);
        assert_eq!(failed(&c), ["start-up gap (logs)"]);
    }

    #[test]
    fn a_wrong_count_an_invented_operation_and_a_skew_each_fail_by_name() {
        let p = plan(Watch::Sidecar, Family::V1_83);
        let c = pod_checks(&p, &played(), &metrics(5.1, "probe", 1, ""), &TOL, &[]);
        assert_eq!(failed(&c), ["spend batches dropped"]);
        let m = mismatch(&p, c.iter().find(|c| !c.ok).unwrap());
        assert!(m.contains("simulated 2, /metrics 1"), "{m}");
        assert!(
            m.contains("spend_batches_dropped_total{namespace=\"llm\",pod=\"p\"}"),
            "{m}"
        );
        let extra = format!(
            "{P}db_connect_errors_total{{namespace=\"llm\",pod=\"p\",operation=\"other\"}} 1\n"
        );
        let c = pod_checks(&p, &played(), &metrics(5.1, "probe", 2, &extra), &TOL, &[]);
        assert_eq!(failed(&c), ["DB errors: other"]);
        let skews = [Skew::Gap, Skew::parse("spend_rows_lost").unwrap()];
        let c = pod_checks(&p, &played(), &metrics(5.1, "probe", 2, ""), &TOL, &skews);
        assert_eq!(failed(&c), ["start-up gap (probe)", "spend rows lost"]);
        assert!(Skew::parse("nonsense").is_err());
        assert_eq!(
            Skew::parse("db_connect_errors:budget_lookup").unwrap(),
            Skew::Count("db_connect_errors:budget_lookup".into())
        );
    }

    #[test]
    fn every_printed_line_says_what_the_number_means() {
        let p = plan(Watch::Sidecar, Family::V1_110);
        let c = pod_checks(&p, &played(), &metrics(5.1, "probe", 0, ""), &TOL, &[]);
        for check in &c {
            let line = check_line(check);
            assert!(check.meaning.len() > 10, "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        assert!(c
            .iter()
            .any(|c| c.meaning.contains("1.108+ puts a failed batch back")));
    }
}
