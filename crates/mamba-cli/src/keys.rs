//! Saved API keys: `mamba-llm keys set|list|remove`, in `keys.json` in the data folder, readable
//! by its owner only (mode 0600, checked on every read). Keys are held in `SecretString`s and
//! never printed.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::config::data_dir;
use crate::output::{line, CliError};

/// `mamba-llm keys`.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    pub(crate) action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysAction {
    /// Save a key under NAME (read without echo on a terminal, else the first line of stdin).
    Set {
        /// The key's name, used as `key = "NAME"` in an endpoint.
        name: String,
    },
    /// List the saved keys' names.
    List,
    /// Delete a saved key.
    Remove {
        /// The key's name.
        name: String,
    },
    /// Print the keys file's path.
    Path,
}

/// The keys file.
pub(crate) fn keys_path() -> Result<PathBuf, CliError> {
    Ok(data_dir()?.join("keys.json"))
}

fn valid_name(name: &str) -> Result<(), CliError> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        Ok(())
    } else {
        Err(CliError::Usage(format!("key name {name:?}: use letters, digits, '-', '_' and '.'")))
    }
}

/// Reads the keys file (none: no keys). A file others can read is refused.
fn read_keys(path: &Path) -> Result<BTreeMap<String, SecretString>, CliError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(CliError::Failed("keys", format!("{}: {e}", path.display()))),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::Failed(
            "keys",
            format!(
                "{}: the keys file can be read by others (mode {mode:o}); refusing to use it. Run: chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::Failed("keys", format!("{}: {e}", path.display())))?;
    // Parsed into plain strings, which move straight into secrets; serde_json's error names
    // the place only, never the text.
    let raw: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        CliError::Failed(
            "keys",
            format!("{}: not a keys file (line {}, column {})", path.display(), e.line(), e.column()),
        )
    })?;
    Ok(raw.into_iter().map(|(name, key)| (name, SecretString::from(key))).collect())
}

fn write_keys(path: &Path, keys: &BTreeMap<String, SecretString>) -> Result<(), CliError> {
    let fail =
        |e: std::io::Error| CliError::Failed("keys", format!("{}: cannot write the keys file: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let plain: BTreeMap<&str, &str> = keys.iter().map(|(n, k)| (n.as_str(), k.expose_secret())).collect();
    let text = serde_json::to_string_pretty(&plain).map_err(|e| CliError::Failed("keys", e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(())
}

/// The key saved as `name`.
pub(crate) fn get(name: &str) -> Result<SecretString, CliError> {
    let path = keys_path()?;
    let mut keys = read_keys(&path)?;
    keys.remove(name).ok_or_else(|| {
        CliError::Usage(format!("no key named {name:?} is saved; save one with: mamba-llm keys set {name}"))
    })
}

fn read_secret(name: &str) -> Result<SecretString, CliError> {
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Key for {name}: "))
            .map_err(|e| CliError::Failed("keys", format!("cannot read the key: {e}")))?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Failed("keys", format!("cannot read the key from stdin: {e}")))?;
        text.lines().next().unwrap_or("").to_owned()
    };
    let key = text.trim().to_owned();
    drop(text);
    if key.is_empty() {
        return Err(CliError::Usage("the key is empty; nothing saved".into()));
    }
    Ok(SecretString::from(key))
}

/// `mamba-llm keys …`.
pub(crate) fn run(args: KeysArgs) -> Result<(), CliError> {
    let path = keys_path()?;
    match args.action {
        KeysAction::Set { name } => {
            valid_name(&name)?;
            let mut keys = read_keys(&path)?;
            let key = read_secret(&name)?;
            keys.insert(name.clone(), key);
            write_keys(&path, &keys)?;
            crate::output::note(&format!("mamba-llm: saved key {name:?} in {}", path.display()));
            Ok(())
        }
        KeysAction::List => {
            for name in read_keys(&path)?.keys() {
                line(name)?;
            }
            Ok(())
        }
        KeysAction::Remove { name } => {
            let mut keys = read_keys(&path)?;
            if keys.remove(&name).is_none() {
                return Err(CliError::Usage(format!("no key named {name:?} is saved")));
            }
            write_keys(&path, &keys)?;
            crate::output::note(&format!("mamba-llm: removed key {name:?}"));
            Ok(())
        }
        KeysAction::Path => line(&path.display().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_owner_only_mode_and_refusal_of_readable_files() {
        let dir = std::env::temp_dir().join(format!("mamba-keys-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("keys.json");
        let mut keys = BTreeMap::new();
        keys.insert("a".to_owned(), SecretString::from("sk-one".to_owned()));
        write_keys(&path, &keys).expect("writes");
        let mode = std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_keys(&path).expect("reads")["a"].expose_secret(), "sk-one");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let Err(CliError::Failed(_, m)) = read_keys(&path) else { panic!("a readable file was used") };
        assert!(m.contains("chmod 600") && !m.contains("sk-one"), "{m}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, "{\"a\": sk-broken}").expect("writes");
        let Err(CliError::Failed(_, m)) = read_keys(&path) else { panic!("a broken file was used") };
        assert!(!m.contains("sk-broken"), "{m}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("openai-2.prod_x").is_ok());
        assert!(valid_name("").is_err());
        assert!(valid_name("a b").is_err());
        assert!(valid_name("../x").is_err());
    }
}
