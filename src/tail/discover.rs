//! Finding the files to follow, and the directories to watch for new ones.
//!
//! Only directories that can lead to a match are watched (for
//! `/var/log/pods/*_*litellm*_*/*/*.log`: the pods root, matching pod
//! directories and their container directories), never whole trees, so a
//! chatty unrelated pod on the node does not wake the agent up.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::file::FileKey;

/// Expands the globs into the regular files they match, sorted, deduplicated,
/// each with the device+inode its path names right now (the stat is needed
/// to tell files from directories anyway; it also tells a rotation apart).
/// Unreadable paths are reported through `on_error` and skipped.
pub fn expand(
    globs: &[String],
    on_error: &mut dyn FnMut(&Path, std::io::Error),
) -> Vec<(PathBuf, FileKey, u64)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for g in globs {
        let Ok(paths) = glob::glob(g) else { continue };
        for entry in paths {
            match entry {
                // A compressed generation is a finished copy of content read
                // under its plain name (or caught up on at start, see
                // `Tailer::resume_rotated`): never followed as text.
                Ok(p) if p.extension().is_some_and(|e| e == "gz") => {}
                Ok(p) => {
                    match std::fs::metadata(&p) {
                        Ok(m) if m.is_file() => {
                            if seen.insert(p.clone()) {
                                let key = FileKey {
                                    dev: m.dev(),
                                    ino: m.ino(),
                                };
                                out.push((p, key, m.len()));
                            }
                        }
                        Ok(_) => on_error(&p, std::io::Error::other("not a regular file")),
                        // A dangling symlink or a file gone since the directory was read.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => on_error(&p, e),
                    }
                }
                Err(e) => {
                    let path = e.path().to_path_buf();
                    on_error(&path, e.into());
                }
            }
        }
    }
    out.sort();
    out
}

/// Every existing directory that a glob's match could live in or under.
pub fn dirs_to_watch(globs: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for g in globs {
        let path = Path::new(g);
        let comps: Vec<Component> = path.components().collect();
        if comps.len() < 2 {
            continue;
        }
        // Prefixes of the pattern's directory part: /var/log/pods, /var/log/pods/*_*litellm*_*, …
        // from the glob's base (the deepest directory before the first pattern
        // component) down. Not its ancestors (`/`, `/var`, `/var/log`): any
        // file created there would wake the agent for a needless full rescan
        // (on a busy /tmp that was most of the idle CPU). A base created later
        // is found by the periodic full pass.
        let dir_comps = &comps[..comps.len() - 1];
        let base = dir_comps
            .iter()
            .position(|c| c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .unwrap_or(dir_comps.len())
            .saturating_sub(1);
        let mut prefix = PathBuf::new();
        for (i, c) in dir_comps.iter().enumerate() {
            prefix.push(c.as_os_str());
            if i < base {
                continue;
            }
            let s = prefix.to_string_lossy().to_string();
            if s.contains(['*', '?', '[']) {
                if let Ok(paths) = glob::glob(&s) {
                    for p in paths.flatten() {
                        if p.is_dir() && seen.insert(p.clone()) {
                            out.push(p);
                        }
                    }
                }
            } else if prefix.is_dir() && seen.insert(prefix.clone()) {
                out.push(prefix.clone());
            }
        }
    }
    out
}

/// What one read of the inotify queue found.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// Files written to (IN_MODIFY, IN_CLOSE_WRITE), by path.
    pub changed: Vec<PathBuf>,
    /// Something was created, removed or renamed (or the queue overflowed):
    /// rescan the globs and re-check which inode each path names.
    pub structure: bool,
}

/// The tail loop's own inotify instance: a non-recursive watch per directory
/// that can hold a match, and a wd → directory table. Read by the tail thread
/// itself once per tick (no watcher thread, no channel, no allocation per
/// event beyond the changed path).
pub struct DirWatcher {
    inotify: inotify::Inotify,
    /// Directory of each watch descriptor.
    dirs: HashMap<inotify::WatchDescriptor, PathBuf>,
    watched: HashMap<PathBuf, inotify::WatchDescriptor>,
    buf: Vec<u8>,
}

/// What the tail loop needs to hear about: writes, the end of a writer, and
/// names appearing, vanishing or moving. Not IN_OPEN/IN_ACCESS (our own reads
/// and `opendir` would wake us), not IN_ATTRIB.
fn watch_mask() -> inotify::WatchMask {
    use inotify::WatchMask as M;
    M::MODIFY
        | M::CLOSE_WRITE
        | M::CREATE
        | M::DELETE
        | M::MOVED_FROM
        | M::MOVED_TO
        | M::DELETE_SELF
        | M::MOVE_SELF
        | M::ONLYDIR
        | M::EXCL_UNLINK
}

impl DirWatcher {
    /// A new inotify instance (fails when `max_user_instances` is exhausted).
    pub fn new() -> std::io::Result<DirWatcher> {
        Ok(DirWatcher {
            inotify: inotify::Inotify::init()?,
            dirs: HashMap::new(),
            watched: HashMap::new(),
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Adds watches for directories not watched yet; forgets vanished ones.
    /// Returns the errors of watches that could not be added (those
    /// directories are polled instead, see [`crate::tail::Tailer`]).
    pub fn watch_dirs(&mut self, dirs: &[PathBuf]) -> Vec<std::io::Error> {
        let mut errors = Vec::new();
        let wanted: HashSet<&PathBuf> = dirs.iter().collect();
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|d| !wanted.contains(d))
            .cloned()
            .collect();
        for d in gone {
            if let Some(wd) = self.watched.remove(&d) {
                self.dirs.remove(&wd);
                // Fails harmlessly when the directory is gone (the kernel dropped the watch).
                let _ = self.inotify.watches().remove(wd);
            }
        }
        for d in dirs {
            if !self.watched.contains_key(d) {
                match self.inotify.watches().add(d, watch_mask()) {
                    Ok(wd) => {
                        // A directory replaced under the same name gets a new wd;
                        // the same inode under two names shares one.
                        self.dirs.insert(wd.clone(), d.clone());
                        self.watched.insert(d.clone(), wd);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        errors
    }

    /// Number of directories watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// True when no directory is watched.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Waits up to `timeout` for the inotify fd to become readable. Returns
    /// true when there are events to read.
    pub fn wait_readable(&self, timeout: std::time::Duration) -> std::io::Result<bool> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.inotify, PollFlags::IN)];
        // A timeout too large for a timespec waits without limit.
        let timeout = Timespec::try_from(timeout).ok();
        match poll(&mut fds, timeout.as_ref()) {
            Ok(n) => Ok(n > 0 && fds[0].revents().contains(PollFlags::IN)),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads every queued event without blocking into `out`.
    pub fn drain(&mut self, out: &mut Wakeups) -> std::io::Result<()> {
        use inotify::EventMask as E;
        loop {
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut ignored = Vec::new();
            for ev in events {
                if ev.mask.contains(E::Q_OVERFLOW) {
                    // Events were lost: only a rescan knows what happened.
                    out.structure = true;
                    continue;
                }
                if ev.mask.intersects(E::IGNORED) {
                    ignored.push(ev.wd.clone());
                }
                if ev.mask.intersects(
                    E::CREATE
                        | E::DELETE
                        | E::MOVED_FROM
                        | E::MOVED_TO
                        | E::DELETE_SELF
                        | E::MOVE_SELF
                        | E::IGNORED,
                ) {
                    out.structure = true;
                }
                if ev.mask.intersects(E::MODIFY | E::CLOSE_WRITE) {
                    if let (Some(dir), Some(name)) = (self.dirs.get(&ev.wd), ev.name) {
                        out.changed.push(dir.join(name));
                    }
                }
            }
            for wd in ignored {
                // The kernel dropped this watch (directory deleted or
                // unmounted): forget it so the next refresh re-adds the name.
                if let Some(d) = self.dirs.remove(&wd) {
                    self.watched.remove(&d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_only_directories_on_the_glob_path() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("llm_litellm-0_u1/litellm")).unwrap();
        std::fs::create_dir_all(r.join("other_redis-0_u2/redis")).unwrap();
        std::fs::write(r.join("llm_litellm-0_u1/litellm/0.log"), b"x\n").unwrap();
        std::fs::write(r.join("other_redis-0_u2/redis/0.log"), b"x\n").unwrap();
        let g = vec![format!("{}/*_*litellm*_*/*/*.log", r.display())];
        let dirs = dirs_to_watch(&g);
        assert!(dirs.contains(&r.to_path_buf()));
        // Not the base's ancestors (`/tmp`, `/`): activity there is not ours.
        assert!(!dirs.iter().any(|d| r.starts_with(d) && d != r), "{dirs:?}");
        assert!(dirs.contains(&r.join("llm_litellm-0_u1")));
        assert!(dirs.contains(&r.join("llm_litellm-0_u1/litellm")));
        assert!(!dirs.iter().any(|d| d.to_string_lossy().contains("redis")));
        let files: Vec<PathBuf> = expand(&g, &mut |_, _| {})
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
        assert_eq!(files, vec![r.join("llm_litellm-0_u1/litellm/0.log")]);
    }

    #[test]
    fn directory_named_like_a_log_is_reported_not_followed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/0.log")).unwrap();
        let g = vec![format!("{}/*/*.log", root.path().display())];
        let mut errs = 0;
        assert!(expand(&g, &mut |_, _| errs += 1).is_empty());
        assert_eq!(errs, 1);
    }
}
