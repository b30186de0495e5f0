//! Plain-text log files: `kubectl logs` output, with or without `--timestamps`.
//!
//! The only structure is an optional leading RFC 3339 timestamp followed by a
//! space, which `kubectl logs --timestamps` adds; it gives the records of an
//! offline report real dates (LiteLLM's own text lines carry only HH:MM:SS).

use crate::time::Timestamp;

/// Splits a leading `kubectl logs --timestamps` timestamp off a plain line.
///
/// Only the RFC 3339 form with a `T` separator followed by one space counts,
/// so an application's own `2026-11-24 10:15:00,123 - …` prefix stays text.
/// Returns `(None, line)` when there is no such timestamp.
pub(crate) fn split_timestamp(line: &[u8]) -> (Option<Timestamp>, &[u8]) {
    if line.len() > 20 && matches!(line[10], b'T' | b't') {
        if let Some((ts, n)) = Timestamp::parse_rfc3339_prefix(line) {
            if line.get(n) == Some(&b' ') {
                return (Some(ts), &line[n + 1..]);
            }
        }
    }
    (None, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_timestamps_prefix() {
        let (ts, text) =
            split_timestamp(b"2026-11-24T10:15:00.123456789Z INFO:     Started server process [1]");
        assert_eq!(
            ts,
            Timestamp::parse_rfc3339(b"2026-11-24T10:15:00.123456789Z")
        );
        assert_eq!(text, b"INFO:     Started server process [1]");
        let (ts, text) = split_timestamp(b"2026-11-24T10:15:00Z ");
        assert!(ts.is_some());
        assert_eq!(text, b"");
    }

    #[test]
    fn lines_without_a_timestamp_are_untouched() {
        for line in [
            &b"18:23:48 - LiteLLM Proxy:ERROR: proxy_server.py:8349 - x"[..],
            b"2026-11-24 10:15:00,123 - apscheduler - INFO - Added job",
            b"2026-11-24T10:15:00Zno space",
            b"2026-11-24T10:15:00Z",
            b"",
            b"\xff\xfe\xfd",
        ] {
            assert_eq!(split_timestamp(line), (None, line));
        }
    }
}
