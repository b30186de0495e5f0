//! Classification state of one file, kept between lines and saved in the
//! checkpoint: the open fold and remembered spend row count per stream, and
//! what the file's earlier lines told (LiteLLM family, engine PIDs seen).

use super::fold::Fold;
use super::{Event, VersionFamily};
use crate::format::Stream;
use crate::time::Timestamp;

/// A remembered `logs_count` older than this belongs to some other batch.
pub(super) const REMEMBERED_ROWS_MAX_AGE_NANOS: i64 = 300 * 1_000_000_000;

/// Engine PIDs remembered per file so a SIGTERM, SIGKILL and "is dead" line
/// about one engine count one restart.
pub(super) const ENGINE_PIDS_KEPT: usize = 8;

/// Per-stream state: the open fold and the remembered spend row count.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct StreamState {
    #[serde(default)]
    pub(super) fold: Option<Fold>,
    /// Record time of the open fold's newest line.
    #[serde(default)]
    pub(super) fold_last_ts: Option<Timestamp>,
    #[serde(default)]
    pub(super) remembered_rows: Option<RememberedRows>,
}

/// A `logs_count` from a 1.83 retry line, waiting for the batch's final error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct RememberedRows {
    pub(super) rows: u64,
    pub(super) ts: Option<Timestamp>,
}

impl StreamState {
    /// Takes the remembered count if it is recent enough to be this batch's.
    pub(super) fn take_remembered(&mut self, now: Option<Timestamp>) -> Option<u64> {
        let kept = self.remembered_rows.take()?;
        match (kept.ts, now) {
            (Some(then), Some(now))
                if now.0.saturating_sub(then.0) > REMEMBERED_ROWS_MAX_AGE_NANOS =>
            {
                None
            }
            _ => Some(kept.rows),
        }
    }
}

/// Classification state of one file: folds per stream plus the remembered
/// spend row count. Small; saved in the checkpoint with the file offset.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifyState {
    #[serde(default)]
    pub(super) stdout: StreamState,
    #[serde(default)]
    pub(super) stderr: StreamState,
    #[serde(default)]
    pub(super) unknown: StreamState,
    #[serde(default)]
    pub(super) facts: FileFacts,
}

/// What a file's earlier lines tell about the later ones, whatever the stream.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct FileFacts {
    /// The LiteLLM family the file's own lines showed (retry wordings).
    #[serde(default)]
    pub(super) version: Option<VersionFamily>,
    /// The engine PIDs whose loss was already counted, newest last.
    #[serde(default)]
    pub(super) engine_pids: Vec<u64>,
    /// The last counted line of a rule with `repeat_window_secs`: (rule, rows, time).
    #[serde(default)]
    pub(super) last_repeatable: Option<(u32, u64, Option<Timestamp>)>,
}

impl FileFacts {
    /// True the first time `pid` is seen (then remembered).
    pub(super) fn first_sight_of_engine(&mut self, pid: u64) -> bool {
        if self.engine_pids.contains(&pid) {
            return false;
        }
        if self.engine_pids.len() >= ENGINE_PIDS_KEPT {
            self.engine_pids.remove(0);
        }
        self.engine_pids.push(pid);
        true
    }
}

impl ClassifyState {
    pub(super) fn split(&mut self, stream: Stream) -> (&mut StreamState, &mut FileFacts) {
        let s = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
            Stream::Unknown => &mut self.unknown,
        };
        (s, &mut self.facts)
    }

    /// The LiteLLM family this file's lines showed so far, if any.
    pub fn version(&self) -> Option<VersionFamily> {
        self.facts.version
    }

    /// True when a traceback is being folded in some stream (its event may
    /// still be pending; see [`RulePack::finish`]).
    #[cfg(test)]
    pub(crate) fn has_open_fold(&self) -> bool {
        self.stdout.fold.is_some() || self.stderr.fold.is_some() || self.unknown.fold.is_some()
    }

    /// Whether a record of `stream` at `ts` can change a fold: its own
    /// stream's fold is open (the record may belong to it), or it is more
    /// than [`FOLD_SETTLE_NANOS`] newer than another stream's open fold
    /// (which it closes, see [`close_stale_folds`]). A record that cannot
    /// is classified as if no fold were open: the scanner may skip it on
    /// its literals alone. (After a DB error on stderr, the stdout access
    /// lines up to the next stderr line were all decoded: 7 % of the lines
    /// of `bench/live.sh`'s mix.)
    pub(crate) fn fold_concerns(&self, stream: Stream, ts: Option<Timestamp>) -> bool {
        [
            (Stream::Stdout, &self.stdout),
            (Stream::Stderr, &self.stderr),
            (Stream::Unknown, &self.unknown),
        ]
        .iter()
        .any(|(s, st)| {
            st.fold.is_some()
                && (*s == stream
                    || ts.is_some_and(|now| {
                        st.fold_last_ts
                            .is_some_and(|l| now.0.saturating_sub(l.0) > FOLD_SETTLE_NANOS)
                    }))
        })
    }
}

/// A traceback is written in one go: once a record of another stream of the
/// file is more than this much newer than a fold's last line, that fold is
/// complete (its deferred event must not wait for its own stream's next line,
/// which may come minutes later, after the gap it belongs to has closed).
pub(super) const FOLD_SETTLE_NANOS: i64 = 1_000_000_000;

/// Closes the folds of the other streams that `ts` shows complete.
pub(super) fn close_stale_folds<F: FnMut(Event)>(
    state: &mut ClassifyState,
    current: Stream,
    ts: Option<Timestamp>,
    emit: &mut F,
) {
    let Some(now) = ts else { return };
    for (stream, st) in [
        (Stream::Stdout, &mut state.stdout),
        (Stream::Stderr, &mut state.stderr),
        (Stream::Unknown, &mut state.unknown),
    ] {
        if stream == current || st.fold.is_none() {
            continue;
        }
        if st
            .fold_last_ts
            .is_some_and(|l| now.0.saturating_sub(l.0) > FOLD_SETTLE_NANOS)
        {
            close_fold(st, emit);
        }
    }
}

/// Ends the stream's fold, reporting its deferred event.
pub(super) fn close_fold<F: FnMut(Event)>(stream: &mut StreamState, emit: &mut F) {
    if let Some(event) = stream.fold.take().and_then(Fold::settle) {
        emit(event);
    }
}
