//! The docker json-file log format (docker and cri-dockerd nodes).
//!
//! `{"log":"…\n","stream":"stdout","time":"2026-11-24T10:15:00.123456789Z"}`,
//! one object per line. A `log` without a trailing `\n` is a chunk of a line
//! docker split at 16 KiB (or the last, unterminated output of the
//! container); the decoder joins it with the next chunk of the same stream.

use super::json::{for_each_member, RawStr, RawValue};
use super::{MalformedReason, Stream};
use crate::time::Timestamp;

/// One docker json-file line with its `log` still JSON-escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DockerLine<'a> {
    /// The `log` member, undecoded.
    pub log: RawStr<'a>,
    /// `stdout`, `stderr`, or `Unknown` for anything else.
    pub stream: Stream,
    /// The `time` member; `None` when absent.
    pub ts: Option<Timestamp>,
}

/// Reads one docker json-file line.
///
/// Errors: [`MalformedReason::MissingFields`] when the line is not a complete
/// JSON object with string `log` and `stream` members,
/// [`MalformedReason::BadTimestamp`] when its `time` does not parse.
pub(crate) fn parse_docker_line(line: &[u8]) -> Result<DockerLine<'_>, MalformedReason> {
    let mut log = None;
    let mut stream = None;
    let mut time = None;
    for_each_member(line, |key, value| {
        if let RawValue::Str(s) = value {
            match key {
                b"log" => log = Some(s),
                b"stream" => stream = Some(s.raw),
                b"time" => time = Some(s.raw),
                _ => {}
            }
        }
    })
    .map_err(|_| MalformedReason::MissingFields)?;
    let (Some(log), Some(stream)) = (log, stream) else {
        return Err(MalformedReason::MissingFields);
    };
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => Stream::Unknown,
    };
    let ts = match time {
        None => None,
        Some(t) => Some(Timestamp::parse_rfc3339(t).ok_or(MalformedReason::BadTimestamp)?),
    };
    Ok(DockerLine { log, stream, ts })
}

/// Decodes a `log` member: returns the text without its trailing newline and
/// whether the chunk was complete (it ended in `\n`).
///
/// The common `…\n` with no other escape is handed back from the line itself;
/// anything else is decoded into `buf` (cleared, capacity reused).
pub(crate) fn decode_log<'a>(
    log: RawStr<'a>,
    buf: &'a mut Vec<u8>,
) -> Result<(&'a [u8], bool), MalformedReason> {
    let raw = log.raw;
    if let Some(body) = raw.strip_suffix(b"\\n") {
        if memchr::memchr(b'\\', body).is_none() {
            return Ok((body, true));
        }
    }
    let text = log
        .decode_into(buf)
        .map_err(|_| MalformedReason::MissingFields)?;
    Ok(match text.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (text, false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_line_is_borrowed() {
        let line = br#"{"log":"INFO:     Application startup complete.\n","stream":"stdout","time":"2026-11-24T10:15:00.123456789Z"}"#;
        let d = parse_docker_line(line).unwrap();
        assert_eq!(d.stream, Stream::Stdout);
        assert_eq!(
            d.ts,
            Timestamp::parse_rfc3339(b"2026-11-24T10:15:00.123456789Z")
        );
        let mut buf = Vec::new();
        let (text, complete) = decode_log(d.log, &mut buf).unwrap();
        assert!(complete);
        assert_eq!(text, b"INFO:     Application startup complete.");
        assert!(buf.is_empty());
    }

    #[test]
    fn escaped_ansi_and_html_escapes() {
        let line = br#"{"log":"\u001b[92m18:33:49 - LiteLLM Proxy:ERROR\u001b[0m: utils.py:2721 - \u003cbad\u003e\n","stream":"stderr","time":"2026-11-24T10:15:00Z"}"#;
        let d = parse_docker_line(line).unwrap();
        let mut buf = Vec::new();
        let (text, complete) = decode_log(d.log, &mut buf).unwrap();
        assert!(complete);
        assert_eq!(
            text,
            b"\x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - <bad>"
        );
    }

    #[test]
    fn partial_chunk_and_literal_backslash_n() {
        let d = parse_docker_line(
            br#"{"log":"first half","stream":"stdout","time":"2026-11-24T10:15:00Z"}"#,
        )
        .unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            decode_log(d.log, &mut buf).unwrap(),
            (&b"first half"[..], false)
        );
        // An escaped backslash followed by `n` is not a newline.
        let d = parse_docker_line(
            br#"{"log":"C:\\n","stream":"stdout","time":"2026-11-24T10:15:00Z"}"#,
        )
        .unwrap();
        assert_eq!(decode_log(d.log, &mut buf).unwrap(), (&b"C:\\n"[..], false));
    }

    #[test]
    fn malformed_docker_lines() {
        use MalformedReason::*;
        let cases: [(&[u8], MalformedReason); 5] = [
            (
                br#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#,
                BadTimestamp,
            ),
            (
                br#"{"log":"x\n","time":"2026-11-24T10:15:00Z"}"#,
                MissingFields,
            ),
            (
                br#"{"stream":"stdout","time":"2026-11-24T10:15:00Z"}"#,
                MissingFields,
            ),
            (
                br#"{"log":"x\n","stream":"stdout","time":"2026-11-24T1"#,
                MissingFields,
            ),
            (b"plain text", MissingFields),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_docker_line(line).map(|_| ()),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let d = parse_docker_line(br#"{"log":"x\n","stream":"stdout"}"#).unwrap();
        assert_eq!(d.ts, None);
    }
}
