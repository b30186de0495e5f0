//! The shared vocabulary: who (a [`PodRef`]), what happened ([`Event`],
//! [`EventKind`], [`Operation`]), what a probe checked ([`Target`],
//! [`FailureReason`]) and what is counted per pod ([`Counts`] by [`Counter`]).
//!
//! Every stage after `format` speaks these types, and each is defined once:
//! a new operation or event kind is added here (and to the rule pack that
//! emits it); the checkpoint, `/api/v1/pods` and `report --json` store and
//! show counters by name, so they follow without a layout change, and the
//! metrics renderer gives it a help text. This module imports nothing from
//! the rest of the crate but `time`.

mod counts;
mod event;
mod pod;
mod probe;

pub use counts::{Counter, Counts};
pub use event::{ConfigKind, Event, EventKind, Operation};
pub use pod::PodRef;
pub use probe::{FailureReason, Target};
