//! The state file: one atomic snapshot of read positions, per-file decoding
//! state and every pod counter, taken at the same instant.
//!
//! Because offsets and counts are saved together, a restart (SIGTERM or
//! SIGKILL) resumes exactly where the counts stopped: nothing counted is read
//! again, nothing read is left uncounted. Writes go to a temporary file that is
//! fsynced and renamed over the old one, so a crash leaves either the old or
//! the new snapshot, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::classify::ClassifyState;
use crate::format::decoder::DecoderState;
use crate::format::Format;
use crate::tail::{FilePosition, RetainedPosition};
use crate::timeline::TrackerState;

/// Bumped when the layout changes incompatibly. Fields added with a serde
/// default keep the version: a file written by this build still loads in the
/// previous release (a DaemonSet rollback keeps its offsets and counters),
/// and every v1 file loads here (tests/fixtures/state/v1-from-d5e4def.json).
pub const STATE_VERSION: u32 = 1;

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

/// The whole snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub files: Vec<FileState>,
    pub tracker: TrackerState,
    /// Positions of files no longer followed, kept so the same content
    /// matching again resumes instead of being counted twice (absent in
    /// files written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<RetainedPosition>,
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
    #[error("state file {path} has version {found}, newer than this build understands ({STATE_VERSION}): refusing to start rather than resetting offsets and counters. Run the newer release, or move the file away to start fresh")]
    TooNew { path: PathBuf, found: u32 },
    #[error("state directory {dir} is locked by another litellm-sentinel (two agents on one state file would overwrite each other's checkpoints): stop the other agent or give this one its own --state-file")]
    Locked { dir: PathBuf },
    #[error("cannot lock state directory {dir}")]
    Lock {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Only the version, read before the whole snapshot: a newer layout must be
/// recognised as such even when it would not parse as this one.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Loads the snapshot. `Ok(None)`: no state file (first start).
/// A corrupt file is moved aside (kept for inspection) and reported; the caller starts fresh.
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
    if let Ok(v) = serde_json::from_slice::<VersionOnly>(&bytes) {
        if v.version > STATE_VERSION {
            return Err(StateError::TooNew {
                path: path.to_path_buf(),
                found: v.version,
            });
        }
    }
    let parsed: Result<Snapshot, String> =
        serde_json::from_slice(&bytes).map_err(|e| e.to_string());
    let reason = match parsed {
        Ok(s) if s.version == STATE_VERSION => return Ok(Some(s)),
        Ok(s) => format!("version {} is not {STATE_VERSION}", s.version),
        Err(e) => e,
    };
    let moved_to = path.with_extension("corrupt");
    let _ = std::fs::rename(path, &moved_to);
    Err(StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
        moved_to,
    })
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
    let bytes = serde_json::to_vec(snap).map_err(|e| StateError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    save_bytes(path, &bytes)
}

/// [`save`] of an already serialised snapshot (the caller compares bytes to
/// skip unchanged checkpoints).
pub fn save_bytes(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
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
    let mut write = || -> std::io::Result<()> {
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Device, inode and size of the state file (None when it cannot be
/// stat'ed): tells whether the file last written is still the one on disk.
pub fn file_identity(path: &Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len()))
}

/// An exclusive lock on the state directory, held for the agent's life.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// Takes the state directory's lock (`flock` on the directory itself, so it
/// cannot be defeated by deleting a lock file, and is released by the kernel
/// when the process dies, SIGKILL included). A second agent on the same
/// state directory gets [`StateError::Locked`].
pub fn lock_dir(path: &Path) -> Result<StateLock, StateError> {
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
pub fn record_checkpoint(path: &Path, ok: bool) {
    let Ok(mut f) = FAILING.lock() else { return };
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
pub fn failing_since(path: &Path) -> Option<std::time::Instant> {
    FAILING
        .lock()
        .ok()?
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, t)| *t)
}

/// How long checkpoints may fail before `/readyz` says 503: two intervals
/// (one failure may be a transient ENOSPC; two mean restarts would re-read).
static FAIL_GRACE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10_000);

/// Sets the grace above from the checkpoint interval (two intervals).
pub fn set_checkpoint_interval(interval: std::time::Duration) {
    let ms = u64::try_from(interval.as_millis().saturating_mul(2)).unwrap_or(u64::MAX);
    FAIL_GRACE.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// For `/readyz`: the state directory exists and is writable, and
/// checkpoints of `path` have not been failing for two intervals.
pub fn dir_writable(path: &Path) -> bool {
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
            version: STATE_VERSION,
            ..Default::default()
        };
        save(&p, &s).unwrap();
        assert_eq!(load(&p).unwrap().unwrap().version, STATE_VERSION);
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
        assert_eq!(s.version, 1);
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
        std::fs::write(&p, br#"{"version":2,"whatever":"layout"}"#).unwrap();
        let e = load(&p).unwrap_err();
        assert!(matches!(e, StateError::TooNew { found: 2, .. }), "{e}");
        assert!(e.to_string().contains("refusing to start"), "{e}");
        // Left where it is, untouched.
        assert!(p.exists() && !d.path().join("state.corrupt").exists());
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
        let snap = Snapshot {
            version: STATE_VERSION,
            ..Default::default()
        };
        save(&p, &snap).unwrap();
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
