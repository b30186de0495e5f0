//! Helpers shared by every area: the agent as a child process ([`agent`]),
//! engine stand-in processes ([`engine_proc`]) and a throw-away PostgreSQL
//! cluster ([`postgres`]). Compiled once, for the one test binary.

mod agent;
pub mod engine_proc;
pub mod postgres;

pub use agent::*;
