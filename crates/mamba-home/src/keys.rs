//! Saved API keys: a JSON object of name → key in `keys.json` in the data folder, which an
//! endpoint of the config file names with `key = "NAME"`.
//!
//! The file is readable by its owner only: on Unix it is written with mode 0600 and refused
//! on every read when group or others have any permission on it (other platforms: see the
//! crate's [platform notes](crate#platforms)). It is replaced atomically (written beside,
//! synced, renamed). Keys are held in [`SecretString`]s; no error or `Debug` output holds one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, ErrorKind};

/// The keys file at one path. Every call reads (and checks) the file again, so two programs
/// can share it.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

/// Checks a key's name: letters, digits, `-`, `_` and `.`, at least one.
pub fn check_name(name: &str) -> Result<(), Error> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::KeyName, format!("key name {name:?}: use letters, digits, '-', '_' and '.'")))
    }
}

impl KeyFile {
    /// The keys file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> KeyFile {
        KeyFile { path: path.into() }
    }

    /// The keys file in the data folder ([`keys_path`](crate::paths::keys_path)).
    pub fn open_default() -> Result<KeyFile, Error> {
        Ok(KeyFile::new(crate::paths::keys_path()?))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, e: std::io::Error) -> Error {
        Error::with_source(ErrorKind::Keys, format!("{}: {e}", self.path.display()), e)
    }

    /// All saved keys (no file: none). A file others can read is refused
    /// ([`ErrorKind::Keys`]) before it is read.
    pub fn load(&self) -> Result<BTreeMap<String, SecretString>, Error> {
        let path = &self.path;
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.failed(e)),
        };
        if let Some(mode) = crate::private::loose_mode(&meta) {
            return Err(Error::new(
                ErrorKind::Keys,
                format!(
                    "{}: the keys file can be read by others (mode {mode:o}); refusing to use it. Run: chmod 600 {}",
                    path.display(),
                    path.display()
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| self.failed(e))?;
        // Parsed into plain strings, which move straight into secrets; serde_json's error
        // names the place only, never the text, and is not kept as a source all the same.
        let raw: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Keys,
                format!("{}: not a keys file (line {}, column {})", path.display(), e.line(), e.column()),
            )
        })?;
        Ok(raw.into_iter().map(|(name, key)| (name, SecretString::from(key))).collect())
    }

    /// Replaces the file with `keys`, creating its folder if needed.
    pub fn save(&self, keys: &BTreeMap<String, SecretString>) -> Result<(), Error> {
        let path = &self.path;
        let fail = |e: std::io::Error| {
            Error::with_source(ErrorKind::Keys, format!("{}: cannot write the keys file: {e}", path.display()), e)
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let plain: BTreeMap<&str, &str> = keys.iter().map(|(n, k)| (n.as_str(), k.expose_secret())).collect();
        let text = serde_json::to_string_pretty(&plain).map_err(|e| Error::new(ErrorKind::Keys, e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = crate::private::create_private(&tmp).map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(fail)?;
        Ok(())
    }

    /// The key saved as `name` ([`ErrorKind::NoKey`] when there is none).
    pub fn get(&self, name: &str) -> Result<SecretString, Error> {
        let mut keys = self.load()?;
        keys.remove(name).ok_or_else(|| {
            Error::new(
                ErrorKind::NoKey,
                format!("no key named {name:?} is saved; save one with: mamba-llm keys set {name}"),
            )
        })
    }

    /// The saved keys' names, in order.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        Ok(self.load()?.into_keys().collect())
    }

    /// Saves `key` as `name` (checked with [`check_name`]), replacing a key of that name.
    pub fn set(&self, name: &str, key: SecretString) -> Result<(), Error> {
        check_name(name)?;
        let mut keys = self.load()?;
        keys.insert(name.to_owned(), key);
        self.save(&keys)
    }

    /// Deletes the key saved as `name`; false when there was none (the file is not written).
    pub fn remove(&self, name: &str) -> Result<bool, Error> {
        let mut keys = self.load()?;
        if keys.remove(name).is_none() {
            return Ok(false);
        }
        self.save(&keys)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_broken_file_is_named_without_its_text() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let file = KeyFile::new(dir.path().join("sub").join("keys.json"));
        file.set("a", SecretString::from("sk-one".to_owned())).expect("saves");
        assert_eq!(file.get("a").expect("reads").expose_secret(), "sk-one");
        assert_eq!(file.get("b").expect_err("none").kind(), ErrorKind::NoKey);
        std::fs::write(file.path(), "{\"a\": sk-broken}").expect("writes");
        let e = file.load().expect_err("a broken file was used");
        assert_eq!(e.kind(), ErrorKind::Keys);
        assert!(!e.to_string().contains("sk-broken") && !format!("{e:?}").contains("sk-broken"), "{e:?}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("openai-2.prod_x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert_eq!(check_name("../x").expect_err("a path").kind(), ErrorKind::KeyName);
    }
}
