//! `litellm-sentinel report`: a post-mortem over log files, through the same
//! format → classify → timeline code as live tailing.
//!
//! Input ([`input`]): files and directories (`*.log`, rotated `*.log.*`,
//! `.gz`; CRI, docker, `kubectl logs [--timestamps] [--prefix]` output) and
//! stdin (`-`), optionally cut to a [`window`]. Output: a [`Report`] — a
//! table per pod, JSON, the loss [`ledger`], an [`html`] timeline — and a
//! verdict for CI ([`failon`]). All outputs read the same [`Report`], so
//! they show the same numbers.

pub mod failon;
pub mod html;
pub mod input;
pub mod ledger;
pub mod model;
pub mod observe;
mod read;
pub mod render;
pub mod window;

pub use render::{render_json, render_table};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::classify::{Operation, RulePack};
use crate::format::PodRef;
use crate::model::Counter;
use crate::time::{RfcTimestamp, Timestamp};
use crate::timeline::{Counts, Start};

use input::{Input, Source};
use read::{pass, plan, PassResult};
use window::{Window, WindowSpec};

/// Why a report could not be made; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no log files found under {0} (looked for *.log, *.log.* and *.gz)")]
    Empty(String),
    /// The arguments cannot work together (exit 2 at the binary's edge).
    #[error("{0}")]
    Usage(String),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// One start as reported.
#[derive(Debug, Serialize, PartialEq)]
pub struct StartReport {
    pub listening_at: Option<RfcTimestamp>,
    /// The closed gap (0: no DB failure confirmed one); null while open.
    pub gap_seconds: Option<f64>,
    pub method: &'static str,
    /// Still failing when the input ended: never reported as a closed gap.
    pub open: bool,
    /// A DB failure (or failed engine probe) after the start proved the gap.
    pub confirmed: bool,
    /// For an open gap: how long it had been failing (start → last failure).
    pub failing_seconds: Option<f64>,
    /// Requests served inside the gap as measured.
    pub requests: u64,
    /// The proxy shut down while the gap (or its open outage) was still failing.
    pub ended_while_failing: bool,
    pub outages: Vec<crate::timeline::OutageSummary>,
}

impl StartReport {
    fn from_start(s: &Start) -> StartReport {
        StartReport {
            listening_at: s.listening_at.map(RfcTimestamp),
            gap_seconds: s.gap_seconds,
            method: s.method.as_str(),
            open: s.open,
            confirmed: s.confirmed,
            failing_seconds: if s.open { s.failing_seconds() } else { None },
            requests: s.requests,
            ended_while_failing: s.ended_while_failing,
            outages: s
                .outages
                .iter()
                .map(crate::timeline::Outage::summary)
                .collect(),
        }
    }
}

/// A pod's (or all pods') counts as the report shows them: the model's
/// counters, plus the lines read. One type with the timeline's [`Counts`],
/// so a counter added to the model is in `report --json` by its name
/// without a change here; the table and HTML choose what they show.
#[derive(Debug, Default, PartialEq, Clone)]
pub struct ReportCounts {
    /// The timeline's counters of the pod (or their sum).
    pub counters: Counts,
    pub lines: u64,
    pub malformed_lines: u64,
}

impl ReportCounts {
    /// All DB connect errors.
    pub fn db_connect_errors(&self) -> u64 {
        self.counters.db_connect_errors_total()
    }

    /// DB connect errors by operation, the ones that are not 0, in label order.
    pub fn db_connect_errors_by_operation(&self) -> Vec<(&'static str, u64)> {
        Operation::ALL
            .iter()
            .map(|o| (o.as_str(), self.counters.db_connect_errors_for(*o)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl std::ops::Index<Counter> for ReportCounts {
    type Output = u64;

    fn index(&self, c: Counter) -> &u64 {
        &self.counters[c]
    }
}

impl Serialize for ReportCounts {
    /// The report's JSON vocabulary: `proxy_starts`, `db_connect_errors` (the
    /// total) and `db_connect_errors_by_operation`, then every other named
    /// counter of the model, then `lines` and `malformed_lines`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(Counter::ProxyStarts.name(), &self[Counter::ProxyStarts])?;
        m.serialize_entry("db_connect_errors", &self.db_connect_errors())?;
        let by_op: BTreeMap<&str, u64> =
            self.db_connect_errors_by_operation().into_iter().collect();
        m.serialize_entry("db_connect_errors_by_operation", &by_op)?;
        for c in Counter::NAMED {
            if c != Counter::ProxyStarts {
                m.serialize_entry(c.name(), &self[c])?;
            }
        }
        m.serialize_entry("lines", &self.lines)?;
        m.serialize_entry("malformed_lines", &self.malformed_lines)?;
        m.end()
    }
}

/// What the renderers need beyond the counts: the timeline itself.
#[derive(Debug, Default, Clone)]
pub struct PodDetail {
    /// The pod's starts as the timeline holds them (see [`model`]).
    pub starts: Vec<Start>,
    /// First and last record time inside the window.
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    /// Record times of the requests served.
    pub requests: Vec<Timestamp>,
}

/// One pod's post-mortem.
#[derive(Debug, Serialize)]
pub struct PodReport {
    pub namespace: String,
    pub pod: String,
    pub starts: Vec<StartReport>,
    pub counts: ReportCounts,
    #[serde(skip)]
    pub detail: PodDetail,
}

impl PodReport {
    /// `namespace/pod`, or the pod alone when the namespace is unknown.
    pub fn name(&self) -> String {
        if self.namespace.is_empty() {
            self.pod.clone()
        } else {
            format!("{}/{}", self.namespace, self.pod)
        }
    }
}

/// The whole post-mortem.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The window the report covers, when `--since`/`--until` cut the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub pods: Vec<PodReport>,
    pub totals: ReportCounts,
    /// Every event but requests, in record order (the loss ledger).
    #[serde(skip)]
    pub ledger: Vec<observe::Entry>,
    /// Source names the ledger's `file` indexes (`-` is stdin).
    #[serde(skip)]
    pub sources: Vec<String>,
    /// Rule ids the ledger's `rule` indexes.
    #[serde(skip)]
    pub rule_ids: Vec<String>,
    /// One-line hints for stderr (missing timestamps, unnamed stdin).
    #[serde(skip)]
    pub hints: Vec<String>,
}

/// Report settings.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub max_line_bytes: usize,
    pub quiet_period_secs: f64,
    /// `--pod`: the pod of every input whose lines do not name one.
    pub pod: Option<PodRef>,
    /// `--namespace`: the namespace of pods whose input does not say.
    pub namespace: Option<String>,
    /// `--since` / `--until`.
    pub window: WindowSpec,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_line_bytes: 256 * 1024,
            quiet_period_secs: crate::timeline::DEFAULT_QUIET_PERIOD_SECS,
            pod: None,
            namespace: None,
            window: WindowSpec::default(),
        }
    }
}

pub use input::collect_files;

/// Reads every input and builds the report.
pub fn run(
    inputs: &[Input],
    rules: Arc<RulePack>,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    let plan = plan(inputs, opts)?;
    let window = if opts.window.needs_last_record() {
        let scan = pass(&plan, &rules, opts, Window::default(), true)?;
        opts.window
            .resolve(scan.seen.last_ts)
            .map_err(ReportError::Usage)?
    } else {
        opts.window.resolve(None).map_err(ReportError::Usage)?
    };
    let PassResult {
        mut tracker,
        seen,
        tally,
    } = pass(&plan, &rules, opts, window, false)?;
    tracker.finish();
    let mut hints = Vec::new();
    let untimed = seen
        .pods
        .values()
        .any(|p| p.with_ts == 0 && p.without_ts > 0);
    if untimed {
        hints.push("gaps need record times: use `kubectl logs --timestamps`".to_string());
    }
    if opts.pod.is_none()
        && plan
            .demux
            .iter()
            .any(|(_, s)| !matches!(s, Source::Path(_)))
        && tally.keys().any(|p| p.pod == "stdin")
    {
        hints.push("stdin lines without a `[pod/NAME/CONTAINER]` prefix are reported as pod `stdin`: name it with --pod NAMESPACE/NAME".to_string());
    }
    // Totals are the pods' counts added up, then put in the report's vocabulary.
    let (mut all, mut all_lines, mut all_malformed) = (Counts::default(), 0, 0);
    let mut pods = Vec::new();
    let mut seen_pods = seen.pods;
    for (pod, (lines, malformed)) in tally {
        let s = seen_pods.remove(&pod).unwrap_or_default();
        if !window.is_open() && s.kept == 0 {
            // Nothing of this pod inside the window: not part of this report.
            continue;
        }
        let empty = Default::default();
        let p = tracker.pod(&pod);
        let c = p.map_or(&empty, |p| &p.counts);
        all.merge(c);
        all_lines += lines;
        all_malformed += malformed;
        let starts: Vec<Start> = p
            .map(|p| p.starts.iter().cloned().collect())
            .unwrap_or_default();
        let mut requests = s.requests;
        requests.sort_unstable();
        pods.push(PodReport {
            starts: starts.iter().map(StartReport::from_start).collect(),
            counts: ReportCounts {
                counters: c.clone(),
                lines,
                malformed_lines: malformed,
            },
            detail: PodDetail {
                starts,
                first_ts: s.first_ts,
                last_ts: s.last_ts,
                requests,
            },
            namespace: pod.namespace,
            pod: pod.pod,
        });
    }
    let totals = ReportCounts {
        counters: all,
        lines: all_lines,
        malformed_lines: all_malformed,
    };
    let mut ledger = seen.entries;
    // Record order; the sort is stable, so events of one line keep their order.
    ledger.sort_by(|a, b| (a.ts, &a.pod, a.file, a.offset).cmp(&(b.ts, &b.pod, b.file, b.offset)));
    Ok(Report {
        window: (!window.is_open()).then_some(window),
        pods,
        totals,
        ledger,
        sources: plan.sources,
        rule_ids: rules.ids().map(str::to_owned).collect(),
        hints,
    })
}
