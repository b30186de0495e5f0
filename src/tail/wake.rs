//! Waiting for something to read: one `poll` on the tail loop's own
//! inotify fd, at most one pass per tick, and the events read straight
//! into the set of files to read.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::names::FileNames;
use super::{discover, FileKey, Tailer};

/// How long a wake-up waits for more inotify events before reading (latency it adds).
const COALESCE: Duration = Duration::from_millis(10);

/// While events keep arriving at the end of a tick, the pass waits for a
/// pause this long, for at most [`SETTLE_MAX`].
const SETTLE: Duration = Duration::from_millis(2);
const SETTLE_MAX: Duration = Duration::from_millis(10);

/// Passes driven by inotify start at most once per tick: a runtime writes
/// each line with its own `write`, and everything written to a file within
/// one tick (two for a file written continuously, see
/// [`super::BUSY_REREAD`]) is read with one `pread`. It bounds the latency
/// it adds too: a file written every 100 ms is read every ~180 ms, and an
/// append reaches `/metrics` within 250 ms at p99 (`make bench-live`).
/// The reads are most of the agent's CPU under load: 90 ms (75 before) cut
/// them by a sixth with that p99 at 170-210 ms; a 100 ms tick (a 200 ms
/// cadence) took it past 250 ms.
const TICK: Duration = Duration::from_millis(90);

// A file read on one tick is put off on the next and read on the one after.
const _: () = assert!(
    TICK.as_millis() < super::BUSY_REREAD.as_millis()
        && super::BUSY_REREAD.as_millis() < 2 * TICK.as_millis()
);

/// Reads the queued inotify events: followed files written to go to
/// `dirty`, other paths to `unknown` (looked up after the pass's rescan).
/// Returns whether something structural happened.
fn drain_into(
    w: &mut discover::DirWatcher,
    names: &mut FileNames,
    dirty: &mut Vec<FileKey>,
    unknown: &mut Vec<PathBuf>,
) -> std::io::Result<bool> {
    let watches = w.generation();
    w.drain(
        &mut |ev| match names.route(watches, ev.wd, ev.name, || ev.path()) {
            Ok(key) => dirty.push(key),
            Err(path) => unknown.push(path),
        },
    )
}

impl Tailer {
    /// Blocks until there is something to read or `max_wait` passes: one
    /// poll(2) on the tail loop's own inotify fd, then one non-blocking read
    /// of everything queued.
    pub fn wait(&mut self, max_wait: Duration) {
        let until_full = self
            .next_full_pass
            .saturating_duration_since(Instant::now());
        let mut timeout = until_full.min(max_wait);
        if !self.backlog.is_empty() {
            // More to read already: only pick up what inotify has queued.
            timeout = Duration::ZERO;
        } else if !self.deferred.is_empty() || !self.polled.is_empty() {
            // Files put off to the next tick, and busy files read without
            // events, are read then, written to or not.
            timeout = timeout.min(TICK.saturating_sub(self.last_pass.elapsed()));
        }
        let Some(w) = self.watcher.as_mut() else {
            std::thread::sleep(timeout);
            return;
        };
        let failed = match w.wait_readable(timeout) {
            Ok(false) => return,
            Ok(true) => {
                // Coalesce a burst of events into one pass, and at most one
                // pass a tick: writers append line by line, and one read per
                // tick costs far less than one per line. (Not while catching
                // up: there is enough to read already; not when asked not to
                // wait at all.)
                let settle = self.backlog.is_empty() && !max_wait.is_zero();
                if settle {
                    let rest_of_tick = TICK.saturating_sub(self.last_pass.elapsed());
                    std::thread::sleep(rest_of_tick.max(COALESCE).min(max_wait));
                }
                let settled = Instant::now();
                let mut structure = false;
                let mut drain = |w: &mut discover::DirWatcher| {
                    drain_into(w, &mut self.names, &mut self.dirty, &mut self.dirty_unknown)
                        .map(|s| structure |= s)
                        .err()
                };
                let mut failed = drain(w);
                // A tick that ends inside a burst of writes would read half
                // of the files now and the rest (with an empty read for each
                // event that came in between) next tick: while events keep
                // coming, wait a little longer (bounded).
                while failed.is_none() && settle && settled.elapsed() < SETTLE_MAX {
                    failed = match w.wait_readable(SETTLE) {
                        Ok(true) => drain(w),
                        Ok(false) => break,
                        Err(e) => Some(e),
                    };
                }
                self.rescan |= structure;
                failed
            }
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            tracing::warn!(error = %e, "inotify failed; falling back to polling every second");
            self.watcher = None;
            self.polled.clear();
            self.stats.polling = true;
            self.rescan = true;
        }
    }
}
