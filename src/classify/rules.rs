//! Rule pack (work in progress).

/// Compiled rule pack.
#[derive(Debug, Default)]
pub struct RulePack {}

/// Per-file classification state.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifyState {}

/// Rule pack errors.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Placeholder.
    #[error("rule pack error: {0}")]
    Invalid(String),
}

impl RulePack {
    /// The built-in pack.
    pub fn builtin() -> Result<RulePack, RuleError> {
        Ok(RulePack {})
    }
    /// Built-in plus user rules.
    pub fn with_user_pack(_user_toml: &str, _origin: &str) -> Result<RulePack, RuleError> {
        Ok(RulePack {})
    }
    /// The built-in pack source.
    pub fn builtin_source() -> &'static str {
        ""
    }
    /// Number of rules.
    pub fn len(&self) -> usize {
        0
    }
    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        true
    }
    /// Rule ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::empty()
    }
    /// Classifies one record.
    pub fn classify<F: FnMut(super::Event)>(
        &self,
        _state: &mut ClassifyState,
        _record: &crate::format::Record<'_>,
        _emit: &mut F,
    ) {
    }
}
