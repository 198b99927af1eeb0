//! Where mamba keeps its files: the config folder (the config file, templates) and the data
//! folder (the keys file, the conversation log), from the environment, the same for every
//! program that uses this crate.
//!
//! Blank variables count as unset. On platforms other than Unix, `USERPROFILE` stands in for
//! `HOME` when `HOME` is not set, so the folders are `%USERPROFILE%\.config\mamba` and
//! `%USERPROFILE%\.local\share\mamba` unless the variables below name others.

use std::path::PathBuf;

use crate::error::{Error, ErrorKind};

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `HOME`; elsewhere than Unix, `USERPROFILE` when `HOME` is not set. (`cfg!`, not `#[cfg]`:
/// both branches are compiled, and checked, on every platform.)
fn home() -> Option<PathBuf> {
    env_path("HOME").or_else(|| if cfg!(unix) { None } else { env_path("USERPROFILE") })
}

/// `$XDG_CONFIG_HOME/mamba`, else `~/.config/mamba`: the config file and templates live here.
pub fn config_dir() -> Result<PathBuf, Error> {
    env_path("XDG_CONFIG_HOME")
        .map(|d| d.join("mamba"))
        .or_else(|| home().map(|h| h.join(".config").join("mamba")))
        .ok_or_else(|| Error::new(ErrorKind::NoHome, "no config folder: set HOME, XDG_CONFIG_HOME or MAMBA_CONFIG"))
}

/// The config file: `$MAMBA_CONFIG`, else `config.toml` in [`config_dir`].
pub fn config_path() -> Result<PathBuf, Error> {
    match env_path("MAMBA_CONFIG") {
        Some(path) => Ok(path),
        None => Ok(config_dir()?.join("config.toml")),
    }
}

/// `$MAMBA_DATA_DIR`, else `$XDG_DATA_HOME/mamba`, else `~/.local/share/mamba`: the
/// conversation log and the keys file.
pub fn data_dir() -> Result<PathBuf, Error> {
    env_path("MAMBA_DATA_DIR")
        .or_else(|| env_path("XDG_DATA_HOME").map(|d| d.join("mamba")))
        .or_else(|| home().map(|h| h.join(".local").join("share").join("mamba")))
        .ok_or_else(|| Error::new(ErrorKind::NoHome, "no data folder: set HOME, XDG_DATA_HOME or MAMBA_DATA_DIR"))
}

/// The keys file: `keys.json` in [`data_dir`].
pub fn keys_path() -> Result<PathBuf, Error> {
    Ok(data_dir()?.join("keys.json"))
}

/// The conversation log: `logs.db` in [`data_dir`].
pub fn log_path() -> Result<PathBuf, Error> {
    Ok(data_dir()?.join("logs.db"))
}
