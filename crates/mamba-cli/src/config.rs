//! The config file, as the command line uses it: read once per process (a library user such
//! as the Python package reads it afresh each time). The file itself, where it
//! lives and the precedence rule are [`mamba_home`]'s ([`mamba_home::config`],
//! [`mamba_home::paths`], [`mamba_home::settings`]).

use std::sync::OnceLock;

pub(crate) use mamba_home::config::{parse, Config, SKELETON};
pub(crate) use mamba_home::paths::{config_dir, config_path};

use crate::error::CliError;

/// The config file, read and parsed once (none: the built-in defaults).
pub(crate) fn load() -> Result<&'static Config, CliError> {
    static CONFIG: OnceLock<Result<Config, mamba_home::Error>> = OnceLock::new();
    CONFIG.get_or_init(Config::load).as_ref().map_err(|e| CliError::from(e.clone()))
}
