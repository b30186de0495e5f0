//! litellm-sentinel: watches LiteLLM proxy pods for the Prisma query-engine
//! start-up race and turns it into metrics, alerts and a readiness gate.
//!
//! The modules follow the data flow (see DESIGN.md):
//! `tail` (bytes) → `format` (records) → `classify` (events) → `timeline`
//! (per-pod state) → `metrics` → `server`. `probe` feeds engine readiness into
//! the timeline. `report` and `demo` drive the same stages offline.
//!
//! `config` turns the file, the environment and the flags into one
//! [`config::Settings`] (each subsystem's own config, compiled once); it
//! depends on the subsystems, never the reverse. [`error`] prints an error
//! with each cause once.

// System calls std lacks go through rustix's safe wrappers.
#![forbid(unsafe_code)]

pub mod classify;
pub mod config;
pub mod format;
pub mod model;
pub mod tail;
pub mod time;
pub mod timeline;

pub mod agent;
pub mod demo;
pub mod engine_standin;
pub mod error;
pub mod gate;
pub mod http_client;
pub mod inject;
pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod probe;
pub mod redact;
pub mod report;
pub mod server;
pub mod state;
pub mod sync;
/// `--web.config.file`: HTTPS and basic auth (exporter-toolkit web config).
#[cfg(feature = "tls")]
pub mod webconfig;
