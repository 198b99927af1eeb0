//! Files only their owner may read: the keys file and the conversation log. All code that
//! depends on the platform lives here, so the rest of the crate is the same everywhere.
//!
//! * **Unix**: files are created with mode 0600 and folders with 0700; the keys file is
//!   refused when group or others have any permission on it; the log, its SQLite side files
//!   and its folder are tightened when they are not private (a folder only when it is the
//!   user's own and not a shared, sticky one like `/tmp`).
//! * **Elsewhere** (Windows): files and folders are created with the platform's defaults and
//!   no mode is checked. They live in the user's profile, whose access list already keeps
//!   other users out; this crate does not read or change access lists.
//!
//! The fallback is compiled into the unit tests on Unix too, so it cannot rot unseen.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

#[cfg(unix)]
pub(crate) use self::unix::{create_private, loose_mode, make_private};

#[cfg(not(unix))]
pub(crate) use self::other::{create_private, loose_mode, make_private};

#[cfg(unix)]
mod unix {
    use std::fs::{File, Metadata};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    /// Creates `path`, which must not exist, for writing, readable by its owner only (0600).
    pub(crate) fn create_private(path: &Path) -> io::Result<File> {
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
    }

    /// The file's permission bits when group or others have any of them.
    pub(crate) fn loose_mode(meta: &Metadata) -> Option<u32> {
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }

    /// Creates the folder of `path` (0700) and the file (0600) if missing, and takes group
    /// and other permissions away from existing ones, before SQLite opens the file (its
    /// journal and WAL files get the database file's permissions). An existing folder is
    /// tightened only when it belongs to the user and is not a shared one (sticky, like /tmp).
    pub(crate) fn make_private(path: &Path, dir: &Path) -> Result<(), String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create its folder: {e}"))?;
        let tighten = |p: &Path, mode: u32| -> Result<(), String> {
            let meta = std::fs::metadata(p).map_err(|e| e.to_string())?;
            if meta.permissions().mode() & 0o077 != 0 {
                let private = (meta.permissions().mode() & 0o700) | mode;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(private))
                    .map_err(|e| format!("cannot make {} private: {e}", p.display()))?;
            }
            Ok(())
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create it: {e}"))?;
        tighten(path, 0o600)?;
        let (dir_meta, file_meta) =
            (std::fs::metadata(dir).map_err(|e| e.to_string())?, file.metadata().map_err(|e| e.to_string())?);
        if dir_meta.uid() == file_meta.uid() && dir_meta.mode() & 0o1000 == 0 {
            tighten(dir, 0o700)?;
        }
        for suffix in ["-journal", "-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            if side.exists() {
                tighten(&side, 0o600)?;
            }
        }
        Ok(())
    }
}

#[cfg(any(not(unix), test))]
mod other {
    use std::fs::{File, Metadata};
    use std::io;
    use std::path::Path;

    /// Creates `path`, which must not exist, for writing, with the platform's default access.
    pub(crate) fn create_private(path: &Path) -> io::Result<File> {
        std::fs::OpenOptions::new().write(true).create_new(true).open(path)
    }

    /// No mode to check: the profile folder's access list protects the file.
    pub(crate) fn loose_mode(_meta: &Metadata) -> Option<u32> {
        None
    }

    /// Creates the folder of `path`; SQLite creates the file.
    pub(crate) fn make_private(_path: &Path, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create its folder: {e}"))
    }
}

// Signatures both sides share, checked at compile time on every platform.
const _: fn(&Path) -> io::Result<File> = create_private;
const _: fn(&Metadata) -> Option<u32> = loose_mode;
const _: fn(&Path, &Path) -> Result<(), String> = make_private;

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
    }

    #[test]
    fn unix_files_are_owner_only_and_loose_modes_are_seen() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let path = dir.path().join("f");
        create_private(&path).expect("creates").write_all(b"x").expect("writes");
        assert_eq!(mode(&path), 0o600);
        assert!(create_private(&path).is_err(), "an existing file was opened");
        assert_eq!(loose_mode(&std::fs::metadata(&path).expect("exists")), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(loose_mode(&std::fs::metadata(&path).expect("exists")), Some(0o640));
    }

    #[test]
    fn unix_log_files_and_folders_are_tightened_but_not_shared_folders() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let folder = dir.path().join("a").join("b");
        let path = folder.join("logs.db");
        make_private(&path, &folder).expect("creates");
        assert_eq!((mode(&path), mode(&folder)), (0o600, 0o700));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let wal = folder.join("logs.db-wal");
        std::fs::write(&wal, b"").expect("writes");
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        make_private(&path, &folder).expect("tightens");
        assert_eq!((mode(&path), mode(&folder), mode(&wal)), (0o600, 0o700, 0o600));
        // A shared (sticky) folder keeps its mode.
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        make_private(&path, &folder).expect("opens");
        assert_eq!(std::fs::metadata(&folder).expect("exists").permissions().mode() & 0o1777, 0o1777);
    }

    /// The other platforms' code, run here: it creates what is missing and checks no mode.
    #[test]
    fn the_fallback_creates_and_checks_nothing() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let folder = dir.path().join("x");
        let path = folder.join("f");
        other::make_private(&path, &folder).expect("creates the folder");
        assert!(folder.is_dir() && !path.exists());
        other::create_private(&path).expect("creates").write_all(b"x").expect("writes");
        assert!(other::create_private(&path).is_err(), "an existing file was opened");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert_eq!(other::loose_mode(&std::fs::metadata(&path).expect("exists")), None);
    }
}
