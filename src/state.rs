//! The state file: one atomic snapshot of read positions, per-file decoding
//! state and every pod counter, taken at the same instant.
//!
//! Because offsets and counts are saved together, a restart (SIGTERM or
//! SIGKILL) resumes exactly where the counts stopped: nothing counted is read
//! again, nothing read is left uncounted. Writes go to a temporary file that is
//! fsynced and renamed over the old one, so a crash leaves either the old or
//! the new snapshot, never a torn one.

mod writer;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::classify::ClassifyState;
use crate::format::decoder::DecoderState;
use crate::format::Format;
use crate::tail::{FilePosition, RetainedPosition};
use crate::timeline::TrackerState;
pub(crate) use writer::CheckpointWriter;

/// The layout this build writes. Bumped when the layout changes in a way an
/// older build would misread; counters and probe states are stored by name,
/// so a new counter, operation or target needs no bump (an older build keeps
/// names it does not know and writes them back). Every older version loads
/// through [`StateFile`]; a newer one makes the agent refuse to start.
pub(crate) const STATE_VERSION: u32 = 2;

/// Per-file state beyond the offset: what the decoder and classifier carry between lines.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileState {
    pub position: FilePosition,
    pub format: Option<Format>,
    #[serde(default)]
    pub decoder: DecoderState,
    #[serde(default)]
    pub classify: ClassifyState,
}

/// The whole snapshot, in this build's layout (its version is written by [`save`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub files: Vec<FileState>,
    pub tracker: TrackerState,
    /// Positions of files no longer followed, kept so the same content
    /// matching again resumes instead of being counted twice (absent in
    /// files written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<RetainedPosition>,
}

/// A state file as read, by the version it was written with: `{"version":
/// N, …}` with N an integer (so the release before this one, which reads
/// the version as a number, refuses a newer file instead of misreading it).
#[derive(Debug)]
pub(crate) enum StateFile {
    /// Written by releases up to b4f2cea: probe states as an array in
    /// target order (and, before d5e4def, operations as an array too);
    /// no per-run state. The v2 types read both array forms.
    V1(Snapshot),
    /// This build's layout: counters and probe states by name.
    V2(Snapshot),
}

/// Why bytes are not a state file this build can use.
#[derive(Debug, PartialEq)]
pub(crate) enum ParseError {
    /// Written by a newer release (its version).
    TooNew(u64),
    /// Not a state file of any known version (torn, edited, another program's).
    Invalid(String),
}

/// Only the version, read before the whole snapshot: a newer layout must be
/// recognised as such even when it would not parse as this one.
#[derive(Deserialize)]
struct VersionOnly {
    version: u64,
}

/// How a snapshot is written: its version first, then its fields.
#[derive(Serialize)]
struct Tagged<'a> {
    version: u32,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
}

impl StateFile {
    /// Reads a state file of any known version.
    pub fn parse(bytes: &[u8]) -> Result<StateFile, ParseError> {
        let v = serde_json::from_slice::<VersionOnly>(bytes)
            .map_err(|e| ParseError::Invalid(format!("no version: {e}")))?
            .version;
        let snapshot = || {
            serde_json::from_slice::<Snapshot>(bytes)
                .map_err(|e| ParseError::Invalid(e.to_string()))
        };
        match v {
            1 => Ok(StateFile::V1(snapshot()?)),
            2 => Ok(StateFile::V2(snapshot()?)),
            n if n > u64::from(STATE_VERSION) => Err(ParseError::TooNew(n)),
            n => Err(ParseError::Invalid(format!("unknown version {n}"))),
        }
    }

    /// The snapshot in this build's layout, with every counter and offset as written.
    pub(crate) fn into_current(self) -> Snapshot {
        match self {
            StateFile::V1(s) => migrate_v1(s),
            StateFile::V2(s) => s,
        }
    }
}

/// v1 → v2: the counters, offsets, partials and probe states were read as
/// they are (by name or from their arrays); what v1 did not record is
/// derived: a pod with starts is inside a run, and a start with a DB
/// failure was confirmed by it.
fn migrate_v1(mut s: Snapshot) -> Snapshot {
    for (_, p) in s.tracker.pods.iter_mut() {
        if !p.run.accepted && !p.starts.is_empty() {
            p.run.accepted = true;
        }
        for st in p.starts.iter_mut() {
            st.confirmed |= st.last_db_error_at.is_some();
        }
    }
    s
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt ({reason}); it was moved to {moved_to} and the agent starts fresh")]
    Corrupt {
        path: PathBuf,
        reason: String,
        moved_to: PathBuf,
    },
    #[error("cannot write state file {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} has version {found}, written by a newer litellm-sentinel (this one reads versions 1 to {STATE_VERSION}): refusing to start rather than resetting offsets and counters. Run the release that wrote it (or newer); to start from scratch instead, stop the agent and delete the file (every counter restarts at 0 and present logs are read again per read_from)")]
    TooNew { path: PathBuf, found: u64 },
    #[error("state directory {dir} is locked by another litellm-sentinel (two agents on one state file would overwrite each other's checkpoints): stop the other agent or give this one its own --state-file")]
    Locked { dir: PathBuf },
    #[error("cannot lock state directory {dir}")]
    Lock {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Loads the snapshot, migrated to this build's layout. `Ok(None)`: no state
/// file (first start). A newer version is [`StateError::TooNew`] and the
/// file is left as it is; a corrupt file is moved aside (kept for
/// inspection) and reported; the caller starts fresh.
pub fn load(path: &Path) -> Result<Option<Snapshot>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let reason = match StateFile::parse(&bytes) {
        Ok(f) => return Ok(Some(f.into_current())),
        Err(ParseError::TooNew(found)) => {
            return Err(StateError::TooNew {
                path: path.to_path_buf(),
                found,
            })
        }
        Err(ParseError::Invalid(reason)) => reason,
    };
    let moved_to = path.with_extension("corrupt");
    let _ = std::fs::rename(path, &moved_to);
    Err(StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
        moved_to,
    })
}

/// Writes checkpoints, skipping one that is byte for byte the file already
/// on disk (an idle node rewrites and fsyncs nothing). The file on disk is
/// recognised by device, inode and size, so a state file deleted or
/// replaced behind the agent's back is written again.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    path: PathBuf,
    last: Option<(Digest, (u64, u64, u64))>,
}

/// What [`Checkpointer::save`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Saved {
    /// The snapshot was written (temp file, fsync, rename, directory fsync).
    Written,
    /// The file on disk already is this snapshot.
    Unchanged,
}

impl Checkpointer {
    /// A checkpointer of `path` that has written nothing yet.
    pub fn new(path: impl Into<PathBuf>) -> Checkpointer {
        Checkpointer {
            path: path.into(),
            last: None,
        }
    }

    /// Writes `snap` unless the file on disk already holds it. `changed`:
    /// the caller knows the state moved since the last snapshot (offsets
    /// read on), so it is written without first hashing it to compare. The
    /// snapshot is streamed (into a digest, into the file, or both at once):
    /// never held serialised in memory, which for thousands of files was
    /// the agent's largest allocation.
    pub fn save(&mut self, snap: &Snapshot, changed: bool) -> Result<Saved, StateError> {
        if !changed {
            let digest = digest_of(&self.path, snap)?;
            let on_disk = file_identity(&self.path);
            if self
                .last
                .is_some_and(|(d, id)| d == digest && on_disk == Some(id))
            {
                return Ok(Saved::Unchanged);
            }
        }
        self.last = None;
        let digest = save_hashed(&self.path, snap)?;
        self.last = file_identity(&self.path).map(|id| (digest, id));
        Ok(Saved::Written)
    }
}

/// Length and SipHash of a serialised snapshot: equal digests mean the
/// same bytes (a collision is a 2^-64 chance, and would only delay a
/// write to the next change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Digest(u64, u64);

/// A writer that hashes what goes through it into `W` (`io::Sink`: only hashes).
struct Hashing<W> {
    inner: W,
    hasher: std::hash::DefaultHasher,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: std::hash::DefaultHasher::new(),
            len: 0,
        }
    }

    fn digest(&self) -> Digest {
        use std::hash::Hasher;
        Digest(self.hasher.finish(), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::hash::Hasher;
        let n = self.inner.write(buf)?;
        self.hasher.write(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Serialised through a buffer: the hasher sees a few large writes, not
/// one per JSON token.
const SERIALISE_BUF: usize = 64 * 1024;

fn digest_of(path: &Path, snap: &Snapshot) -> Result<Digest, StateError> {
    let mut w = std::io::BufWriter::with_capacity(SERIALISE_BUF, Hashing::new(std::io::sink()));
    write_tagged(&mut w, snap)
        .and_then(|()| w.flush())
        .map_err(|source| StateError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(w.get_ref().digest())
}

/// The snapshot as JSON, tagged with this build's layout version.
fn write_tagged(w: &mut impl Write, snap: &Snapshot) -> std::io::Result<()> {
    serde_json::to_writer(
        w,
        &Tagged {
            version: STATE_VERSION,
            snapshot: snap,
        },
    )
    .map_err(std::io::Error::other)
}

fn state_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes the snapshot atomically: a temp file of its own (created with
/// `O_EXCL|O_NOFOLLOW`, mode 0600: never someone else's file or a symlink's
/// target, never readable by others even for a moment), fsync, rename over
/// the state file, fsync of the directory.
pub fn save(path: &Path, snap: &Snapshot) -> Result<(), StateError> {
    save_hashed(path, snap).map(|_| ())
}

/// [`save`], returning the digest of what it wrote.
fn save_hashed(path: &Path, snap: &Snapshot) -> Result<Digest, StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = state_dir(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("state.json");
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    // 0600: pending partial records are raw log text (connection strings,
    // keys), and container logs themselves are not world-readable.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(err)?;
    let mut write = || -> std::io::Result<Digest> {
        let mut w = std::io::BufWriter::with_capacity(SERIALISE_BUF, Hashing::new(&mut f));
        write_tagged(&mut w, snap)?;
        w.flush()?;
        let digest = w.get_ref().digest();
        drop(w);
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(digest)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Device, inode and size of the state file (None when it cannot be
/// stat'ed): tells whether the file last written is still the one on disk.
pub(crate) fn file_identity(path: &Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len()))
}

/// An exclusive lock on the state directory, held for the agent's life.
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: std::fs::File,
}

/// Takes the state directory's lock (`flock` on the directory itself, so it
/// cannot be defeated by deleting a lock file, and is released by the kernel
/// when the process dies, SIGKILL included). A second agent on the same
/// state directory gets [`StateError::Locked`].
pub(crate) fn lock_dir(path: &Path) -> Result<StateLock, StateError> {
    let dir = state_dir(path);
    let file = std::fs::File::open(dir).map_err(|source| StateError::Lock {
        dir: dir.to_path_buf(),
        source,
    })?;
    // The lock lives as long as the descriptor, which the returned guard keeps open.
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        return Err(if e == rustix::io::Errno::WOULDBLOCK {
            StateError::Locked {
                dir: dir.to_path_buf(),
            }
        } else {
            StateError::Lock {
                dir: dir.to_path_buf(),
                source: e.into(),
            }
        });
    }
    Ok(StateLock { _file: file })
}

/// State files whose checkpoints have been failing, and since when (set by
/// the tail loop, read by `/readyz`).
static FAILING: std::sync::Mutex<Vec<(PathBuf, std::time::Instant)>> =
    std::sync::Mutex::new(Vec::new());

/// Records the outcome of a checkpoint of `path`.
pub(crate) fn record_checkpoint(path: &Path, ok: bool) {
    let mut f = crate::sync::lock(&FAILING);
    let i = f.iter().position(|(p, _)| p == path);
    match (ok, i) {
        (true, Some(i)) => {
            f.swap_remove(i);
        }
        (false, None) => f.push((path.to_path_buf(), std::time::Instant::now())),
        _ => {}
    }
}

/// Since when checkpoints of `path` have been failing without a success.
pub(crate) fn failing_since(path: &Path) -> Option<std::time::Instant> {
    crate::sync::lock(&FAILING)
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, t)| *t)
}

/// How long checkpoints may fail before `/readyz` says 503: two intervals
/// (one failure may be a transient ENOSPC; two mean restarts would re-read).
static FAIL_GRACE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10_000);

/// Sets the grace above from the checkpoint interval (two intervals).
pub(crate) fn set_checkpoint_interval(interval: std::time::Duration) {
    let ms = u64::try_from(interval.as_millis().saturating_mul(2)).unwrap_or(u64::MAX);
    FAIL_GRACE.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// For `/readyz`: the state directory exists and is writable, and
/// checkpoints of `path` have not been failing for two intervals.
pub(crate) fn dir_writable(path: &Path) -> bool {
    let grace =
        std::time::Duration::from_millis(FAIL_GRACE.load(std::sync::atomic::Ordering::Relaxed));
    if failing_since(path).is_some_and(|t| t.elapsed() >= grace) {
        return false;
    }
    let dir = state_dir(path);
    let probe = dir.join(format!(
        ".litellm-sentinel-write-test.{}",
        std::process::id()
    ));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        assert!(load(&p).unwrap().is_none());
        let s = Snapshot {
            retained: Vec::new(),
            ..Default::default()
        };
        save(&p, &s).unwrap();
        assert!(load(&p).unwrap().unwrap().files.is_empty());
        let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(raw["version"], STATE_VERSION, "an integer, first: {raw}");
    }

    #[test]
    fn corrupt_file_is_moved_aside_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        std::fs::write(&p, b"{\"version\":1,\"files\":[{\"posi").unwrap();
        let e = load(&p).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        assert!(!p.exists() && d.path().join("state.corrupt").exists());
        assert!(load(&p).unwrap().is_none());
    }

    #[test]
    fn state_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        save(&p, &Snapshot::default()).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }

    #[test]
    fn write_failure_is_an_error_not_a_panic() {
        let s = Snapshot::default();
        assert!(save(Path::new("/nonexistent-dir/x/state.json"), &s).is_err());
    }

    /// A state file written by the code before this layout change (commit
    /// d5e4def, `run` on a CRI log ending in a `P` chunk, then SIGTERM)
    /// loads with every offset, partial and counter intact.
    #[test]
    fn v1_file_from_the_previous_release_loads_intact() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/state/v1-from-d5e4def.json"
            ),
            &p,
        )
        .unwrap();
        let s = load(&p).unwrap().expect("a snapshot");
        assert_eq!(s.files.len(), 1);
        let f = &s.files[0];
        assert_eq!(f.position.offset, 784);
        assert_eq!(f.position.id.ino, 10059833);
        assert_eq!(f.position.id.fingerprint, Some(13841618034095213236));
        assert_eq!(f.format, Some(Format::Cri));
        let decoder = serde_json::to_value(&f.decoder).unwrap();
        assert_eq!(
            decoder["pending"][0]["text"].as_array().map(Vec::len),
            Some(35)
        );
        assert!(s.retained.is_empty());
        let tracker = serde_json::to_value(&s.tracker).unwrap();
        let counts = &tracker["pods"][0][1]["counts"];
        assert_eq!(counts["budget_cache_misses"], 2, "{counts}");
        // Written back, it still loads the same.
        save(&p, &s).unwrap();
        let again = load(&p).unwrap().unwrap();
        assert_eq!(again.files[0].position, f.position);
    }

    #[test]
    fn newer_version_is_refused_not_reset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        let newer = br#"{"version":3,"whatever":"layout"}"#;
        std::fs::write(&p, newer).unwrap();
        let e = load(&p).unwrap_err();
        assert!(matches!(e, StateError::TooNew { found: 3, .. }), "{e}");
        let msg = e.to_string();
        for says in [
            "version 3",
            "newer",
            "refusing to start",
            "Run the release that wrote it",
            "delete the file",
        ] {
            assert!(msg.contains(says), "{says:?} missing: {msg}");
        }
        // Left where it is, byte for byte.
        assert_eq!(std::fs::read(&p).unwrap(), newer);
        assert!(!d.path().join("state.corrupt").exists());
        // Even when the newer layout would parse as this one.
        std::fs::write(
            &p,
            br#"{"version":7,"files":[],"tracker":{"pods":[],"histograms":[],"pods_dropped":0}}"#,
        )
        .unwrap();
        assert!(matches!(load(&p), Err(StateError::TooNew { found: 7, .. })));
    }

    #[test]
    fn unknown_or_missing_versions_are_corrupt_not_too_new() {
        for bytes in [
            &br#"{"version":0,"files":[]}"#[..],
            br#"{"files":[]}"#,
            br#"{"version":"2"}"#,
        ] {
            assert!(
                matches!(StateFile::parse(bytes), Err(ParseError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// The v1 encodings v2 stores by name, rewritten by name (independently
    /// of the code under test), so the raw file can be compared key by key.
    fn v1_by_name(raw: &mut serde_json::Value) {
        const OPS: [&str; 7] = [
            "spend_logs_queue",
            "get_generic_data",
            "add_deployment",
            "get_credentials",
            "budget_lookup",
            "update_spend",
            "other",
        ];
        const TARGETS: [&str; 3] = ["engine", "proxy_readiness", "database"];
        for pod in raw["tracker"]["pods"].as_array_mut().unwrap() {
            let p = &mut pod[1];
            if let Some(a) = p["counts"]["db_connect_errors"].as_array().cloned() {
                let m: serde_json::Map<_, _> = OPS
                    .iter()
                    .zip(a)
                    .filter(|(_, n)| *n != 0)
                    .map(|(k, n)| (k.to_string(), n))
                    .collect();
                p["counts"]["db_connect_errors"] = m.into();
            }
            if let Some(a) = p["probe_up"].as_array().cloned() {
                let m: serde_json::Map<_, _> = TARGETS
                    .iter()
                    .zip(a)
                    .filter(|(_, up)| !up.is_null())
                    .map(|(k, up)| (k.to_string(), up))
                    .collect();
                p["probe_up"] = m.into();
            }
        }
        const BOUNDS: [&str; 14] = [
            "0.5", "1", "2.5", "5", "10", "20", "30", "60", "120", "180", "300", "600", "900",
            "1800",
        ];
        for list in ["histograms", "outage_histograms"] {
            let Some(hs) = raw["tracker"].get_mut(list).and_then(|v| v.as_array_mut()) else {
                continue;
            };
            for h in hs {
                if let Some(a) = h[2]["buckets"].as_array().cloned() {
                    let m: serde_json::Map<_, _> = BOUNDS
                        .iter()
                        .zip(a)
                        .filter(|(_, n)| *n != 0)
                        .map(|(k, n)| (k.to_string(), n))
                        .collect();
                    h[2]["buckets"] = m.into();
                }
            }
        }
        raw.as_object_mut().unwrap().remove("version");
    }

    /// Every value of `old` is in `new` at the same place (`new` may add keys).
    fn assert_kept(old: &serde_json::Value, new: &serde_json::Value, at: &str) {
        use serde_json::Value as V;
        match (old, new) {
            (V::Object(o), V::Object(n)) => {
                for (k, v) in o {
                    let nv = n.get(k).unwrap_or_else(|| panic!("{at}.{k} lost"));
                    assert_kept(v, nv, &format!("{at}.{k}"));
                }
            }
            (V::Array(o), V::Array(n)) => {
                assert_eq!(o.len(), n.len(), "{at}: length");
                for (i, (a, b)) in o.iter().zip(n).enumerate() {
                    assert_kept(a, b, &format!("{at}[{i}]"));
                }
            }
            _ => assert_eq!(old, new, "{at}"),
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/state/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// Checkpoints written by the previous release (b4f2cea, and the first
    /// layout of d5e4def) load with every offset, partial record, fold
    /// state, counter (by name), start, histogram and probe state intact,
    /// through the tracker too, and are written back as v2.
    #[test]
    fn v1_files_migrate_with_every_counter_and_offset_intact() {
        for name in [
            "v1-node-b4f2cea.json",
            "v1-sidecar-b4f2cea.json",
            "v1-from-d5e4def.json",
        ] {
            let bytes = fixture(name);
            let mut raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(raw["version"], 1, "{name} is a v1 file");
            let file = StateFile::parse(&bytes).unwrap();
            assert!(matches!(file, StateFile::V1(_)), "{name}");
            let migrated = file.into_current();
            v1_by_name(&mut raw);
            let m = serde_json::to_value(&migrated).unwrap();
            assert_kept(&raw, &m, name);
            // Restored into a tracker, the counters are the same.
            let mut t = crate::timeline::Tracker::new(Default::default());
            t.restore(migrated.tracker.clone());
            let mut sorted = raw["tracker"].clone();
            for list in ["pods", "histograms", "outage_histograms"] {
                if let Some(a) = sorted.get_mut(list).and_then(|v| v.as_array_mut()) {
                    a.sort_by_key(|e| e.to_string());
                }
            }
            let mut restored = serde_json::to_value(t.snapshot()).unwrap();
            for list in ["pods", "histograms", "outage_histograms"] {
                if let Some(a) = restored.get_mut(list).and_then(|v| v.as_array_mut()) {
                    a.sort_by_key(|e| e.to_string());
                }
            }
            assert_kept(&sorted, &restored, name);
            for (pod, p) in raw["tracker"]["pods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (&e[0], &e[1]))
            {
                let pod: crate::model::PodRef = serde_json::from_value(pod.clone()).unwrap();
                let c = &t.pod(&pod).unwrap().counts;
                for counter in crate::model::Counter::NAMED {
                    let want = p["counts"]
                        .get(counter.name())
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0);
                    assert_eq!(c[counter], want, "{name} {pod} {}", counter.name());
                }
                let ops_want: u64 = p["counts"]["db_connect_errors"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter_map(|v| v.as_u64())
                    .sum();
                assert_eq!(c.db_connect_errors_total(), ops_want, "{name} {pod}");
            }
            // Written back as v2, by name, and read back the same.
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("state.json");
            save(&p, &migrated).unwrap();
            let v2: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(v2["version"], 2);
            for pod in v2["tracker"]["pods"].as_array().unwrap() {
                assert!(
                    pod[1]["probe_up"].is_object(),
                    "{name}: {}",
                    pod[1]["probe_up"]
                );
                assert!(pod[1]["counts"]["db_connect_errors"].is_object());
            }
            let again = load(&p).unwrap().unwrap();
            assert_eq!(serde_json::to_value(&again).unwrap(), m, "{name}");
        }
    }

    #[test]
    fn the_sidecar_fixture_keeps_its_probe_states_by_target() {
        let s = StateFile::parse(&fixture("v1-sidecar-b4f2cea.json"))
            .unwrap()
            .into_current();
        let p = &s.tracker.pods[0].1;
        use crate::model::Target;
        assert_eq!(p.probe_up.get(&Target::Engine), Some(&false));
        assert_eq!(p.probe_up.get(&Target::ProxyReadiness), Some(&true));
        assert_eq!(p.probe_up.get(&Target::Database), None, "never probed");
    }

    #[test]
    fn checkpointer_writes_only_changes_and_a_file_replaced_behind_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        let mut c = Checkpointer::new(&p);
        let mut snap = Snapshot::default();
        assert_eq!(c.save(&snap, false).unwrap(), Saved::Written);
        assert_eq!(c.save(&snap, false).unwrap(), Saved::Unchanged);
        snap.tracker.pods_dropped = 1;
        assert_eq!(c.save(&snap, false).unwrap(), Saved::Written);
        assert_eq!(load(&p).unwrap().unwrap().tracker.pods_dropped, 1);
        assert_eq!(c.save(&snap, false).unwrap(), Saved::Unchanged);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(
            c.save(&snap, false).unwrap(),
            Saved::Written,
            "deleted: written again"
        );
        assert!(p.exists());
        // Known changed: written without comparing, and the digest taken
        // while writing is what the next comparison finds.
        snap.tracker.pods_dropped = 2;
        assert_eq!(c.save(&snap, true).unwrap(), Saved::Written);
        assert_eq!(load(&p).unwrap().unwrap().tracker.pods_dropped, 2);
        assert_eq!(c.save(&snap, false).unwrap(), Saved::Unchanged);
        assert_eq!(
            c.save(&snap, true).unwrap(),
            Saved::Written,
            "told it changed"
        );
        // A failed write is not remembered as written.
        let mut bad = Checkpointer::new(d.path().join("missing-dir/state.json"));
        assert!(bad.save(&snap, false).is_err());
        assert!(bad.save(&snap, true).is_err());
        assert!(bad.save(&snap, false).is_err());
    }

    #[test]
    fn second_lock_on_the_state_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        let held = lock_dir(&p).unwrap();
        let e = lock_dir(&p).unwrap_err();
        assert!(matches!(e, StateError::Locked { .. }), "{e}");
        drop(held);
        lock_dir(&p).unwrap();
    }

    #[test]
    fn planted_temp_names_and_symlinks_are_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        // The old fixed temp name, planted as a symlink and as a 0644 file.
        std::os::unix::fs::symlink(&victim, d.path().join(".state.json.tmp")).unwrap();
        save(&p, &Snapshot::default()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(load(&p).unwrap().is_some());
        let leftovers: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(".state.json.tmp")]);
    }

    #[test]
    fn failing_checkpoints_make_the_directory_unready_after_two_intervals() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        set_checkpoint_interval(std::time::Duration::from_millis(20));
        assert!(dir_writable(&p));
        record_checkpoint(&p, false);
        assert!(dir_writable(&p), "one failure is not yet unready");
        let t0 = std::time::Instant::now();
        while dir_writable(&p) {
            assert!(t0.elapsed() < std::time::Duration::from_secs(5));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(t0.elapsed() >= std::time::Duration::from_millis(30));
        record_checkpoint(&p, true);
        assert!(dir_writable(&p));
    }
}
