//! The buffer-level literal prefilter: which physical lines of a read
//! buffer can matter to the rules at all.
//!
//! One multi-literal pass over a whole read buffer instead of one search
//! per line: an Aho-Corasick DFA, which runs SIMD Teddy itself when the CPU
//! and the literal count allow (at most 64 literals; the built-in pack has
//! more, so the DFA runs alone and is this pass's speed limit). Its literals are a superset of what [`super::RulePack`]
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

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, StartKind};

const TRACEBACK: &[u8] = b"Traceback (most recent call last):";
const FRAME: &[u8] = b"  File \"";

/// A compiled buffer prefilter.
#[derive(Debug)]
pub(crate) struct BufferPrefilter {
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
        let anchors = anchors(&all);
        // A full DFA: about twice the speed of the default NFA when the
        // anchors are too many for Teddy, for a few hundred KiB.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .start_kind(StartKind::Unanchored)
            .build(&anchors)
            .map_err(|e| e.to_string())?;
        Ok(BufferPrefilter {
            automaton,
            json_needs_decoding,
        })
    }

    /// Start of the first hit at or after `from`; `usize::MAX` when none.
    #[inline]
    pub(crate) fn next_hit(&self, haystack: &[u8], from: usize) -> usize {
        if from >= haystack.len() {
            return usize::MAX;
        }
        let input = aho_corasick::Input::new(haystack).span(from..haystack.len());
        // Cannot fail: an unanchored search of an unanchored automaton.
        let found = self.automaton.try_find(input).ok().flatten();
        found.map_or(usize::MAX, |m| m.start())
    }

    /// Whether `text` holds any of the literals.
    pub(crate) fn is_match(&self, text: &[u8]) -> bool {
        self.next_hit(text, 0) != usize::MAX
    }

    /// How many anchors one pass searches for: at most 64 is one SIMD Teddy
    /// pass, more falls back to the DFA alone (several times slower).
    #[cfg(test)]
    fn anchor_count(&self) -> usize {
        self.automaton.patterns_len()
    }

    /// Whether every JSON line must be decoded (see the field).
    pub(crate) fn json_needs_decoding(&self) -> bool {
        self.json_needs_decoding
    }
}

/// Teddy (the SIMD searcher) takes at most this many literals.
const TEDDY_MAX: usize = 64;
/// Anchors are substrings of the literals of these lengths (longer ones
/// share less, shorter ones match more ordinary text).
const ANCHOR_LENS: [usize; 4] = [8, 7, 6, 5];

/// Ordinary LiteLLM output (what ~99 % of a proxy's lines look like): a
/// substring found in it is never an anchor, so those lines stay without a
/// hit.
const ORDINARY: &[&[u8]] = &[
    b"18:33:49 - LiteLLM Proxy:INFO: proxy_server.py:4012 - Request received for model=gpt-4o-mini",
    b"18:33:50 - LiteLLM Router:INFO: router.py:1085 - litellm.acompletion(model=azure/gpt-4o-mini) 200 OK",
    b"18:33:50 - LiteLLM:DEBUG: utils.py:4410 - model_info: {'key': 'gpt-4o-mini', 'max_tokens': 16384}",
    b"INFO:     10.0.0.7:46642 - \"POST /v1/chat/completions HTTP/1.1\" 429 Too Many Requests",
    b"INFO:     10.0.0.7:46642 - \"GET /health/readiness HTTP/1.1\" 404 Not Found",
    b"{\"message\": \"x\", \"level\": \"INFO\", \"timestamp\": \"2026-11-24T18:27:15.595834\", \"component\": \"LiteLLM Proxy\", \"logger\": \"utils.py:2721\"}",
    b"LiteLLM Proxy:INFO: Proxy initialized with Config, Set models: gpt-4o-mini",
    b"LiteLLM completion() model= gpt-4o-mini; provider = openai",
    b"HTTP Request: POST https://api.openai.com/v1/chat/completions \"HTTP/1.1 200 OK\"",
];

/// How unusual a byte is in log text (higher: rarer), for choosing anchors.
fn rarity(b: u8) -> u32 {
    match b {
        b' ' => 0,
        b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' | b'h' | b'l' => 1,
        b'a'..=b'z' => 2,
        b'0'..=b'9' => 2,
        _ => 3,
    }
}

/// A small set of substrings ("anchors") such that every literal contains
/// one: a line without an anchor holds no literal, so searching for the
/// anchors is as exact as searching for the literals, and few enough of
/// them fit one SIMD Teddy pass. Chosen greedily: the substring covering
/// the most literals not yet covered, the rarest-looking on ties; a
/// substring made of common letters and spaces is not taken while a
/// literal has a rarer one. Literals shorter than the shortest anchor stay
/// as they are. When the literals cannot be covered by [`TEDDY_MAX`]
/// anchors, the literals themselves are returned (no gain, no loss).
fn anchors(literals: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let min_len = ANCHOR_LENS[ANCHOR_LENS.len() - 1];
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut open: Vec<&[u8]> = Vec::new();
    for lit in literals {
        if lit.len() < min_len {
            if !out.contains(lit) {
                out.push(lit.clone());
            }
        } else {
            open.push(lit);
        }
    }
    let mut candidates = candidates(&open);
    keep_rare_covers(&mut candidates, &open);
    let mut uncovered = all_set(open.len());
    while uncovered.iter().any(|&w| w != 0) {
        let gain = |covers: &[u64]| -> u32 {
            covers
                .iter()
                .zip(&uncovered)
                .map(|(c, u)| (c & u).count_ones())
                .sum()
        };
        let pick = candidates
            .iter()
            .map(|c| (gain(&c.covers), c.score, c.window.len(), c))
            .filter(|(g, ..)| *g > 0)
            .max_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        match pick {
            Some((_, _, _, anchor)) => {
                for (u, c) in uncovered.iter_mut().zip(&anchor.covers) {
                    *u &= !c;
                }
                out.push(anchor.window.clone());
            }
            None => {
                // A literal with no usable window is its own anchor.
                let i = uncovered
                    .iter()
                    .enumerate()
                    .find(|(_, &w)| w != 0)
                    .map_or(0, |(k, w)| k * 64 + w.trailing_zeros() as usize);
                uncovered[i / 64] &= !(1 << (i % 64));
                out.push(open[i].to_vec());
            }
        }
        if out.len() > TEDDY_MAX {
            return literals.to_vec();
        }
    }
    out
}

/// A substring of some literals that could serve as their anchor.
struct Candidate {
    window: Vec<u8>,
    /// How rare it looks (sum of [`rarity`]).
    score: u32,
    /// Bit `i`: literal `i` contains it (and may be anchored by it).
    covers: Vec<u64>,
}

/// How rare a window looks: the sum of its bytes' [`rarity`].
fn score(w: &[u8]) -> u32 {
    w.iter().map(|&b| rarity(b)).sum::<u32>()
}

/// Every candidate window of `open` (not ordinary text), with how rare it
/// looks and which literals contain it (computed once: the greedy cover
/// only counts bits).
fn candidates(open: &[&[u8]]) -> Vec<Candidate> {
    let words = open.len().div_ceil(64);
    let mut seen = std::collections::HashSet::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for lit in open {
        for &len in &ANCHOR_LENS {
            for w in lit.windows(len) {
                if !seen.insert(w)
                    || ORDINARY
                        .iter()
                        .any(|o| memchr::memmem::find(o, w).is_some())
                {
                    continue;
                }
                let finder = memchr::memmem::Finder::new(w);
                let mut covers = vec![0u64; words];
                for (i, l) in open.iter().enumerate() {
                    if finder.find(l).is_some() {
                        covers[i / 64] |= 1 << (i % 64);
                    }
                }
                candidates.push(Candidate {
                    window: w.to_vec(),
                    score: score(w),
                    covers,
                });
            }
        }
    }
    candidates
}

/// Per literal, the rarest window it has: a candidate must come close to it
/// to cover that literal (never trade a rare anchor for a common one just
/// to share).
fn keep_rare_covers(candidates: &mut [Candidate], open: &[&[u8]]) {
    let best: Vec<u32> = open
        .iter()
        .map(|lit| {
            ANCHOR_LENS
                .iter()
                .flat_map(|&len| lit.windows(len))
                .map(score)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for c in candidates {
        for (i, &b) in best.iter().enumerate() {
            if c.score * 4 < b * 3 {
                c.covers[i / 64] &= !(1 << (i % 64));
            }
        }
    }
}

/// A bit set with bits `0..n` set: every literal still to cover.
fn all_set(n: usize) -> Vec<u64> {
    (0..n.div_ceil(64))
        .map(|w| {
            let n = (n - w * 64).min(64);
            if n == 64 {
                u64::MAX
            } else {
                (1u64 << n) - 1
            }
        })
        .collect()
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
    fn anchors_cover_every_literal_of_the_builtin_pack() {
        let pack = crate::classify::RulePack::builtin().expect("built-in pack");
        let literals = pack.literal_texts();
        let got = anchors(&literals);
        eprintln!(
            "{} literals → {} anchors: {:?}",
            literals.len(),
            got.len(),
            got.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        );
        for lit in &literals {
            assert!(
                got.iter().any(|a| memchr::memmem::find(lit, a).is_some()),
                "{}",
                String::from_utf8_lossy(lit)
            );
        }
        assert!(got.len() <= TEDDY_MAX, "{} anchors", got.len());
        // With the JSON forms and the traceback openers, still one Teddy pass.
        let (with, without) = (pack.buffer_prefilter(true), pack.buffer_prefilter(false));
        assert!(with.anchor_count() <= TEDDY_MAX, "{}", with.anchor_count());
        assert!(without.anchor_count() < with.anchor_count());
    }

    #[test]
    fn finds_raw_escaped_and_traceback_forms() {
        let p = BufferPrefilter::build(&[b"Job \"update_spend (".to_vec(), b"abcd".to_vec()])
            .expect("builds");
        let hay = br#"xx {"message": "Job \"update_spend (trigger" } yy"#;
        // The hit is an anchor inside the literal (`Job \"update_spend (` at 16..37).
        assert!(
            (16..37).contains(&p.next_hit(hay, 0)),
            "{}",
            p.next_hit(hay, 0)
        );
        assert_eq!(p.next_hit(hay, 37), usize::MAX);
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
