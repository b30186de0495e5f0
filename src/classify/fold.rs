//! Folding tracebacks into the event that owns them.
//!
//! LiteLLM logs one failing operation as a header line followed by a Python
//! traceback (in text mode as separate lines, in JSON mode inside one
//! message). The traceback's last line — `httpx.ConnectError: All connection
//! attempts failed` — must not count as a second failure, so after a header
//! the lines that belong to it are *folded*: they only tell the header's
//! event whether a connection-failure wording was involved.
//!
//! The state machine is deliberately strict, so an unrelated line after a
//! traceback is never swallowed:
//!
//! ```text
//! AfterHeader    --Traceback / indented--> InTraceback
//! AfterHeader    --`Error: …`------------> AfterException
//! InTraceback    --Traceback / indented--> InTraceback
//! InTraceback    --`pkg.SomeError: …`----> AfterException
//! AfterException --chain marker----------> AfterChainMarker
//! AfterException --Traceback-------------> InTraceback
//! AfterChainMarker --Traceback-----------> InTraceback
//! any            --blank / truncation----> (same phase)
//! anything else ends the fold; that line is classified normally.
//! ```

use super::{Event, EventKind, Operation};
use crate::time::Timestamp;

const TRACEBACK_START: &[u8] = b"Traceback (most recent call last):";
const CHAIN_DURING: &[u8] = b"During handling of the above exception, another exception occurred:";
const CHAIN_CAUSE: &[u8] = b"The above exception was the direct cause of the following exception:";
const TRUNCATION_MARKER: &[u8] = b"(litellm_truncated";
/// Class-name endings that make a non-dotted `Name: message` line an
/// exception line (`ValueError`, `KeyboardInterrupt`, …) while `INFO:` or
/// `ERROR:` (Uvicorn's level prefixes) stay ordinary lines.
const EXCEPTION_NAME_ENDINGS: [&[u8]; 7] = [
    b"Error",
    b"Exception",
    b"Exit",
    b"Interrupt",
    b"Warning",
    b"Iteration",
    b"Group",
];

/// Where in a folded event the last line left us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Right after the header line.
    AfterHeader,
    /// Inside `Traceback (most recent call last):` frames.
    InTraceback,
    /// After the final `pkg.SomeError: message` line of a traceback.
    AfterException,
    /// After `The above exception was the direct cause…` / `During handling…`.
    AfterChainMarker,
}

/// The structural kind of one line, as far as folding cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineShape {
    /// `Traceback (most recent call last):`
    TracebackStart,
    /// One of Python's two exception-chaining sentences.
    ChainMarker,
    /// Starts with a space or a tab (`  File …`, code, `    ^^^^`).
    Indented,
    /// Empty or only whitespace.
    Blank,
    /// A line made of LiteLLM's `(litellm_truncated skipped N chars. …)` marker.
    TruncationMarker,
    /// `Error: …` — the bare error line LiteLLM puts after some headers.
    BareError,
    /// `pkg.mod.SomeError: message` (or a bare `SomeError`).
    ExceptionLine,
    /// Anything else.
    Other,
}

/// Classifies one line (no trailing newline) by its shape only.
pub(crate) fn shape(line: &[u8]) -> LineShape {
    let Some(&first) = line.first() else {
        return LineShape::Blank;
    };
    if first == b' ' || first == b'\t' {
        return if line.iter().all(u8::is_ascii_whitespace) {
            LineShape::Blank
        } else {
            LineShape::Indented
        };
    }
    if is_traceback_start(line) {
        return LineShape::TracebackStart;
    }
    if line.starts_with(CHAIN_DURING) || line.starts_with(CHAIN_CAUSE) {
        return LineShape::ChainMarker;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return LineShape::Blank;
    }
    if is_truncation_marker(line) {
        return LineShape::TruncationMarker;
    }
    match exception_name(line) {
        Some(b"Error") => LineShape::BareError,
        Some(_) => LineShape::ExceptionLine,
        None => LineShape::Other,
    }
}

/// `Traceback (most recent call last):`, bare or after a Uvicorn level prefix
/// (`ERROR:    Traceback …`: Uvicorn logs a failed lifespan start-up's
/// traceback text as its message).
fn is_traceback_start(line: &[u8]) -> bool {
    if line.starts_with(TRACEBACK_START) {
        return true;
    }
    let level_len = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match line[level_len..].strip_prefix(b":") {
        Some(rest) if level_len > 0 => {
            let spaces = rest.iter().take_while(|&&b| b == b' ').count();
            spaces > 0 && rest[spaces..].starts_with(TRACEBACK_START)
        }
        _ => false,
    }
}

/// True for a line that is only LiteLLM's truncation marker, possibly after
/// an ellipsis (`… (litellm_truncated skipped 1397 chars. …)`).
fn is_truncation_marker(line: &[u8]) -> bool {
    let mut rest = line;
    loop {
        rest = match rest {
            [b' ' | b'.', tail @ ..] => tail,
            // U+2026 HORIZONTAL ELLIPSIS in UTF-8.
            [0xE2, 0x80, 0xA6, tail @ ..] => tail,
            _ => break,
        };
    }
    rest.starts_with(TRUNCATION_MARKER)
}

/// The exception class name when `line` looks like the last line of a Python
/// traceback: `Name` or `Name: message`, where `Name` is a dotted identifier
/// that has a module part or ends like an exception class.
fn exception_name(line: &[u8]) -> Option<&[u8]> {
    let first = *line.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let name_len = line
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'.'))
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(name_len);
    let well_terminated = matches!(rest, [] | [b':'] | [b':', b' ', ..] | [b'\r']);
    if !well_terminated || name.ends_with(b".") {
        return None;
    }
    let looks_like_class =
        name.contains(&b'.') || EXCEPTION_NAME_ENDINGS.iter().any(|end| name.ends_with(end));
    looks_like_class.then_some(name)
}

/// True when `line`, outside any fold, starts a traceback nobody owns: a
/// `Traceback (most recent call last):` line, or a stray `  File "…"` frame
/// (a fold that was cut short by a malformed line).
pub(crate) fn opens_unattributed(line: &[u8]) -> bool {
    line.starts_with(b"  File \"") || is_traceback_start(line)
}

/// Who a folded traceback belongs to, i.e. what a connection wording in it counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FoldOwner {
    /// A header whose rule counts `db_connect_error{operation}`.
    Operation(Operation),
    /// A header whose rule counts no DB error (a `suppress` look-alike or an
    /// event that is not a DB call): wordings in the fold count nothing.
    Silent,
    /// A traceback no header owns: a wording counts `other` once, decided when
    /// the fold ends (a look-alike's line inside it cancels the count).
    Unattributed,
}

/// One open folded event of one stream; small, goes into the checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Fold {
    pub phase: Phase,
    pub owner: FoldOwner,
    /// The event already counted its one `db_connect_error`.
    pub counted: bool,
    /// Unattributed only: a connection wording was seen (at `pending_ts`).
    #[serde(default)]
    pub pending: bool,
    #[serde(default)]
    pub pending_ts: Option<Timestamp>,
    /// Unattributed only: a look-alike's line was seen; count nothing.
    #[serde(default)]
    pub suppressed: bool,
    /// The header's rule (index into its pack), for the events the fold emits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
}

impl Fold {
    /// A fold opened by a rule's header line.
    pub(crate) fn after_header(owner: FoldOwner, counted: bool) -> Fold {
        Fold {
            phase: Phase::AfterHeader,
            owner,
            counted,
            pending: false,
            pending_ts: None,
            suppressed: false,
            rule: None,
        }
    }

    /// A fold opened by a traceback no header owns.
    pub(crate) fn unattributed() -> Fold {
        Fold {
            phase: Phase::InTraceback,
            owner: FoldOwner::Unattributed,
            counted: false,
            pending: false,
            pending_ts: None,
            suppressed: false,
            rule: None,
        }
    }

    /// Moves the state machine by one line; false when the line does not
    /// belong to this event (the fold ends and the line is classified anew).
    pub(crate) fn advance(&mut self, shape: LineShape) -> bool {
        use LineShape as S;
        use Phase as P;
        let next = match (self.phase, shape) {
            (phase, S::Blank | S::TruncationMarker) => phase,
            (_, S::TracebackStart) => P::InTraceback,
            (P::AfterHeader | P::InTraceback, S::Indented) => P::InTraceback,
            (P::AfterHeader, S::BareError) => P::AfterException,
            (P::InTraceback, S::ExceptionLine | S::BareError) => P::AfterException,
            (P::AfterHeader | P::InTraceback | P::AfterException, S::ChainMarker) => {
                P::AfterChainMarker
            }
            _ => return false,
        };
        self.phase = next;
        true
    }

    /// Called when the fold ends: the deferred `other` error of an
    /// unattributed traceback, if it has one to report.
    pub fn settle(self) -> Option<Event> {
        let counts = self.owner == FoldOwner::Unattributed && self.pending && !self.suppressed;
        counts.then_some(Event {
            ts: self.pending_ts,
            kind: EventKind::DbConnectError(Operation::Other),
            rule: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_real_traceback_lines() {
        let cases: [(&[u8], LineShape); 20] = [
            (b"Traceback (most recent call last):", LineShape::TracebackStart),
            (b"ERROR:    Traceback (most recent call last):", LineShape::TracebackStart),
            (b"ERROR:Traceback (most recent call last):", LineShape::Other),
            (
                b"  File \"/usr/lib/python3.13/site-packages/httpx/_transports/default.py\", line 101, in map_httpcore_exceptions",
                LineShape::Indented,
            ),
            (b"    yield", LineShape::Indented),
            (b"           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^", LineShape::Indented),
            (b"\t^^^^", LineShape::Indented),
            (b"", LineShape::Blank),
            (b"   ", LineShape::Blank),
            (
                b"The above exception was the direct cause of the following exception:",
                LineShape::ChainMarker,
            ),
            (
                b"During handling of the above exception, another exception occurred:",
                LineShape::ChainMarker,
            ),
            (b"httpx.ConnectError: All connection attempts failed", LineShape::ExceptionLine),
            (b"httpcore.ConnectError: All connection attempts failed", LineShape::ExceptionLine),
            (b"KeyboardInterrupt", LineShape::ExceptionLine),
            (b"ValueError: bad", LineShape::ExceptionLine),
            (b"Error: All connection attempts failed.", LineShape::BareError),
            (b"INFO:     Uvicorn running on http://0.0.0.0:4000", LineShape::Other),
            (b"ERROR:    Application startup failed. Exiting.", LineShape::Other),
            (
                b"litellm.proxy.proxy_server.py::ProxyConfig:add_deployment - All connection attempts failed",
                LineShape::Other,
            ),
            (
                "\u{2026} (litellm_truncated skipped 1397 chars. \u{2026})".as_bytes(),
                LineShape::TruncationMarker,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(shape(line), want, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn log_lines_are_not_exception_lines() {
        for line in [
            &b"18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor: x"[..],
            b"Error in spend logs queue monitor: All connection attempts failed",
            b"Budget lookup failed for user; cache will not be populated.",
            b"Job \"update_spend (trigger: interval[0:00:10])\" raised an exception",
            b"{\"message\": \"x\"}",
            b"prisma:warn Prisma doesn't know which engines to download",
            b"pkg.: trailing dot",
            b"\xff\xfe binary",
        ] {
            assert_eq!(shape(line), LineShape::Other, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn fold_follows_a_chained_traceback_and_stops_after_it() {
        let mut fold = Fold::after_header(FoldOwner::Operation(Operation::SpendLogsQueue), false);
        let lines: [&[u8]; 12] = [
            b"Traceback (most recent call last):",
            b"  File \"/x/httpx/_transports/default.py\", line 101, in map_httpcore_exceptions",
            b"    yield",
            b"httpcore.ConnectError: All connection attempts failed",
            b"",
            b"The above exception was the direct cause of the following exception:",
            b"",
            b"Traceback (most recent call last):",
            b"  File \"litellm/proxy/utils.py\", line 3880, in update_spend_logs",
            b"    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates)",
            b"    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            b"httpx.ConnectError: All connection attempts failed",
        ];
        for line in lines {
            assert!(
                fold.advance(shape(line)),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(fold.phase, Phase::AfterException);
        // Anything but a chain marker, blank or Traceback now ends the fold.
        assert!(!fold.clone().advance(shape(b"    indented after the end")));
        assert!(!fold.clone().advance(shape(b"RuntimeError: another")));
        assert!(!fold.advance(shape(b"INFO:     10.0.0.7:1 - \"GET / HTTP/1.1\" 200 OK")));
    }

    #[test]
    fn bare_error_line_only_directly_after_a_header() {
        let mut fold = Fold::after_header(FoldOwner::Operation(Operation::BudgetLookup), false);
        assert!(fold.advance(shape(b"Error: All connection attempts failed.")));
        assert!(!fold.clone().advance(shape(b"Error: a second one")));
        let mut traceback = Fold::unattributed();
        assert!(traceback.advance(shape(b"  File \"x.py\", line 1, in f")));
        assert!(traceback.advance(shape(b"Error: raised as Error")));
        assert_eq!(traceback.phase, Phase::AfterException);
    }

    #[test]
    fn header_then_unrelated_line_ends_the_fold() {
        let mut fold = Fold::after_header(FoldOwner::Silent, false);
        assert!(!fold.advance(shape(
            b"Budget lookup failed for team; cache will not be populated."
        )));
    }

    #[test]
    fn settle_reports_only_unsuppressed_unattributed_wordings() {
        let mut fold = Fold::unattributed();
        assert_eq!(fold.clone().settle(), None);
        fold.pending = true;
        fold.pending_ts = Some(Timestamp(7));
        assert_eq!(
            fold.clone().settle(),
            Some(Event {
                ts: Some(Timestamp(7)),
                kind: EventKind::DbConnectError(Operation::Other),
                rule: None,
            })
        );
        fold.suppressed = true;
        assert_eq!(fold.settle(), None);
        let mut owned = Fold::after_header(FoldOwner::Operation(Operation::UpdateSpend), false);
        owned.pending = true;
        assert_eq!(owned.settle(), None);
    }
}
