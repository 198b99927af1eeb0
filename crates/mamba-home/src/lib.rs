//! What mamba keeps in the user's folders, for every program that works with them: the
//! `mamba-llm` command line today, the Python package next.
//!
//! * [`paths`]: where the files are. The config folder is `$XDG_CONFIG_HOME/mamba`, else
//!   `~/.config/mamba`, and the config file `config.toml` in it (or `$MAMBA_CONFIG`); the data
//!   folder is `$MAMBA_DATA_DIR`, else `$XDG_DATA_HOME/mamba`, else `~/.local/share/mamba`.
//! * [`config`]: the config file (named endpoints, model aliases, the default endpoint,
//!   per-command defaults), parsed strictly, with errors that give file, line and column, and
//!   [`Config::redacted`] for showing it.
//! * [`settings`]: the precedence rule, flags > environment > config file > built-in
//!   defaults, that turns flags, the environment and the config into the settings of one
//!   connection.
//! * [`keys`]: saved API keys in `keys.json`, readable by the owner only, held in
//!   [`SecretString`](secrecy::SecretString)s.
//! * [`log`]: the conversation log in SQLite (`logs.db`), with full-text search, a versioned
//!   schema migrated on open, and no credential stored.
//!
//! Every failure is an [`Error`]: an [`ErrorKind`] to act on and a one-line message that
//! names the file and what to do next, never a secret.
//!
//! ```no_run
//! use mamba_home::{Config, KeyFile, Log};
//!
//! # fn main() -> Result<(), mamba_home::Error> {
//! let config = Config::load()?;
//! if let Some(name) = &config.default_endpoint {
//!     let endpoint = config.endpoint(name)?;
//!     if let Some(key_name) = &endpoint.key {
//!         let _key = KeyFile::open_default()?.get(key_name)?;
//!     }
//! }
//! let log = Log::open_default()?;
//! for exchange in log.list(10, Some("rust"), None)? {
//!     println!("{}: {}", exchange.time, exchange.prompt);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # The Python package
//! The Python package binds this crate rather than reading the files itself, so that a key
//! saved with `mamba-llm keys set`, an endpoint of the config file and the conversation log
//! mean the same thing from Python as from the shell: it resolves a connection with
//! [`settings::resolve`] (its keyword arguments in the place of flags), reads keys through
//! [`KeyFile`], and appends to and searches the same [`Log`]. Each [`ErrorKind`] maps to a
//! Python exception class.
//!
//! # Platforms
//! On Unix the keys file and the log are created with mode 0600 and their folders with 0700;
//! a keys file that group or others may read is refused, and a log that is not private is
//! made so. Elsewhere (Windows) files get the platform's default access and no mode is
//! checked: they live in the user's profile, whose access list keeps other users out. There,
//! `%USERPROFILE%` stands in for `HOME` when `HOME` is not set. All platform-specific code is
//! in one private module.

#![deny(missing_docs)]

mod error;
mod private;

pub mod config;
pub mod keys;
pub mod log;
pub mod paths;
pub mod settings;

pub use crate::config::Config;
pub use crate::error::{Error, ErrorKind};
pub use crate::keys::KeyFile;
pub use crate::log::{Exchange, Log};
