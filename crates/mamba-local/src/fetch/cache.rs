//! The model cache on disk: where it is, what it holds, the lock that keeps two downloads of
//! one file apart, and the checks a file passes before it enters.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};
use mamba_backends::{Error, ErrorKind};
use sha2::{Digest, Sha256};

use super::spec::ModelSpec;

/// The cache directory from the environment: `MAMBA_CACHE_DIR`, else `$XDG_CACHE_HOME/mamba`,
/// else `~/.cache/mamba`. `None` when none of them is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name))
}

fn cache_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("MAMBA_CACHE_DIR")
        .or_else(|| set("XDG_CACHE_HOME").map(|d| d.join("mamba")))
        .or_else(|| set("HOME").map(|d| d.join(".cache").join("mamba")))
}

/// A model file found in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachedModel {
    /// Where it is.
    pub path: PathBuf,
    /// Its file name.
    pub file_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The known model it is, by name, when its file name and size match one.
    pub known_as: Option<String>,
}

pub(crate) fn io_error(what: String, e: io::Error) -> Error {
    Error::new(ErrorKind::Config, format!("{what}: {e}")).with_source(e)
}

/// The `models` folder of a cache directory.
pub(crate) fn models_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("models")
}

/// The spec's file in the cache when it is there whole (right size). Files only enter the
/// cache after their sha256 was checked, so the size is enough here.
pub(crate) fn cached_file(cache_dir: &Path, spec: &ModelSpec) -> Option<PathBuf> {
    let path = models_dir(cache_dir).join(&spec.file_name);
    match fs::metadata(&path) {
        Ok(meta) if meta.is_file() && meta.len() == spec.size => Some(path),
        _ => None,
    }
}

/// The `.gguf` files in the cache, by name.
pub(crate) fn list(cache_dir: &Path) -> Result<Vec<CachedModel>, Error> {
    let dir = models_dir(cache_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(format!("cannot read the model cache {}", dir.display()), e)),
    };
    let known = ModelSpec::known();
    let mut models = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || !file_name.to_ascii_lowercase().ends_with(".gguf") {
            continue;
        }
        let known_as = known.iter().find(|k| k.file_name == file_name && k.size == meta.len()).map(|k| k.name.clone());
        models.push(CachedModel { path: entry.path(), file_name, size: meta.len(), known_as });
    }
    models.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(models)
}

/// An exclusive lock on one cache file's download, held until dropped. Two processes getting
/// the same model take turns; the second then finds the file in the cache.
#[derive(Debug)]
pub(crate) struct DownloadLock {
    _file: File,
}

impl DownloadLock {
    /// Takes the lock at once, or `None` when another process holds it.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<DownloadLock>, Error> {
        let file = open_lock(path)?;
        match FileExt::try_lock(&file) {
            Ok(()) => Ok(Some(DownloadLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(io_error(format!("cannot lock {}", path.display()), e)),
        }
    }

    /// Waits for the lock (blocking: call it off the async threads).
    pub(crate) fn acquire(path: &Path) -> Result<DownloadLock, Error> {
        let file = open_lock(path)?;
        FileExt::lock(&file).map_err(|e| io_error(format!("cannot lock {}", path.display()), e))?;
        Ok(DownloadLock { _file: file })
    }
}

fn open_lock(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(format!("cannot create the lock file {}", path.display()), e))
}

/// The sha256 of a file, lowercase hex (blocking).
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a finished `.part` file against the spec and moves it into the cache in one rename.
/// A file that does not match is deleted. Blocking.
pub(crate) fn verify_and_commit(part: &Path, dest: &Path, spec: &ModelSpec, from: &str) -> Result<(), Error> {
    let size = fs::metadata(part).map_err(|e| io_error(format!("cannot read {}", part.display()), e))?.len();
    if size != spec.size {
        let _ = fs::remove_file(part);
        return Err(Error::new(
            ErrorKind::Decode,
            format!("{from} gave {size} bytes where {} has {}; the file was discarded", spec.file_name, spec.size),
        ));
    }
    let sha = sha256_file(part).map_err(|e| io_error(format!("cannot read {}", part.display()), e))?;
    if sha != spec.sha256 {
        let _ = fs::remove_file(part);
        return Err(Error::new(
            ErrorKind::Decode,
            format!("{from} gave a file whose sha256 is {sha}, not the pinned {}; the file was discarded", spec.sha256),
        ));
    }
    fs::rename(part, dest).map_err(|e| io_error(format!("cannot move the model into {}", dest.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn cache_dir_order() {
        fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
        }
        const ALL: &[(&str, &str)] = &[("MAMBA_CACHE_DIR", "/m"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(cache_dir_from(env(ALL)), Some(PathBuf::from("/m")));
        assert_eq!(cache_dir_from(env(&ALL[1..])), Some(PathBuf::from("/x/mamba")));
        assert_eq!(cache_dir_from(env(&ALL[2..])), Some(PathBuf::from("/h/.cache/mamba")));
        assert_eq!(
            cache_dir_from(env(&[("MAMBA_CACHE_DIR", ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/mamba"))
        );
        assert_eq!(cache_dir_from(env(&[])), None);
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = DownloadLock::try_acquire(&path).unwrap();
        assert!(held.is_some());
        assert!(DownloadLock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(DownloadLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn a_wrong_file_never_enters_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("m.gguf.part");
        let dest = dir.path().join("m.gguf");
        fs::write(&part, b"hello").unwrap();
        let good = sha256_file(&part).unwrap();
        assert_eq!(good, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let spec = ModelSpec::new("m", "m.gguf", 5, "00".repeat(32));
        let err = verify_and_commit(&part, &dest, &spec, "test").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.message().contains("sha256"), "{}", err.message());
        assert!(!part.exists() && !dest.exists());
        fs::write(&part, b"hello!").unwrap();
        let spec = ModelSpec::new("m", "m.gguf", 5, good);
        assert!(verify_and_commit(&part, &dest, &spec, "test").unwrap_err().message().contains("6 bytes"));
        fs::write(&part, b"hello").unwrap();
        verify_and_commit(&part, &dest, &spec, "test").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        assert!(!part.exists());
    }

    #[test]
    fn listing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
        fs::create_dir_all(models_dir(dir.path())).unwrap();
        fs::write(models_dir(dir.path()).join("b.gguf"), b"12").unwrap();
        fs::write(models_dir(dir.path()).join("a.GGUF"), b"1").unwrap();
        fs::write(models_dir(dir.path()).join("c.gguf.part"), b"1").unwrap();
        fs::write(models_dir(dir.path()).join("c.gguf.lock"), b"").unwrap();
        let listed = list(dir.path()).unwrap();
        let names: Vec<_> = listed.iter().map(|m| (m.file_name.as_str(), m.size)).collect();
        assert_eq!(names, [("a.GGUF", 1), ("b.gguf", 2)]);
    }
}
