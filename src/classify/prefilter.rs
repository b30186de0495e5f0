//! The buffer-level literal prefilter: which physical lines of a read
//! buffer can matter to the rules at all.
//!
//! One multi-literal pass (SIMD Teddy when the CPU and the literal count
//! allow, Aho-Corasick otherwise) over a whole read buffer, instead of one
//! search per line. Its literals are a superset of what [`super::RulePack`]
//! reacts to on a line outside a fold:
//!
//! - every rule literal and connection wording, as written and JSON-escaped
//!   (`"` → `\"`, `\` → `\\`: a `JSON_LOGS` line carries the message
//!   escaped), so a line without a hit holds none of them in any form a
//!   canonical JSON encoder writes;
//! - `Traceback (most recent call last):` and `  File "` (raw and escaped):
//!   the lines that open a traceback no header owns.
//!
//! A hit only means "decode this line and classify it": false positives cost
//! a decode, never a count. What the literals cannot see — a literal cut by
//! an ANSI code, hidden behind a `\u…` or `\/` escape, or split across CRI
//! `P`/`F` chunks, and every line inside an open fold — the scanner sends to
//! the decoder on its own (see `crate::pipeline`).

use aho_corasick::{AhoCorasick, MatchKind};

const TRACEBACK: &[u8] = b"Traceback (most recent call last):";
const FRAME: &[u8] = b"  File \"";

/// A compiled buffer prefilter.
#[derive(Debug)]
pub struct BufferPrefilter {
    packed: Option<aho_corasick::packed::Searcher>,
    automaton: AhoCorasick,
    /// Some literal holds a control byte: a JSON line may carry it as any of
    /// several escapes, so every JSON line is decoded.
    json_needs_decoding: bool,
}

impl BufferPrefilter {
    /// Builds the prefilter over `literals` (the pack's), adding their JSON
    /// forms and the traceback openers.
    pub(super) fn build(literals: &[Vec<u8>]) -> Result<BufferPrefilter, String> {
        let mut all: Vec<Vec<u8>> = Vec::new();
        let mut add = |lit: &[u8]| {
            if !lit.is_empty() && !all.iter().any(|l| l == lit) {
                all.push(lit.to_vec());
            }
        };
        // A literal spanning a newline never matches one line of text.
        for lit in literals.iter().map(Vec::as_slice).chain([TRACEBACK, FRAME]) {
            if lit.contains(&b'\n') {
                continue;
            }
            add(lit);
            add(&json_escaped(lit));
        }
        let json_needs_decoding = literals.iter().flatten().any(|&b| b < 0x20);
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&all)
            .map_err(|e| e.to_string())?;
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&all)
            .build();
        Ok(BufferPrefilter {
            packed,
            automaton,
            json_needs_decoding,
        })
    }

    /// Start of the first hit at or after `from`; `usize::MAX` when none.
    #[inline]
    pub fn next_hit(&self, haystack: &[u8], from: usize) -> usize {
        if from >= haystack.len() {
            return usize::MAX;
        }
        let found = match &self.packed {
            Some(p) => p.find_in(haystack, aho_corasick::Span::from(from..haystack.len())),
            None => {
                let input = aho_corasick::Input::new(haystack).span(from..haystack.len());
                // Cannot fail: an unanchored search of a leftmost automaton.
                self.automaton.try_find(input).ok().flatten()
            }
        };
        found.map_or(usize::MAX, |m| m.start())
    }

    /// Whether `text` holds any of the literals.
    pub fn is_match(&self, text: &[u8]) -> bool {
        self.next_hit(text, 0) != usize::MAX
    }

    /// Whether every JSON line must be decoded (see the field).
    pub fn json_needs_decoding(&self) -> bool {
        self.json_needs_decoding
    }
}

/// `lit` as a JSON string body: `"` and `\` escaped, control bytes as the
/// short escapes or `\u00XX`, everything else as is.
fn json_escaped(lit: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lit.len() + 4);
    for &b in lit {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_raw_escaped_and_traceback_forms() {
        let p = BufferPrefilter::build(&[b"Job \"update_spend (".to_vec(), b"abcd".to_vec()])
            .expect("builds");
        let hay = br#"xx {"message": "Job \"update_spend (trigger" } yy"#;
        assert_eq!(p.next_hit(hay, 0), 16);
        assert_eq!(p.next_hit(hay, 17), usize::MAX);
        assert!(p.is_match(b"Job \"update_spend (x"));
        assert!(p.is_match(b"ERROR:    Traceback (most recent call last):"));
        assert!(p.is_match(b"  File \"x.py\", line 1"));
        assert!(p.is_match(br#"{"stacktrace": "\n  File \"x.py\""}"#));
        assert!(!p.is_match(b"nothing to see"));
        assert!(!p.json_needs_decoding());
        assert!(BufferPrefilter::build(&[b"tab\there".to_vec()])
            .expect("builds")
            .json_needs_decoding());
    }
}
