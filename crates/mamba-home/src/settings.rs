//! The precedence rule: which settings one connection gets from flags, the environment, the
//! config file and the built-in defaults, in that order.
//!
//! * **Server**: `--base-url`/`--preset` (flags) name it; else an endpoint named with
//!   `-e/--endpoint` (a flag, below the explicit flags for the same setting); else
//!   `MAMBA_ENDPOINT`, `MAMBA_BASE_URL`, `OPENAI_BASE_URL` (environment); else the command's
//!   `[defaults.NAME] endpoint`, else `default_endpoint` (config). The config's default
//!   endpoint is not used at all when a flag or the environment names a server, so its key
//!   and headers never go to another server; nor is an endpoint named by `MAMBA_ENDPOINT`
//!   when a flag names the server.
//! * **Model**: `--model`; an `-e` endpoint's; `MAMBA_MODEL`; a config endpoint's; the
//!   command's default; then the config's aliases map it to a model id.
//! * **Key**: `--api-key-env VAR`; an `-e` endpoint's (`key` from the [`KeyStore`], or
//!   `key_env`); `MAMBA_API_KEY`, `OPENAI_API_KEY`; a config endpoint's.
//! * **Headers** are the chosen endpoint's; **timeouts and retries** come from the flags, the
//!   endpoint, then the command's defaults.
//!
//! Both `base_url` and `preset` unset in the result means nothing names a server: the caller
//! looks for one (the command line tries the known local ports).

use secrecy::SecretString;

use crate::config::{CommandDefaults, Config, Endpoint, MaskedHeaders};
use crate::error::{Error, ErrorKind};
use crate::keys::KeyFile;

/// The flags of one connection: the command line's, or the arguments of a library call.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// The command, for its `[defaults.NAME]` in the config file.
    pub command: Option<String>,
    /// `-e/--endpoint`: an endpoint of the config file.
    pub endpoint: Option<String>,
    /// `--base-url`.
    pub base_url: Option<String>,
    /// `--preset`: the server's kind.
    pub preset: Option<String>,
    /// `--model`.
    pub model: Option<String>,
    /// `--api-key-env`: the environment variable holding the key.
    pub api_key_env: Option<String>,
    /// `--timeout` in seconds.
    pub timeout: Option<f64>,
    /// `--total-timeout` in seconds.
    pub total_timeout: Option<f64>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// Where environment variables come from: the process, or a map in tests.
pub trait Env {
    /// The variable's value; `None` when unset (or, for [`ProcessEnv`], blank).
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment (blank values count as unset).
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// Gets a saved key by name.
pub trait KeyStore {
    /// The key saved as `name`.
    fn key(&self, name: &str) -> Result<SecretString, Error>;
}

impl KeyStore for KeyFile {
    fn key(&self, name: &str) -> Result<SecretString, Error> {
        self.get(name)
    }
}

/// The settings of one connection. `base_url` and `preset` both `None`: nothing names a
/// server, look for one on this machine. Its `Debug` hides secret header values and the
/// credentials of the base URL.
#[derive(Default)]
pub struct Resolved {
    /// The server's API base URL.
    pub base_url: Option<String>,
    /// The server's kind (its default URL when `base_url` is `None`).
    pub preset: Option<String>,
    /// The model, aliases resolved.
    pub model: Option<String>,
    /// The API key.
    pub key: Option<SecretString>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Connect, response and idle timeout in seconds.
    pub timeout: Option<f64>,
    /// Deadline for a whole request in seconds.
    pub total_timeout: Option<f64>,
    /// Retries of failed requests.
    pub retries: Option<u32>,
    /// The endpoint's name, when one is used.
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("base_url", &self.base_url.as_deref().map(mamba_backends::redact::redact_url))
            .field("preset", &self.preset)
            .field("model", &self.model)
            .field("key", &self.key)
            .field("headers", &MaskedHeaders(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()))
            .field("timeout", &self.timeout)
            .field("total_timeout", &self.total_timeout)
            .field("retries", &self.retries)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// How the endpoint was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Flag,
    Env,
    Config,
}

fn endpoint_key(
    name: &str,
    endpoint: &Endpoint,
    env: &dyn Env,
    keys: &dyn KeyStore,
) -> Result<Option<SecretString>, Error> {
    if let Some(key_name) = &endpoint.key {
        return keys.key(key_name).map(Some);
    }
    if let Some(var) = &endpoint.key_env {
        return match env.var(var) {
            Some(key) => Ok(Some(SecretString::from(key))),
            None => Err(Error::new(ErrorKind::Config, format!("endpoint {name:?}: its key variable {var} is not set"))),
        };
    }
    Ok(None)
}

/// Resolves the flags `conn` against `config`, `env` and `keys`: see the [module](self) for
/// the rule. Errors are [`ErrorKind::Config`] (an unknown endpoint, an unset key variable) or
/// the key store's.
pub fn resolve(conn: &Flags, config: &Config, env: &dyn Env, keys: &dyn KeyStore) -> Result<Resolved, Error> {
    let defaults: CommandDefaults = config.command(conn.command.as_deref());
    let env_url = env.var("MAMBA_BASE_URL").or_else(|| env.var("OPENAI_BASE_URL"));
    let flag_names_server = conn.base_url.is_some() || conn.preset.is_some();

    let chosen = if let Some(name) = &conn.endpoint {
        Some((name.clone(), Level::Flag))
    } else if let Some(name) = env.var("MAMBA_ENDPOINT") {
        Some((name, Level::Env))
    } else if flag_names_server || env_url.is_some() {
        // A server named by a flag or the environment: the configured default is not used.
        None
    } else {
        defaults.endpoint.clone().or_else(|| config.default_endpoint.clone()).map(|name| (name, Level::Config))
    };
    let chosen = match chosen {
        Some((name, level)) => {
            let endpoint = config.endpoint(&name)?;
            if level == Level::Env && flag_names_server {
                None
            } else {
                Some((name, endpoint, level))
            }
        }
        None => None,
    };

    // Values from the endpoint at or above the environment (flag level), and below it.
    let (above, below) = match &chosen {
        Some((_, e, Level::Flag)) => (Some(*e), None),
        Some((_, e, _)) => (None, Some(*e)),
        None => (None, None),
    };
    let endpoint = chosen.as_ref().map(|(_, e, _)| *e);

    let (base_url, preset) = if flag_names_server {
        (conn.base_url.clone(), conn.preset.clone())
    } else if let Some(e) = above {
        (e.base_url.clone(), e.preset.clone())
    } else if env_url.is_some() {
        (env_url, None)
    } else if let Some(e) = below {
        (e.base_url.clone(), e.preset.clone())
    } else {
        (None, None)
    };
    // `--base-url` with an endpoint's preset, or an endpoint's URL with `--preset`.
    let (base_url, preset) = match (&chosen, base_url, preset) {
        (Some((_, e, Level::Flag)), url, preset) => {
            (url.or_else(|| e.base_url.clone()), preset.or_else(|| e.preset.clone()))
        }
        (_, url, preset) => (url, preset),
    };

    let model = conn
        .model
        .clone()
        .or_else(|| above.and_then(|e| e.model.clone()))
        .or_else(|| env.var("MAMBA_MODEL"))
        .or_else(|| below.and_then(|e| e.model.clone()))
        .or_else(|| defaults.model.clone())
        .map(|m| config.resolve_model(m));

    let key = match &conn.api_key_env {
        Some(var) => match env.var(var) {
            Some(key) => Some(SecretString::from(key)),
            None => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("--api-key-env {var}: the environment variable {var} is not set"),
                ))
            }
        },
        None => {
            let from_above = match &chosen {
                Some((name, e, Level::Flag)) => endpoint_key(name, e, env, keys)?,
                _ => None,
            };
            match from_above {
                Some(key) => Some(key),
                None => match env.var("MAMBA_API_KEY").or_else(|| env.var("OPENAI_API_KEY")) {
                    Some(key) => Some(SecretString::from(key)),
                    None => match &chosen {
                        Some((name, e, Level::Env | Level::Config)) => endpoint_key(name, e, env, keys)?,
                        _ => None,
                    },
                },
            }
        }
    };

    Ok(Resolved {
        base_url,
        preset,
        model,
        key,
        headers: endpoint.map(|e| e.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        timeout: conn.timeout.or(endpoint.and_then(|e| e.timeout)).or(defaults.timeout),
        total_timeout: conn.total_timeout.or(endpoint.and_then(|e| e.total_timeout)),
        retries: conn.retries.or(endpoint.and_then(|e| e.retries)).or(defaults.retries),
        endpoint: chosen.map(|(name, _, _)| name),
    })
}
