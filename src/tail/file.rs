//! One followed file: its identity, read position and rotation state.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lines::{LineHandler, LineSplitter};

/// How many leading bytes identify a file's content (with device and inode).
pub(crate) const FINGERPRINT_BYTES: usize = 1024;

/// How many of the bytes just before the read position every read fetches
/// again (in the same `pread`): if the file no longer holds them there, its
/// content was replaced (a copytruncate, even one whose new content already
/// outgrew our position) or it shrank below us. Detecting that costs no
/// system call of its own, where checking the head's fingerprint on every
/// append cost a second `pread` (half of the tail loop's calls).
pub(crate) const GUARD_BYTES: usize = 64;

/// Which file this is, independent of its name: renames keep it, a reused
/// inode with different content does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// Hash of the first line (at most [`FINGERPRINT_BYTES`]); None while the file has no complete first line.
    pub fingerprint: Option<u64>,
}

/// The device+inode key of an open file (stable while it is open).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

/// FNV-1a: tiny, dependency-free, stable across releases (it is persisted).
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fingerprint of content starting with `head`: the first line, or the first
/// [`FINGERPRINT_BYTES`] when the first line is longer. None if not yet known.
pub(crate) fn fingerprint_of(head: &[u8]) -> Option<u64> {
    let window = &head[..head.len().min(FINGERPRINT_BYTES)];
    match memchr::memchr(b'\n', window) {
        Some(nl) => Some(fnv1a(&window[..=nl])),
        None if window.len() == FINGERPRINT_BYTES => Some(fnv1a(window)),
        None => None,
    }
}

/// Opens for reading without ever blocking: a FIFO (or a device) under a
/// log-like name would otherwise block the tail thread in open(2) until a
/// writer appears. O_NONBLOCK does not change reads of regular files, and
/// every caller rejects non-regular files right after the open.
///
/// O_NOATIME where allowed (the file's owner — the DaemonSet runs as uid 0
/// with every capability dropped, and the kubelet's logs belong to root —
/// or CAP_FOWNER): a log written between two reads has mtime > atime, so
/// with `relatime` every read of it would otherwise update its atime and
/// dirty its inode (`touch_atime`, `__ext4_mark_inode_dirty` in the load
/// profile of `bench/live.sh`). Without the permission the kernel says
/// EPERM and the file is opened without it.
pub(crate) fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |extra: libc::c_int| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | extra)
            .open(path)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        other => other,
    }
}

/// Reads the fingerprint of an open file without moving its read position.
pub(crate) fn read_fingerprint(file: &File) -> std::io::Result<Option<u64>> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let n = read_at_full(file, &mut head, 0)?;
    Ok(fingerprint_of(&head[..n]))
}

/// How many bytes before `pos` a read re-reads as its guard.
fn guard_window(pos: u64) -> usize {
    // At most GUARD_BYTES, so the conversion cannot fail.
    usize::try_from(pos.min(GUARD_BYTES as u64)).unwrap_or(GUARD_BYTES)
}

/// One `pread` at `offset` (retried when interrupted).
fn read_at_once(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `pread`s until `buf` is full or the file ends; returns the bytes read.
fn read_at_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = read_at_once(file, &mut buf[n..], offset + n as u64)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// Where a followed file stands with respect to its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// The path still names this file.
    Active,
    /// The path now names another file (rename rotation) or nothing (deleted):
    /// read what is left, then close.
    Draining,
}

/// A file being followed.
#[derive(Debug)]
pub(crate) struct TailedFile {
    pub path: PathBuf,
    pub key: FileKey,
    pub fingerprint: Option<u64>,
    file: File,
    /// Bytes read from the file so far (delivered lines + pending partial line).
    read_pos: u64,
    splitter: LineSplitter,
    pub lifecycle: Lifecycle,
    /// Consecutive passes on which a draining file had nothing new.
    pub idle_passes: u32,
    /// Check the fingerprint on the next read even if the size did not change.
    pub verify_next: bool,
    /// The ctime at which the file was last found at our position with its
    /// fingerprint checked: while size and ctime stay, no check is needed.
    pub verified_ctime: Option<(i64, i64)>,
    /// The size seen by the last read (for the lag without a system call).
    last_len: u64,
    /// The last `guard_len` bytes before `read_pos`, as read (see [`GUARD_BYTES`]).
    guard: [u8; GUARD_BYTES],
    /// How many bytes of `guard` are known: fewer than `min(GUARD_BYTES,
    /// read_pos)` only right after an open or a seek, until the next read.
    guard_len: usize,
    /// When a read last delivered bytes: a file written continuously is
    /// read every other tick (see `BUSY_REREAD` in the tailer).
    pub read_at: Option<std::time::Instant>,
    /// No other followed file shares its directory (as of the last scan):
    /// only then may the directory's write events be turned off.
    pub alone_in_dir: bool,
    /// The last pass whose read list named this file: a key listed twice in
    /// one pass (written to and polled, put off and polled) is read once.
    pub seen_in_pass: u64,
}

/// What one read pass of a file found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReadStats {
    pub bytes: u64,
    /// The file shrank below our position: copytruncate. Reading restarted at 0.
    pub truncated: bool,
    /// With `truncated`: the identity and committed offset of the content
    /// that was replaced.
    pub replaced: Option<(FileId, u64)>,
    /// Stopped at the read budget with more to read.
    pub more: bool,
}

impl TailedFile {
    /// Opens `path` and positions at `offset` (clamped to the file's size).
    pub fn open(path: &Path, offset: u64, max_line_bytes: usize) -> std::io::Result<TailedFile> {
        let file = open_nonblocking(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let offset = offset.min(meta.len());
        let fingerprint = read_fingerprint(&file)?;
        Ok(TailedFile {
            path: path.to_path_buf(),
            key: FileKey {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            fingerprint,
            file,
            read_pos: offset,
            splitter: LineSplitter::new(max_line_bytes),
            lifecycle: Lifecycle::Active,
            idle_passes: 0,
            verify_next: false,
            verified_ctime: None,
            last_len: meta.len(),
            guard: [0; GUARD_BYTES],
            guard_len: 0,
            read_at: None,
            seen_in_pass: 0,
            alone_in_dir: false,
        })
    }

    /// The file's current size.
    pub fn size(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Moves the read position to `offset` (clamped to the size). When that
    /// is not the start of a line (a first start at the end of a file being
    /// written, a position inside an over-long line), the rest of that line
    /// is skipped: a line's tail is never delivered as a line (it would
    /// mislead format detection, and could match a rule on half a message).
    pub(crate) fn seek_to(&mut self, offset: u64) -> std::io::Result<()> {
        let offset = offset.min(self.size()?);
        self.read_pos = offset;
        self.guard_len = 0;
        self.splitter.reset();
        if offset > 0 {
            // The byte before `offset` (and the guard with it: one `pread`).
            let want = guard_window(offset);
            let n = read_at_full(&self.file, &mut self.guard[..want], offset - want as u64)?;
            if n == want {
                self.guard_len = want;
            }
            if n == want && self.guard[want - 1] != b'\n' {
                self.splitter.skip_rest_of_line();
            }
        }
        Ok(())
    }

    /// The identity to store in a checkpoint.
    pub fn id(&self) -> FileId {
        FileId {
            dev: self.key.dev,
            ino: self.key.ino,
            fingerprint: self.fingerprint,
        }
    }

    /// Offset just after the last delivered line: where a restart resumes.
    pub(crate) fn committed_offset(&self) -> u64 {
        self.read_pos - self.splitter.pending_len() as u64
    }

    /// Bytes written to the file that we have not read yet.
    pub fn lag(&self) -> u64 {
        self.file
            .metadata()
            .map(|m| m.len().saturating_sub(self.read_pos))
            .unwrap_or(0)
    }

    /// Read up to `size` with a known first line: nothing to do for a file of that size.
    pub(crate) fn idle_at(&self, size: u64) -> bool {
        self.read_pos == size && self.fingerprint.is_some()
    }

    /// Bytes not read yet as of the last read's size check (no system call).
    pub(crate) fn known_lag(&self) -> u64 {
        self.last_len.saturating_sub(self.read_pos)
    }

    /// Reads what is new, at most about `budget` bytes (whole buffers),
    /// delivering complete lines to `h`. `buf` is a reused read buffer
    /// (best twice [`GUARD_BYTES`] or more). [`ReadStats::more`] says the budget
    /// ran out before the end.
    ///
    /// An append costs one `pread`: it starts [`GUARD_BYTES`] before our
    /// position, and those bytes must be the ones we read last time. A
    /// short read is the end; no `fstat`, no fingerprint read (that is
    /// checked on full passes, see `verify_next`).
    pub(crate) fn read_new<H: LineHandler + ?Sized>(
        &mut self,
        buf: &mut [u8],
        budget: u64,
        h: &mut H,
    ) -> std::io::Result<ReadStats> {
        let mut stats = ReadStats::default();
        let verify = std::mem::take(&mut self.verify_next);
        let mut first = true;
        loop {
            // (At most half the buffer, so every read has room for new bytes.)
            let want = guard_window(self.read_pos).min(buf.len() / 2);
            let got = read_at_once(&self.file, buf, self.read_pos - want as u64)?;
            let new = got.saturating_sub(want);
            if std::mem::take(&mut first) {
                // The bytes just before our position that both this read
                // and the guard hold (none right after an open or a seek).
                let k = self.guard_len.min(want);
                let (was, is) = (
                    &self.guard[self.guard_len - k..self.guard_len],
                    &buf[want - k..want],
                );
                // Shorter than our position (copytruncate, CRI-O truncating
                // in place), other bytes where ours were (a copytruncate
                // that regrew), or, on full passes, another first line.
                let replaced = got < want
                    || was != is
                    || (verify && new == 0 && self.read_pos > 0 && self.content_changed()?);
                if replaced {
                    stats.replaced = Some((self.id(), self.committed_offset()));
                    self.fingerprint = None;
                    self.read_pos = 0;
                    self.guard_len = 0;
                    self.splitter.reset();
                    stats.truncated = true;
                    continue;
                }
            }
            self.keep_guard(&buf[..got]);
            if new == 0 {
                self.last_len = self.read_pos;
                break;
            }
            self.read_pos += new as u64;
            stats.bytes += new as u64;
            self.splitter.feed(&buf[want..got], h);
            // A short read of a regular file is its end for now: skip the empty
            // read that would confirm it (one system call less per append).
            if got < buf.len() {
                self.last_len = self.read_pos;
                break;
            }
            if stats.bytes >= budget {
                // One fast writer must not hold the tail thread: the others,
                // the clocks and the checkpoint get their turn first.
                stats.more = true;
                self.last_len = self.file.metadata()?.len();
                break;
            }
        }
        if self.fingerprint.is_none() && self.read_pos > 0 {
            self.fingerprint = read_fingerprint(&self.file)?;
        }
        Ok(stats)
    }

    /// Remembers the last bytes of `read` (which ends at `read_pos`).
    fn keep_guard(&mut self, read: &[u8]) {
        let n = read.len().min(GUARD_BYTES);
        self.guard[..n].copy_from_slice(&read[read.len() - n..]);
        self.guard_len = n;
    }

    /// The first line on disk is not the one we fingerprinted.
    fn content_changed(&self) -> std::io::Result<bool> {
        Ok(read_fingerprint(&self.file)?.is_some_and(|f| Some(f) != self.fingerprint))
    }

    /// The file is done for good (drained after rotation/deletion): deliver an unfinished last line.
    pub fn finish<H: LineHandler + ?Sized>(&mut self, h: &mut H) {
        self.splitter.finish(h);
    }

    /// True when the file has no name left (deleted while open).
    pub fn deleted(&self) -> bool {
        self.file.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    /// True when the file's path still names this file.
    pub(crate) fn check_still_named(&self) -> bool {
        std::fs::metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.key.dev && m.ino() == self.key.ino)
    }
}

/// Reads a whole file (plain or `.gz`) from `offset` (in decompressed bytes)
/// through a line splitter: for `report` and for catching up on a rotated file
/// that was compressed while the agent was down.
pub(crate) fn read_whole<H: LineHandler + ?Sized>(
    path: &Path,
    offset: u64,
    max_line_bytes: usize,
    h: &mut H,
) -> std::io::Result<u64> {
    let file = open_nonblocking(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            file,
        )))
    } else {
        Box::new(file)
    };
    let mut to_skip = offset;
    let mut buf = vec![0u8; 256 * 1024];
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let mut chunk = &buf[..n];
        if to_skip > 0 {
            let skip = (to_skip as usize).min(chunk.len());
            chunk = &chunk[skip..];
            to_skip -= skip as u64;
        }
        splitter.feed(chunk, h);
    }
    splitter.finish(h);
    Ok(total)
}

/// Drops `X.gz` when `X` is in the list too with the same content (its
/// decompressed first line): kubelet writes `0.log.<ts>.gz` next to
/// `0.log.<ts>` and deletes the plain file only afterwards, so a directory
/// read in between holds one generation twice. The plain file is kept: it
/// is complete, while the `.gz` may still be being written.
pub(crate) fn drop_compressed_copies(files: Vec<PathBuf>) -> Vec<PathBuf> {
    // Most passes (5,000 paths on a big node) have no `.gz` at all.
    if !files
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "gz"))
    {
        return files;
    }
    let all: std::collections::HashSet<PathBuf> = files.iter().cloned().collect();
    files
        .into_iter()
        .filter(|p| {
            if p.extension().is_none_or(|e| e != "gz") {
                return true;
            }
            let plain = p.with_extension("");
            if !all.contains(&plain) {
                return true;
            }
            let (Ok(Some(a)), Ok(Some(b))) = (fingerprint_of_path(p), fingerprint_of_path(&plain))
            else {
                return true;
            };
            a != b
        })
        .collect()
}

/// The fingerprint of a (possibly gzipped) file's decompressed content.
pub(crate) fn fingerprint_of_path(path: &Path) -> std::io::Result<Option<u64>> {
    let file = open_nonblocking(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut head = Vec::with_capacity(FINGERPRINT_BYTES);
    reader
        .by_ref()
        .take(FINGERPRINT_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(fingerprint_of(&head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(f: &mut TailedFile) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 7];
        f.read_new(&mut buf, u64::MAX, &mut |l: &[u8], _t: bool| {
            out.push(String::from_utf8_lossy(l).into_owned())
        })
        .unwrap();
        out
    }

    #[test]
    fn own_files_are_opened_without_atime_updates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, b"x\n").unwrap();
        let f = open_nonblocking(&p).unwrap();
        let flags = rustix::fs::fcntl_getfl(&f).unwrap();
        assert!(flags.contains(rustix::fs::OFlags::NOATIME), "{flags:?}");
        assert!(flags.contains(rustix::fs::OFlags::NONBLOCK), "{flags:?}");
    }

    #[test]
    fn follows_appends_and_commits_only_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut w = File::create(&p).unwrap();
        w.write_all(b"first\nsec").unwrap();
        let mut f = TailedFile::open(&p, 0, 1024).unwrap();
        assert_eq!(collect(&mut f), vec!["first"]);
        assert_eq!(f.committed_offset(), 6);
        w.write_all(b"ond\n").unwrap();
        assert_eq!(collect(&mut f), vec!["second"]);
        assert_eq!(f.committed_offset(), 13);
        assert!(f.fingerprint.is_some());
    }

    #[test]
    fn copytruncate_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, b"aaaa\nbbbb\n").unwrap();
        let mut f = TailedFile::open(&p, 0, 1024).unwrap();
        assert_eq!(collect(&mut f).len(), 2);
        std::fs::write(&p, b"c\n").unwrap(); // truncate + rewrite, same inode
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64];
        let st = f
            .read_new(&mut buf, u64::MAX, &mut |l: &[u8], _t: bool| {
                out.push(l.to_vec())
            })
            .unwrap();
        assert!(st.truncated);
        assert_eq!(out, vec![b"c".to_vec()]);
    }

    #[test]
    fn replaced_content_that_outgrew_the_offset_is_caught_by_the_guard() {
        // The same first line (so the same fingerprint), longer new content:
        // only the bytes before our position tell the copytruncate.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, b"header\naaaa\n").unwrap();
        let mut f = TailedFile::open(&p, 0, 1024).unwrap();
        assert_eq!(collect(&mut f), vec!["header", "aaaa"]);
        std::fs::write(&p, b"header\nbbbbbbbbbbbb\ncc\n").unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 256];
        let st = f
            .read_new(&mut buf, u64::MAX, &mut |l: &[u8], _t: bool| {
                out.push(String::from_utf8_lossy(l).into_owned())
            })
            .unwrap();
        assert!(st.truncated);
        assert_eq!(out, vec!["header", "bbbbbbbbbbbb", "cc"]);
        // An ordinary append after it is not taken for another replacement.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"dd\n")
            .unwrap();
        let mut out = Vec::new();
        let st = f
            .read_new(&mut buf, u64::MAX, &mut |l: &[u8], _t: bool| {
                out.push(String::from_utf8_lossy(l).into_owned())
            })
            .unwrap();
        assert!(!st.truncated);
        assert_eq!(out, vec!["dd"]);
    }

    #[test]
    fn gz_is_read_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log.1.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        enc.write_all(b"skip me\nkeep\n").unwrap();
        enc.finish().unwrap();
        let mut out = Vec::new();
        read_whole(&p, 8, 1024, &mut |l: &[u8], _t: bool| out.push(l.to_vec())).unwrap();
        assert_eq!(out, vec![b"keep".to_vec()]);
        assert_eq!(fingerprint_of_path(&p).unwrap(), Some(fnv1a(b"skip me\n")));
    }

    #[test]
    fn compressed_copy_next_to_its_plain_file_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("0.log.20261124-101500");
        std::fs::write(&plain, b"one\ntwo\n").unwrap();
        let gz = dir.path().join("0.log.20261124-101500.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(b"one\n").unwrap(); // still being written
        enc.finish().unwrap();
        let other = dir.path().join("0.log.20261124-101400.gz");
        std::fs::copy(&gz, &other).unwrap();
        let kept = drop_compressed_copies(vec![plain.clone(), gz, other.clone()]);
        assert_eq!(kept, vec![plain, other]);
    }
}
