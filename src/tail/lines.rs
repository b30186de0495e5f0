//! Splitting a byte stream into physical lines with a length cap.
//!
//! Shared by live tailing and `report`, so both see exactly the same lines.
//! A line longer than the cap is cut at the cap (the head is delivered and
//! flagged), the rest up to the next newline is skipped: memory stays bounded
//! whatever the input (a 10 MB line without a newline costs at most the cap).
//!
//! Complete lines that lie whole in one fed chunk are handed over as one
//! block (the pipeline scans a block in one pass instead of line by line);
//! only a line that spans chunks is copied and delivered on its own.

use memchr::memchr;

/// Receives the lines a [`LineSplitter`] finds.
pub trait LineHandler {
    /// One complete line without its `\n`. `truncated`: the line was longer
    /// than the cap and only its head is given.
    fn line(&mut self, line: &[u8], truncated: bool);

    /// A run of complete lines, each ending in `\n`, starting at byte `at`
    /// of the stream. A line in it longer than `cap` is the receiver's to cut
    /// (as [`for_each_capped`] does). The default delivers each line to
    /// [`LineHandler::line`].
    fn block(&mut self, at: u64, block: &[u8], cap: usize) {
        for_each_capped(block, cap, &mut |off, line, truncated| {
            self.line_start(at + off as u64);
            self.line(line, truncated);
        });
    }

    /// The next [`LineHandler::line`] call's line starts at byte `at` of the
    /// stream (`report`'s ledger points at lines by offset). Default: ignored.
    fn line_start(&mut self, _at: u64) {}
}

impl<F: FnMut(&[u8], bool)> LineHandler for F {
    fn line(&mut self, line: &[u8], truncated: bool) {
        self(line, truncated)
    }
}

/// Calls `f(offset, line, truncated)` for each `\n`-terminated line of
/// `block` (the `\n` not included), cutting a line longer than `cap` to its
/// head like [`LineSplitter`] does. Returns the number of lines.
pub fn for_each_capped(block: &[u8], cap: usize, f: &mut dyn FnMut(usize, &[u8], bool)) -> u64 {
    let cap = cap.max(1);
    let mut start = 0;
    let mut n = 0;
    for nl in memchr::memchr_iter(b'\n', block) {
        let line = &block[start..nl];
        if line.len() > cap {
            f(start, &line[..cap], true);
        } else {
            f(start, line, false);
        }
        n += 1;
        start = nl + 1;
    }
    n
}

/// Stateful splitter: feed it chunks; it carries an unfinished line over.
#[derive(Debug)]
pub struct LineSplitter {
    carry: Vec<u8>,
    max_line_bytes: usize,
    /// Inside an over-long line whose head was already delivered.
    skipping: bool,
    /// Bytes fed so far.
    fed: u64,
    /// Where the line being carried (or the next one) starts.
    line_start: u64,
}

impl LineSplitter {
    /// A splitter capping lines at `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter {
            carry: Vec::new(),
            max_line_bytes: max_line_bytes.max(1),
            skipping: false,
            fed: 0,
            line_start: 0,
        }
    }

    /// Bytes held for an unfinished line (not yet delivered). The offset of
    /// the last delivered line's end is `bytes fed - pending_len()` (skipped
    /// bytes of an over-long line count as delivered).
    pub(crate) fn pending_len(&self) -> usize {
        self.carry.len()
    }

    /// Starts inside a line: everything up to the next newline is dropped.
    pub(crate) fn skip_rest_of_line(&mut self) {
        self.carry.clear();
        self.skipping = true;
    }

    /// Forgets any unfinished line (the file was truncated).
    pub(crate) fn reset(&mut self) {
        self.carry.clear();
        self.skipping = false;
    }

    /// Feeds a chunk; hands `h` every line it completes: the lines that lie
    /// whole in `chunk` as one [`LineHandler::block`], a line begun in an
    /// earlier chunk (or cut at the cap) through [`LineHandler::line`].
    pub fn feed<H: LineHandler + ?Sized>(&mut self, chunk: &[u8], h: &mut H) {
        let base = self.fed;
        self.fed += chunk.len() as u64;
        let mut pos = 0;
        if self.skipping || !self.carry.is_empty() {
            let Some(nl) = memchr(b'\n', chunk) else {
                self.carry_rest(chunk, h);
                return;
            };
            let line = &chunk[..nl];
            if self.skipping {
                self.skipping = false;
            } else {
                let room = self.max_line_bytes.saturating_sub(self.carry.len());
                let truncated = line.len() > room;
                self.carry.extend_from_slice(&line[..line.len().min(room)]);
                h.line_start(self.line_start);
                h.line(&self.carry, truncated);
                self.carry.clear();
            }
            pos = nl + 1;
            self.line_start = base + pos as u64;
        }
        let rest = &chunk[pos..];
        match memchr::memrchr(b'\n', rest) {
            Some(last) => {
                h.block(base + pos as u64, &rest[..=last], self.max_line_bytes);
                self.line_start = base + (pos + last + 1) as u64;
                self.carry_rest(&rest[last + 1..], h);
            }
            None => self.carry_rest(rest, h),
        }
    }

    /// Keeps `tail` (no newline in it) for the next chunk, delivering the
    /// head of an over-long line once it reaches the cap.
    fn carry_rest<H: LineHandler + ?Sized>(&mut self, tail: &[u8], h: &mut H) {
        if self.skipping || tail.is_empty() {
            return;
        }
        let room = self.max_line_bytes - self.carry.len();
        if tail.len() > room {
            self.carry.extend_from_slice(&tail[..room]);
            h.line_start(self.line_start);
            h.line(&self.carry, true);
            self.carry.clear();
            self.skipping = true;
        } else {
            self.carry.extend_from_slice(tail);
        }
    }

    /// End of input for good: delivers an unfinished last line, if any.
    pub fn finish<H: LineHandler + ?Sized>(&mut self, h: &mut H) {
        if !self.carry.is_empty() && !self.skipping {
            h.line_start(self.line_start);
            h.line(&self.carry, false);
        }
        self.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(chunks: &[&[u8]], cap: usize) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l: &[u8], t: bool| out.push((l.to_vec(), t)));
        }
        s.finish(&mut |l: &[u8], t: bool| out.push((l.to_vec(), t)));
        out
    }

    #[test]
    fn lines_across_chunks() {
        let out = split(&[b"ab", b"c\nde", b"f\n\ng"], 100);
        let lines: Vec<_> = out.iter().map(|(l, _)| l.as_slice()).collect();
        assert_eq!(lines, vec![&b"abc"[..], b"def", b"", b"g"]);
    }

    #[test]
    fn long_line_is_capped_and_rest_skipped() {
        let big = vec![b'x'; 10_000];
        let out = split(&[&big, &big, b"\nnext\n"], 1024);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.len(), 1024);
        assert!(out[0].1);
        assert_eq!(out[1], (b"next".to_vec(), false));
    }

    #[test]
    fn pending_len_tracks_unfinished_line() {
        let mut s = LineSplitter::new(100);
        s.feed(b"one\ntw", &mut |_: &[u8], _: bool| {});
        assert_eq!(s.pending_len(), 2);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_same_lines(data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..2000), cut in 0usize..2000) {
            let cut = cut.min(data.len());
            let whole = split(&[&data], 64);
            let parts = split(&[&data[..cut], &data[cut..]], 64);
            prop_assert_eq!(whole, parts);
        }
    }
}
