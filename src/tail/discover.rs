//! Finding the files to follow, and the directories to watch for new ones.
//!
//! Only directories that can lead to a match are watched (for
//! `/var/log/pods/*_*litellm*_*/*/*.log`: the pods root, matching pod
//! directories and their container directories), never whole trees, so a
//! chatty unrelated pod on the node does not wake the agent up.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};

use notify::{EventKind, RecursiveMode, Watcher};

/// A wake-up hint from inotify (the tailer re-checks everything it is told).
#[derive(Debug)]
pub enum WatchEvent {
    /// Data was written to this path.
    Changed(PathBuf),
    /// Something was created, removed or renamed: rescan the globs.
    Structure,
}

/// Expands the globs into the regular files they match, sorted, deduplicated.
/// Unreadable paths are reported through `on_error` and skipped.
pub fn expand(globs: &[String], on_error: &mut dyn FnMut(&Path, std::io::Error)) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for g in globs {
        let Ok(paths) = glob::glob(g) else { continue };
        for entry in paths {
            match entry {
                Ok(p) => {
                    match std::fs::metadata(&p) {
                        Ok(m) if m.is_file() => {
                            if seen.insert(p.clone()) {
                                out.push(p);
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

/// A non-recursive inotify watch set that grows as directories appear.
pub struct DirWatcher {
    watcher: notify::RecommendedWatcher,
    watched: HashSet<PathBuf>,
}

impl DirWatcher {
    /// Starts the watcher; events arrive on the returned channel.
    pub fn new() -> notify::Result<(DirWatcher, Receiver<WatchEvent>)> {
        let (tx, rx) = channel();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                let _ = tx.send(WatchEvent::Structure);
                return;
            };
            match ev.kind {
                EventKind::Modify(notify::event::ModifyKind::Data(_))
                | EventKind::Modify(notify::event::ModifyKind::Any) => {
                    for p in ev.paths {
                        let _ = tx.send(WatchEvent::Changed(p));
                    }
                }
                EventKind::Access(_) => {}
                _ => {
                    let _ = tx.send(WatchEvent::Structure);
                }
            }
        })?;
        Ok((
            DirWatcher {
                watcher,
                watched: HashSet::new(),
            },
            rx,
        ))
    }

    /// Adds watches for directories not watched yet; forgets vanished ones.
    /// Returns the errors of watches that could not be added (those directories are still polled).
    pub fn watch_dirs(&mut self, dirs: &[PathBuf]) -> Vec<notify::Error> {
        let mut errors = Vec::new();
        let wanted: HashSet<&PathBuf> = dirs.iter().collect();
        let gone: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|d| !wanted.contains(d))
            .cloned()
            .collect();
        for d in gone {
            let _ = self.watcher.unwatch(&d);
            self.watched.remove(&d);
        }
        for d in dirs {
            if !self.watched.contains(d) {
                match self.watcher.watch(d, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(d.clone());
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        errors
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
        let files = expand(&g, &mut |_, _| {});
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
