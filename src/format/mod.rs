//! Turning the bytes of a log file into logical records.
//!
//! Input: physical lines (bytes, no trailing newline) of one file, in order.
//! Output: [`Record`]s — one per logical log line, with the record's own
//! timestamp, its stream, and its text with ANSI colour codes removed and
//! CRI/docker partial chunks joined. Malformed input is reported, never fatal.
//!
//! The format is detected per file from its first lines ([`Format::detect`]);
//! [`Decoder`] keeps the per-stream partial-record state a file needs.

pub mod ansi;
pub mod cri;
pub mod decoder;
pub mod docker;
pub mod frame;
pub mod json;
pub mod path;
pub mod plain;

pub use decoder::Decoder;
pub use path::PodRef;

use crate::time::Timestamp;

/// Which output stream a record came from (CRI and docker say; plain text does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    Unknown,
}

/// One logical log line, ready for classification.
///
/// `text` may hold several lines joined by `\n` when LiteLLM put a traceback
/// inside one message (JSON logs' `message` + `stacktrace`); the classifier
/// treats each of those lines as if it had been logged on its own.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub ts: Option<Timestamp>,
    pub stream: Stream,
    pub text: &'a [u8],
}

/// Why a physical line could not be decoded; the label of `lines_malformed_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MalformedReason {
    /// A CRI/docker line whose timestamp does not parse.
    BadTimestamp,
    /// A CRI line missing its stream or tag field, or a docker line that is not JSON.
    MissingFields,
    /// A record longer than `max_line_bytes`; it was truncated to the cap.
    TooLong,
    /// A `P` record whose `F` never came (flushed at end of file or by a restart).
    UnterminatedPartial,
    /// Bytes that are not text (NUL bytes, mostly-binary content).
    Binary,
}

impl MalformedReason {
    /// The fixed label value used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedReason::BadTimestamp => "bad_timestamp",
            MalformedReason::MissingFields => "missing_fields",
            MalformedReason::TooLong => "too_long",
            MalformedReason::UnterminatedPartial => "unterminated_partial",
            MalformedReason::Binary => "binary",
        }
    }

    /// Every reason, for pre-registering metric series.
    pub const ALL: [MalformedReason; 5] = [
        MalformedReason::BadTimestamp,
        MalformedReason::MissingFields,
        MalformedReason::TooLong,
        MalformedReason::UnterminatedPartial,
        MalformedReason::Binary,
    ];
}

/// Where decoded records and decoding problems go.
pub trait RecordSink {
    /// A complete logical record.
    fn record(&mut self, record: Record<'_>);
    /// A physical line that was malformed (it may still have produced a record).
    fn malformed(&mut self, reason: MalformedReason);
}

/// The on-disk format of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// containerd / CRI-O: `<ts> <stream> <P|F> <msg>`.
    Cri,
    /// docker json-file: `{"log":…,"stream":…,"time":…}`.
    Docker,
    /// Anything else: plain text, optionally with a leading RFC 3339 timestamp
    /// (`kubectl logs --timestamps`); LiteLLM JSON lines are recognised per line.
    Plain,
}
