//! `mamba-llm keys set|list|remove|path`: the command line over [`mamba_home::keys`], which
//! keeps the keys in `keys.json` in the data folder, readable by its owner only. Here: reading
//! a key without echo, and the messages. Keys are held in `SecretString`s and never printed.

use std::io::{IsTerminal, Read};

use clap::{Args, Subcommand};
use mamba_home::keys::{check_name, KeyFile};
use secrecy::SecretString;

use crate::error::CliError;
use crate::print::line;

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

fn read_secret(name: &str) -> Result<SecretString, CliError> {
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Key for {name}: "))
            .map_err(|e| CliError::Keys(format!("cannot read the key: {e}")))?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Keys(format!("cannot read the key from stdin: {e}")))?;
        text.lines().next().unwrap_or("").to_owned()
    };
    let key = text.trim().to_owned();
    drop(text);
    if key.is_empty() {
        return Err(CliError::Usage("the key is empty; nothing saved".into()));
    }
    Ok(SecretString::from(key))
}

/// What `keys` does: its flags resolved ([`KeysDo::from_flags`]), no clap type below main.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeysDo {
    /// Save a key under this name.
    Set(String),
    /// List the names.
    List,
    /// Delete the key of this name.
    Remove(String),
    /// Print the file's path.
    Path,
}

impl KeysDo {
    /// `keys`'s flags as what to do.
    pub(crate) fn from_flags(args: KeysArgs) -> KeysDo {
        match args.action {
            KeysAction::Set { name } => KeysDo::Set(name),
            KeysAction::List => KeysDo::List,
            KeysAction::Remove { name } => KeysDo::Remove(name),
            KeysAction::Path => KeysDo::Path,
        }
    }
}

/// `mamba-llm keys …`.
pub(crate) fn run(what: KeysDo) -> Result<(), CliError> {
    let file = KeyFile::open_default()?;
    let path = file.path();
    match what {
        KeysDo::Set(name) => {
            check_name(&name)?;
            // The file is checked before the key is asked for.
            let mut keys = file.load()?;
            let key = read_secret(&name)?;
            keys.insert(name.clone(), key);
            file.save(&keys)?;
            crate::print::note(&format!("mamba-llm: saved key {name:?} in {}", path.display()));
            Ok(())
        }
        KeysDo::List => {
            for name in file.names()? {
                line(&name)?;
            }
            Ok(())
        }
        KeysDo::Remove(name) => {
            if !file.remove(&name)? {
                return Err(CliError::Usage(format!("no key named {name:?} is saved")));
            }
            crate::print::note(&format!("mamba-llm: removed key {name:?}"));
            Ok(())
        }
        KeysDo::Path => line(&path.display().to_string()),
    }
}
