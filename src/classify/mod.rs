//! Turning log records into startup-race events.
//!
//! Input: [`crate::format::Record`]s of one file, in order. Output: [`Event`]s.
//! The rules come from a TOML rule pack (the built-in `rules/litellm.toml`,
//! optionally extended or overridden by a user pack) compiled into one
//! multi-pattern matcher, so a line that matches nothing costs almost nothing.
//! Tracebacks and `Error: …` lines that follow an event header are folded into
//! that event ([`fold`]), so one failing operation is one event.

pub mod fold;
pub mod rules;

pub use rules::{ClassifyState, RuleError, RulePack};

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
    Other,
}

impl Operation {
    /// Every operation, in label order (for pre-registering series and reports).
    pub const ALL: [Operation; 7] = [
        Operation::SpendLogsQueue,
        Operation::GetGenericData,
        Operation::AddDeployment,
        Operation::GetCredentials,
        Operation::BudgetLookup,
        Operation::UpdateSpend,
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
    /// Prisma fell back to another distro's engine (slower engine start).
    EngineDistroFallback,
    /// Uvicorn is accepting traffic: a start-up gap opens here.
    ProxyListening,
    /// A 2xx access-log line for a real (non-health) request.
    RequestServed,
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
