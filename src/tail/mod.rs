//! Following log files: discovery by glob, inotify wake-ups with a polling
//! safety net, rotation (rename+create, copytruncate, kubelet's `N.log.<ts>`
//! and its later `.gz`), deletion while open, and resumable positions.
//!
//! Input: globs and restored [`FilePosition`]s. Output: physical lines per
//! file, delivered to a [`TailSink`], and the positions to checkpoint. The
//! tailer knows nothing about formats or events.

mod busy;
pub mod discover;
pub mod file;
pub mod lines;
mod names;
mod resume;
mod sink;
mod wake;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

pub use file::{FileId, FileKey};
use file::{Lifecycle, TailedFile};
use resume::retain_into;
pub use resume::{RetainedPosition, RETAIN_FOR, RETAIN_MAX};
use sink::Deliver;
pub use sink::{ReadErrorReason, TailSink};

/// A checkpointed read position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilePosition {
    pub id: FileId,
    /// The path the file had when checkpointed (rotation may have renamed it since).
    pub path: PathBuf,
    /// Offset just after the last line delivered.
    pub offset: u64,
}

/// Tailer settings.
#[derive(Clone, Debug)]
pub struct TailConfig {
    /// Compiled once, when the settings are built.
    pub globs: Vec<discover::Glob>,
    pub max_line_bytes: usize,
    /// Full rescan interval (with inotify), or the polling interval (without).
    pub poll_interval: Duration,
    pub force_polling: bool,
    /// Files found at the very first start (no checkpoint) are read from their end.
    pub start_at_end: bool,
}

/// Counters the agent exports about itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct TailStats {
    pub files_watched: usize,
    pub lag_bytes: u64,
    pub bytes_read: u64,
    pub lines_read: u64,
    /// True when inotify could not be used and the tailer polls.
    pub polling: bool,
    /// Bytes of files that vanished before they could be read (a rotated
    /// generation deleted while its open failed, e.g. out of descriptors).
    pub rotated_bytes_unread: u64,
    /// Files read (one `pread` or more each): what the full pass spares
    /// an idle file, tests count here.
    pub file_reads: u64,
}

/// Full passes between two refreshes of the directory watches when nothing
/// structural happened (new directories announce themselves through inotify).
const WATCH_REFRESH_PASSES: u32 = 6;

/// Bytes read from one file per pass (as Vector's `max_read_bytes`): a file
/// growing faster than we read cannot starve the other files, the clocks
/// or the checkpoint; what is left is read on the next pass, right away.
pub(crate) const READ_BUDGET: u64 = 1024 * 1024;

/// Every this many full passes, each file's fingerprint is checked even if
/// its size did not change (2 minutes at the default `poll_interval`).
const VERIFY_EVERY_PASSES: u32 = 2;

/// Passes with nothing new before a rotated/deleted file is closed.
const DRAIN_IDLE_PASSES: u32 = 2;

/// A file whose last read delivered bytes less than this long ago is not
/// read on this tick but on the next: a file written continuously is read
/// every other tick (every ~180 ms, one `pread` for twice the lines: the
/// kernel's read path was half the agent's CPU under load), while the first
/// write after a pause is still read within one tick. Between one and two
/// ticks (`wake::TICK`), so that ticks a little late or early do not change
/// the cadence.
const BUSY_REREAD: Duration = Duration::from_millis(130);

/// Follows every file matching the globs.
pub struct Tailer {
    cfg: TailConfig,
    /// Looked up per inotify event and per read: a fast hasher (the keys
    /// are inode numbers and kubelet's paths, not a client's input).
    files: FxHashMap<FileKey, TailedFile>,
    names: names::FileNames,
    /// Positions restored from the checkpoint and not yet matched to a file.
    pending_resume: Vec<FilePosition>,
    /// Every position of the checkpoint (for recognising copies of content
    /// read before the restart); cleared after the first scan.
    restored: Vec<FilePosition>,
    /// Positions of files that left the tracked set, newest last.
    retained: std::collections::VecDeque<RetainedPosition>,
    first_scan: bool,
    watcher: Option<discover::DirWatcher>,
    /// Directory listings reused by full passes while unchanged.
    listings: discover::Listings,
    /// Some directory could not be watched (watch limit, permissions): full
    /// passes run at least once a second so nothing there waits for the
    /// 30 s safety rescan.
    watch_degraded: bool,
    /// Followed files inotify said were written to since the last pass.
    dirty: Vec<FileKey>,
    /// Written-to files read too recently to be read on the last pass
    /// (see [`BUSY_REREAD`]): read on the next one.
    deferred: Vec<FileKey>,
    /// Busy files read on the cadence with their directory's write events
    /// off, by key, with that directory (see `busy.rs`).
    polled: FxHashMap<FileKey, PathBuf>,
    /// Written-to paths that named no followed file when the event was
    /// read: looked up again after the pass's rescan.
    dirty_unknown: Vec<PathBuf>,
    /// Files that stopped at the read budget: read again on the next pass
    /// without waiting for inotify.
    backlog: FxHashSet<FileKey>,
    rescan: bool,
    /// Size and ctime of the followed files as the last scan stat'ed them.
    scan_sizes: FxHashMap<FileKey, (u64, (i64, i64))>,
    full_passes: u32,
    /// Counts passes (see [`TailedFile::seen_in_pass`]); 0 is never a pass.
    pass_no: u64,
    next_full_pass: Instant,
    /// When the last pass started (see `wake::TICK`).
    last_pass: Instant,
    /// Moves whenever a position the checkpoint holds may have changed.
    changes: u64,
    passes_since_watch_refresh: u32,
    buf: Vec<u8>,
    stats: TailStats,
    /// Paths that failed once: reported once, not on every pass.
    failed: FxHashSet<PathBuf>,
    /// Files matched but not opened (the open failed), with the inode and
    /// size last seen: if one vanishes, its bytes were never read.
    unopened: FxHashMap<PathBuf, (FileKey, u64)>,
    /// Inside an episode of unread losses (logged once per episode).
    losing: bool,
}

impl Tailer {
    /// A tailer resuming `restored` positions. `cfg.start_at_end` applies only
    /// to files present at this first scan and not in `restored`.
    pub fn new(cfg: TailConfig, restored: Vec<FilePosition>) -> Tailer {
        let watcher = if cfg.force_polling {
            None
        } else {
            match discover::DirWatcher::new() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify unavailable; falling back to polling every second");
                    None
                }
            }
        };
        let polling = watcher.is_none();
        Tailer {
            cfg,
            files: FxHashMap::default(),
            names: names::FileNames::default(),
            restored: restored.clone(),
            pending_resume: restored,
            retained: std::collections::VecDeque::new(),
            first_scan: true,
            watcher,
            listings: discover::Listings::default(),
            watch_degraded: false,
            dirty: Vec::new(),
            deferred: Vec::new(),
            polled: FxHashMap::default(),
            dirty_unknown: Vec::new(),
            backlog: FxHashSet::default(),
            rescan: true,
            scan_sizes: FxHashMap::default(),
            full_passes: 0,
            pass_no: 0,
            next_full_pass: Instant::now(),
            last_pass: Instant::now(),
            changes: 0,
            passes_since_watch_refresh: 0,
            buf: vec![0u8; 256 * 1024],
            stats: TailStats {
                polling,
                ..Default::default()
            },
            failed: FxHashSet::default(),
            unopened: FxHashMap::default(),
            losing: false,
        }
    }

    /// Makes the next pass a full one (every file read, the globs expanded,
    /// the fingerprints checked), as if the poll interval had passed.
    pub fn request_full_pass(&mut self) {
        self.next_full_pass = Instant::now();
    }

    /// Replaces the globs (config reload): new ones are picked up on the next pass,
    /// files no longer matched are drained and dropped.
    pub fn set_globs(&mut self, globs: Vec<discover::Glob>) {
        self.changes = self.changes.wrapping_add(1);
        self.cfg.globs = globs;
        self.rescan = true;
    }

    /// The interval of full passes: the configured one with inotify, at most
    /// 1 s when polling (no inotify, or some directory without a watch).
    fn full_pass_interval(&self) -> Duration {
        if self.watcher.is_some() && !self.watch_degraded {
            self.cfg.poll_interval
        } else {
            self.cfg.poll_interval.min(Duration::from_secs(1))
        }
    }

    /// Reads whatever is new. A full pass (every file, and a rescan of the
    /// globs) happens on the poll interval and after structural changes;
    /// otherwise only files inotify named are read.
    pub fn pass<S: TailSink + ?Sized>(&mut self, sink: &mut S) {
        self.last_pass = Instant::now();
        let full = self.last_pass >= self.next_full_pass;
        let structural = std::mem::take(&mut self.rescan);
        if full || structural {
            // Walking the globs for directories costs as much as for files:
            // only after a structural change, and now and then as a safety net.
            self.passes_since_watch_refresh += 1;
            let refresh = structural || self.passes_since_watch_refresh >= WATCH_REFRESH_PASSES;
            if refresh {
                self.passes_since_watch_refresh = 0;
            }
            self.scan(sink, refresh);
        }
        let keys: Vec<FileKey> = if full {
            self.next_full_pass = Instant::now() + self.full_pass_interval();
            self.full_passes = self.full_passes.wrapping_add(1);
            let verify = self.full_passes.is_multiple_of(VERIFY_EVERY_PASSES);
            // The scan just stat'ed every path: a followed file whose size
            // is where we are costs nothing more (no read, no fstat), except
            // for the fingerprint check every few passes (a copytruncate that
            // regrew to the very same size), which a ctime that has not moved
            // since the last check makes needless (on a node, that read of
            // each idle log's first page was disk I/O once evicted).
            let sizes = std::mem::take(&mut self.scan_sizes);
            self.deferred.clear();
            self.files
                .values_mut()
                .filter_map(|f| {
                    let seen = sizes.get(&f.key).copied();
                    let idle =
                        f.lifecycle == Lifecycle::Active && seen.is_some_and(|(n, _)| f.idle_at(n));
                    let ctime = seen.map(|(_, c)| c);
                    let unchanged = idle && ctime.is_some() && f.verified_ctime == ctime;
                    let check = verify && !unchanged;
                    if check {
                        f.verify_next = true;
                    }
                    if idle && (unchanged || check) {
                        f.verified_ctime = ctime;
                    }
                    (!idle || check).then_some(f.key)
                })
                .collect()
        } else {
            let mut keys = std::mem::take(&mut self.dirty);
            keys.append(&mut self.deferred);
            keys.extend(self.polled.keys().copied());
            let mut unknown = structural;
            for p in self.dirty_unknown.drain(..) {
                match self.names.get(&p) {
                    Some(k) => keys.push(k),
                    None => unknown = true,
                }
            }
            keys.extend(self.backlog.iter().copied());
            if unknown {
                // A write under a name we do not follow: most likely a rotated
                // file (inotify names it by its new name) that the runtime
                // still writes to. Draining files are few: read them all.
                keys.extend(
                    self.files
                        .values()
                        .filter(|f| f.lifecycle == Lifecycle::Draining)
                        .map(|f| f.key),
                );
            }
            keys
        };
        self.dirty.clear();
        self.dirty_unknown.clear();
        // A key may be listed more than once (written to and polled, put off
        // and polled): `read_listed` reads each once per pass, by a stamp
        // (sorting the list to drop repeats was 1.5 % of the agent under
        // `bench/live.sh`'s load).
        self.pass_no += 1;
        // Files stopped at the read budget are read on, however recently.
        let backlog = std::mem::take(&mut self.backlog);
        let may_defer = !full && !structural;
        let read_any = !keys.is_empty();
        for key in keys {
            let defer = may_defer && (backlog.is_empty() || !backlog.contains(&key));
            self.read_listed(key, full, defer, sink);
        }
        self.stats.files_watched = self.files.len();
        // From the sizes the reads saw (no fstat here: on every pass this sum
        // was most of the agent's CPU, docs/performance.md): fresh for every
        // file read in this pass, and for all of them after a full pass.
        // Nothing read, nothing changed (an idle wake-up skips the walk).
        if full || structural || read_any {
            self.stats.lag_bytes = self.files.values().map(|f| f.known_lag()).sum();
        }
    }

    /// [`Tailer::read_file`] for a key of the pass's list, unless the list
    /// named it before.
    fn read_listed<S: TailSink + ?Sized>(
        &mut self,
        key: FileKey,
        full: bool,
        defer: bool,
        sink: &mut S,
    ) {
        match self.files.get_mut(&key) {
            Some(f) if f.seen_in_pass != self.pass_no => f.seen_in_pass = self.pass_no,
            _ => return,
        }
        self.read_file(key, full, defer, sink);
    }

    /// Reads what is new in one file. `full`: on a full pass, where a
    /// draining file with nothing new counts towards its closing. `defer`:
    /// a file read less than [`BUSY_REREAD`] ago is put off to the next pass.
    fn read_file<S: TailSink + ?Sized>(
        &mut self,
        key: FileKey,
        full: bool,
        defer: bool,
        sink: &mut S,
    ) {
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        let now = self.last_pass;
        if defer
            && f.read_at
                .is_some_and(|at| now.saturating_duration_since(at) < BUSY_REREAD)
        {
            self.deferred.push(key);
            self.poll_busy(key);
            return;
        }
        let result = {
            let mut h = Deliver {
                sink: &mut *sink,
                key,
                lines: 0,
            };
            self.stats.file_reads += 1;
            let r = f.read_new(&mut self.buf, READ_BUDGET, &mut h);
            self.stats.lines_read += h.lines;
            r
        };
        let mut went_quiet = false;
        match result {
            Ok(st) => {
                if st.bytes > 0 || st.truncated {
                    self.changes = self.changes.wrapping_add(1);
                }
                if st.bytes > 0 {
                    f.read_at = Some(self.last_pass);
                }
                went_quiet = st.bytes == 0 && !st.truncated;
                self.stats.bytes_read += st.bytes;
                if st.more {
                    self.backlog.insert(key);
                }
                if st.truncated {
                    tracing::debug!(path = %f.path.display(), "file truncated in place; reading from 0");
                    sink.truncated(key);
                }
                if let Some(replaced) = st.replaced {
                    // A copy of the old content (copytruncate's `0.log.1`)
                    // must not be read again should a glob match it.
                    let path = f.path.clone();
                    retain_into(
                        &mut self.retained,
                        FilePosition {
                            id: replaced.0,
                            path,
                            offset: replaced.1,
                        },
                    );
                }
                if f.lifecycle == Lifecycle::Draining && (full || st.bytes > 0) {
                    f.idle_passes = if st.bytes == 0 { f.idle_passes + 1 } else { 0 };
                    if f.idle_passes >= DRAIN_IDLE_PASSES {
                        self.close(key, sink);
                    }
                }
            }
            Err(e) => {
                sink.read_error(&f.path, ReadErrorReason::of(&e));
                tracing::warn!(path = %f.path.display(), error = %e, "read failed; dropping file (its position is kept)");
                let unread = if f.deleted() { f.lag() } else { 0 };
                self.close(key, sink);
                // A deleted file's rest can never be read again; a named one
                // resumes at its kept position when it is opened next.
                self.count_unread(unread);
            }
        }
        // A polled file gone quiet: events again, and one more read for a
        // write that came before they were.
        if went_quiet && self.unpoll(key) {
            self.read_file(key, full, false, sink);
        }
    }

    fn close<S: TailSink + ?Sized>(&mut self, key: FileKey, sink: &mut S) {
        self.changes = self.changes.wrapping_add(1);
        self.unpoll(key);
        if let Some(mut f) = self.files.remove(&key) {
            // Still under its name (the glob no longer matches it, or a read
            // failed): it may match again, and its unfinished last line will
            // be read whole from the kept position then. Rotated away or
            // deleted: the writer has moved on, deliver what is left.
            let unfinished_is_final = !f.check_still_named();
            if unfinished_is_final {
                let mut h = Deliver {
                    sink: &mut *sink,
                    key,
                    lines: 0,
                };
                f.finish(&mut h);
                self.stats.lines_read += h.lines;
            }
            self.names.remove_if_names(&f.path, key);
            // A deleted file (no links left) can never match again; its inode may be reused.
            if !f.deleted() {
                self.retain(FilePosition {
                    id: f.id(),
                    path: f.path.clone(),
                    offset: f.committed_offset(),
                });
            }
            tracing::debug!(path = %f.path.display(), "file closed");
            sink.closed(key);
        }
    }

    /// Expands the globs, opens new files, and (first scan) resumes checkpointed ones.
    fn scan<S: TailSink + ?Sized>(&mut self, sink: &mut S, refresh_watches: bool) {
        let mut incomplete = false;
        let found = discover::expand(&self.cfg.globs, &mut self.listings, &mut |path, err| {
            incomplete = true;
            if self.failed.insert(path.to_path_buf()) {
                tracing::warn!(path = %path.display(), error = %err, "cannot read path");
                sink.read_error(path, ReadErrorReason::of(&err));
            }
        });
        if let Some(w) = self.watcher.as_mut().filter(|_| refresh_watches) {
            let errors = w.watch_dirs(&discover::dirs_to_watch(
                &self.cfg.globs,
                &mut self.listings,
            ));
            if !errors.is_empty() && !self.watch_degraded {
                tracing::warn!(error = %errors[0], unwatched = errors.len(), "cannot watch some directories (fs.inotify.max_user_watches?); polling every second instead");
                sink.read_error(Path::new(""), ReadErrorReason::Watch);
            }
            self.watch_degraded = !errors.is_empty();
        }
        let found_map: FxHashMap<&Path, FileKey> =
            found.iter().map(|f| (f.path.as_path(), f.key)).collect();
        self.scan_sizes = found.iter().map(|f| (f.key, (f.size, f.ctime))).collect();
        // A directory that could not be read (out of descriptors, say) hides
        // files that are still there: absence proves nothing this time.
        let absent = |p: &Path| !incomplete && !found_map.contains_key(p);
        let mut lost = 0u64;
        self.unopened
            .retain(|p, (k, size)| match found_map.get(p.as_path()) {
                Some(fk) if fk == k => true,
                None if !absent(p) => true,
                _ => {
                    lost += *size;
                    false
                }
            });
        self.count_unread(lost);
        // A path that names another inode now (rename rotation: the old
        // file is under its new name, a new file under the old), or nothing
        // (deleted, or no longer matched after a reload): drain what is
        // left of the file, then close it.
        let mut newly_draining = Vec::new();
        for f in self.files.values_mut() {
            let moved = match found_map.get(f.path.as_path()) {
                Some(k) => *k != f.key,
                None => absent(&f.path),
            };
            if f.lifecycle == Lifecycle::Active && moved {
                tracing::debug!(path = %f.path.display(), "file rotated or deleted; draining");
                f.lifecycle = Lifecycle::Draining;
                f.idle_passes = 0;
                newly_draining.push(f.key);
            }
        }
        self.names.retain(|p, k| match found_map.get(p) {
            Some(fk) => *fk == k,
            None => !absent(p),
        });
        // The old generation's last lines come before the new one's first.
        for key in newly_draining {
            self.read_file(key, false, false, sink);
        }
        // Grown once to what this scan found, not doubled step by step with
        // both tables alive at each step (the peak RSS of a first scan of
        // thousands of files).
        let more = found.len().saturating_sub(self.files.len());
        self.files.reserve(more);
        self.names.reserve(more);
        for discover::Found {
            path, key, size, ..
        } in &found
        {
            if self.names.contains(path) {
                continue;
            }
            if let Some(u) = self.unopened.get_mut(path) {
                u.1 = *size;
            }
            if let Some(f) = self.files.get_mut(key) {
                // A file we already follow, under a (new) matching name: the
                // same content, so it goes on from where it is, never from 0.
                if f.lifecycle == Lifecycle::Draining {
                    f.lifecycle = Lifecycle::Active;
                    f.path = path.clone();
                    self.names.insert(path.clone(), *key);
                }
                continue;
            }
            self.open_new(path, *key, *size, sink);
        }
        if self.first_scan {
            self.first_scan = false;
            self.changes = self.changes.wrapping_add(1);
            self.resume_rotated(sink);
            self.restored = Vec::new();
        }
        self.recheck_polled();
    }

    /// Counts bytes that will never be read, and says so once per episode.
    fn count_unread(&mut self, lost: u64) {
        if lost == 0 {
            self.losing = false;
            return;
        }
        self.stats.rotated_bytes_unread += lost;
        if !self.losing {
            self.losing = true;
            tracing::warn!(bytes = lost, "log files were rotated away and deleted before they could be read (see rotated_bytes_unread_total)");
        }
    }

    fn open_new<S: TailSink + ?Sized>(
        &mut self,
        path: &Path,
        key: FileKey,
        size: u64,
        sink: &mut S,
    ) {
        let mut f = match TailedFile::open(path, 0, self.cfg.max_line_bytes) {
            Ok(f) => f,
            Err(e) => {
                self.unopened.insert(path.to_path_buf(), (key, size));
                if self.failed.insert(path.to_path_buf()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open log file");
                    sink.read_error(path, ReadErrorReason::of(&e));
                }
                return;
            }
        };
        if self.files.contains_key(&f.key) {
            // Same inode under a second matching name (e.g. a /var/log/containers symlink).
            return;
        }
        self.failed.remove(path);
        self.unopened.remove(path);
        let mut resume = self.take_resume(f.id());
        if resume.is_none() {
            resume = self.copy_of_read_content(&f);
        }
        let len = f.size().unwrap_or(0);
        let mut truncated_while_down = false;
        let offset = match &resume {
            // Shorter than our position: truncated in place while we were down.
            Some(pos) if pos.offset > len => {
                truncated_while_down = true;
                0
            }
            Some(pos) => pos.offset,
            None if self.first_scan && self.cfg.start_at_end => len,
            None => 0,
        };
        if offset != 0 {
            if let Err(e) = f.seek_to(offset) {
                sink.read_error(path, ReadErrorReason::of(&e));
                return;
            }
        }
        tracing::debug!(path = %path.display(), offset, resumed = resume.is_some(), "following file");
        sink.opened(f.key, f.id(), path, resume.is_some());
        if truncated_while_down {
            sink.truncated(f.key);
        }
        self.changes = self.changes.wrapping_add(1);
        self.names.insert(path.to_path_buf(), f.key);
        let key = f.key;
        self.files.insert(key, f);
        // Read later in this same pass (once, within its budget).
        self.backlog.insert(key);
    }

    /// Positions of every open file, for the checkpoint.
    pub fn positions(&self) -> Vec<FilePosition> {
        self.files
            .values()
            .map(|f| FilePosition {
                id: f.id(),
                path: f.path.clone(),
                offset: f.committed_offset(),
            })
            .collect()
    }

    /// Self-monitoring numbers.
    pub fn stats(&self) -> TailStats {
        self.stats
    }

    /// A number that moves whenever the positions (and the per-file state
    /// read with them) may have changed: equal numbers, same checkpoint.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Paths currently followed (active and draining).
    pub fn paths(&self) -> impl Iterator<Item = (FileKey, &Path)> {
        self.files.values().map(|f| (f.key, f.path.as_path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::io::Write;

    /// Records what the tailer delivers; a line for a key that is not open is a bug.
    #[derive(Default)]
    struct Recorder {
        open: HashSet<FileKey>,
        lines: Vec<(FileKey, String)>,
    }

    impl TailSink for Recorder {
        fn opened(&mut self, key: FileKey, _id: FileId, _path: &Path, _resumed: bool) {
            self.open.insert(key);
        }
        fn line(&mut self, key: FileKey, line: &[u8], _truncated: bool) {
            assert!(self.open.contains(&key), "line for a key that is not open");
            self.lines
                .push((key, String::from_utf8_lossy(line).into_owned()));
        }
        fn truncated(&mut self, _key: FileKey) {}
        fn closed(&mut self, key: FileKey) {
            self.open.remove(&key);
        }
        fn read_error(&mut self, path: &Path, reason: ReadErrorReason) {
            panic!("read error {reason:?} on {}", path.display());
        }
    }

    impl Recorder {
        fn texts(&self) -> Vec<&str> {
            self.lines.iter().map(|(_, l)| l.as_str()).collect()
        }
    }

    fn config(dir: &Path) -> TailConfig {
        TailConfig {
            globs: vec![discover::Glob::new(&format!("{}/*.log", dir.display())).unwrap()],
            max_line_bytes: 1024,
            poll_interval: Duration::from_millis(10),
            force_polling: true,
            start_at_end: false,
        }
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    /// Reads `old-1`, leaves `old-2` unread, and returns the checkpoint.
    fn read_first_line_then_stop(dir: &Path, log: &Path) -> Vec<FilePosition> {
        append(log, "old-1\n");
        let mut t = Tailer::new(config(dir), Vec::new());
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        assert_eq!(rec.texts(), vec!["old-1"]);
        append(log, "old-2\n");
        t.positions()
    }

    fn copytruncate(log: &Path, to: &Path) {
        std::fs::copy(log, to).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(log)
            .unwrap();
    }

    #[test]
    fn compressed_copy_of_a_truncated_file_does_not_take_the_live_files_key() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        let saved = read_first_line_then_stop(d.path(), &log);
        // While down: logrotate copytruncate + compress.
        let copy = d.path().join("0.log.1");
        copytruncate(&log, &copy);
        append(&log, "new-1\n");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(d.path().join("0.log.1.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&std::fs::read(&copy).unwrap()).unwrap();
        enc.finish().unwrap();
        std::fs::remove_file(&copy).unwrap();

        let mut t = Tailer::new(config(d.path()), saved);
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        let mut got = rec.texts();
        got.sort();
        assert_eq!(got, vec!["new-1", "old-2"]);
        // The live file (same inode as the compressed content) is still followed.
        append(&log, "new-2\n");
        t.wait(Duration::from_millis(20));
        t.pass(&mut rec);
        assert_eq!(rec.texts().last(), Some(&"new-2"));
    }

    #[test]
    fn file_truncated_then_renamed_while_down_is_read_from_its_start() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        let saved = read_first_line_then_stop(d.path(), &log);
        // While down: copytruncate, new content shorter than the old offset, then a rename.
        copytruncate(&log, &d.path().join("0.log.1"));
        append(&log, "n\n");
        std::fs::rename(&log, d.path().join("0.log.20261124-101500")).unwrap();
        append(&log, "next\n");

        let mut t = Tailer::new(config(d.path()), saved);
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        let mut got = rec.texts();
        got.sort();
        assert_eq!(got, vec!["n", "next"]);
    }

    fn full_passes(t: &mut Tailer, rec: &mut Recorder, n: usize) {
        for _ in 0..n {
            t.next_full_pass = Instant::now();
            t.pass(rec);
        }
    }

    #[test]
    fn glob_removed_and_added_back_resumes_at_its_offset() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        append(&log, "a\nb\n");
        let cfg = config(d.path());
        let globs = cfg.globs.clone();
        let mut t = Tailer::new(cfg, Vec::new());
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        t.set_globs(Vec::new());
        full_passes(&mut t, &mut rec, 4);
        assert!(
            rec.open.is_empty(),
            "file still open after its glob went away"
        );
        assert_eq!(t.retained().len(), 1);
        append(&log, "c\n");
        // Back after a while, and even across a restart (through the checkpoint).
        let retained = t.retained();
        let mut t = Tailer::new(config(d.path()), Vec::new());
        t.restore_retained(retained);
        t.set_globs(globs);
        t.pass(&mut rec);
        assert_eq!(rec.texts(), vec!["a", "b", "c"]);
    }

    #[test]
    fn glob_matching_rotated_names_reads_each_line_once() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        append(&log, "a\n");
        let mut cfg = config(d.path());
        cfg.globs = vec![discover::Glob::new(&format!("{}/*", d.path().display())).unwrap()];
        let mut t = Tailer::new(cfg, Vec::new());
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        // Rename rotation: the old file matches under its new name.
        std::fs::rename(&log, d.path().join("0.log.20261124-101500")).unwrap();
        append(&d.path().join("0.log.20261124-101500"), "b\n");
        append(&log, "c\n");
        full_passes(&mut t, &mut rec, 3);
        // copytruncate: the copy holds content already read.
        copytruncate(&log, &d.path().join("0.log.1"));
        append(&log, "d\n");
        full_passes(&mut t, &mut rec, 3);
        // And its compressed copy is never read as text.
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(d.path().join("0.log.1.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(b"c\n").unwrap();
        enc.finish().unwrap();
        full_passes(&mut t, &mut rec, 3);
        let mut got = rec.texts();
        got.sort();
        assert_eq!(got, vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn copy_made_before_the_truncate_is_seen_is_not_read_again() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        append(&log, "a\nb\n");
        let mut cfg = config(d.path());
        cfg.globs = vec![discover::Glob::new(&format!("{}/*", d.path().display())).unwrap()];
        let mut t = Tailer::new(cfg, Vec::new());
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        // The truncation is noticed first (a read of 0.log), the copy later.
        let copy = d.path().join("0.log.1");
        std::fs::copy(&log, &copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
        append(&log, "c\n");
        let key = t.names.get(&log).unwrap();
        t.read_file(key, false, false, &mut rec);
        full_passes(&mut t, &mut rec, 2);
        assert_eq!(rec.texts(), vec!["a", "b", "c"]);
    }

    #[test]
    fn fifo_named_like_a_rotated_sibling_does_not_block() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        let saved = read_first_line_then_stop(d.path(), &log);
        std::fs::rename(&log, d.path().join("0.log.20261124-101500")).unwrap();
        let fifo = d.path().join("0.log.20261124-101400");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = d.path().to_path_buf();
        std::thread::spawn(move || {
            let mut t = Tailer::new(config(&dir), saved);
            let mut rec = Recorder::default();
            t.pass(&mut rec);
            let _ = tx.send(
                rec.texts()
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            );
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the tailer blocked on a FIFO");
        assert_eq!(got, vec!["old-2"]);
    }

    #[test]
    fn start_at_end_inside_a_line_skips_to_the_next_line() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        append(&log, "whole\nhalf a li");
        let mut cfg = config(d.path());
        cfg.start_at_end = true;
        let mut t = Tailer::new(cfg, Vec::new());
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        append(&log, "ne\nnext\n");
        full_passes(&mut t, &mut rec, 1);
        assert_eq!(rec.texts(), vec!["next"]);
    }

    #[test]
    fn flooding_file_cannot_starve_the_others() {
        let d = tempfile::tempdir().unwrap();
        let flood = d.path().join("a-flood.log");
        let line = "x".repeat(99) + "\n";
        let big: String = line.repeat(80_000); // 8 MB, eight read budgets
        append(&flood, &big);
        let quiet = d.path().join("b-quiet.log");
        append(&quiet, "the other pod's event\n");
        let mut t = Tailer::new(config(d.path()), Vec::new());
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        assert!(rec.texts().contains(&"the other pod's event"));
        let flood_lines = rec.lines.len() - 1;
        assert!(
            flood_lines * 100 <= (READ_BUDGET as usize) + 256 * 1024,
            "{flood_lines} lines of the flood in one pass"
        );
        // The rest follows on the next passes, without waiting for an event.
        let start = Instant::now();
        while rec.lines.len() < 80_001 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "backlog not drained"
            );
            t.wait(Duration::from_secs(5));
            t.pass(&mut rec);
        }
        assert_eq!(rec.lines.len(), 80_001);
    }

    /// A tailer on inotify (full passes an hour apart) that has read the
    /// line `a` of `<dir>/0.log`, and that file's key.
    fn inotify_tailer_after_a() -> (tempfile::TempDir, PathBuf, Tailer, Recorder, FileKey) {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        append(&log, "a\n");
        let cfg = TailConfig {
            poll_interval: Duration::from_secs(3600),
            force_polling: false,
            ..config(d.path())
        };
        let mut t = Tailer::new(cfg, Vec::new());
        let mut rec = Recorder::default();
        t.pass(&mut rec);
        assert_eq!(rec.texts(), vec!["a"]);
        let key = rec.lines[0].0;
        (d, log, t, rec, key)
    }

    /// As if `key` was read a moment ago (a read "in the future" keeps the
    /// tests independent of the machine's speed).
    fn read_just_now(t: &mut Tailer, key: FileKey) {
        t.files.get_mut(&key).unwrap().read_at = Some(Instant::now() + Duration::from_secs(60));
    }

    #[test]
    fn a_file_read_within_the_last_tick_is_read_on_the_next_exactly_once() {
        let (_dir, log, mut t, mut rec, key) = inotify_tailer_after_a();
        // As inotify reports a write within a tick of the last read.
        let written_right_after_a_read = |t: &mut Tailer, line: &str| {
            append(&log, line);
            t.dirty.push(key);
            read_just_now(t, key);
        };
        written_right_after_a_read(&mut t, "b\n");
        t.pass(&mut rec);
        assert_eq!(rec.texts(), vec!["a"], "read again within a tick");
        assert_eq!(t.deferred, vec![key]);
        // A tick later it is read, with no further write to announce it.
        t.files.get_mut(&key).unwrap().read_at = Instant::now().checked_sub(BUSY_REREAD);
        t.pass(&mut rec);
        assert_eq!(rec.texts(), vec!["a", "b"]);
        assert!(t.deferred.is_empty());
        // A full pass reads a deferred file too, and forgets the deferral.
        written_right_after_a_read(&mut t, "c\n");
        t.pass(&mut rec);
        assert_eq!(t.deferred, vec![key]);
        t.request_full_pass();
        t.pass(&mut rec);
        assert!(t.deferred.is_empty());
        // (Busy, it is polled: the next pass puts it off again, reading nothing twice.)
        t.pass(&mut rec);
        assert_eq!(rec.texts(), vec!["a", "b", "c"]);
    }

    #[test]
    fn an_idle_file_whose_ctime_stands_still_is_not_read_on_full_passes() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        append(&log, "a\n");
        let mut t = Tailer::new(config(d.path()), Vec::new());
        let mut rec = Recorder::default();
        let full_pass = |t: &mut Tailer, rec: &mut Recorder| {
            t.request_full_pass();
            t.pass(rec);
        };
        full_pass(&mut t, &mut rec);
        // The first passes check the fingerprint once at this ctime ...
        full_pass(&mut t, &mut rec);
        full_pass(&mut t, &mut rec);
        let reads = t.stats().file_reads;
        // ... and then leave the file alone, verifying passes included.
        for _ in 0..2 * VERIFY_EVERY_PASSES {
            full_pass(&mut t, &mut rec);
        }
        assert_eq!(
            t.stats().file_reads,
            reads,
            "an unchanged idle file was read"
        );
        // Anything that moves the ctime (here a chmod, as a copytruncate that
        // regrew to the same size would) gets it checked on a verifying pass.
        let ctime = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(p).unwrap();
            (m.ctime(), m.ctime_nsec())
        };
        let before = ctime(&log);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut mode = 0o600;
        while ctime(&log) == before {
            assert!(Instant::now() < deadline, "the ctime never moved");
            mode ^= 0o040;
            std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
        }
        for _ in 0..VERIFY_EVERY_PASSES {
            full_pass(&mut t, &mut rec);
        }
        assert_eq!(t.stats().file_reads, reads + 1);
        assert_eq!(rec.texts(), vec!["a"]);
    }

    #[test]
    fn a_busy_file_is_read_without_write_events_until_it_goes_quiet() {
        let (d, log, mut t, mut rec, key) = inotify_tailer_after_a();
        // The runtime keeps the file open (no IN_CLOSE_WRITE per line).
        let mut runtime = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let mut write = |text: &str| runtime.write_all(text.as_bytes()).unwrap();
        let events_queued = |t: &Tailer| {
            t.watcher
                .as_ref()
                .unwrap()
                .wait_readable(Duration::ZERO)
                .unwrap()
        };
        let read_long_ago = |t: &mut Tailer| {
            t.files.get_mut(&key).unwrap().read_at = Instant::now().checked_sub(BUSY_REREAD);
        };
        let until = |t: &mut Tailer, rec: &mut Recorder, line: &str| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !rec.texts().contains(&line) {
                assert!(Instant::now() < deadline, "{line} never read");
                t.wait(Duration::from_millis(200));
                t.pass(rec);
            }
        };
        // Written again right after a read: put off, and polled.
        write("b\n");
        t.wait(Duration::from_secs(1));
        read_just_now(&mut t, key);
        t.pass(&mut rec);
        assert!(t.polled.contains_key(&key));
        // Its writes queue no event now, nor does a writer closing it (the
        // directory's mask holds no event a child can raise: the kernel
        // skips the directory on each of our reads), and it is read all
        // the same.
        write("c\n");
        append(&log, "c2\n");
        assert!(
            !events_queued(&t),
            "a write to a polled file queued an event"
        );
        read_long_ago(&mut t);
        t.pass(&mut rec);
        assert_eq!(rec.texts(), vec!["a", "b", "c", "c2"]);
        assert!(t.polled.contains_key(&key));
        // An empty read: quiet; its writes are heard again.
        read_long_ago(&mut t);
        t.pass(&mut rec);
        assert!(t.polled.is_empty());
        write("d\n");
        assert!(events_queued(&t), "writes not heard again");
        until(&mut t, &mut rec, "d");
        // Polled again, then rotated: the new file's writes are heard, and
        // so are the runtime's last writes to the old one.
        write("e\n");
        t.wait(Duration::from_secs(1));
        read_just_now(&mut t, key);
        t.pass(&mut rec);
        assert!(t.polled.contains_key(&key));
        std::fs::rename(&log, d.path().join("0.log.1")).unwrap();
        append(&log, "f\n");
        until(&mut t, &mut rec, "f");
        assert!(t.polled.is_empty(), "a rotated file stayed polled");
        write("g\n");
        assert!(events_queued(&t), "the rotated file's writes are not heard");
        until(&mut t, &mut rec, "g");
        let mut texts = rec.texts();
        texts.sort_unstable();
        assert_eq!(texts, vec!["a", "b", "c", "c2", "d", "e", "f", "g"]);
    }
}
