//! The collector's data directory and store files are private to its user, also when it
//! runs outside systemd (whose unit sets `StateDirectoryMode=0700` and `UMask=0077`): the
//! store holds token hashes, raw results and probes' addresses.
//!
//! The directory is created 0700 (an existing one is left as its owner set it), and after the
//! store opened its files are made 0600. Files sled creates later (snapshots) get the
//! process umask's mode, but inside a 0700 directory no other user can reach them; there is
//! no umask call without `unsafe` or a new dependency, and the daemon keeps neither.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes the embedded store's files in `dir` (`conf`, `db`, `snap.*`, `blobs/`) readable by
/// their owner only.
pub fn restrict_store_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type()?;
        if kind.is_file() && (name == "conf" || name == "db" || name.starts_with("snap.")) {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
        } else if kind.is_dir() && name == "blobs" {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700))?;
            for blob in fs::read_dir(entry.path())? {
                let blob = blob?;
                if blob.file_type()?.is_file() {
                    fs::set_permissions(blob.path(), fs::Permissions::from_mode(0o600))?;
                }
            }
        }
    }
    Ok(())
}

/// Whether `dir` exists or can be created, and a file can be written in it (checked by
/// writing and removing one).
pub fn check_writable_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".sixmap-write-check-{}", std::process::id()));
    fs::write(&probe, b"")?;
    fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_and_its_store_are_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let store = SledStore::open(&dir).unwrap();
        crate::store::Store::flush(&store).unwrap();
        restrict_store_files(&dir).unwrap();
        let mut checked = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 2, "conf and db at least");
        // An existing directory keeps the mode its owner gave it.
        let shared = parent.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o750);
    }

    #[test]
    fn unwritable_dirs_are_found() {
        let parent = tempfile::tempdir().unwrap();
        assert!(check_writable_dir(&parent.path().join("dumps/new")).is_ok());
        let file = parent.path().join("a-file");
        fs::write(&file, b"x").unwrap();
        assert!(check_writable_dir(&file.join("dumps")).is_err());
    }
}
