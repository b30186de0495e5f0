//! Finding the files to follow, and the directories to watch for new ones.
//!
//! Only directories that can lead to a match are watched (for
//! `/var/log/pods/*_*litellm*_*/*/*.log`: the pods root, matching pod
//! directories and their container directories), never whole trees, so a
//! chatty unrelated pod on the node does not wake the agent up.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::file::FileKey;

/// A glob compiled once (when the settings are built), walked without
/// re-parsing on every pass. Absolute; each path component is a literal, a
/// pattern (`*`, `?`, `[…]`, matched as [`glob::glob`] matches: hidden
/// names included, case-sensitive) or `**` (any depth of directories; the
/// walk does not follow symlinked directories there, so a loop cannot trap it).
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    /// The whole pattern, for matching a given path.
    whole: glob::Pattern,
    /// The components after the root `/`.
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Literal(String),
    Pattern(glob::Pattern),
    AnyDepth,
}

/// Why a glob was rejected (the text is the user's own pattern: no secret).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GlobError {
    #[error("`{glob}` is not a valid glob: {reason}")]
    Invalid { glob: String, reason: String },
    #[error("`{0}` must be an absolute path")]
    NotAbsolute(String),
    #[error("`{0}` must end in a file name or pattern (e.g. /var/log/pods/*/*/*.log)")]
    NoFileName(String),
}

/// How [`glob::glob`] matches names (its defaults), so a compiled glob finds what it did.
const NAME_MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// `**` descends at most this deep (a runaway tree is not walked forever).
const MAX_ANY_DEPTH: usize = 32;

impl Glob {
    /// Compiles `text`: the one place a glob is parsed.
    pub fn new(text: &str) -> Result<Glob, GlobError> {
        let invalid = |e: glob::PatternError| GlobError::Invalid {
            glob: text.to_string(),
            reason: e.to_string(),
        };
        let whole = glob::Pattern::new(text).map_err(invalid)?;
        if !text.starts_with('/') {
            return Err(GlobError::NotAbsolute(text.to_string()));
        }
        let mut parts: Vec<Part> = Vec::new();
        for c in text.split('/').filter(|c| !c.is_empty()) {
            let part = if c == "**" {
                if matches!(parts.last(), Some(Part::AnyDepth)) {
                    continue;
                }
                Part::AnyDepth
            } else if c.contains(['*', '?', '[']) {
                Part::Pattern(glob::Pattern::new(c).map_err(invalid)?)
            } else {
                Part::Literal(c.to_string())
            };
            parts.push(part);
        }
        if matches!(parts.last(), None | Some(Part::AnyDepth)) || text.ends_with('/') {
            return Err(GlobError::NoFileName(text.to_string()));
        }
        Ok(Glob {
            text: text.to_string(),
            whole,
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` itself matches (`*` does not cross a `/`).
    pub(crate) fn matches_path(&self, path: &Path) -> bool {
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..NAME_MATCH
        };
        self.whole.matches_path_with(path, opts)
    }

    /// Walks from `dir` (which matches the first `idx` parts): `on_dir` sees
    /// every directory reached with its index, `on_leaf` (when given) every
    /// path matching all parts.
    fn descend(&self, dir: &Path, idx: usize, depth: usize, w: &mut Walk<'_>) {
        (w.on_dir)(dir, idx);
        let last = idx + 1 == self.parts.len();
        match &self.parts[idx] {
            Part::Literal(name) => {
                let p = dir.join(name);
                if !last {
                    if p.is_dir() {
                        self.descend(&p, idx + 1, depth, w);
                    }
                } else if let Some(leaf) = w.on_leaf.as_mut() {
                    // A dangling symlink is a leaf too: the caller's stat decides.
                    if std::fs::symlink_metadata(&p).is_ok() {
                        leaf(p);
                    }
                }
            }
            Part::Pattern(pat) => {
                if last && w.on_leaf.is_none() {
                    return;
                }
                for (name, kind) in w.listings.entries(dir, w.on_error).iter() {
                    if !pat.matches_with(name, NAME_MATCH) {
                        continue;
                    }
                    let p = dir.join(name);
                    if !last {
                        // The directory entry's type says it (no stat per
                        // pod directory on every full pass); a symlink is
                        // followed if it names a directory.
                        if kind == EntryKind::Dir || (kind == EntryKind::Symlink && p.is_dir()) {
                            self.descend(&p, idx + 1, depth, w);
                        }
                    } else if let Some(leaf) = w.on_leaf.as_mut() {
                        leaf(p);
                    }
                }
            }
            // Never last (see `new`): zero directories here, or one more level.
            Part::AnyDepth => {
                self.descend(dir, idx + 1, depth, w);
                if depth < MAX_ANY_DEPTH {
                    for (name, kind) in w.listings.entries(dir, w.on_error).iter() {
                        if kind == EntryKind::Dir {
                            self.descend(&dir.join(name), idx, depth + 1, w);
                        }
                    }
                }
            }
        }
    }

    fn walk(&self, w: &mut Walk<'_>) {
        self.descend(Path::new("/"), 0, 0, w);
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.text == other.text
    }
}

/// What a walk reports to, and the listings it may reuse.
struct Walk<'a> {
    on_dir: &'a mut dyn FnMut(&Path, usize),
    on_leaf: Option<&'a mut dyn FnMut(PathBuf)>,
    on_error: &'a mut dyn FnMut(&Path, std::io::Error),
    listings: &'a mut Listings,
}

/// What a directory entry is, from the directory itself (`d_type`; a stat
/// only on file systems that do not fill it in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EntryKind {
    Dir,
    Symlink,
    Other,
}

/// A directory's entries with UTF-8 names (as [`glob::glob`] matches
/// them), sorted, with what each is (not following symlinks), packed in
/// one string: per entry a kind letter, the name and a NUL (no name holds
/// one). One allocation per directory however many entries: a node's
/// listings are kept (see [`Listings`]).
#[derive(Clone)]
struct Entries(Arc<str>);

impl Entries {
    fn none() -> Entries {
        Entries(Arc::from(""))
    }

    fn pack(mut entries: Vec<(String, EntryKind)>) -> Entries {
        entries.sort();
        let mut packed = String::with_capacity(entries.iter().map(|(n, _)| n.len() + 2).sum());
        for (name, kind) in entries {
            packed.push(match kind {
                EntryKind::Dir => 'd',
                EntryKind::Symlink => 'l',
                EntryKind::Other => '-',
            });
            packed.push_str(&name);
            packed.push('\0');
        }
        Entries(packed.into())
    }

    fn iter(&self) -> impl Iterator<Item = (&str, EntryKind)> {
        self.0.split_terminator('\0').filter_map(|e| {
            let kind = match e.as_bytes().first()? {
                b'd' => EntryKind::Dir,
                b'l' => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            Some((&e[1..], kind))
        })
    }
}

/// Directory listings of earlier walks, reused while the directory's ctime
/// stands still: one `statx` per directory on a full pass instead of
/// `openat` + `fstat` + `getdents64` × 2 + `close` (on a node of 5,000 pods,
/// most of the idle CPU). Any entry created, removed or renamed moves the
/// directory's ctime, which no one can set back.
#[derive(Default)]
pub(crate) struct Listings {
    /// By device and inode: the directory's content, whatever path reached it.
    dirs: FxHashMap<(u64, u64), Listing>,
    /// The current walk's number: listings it did not reach are dropped.
    walk: u64,
}

struct Listing {
    /// The directory's ctime (seconds, nanoseconds) when it was read.
    ctime: (i64, i64),
    entries: Entries,
    walk: u64,
}

/// A listing is kept only if the directory's last change was at least
/// this long before it was read: a change within the same timestamp
/// granule (a jiffy on ext4, up to 2 s on some file systems) could
/// otherwise leave the ctime as it was.
const SETTLED_FOR: i64 = 2;

impl Listings {
    fn start_walk(&mut self) {
        self.walk += 1;
    }

    /// Forgets the directories the walk just done did not reach.
    fn end_walk(&mut self) {
        let walk = self.walk;
        self.dirs.retain(|_, l| l.walk == walk);
    }

    /// The entries of `dir`: the kept listing if the directory did not
    /// change since, else read now (and kept if it has settled). A
    /// directory gone since it was found is no error; an unreadable one is
    /// reported.
    fn entries(&mut self, dir: &Path, on_error: &mut dyn FnMut(&Path, std::io::Error)) -> Entries {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // Stat'ed before reading: a change in between moves the ctime past
        // this one, and the next walk reads it again.
        let Ok(m) = std::fs::metadata(dir) else {
            return read_sorted(dir, on_error);
        };
        let (id, ctime) = ((m.dev(), m.ino()), (m.ctime(), m.ctime_nsec()));
        if let Some(l) = self.dirs.get_mut(&id) {
            if l.ctime == ctime {
                l.walk = self.walk;
                return l.entries.clone();
            }
        }
        let entries = read_sorted(dir, on_error);
        if ctime.0 + SETTLED_FOR < now {
            let walk = self.walk;
            let entries = entries.clone();
            self.dirs.insert(
                id,
                Listing {
                    ctime,
                    entries,
                    walk,
                },
            );
        } else {
            self.dirs.remove(&id);
        }
        entries
    }
}

fn read_sorted(dir: &Path, on_error: &mut dyn FnMut(&Path, std::io::Error)) -> Entries {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Entries::none(),
        Err(e) => {
            on_error(dir, e);
            return Entries::none();
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                if let Ok(name) = e.file_name().into_string() {
                    let kind = match e.file_type() {
                        Ok(t) if t.is_dir() => EntryKind::Dir,
                        Ok(t) if t.is_symlink() => EntryKind::Symlink,
                        _ => EntryKind::Other,
                    };
                    out.push((name, kind));
                }
            }
            Err(e) => on_error(dir, e),
        }
    }
    Entries::pack(out)
}

/// A regular file a glob matched, as its `statx` said just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub path: PathBuf,
    /// The device+inode the path names (a rotation moves it).
    pub key: FileKey,
    pub size: u64,
    /// The inode's change time (seconds, nanoseconds): every write,
    /// truncate or rename moves it, and no one can set it back, so a file
    /// whose size and ctime stand still holds what it held.
    pub ctime: (i64, i64),
}

/// Expands the globs into the regular files they match, sorted by path,
/// deduplicated, each as its path's `statx` says right now (the stat is
/// needed to tell files from directories anyway; it also tells a rotation
/// apart). Unreadable paths are reported through `on_error` and skipped.
pub(crate) fn expand(
    globs: &[Glob],
    listings: &mut Listings,
    on_error: &mut dyn FnMut(&Path, std::io::Error),
) -> Vec<Found> {
    let mut leaves = Vec::new();
    listings.start_walk();
    for g in globs {
        let mut on_leaf = |p: PathBuf| leaves.push(p);
        g.walk(&mut Walk {
            on_dir: &mut |_, _| {},
            on_leaf: Some(&mut on_leaf),
            on_error: &mut *on_error,
            listings: &mut *listings,
        });
    }
    listings.end_walk();
    let mut out = Vec::new();
    let mut seen = FxHashSet::default();
    for p in leaves {
        // A compressed generation is a finished copy of content read
        // under its plain name (or caught up on at start, see
        // `Tailer::resume_rotated`): never followed as text.
        if p.extension().is_some_and(|e| e == "gz") {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => {
                if seen.insert(p.clone()) {
                    let key = FileKey {
                        dev: m.dev(),
                        ino: m.ino(),
                    };
                    out.push(Found {
                        path: p,
                        key,
                        size: m.len(),
                        ctime: (m.ctime(), m.ctime_nsec()),
                    });
                }
            }
            Ok(_) => on_error(&p, std::io::Error::other("not a regular file")),
            // A dangling symlink or a file gone since the directory was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => on_error(&p, e),
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Every existing directory that a glob's match could live in or under:
/// from the glob's base (the deepest literal directory before the first
/// pattern component) down. Not its ancestors (`/`, `/var`, `/var/log`): any
/// file created there would wake the agent for a needless full rescan (on a
/// busy /tmp that was most of the idle CPU). A base created later is found
/// by the periodic full pass.
///
/// Reuses the listings of the last [`expand`] (it reaches every directory
/// this walk does, and drops the ones gone).
pub(crate) fn dirs_to_watch(globs: &[Glob], listings: &mut Listings) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen = FxHashSet::default();
    for g in globs {
        let dir_parts = g.parts.len() - 1;
        let base = g.parts[..dir_parts]
            .iter()
            .position(|p| !matches!(p, Part::Literal(_)))
            .unwrap_or(dir_parts);
        g.walk(&mut Walk {
            on_dir: &mut |dir, idx| {
                if idx >= base && seen.insert(dir.to_path_buf()) {
                    out.push(dir.to_path_buf());
                }
            },
            on_leaf: None,
            // The same directories are read by `expand` on the same pass, which reports them.
            on_error: &mut |_, _| {},
            listings: &mut *listings,
        });
    }
    out
}

/// The tail loop's own inotify instance: a non-recursive watch per directory
/// that can hold a match, and a wd → directory table. Read by the tail thread
/// itself once per tick (no watcher thread, no channel, no allocation per
/// event).
pub(crate) struct DirWatcher {
    inotify: inotify::Inotify,
    /// Directory of each watch descriptor, by its number (one instance:
    /// the number alone is the key, and comparing it is one integer).
    dirs: FxHashMap<i32, PathBuf>,
    watched: FxHashMap<PathBuf, inotify::WatchDescriptor>,
    /// Moves whenever a watch descriptor is added or forgotten (what a
    /// remembered (wd, name) route depends on).
    generation: u64,
    buf: Vec<u8>,
}

/// A followed directory's file was written to (IN_MODIFY, IN_CLOSE_WRITE).
pub(crate) struct Written<'a> {
    /// The watch descriptor's number.
    pub wd: i32,
    pub name: &'a std::ffi::OsStr,
    dir: &'a Path,
}

impl Written<'_> {
    /// The file's path (built on demand: most events are routed without it).
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.name)
    }
}

/// The most bytes one inotify event takes: its header and a padded
/// `NAME_MAX` name.
const MAX_EVENT_BYTES: usize = 16 + 256;

/// The bytes the kernel used for one event: a 16-byte header and the name
/// NUL-padded to a multiple of 16 (`round_event_name_len` in
/// fs/notify/inotify/inotify_user.c).
fn event_bytes(name: Option<&std::ffi::OsStr>) -> usize {
    16 + name.map_or(0, |n| (n.len() + 1).div_ceil(16) * 16)
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
            dirs: FxHashMap::default(),
            watched: FxHashMap::default(),
            generation: 0,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Adds watches for directories not watched yet; forgets vanished ones.
    /// Returns the errors of watches that could not be added (those
    /// directories are polled instead, see [`crate::tail::Tailer`]).
    pub(crate) fn watch_dirs(&mut self, dirs: &[PathBuf]) -> Vec<std::io::Error> {
        let mut errors = Vec::new();
        let wanted: FxHashSet<&PathBuf> = dirs.iter().collect();
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|d| !wanted.contains(d))
            .cloned()
            .collect();
        for d in gone {
            if let Some(wd) = self.watched.remove(&d) {
                self.generation += 1;
                self.dirs.remove(&wd.get_watch_descriptor_id());
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
                        self.generation += 1;
                        self.dirs.insert(wd.get_watch_descriptor_id(), d.clone());
                        self.watched.insert(d.clone(), wd);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        errors
    }

    /// Stops (`hear` false) or restarts a watched directory's events about
    /// its files' contents (IN_MODIFY, IN_CLOSE_WRITE): while its one file
    /// is read on the busy cadence anyway, an event per write (5,000 a
    /// second at 500 busy pods) is pure cost. Both go, not only IN_MODIFY:
    /// while a directory's mask holds any event a child can raise, the
    /// kernel takes and drops a reference on the directory for every read
    /// and write of each file in it (`__fsnotify_parent`), our own `pread`s
    /// included. Names appearing, vanishing or moving are heard either way.
    /// False when `dir` has no watch or the kernel refused: then writes
    /// stay heard.
    pub(crate) fn hear_writes(&mut self, dir: &Path, hear: bool) -> bool {
        let Some(wd) = self.watched.get(dir).cloned() else {
            return false;
        };
        let mask = match hear {
            true => watch_mask(),
            false => watch_mask()
                .difference(inotify::WatchMask::MODIFY | inotify::WatchMask::CLOSE_WRITE),
        };
        match self.inotify.watches().add(dir, mask) {
            Ok(same) if same == wd => true,
            Ok(other) => {
                // The name holds another directory now (the rescan its
                // events cause will see to it): keep hearing its writes.
                let _ = self.inotify.watches().add(dir, watch_mask());
                self.generation += 1;
                self.dirs
                    .insert(other.get_watch_descriptor_id(), dir.to_path_buf());
                self.watched.insert(dir.to_path_buf(), other);
                false
            }
            Err(_) => false,
        }
    }

    /// Waits up to `timeout` for the inotify fd to become readable. Returns
    /// true when there are events to read.
    pub(crate) fn wait_readable(&self, timeout: std::time::Duration) -> std::io::Result<bool> {
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

    /// Moves whenever the wd → directory table changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Reads every queued event without blocking: each file written to
    /// (IN_MODIFY, IN_CLOSE_WRITE) is handed to `written`. Returns true when
    /// something was created, removed or renamed (or the queue overflowed):
    /// the globs must be rescanned and each path's inode checked again.
    pub fn drain(&mut self, written: &mut dyn FnMut(Written<'_>)) -> std::io::Result<bool> {
        use inotify::EventMask as E;
        let mut structure = false;
        loop {
            let mut used = 0;
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(structure),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut ignored = Vec::new();
            for ev in events {
                used += event_bytes(ev.name);
                if ev.mask.contains(E::Q_OVERFLOW) {
                    // Events were lost: only a rescan knows what happened.
                    structure = true;
                    continue;
                }
                if ev.mask.intersects(E::IGNORED) {
                    ignored.push(ev.wd.get_watch_descriptor_id());
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
                    structure = true;
                }
                if ev.mask.intersects(E::MODIFY | E::CLOSE_WRITE) {
                    let wd = ev.wd.get_watch_descriptor_id();
                    if let (Some(dir), Some(name)) = (self.dirs.get(&wd), ev.name) {
                        written(Written { wd, name, dir });
                    }
                }
            }
            for wd in ignored {
                // The kernel dropped this watch (directory deleted or
                // unmounted): forget it so the next refresh re-adds the name.
                if let Some(d) = self.dirs.remove(&wd) {
                    self.generation += 1;
                    self.watched.remove(&d);
                }
            }
            // Room was left for one more event of any size: the queue was
            // empty when read (no second read just to hear EAGAIN; events
            // queued since make the fd readable again).
            if used + MAX_EVENT_BYTES <= self.buf.len() {
                return Ok(structure);
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
        let g = vec![Glob::new(&format!("{}/*_*litellm*_*/*/*.log", r.display())).unwrap()];
        let dirs = dirs_to_watch(&g, &mut Listings::default());
        assert!(dirs.contains(&r.to_path_buf()));
        // Not the base's ancestors (`/tmp`, `/`): activity there is not ours.
        assert!(!dirs.iter().any(|d| r.starts_with(d) && d != r), "{dirs:?}");
        assert!(dirs.contains(&r.join("llm_litellm-0_u1")));
        assert!(dirs.contains(&r.join("llm_litellm-0_u1/litellm")));
        assert!(!dirs.iter().any(|d| d.to_string_lossy().contains("redis")));
        let files: Vec<PathBuf> = expand(&g, &mut Listings::default(), &mut |_, _| {})
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(files, vec![r.join("llm_litellm-0_u1/litellm/0.log")]);
    }

    #[test]
    fn directory_named_like_a_log_is_reported_not_followed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/0.log")).unwrap();
        let g = vec![Glob::new(&format!("{}/*/*.log", root.path().display())).unwrap()];
        let mut errs = 0;
        assert!(expand(&g, &mut Listings::default(), &mut |_, _| errs += 1).is_empty());
        assert_eq!(errs, 1);
    }
    /// The compiled walk finds exactly what `glob::glob` (which the tailer
    /// used to call on every pass) finds: hidden names, classes, `?`,
    /// symlinked files and directories, literal components, `**`.
    #[test]
    fn compiled_globs_find_what_glob_found() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "llm_litellm-0_u1/litellm",
            "llm_litellm-1_u2/litellm",
            "llm_litellm-1_u2/.hidden",
            "other_redis-0_u3/redis",
            "deep/a/b/c",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "llm_litellm-0_u1/litellm/0.log",
            "llm_litellm-0_u1/litellm/1.log",
            "llm_litellm-0_u1/litellm/0.log.20260101-000000",
            "llm_litellm-0_u1/litellm/0.log.1.gz",
            "llm_litellm-1_u2/litellm/0.log",
            "llm_litellm-1_u2/.hidden/0.log",
            "other_redis-0_u3/redis/0.log",
            "deep/a/b/c/x.log",
            "deep/a/y.log",
            "deep/z.log",
        ] {
            std::fs::write(r.join(f), b"x\n").unwrap();
        }
        std::os::unix::fs::symlink(r.join("deep/z.log"), r.join("deep/a/b/link.log")).unwrap();
        std::os::unix::fs::symlink(r.join("deep/a"), r.join("linked_litellm-9_u9")).unwrap();
        std::os::unix::fs::symlink(r.join("gone.log"), r.join("deep/dangling.log")).unwrap();
        let base = r.display().to_string();
        for pattern in [
            "/*_*litellm*_*/*/*.log",
            "/*_*litellm*_*/*/*.log*",
            "/llm_litellm-[01]_u?/litellm/0.log",
            "/llm_litellm-0_u1/litellm/1.log",
            "/*/*",
            "/*/*/*.log",
            "/deep/**/*.log",
            "/**/x.log",
            "/nothing/*.log",
        ] {
            let text = format!("{base}{pattern}");
            let compiled = Glob::new(&text).unwrap();
            let mut errors = 0;
            let ours: Vec<PathBuf> = expand(
                std::slice::from_ref(&compiled),
                &mut Listings::default(),
                &mut |_, _| errors += 1,
            )
            .into_iter()
            .map(|f| f.path)
            .collect();
            // One deliberate difference: `**` does not descend into a
            // symlinked directory (glob's does, and loops with a cycle).
            let through_link =
                |p: &Path| pattern.contains("**") && p.starts_with(r.join("linked_litellm-9_u9"));
            let all: Vec<PathBuf> = glob::glob(&text)
                .unwrap()
                .flatten()
                .filter(|p| p.extension().is_none_or(|e| e != "gz") && !through_link(p))
                .collect();
            let mut theirs: Vec<PathBuf> = all.iter().filter(|p| p.is_file()).cloned().collect();
            theirs.sort();
            theirs.dedup();
            assert_eq!(ours, theirs, "{pattern}");
            // A directory matched where files are expected is reported, as before.
            let not_files = all.iter().filter(|p| p.exists() && !p.is_file()).count();
            assert_eq!(errors, not_files, "{pattern}");
        }
        // The directories to watch are the base and what can hold a match below it.
        let g = Glob::new(&format!("{base}/deep/**/*.log")).unwrap();
        let dirs = dirs_to_watch(std::slice::from_ref(&g), &mut Listings::default());
        for d in ["deep", "deep/a", "deep/a/b", "deep/a/b/c"] {
            assert!(dirs.contains(&r.join(d)), "{d}: {dirs:?}");
        }
        assert!(!dirs.contains(&r.to_path_buf()), "{dirs:?}");
    }

    #[test]
    fn a_glob_is_compiled_or_refused_with_a_reason() {
        assert!(matches!(
            Glob::new("/var/log/["),
            Err(GlobError::Invalid { .. })
        ));
        assert!(matches!(
            Glob::new("/a/b**/x"),
            Err(GlobError::Invalid { .. })
        ));
        assert_eq!(
            Glob::new("var/*.log"),
            Err(GlobError::NotAbsolute("var/*.log".into()))
        );
        for g in ["/", "/var/log/**", "/var/log/"] {
            assert_eq!(Glob::new(g), Err(GlobError::NoFileName(g.into())), "{g}");
        }
        let g = Glob::new("/var/log/pods/*_*litellm*_*/*/*.log").unwrap();
        assert!(g.matches_path(Path::new("/var/log/pods/llm_litellm-0_u/litellm/0.log")));
        assert!(!g.matches_path(Path::new("/var/log/pods/llm_litellm-0_u/a/b/0.log")));
        assert_eq!(g.to_string(), "/var/log/pods/*_*litellm*_*/*/*.log");
    }

    #[test]
    fn a_listing_failure_is_reported_not_skipped() {
        let root = tempfile::tempdir().unwrap();
        let locked = root.path().join("llm_litellm-0_u1");
        std::fs::create_dir_all(&locked).unwrap();
        // A file where the walk expects a directory it must list is not an
        // error (nothing can match under it); a directory it cannot list is.
        let g = Glob::new(&format!("{}/*/*.log", root.path().display())).unwrap();
        let mut seen = Vec::new();
        // Listing a path that is not a directory fails like an unreadable one.
        let f = root.path().join("file");
        std::fs::write(&f, b"").unwrap();
        let mut listings = Listings::default();
        let entries = listings.entries(&f, &mut |p, e| seen.push((p.to_path_buf(), e.kind())));
        assert_eq!(entries.iter().count(), 0);
        assert_eq!(seen.len(), 1, "{seen:?}");
        let mut listings = Listings::default();
        assert!(expand(&[g], &mut listings, &mut |_, _| panic!(
            "nothing unreadable"
        ))
        .is_empty());
    }

    fn id_and_ctime(dir: &Path) -> ((u64, u64), (i64, i64)) {
        let m = std::fs::metadata(dir).unwrap();
        ((m.dev(), m.ino()), (m.ctime(), m.ctime_nsec()))
    }

    #[test]
    fn entries_unpack_as_packed() {
        let e = Entries::pack(vec![
            ("b.log".into(), EntryKind::Other),
            ("a".into(), EntryKind::Dir),
            ("ünï".into(), EntryKind::Symlink),
        ]);
        let got: Vec<_> = e.iter().collect();
        assert_eq!(
            got,
            [
                ("a", EntryKind::Dir),
                ("b.log", EntryKind::Other),
                ("ünï", EntryKind::Symlink)
            ]
        );
        assert_eq!(Entries::none().iter().count(), 0);
    }

    #[test]
    fn a_listing_is_reused_until_the_directory_changes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("llm_litellm-0_u1/litellm");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.log"), b"x\n").unwrap();
        let g = vec![Glob::new(&format!("{}/*/*/*.log", root.path().display())).unwrap()];
        let names = |listings: &mut Listings| -> Vec<PathBuf> {
            expand(&g, listings, &mut |p, e| panic!("{}: {e}", p.display()))
                .into_iter()
                .map(|f| f.path)
                .collect()
        };
        // Just changed: not kept (a change in the same timestamp granule
        // would not move the ctime).
        let mut listings = Listings::default();
        assert_eq!(names(&mut listings), vec![dir.join("0.log")]);
        assert!(listings.dirs.is_empty());
        // A kept listing (as if settled) is what the walk uses while the
        // ctime holds: here one naming a file that is not there.
        let (id, ctime) = id_and_ctime(&dir);
        let entries = Entries::pack(vec![("9.log".into(), EntryKind::Other)]);
        listings.dirs.insert(
            id,
            Listing {
                ctime,
                entries,
                walk: 0,
            },
        );
        assert!(
            names(&mut listings).is_empty(),
            "the kept listing was not used"
        );
        // An entry created moves the ctime: read again (until the clock
        // granule has passed, the ctime may not have moved yet).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut n = 1;
        while id_and_ctime(&dir) == (id, ctime) {
            assert!(std::time::Instant::now() < deadline, "ctime never moved");
            std::fs::write(dir.join(format!("{n}.log")), b"x\n").unwrap();
            n += 1;
        }
        let found = names(&mut listings);
        assert_eq!(found.len(), n, "{found:?}");
        // A directory the walk no longer reaches is forgotten.
        let gone = (u64::MAX, 1);
        let entries = Entries::none();
        listings.dirs.insert(
            gone,
            Listing {
                ctime,
                entries,
                walk: 0,
            },
        );
        names(&mut listings);
        assert!(!listings.dirs.contains_key(&gone));
    }
}
