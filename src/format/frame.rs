//! Reading a physical line's container framing without decoding it.
//!
//! The buffer scanner ([`crate::pipeline`]) skips the ~99 % of lines that
//! hold no rule literal. It still has to know, for each of them, what the
//! full [`super::Decoder`] would have made of it: its record time (the pod's
//! record clock), whether it is a well-formed line (else the decoder must
//! count it malformed), and whether it is a complete record (a CRI `P`
//! chunk joins the next one). [`Framer`] answers that with a few byte
//! comparisons per line: the `YYYY-MM-DDTHH:MM:SS` part of consecutive
//! timestamps is nearly always the same, so it is parsed once and compared
//! after that, and the wall clock the sanity check needs is read once per
//! buffer, not per line.
//!
//! Whatever it accepts, the decoder accepts with the same result; whatever
//! it is unsure of it returns `None` for, and the caller decodes that line.

use super::{cri, Stream};
use crate::time::{date_time_secs, finish_rfc3339, Timestamp};

/// A line's framing: what the decoder would read from it besides the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub ts: Option<Timestamp>,
    pub stream: Stream,
    /// A CRI `P` chunk: the record continues on a later line.
    pub partial: bool,
    /// The container-level message (CRI) or the text after the optional
    /// timestamp (plain), a trailing `\r` removed.
    pub message: &'a [u8],
}

/// Parses framing with a cache of the last timestamp's date and time.
#[derive(Clone, Debug)]
pub(crate) struct Framer {
    now: Timestamp,
    /// `YYYY-MM-DDTHH:MM:SS` of the last parsed timestamp, and its seconds.
    prefix: [u8; 19],
    base_secs: i64,
    has_prefix: bool,
}

impl Framer {
    /// A framer judging timestamps against `now` (see [`Timestamp::is_sane_at`]).
    pub fn new(now: Timestamp) -> Framer {
        Framer {
            now,
            prefix: [0; 19],
            base_secs: 0,
            has_prefix: false,
        }
    }

    /// The wall clock the sanity check uses from now on (read once per buffer).
    pub(crate) fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// [`Timestamp::parse_rfc3339_prefix`], with the clock read at [`Framer::set_now`].
    pub fn timestamp(&mut self, s: &[u8]) -> Option<(Timestamp, usize)> {
        if s.len() < 19 {
            return None;
        }
        let base = if self.has_prefix && s[..19] == self.prefix {
            self.base_secs
        } else {
            let base = date_time_secs(&s[..19])?;
            self.prefix.copy_from_slice(&s[..19]);
            self.base_secs = base;
            self.has_prefix = true;
            base
        };
        finish_rfc3339(s, base, self.now)
    }

    /// A CRI line (`<ts> <stdout|stderr> <P|F>[:tags] <message>`) exactly as
    /// [`cri::parse_cri_line`] reads it after the decoder dropped a trailing
    /// `\r`; `None` for anything the decoder would count as malformed.
    pub fn cri<'a>(&mut self, line: &'a [u8]) -> Option<Frame<'a>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (ts, n) = self.timestamp(line)?;
        if line.get(n) != Some(&b' ') {
            return None;
        }
        let (stream, partial, message) = cri::parse_cri_fields(&line[n + 1..]).ok()?;
        Some(Frame {
            ts: Some(ts),
            stream,
            partial,
            message,
        })
    }

    /// A plain-text line: [`super::plain::split_timestamp`] after the
    /// decoder dropped a trailing `\r`.
    pub fn plain<'a>(&mut self, line: &'a [u8]) -> Frame<'a> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (ts, message) = match line.len() > 20 && matches!(line[10], b'T' | b't') {
            true => match self.timestamp(line) {
                Some((ts, n)) if line.get(n) == Some(&b' ') => (Some(ts), &line[n + 1..]),
                _ => (None, line),
            },
            false => (None, line),
        };
        Frame {
            ts,
            stream: Stream::Unknown,
            partial: false,
            message,
        }
    }
}

/// Decimal digits to a number (`None` when one is not a digit).
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framer() -> Framer {
        Framer::new(Timestamp::now())
    }

    #[test]
    fn same_results_as_the_decoder_parsers() {
        let mut f = framer();
        for line in [
            &b"2026-11-24T10:15:00.12345Z stderr F x"[..],
            b"2026-11-24T10:15:00.9Z stdout P part",
            b"2026-11-24T11:15:00.123456789+01:00 stdout F:x:y  two",
            b"2026-11-24T10:15:00Z stdout F",
            b"2026-11-24T10:15:00Z stdout F\r",
            b"2026-11-24T10:15:00Z stdin F x",
            b"2026-11-24T25:15:00Z stdout F x",
            b"2026-02-30T10:15:00,5z stdout F x",
            b"1999-12-31T23:59:59Z stdout F x",
            b"9999-12-31T23:59:59Z stdout F x",
            b"2026-11-24T10:15:00+0000 stdout F x",
            b"2026-11-24T10:15:00. stdout F x",
            b"2026-11-24T10:15:00-0a:00 stdout F x",
            b"garbage",
            b"",
        ] {
            let want = {
                let l = line.strip_suffix(b"\r").unwrap_or(line);
                cri::parse_cri_line(l).ok().map(|c| Frame {
                    ts: Some(c.ts),
                    stream: c.stream,
                    partial: c.partial,
                    message: c.message,
                })
            };
            // Twice: the second time from the cached date and time.
            assert_eq!(f.cri(line), want, "{}", String::from_utf8_lossy(line));
            assert_eq!(f.cri(line), want, "{}", String::from_utf8_lossy(line));
            let (ts, text) =
                super::super::plain::split_timestamp(line.strip_suffix(b"\r").unwrap_or(line));
            let p = f.plain(line);
            assert_eq!((p.ts, p.message), (ts, text));
        }
    }

    proptest! {
        #[test]
        fn timestamps_parse_like_the_reference(
            y in 1998i64..2030, mo in 0i64..14, d in 0i64..33, h in 0i64..25, mi in 0i64..61, s in 0i64..62,
            frac in "[.,]?[0-9]{0,11}", zone in prop_oneof![Just(String::new()), Just("Z".to_owned()), "[+-][0-9]{2}:[0-9]{2}", Just("+1:00".to_owned())],
            rest in "[ a-z]{0,3}",
        ) {
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}{rest}");
            let mut f = framer();
            let want = Timestamp::parse_rfc3339_prefix(text.as_bytes());
            prop_assert_eq!(f.timestamp(text.as_bytes()), want);
            prop_assert_eq!(f.timestamp(text.as_bytes()), want);
        }
    }
}
