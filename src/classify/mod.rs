//! Turning log records into startup-race events.
//!
//! Input: [`crate::format::Record`]s of one file, in order. Output: [`Event`]s.
//! The rules come from a TOML rule pack (the built-in `rules/litellm.toml`,
//! optionally extended or overridden by a user pack) compiled into one
//! multi-pattern matcher, so a line that matches nothing costs almost nothing.
//! Tracebacks and `Error: …` lines that follow an event header are folded into
//! that event ([`fold`]), so one failing operation is one event.

pub mod access;
pub mod fold;
pub mod matcher;
pub mod pack;
pub mod prefilter;
pub mod state;
#[cfg(test)]
mod tests;

pub use matcher::RulePack;
pub use pack::{RuleError, RuleProblem};
pub use state::ClassifyState;

use crate::time::Timestamp;

/// The DB operation a connection failure happened in; the `operation` label.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    SpendLogsQueue,
    GetGenericData,
    AddDeployment,
    GetCredentials,
    BudgetLookup,
    UpdateSpend,
    /// The database itself failed (Prisma P1001/P1017/P2024, `too many
    /// clients`): the engine answered, PostgreSQL did not.
    Database,
    Other,
}

impl Operation {
    /// Every operation, in label order (for pre-registering series and reports).
    pub const ALL: [Operation; 8] = [
        Operation::SpendLogsQueue,
        Operation::GetGenericData,
        Operation::AddDeployment,
        Operation::GetCredentials,
        Operation::BudgetLookup,
        Operation::UpdateSpend,
        Operation::Database,
        Operation::Other,
    ];

    /// The fixed label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::SpendLogsQueue => "spend_logs_queue",
            Operation::GetGenericData => "get_generic_data",
            Operation::AddDeployment => "add_deployment",
            Operation::GetCredentials => "get_credentials",
            Operation::BudgetLookup => "budget_lookup",
            Operation::UpdateSpend => "update_spend",
            Operation::Database => "database",
            Operation::Other => "other",
        }
    }

    /// Parses a label value (rule packs name operations this way).
    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// What failed to load at start-up; the `kind` label of `config_load_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigKind {
    Deployments,
    Credentials,
}

impl ConfigKind {
    /// The fixed label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::Deployments => "deployments",
            ConfigKind::Credentials => "credentials",
        }
    }
}

/// One thing that happened in a LiteLLM pod, as far as the startup race is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A DB call failed because the query engine (or DB) could not be reached.
    DbConnectError(Operation),
    /// A spend-log batch was taken off the queue and not written: unbilled spend.
    SpendBatchDropped,
    /// Spend rows LiteLLM (1.108+) put back on its queue for a later retry.
    SpendRowsRequeued(u64),
    /// Spend rows LiteLLM says are gone (or the `logs_count` of a dropped 1.83.x batch).
    SpendRowsLost(u64),
    /// `Budget lookup failed …; cache will not be populated`.
    BudgetCacheMiss,
    /// Deployments or credentials could not be loaded from the DB.
    ConfigLoadFailure(ConfigKind),
    /// Key/user/team spend increments were not applied (`Job "update_spend …"
    /// raised an exception`): spend lost, no amount logged.
    SpendUpdatesFailed,
    /// LiteLLM killed or lost one query-engine process (counted once per PID).
    EngineRestart,
    /// Prisma fell back to another distro's engine (slower engine start).
    EngineDistroFallback,
    /// Uvicorn `Started server process [pid]` (`parent: false`) or `Started
    /// parent process [pid]` (`parent: true`, `--num_workers` > 1): a process
    /// of the proxy began; the timeline tells a new container run from a worker.
    ProcessStarted { parent: bool },
    /// `Application startup complete.`: a worker accepts traffic. The first
    /// one of a container run opens the start.
    ProxyAccepting,
    /// `Uvicorn running on …` / gunicorn `Listening at:`. With workers the
    /// parent prints it before any worker accepts, so it opens a start only
    /// for a server that never logs `Application startup complete.`.
    ProxyListening,
    /// Uvicorn `Shutting down` / `Waiting for application shutdown.`: the
    /// run is ending. DB failures from here on are the shutdown's (the engine
    /// is often gone first): counted, but no gap or outage.
    ProxyStopping,
    /// A 2xx access-log line for a real (non-health) request.
    RequestServed,
}

/// Which LiteLLM behaviour a spend-log write failure follows. The versions
/// differ in what `Error in spend logs queue monitor` means for the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum VersionFamily {
    /// Up to 1.107 (the user's 1.83.x): the batch was popped before the write
    /// and is dropped when the write fails.
    #[serde(rename = "1.83")]
    V1_83,
    /// 1.108 and newer: the failed batch is re-queued; losses are logged
    /// with their own row counts.
    #[serde(rename = "1.108")]
    V1_108,
}

impl VersionFamily {
    /// `1.83`, `1.83.14`, `v1.110.2`, `1.108` … → the family; None when not a
    /// `1.N[.M]` version.
    pub fn parse(s: &str) -> Option<VersionFamily> {
        let s = s.trim().trim_start_matches('v');
        let mut parts = s.split('.');
        let major: u64 = parts.next()?.parse().ok()?;
        let minor: u64 = parts.next()?.parse().ok()?;
        if parts.any(|p| p.parse::<u64>().is_err()) {
            return None;
        }
        match (major, minor) {
            (0, _) => Some(VersionFamily::V1_83),
            (1, m) if m < 108 => Some(VersionFamily::V1_83),
            _ => Some(VersionFamily::V1_108),
        }
    }

    /// The family's name as written in config and rule packs.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionFamily::V1_83 => "1.83",
            VersionFamily::V1_108 => "1.108",
        }
    }
}

/// An event with the timestamp of the record it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub ts: Option<Timestamp>,
    pub kind: EventKind,
    /// The rule that matched, as an index into the pack that classified the
    /// line ([`RulePack::rule_id`]); None for a traceback no header owns.
    /// Only `report`'s loss ledger reads it (it names the rule, never the line).
    pub rule: Option<u32>,
}
