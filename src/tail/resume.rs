//! Resuming where reading stopped: positions of closed files kept for a
//! while ([`RetainedPosition`]), checkpointed positions matched to the
//! files found at start-up, copies of content already read, and files
//! rotated (renamed, compressed) while the agent was down. Apart from the
//! tailer's passes because it runs only when a file (re)appears.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::file::{self, FileId, FileKey, Lifecycle, TailedFile};
use super::{Deliver, FilePosition, ReadErrorReason, TailSink, Tailer};

/// The position of a file that left the tracked set (drained after a
/// rotation, no longer matched after a reload, closed after a read error),
/// kept for [`RETAIN_FOR`] so that the same content matching again (the glob
/// re-added, a glob that also matches rotated names, a reopen after fd
/// exhaustion, a restart) resumes where it stopped instead of at 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetainedPosition {
    pub position: FilePosition,
    /// Unix seconds when the file was closed (retention is wall-clock, so it survives restarts).
    pub closed_at: u64,
}

/// How long a closed file's position is remembered.
pub const RETAIN_FOR: Duration = Duration::from_secs(24 * 3600);

/// At most this many closed files are remembered (oldest forgotten first):
/// bounds the checkpoint when kubelet rotates fast.
pub const RETAIN_MAX: usize = 4096;

/// Remembers where some content stopped being read, replacing an older
/// entry of the same identity.
pub(super) fn retain_into(
    retained: &mut std::collections::VecDeque<RetainedPosition>,
    position: FilePosition,
) {
    if position.id.fingerprint.is_none() {
        // Without a known first line the identity is too weak to resume on.
        return;
    }
    retained.retain(|r| r.position.id != position.id);
    if retained.len() >= RETAIN_MAX {
        retained.pop_front();
    }
    retained.push_back(RetainedPosition {
        position,
        closed_at: unix_now(),
    });
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Tailer {
    /// Restores the positions of closed files from the checkpoint (expired ones are dropped).
    pub fn restore_retained(&mut self, retained: Vec<RetainedPosition>) {
        self.changes = self.changes.wrapping_add(1);
        let now = unix_now();
        self.retained = retained
            .into_iter()
            .filter(|r| now.saturating_sub(r.closed_at) < RETAIN_FOR.as_secs())
            .collect();
        while self.retained.len() > RETAIN_MAX {
            self.retained.pop_front();
        }
    }

    /// Remembers where a file stopped (it is no longer followed).
    pub(super) fn retain(&mut self, position: FilePosition) {
        self.changes = self.changes.wrapping_add(1);
        retain_into(&mut self.retained, position);
    }

    /// Positions of closed files, for the checkpoint.
    pub fn retained(&self) -> Vec<RetainedPosition> {
        let now = unix_now();
        self.retained
            .iter()
            .filter(|r| now.saturating_sub(r.closed_at) < RETAIN_FOR.as_secs())
            .cloned()
            .collect()
    }

    /// A file we never followed whose first line is that of content we read
    /// in the same directory (a copytruncate copy `0.log.1` of `0.log`, or
    /// a copy matched by a glob that also matches rotated names): it starts
    /// where that content was read up to, not at 0.
    pub(super) fn copy_of_read_content(&self, f: &TailedFile) -> Option<FilePosition> {
        let fp = f.fingerprint?;
        let dir = f.path.parent();
        let same = |id: &FileId, path: &Path| {
            id.fingerprint == Some(fp)
                && (id.dev, id.ino) != (f.key.dev, f.key.ino)
                && path.parent() == dir
        };
        let followed = self
            .files
            .values()
            .filter(|o| same(&o.id(), &o.path))
            .map(|o| FilePosition {
                id: f.id(),
                path: f.path.clone(),
                offset: o.committed_offset(),
            });
        let closed = self
            .retained
            .iter()
            .map(|r| &r.position)
            .chain(self.restored.iter())
            .filter(|p| same(&p.id, &p.path))
            .map(|p| FilePosition {
                id: f.id(),
                path: f.path.clone(),
                offset: p.offset,
            });
        // A copy holds at least what was read of the original; a file that
        // is shorter is something else that merely starts the same way.
        let size = f.size().unwrap_or(0);
        followed
            .chain(closed)
            .filter(|p| p.offset <= size)
            .max_by_key(|p| p.offset)
    }

    /// Finds and removes the checkpointed position of a file with this
    /// identity: first the checkpoint's open files, then closed files kept
    /// for [`RETAIN_FOR`] (those need the same content, fingerprint included).
    pub(super) fn take_resume(&mut self, id: FileId) -> Option<FilePosition> {
        if let Some(i) = self.pending_resume.iter().position(|p| {
            p.id.dev == id.dev
                && p.id.ino == id.ino
                && (p.id.fingerprint.is_none() || p.id.fingerprint == id.fingerprint)
        }) {
            return Some(self.pending_resume.swap_remove(i));
        }
        let i = self
            .retained
            .iter()
            .position(|r| r.position.id == id && id.fingerprint.is_some())?;
        self.retained.remove(i).map(|r| r.position)
    }

    /// Checkpointed files that are no longer under their name: rotated while
    /// the agent was down. Finish them from their siblings (`N.log.<ts>`, or
    /// its `.gz`) so no line of the rotation window is lost.
    pub(super) fn resume_rotated<S: TailSink + ?Sized>(&mut self, sink: &mut S) {
        let pending = std::mem::take(&mut self.pending_resume);
        for pos in pending {
            // Not found anywhere now (the glob was removed while we were down,
            // the directory is unreadable): remembered, in case it comes back.
            let Some(siblings) = rotated_siblings(&pos.path) else {
                self.retain(pos);
                continue;
            };
            // The checkpointed content's unread tail: under a rotated name, or compressed.
            let mut tail_found = false;
            for sib in siblings {
                if sib.extension().is_some_and(|e| e == "gz") {
                    if !tail_found
                        && file::fingerprint_of_path(&sib).ok().flatten() == pos.id.fingerprint
                        && pos.id.fingerprint.is_some()
                    {
                        tail_found = true;
                        self.catch_up_compressed(&pos, &sib, sink);
                    }
                } else if let Ok(f) = TailedFile::open(&sib, pos.offset, self.cfg.max_line_bytes) {
                    self.resume_sibling(&pos, f, &sib, &mut tail_found, sink);
                }
            }
            if !tail_found {
                self.retain(pos);
            }
        }
    }

    /// Reads the unread tail of `pos` from its compressed copy `sib`, then
    /// closes it.
    fn catch_up_compressed<S: TailSink + ?Sized>(
        &mut self,
        pos: &FilePosition,
        sib: &Path,
        sink: &mut S,
    ) {
        let mut key = FileKey {
            dev: pos.id.dev,
            ino: pos.id.ino,
        };
        if self.files.contains_key(&key) {
            // That inode lives on with new content (copytruncate, or
            // reused): a key of its own, so the live file keeps its
            // consumer. Opened, read and closed right here, so this
            // key (no real device is u64::MAX) is never used twice.
            key = FileKey {
                dev: u64::MAX,
                ino: pos.id.ino,
            };
        }
        sink.opened(key, pos.id, sib, true);
        let mut h = Deliver {
            sink: &mut *sink,
            key,
            lines: 0,
        };
        let r = file::read_whole(sib, pos.offset, self.cfg.max_line_bytes, &mut h);
        self.stats.lines_read += h.lines;
        if let Err(e) = r {
            sink.read_error(sib, ReadErrorReason::of(&e));
        }
        tracing::info!(path = %sib.display(), "caught up on a file compressed while the agent was down");
        sink.closed(key);
    }

    /// A rotated (uncompressed) sibling `sib`, opened at `pos`'s offset:
    /// when it is the checkpointed inode, drains it — the unread tail
    /// (once: `tail_found`), or new content from its start or from where a
    /// copy of it was read.
    fn resume_sibling<S: TailSink + ?Sized>(
        &mut self,
        pos: &FilePosition,
        mut f: TailedFile,
        sib: &Path,
        tail_found: &mut bool,
        sink: &mut S,
    ) {
        if f.key.dev != pos.id.dev || f.key.ino != pos.id.ino || self.files.contains_key(&f.key) {
            return;
        }
        // Same inode, but truncated in place (copytruncate) before
        // it was renamed: new content, read from its start.
        let replaced = f.committed_offset() < pos.offset
            || (pos.id.fingerprint.is_some() && f.fingerprint != pos.id.fingerprint);
        // Or the inode was freed and reused by a copy of
        // content we did read (logrotate's copy of a file
        // whose old inode we had just closed): from where
        // that content was read up to.
        let copy = if replaced || pos.id.fingerprint.is_none() {
            self.copy_of_read_content(&f)
        } else {
            None
        };
        if replaced || copy.is_some() {
            let start = copy.map_or(0, |p| p.offset);
            if let Err(e) = f.seek_to(start) {
                sink.read_error(sib, ReadErrorReason::of(&e));
                return;
            }
        } else if *tail_found {
            return;
        } else {
            *tail_found = true;
        }
        f.lifecycle = Lifecycle::Draining;
        sink.opened(f.key, f.id(), sib, !replaced);
        if replaced {
            sink.truncated(f.key);
        }
        let key = f.key;
        self.files.insert(key, f);
        self.read_file(key, false, false, sink);
    }
}

/// The siblings of `path` in its directory named `<its name>.<suffix>`
/// (kubelet's `N.log.<ts>` and its `.gz`), sorted; None when the path has
/// no directory or name, or the directory cannot be read.
fn rotated_siblings(path: &Path) -> Option<Vec<PathBuf>> {
    let dir = path.parent()?;
    let name = path.file_name().and_then(|n| n.to_str())?;
    let entries = std::fs::read_dir(dir).ok()?;
    let mut siblings: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(name) && n.len() > name.len() && n.as_bytes()[name.len()] == b'.'
            })
        })
        .collect();
    siblings.sort();
    Some(siblings)
}
