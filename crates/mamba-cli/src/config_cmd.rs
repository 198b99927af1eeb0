//! `mamba-llm config path|show|edit`, over [`mamba_home::config`].

use clap::{Args, Subcommand};

use crate::config::{config_path, parse, SKELETON};
use crate::error::CliError;
use crate::print::line;

/// `mamba-llm config`.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    pub(crate) action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Print the config file's path ($MAMBA_CONFIG, else $XDG_CONFIG_HOME/mamba/config.toml,
    /// else ~/.config/mamba/config.toml).
    Path,
    /// Print the config as read (header values that look like credentials hidden).
    Show,
    /// Open the config file in $VISUAL or $EDITOR (a new one starts from a commented example),
    /// then check it.
    Edit,
}

/// What `config` does: its flags resolved ([`ConfigDo::from_flags`]), no clap type below main.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigDo {
    /// Print the file's path.
    Path,
    /// Print the config, secrets hidden.
    Show,
    /// Edit the file, then check it.
    Edit,
}

impl ConfigDo {
    /// `config`'s flags as what to do.
    pub(crate) fn from_flags(args: ConfigArgs) -> ConfigDo {
        match args.action {
            ConfigAction::Path => ConfigDo::Path,
            ConfigAction::Show => ConfigDo::Show,
            ConfigAction::Edit => ConfigDo::Edit,
        }
    }
}

/// `mamba-llm config …`.
pub(crate) fn run(what: ConfigDo) -> Result<(), CliError> {
    let path = config_path()?;
    match what {
        ConfigDo::Path => line(&path.display().to_string()),
        ConfigDo::Show => {
            if !path.exists() {
                crate::print::note(&format!(
                    "mamba-llm: no config file at {}; the built-in defaults apply (create one with: mamba-llm config edit)",
                    path.display()
                ));
                return Ok(());
            }
            let config = crate::config::load()?;
            let text = toml::to_string(&config.redacted()).map_err(|e| CliError::Config(e.to_string()))?;
            line(text.trim_end())
        }
        ConfigDo::Edit => {
            if !path.exists() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| CliError::Config(format!("{}: {e}", dir.display())))?;
                }
                std::fs::write(&path, SKELETON).map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?;
            }
            crate::editor::edit(&path)?;
            let text =
                std::fs::read_to_string(&path).map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?;
            parse(&path, &text)?;
            Ok(())
        }
    }
}
