//! A small, allocation-free JSON object scanner, and LiteLLM's `JSON_LOGS` lines.
//!
//! Both docker json-file lines and LiteLLM JSON log lines are flat JSON
//! objects of which we need two or three string members. A general JSON
//! parser would build a map (allocations per line on a 1 GB/s path); this
//! scanner walks the object once, hands out the raw bytes of each string
//! member and decodes escapes only for the members that are used, into a
//! buffer the caller reuses. It is lenient where producers are sloppy (raw
//! control bytes and invalid UTF-8 inside strings pass through) and strict
//! where it matters (the object must be complete, so a truncated line is not
//! mistaken for a log record).

use memchr::memchr2;

use crate::time::Timestamp;

/// Why a byte string could not be read as the JSON we expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JsonError {
    /// Not a complete JSON object (truncated, trailing bytes, bad punctuation).
    #[error("malformed JSON object near byte {0}")]
    Syntax(usize),
    /// A string escape that JSON does not define, or a cut-off `\u` escape.
    #[error("invalid JSON string escape near byte {0}")]
    Escape(usize),
}

/// A JSON string member as it appears between its quotes, escapes undecoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawStr<'a> {
    /// The bytes between the quotes.
    pub raw: &'a [u8],
    /// Whether `raw` holds a backslash (so it must go through [`unescape_into`]).
    pub has_escapes: bool,
}

impl<'a> RawStr<'a> {
    /// The decoded string: `raw` itself when it has no escapes, otherwise the
    /// decoded bytes appended to `out`.
    pub(crate) fn decode_into<'b>(&self, out: &'b mut Vec<u8>) -> Result<&'b [u8], JsonError>
    where
        'a: 'b,
    {
        if self.has_escapes {
            out.clear();
            unescape_into(self.raw, out)?;
            Ok(out.as_slice())
        } else {
            Ok(self.raw)
        }
    }
}

/// The value of one object member, as far as the callers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawValue<'a> {
    /// A string.
    Str(RawStr<'a>),
    /// Anything else (number, literal, nested object or array), skipped.
    Other,
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(&c) = s.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// Given `s[i]` just past an opening quote, returns (index of the closing quote, saw a backslash).
fn scan_string(s: &[u8], mut i: usize) -> Result<(usize, bool), JsonError> {
    let mut escaped = false;
    loop {
        match memchr2(b'"', b'\\', &s[i.min(s.len())..]) {
            None => return Err(JsonError::Syntax(s.len())),
            Some(off) => {
                let at = i + off;
                if s[at] == b'"' {
                    return Ok((at, escaped));
                }
                escaped = true;
                i = at + 2; // skip the backslash and the escaped byte
            }
        }
    }
}

/// Skips one JSON value starting at `s[i]` (whitespace already skipped);
/// returns the index just past it and, for a string, its raw form.
fn skip_value(s: &[u8], i: usize) -> Result<(usize, RawValue<'_>), JsonError> {
    match s.get(i) {
        None => Err(JsonError::Syntax(i)),
        Some(b'"') => {
            let (end, has_escapes) = scan_string(s, i + 1)?;
            Ok((
                end + 1,
                RawValue::Str(RawStr {
                    raw: &s[i + 1..end],
                    has_escapes,
                }),
            ))
        }
        Some(b'{') | Some(b'[') => {
            // Nested containers are skipped by bracket counting (iterative, so
            // hostile nesting cannot overflow the stack).
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&c) = s.get(j) {
                match c {
                    b'"' => {
                        let (end, _) = scan_string(s, j + 1)?;
                        j = end;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok((j + 1, RawValue::Other));
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(JsonError::Syntax(s.len()))
        }
        Some(_) => {
            // Number or literal: up to the next delimiter.
            let mut j = i;
            while let Some(&c) = s.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            if j == i {
                return Err(JsonError::Syntax(i));
            }
            Ok((j, RawValue::Other))
        }
    }
}

/// Calls `member(key, value)` for each top-level member of the JSON object
/// that makes up all of `s` (surrounding whitespace allowed).
///
/// Keys are handed out raw (escapes undecoded): the keys we look for have none.
pub(crate) fn for_each_member<'a>(
    s: &'a [u8],
    mut member: impl FnMut(&'a [u8], RawValue<'a>),
) -> Result<(), JsonError> {
    let mut i = skip_ws(s, 0);
    if s.get(i) != Some(&b'{') {
        return Err(JsonError::Syntax(i));
    }
    i = skip_ws(s, i + 1);
    if s.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if s.get(i) != Some(&b'"') {
                return Err(JsonError::Syntax(i));
            }
            let (key_end, _) = scan_string(s, i + 1)?;
            let key = &s[i + 1..key_end];
            i = skip_ws(s, key_end + 1);
            if s.get(i) != Some(&b':') {
                return Err(JsonError::Syntax(i));
            }
            i = skip_ws(s, i + 1);
            let (end, value) = skip_value(s, i)?;
            member(key, value);
            i = skip_ws(s, end);
            match s.get(i) {
                Some(b',') => i = skip_ws(s, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(JsonError::Syntax(i)),
            }
        }
    }
    if skip_ws(s, i) != s.len() {
        return Err(JsonError::Syntax(i));
    }
    Ok(())
}

fn hex4(s: &[u8], i: usize) -> Option<u32> {
    let digits = s.get(i..i + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// Decodes the escapes of a raw JSON string body and appends the result to `out`.
///
/// `\uXXXX` escapes become UTF-8 (surrogate pairs combined; a lone surrogate
/// becomes U+FFFD, as Go's and Python's encoders never write one on purpose);
/// bytes that need no decoding, including invalid UTF-8, are copied as they are.
pub(crate) fn unescape_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    let mut i = 0;
    while i < raw.len() {
        let Some(off) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        out.extend_from_slice(&raw[i..i + off]);
        i += off;
        let Some(&kind) = raw.get(i + 1) else {
            return Err(JsonError::Escape(i));
        };
        i += 2;
        let byte = match kind {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'u' => {
                let unit = hex4(raw, i).ok_or(JsonError::Escape(i))?;
                i += 4;
                let code = if (0xd800..0xdc00).contains(&unit) {
                    // High surrogate: combine with a following low surrogate.
                    match (raw.get(i..i + 2), hex4(raw, i + 2)) {
                        (Some(b"\\u"), Some(low)) if (0xdc00..0xe000).contains(&low) => {
                            i += 6;
                            0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                        }
                        _ => 0xfffd,
                    }
                } else {
                    unit
                };
                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                continue;
            }
            _ => return Err(JsonError::Escape(i - 2)),
        };
        out.push(byte);
    }
    Ok(())
}

/// A LiteLLM `JSON_LOGS=True` line, reduced to what classification needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonLogLine<'a> {
    /// `message`, plus `\n` and the stack trace when the line carries one.
    pub text: &'a [u8],
    /// LiteLLM's own `timestamp` (zoneless, taken as UTC); `None` when absent
    /// or unparsable. Callers prefer the container runtime's timestamp.
    pub ts: Option<Timestamp>,
}

/// Keys under which LiteLLM (and the JSON formatters it has used) put the traceback.
const STACKTRACE_KEYS: [&[u8]; 3] = [b"stacktrace", b"stack_trace", b"exc_info"];

/// Reads `line` as a LiteLLM JSON log line: a JSON object with a string
/// `message`. Returns `None` for anything else (plain text, other JSON), which
/// then stays raw text. The text is `line`'s own bytes when `message` needs no
/// decoding and there is no stack trace, else it is built in `out`.
pub(crate) fn decode_litellm_json<'a>(
    line: &'a [u8],
    out: &'a mut Vec<u8>,
) -> Option<JsonLogLine<'a>> {
    // Cheap pre-check: nearly every plain line is rejected on its first byte.
    let first = line.iter().position(|c| !c.is_ascii_whitespace())?;
    if line[first] != b'{' {
        return None;
    }
    let mut message: Option<RawStr<'a>> = None;
    let mut stacktrace: Option<RawStr<'a>> = None;
    let mut timestamp: Option<&'a [u8]> = None;
    let mut message_is_string = true;
    for_each_member(line, |key, value| match (key, value) {
        (b"message", RawValue::Str(s)) => {
            message = Some(s);
            message_is_string = true;
        }
        (b"message", RawValue::Other) => message_is_string = false,
        (b"timestamp", RawValue::Str(s)) => timestamp = Some(s.raw),
        (k, RawValue::Str(s))
            if stacktrace.is_none() && !s.raw.is_empty() && STACKTRACE_KEYS.contains(&k) =>
        {
            stacktrace = Some(s)
        }
        _ => {}
    })
    .ok()?;
    if !message_is_string {
        return None;
    }
    let message = message?;
    let ts = timestamp.and_then(Timestamp::parse_rfc3339);
    let text: &'a [u8] = match stacktrace {
        None => message.decode_into(out).ok()?,
        Some(trace) => {
            out.clear();
            unescape_into(message.raw, out).ok()?;
            while out.last() == Some(&b'\n') {
                out.pop();
            }
            out.push(b'\n');
            unescape_into(trace.raw, out).ok()?;
            while out.last() == Some(&b'\n') {
                out.pop();
            }
            out.as_slice()
        }
    };
    Some(JsonLogLine { text, ts })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each member's key and, for a string, its decoded value.
    type Members = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn members(s: &[u8]) -> Result<Members, JsonError> {
        let mut v = Vec::new();
        for_each_member(s, |k, val| {
            let decoded = match val {
                RawValue::Str(r) => {
                    let mut out = Vec::new();
                    Some(r.decode_into(&mut out).unwrap().to_vec())
                }
                RawValue::Other => None,
            };
            v.push((k.to_vec(), decoded))
        })?;
        Ok(v)
    }

    #[test]
    fn scans_flat_and_nested_members() {
        let m = members(br#" {"a": "x\"y", "n": -1.5e3, "o": {"k": ["}", {"z": null}]}, "t": true, "s":"\u00e9"} "#).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0], (b"a".to_vec(), Some(b"x\"y".to_vec())));
        assert_eq!(m[1].1, None);
        assert_eq!(m[2].1, None);
        assert_eq!(m[4].1, Some("é".as_bytes().to_vec()));
        assert!(members(b"{}").unwrap().is_empty());
    }

    #[test]
    fn rejects_incomplete_objects() {
        for bad in [
            &br#"{"log":"abc"#[..],
            br#"{"log":"abc""#,
            br#"{"log":"abc"} trailing"#,
            br#"{"log" "abc"}"#,
            br#"{"log":}"#,
            br#"["log"]"#,
            br#"{"a":{"b":1}"#,
            b"",
            b"{",
        ] {
            assert!(members(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn unescapes_everything_json_defines() {
        let mut out = Vec::new();
        unescape_into(
            br#"a\n\t\r\b\f\/\\\"\u001b[92m\u003c\ud83d\ude00\ud800x"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            "a\n\t\r\u{8}\u{c}/\\\"\u{1b}[92m<😀\u{fffd}x".as_bytes()
        );
        out.clear();
        assert!(unescape_into(br"\q", &mut out).is_err());
        assert!(unescape_into(br"\u12", &mut out).is_err());
        assert!(unescape_into(b"ends\\", &mut out).is_err());
        out.clear();
        unescape_into(b"raw \xff bytes", &mut out).unwrap();
        assert_eq!(out, b"raw \xff bytes");
    }

    #[test]
    fn litellm_json_line_with_stacktrace() {
        let line = br#"{"message": "Error in spend logs queue monitor: All connection attempts failed", "level": "ERROR", "timestamp": "2026-11-24T18:27:15.595834", "component": "LiteLLM Proxy", "logger": "utils.py:2721", "stacktrace": "Traceback (most recent call last):\n  File \"/app/litellm/proxy/utils.py\", line 2712, in monitor\n    await self.db.connect()\nhttpx.ConnectError: All connection attempts failed\n"}"#;
        let mut out = Vec::new();
        let got = decode_litellm_json(line, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(got.text).unwrap(),
            "Error in spend logs queue monitor: All connection attempts failed\nTraceback (most recent call last):\n  File \"/app/litellm/proxy/utils.py\", line 2712, in monitor\n    await self.db.connect()\nhttpx.ConnectError: All connection attempts failed"
        );
        assert_eq!(
            got.ts,
            Timestamp::parse_rfc3339(b"2026-11-24T18:27:15.595834Z")
        );
    }

    #[test]
    fn litellm_json_without_escapes_borrows_the_line() {
        let line = br#"{"message": "Proxy initialized", "level": "INFO", "timestamp": "2026-11-24T18:27:15"}"#;
        let mut out = Vec::new();
        let got = decode_litellm_json(line, &mut out).unwrap();
        assert_eq!(got.text, b"Proxy initialized");
        assert!(line.as_ptr_range().contains(&got.text.as_ptr()));
    }

    #[test]
    fn other_keys_for_the_traceback() {
        let mut out = Vec::new();
        let got = decode_litellm_json(
            br#"{"message":"boom","exc_info":"Traceback (most recent call last):\nValueError: x"}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            got.text,
            b"boom\nTraceback (most recent call last):\nValueError: x"
        );
        assert_eq!(got.ts, None);
        let got =
            decode_litellm_json(br#"{"message":"boom","stack_trace":"T"}"#, &mut out).unwrap();
        assert_eq!(got.text, b"boom\nT");
    }

    #[test]
    fn non_litellm_json_stays_raw() {
        let mut out = Vec::new();
        for line in [
            &br#"{"msg": "no message key"}"#[..],
            br#"{"message": 42}"#,
            br#"["message", "x"]"#,
            br#"{"message": "truncated"#,
            b"18:23:48 - LiteLLM Proxy:ERROR: proxy_server.py:8349 - {\"message\": \"x\"}",
            b"",
        ] {
            assert!(
                decode_litellm_json(line, &mut out).is_none(),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn unescape_matches_serde_json(s in proptest::prelude::any::<String>()) {
            let encoded = serde_json::to_string(&s).unwrap();
            let raw = &encoded.as_bytes()[1..encoded.len() - 1];
            let mut out = Vec::new();
            unescape_into(raw, &mut out).unwrap();
            proptest::prop_assert_eq!(out, s.as_bytes());
        }

        #[test]
        fn scanner_never_panics(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            let _ = decode_litellm_json(&input, &mut out);
            let _ = for_each_member(&input, |_, _| {});
        }

        #[test]
        fn scanner_never_panics_on_jsonish(input in "[{}\\[\\]\",:a\\\\u0-9 ]{0,64}") {
            let mut out = Vec::new();
            let _ = decode_litellm_json(input.as_bytes(), &mut out);
        }
    }
}
