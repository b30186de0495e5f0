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
use crate::tail::FilePosition;
use crate::timeline::TrackerState;

/// Bumped when the layout changes incompatibly.
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
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
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
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
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

/// Writes the snapshot atomically: temp file, fsync, rename, fsync of the directory.
pub fn save(path: &Path, snap: &Snapshot) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec(snap).map_err(|e| err(std::io::Error::other(e)))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("state.json")
    ));
    let write = || -> std::io::Result<()> {
        // 0600: pending partial records are raw log text (connection strings,
        // keys), and container logs themselves are not world-readable.
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?
        };
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Checks that the state directory exists and is writable (for `/readyz`).
pub fn dir_writable(path: &Path) -> bool {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(".litellm-sentinel-write-test");
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
}
