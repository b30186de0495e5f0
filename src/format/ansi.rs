//! Removing ANSI escape sequences from log text.
//!
//! LiteLLM 1.83 colours its text log lines even when stdout is not a terminal
//! (`\x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: …`), and the escape sits
//! in the middle of the text the rules anchor on, so every record is stripped
//! before classification. Most lines carry no ESC byte at all: for those the
//! input slice is handed back untouched, so the common case costs one `memchr`.

use memchr::memchr;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// Returns `input` without its ANSI escape sequences.
///
/// When `input` holds no ESC byte it is returned as is (no copy); otherwise
/// the visible text is written into `buf` (cleared first, its capacity reused)
/// and a slice of `buf` is returned. Handles CSI (`ESC [ … final`), OSC and the
/// other string sequences (`ESC ] … BEL|ESC \`, DCS, SOS, PM, APC), two-byte
/// and charset escapes, and drops a lone ESC. An unterminated sequence is
/// dropped up to the end of its line, never past a newline, so a cut-off
/// colour code cannot swallow the following lines of a traceback.
pub(crate) fn strip_ansi<'a>(input: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    let Some(first) = memchr(ESC, input) else {
        return input;
    };
    buf.clear();
    buf.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        // Invariant: input[i] == ESC.
        i = skip_escape(input, i);
        match memchr(ESC, &input[i..]) {
            Some(next) => {
                buf.extend_from_slice(&input[i..i + next]);
                i += next;
            }
            None => {
                buf.extend_from_slice(&input[i..]);
                break;
            }
        }
    }
    buf.as_slice()
}

/// Given `s[start] == ESC`, returns the index just past the escape sequence.
fn skip_escape(s: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    let Some(&kind) = s.get(i) else {
        return i; // lone ESC at the end
    };
    match kind {
        // CSI: parameter bytes 0x30–0x3F, intermediates 0x20–0x2F, final 0x40–0x7E.
        b'[' => {
            i += 1;
            while let Some(&c) = s.get(i) {
                match c {
                    0x40..=0x7e => return i + 1,
                    0x20..=0x3f => i += 1,
                    // Not part of a CSI: the sequence was cut off; keep this byte.
                    _ => return i,
                }
            }
            i
        }
        // OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (ESC \).
        b']' | b'P' | b'X' | b'^' | b'_' => {
            i += 1;
            while let Some(&c) = s.get(i) {
                match c {
                    BEL => return i + 1,
                    ESC if s.get(i + 1) == Some(&b'\\') => return i + 2,
                    // Unterminated: never swallow the next line.
                    b'\n' | ESC => return i,
                    _ => i += 1,
                }
            }
            i
        }
        // nF escapes such as `ESC ( B` (charset): intermediates then a final byte.
        0x20..=0x2f => {
            while let Some(&c) = s.get(i) {
                match c {
                    0x20..=0x2f => i += 1,
                    0x30..=0x7e => return i + 1,
                    _ => return i,
                }
            }
            i
        }
        // Fp/Fe/Fs two-byte escapes (`ESC 7`, `ESC M`, `ESC c`, …).
        0x30..=0x7e => i + 1,
        // Lone ESC followed by something that is not an escape: drop the ESC only.
        _ => i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(input: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        strip_ansi(input, &mut buf).to_vec()
    }

    #[test]
    fn litellm_183_coloured_header() {
        let line = b"\x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - Error in spend logs queue monitor";
        assert_eq!(
            strip(line),
            b"18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor"
                .to_vec()
        );
    }

    #[test]
    fn no_escape_returns_the_input_slice_without_copying() {
        let line = b"INFO:     Application startup complete.";
        let mut buf = Vec::new();
        let out = strip_ansi(line, &mut buf);
        assert_eq!(out.as_ptr(), line.as_ptr());
        assert!(buf.is_empty());
    }

    #[test]
    fn various_sequences() {
        // Bold + 256-colour + reset, cursor movement, erase line.
        assert_eq!(
            strip(b"\x1b[1;38;5;208mwarn\x1b[0m\x1b[2K\x1b[1Adone"),
            b"warndone".to_vec()
        );
        // OSC 8 hyperlink terminated by ST and by BEL.
        assert_eq!(
            strip(b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x07 after"),
            b"link after".to_vec()
        );
        // Charset selection and a two-byte escape.
        assert_eq!(strip(b"\x1b(Babc\x1bMdef"), b"abcdef".to_vec());
        // Lone ESC at the end and before a non-escape byte.
        assert_eq!(strip(b"abc\x1b"), b"abc".to_vec());
        assert_eq!(strip(b"a\x1b\nb"), b"a\nb".to_vec());
    }

    #[test]
    fn cut_off_sequences_do_not_swallow_following_lines() {
        // A CSI cut by LiteLLM's truncation, followed by a traceback line.
        assert_eq!(
            strip(b"ERROR\x1b[9\nTraceback"),
            b"ERROR\nTraceback".to_vec()
        );
        assert_eq!(strip(b"x\x1b]0;title\nnext line"), b"x\nnext line".to_vec());
        assert_eq!(strip(b"tail \x1b[38;5"), b"tail ".to_vec());
    }

    #[test]
    fn invalid_utf8_passes_through() {
        assert_eq!(
            strip(b"\xff\xfe\x1b[31mred\xc3\x1b[0m"),
            b"\xff\xfered\xc3".to_vec()
        );
    }

    #[test]
    fn buffer_is_reused() {
        let mut buf = Vec::with_capacity(64);
        let cap = buf.capacity();
        for _ in 0..10 {
            let out = strip_ansi(b"\x1b[92mINFO\x1b[0m line", &mut buf);
            assert_eq!(out, b"INFO line");
        }
        assert_eq!(buf.capacity(), cap);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_output_has_no_esc(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut buf = Vec::new();
            let out = strip_ansi(&input, &mut buf);
            proptest::prop_assert!(out.len() <= input.len());
            proptest::prop_assert!(!out.contains(&ESC));
        }

        #[test]
        fn text_without_esc_is_unchanged(input in proptest::collection::vec(0u8..0x1b, 0..256)) {
            let mut buf = Vec::new();
            proptest::prop_assert_eq!(strip_ansi(&input, &mut buf), &input[..]);
        }
    }
}
