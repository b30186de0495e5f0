//! `--fail-on`: turning a post-mortem into an exit code for CI and runbooks.
//!
//! Each condition looks at the finished [`Report`]; the first failing ones
//! are summed up in one line for stderr, and the process exits 1.

use super::{model, Report};
use crate::config::HumanDuration;
use crate::model::Counter;

/// One `--fail-on` condition.
#[derive(Clone, Debug, PartialEq)]
pub enum FailOn {
    /// Any dropped spend batch, lost spend row or spend update not applied.
    Drops,
    /// Any start-up gap (closed or still open) longer than this many seconds.
    GapOver(f64),
    /// Any mid-life outage.
    Outage,
}

impl FailOn {
    /// Parses `drops`, `outage` or `gap>DURATION` (`gap>30s`, `gap>2m`).
    pub fn parse(s: &str) -> Result<FailOn, String> {
        let s = s.trim();
        match s {
            "drops" => Ok(FailOn::Drops),
            "outage" | "outages" => Ok(FailOn::Outage),
            _ => {
                let Some(d) = s.strip_prefix("gap>") else {
                    return Err(format!(
                        "`{s}`: expected drops, outage or gap>DURATION (e.g. gap>30s)"
                    ));
                };
                HumanDuration::parse(d).map(|d| FailOn::GapOver(d.0.as_secs_f64()))
            }
        }
    }

    /// Why the report fails this condition, or None when it holds.
    pub fn check(&self, r: &Report) -> Option<String> {
        match self {
            FailOn::Drops => {
                let t = &r.totals;
                let not_applied: u64 = r
                    .pods
                    .iter()
                    .map(|p| p.counts[Counter::SpendUpdatesFailed])
                    .sum();
                if t[Counter::SpendBatchesDropped] + t[Counter::SpendRowsLost] + not_applied == 0 {
                    return None;
                }
                let pods: Vec<String> = r
                    .pods
                    .iter()
                    .filter(|p| {
                        p.counts[Counter::SpendBatchesDropped]
                            + p.counts[Counter::SpendRowsLost]
                            + p.counts[Counter::SpendUpdatesFailed]
                            > 0
                    })
                    .map(|p| p.name())
                    .collect();
                let mut what = format!(
                    "{} spend batches dropped, {} spend rows lost",
                    t[Counter::SpendBatchesDropped],
                    t[Counter::SpendRowsLost]
                );
                if not_applied > 0 {
                    what.push_str(&format!(", {not_applied} spend updates not applied"));
                }
                Some(format!("drops: {what} in {}", list(&pods)))
            }
            FailOn::GapOver(limit) => {
                let mut over: Vec<(f64, String, bool)> = Vec::new();
                for p in &r.pods {
                    for s in &p.detail.starts {
                        if let Some(g) = model::gap_seconds(s, p.detail.last_ts) {
                            if g > *limit {
                                over.push((g, p.name(), s.open));
                            }
                        }
                    }
                }
                over.sort_by(|a, b| b.0.total_cmp(&a.0));
                let (g, pod, open) = over.first()?;
                let more = match over.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                let state = if *open { "still open after" } else { "of" };
                Some(format!(
                    "gap>{limit}s: {pod} had a start-up gap {state} {g:.1}s{more}"
                ))
            }
            FailOn::Outage => {
                let mut n = 0usize;
                let mut pods = Vec::new();
                for p in &r.pods {
                    let k: usize = p
                        .detail
                        .starts
                        .iter()
                        .map(|s| model::outages_of(s).len())
                        .sum();
                    if k > 0 {
                        n += k;
                        pods.push(p.name());
                    }
                }
                (n > 0).then(|| format!("outage: {n} mid-life DB outages in {}", list(&pods)))
            }
        }
    }
}

/// Up to three names, then a count.
fn list(names: &[String]) -> String {
    match names.len() {
        0 => "no pod".into(),
        1..=3 => names.join(", "),
        n => format!("{} and {} more pods", names[..3].join(", "), n - 3),
    }
}

/// Checks every condition; the one-line reason when any fails.
pub fn verdict(conditions: &[FailOn], r: &Report) -> Option<String> {
    let reasons: Vec<String> = conditions.iter().filter_map(|c| c.check(r)).collect();
    (!reasons.is_empty()).then(|| format!("report: failing on {}", reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse() {
        assert_eq!(FailOn::parse("drops"), Ok(FailOn::Drops));
        assert_eq!(FailOn::parse("outage"), Ok(FailOn::Outage));
        assert_eq!(FailOn::parse("gap>90s"), Ok(FailOn::GapOver(90.0)));
        assert_eq!(FailOn::parse("gap>2m"), Ok(FailOn::GapOver(120.0)));
        assert!(FailOn::parse("gap<2m")
            .unwrap_err()
            .contains("gap>DURATION"));
        assert!(FailOn::parse("gap>soon").is_err());
    }

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
        assert_eq!(list(&names), "p0, p1, p2 and 2 more pods");
    }
}
