//! What happened in a pod, as far as the start-up race is concerned.

use crate::model::Counter;
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
    pub const fn as_str(self) -> &'static str {
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
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ConfigKind {
    Deployments,
    Credentials,
}

impl ConfigKind {
    /// Every kind, in label order.
    pub const ALL: [ConfigKind; 2] = [ConfigKind::Deployments, ConfigKind::Credentials];

    /// The fixed label value.
    pub const fn as_str(self) -> &'static str {
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

/// An event with the timestamp of the record it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub ts: Option<Timestamp>,
    pub kind: EventKind,
    /// The rule that matched, as an index into the pack that classified the
    /// line ([`crate::classify::RulePack::rule_id`]); None for a traceback no header owns.
    /// Only `report`'s loss ledger reads it (it names the rule, never the line).
    pub rule: Option<u32>,
}

impl EventKind {
    /// The pod counter this event adds to, and by how much. `None`: the
    /// event moves the start-up state machine only (starts, requests), which
    /// counts what it finds itself (`proxy_starts`, `requests_during_gap`, …).
    pub fn counter(self) -> Option<(Counter, u64)> {
        let one = |c| Some((c, 1));
        match self {
            EventKind::DbConnectError(op) => one(Counter::DbConnectErrors(op)),
            EventKind::SpendBatchDropped => one(Counter::SpendBatchesDropped),
            EventKind::SpendRowsRequeued(n) => Some((Counter::SpendRowsRequeued, n)),
            EventKind::SpendRowsLost(n) => Some((Counter::SpendRowsLost, n)),
            EventKind::BudgetCacheMiss => one(Counter::BudgetCacheMisses),
            EventKind::ConfigLoadFailure(kind) => one(Counter::ConfigLoadFailures(kind)),
            EventKind::SpendUpdatesFailed => one(Counter::SpendUpdatesFailed),
            EventKind::EngineRestart => one(Counter::EngineRestarts),
            EventKind::EngineDistroFallback => one(Counter::EngineDistroFallbacks),
            EventKind::ProcessStarted { .. }
            | EventKind::ProxyAccepting
            | EventKind::ProxyListening
            | EventKind::ProxyStopping
            | EventKind::RequestServed => None,
        }
    }
}
