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

/// The event vocabulary lives in the shared model; these paths stay for the classifier's users.
pub use crate::model::{ConfigKind, Event, EventKind, Operation};

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
