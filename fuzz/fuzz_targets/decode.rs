//! Fuzzes the log decoders: any bytes, split into lines, pushed through a
//! `Decoder` of every format, must never panic, never leave a partial behind
//! after `finish`, and never emit a record longer than `max_line_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use litellm_sentinel::format::{Decoder, Format, MalformedReason, Record, RecordSink};

/// Counts what the decoder emits and checks the length cap on every record.
struct CountingSink {
    max_line_bytes: usize,
    records: usize,
    malformed: usize,
}

impl RecordSink for CountingSink {
    fn record(&mut self, record: Record<'_>) {
        // Unescaping JSON and stripping ANSI only ever shrink the text.
        assert!(record.text.len() <= self.max_line_bytes, "record longer than the cap");
        self.records += 1;
    }

    fn malformed(&mut self, _reason: MalformedReason) {
        self.malformed += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the cap, so truncation paths get exercised too.
    let (max_line_bytes, data) = match data.split_first() {
        Some((&first, rest)) => (usize::from(first) * 16, rest),
        None => (0, data),
    };
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let detected = Format::detect(first_line);
    for format in [Format::Cri, Format::Docker, Format::Plain] {
        let mut decoder = Decoder::new(format, max_line_bytes);
        let mut sink = CountingSink { max_line_bytes, records: 0, malformed: 0 };
        let mut lines = 0usize;
        for line in data.split(|&b| b == b'\n') {
            decoder.push_line(line, &mut sink);
            lines += 1;
            // Checkpoint mid-stream: restoring the state must carry on identically.
            if lines % 7 == 0 {
                let state = decoder.save();
                assert!(state.pending.iter().all(|p| p.text.len() <= max_line_bytes));
                let mut restored = Decoder::new(format, max_line_bytes);
                restored.restore(state);
                assert_eq!(restored.has_pending(), decoder.has_pending());
                decoder = restored;
            }
        }
        decoder.finish(&mut sink);
        assert!(!decoder.has_pending());
        // Every physical line yields at most one record, plus one per flushed partial.
        assert!(sink.records <= lines + 3);
        // The detected format accounts for the first line one way or another.
        if format == detected {
            assert!(sink.records + sink.malformed > 0);
        }
    }
});
