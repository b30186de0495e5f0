//! litellm-sentinel: watches LiteLLM proxy pods for the Prisma query-engine
//! start-up race and turns it into metrics, alerts and a readiness gate.
//!
//! The modules follow the data flow (see DESIGN.md):
//! `tail` (bytes) → `format` (records) → `classify` (events) → `timeline`
//! (per-pod state) → `metrics` → `server`. `probe` feeds engine readiness into
//! the timeline. `report` and `demo` drive the same stages offline.

pub mod classify;
pub mod format;
pub mod time;
pub mod config;
pub mod tail;
pub mod timeline;

pub mod metrics;
pub mod state;
pub mod pipeline;
pub mod probe;
pub mod server;
