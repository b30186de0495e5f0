//! Physical lines of one file in, logical [`Record`]s out.
//!
//! One [`Decoder`] per open file. It undoes the container runtime's framing
//! (CRI fields, docker JSON), joins partial chunks per stream, recognises
//! LiteLLM JSON log lines, strips ANSI colour codes and hands each record to a
//! [`RecordSink`]. All buffers live in the decoder and are reused, so a
//! complete line costs no heap allocation in the steady state; the partial
//! state can be saved into a checkpoint and restored after a restart.

use memchr::memchr;

use super::{ansi, cri, docker, json, plain, Format, MalformedReason, Record, RecordSink, Stream};
use crate::time::Timestamp;

impl Format {
    /// Guesses the format of a file from its first line.
    ///
    /// CRI when the line parses as `<rfc3339> <stdout|stderr> <P|F>[:tags] …`,
    /// docker when it is a JSON object with `log` and `stream` members,
    /// plain text otherwise (including LiteLLM's own JSON lines).
    pub fn detect(first_line: &[u8]) -> Format {
        let line = strip_cr(first_line);
        // A file truncated in place may start with a run of NUL bytes.
        let line = match line.iter().position(|&b| b != 0) {
            Some(start) => &line[start..],
            None => return Format::Plain,
        };
        if cri::parse_cri_line(line).is_ok() {
            return Format::Cri;
        }
        match docker::parse_docker_line(line) {
            Ok(_) | Err(MalformedReason::BadTimestamp) => Format::Docker,
            Err(_) => Format::Plain,
        }
    }
}

/// A partial record waiting for its final chunk, as carried in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingPartial {
    /// The stream the chunks came from.
    pub stream: Stream,
    /// The first chunk's timestamp (the record's timestamp).
    pub ts: Option<Timestamp>,
    /// The chunks joined so far (already capped at `max_line_bytes`).
    pub text: Vec<u8>,
    /// Whether the cap was hit (so `TooLong` is not reported twice).
    #[serde(default)]
    pub truncated: bool,
}

/// What a [`Decoder`] must remember across a restart: partial records whose
/// final chunk has not been read yet, at most one per stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecoderState {
    /// Partial records, in stream order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingPartial>,
}

/// A record being assembled from `P` (or unterminated docker) chunks.
#[derive(Debug, Default)]
struct Slot {
    active: bool,
    ts: Option<Timestamp>,
    text: Vec<u8>,
    truncated: bool,
}

/// Buffers used to produce the final text of a record.
#[derive(Debug, Default)]
struct EmitBuffers {
    /// LiteLLM JSON `message` (+ stack trace), when it needs decoding.
    json: Vec<u8>,
    /// ANSI-stripped text.
    ansi: Vec<u8>,
}

const SLOTS: usize = 3;

fn slot_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
        Stream::Unknown => 2,
    }
}

const SLOT_STREAMS: [Stream; SLOTS] = [Stream::Stdout, Stream::Stderr, Stream::Unknown];

/// Decodes the physical lines of one log file into records.
///
/// Feed it every line of the file in order with [`Decoder::push_line`]; call
/// [`Decoder::finish`] when the file is gone for good (rotated away and fully
/// read, or the container ended), so a dangling partial is not lost.
#[derive(Debug)]
pub struct Decoder {
    format: Format,
    max_line_bytes: usize,
    slots: [Slot; SLOTS],
    /// Decoded docker `log` text.
    docker_log: Vec<u8>,
    emit: EmitBuffers,
    /// A line with its stray NUL bytes removed (reused).
    scratch: Vec<u8>,
}

impl Decoder {
    /// A decoder for one file of `format`; records longer than
    /// `max_line_bytes` are truncated to it (and reported as `TooLong`).
    pub fn new(format: Format, max_line_bytes: usize) -> Self {
        Decoder {
            format,
            max_line_bytes,
            slots: Default::default(),
            docker_log: Vec::new(),
            emit: EmitBuffers::default(),
            scratch: Vec::new(),
        }
    }

    /// The format this decoder reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether a partial record is waiting for its final chunk (the file
    /// should not be treated as fully consumed yet).
    pub fn has_pending(&self) -> bool {
        self.slots.iter().any(|s| s.active)
    }

    /// Whether `stream` has a partial record waiting (its next chunk is
    /// joined to it, so that line must be decoded, never skipped).
    pub fn pending(&self, stream: Stream) -> bool {
        self.slots[slot_index(stream)].active
    }

    /// Decodes one physical line (without its `\n`; a trailing `\r` is
    /// dropped). Emits zero or one record and reports malformed input.
    pub fn push_line<S: RecordSink + ?Sized>(&mut self, line: &[u8], sink: &mut S) {
        let mut line = strip_cr(line);
        let mut cleaned = Vec::new();
        if let Some(first_nul) = memchr(0, line) {
            sink.malformed(MalformedReason::Binary);
            // A file truncated in place while its writer kept its offset gets
            // a hole of NULs before the next real line: keep that line.
            if first_nul == 0 {
                match line.iter().position(|&b| b != 0) {
                    Some(start) => line = &line[start..],
                    None => return,
                }
            }
            // A stray NUL inside a text line costs the NUL, not the event;
            // a line of mostly NULs is binary, not a log line.
            let nuls = line.iter().filter(|&&b| b == 0).count();
            if nuls > 0 {
                if nuls * 10 > line.len() {
                    return;
                }
                cleaned = std::mem::take(&mut self.scratch);
                cleaned.clear();
                cleaned.extend(line.iter().copied().filter(|&b| b != 0));
            }
        }
        let line = if cleaned.is_empty() {
            line
        } else {
            &cleaned[..]
        };
        match self.format {
            Format::Cri => match cri::parse_cri_line(line) {
                Ok(l) => self.assemble(Some(l.ts), l.stream, l.partial, l.message, sink),
                Err(MalformedReason::BadTimestamp) => {
                    sink.malformed(MalformedReason::BadTimestamp);
                    // Out of range or garbled, but the rest is a CRI record:
                    // keep the event, without a timestamp.
                    let rest = memchr(b' ', line).map(|sp| &line[sp + 1..]);
                    if let Some(Ok((stream, partial, msg))) = rest.map(cri::parse_cri_fields) {
                        self.assemble(None, stream, partial, msg, sink);
                    }
                }
                Err(reason) => sink.malformed(reason),
            },
            Format::Docker => self.push_docker(line, sink),
            Format::Plain => {
                let (ts, text) = plain::split_timestamp(line);
                let text = cap(text, self.max_line_bytes, sink);
                emit(&mut self.emit, ts, Stream::Unknown, text, sink);
            }
        }
        if cleaned.capacity() > 0 {
            self.scratch = cleaned;
        }
    }

    fn push_docker<S: RecordSink + ?Sized>(&mut self, line: &[u8], sink: &mut S) {
        let parsed = match docker::parse_docker_line(line) {
            Ok(p) => p,
            Err(reason) => return sink.malformed(reason),
        };
        let Decoder {
            slots,
            docker_log,
            emit: bufs,
            max_line_bytes,
            ..
        } = self;
        let (text, complete) = match docker::decode_log(parsed.log, docker_log) {
            Ok(t) => t,
            Err(reason) => return sink.malformed(reason),
        };
        assemble(
            slots,
            bufs,
            *max_line_bytes,
            parsed.ts,
            parsed.stream,
            !complete,
            text,
            sink,
        );
    }

    fn assemble<S: RecordSink + ?Sized>(
        &mut self,
        ts: Option<Timestamp>,
        stream: Stream,
        partial: bool,
        chunk: &[u8],
        sink: &mut S,
    ) {
        assemble(
            &mut self.slots,
            &mut self.emit,
            self.max_line_bytes,
            ts,
            stream,
            partial,
            chunk,
            sink,
        );
    }

    /// The file ended for good: every pending partial becomes a record (with
    /// the first chunk's timestamp) and is reported as `UnterminatedPartial`.
    pub fn finish<S: RecordSink + ?Sized>(&mut self, sink: &mut S) {
        let mut order = [0usize, 1, 2];
        order.sort_by_key(|&i| self.slots[i].ts);
        for i in order {
            let slot = &mut self.slots[i];
            if !slot.active {
                continue;
            }
            emit(&mut self.emit, slot.ts, SLOT_STREAMS[i], &slot.text, sink);
            sink.malformed(MalformedReason::UnterminatedPartial);
            slot.active = false;
            slot.text.clear();
        }
    }

    /// The pending partial records, for a checkpoint.
    pub fn save(&self) -> DecoderState {
        let pending = self
            .slots
            .iter()
            .zip(SLOT_STREAMS)
            .filter(|(slot, _)| slot.active)
            .map(|(slot, stream)| PendingPartial {
                stream,
                ts: slot.ts,
                text: slot.text.clone(),
                truncated: slot.truncated,
            })
            .collect();
        DecoderState { pending }
    }

    /// Replaces the pending partial records with those of a checkpoint
    /// (re-capped to this decoder's `max_line_bytes`).
    pub fn restore(&mut self, state: DecoderState) {
        for slot in &mut self.slots {
            slot.active = false;
            slot.text.clear();
        }
        for p in state.pending {
            let slot = &mut self.slots[slot_index(p.stream)];
            slot.active = true;
            slot.ts = p.ts;
            slot.truncated = p.truncated || p.text.len() > self.max_line_bytes;
            slot.text = p.text;
            slot.text.truncate(self.max_line_bytes);
        }
    }
}

/// Adds one chunk to its stream's slot, emitting a record when it completes one.
#[allow(clippy::too_many_arguments)] // disjoint borrows of the decoder's fields
fn assemble<S: RecordSink + ?Sized>(
    slots: &mut [Slot; SLOTS],
    bufs: &mut EmitBuffers,
    max_line_bytes: usize,
    ts: Option<Timestamp>,
    stream: Stream,
    partial: bool,
    chunk: &[u8],
    sink: &mut S,
) {
    let slot = &mut slots[slot_index(stream)];
    if !slot.active {
        if !partial {
            // The common case: a complete line, decoded without copying.
            let text = cap(chunk, max_line_bytes, sink);
            return emit(bufs, ts, stream, text, sink);
        }
        slot.active = true;
        slot.ts = ts;
        slot.truncated = false;
        slot.text.clear();
    }
    let room = max_line_bytes.saturating_sub(slot.text.len());
    if chunk.len() > room {
        slot.text.extend_from_slice(&chunk[..room]);
        if !slot.truncated {
            slot.truncated = true;
            sink.malformed(MalformedReason::TooLong);
        }
    } else {
        slot.text.extend_from_slice(chunk);
    }
    if !partial {
        emit(bufs, slot.ts, stream, &slot.text, sink);
        slot.active = false;
        slot.text.clear();
    }
}

/// `text` cut to `max` bytes, reporting `TooLong` when it was longer.
fn cap<'a, S: RecordSink + ?Sized>(text: &'a [u8], max: usize, sink: &mut S) -> &'a [u8] {
    if text.len() > max {
        sink.malformed(MalformedReason::TooLong);
        &text[..max]
    } else {
        text
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Turns the container-level message into the record's text and hands it on:
/// LiteLLM JSON lines become message (+ stack trace), ANSI codes go.
fn emit<S: RecordSink + ?Sized>(
    bufs: &mut EmitBuffers,
    ts: Option<Timestamp>,
    stream: Stream,
    text: &[u8],
    sink: &mut S,
) {
    let text = strip_cr(text);
    let (ts, text) = match json::decode_litellm_json(text, &mut bufs.json) {
        Some(line) => (ts.or(line.ts), line.text),
        None => (ts, text),
    };
    let text = ansi::strip_ansi(text, &mut bufs.ansi);
    sink.record(Record { ts, stream, text });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Collects owned copies of what a decoder emits.
    #[derive(Default, Debug)]
    struct Collect {
        records: Vec<(Option<Timestamp>, Stream, Vec<u8>)>,
        malformed: Vec<MalformedReason>,
    }

    impl RecordSink for Collect {
        fn record(&mut self, r: Record<'_>) {
            self.records.push((r.ts, r.stream, r.text.to_vec()));
        }
        fn malformed(&mut self, reason: MalformedReason) {
            self.malformed.push(reason);
        }
    }

    impl Collect {
        fn texts(&self) -> Vec<String> {
            self.records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.2).into_owned())
                .collect()
        }
    }

    fn ts(s: &str) -> Option<Timestamp> {
        Some(Timestamp::parse_rfc3339(s.as_bytes()).unwrap())
    }

    fn decode(format: Format, max: usize, input: &[u8]) -> Collect {
        let mut d = Decoder::new(format, max);
        let mut sink = Collect::default();
        // Like a file reader: a final '\n' ends the last line, it does not start another.
        let input = input.strip_suffix(b"\n").unwrap_or(input);
        if !input.is_empty() {
            for line in input.split(|&b| b == b'\n') {
                d.push_line(line, &mut sink);
            }
        }
        d.finish(&mut sink);
        sink
    }

    #[test]
    fn detects_formats() {
        assert_eq!(
            Format::detect(b"2026-11-24T10:15:00.1Z stdout F hello"),
            Format::Cri
        );
        assert_eq!(
            Format::detect(b"2026-11-24T10:15:00.123456789+00:00 stderr P:x part\r"),
            Format::Cri
        );
        assert_eq!(
            Format::detect(b"\0\0\x002026-11-24T10:15:00Z stdout F after a truncation hole"),
            Format::Cri
        );
        assert_eq!(
            Format::detect(br#"{"log":"INFO:     Started server process [1]\n","stream":"stdout","time":"2026-11-24T10:15:00.1Z"}"#),
            Format::Docker
        );
        assert_eq!(
            Format::detect(br#"{"log":"x","stream":"stdout","time":"garbage"}"#),
            Format::Docker
        );
        assert_eq!(
            Format::detect(b"2026-11-24T10:15:00.123Z INFO:     Started server process [1]"),
            Format::Plain
        );
        assert_eq!(
            Format::detect(
                br#"{"message": "x", "level": "INFO", "timestamp": "2026-11-24T18:27:15"}"#
            ),
            Format::Plain
        );
        assert_eq!(
            Format::detect(b"\x1b[92m18:33:49 - LiteLLM Proxy:INFO\x1b[0m: proxy_server.py:1 - hi"),
            Format::Plain
        );
        assert_eq!(Format::detect(b""), Format::Plain);
        assert_eq!(Format::detect(b"\0\0"), Format::Plain);
    }

    #[test]
    fn containerd_and_crio_lines() {
        let input = b"2026-11-24T10:15:00.1Z stdout F INFO:     Started server process [1]\n\
2026-11-24T10:15:01.000000001+00:00 stderr F \x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - Error in spend logs queue monitor\n\
2026-11-24T12:15:02+02:00 stdout F:more-tags uvicorn\r\n\
2026-11-24T10:15:03Z stdout F \n\
2026-11-24T10:15:04Z stdout F";
        let got = decode(Format::Cri, 1 << 20, input);
        assert!(got.malformed.is_empty(), "{:?}", got.malformed);
        assert_eq!(
            got.texts(),
            [
                "INFO:     Started server process [1]",
                "18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor",
                "uvicorn",
                "",
                ""
            ]
        );
        assert_eq!(got.records[0].0, ts("2026-11-24T10:15:00.100Z"));
        assert_eq!(got.records[1].0, ts("2026-11-24T10:15:01.000000001Z"));
        assert_eq!(got.records[1].1, Stream::Stderr);
        assert_eq!(got.records[2].0, ts("2026-11-24T10:15:02Z"));
    }

    #[test]
    fn partials_join_per_stream_across_interleaving() {
        let input = b"2026-11-24T10:15:00.1Z stdout P first-\n\
2026-11-24T10:15:00.2Z stderr P Traceback (most \n\
2026-11-24T10:15:00.3Z stdout P second-\n\
2026-11-24T10:15:00.4Z stderr F recent call last):\n\
2026-11-24T10:15:00.5Z stdout F third\n";
        let got = decode(Format::Cri, 1 << 20, input);
        assert!(got.malformed.is_empty());
        assert_eq!(
            got.texts(),
            ["Traceback (most recent call last):", "first-second-third"]
        );
        assert_eq!(got.records[0].0, ts("2026-11-24T10:15:00.2Z"));
        assert_eq!(got.records[0].1, Stream::Stderr);
        assert_eq!(got.records[1].0, ts("2026-11-24T10:15:00.1Z"));
        assert_eq!(got.records[1].1, Stream::Stdout);
    }

    #[test]
    fn joined_record_is_capped_once() {
        let input = b"2026-11-24T10:15:00Z stdout P 0123456789\n\
2026-11-24T10:15:01Z stdout P abcdefghij\n\
2026-11-24T10:15:02Z stdout P KLMNOPQRST\n\
2026-11-24T10:15:03Z stdout F end\n\
2026-11-24T10:15:04Z stdout F short\n\
2026-11-24T10:15:05Z stdout F this single line is too long";
        let got = decode(Format::Cri, 15, input);
        assert_eq!(got.texts(), ["0123456789abcde", "short", "this single lin"]);
        assert_eq!(
            got.malformed,
            [MalformedReason::TooLong, MalformedReason::TooLong]
        );
    }

    #[test]
    fn dangling_partial_is_flushed_by_finish() {
        let mut d = Decoder::new(Format::Cri, 1024);
        let mut sink = Collect::default();
        d.push_line(b"2026-11-24T10:15:00Z stdout F done", &mut sink);
        d.push_line(
            b"2026-11-24T10:15:01Z stderr P httpx.ConnectError: All conn",
            &mut sink,
        );
        d.push_line(
            b"2026-11-24T10:15:02Z stderr P ection attempts failed",
            &mut sink,
        );
        assert!(d.has_pending());
        assert_eq!(sink.records.len(), 1);
        d.finish(&mut sink);
        assert!(!d.has_pending());
        assert_eq!(
            sink.texts(),
            ["done", "httpx.ConnectError: All connection attempts failed"]
        );
        assert_eq!(sink.records[1].0, ts("2026-11-24T10:15:01Z"));
        assert_eq!(sink.malformed, [MalformedReason::UnterminatedPartial]);
        // Nothing left to flush a second time.
        d.finish(&mut sink);
        assert_eq!(sink.records.len(), 2);
    }

    #[test]
    fn partial_state_survives_save_and_restore() {
        let mut d = Decoder::new(Format::Cri, 1024);
        let mut sink = Collect::default();
        d.push_line(
            b"2026-11-24T10:15:00Z stdout P Error in spend logs \xff",
            &mut sink,
        );
        let state = d.save();
        let json = serde_json::to_string(&state).unwrap();
        let restored: DecoderState = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, state);
        let mut d2 = Decoder::new(Format::Cri, 1024);
        d2.restore(restored);
        assert!(d2.has_pending());
        d2.push_line(b"2026-11-24T10:15:09Z stdout F queue monitor", &mut sink);
        assert_eq!(sink.records.len(), 1);
        assert_eq!(sink.records[0].2, b"Error in spend logs \xffqueue monitor");
        assert_eq!(sink.records[0].0, ts("2026-11-24T10:15:00Z"));
        assert!(!d2.has_pending());
        assert_eq!(d2.save(), DecoderState::default());
        assert_eq!(
            serde_json::to_string(&DecoderState::default()).unwrap(),
            "{}"
        );
        // Restoring into a smaller cap truncates and remembers it.
        let mut d3 = Decoder::new(Format::Cri, 5);
        d3.restore(state);
        d3.push_line(b"2026-11-24T10:15:09Z stdout F more", &mut sink);
        assert_eq!(sink.records[1].2, b"Error");
        assert!(sink.malformed.is_empty());
    }

    #[test]
    fn malformed_cri_lines_are_reported_and_skipped() {
        let input = b"2026-11-24T10:15:00Z stdout F ok\n\
garbage line from a truncated write\n\
2026-11-24T10:15:0\n\
2026-11-24T10:15:00Z stdin F x\n\
2026-11-24T10:15:00Z stdout\n\
2026-11-24T10:15:00Z stdout F ok2";
        let got = decode(Format::Cri, 1024, input);
        assert_eq!(got.texts(), ["ok", "ok2"]);
        use MalformedReason::*;
        assert_eq!(
            got.malformed,
            [BadTimestamp, BadTimestamp, MissingFields, MissingFields]
        );
    }

    #[test]
    fn bad_cri_timestamp_loses_the_timestamp_not_the_event() {
        let input =
            b"10000-01-01T00:00:00Z stderr F httpx.ConnectError: All connection attempts failed\n\
2026-13-45T99:99:99Z stdout P par\n\
2026-11-24T10:15:00Z stdout F t\n";
        let got = decode(Format::Cri, 1024, input);
        assert_eq!(
            got.texts(),
            ["httpx.ConnectError: All connection attempts failed", "part"]
        );
        assert_eq!(got.malformed, [MalformedReason::BadTimestamp; 2]);
    }

    #[test]
    fn nul_bytes_are_binary() {
        let input = b"2026-11-24T10:15:00Z stdout F a\0b\n\
\0\0\0\0\n\
\0\0\x002026-11-24T10:15:01Z stdout F after hole\n\
\0\0x\0\n\
2026-11-24T10:15:02Z stdout F ok";
        let got = decode(Format::Cri, 1024, input);
        // The stray NUL costs the NUL, not the event; a line of NULs, or
        // mostly NULs, is no event.
        assert_eq!(got.texts(), ["ab", "after hole", "ok"]);
        assert_eq!(got.malformed, [MalformedReason::Binary; 4]);
        let got = decode(Format::Plain, 1024, b"ELF\0\0\x01\nfine");
        assert_eq!(got.texts(), ["fine"]);
        assert_eq!(got.malformed, [MalformedReason::Binary]);
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let got = decode(
            Format::Cri,
            1024,
            b"2026-11-24T10:15:00Z stdout F caf\xe9 \xff\xfe \x1b[31mred\x1b[0m",
        );
        assert_eq!(got.records[0].2, b"caf\xe9 \xff\xfe red");
        assert!(got.malformed.is_empty());
    }

    #[test]
    fn docker_lines_and_16k_splits() {
        let chunk1 = "a".repeat(16 * 1024);
        let chunk2 = "b".repeat(16 * 1024);
        let input = format!(
            "{{\"log\":\"{chunk1}\",\"stream\":\"stdout\",\"time\":\"2026-11-24T10:15:00.000000001Z\"}}\n\
{{\"log\":\"\\u001b[92m18:33:49 - LiteLLM Proxy:ERROR\\u001b[0m: utils.py:2721 - \\u003cspend\\u003e\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-24T10:15:00.5Z\"}}\n\
{{\"log\":\"{chunk2}\",\"stream\":\"stdout\",\"time\":\"2026-11-24T10:15:01Z\"}}\n\
{{\"log\":\"tail\\r\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-24T10:15:02Z\"}}\n"
        );
        let got = decode(Format::Docker, 1 << 20, input.as_bytes());
        assert!(got.malformed.is_empty(), "{:?}", got.malformed);
        assert_eq!(got.records.len(), 2);
        assert_eq!(
            got.records[0].2,
            b"18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - <spend>"
        );
        assert_eq!(got.records[0].1, Stream::Stderr);
        assert_eq!(
            got.records[1].2,
            format!("{chunk1}{chunk2}tail").into_bytes()
        );
        assert_eq!(got.records[1].0, ts("2026-11-24T10:15:00.000000001Z"));
    }

    #[test]
    fn malformed_docker_lines() {
        let input = br#"{"log":"ok\n","stream":"stdout","time":"2026-11-24T10:15:00Z"}
{"log":"cut off by a crash","stream":"std
{"log":"x\n","stream":"stdout","time":"not a time"}
{"log":"bad escape \q\n","stream":"stdout","time":"2026-11-24T10:15:00Z"}
{"log":"dangling","stream":"stderr","time":"2026-11-24T10:15:01Z"}"#;
        let got = decode(Format::Docker, 1024, input);
        assert_eq!(got.texts(), ["ok", "dangling"]);
        use MalformedReason::*;
        assert_eq!(
            got.malformed,
            [
                MissingFields,
                BadTimestamp,
                MissingFields,
                UnterminatedPartial
            ]
        );
    }

    #[test]
    fn litellm_json_logs_mixed_with_plain_text() {
        let input = br#"2026-11-24T18:27:15.600Z stdout F {"message": "Error in spend logs queue monitor: All connection attempts failed", "level": "ERROR", "timestamp": "2026-11-24T18:27:15.595834", "component": "LiteLLM Proxy", "logger": "utils.py:2721", "stacktrace": "Traceback (most recent call last):\n  File \"/app/utils.py\", line 2712, in monitor\nhttpx.ConnectError: All connection attempts failed"}
2026-11-24T18:27:15.700Z stdout F Traceback (most recent call last):
2026-11-24T18:27:15.700Z stdout F   File "/usr/lib/python3.13/site-packages/prisma/engine/query.py", line 120, in connect
2026-11-24T18:27:15.800Z stdout F {"message": "\u001b[32mLiteLLM: Proxy initialized with Config\u001b[0m", "level": "INFO", "timestamp": "2026-11-24T18:27:15.700000"}
2026-11-24T18:27:15.900Z stdout F {"status": "healthy", "message_count": 3}"#;
        let got = decode(Format::Cri, 1 << 20, input);
        assert!(got.malformed.is_empty());
        assert_eq!(
            got.texts(),
            [
                "Error in spend logs queue monitor: All connection attempts failed\nTraceback (most recent call last):\n  File \"/app/utils.py\", line 2712, in monitor\nhttpx.ConnectError: All connection attempts failed",
                "Traceback (most recent call last):",
                "  File \"/usr/lib/python3.13/site-packages/prisma/engine/query.py\", line 120, in connect",
                "LiteLLM: Proxy initialized with Config",
                "{\"status\": \"healthy\", \"message_count\": 3}",
            ]
        );
        // The container runtime's timestamp wins over LiteLLM's zoneless one.
        assert_eq!(got.records[0].0, ts("2026-11-24T18:27:15.600Z"));
    }

    #[test]
    fn plain_text_with_and_without_kubectl_timestamps() {
        let lines: [&[u8]; 5] = [
            b"2026-11-24T10:15:00.123456789Z INFO:     Started server process [1]\r",
            b"\x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - Error in spend logs queue monitor",
            br#"{"message": "Budget lookup failed", "level": "ERROR", "timestamp": "2026-11-24T18:27:15.595834"}"#,
            b"",
            br#"    raise httpx.ConnectError("All connection attempts failed")"#,
        ];
        let got = decode(Format::Plain, 1 << 20, &lines.join(&b'\n'));
        assert!(got.malformed.is_empty());
        assert_eq!(
            got.texts(),
            [
                "INFO:     Started server process [1]",
                "18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor",
                "Budget lookup failed",
                "",
                "    raise httpx.ConnectError(\"All connection attempts failed\")",
            ]
        );
        assert_eq!(got.records[0].0, ts("2026-11-24T10:15:00.123456789Z"));
        assert_eq!(got.records[1].0, None);
        // No container timestamp: LiteLLM's zoneless timestamp is taken as UTC.
        assert_eq!(got.records[2].0, ts("2026-11-24T18:27:15.595834Z"));
        assert!(got.records.iter().all(|r| r.1 == Stream::Unknown));
    }

    #[test]
    fn steady_state_reuses_buffers() {
        let mut d = Decoder::new(Format::Cri, 1 << 16);
        let mut sink = CountSink::default();
        let lines: [&[u8]; 4] = [
            b"2026-11-24T10:15:00Z stdout P \x1b[92m18:33:49 - LiteLLM Proxy:ERROR\x1b[0m: part one ",
            b"2026-11-24T10:15:00Z stdout F part two",
            b"2026-11-24T10:15:00Z stderr F {\"message\": \"caf\\u00e9\", \"stacktrace\": \"Traceback\"}",
            b"2026-11-24T10:15:00Z stderr F \x1b[31mred\x1b[0m",
        ];
        for l in lines {
            d.push_line(l, &mut sink);
        }
        let caps = |d: &Decoder| {
            (
                d.slots.each_ref().map(|s| s.text.capacity()),
                d.emit.json.capacity(),
                d.emit.ansi.capacity(),
            )
        };
        let before = caps(&d);
        for _ in 0..100 {
            for l in lines {
                d.push_line(l, &mut sink);
            }
        }
        assert_eq!(caps(&d), before);
        assert_eq!(sink.records, 303);
    }

    #[derive(Default)]
    struct CountSink {
        records: usize,
        malformed: usize,
        longest: usize,
    }

    impl RecordSink for CountSink {
        fn record(&mut self, r: Record<'_>) {
            self.records += 1;
            self.longest = self.longest.max(r.text.len());
        }
        fn malformed(&mut self, _: MalformedReason) {
            self.malformed += 1;
        }
    }

    /// Splits `msg` at `cuts` into CRI `P` chunks plus a final `F` chunk.
    fn cri_lines(msg: &[u8], cuts: &[usize], stream: &str) -> Vec<Vec<u8>> {
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (msg.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.dedup();
        bounds.push(msg.len());
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, &end) in bounds.iter().enumerate() {
            let tag = if i + 1 == bounds.len() { "F" } else { "P" };
            let mut line =
                format!("2026-11-24T10:15:{:02}.5Z {stream} {tag} ", i % 60).into_bytes();
            line.extend_from_slice(&msg[start..end]);
            lines.push(line);
            start = end;
        }
        lines
    }

    proptest! {
        #[test]
        fn cri_partials_round_trip(
            // No newline (it ends a physical line), NUL (binary), ESC (stripped)
            // or CR (a trailing CR is dropped from each physical line).
            msg in proptest::collection::vec(any::<u8>().prop_filter("plain bytes", |b| !matches!(*b, b'\n' | 0 | 0x1b | b'\r')), 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            other in proptest::collection::vec(0u8..=255, 0..40),
        ) {
            // A message whose text is not LiteLLM JSON (`{` would be read as such).
            let mut msg = msg;
            if msg.first() == Some(&b'{') { msg[0] = b'x'; }
            let other: Vec<u8> = other.into_iter().filter(|b| b.is_ascii_alphanumeric()).collect();
            let mut d = Decoder::new(Format::Cri, 1 << 20);
            let mut sink = Collect::default();
            let lines = cri_lines(&msg, &cuts, "stdout");
            for (i, line) in lines.iter().enumerate() {
                d.push_line(line, &mut sink);
                // Interleave complete stderr lines: they must not disturb the join.
                if i % 2 == 0 {
                    let mut e = b"2026-11-24T10:16:00Z stderr F ".to_vec();
                    e.extend_from_slice(&other);
                    d.push_line(&e, &mut sink);
                }
            }
            d.finish(&mut sink);
            prop_assert!(sink.malformed.is_empty(), "{:?}", sink.malformed);
            let stdout: Vec<_> = sink.records.iter().filter(|r| r.1 == Stream::Stdout).collect();
            prop_assert_eq!(stdout.len(), 1);
            prop_assert_eq!(&stdout[0].2, &msg);
            prop_assert_eq!(stdout[0].0, ts("2026-11-24T10:15:00.5Z"));
        }

        #[test]
        fn docker_round_trip(msg in any::<String>(), split in any::<usize>()) {
            let msg: String = msg.chars().filter(|&c| c != '\n' && c != '\0' && c != '\u{1b}').collect();
            let mut msg = msg;
            if msg.starts_with('{') { msg.replace_range(..1, "x"); }
            let cut = (0..=msg.len()).filter(|&i| msg.is_char_boundary(i)).nth(split % (msg.chars().count() + 1)).unwrap_or(0);
            let (a, b) = msg.split_at(cut);
            let line1 = serde_json::json!({"log": a, "stream": "stderr", "time": "2026-11-24T10:15:00.25Z"}).to_string();
            let line2 = serde_json::json!({"log": format!("{b}\n"), "stream": "stderr", "time": "2026-11-24T10:15:01Z"}).to_string();
            let mut d = Decoder::new(Format::Docker, 1 << 20);
            let mut sink = Collect::default();
            d.push_line(line1.as_bytes(), &mut sink);
            d.push_line(line2.as_bytes(), &mut sink);
            d.finish(&mut sink);
            prop_assert!(sink.malformed.is_empty(), "{:?}", sink.malformed);
            prop_assert_eq!(sink.records.len(), 1);
            let mut want = msg.into_bytes();
            if want.last() == Some(&b'\r') { want.pop(); }
            prop_assert_eq!(&sink.records[0].2, &want);
            prop_assert_eq!(sink.records[0].0, ts("2026-11-24T10:15:00.25Z"));
        }

        #[test]
        fn arbitrary_lines_never_panic(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..12),
            max in 0usize..64,
        ) {
            for format in [Format::Cri, Format::Docker, Format::Plain] {
                let mut d = Decoder::new(format, max);
                let mut sink = CountSink::default();
                for line in &lines {
                    d.push_line(line, &mut sink);
                    prop_assert!(d.save().pending.iter().all(|p| p.text.len() <= max));
                }
                d.finish(&mut sink);
                prop_assert!(!d.has_pending());
                // JSON unescaping and ANSI stripping only shrink: the cap holds.
                prop_assert!(sink.longest <= max);
                prop_assert!(sink.records <= lines.len() + 3);
                let _ = Format::detect(lines.first().map(Vec::as_slice).unwrap_or(&[]));
            }
        }

        #[test]
        fn framed_garbage_never_panics(
            stream in prop_oneof![Just("stdout"), Just("stderr")],
            tag in prop_oneof![Just("P"), Just("F"), Just("F:x")],
            body in "[{}\\[\\]\"\\\\:,a-z0-9 \\x1b]{0,60}",
        ) {
            let line = format!("2026-11-24T10:15:00Z {stream} {tag} {body}");
            let docker = format!("{{\"log\":\"{body}\",\"stream\":\"{stream}\",\"time\":\"2026-11-24T10:15:00Z\"}}");
            for (format, l) in [(Format::Cri, &line), (Format::Docker, &docker), (Format::Plain, &body)] {
                let mut d = Decoder::new(format, 32);
                let mut sink = CountSink::default();
                d.push_line(l.as_bytes(), &mut sink);
                d.finish(&mut sink);
                prop_assert!(sink.records + sink.malformed >= 1);
            }
        }
    }
}
