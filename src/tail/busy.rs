//! Files written continuously are read on a cadence instead of on events.
//!
//! Every write to a watched directory queues an IN_MODIFY event, and reading
//! and routing those was a sixth of the agent's CPU at 500 busy pods. A file
//! that is read every other tick anyway (see [`super::BUSY_REREAD`]) gains
//! nothing from them: while it stays busy, its directory's IN_MODIFY and
//! IN_CLOSE_WRITE are turned off (with no event a child can raise in the
//! mask, the kernel also stops touching the directory on every read and
//! write of the file) and the file is read on every pass it is due. The first read
//! that comes back empty turns the events on again and reads once more (a
//! write in between raised no event). Only a file alone in its directory is
//! polled, and a rescan (a rotation, a new pod) re-arms any directory whose
//! file is no longer alone or active: a name appearing is heard either way.

use super::file::Lifecycle;
use super::{FileKey, Tailer};

impl Tailer {
    /// `key` was written again within [`super::BUSY_REREAD`] of its last
    /// read: read it on the cadence, and stop its directory's write events.
    pub(super) fn poll_busy(&mut self, key: FileKey) {
        if self.polled.contains_key(&key) {
            return;
        }
        let (Some(w), Some(f)) = (self.watcher.as_mut(), self.files.get(&key)) else {
            return;
        };
        if !f.alone_in_dir || f.lifecycle != Lifecycle::Active {
            return;
        }
        let Some(dir) = f.path.parent() else {
            return;
        };
        if w.hear_writes(dir, false) {
            self.polled.insert(key, dir.to_path_buf());
        }
    }

    /// Hears `key`'s writes again (it went quiet, or closes). Returns
    /// whether it was polled: then it must be read once more, as a write
    /// since its last read raised no event.
    pub(super) fn unpoll(&mut self, key: FileKey) -> bool {
        let Some(dir) = self.polled.remove(&key) else {
            return false;
        };
        if let Some(w) = self.watcher.as_mut() {
            w.hear_writes(&dir, true);
        }
        true
    }

    /// After a scan: which files share a directory now, and every polled
    /// file that is no longer alone or active hears its writes again (and
    /// is read on this pass).
    pub(super) fn recheck_polled(&mut self) {
        if self.watcher.is_none() {
            return; // polling every second: nothing is ever polled on the cadence
        }
        use std::hash::{Hash, Hasher};
        // By a hash of the directory, not the path itself (no 5,000 path
        // copies per scan): a collision only keeps two files from polling.
        let dir_of = |f: &super::TailedFile| {
            let mut h = rustc_hash::FxHasher::default();
            f.path.parent().hash(&mut h);
            h.finish()
        };
        let mut per_dir: rustc_hash::FxHashMap<u64, u32> = rustc_hash::FxHashMap::default();
        for f in self.files.values() {
            *per_dir.entry(dir_of(f)).or_default() += 1;
        }
        for f in self.files.values_mut() {
            f.alone_in_dir = per_dir.get(&dir_of(f)) == Some(&1);
        }
        let files = &self.files;
        let stale: Vec<FileKey> = self
            .polled
            .keys()
            .filter(|k| {
                !files
                    .get(k)
                    .is_some_and(|f| f.alone_in_dir && f.lifecycle == Lifecycle::Active)
            })
            .copied()
            .collect();
        for key in stale {
            if self.unpoll(key) {
                self.dirty.push(key);
            }
        }
    }
}
