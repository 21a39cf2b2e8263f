//! The probe's persistent state: its identity (from enrollment) and its boot counter.
//!
//! Files are replaced atomically (write, fsync, rename) so a power cut leaves the old or the
//! new version, never half of one.

use serde::{Deserialize, Serialize};
use sixmap_shared::{BootEpoch, ProbeId, ProbeSecret};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const IDENTITY_FILE: &str = "identity.toml";
const BOOT_EPOCH_FILE: &str = "boot_epoch";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({reason}); move it aside to enroll again")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub probe_id: ProbeId,
    pub probe_secret: ProbeSecret,
    /// Collector that issued the identity: an identity is only valid there.
    pub collector: String,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Writes `contents` to `path` atomically, readable only by the owner, and makes it durable.
fn replace_file(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    write_atomically(path, contents, true)
}

/// Writes `contents` to `path` atomically (readers see the old or the new file, whole), readable
/// only by the owner. `durable` adds the fsyncs; files rewritten every few seconds skip them
/// to spare SD cards.
pub(crate) fn write_atomically(
    path: &Path,
    contents: &[u8],
    durable: bool,
) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(contents).map_err(io("write", &tmp))?;
    if durable {
        file.sync_all().map_err(io("sync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    if durable
        && let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        // Persist the rename itself; failure here only weakens durability, so it is not fatal.
        let _ = dir.sync_all();
    }
    Ok(())
}

pub fn ensure_state_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(io("create state directory", dir))
}

pub fn load_identity(dir: &Path) -> Result<Option<Identity>, StateError> {
    let path = dir.join(IDENTITY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &path)(e)),
    };
    sixmap_shared::config::parse_toml(&text)
        .map(Some)
        .map_err(|reason| StateError::Corrupt { path, reason })
}

pub fn save_identity(dir: &Path, identity: &Identity) -> Result<(), StateError> {
    let path = dir.join(IDENTITY_FILE);
    let text = toml::to_string(identity).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    replace_file(&path, text.as_bytes())
}

/// Increments and persists the boot counter, returning the new epoch (1 on first start).
/// Persisted before any result is produced, so sequence numbers never repeat across restarts.
pub fn next_boot_epoch(dir: &Path) -> Result<BootEpoch, StateError> {
    let path = dir.join(BOOT_EPOCH_FILE);
    let previous: BootEpoch = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| StateError::Corrupt {
            path: path.clone(),
            reason: format!("{:?} is not a number", text.trim()),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io("read", &path)(e)),
    };
    let next = previous.checked_add(1).ok_or_else(|| StateError::Corrupt {
        path: path.clone(),
        reason: "boot epoch overflow".into(),
    })?;
    replace_file(&path, format!("{next}\n").as_bytes())?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_boot_epoch_increments() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_identity(dir.path()).unwrap(), None);
        let identity = Identity {
            probe_id: ProbeId::random().unwrap(),
            probe_secret: ProbeSecret::random().unwrap(),
            collector: "http://[::1]:7400".into(),
        };
        save_identity(dir.path(), &identity).unwrap();
        assert_eq!(load_identity(dir.path()).unwrap(), Some(identity));
        assert_eq!(next_boot_epoch(dir.path()).unwrap(), 1);
        assert_eq!(next_boot_epoch(dir.path()).unwrap(), 2);
    }

    #[test]
    fn corrupt_state_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(BOOT_EPOCH_FILE), "banana").unwrap();
        let err = next_boot_epoch(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("boot_epoch") && err.contains("banana"),
            "{err}"
        );
        std::fs::write(dir.path().join(IDENTITY_FILE), "probe_id = 3").unwrap();
        let err = load_identity(dir.path()).unwrap_err().to_string();
        assert!(err.contains("identity.toml"), "{err}");
    }
}
