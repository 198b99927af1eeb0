//! Compatibility only: what the config file, key store and conversation log modules
//! (`config.rs`, `keys.rs`, `logdb.rs`, `logs.rs`, `config_cmd.rs`) import as `crate::output`,
//! until they move into their library crate: their error type ([`crate::error::compat`]) and
//! [`line`] returning it. Everything else writes with [`crate::print`] and fails with
//! [`crate::error::CliError`].

pub(crate) use crate::error::compat::CliError;
pub(crate) use crate::print::note;

/// [`crate::print::line`], failing with the compatibility error.
pub(crate) fn line(text: &str) -> Result<(), CliError> {
    Ok(crate::print::line(text)?)
}
