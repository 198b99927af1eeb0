//! The config file, as the command line uses it: read once per process, and each command's
//! name attached to its connection flags for its `[defaults.NAME]`. The file itself, where it
//! lives and the precedence rule are [`mamba_home`]'s ([`mamba_home::config`],
//! [`mamba_home::paths`], [`mamba_home::settings`]).

use std::sync::OnceLock;

pub(crate) use mamba_home::config::{parse, Config, SKELETON};
pub(crate) use mamba_home::paths::{config_dir, config_path};

use crate::output::CliError;

/// The config file, read and parsed once (none: the built-in defaults).
pub(crate) fn load() -> Result<&'static Config, CliError> {
    static CONFIG: OnceLock<Result<Config, mamba_home::Error>> = OnceLock::new();
    CONFIG.get_or_init(Config::load).as_ref().map_err(|e| CliError::from(e.clone()))
}

/// Tells each command's connection flags its name, for its `[defaults.NAME]`.
pub(crate) fn tag(command: &mut crate::args::Command) {
    use crate::args::Command;
    let (conn, name) = match command {
        Command::Chat(a) => (&mut a.conn, "chat"),
        Command::Health(c) => (c, "health"),
        Command::Models(a) => (&mut a.conn, "models"),
        Command::Embed(a) => (&mut a.conn, "embed"),
        Command::Bench(a) => (&mut a.conn, "bench"),
        _ => return,
    };
    conn.command = Some(name);
}
