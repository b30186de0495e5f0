//! The CRI log line format written by containerd and CRI-O.
//!
//! `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <message>`. Parsed by position
//! with plain byte comparisons (no regex, no allocation): this runs once per
//! line at ~1 GB/s. Joining `P` chunks into records is the decoder's job.

use memchr::memchr;

use super::{MalformedReason, Stream};
use crate::time::Timestamp;

/// One CRI line split into its fields; `message` borrows the input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CriLine<'a> {
    /// The runtime's timestamp for this chunk.
    pub ts: Timestamp,
    /// `stdout` or `stderr`.
    pub stream: Stream,
    /// Tag `P`: the message continues in the next line of the same stream.
    pub partial: bool,
    /// The message bytes (may be empty).
    pub message: &'a [u8],
}

/// Splits one physical CRI line (no trailing newline) into its fields.
///
/// Errors: [`MalformedReason::BadTimestamp`] when the line does not start with
/// an RFC 3339 timestamp followed by a space, [`MalformedReason::MissingFields`]
/// when the stream or tag field is absent or unknown (including an empty line).
pub(crate) fn parse_cri_line(line: &[u8]) -> Result<CriLine<'_>, MalformedReason> {
    if line.is_empty() {
        return Err(MalformedReason::MissingFields);
    }
    let (ts, n) = Timestamp::parse_rfc3339_prefix(line).ok_or(MalformedReason::BadTimestamp)?;
    match line.get(n) {
        Some(b' ') => {}
        None => return Err(MalformedReason::MissingFields),
        Some(_) => return Err(MalformedReason::BadTimestamp),
    }
    let (stream, partial, message) = parse_cri_fields(&line[n + 1..])?;
    Ok(CriLine {
        ts,
        stream,
        partial,
        message,
    })
}

/// The fields after a CRI line's timestamp: stream, partial tag, message.
/// Also used on its own when the timestamp is unreadable, so that a bad
/// timestamp loses the timestamp, not the event.
pub(crate) fn parse_cri_fields(rest: &[u8]) -> Result<(Stream, bool, &[u8]), MalformedReason> {
    let stream = match rest.get(..6) {
        Some(b"stdout") => Stream::Stdout,
        Some(b"stderr") => Stream::Stderr,
        _ => return Err(MalformedReason::MissingFields),
    };
    if rest.get(6) != Some(&b' ') {
        return Err(MalformedReason::MissingFields);
    }
    let rest = &rest[7..];
    let tag_end = memchr(b' ', rest).unwrap_or(rest.len());
    let tag = &rest[..tag_end];
    let partial = match tag {
        [b'P'] => true,
        [b'F'] => false,
        [b'P', b':', ..] => true,
        [b'F', b':', ..] => false,
        _ => return Err(MalformedReason::MissingFields),
    };
    let message = rest.get(tag_end + 1..).unwrap_or(&[]);
    Ok((stream, partial, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s.as_bytes()).unwrap()
    }

    #[test]
    fn containerd_line() {
        let l = parse_cri_line(
            b"2026-11-24T10:15:00.12345Z stderr F \x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: x",
        )
        .unwrap();
        assert_eq!(l.ts, ts("2026-11-24T10:15:00.123450Z"));
        assert_eq!(l.stream, Stream::Stderr);
        assert!(!l.partial);
        assert_eq!(
            l.message,
            b"\x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: x"
        );
    }

    #[test]
    fn crio_line_with_offset_and_nine_digits() {
        let l = parse_cri_line(b"2026-11-24T11:15:00.123456789+01:00 stdout P INFO:     Waiting for application startup.").unwrap();
        assert_eq!(l.ts, ts("2026-11-24T10:15:00.123456789Z"));
        assert_eq!(l.stream, Stream::Stdout);
        assert!(l.partial);
        assert_eq!(l.message, b"INFO:     Waiting for application startup.");
    }

    #[test]
    fn extra_tags_and_empty_messages() {
        let l = parse_cri_line(b"2026-11-24T10:15:00Z stdout F:x:y  two spaces kept").unwrap();
        assert!(!l.partial);
        assert_eq!(l.message, b" two spaces kept");
        assert_eq!(
            parse_cri_line(b"2026-11-24T10:15:00Z stdout F ")
                .unwrap()
                .message,
            b""
        );
        assert_eq!(
            parse_cri_line(b"2026-11-24T10:15:00Z stdout F")
                .unwrap()
                .message,
            b""
        );
        assert!(
            parse_cri_line(b"2026-11-24T10:15:00Z stderr P:more")
                .unwrap()
                .partial
        );
    }

    #[test]
    fn malformed_lines() {
        use MalformedReason::*;
        let cases: [(&[u8], MalformedReason); 11] = [
            (b"", MissingFields),
            (b"not a timestamp stdout F x", BadTimestamp),
            (b"2026-11-24T25:15:00Z stdout F x", BadTimestamp),
            (b"2026-11-24T10:15:00+0000 stdout F x", BadTimestamp),
            (b"2026-11-24T10:15:00Z", MissingFields),
            (b"2026-11-24T10:15:00Z ", MissingFields),
            (b"2026-11-24T10:15:00Z stdin F x", MissingFields),
            (b"2026-11-24T10:15:00Z stdout", MissingFields),
            (b"2026-11-24T10:15:00Z stdoutF x", MissingFields),
            (b"2026-11-24T10:15:00Z stdout X x", MissingFields),
            (b"2026-11-24T10:15:00Z stdout FP x", MissingFields),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_cri_line(line),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
