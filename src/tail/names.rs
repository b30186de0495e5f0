//! Which followed file each matching path names, and the short way from an
//! inotify event to it.
//!
//! An event names a file by watch descriptor and name. Turning that into a
//! path and looking the path up (a `Path` hashes and compares component by
//! component) was a tenth of the agent's CPU on a node of 500 busy files:
//! the answer is remembered per (watch, name) until either table changes.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use super::FileKey;

/// Path → followed file, plus the learned (watch descriptor, name) routes.
#[derive(Default)]
pub(crate) struct FileNames {
    by_path: FxHashMap<PathBuf, FileKey>,
    /// Per watch descriptor, the names already looked up (a pod's log
    /// directory holds one to a few files: a short list beats a map).
    /// Only ever a copy of what `by_path` answers: cleared whenever
    /// `by_path` changes or the watch table does (`watches`).
    routes: FxHashMap<i32, Vec<(OsString, FileKey)>>,
    /// The watch table's generation the routes were learned under.
    watches: u64,
}

impl FileNames {
    pub fn get(&self, path: &Path) -> Option<FileKey> {
        self.by_path.get(path).copied()
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.by_path.contains_key(path)
    }

    pub fn insert(&mut self, path: PathBuf, key: FileKey) {
        self.routes.clear();
        self.by_path.insert(path, key);
    }

    /// Forgets `path` if it still names `key` (another file may have taken
    /// the name since).
    pub fn remove_if_names(&mut self, path: &Path, key: FileKey) {
        if self.get(path) == Some(key) {
            self.routes.clear();
            self.by_path.remove(path);
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Path, FileKey) -> bool) {
        let before = self.by_path.len();
        self.by_path.retain(|p, k| keep(p, *k));
        if self.by_path.len() != before {
            self.routes.clear();
        }
    }

    pub fn reserve(&mut self, more: usize) {
        self.by_path.reserve(more);
    }

    /// The followed file an event names: remembered, or looked up by the
    /// path `path` builds (and then remembered). `watches` is the watch
    /// table's generation: a watch descriptor means the same directory only
    /// while it stands still.
    pub fn route(
        &mut self,
        watches: u64,
        wd: i32,
        name: &OsStr,
        path: impl FnOnce() -> PathBuf,
    ) -> Result<FileKey, PathBuf> {
        if self.watches != watches {
            self.routes.clear();
            self.watches = watches;
        }
        let known = self.routes.get(&wd).and_then(|names| {
            names
                .iter()
                .find(|(n, _)| n.as_os_str() == name)
                .map(|(_, k)| *k)
        });
        if let Some(key) = known {
            return Ok(key);
        }
        let path = path();
        match self.by_path.get(&path) {
            Some(&key) => {
                self.routes
                    .entry(wd)
                    .or_default()
                    .push((name.to_os_string(), key));
                Ok(key)
            }
            None => Err(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> FileKey {
        FileKey { dev: 1, ino: n }
    }

    #[test]
    fn a_route_is_learned_and_forgotten_with_the_path_it_copies() {
        let mut names = FileNames::default();
        names.insert("/p/a/0.log".into(), key(1));
        let mut built = 0;
        let mut route = |names: &mut FileNames, gen, name: &str| {
            names.route(gen, 7, OsStr::new(name), || {
                built += 1;
                Path::new("/p/a").join(name)
            })
        };
        assert_eq!(route(&mut names, 0, "0.log"), Ok(key(1)));
        assert_eq!(route(&mut names, 0, "0.log"), Ok(key(1)));
        assert_eq!(route(&mut names, 0, "1.log"), Err("/p/a/1.log".into()));
        // The file behind the name changed: the route goes with it.
        names.remove_if_names(Path::new("/p/a/0.log"), key(1));
        names.insert("/p/a/0.log".into(), key(2));
        assert_eq!(route(&mut names, 0, "0.log"), Ok(key(2)));
        // The watch table changed: wd 7 may be another directory now.
        names.retain(|_, _| true);
        assert_eq!(route(&mut names, 1, "0.log"), Ok(key(2)));
        names.retain(|_, _| false);
        assert_eq!(route(&mut names, 1, "0.log"), Err("/p/a/0.log".into()));
        // Looked up by path: the first, after each change, and the misses.
        assert_eq!(built, 5);
    }

    #[test]
    fn remove_keeps_a_name_another_file_took() {
        let mut names = FileNames::default();
        names.insert("/p/0.log".into(), key(2));
        names.remove_if_names(Path::new("/p/0.log"), key(1));
        assert_eq!(names.get(Path::new("/p/0.log")), Some(key(2)));
    }
}
