//! Fuzzes the classifier with the built-in rule pack: any bytes, cut into
//! records (some multi-line, as LiteLLM's JSON messages with a stack trace
//! are), must never panic, and each record line yields a bounded number of
//! events. The fold state must survive a checkpoint round trip.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use litellm_sentinel::classify::{ClassifyState, RulePack};
use litellm_sentinel::format::{Record, Stream};
use litellm_sentinel::time::Timestamp;

fn pack() -> &'static RulePack {
    static PACK: OnceLock<RulePack> = OnceLock::new();
    PACK.get_or_init(|| RulePack::builtin().expect("the built-in rule pack compiles"))
}

fuzz_target!(|data: &[u8]| {
    let mut state = ClassifyState::default();
    let mut events = 0usize;
    let mut lines = 0usize;
    // A 0x00 byte separates records; `\n` inside a record makes it multi-line.
    for (i, chunk) in data.split(|&b| b == 0).enumerate() {
        let stream = if i % 2 == 0 { Stream::Stdout } else { Stream::Stderr };
        let record = Record { ts: Some(Timestamp(i as i64 * 1_000_000_000)), stream, text: chunk };
        lines += chunk.split(|&b| b == b'\n').count();
        pack().classify(&mut state, &record, &mut |_ev| events += 1);
        if i % 5 == 4 {
            let json = serde_json::to_string(&state).expect("state serializes");
            state = serde_json::from_str(&json).expect("state deserializes");
        }
    }
    // The richest rule emits three events (batch dropped, rows lost, DB error).
    assert!(events <= lines * 3 + 3, "{events} events from {lines} lines");
});
