//! The probe's persistent state: its identity (from enrollment) and its boot counter.
//!
//! Identity files: `identity.toml` (probe id, collector, CA fingerprint), `key.pem` (the
//! probe's private key, generated on first start, mode 0600, never sent anywhere), `cert.der`
//! (its client certificate from the collector) and `ca.der` (the collector's CA, the only
//! trust anchor for the collector).
//!
//! Files are replaced atomically (write, fsync, rename) so a power cut leaves the old or the
//! new version, never half of one.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use sixmap_shared::{BootEpoch, ProbeId};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const IDENTITY_FILE: &str = "identity.toml";
const BOOT_EPOCH_FILE: &str = "boot_epoch";
const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.der";
const CA_FILE: &str = "ca.der";
/// Written when the collector revoked this probe; the probe then refuses to start.
const REVOKED_FILE: &str = "revoked";

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
    /// Collector that issued the identity: an identity is only valid there.
    pub collector: String,
    /// SHA-256 of the collector's CA certificate (`ca.der`), from the enrollment token.
    pub ca_sha256: String,
}

/// What the probe presents and trusts in its TLS sessions with the collector.
#[derive(Debug)]
pub struct Credentials {
    pub key: PrivateKeyDer<'static>,
    pub certificate: CertificateDer<'static>,
    pub ca: CertificateDer<'static>,
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

/// Creates the state directory private (0700) and makes what an older version left in it
/// private too: it holds the key, the identity and raw results, also outside systemd (whose
/// unit sets the same modes).
pub fn ensure_state_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create state directory", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("make private", dir))?;
    make_private(dir);
    Ok(())
}

/// Creates `dir` (0700) if missing; an existing one is left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io("create", dir)(e)),
    }
}

/// Takes group and other permissions away from everything under `dir` (files 0600,
/// directories 0700; symbolic links are not followed). Best effort: a file that cannot be
/// changed is still protected by the private directory above it.
pub(crate) fn make_private(dir: &Path) {
    fn walk(dir: &Path, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                if mode & 0o077 != 0 {
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
                }
                if depth > 0 {
                    walk(&path, depth - 1);
                }
            } else if meta.is_file() && mode & 0o077 != 0 {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    walk(dir, 3);
}

/// New files of this process (the outbox's storage engine makes its own) get no group or
/// other permissions.
#[allow(unsafe_code)]
pub fn private_umask() {
    // SAFETY: umask(2) only sets the process's file mode creation mask; it cannot fail and
    // touches no memory.
    unsafe {
        libc::umask(0o077);
    }
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

/// The probe's key pair, generated and saved (mode 0600) on first use.
pub fn load_or_create_key(dir: &Path) -> Result<rcgen::KeyPair, StateError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => rcgen::KeyPair::from_pem(&text).map_err(|e| StateError::Corrupt {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = rcgen::KeyPair::generate().map_err(|e| StateError::Corrupt {
                path: path.clone(),
                reason: format!("cannot generate a key pair: {e}"),
            })?;
            replace_file(&path, key.serialize_pem().as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(io("read", &path)(e)),
    }
}

/// Saves what enrollment returned; the identity file goes last, so an identity on disk always
/// has its certificate beside it.
pub fn save_enrollment(
    dir: &Path,
    identity: &Identity,
    certificate: &[u8],
    ca: &[u8],
) -> Result<(), StateError> {
    replace_file(&dir.join(CERT_FILE), certificate)?;
    replace_file(&dir.join(CA_FILE), ca)?;
    save_identity(dir, identity)
}

/// The key, certificate and CA saved at enrollment.
pub fn load_credentials(dir: &Path) -> Result<Credentials, StateError> {
    let key = load_or_create_key(dir)?;
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(io("read", &path))
    };
    Ok(Credentials {
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        certificate: CertificateDer::from(read(CERT_FILE)?),
        ca: CertificateDer::from(read(CA_FILE)?),
    })
}

/// Remembers that the collector revoked this probe, with its message.
pub fn mark_revoked(dir: &Path, message: &str) -> Result<(), StateError> {
    replace_file(&dir.join(REVOKED_FILE), message.as_bytes())
}

/// The collector's message if it revoked this probe earlier.
pub fn revoked(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(REVOKED_FILE)).ok()
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
            collector: "https://[::1]:7400".into(),
            ca_sha256: "ab".repeat(32),
        };
        save_identity(dir.path(), &identity).unwrap();
        assert_eq!(load_identity(dir.path()).unwrap(), Some(identity));
        assert_eq!(next_boot_epoch(dir.path()).unwrap(), 1);
        assert_eq!(next_boot_epoch(dir.path()).unwrap(), 2);
    }

    #[test]
    fn the_key_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_key(dir.path()).unwrap();
        let b = load_or_create_key(dir.path()).unwrap();
        assert_eq!(a.serialize_der(), b.serialize_der());
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(revoked(dir.path()), None);
        mark_revoked(dir.path(), "gone").unwrap();
        assert_eq!(revoked(dir.path()).as_deref(), Some("gone"));
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
