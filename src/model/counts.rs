//! Per-pod counters, keyed by what they count and stored by name.
//!
//! One [`Counter`] per `*_total` pod series (a family with a label, such as
//! `db_connect_errors_total{operation}`, has one per label value). The
//! checkpoint, `/api/v1/pods` and `report --json` all write [`Counts`] by
//! name, so adding a counter (or an [`Operation`]) changes no file layout: an
//! older file lacks the name (0), and a name this build does not know (a
//! rollback after a newer release wrote the file) is kept and written back.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConfigKind, Operation};

/// What a pod counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// DB calls that failed because the engine or database could not be reached.
    DbConnectErrors(Operation),
    /// Spend-log batches LiteLLM dropped (1.83.x).
    SpendBatchesDropped,
    /// Spend rows re-queued for a later retry (1.108+).
    SpendRowsRequeued,
    /// Spend rows LiteLLM lost.
    SpendRowsLost,
    /// Budget lookups that failed, leaving the cache empty.
    BudgetCacheMisses,
    /// Deployments or credentials that could not be loaded.
    ConfigLoadFailures(ConfigKind),
    /// Prisma engine distro fallbacks.
    EngineDistroFallbacks,
    /// Container runs of the proxy that started accepting traffic.
    ProxyStarts,
    /// Requests served inside a confirmed start-up gap.
    RequestsDuringGap,
    /// Key/user/team spend update jobs that failed.
    SpendUpdatesFailed,
    /// Query engines LiteLLM killed or lost.
    EngineRestarts,
    /// DB outages after the start-up gap.
    DbOutages,
    /// Requests served inside DB outages.
    RequestsDuringOutage,
}

/// The key the per-operation counters are stored under, as one map.
const DB_CONNECT_ERRORS: &str = "db_connect_errors";

impl Counter {
    /// Every counter with a name of its own (all but the per-operation ones),
    /// in the order the JSON outputs list them.
    pub(crate) const NAMED: [Counter; 13] = [
        Counter::SpendBatchesDropped,
        Counter::SpendRowsRequeued,
        Counter::SpendRowsLost,
        Counter::BudgetCacheMisses,
        Counter::ConfigLoadFailures(ConfigKind::Deployments),
        Counter::ConfigLoadFailures(ConfigKind::Credentials),
        Counter::EngineDistroFallbacks,
        Counter::ProxyStarts,
        Counter::RequestsDuringGap,
        Counter::SpendUpdatesFailed,
        Counter::EngineRestarts,
        Counter::DbOutages,
        Counter::RequestsDuringOutage,
    ];

    /// Every counter: the per-operation ones (in label order), then [`Counter::NAMED`].
    pub fn all() -> impl Iterator<Item = Counter> {
        Operation::ALL
            .into_iter()
            .map(Counter::DbConnectErrors)
            .chain(Counter::NAMED)
    }

    /// The name it is stored and shown by. The per-operation counters share
    /// `db_connect_errors`, a map by operation.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::DbConnectErrors(_) => DB_CONNECT_ERRORS,
            Counter::SpendBatchesDropped => "spend_batches_dropped",
            Counter::SpendRowsRequeued => "spend_rows_requeued",
            Counter::SpendRowsLost => "spend_rows_lost",
            Counter::BudgetCacheMisses => "budget_cache_misses",
            Counter::ConfigLoadFailures(ConfigKind::Deployments) => "deployment_load_failures",
            Counter::ConfigLoadFailures(ConfigKind::Credentials) => "credential_load_failures",
            Counter::EngineDistroFallbacks => "engine_distro_fallbacks",
            Counter::ProxyStarts => "proxy_starts",
            Counter::RequestsDuringGap => "requests_during_gap",
            Counter::SpendUpdatesFailed => "spend_updates_failed",
            Counter::EngineRestarts => "engine_restarts",
            Counter::DbOutages => "db_outages",
            Counter::RequestsDuringOutage => "requests_during_outage",
        }
    }

    /// The counter of a [`Counter::NAMED`] name.
    pub(crate) fn from_name(name: &str) -> Option<Counter> {
        Counter::NAMED.into_iter().find(|c| c.name() == name)
    }

    /// The metric family it is exported in (without the `litellm_sentinel_` prefix).
    pub const fn family(self) -> &'static str {
        match self {
            Counter::DbConnectErrors(_) => "db_connect_errors_total",
            Counter::SpendBatchesDropped => "spend_batches_dropped_total",
            Counter::SpendRowsRequeued => "spend_rows_requeued_total",
            Counter::SpendRowsLost => "spend_rows_lost_total",
            Counter::BudgetCacheMisses => "budget_cache_misses_total",
            Counter::ConfigLoadFailures(_) => "config_load_failures_total",
            Counter::EngineDistroFallbacks => "engine_distro_fallback_total",
            Counter::ProxyStarts => "proxy_starts_total",
            Counter::RequestsDuringGap => "requests_during_gap_total",
            Counter::SpendUpdatesFailed => "spend_updates_failed_total",
            Counter::EngineRestarts => "engine_restarts_total",
            Counter::DbOutages => "db_outages_total",
            Counter::RequestsDuringOutage => "requests_during_outage_total",
        }
    }

    /// The label (beyond namespace and pod) that tells the counters of one family apart.
    pub const fn label(self) -> Option<(&'static str, &'static str)> {
        match self {
            Counter::DbConnectErrors(op) => Some(("operation", op.as_str())),
            Counter::ConfigLoadFailures(kind) => Some(("kind", kind.as_str())),
            _ => None,
        }
    }
}

/// A pod's counters. Absent counters are 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    values: BTreeMap<Counter, u64>,
    /// Counters (by name) a newer release wrote that this build does not
    /// know: kept and written back, never rendered.
    unknown: BTreeMap<String, u64>,
    /// The same for operations of `db_connect_errors`.
    unknown_operations: BTreeMap<String, u64>,
}

impl Counts {
    /// One counter's value.
    pub fn get(&self, c: Counter) -> u64 {
        self.values.get(&c).copied().unwrap_or(0)
    }

    /// Adds `n` to one counter (saturating: a counter never wraps to 0).
    pub fn add(&mut self, c: Counter, n: u64) {
        if n > 0 {
            let v = self.values.entry(c).or_default();
            *v = v.saturating_add(n);
        }
    }

    /// Adds one to a counter.
    pub fn inc(&mut self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds another pod's counts (totals). Unknown names are not totalled.
    pub(crate) fn merge(&mut self, other: &Counts) {
        for (c, n) in &other.values {
            self.add(*c, *n);
        }
    }

    /// The counters that are not 0, in [`Counter`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        self.values
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (*c, *n))
    }

    /// DB connect errors of one operation.
    pub(crate) fn db_connect_errors_for(&self, op: Operation) -> u64 {
        self.get(Counter::DbConnectErrors(op))
    }

    /// All DB connect errors.
    pub(crate) fn db_connect_errors_total(&self) -> u64 {
        Operation::ALL
            .into_iter()
            .map(|op| self.db_connect_errors_for(op))
            .sum()
    }
}

impl std::ops::Index<Counter> for Counts {
    type Output = u64;

    /// `counts[Counter::ProxyStarts]`: the value, 0 when absent.
    fn index(&self, c: Counter) -> &u64 {
        self.values.get(&c).unwrap_or(&0)
    }
}

/// The operations of `db_connect_errors` as a map of the non-zero ones.
struct OperationMap<'a>(&'a Counts);

impl Serialize for OperationMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let known: Vec<_> = Operation::ALL
            .into_iter()
            .map(|op| (op.as_str(), c.db_connect_errors_for(op)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut m = s.serialize_map(Some(known.len() + c.unknown_operations.len()))?;
        for (k, v) in known {
            m.serialize_entry(k, &v)?;
        }
        for (k, v) in &c.unknown_operations {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Counts {
    /// `{"db_connect_errors": {"<operation>": n, …}, "<name>": n, …}`: every
    /// named counter (0 included), the operations that are not 0.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1 + Counter::NAMED.len() + self.unknown.len()))?;
        m.serialize_entry(DB_CONNECT_ERRORS, &OperationMap(self))?;
        for c in Counter::NAMED {
            m.serialize_entry(c.name(), &self.get(c))?;
        }
        for (k, v) in &self.unknown {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The state file before operations were stored by name (d5e4def) wrote
/// them as an array in this order (before `database` existed).
const V1_OPERATION_ORDER: [Operation; 7] = [
    Operation::SpendLogsQueue,
    Operation::GetGenericData,
    Operation::AddDeployment,
    Operation::GetCredentials,
    Operation::BudgetLookup,
    Operation::UpdateSpend,
    Operation::Other,
];

#[derive(Deserialize)]
#[serde(untagged)]
enum Operations {
    ByName(BTreeMap<String, u64>),
    Positional(Vec<u64>),
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Counts, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Counts;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of pod counters by name")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counts, A::Error> {
                let mut c = Counts::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == DB_CONNECT_ERRORS {
                        match map.next_value::<Operations>()? {
                            Operations::ByName(ops) => {
                                for (name, n) in ops {
                                    match Operation::parse(&name) {
                                        Some(op) => c.add(Counter::DbConnectErrors(op), n),
                                        None => {
                                            c.unknown_operations.insert(name, n);
                                        }
                                    }
                                }
                            }
                            Operations::Positional(v) if v.len() == V1_OPERATION_ORDER.len() => {
                                for (op, n) in V1_OPERATION_ORDER.into_iter().zip(v) {
                                    c.add(Counter::DbConnectErrors(op), n);
                                }
                            }
                            Operations::Positional(v) => {
                                return Err(serde::de::Error::custom(format!(
                                    "db_connect_errors: expected {} counters, found {}",
                                    V1_OPERATION_ORDER.len(),
                                    v.len()
                                )))
                            }
                        }
                        continue;
                    }
                    let n: u64 = map.next_value()?;
                    match Counter::from_name(&key) {
                        Some(counter) => c.add(counter, n),
                        None => {
                            c.unknown.insert(key, n);
                        }
                    }
                }
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_families_are_unique_and_round_trip() {
        let mut names: Vec<_> = Counter::NAMED.iter().map(|c| c.name()).collect();
        names.push(DB_CONNECT_ERRORS);
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        for c in Counter::NAMED {
            assert_eq!(Counter::from_name(c.name()), Some(c));
            assert!(c.family().ends_with("_total"), "{c:?}");
        }
        // Series of one family differ by their label.
        let mut series: Vec<_> = Counter::all().map(|c| (c.family(), c.label())).collect();
        let n = series.len();
        series.sort_unstable();
        series.dedup();
        assert_eq!(series.len(), n);
        assert_eq!(n, Operation::ALL.len() + Counter::NAMED.len());
    }

    #[test]
    fn counts_serialise_by_name_and_read_back() {
        let mut c = Counts::default();
        c.inc(Counter::DbConnectErrors(Operation::Database));
        c.add(Counter::SpendRowsLost, 37);
        c.inc(Counter::ConfigLoadFailures(ConfigKind::Credentials));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["db_connect_errors"],
            serde_json::json!({"database": 1})
        );
        assert_eq!(json["spend_rows_lost"], 37);
        assert_eq!(json["credential_load_failures"], 1);
        assert_eq!(json["proxy_starts"], 0, "every named counter is shown");
        let back: Counts = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        assert_eq!(c[Counter::SpendRowsLost], 37);
        assert_eq!(c[Counter::ProxyStarts], 0);
    }

    #[test]
    fn positional_operations_of_the_first_layout_are_read() {
        let v1 = r#"{"db_connect_errors":[1,2,3,4,5,6,7],"spend_batches_dropped":1,
            "spend_rows_requeued":0,"spend_rows_lost":37,"budget_cache_misses":2,
            "deployment_load_failures":0,"credential_load_failures":0,
            "engine_distro_fallbacks":0,"proxy_starts":1,"requests_during_gap":9}"#;
        let c: Counts = serde_json::from_str(v1).unwrap();
        assert_eq!(c.db_connect_errors_for(Operation::SpendLogsQueue), 1);
        assert_eq!(c.db_connect_errors_for(Operation::UpdateSpend), 6);
        assert_eq!(c.db_connect_errors_for(Operation::Other), 7);
        assert_eq!(c.db_connect_errors_for(Operation::Database), 0);
        assert_eq!(c.db_connect_errors_total(), 28);
        assert_eq!(
            (c[Counter::SpendRowsLost], c[Counter::RequestsDuringGap]),
            (37, 9)
        );
        let again: Counts = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c, "written by name, read back the same");
        assert!(serde_json::from_str::<Counts>(&v1.replace("[1,2,3,4,5,6,7]", "[1,2]")).is_err());
    }

    #[test]
    fn names_of_a_newer_release_survive_a_round_trip_uncounted() {
        let newer = r#"{"db_connect_errors":{"other":2,"vector_store":3},
            "proxy_starts":1,"cache_refills_failed":4}"#;
        let c: Counts = serde_json::from_str(newer).unwrap();
        assert_eq!(c.db_connect_errors_total(), 2);
        assert_eq!(c.iter().count(), 2);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["db_connect_errors"]["vector_store"], 3);
        assert_eq!(json["cache_refills_failed"], 4);
        let mut total = Counts::default();
        total.merge(&c);
        assert!(serde_json::to_value(&total).unwrap()["cache_refills_failed"].is_null());
        assert!(
            serde_json::from_str::<Counts>(r#"{"proxy_starts":"x"}"#).is_err(),
            "a counter is a number"
        );
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut c = Counts::default();
        c.add(Counter::SpendRowsLost, u64::MAX);
        c.add(Counter::SpendRowsLost, 5);
        assert_eq!(c[Counter::SpendRowsLost], u64::MAX);
    }
}
