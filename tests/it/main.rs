//! The integration tests: one binary, one module per area, `support`
//! compiled once. Each area drives the built agent (`CARGO_BIN_EXE_…`) or the
//! library's public API the way a user or a subsystem would.
//!
//! Run one area with `cargo test --test it <area>::`, e.g. `tail_live::`.

// Test code may unwrap; the few `unsafe` blocks (a counting allocator,
// setrlimit, geteuid) say why where they are.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

mod support;

mod alloc;
mod audit;
mod bad_input;
mod checkpoint;
mod inject;
mod otlp;
mod pipeline;
mod probe;
mod reload;
mod report;
mod scan;
mod secrets;
mod sidecar;
mod tail_fds;
mod tail_live;
mod tail_model;
mod torture;
#[cfg(feature = "tls")]
mod webconfig;
