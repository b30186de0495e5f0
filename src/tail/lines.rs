//! Splitting a byte stream into physical lines with a length cap.
//!
//! Shared by live tailing and `report`, so both see exactly the same lines.
//! A line longer than the cap is cut at the cap (the head is delivered and
//! flagged), the rest up to the next newline is skipped: memory stays bounded
//! whatever the input (a 10 MB line without a newline costs at most the cap).

use memchr::memchr;

/// Receives the lines a [`LineSplitter`] finds.
pub trait LineHandler {
    /// One complete line without its `\n`. `truncated`: the line was longer
    /// than the cap and only its head is given.
    fn line(&mut self, line: &[u8], truncated: bool);
}

impl<F: FnMut(&[u8], bool)> LineHandler for F {
    fn line(&mut self, line: &[u8], truncated: bool) {
        self(line, truncated)
    }
}

/// Stateful splitter: feed it chunks; it carries an unfinished line over.
#[derive(Debug)]
pub struct LineSplitter {
    carry: Vec<u8>,
    max_line_bytes: usize,
    /// Inside an over-long line whose head was already delivered.
    skipping: bool,
}

impl LineSplitter {
    /// A splitter capping lines at `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter {
            carry: Vec::new(),
            max_line_bytes: max_line_bytes.max(1),
            skipping: false,
        }
    }

    /// Bytes held for an unfinished line (not yet delivered). The offset of
    /// the last delivered line's end is `bytes fed - pending_len()` (skipped
    /// bytes of an over-long line count as delivered).
    pub fn pending_len(&self) -> usize {
        self.carry.len()
    }

    /// Starts inside a line: everything up to the next newline is dropped.
    pub fn skip_rest_of_line(&mut self) {
        self.carry.clear();
        self.skipping = true;
    }

    /// Forgets any unfinished line (the file was truncated).
    pub fn reset(&mut self) {
        self.carry.clear();
        self.skipping = false;
    }

    /// Feeds a chunk; calls `h` for every line it completes.
    pub fn feed<H: LineHandler + ?Sized>(&mut self, mut chunk: &[u8], h: &mut H) {
        while !chunk.is_empty() {
            match memchr(b'\n', chunk) {
                Some(nl) => {
                    let (line, rest) = (&chunk[..nl], &chunk[nl + 1..]);
                    if self.skipping {
                        self.skipping = false;
                    } else if self.carry.is_empty() {
                        if line.len() > self.max_line_bytes {
                            h.line(&line[..self.max_line_bytes], true);
                        } else {
                            h.line(line, false);
                        }
                    } else {
                        let room = self.max_line_bytes.saturating_sub(self.carry.len());
                        let truncated = line.len() > room;
                        self.carry.extend_from_slice(&line[..line.len().min(room)]);
                        h.line(&self.carry, truncated);
                        self.carry.clear();
                    }
                    chunk = rest;
                }
                None => {
                    if !self.skipping {
                        let room = self.max_line_bytes - self.carry.len();
                        if chunk.len() > room {
                            self.carry.extend_from_slice(&chunk[..room]);
                            h.line(&self.carry, true);
                            self.carry.clear();
                            self.skipping = true;
                        } else {
                            self.carry.extend_from_slice(chunk);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// End of input for good: delivers an unfinished last line, if any.
    pub fn finish<H: LineHandler + ?Sized>(&mut self, h: &mut H) {
        if !self.carry.is_empty() && !self.skipping {
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
