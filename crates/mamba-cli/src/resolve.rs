//! Which settings a connection gets, from flags, the environment, the config file and the
//! built-in defaults (in that order; see [`crate::config`] for the rule on endpoints).

use secrecy::SecretString;

use crate::config::{CommandDefaults, Config, Endpoint};
use crate::error::CliError;
use crate::settings::{Section, Server};

/// Where environment variables come from: the process, or a map in tests.
pub(crate) trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment (blank values count as unset).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        crate::settings::env(name)
    }
}

/// Gets a saved key by name.
pub(crate) trait KeyStore {
    fn key(&self, name: &str) -> Result<SecretString, CliError>;
}

/// The keys file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SavedKeys;

impl KeyStore for SavedKeys {
    fn key(&self, name: &str) -> Result<SecretString, CliError> {
        crate::keys::get(name).map_err(CliError::from)
    }
}

/// The settings of one connection. `base_url` and `preset` both `None`: nothing names a
/// server, look for one on this machine.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub(crate) base_url: Option<String>,
    pub(crate) preset: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) key: Option<SecretString>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<f64>,
    pub(crate) total_timeout: Option<f64>,
    pub(crate) retries: Option<u32>,
    /// The endpoint's name, when one is used.
    pub(crate) endpoint: Option<String>,
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
) -> Result<Option<SecretString>, CliError> {
    if let Some(key_name) = &endpoint.key {
        return keys.key(key_name).map(Some);
    }
    if let Some(var) = &endpoint.key_env {
        return match env.var(var) {
            Some(key) => Ok(Some(SecretString::from(key))),
            None => Err(CliError::Usage(format!("endpoint {name:?}: its key variable {var} is not set"))),
        };
    }
    Ok(None)
}

/// Resolves the server flags `conn` against `config`, `env` and `keys`.
pub(crate) fn resolve(
    conn: &Server,
    config: &Config,
    env: &dyn Env,
    keys: &dyn KeyStore,
) -> Result<Resolved, CliError> {
    let defaults: CommandDefaults = config.command(conn.section.map(Section::name));
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
                return Err(CliError::Usage(format!("--api-key-env {var}: the environment variable {var} is not set")))
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use secrecy::ExposeSecret;

    use super::*;

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    struct Keys;

    impl KeyStore for Keys {
        fn key(&self, name: &str) -> Result<SecretString, CliError> {
            match name {
                "work" => Ok(SecretString::from("sk-work".to_owned())),
                "home" => Ok(SecretString::from("sk-home".to_owned())),
                _ => Err(CliError::Usage(format!("no key {name}"))),
            }
        }
    }

    const CONFIG: &str = r#"
default_endpoint = "work"
[endpoints.work]
base_url = "http://work/v1"
key = "work"
model = "w-model"
headers = { "X-Team" = "t" }
timeout = 7
[endpoints.home]
preset = "ollama"
key = "home"
model = "fast"
retries = 1
[endpoints.plain]
base_url = "http://plain/v1"
key_env = "PLAIN_KEY"
[aliases]
fast = "llama3.2:3b"
[defaults.chat]
model = "chat-default"
timeout = 3
retries = 4
[defaults.embed]
endpoint = "home"
"#;

    fn config() -> Config {
        crate::config::parse(Path::new("c.toml"), CONFIG).expect("parses")
    }

    fn run(conn: Server, env: &[(&'static str, &'static str)]) -> Resolved {
        resolve(&conn, &config(), &MapEnv(env.iter().copied().collect()), &Keys).expect("resolves")
    }

    fn key(r: &Resolved) -> Option<&str> {
        r.key.as_ref().map(|k| k.expose_secret())
    }

    #[test]
    fn config_alone_gives_the_default_endpoint() {
        let r = run(Server::default(), &[]);
        assert_eq!(r.endpoint.as_deref(), Some("work"));
        assert_eq!(r.base_url.as_deref(), Some("http://work/v1"));
        assert_eq!(r.model.as_deref(), Some("w-model"));
        assert_eq!(key(&r), Some("sk-work"));
        assert_eq!(r.headers, vec![("X-Team".to_owned(), "t".to_owned())]);
        assert_eq!(r.timeout, Some(7.0));
    }

    #[test]
    fn environment_beats_config() {
        let r = run(Server::default(), &[("MAMBA_MODEL", "env-model"), ("MAMBA_API_KEY", "sk-env")]);
        assert_eq!(r.base_url.as_deref(), Some("http://work/v1"));
        assert_eq!(r.model.as_deref(), Some("env-model"));
        assert_eq!(key(&r), Some("sk-env"));
        // A server named by the environment: the default endpoint (and its key) is not used.
        let r = run(Server::default(), &[("MAMBA_BASE_URL", "http://env/v1")]);
        assert_eq!(r.base_url.as_deref(), Some("http://env/v1"));
        assert!(r.endpoint.is_none() && r.key.is_none() && r.headers.is_empty());
        let r = run(Server::default(), &[("MAMBA_ENDPOINT", "home")]);
        assert_eq!(
            (r.preset.as_deref(), r.model.as_deref(), key(&r)),
            (Some("ollama"), Some("llama3.2:3b"), Some("sk-home"))
        );
    }

    #[test]
    fn flags_beat_environment_and_config() {
        let conn = Server { model: Some("flag-model".into()), timeout: Some(1.5), ..Server::default() };
        let r = run(conn, &[("MAMBA_MODEL", "env-model")]);
        assert_eq!(r.model.as_deref(), Some("flag-model"));
        assert_eq!(r.timeout, Some(1.5));
        let conn = Server { base_url: Some("http://flag/v1".into()), ..Server::default() };
        let r = run(conn, &[("MAMBA_BASE_URL", "http://env/v1")]);
        assert_eq!(r.base_url.as_deref(), Some("http://flag/v1"));
        assert!(r.key.is_none(), "the default endpoint's key went to a server named by a flag");
        // -e is a flag: above the environment, below the explicit flags.
        let conn = Server { endpoint: Some("home".into()), ..Server::default() };
        let r = run(
            conn,
            &[("MAMBA_BASE_URL", "http://env/v1"), ("MAMBA_MODEL", "env-model"), ("MAMBA_API_KEY", "sk-env")],
        );
        assert_eq!((r.base_url.as_deref(), r.preset.as_deref()), (None, Some("ollama")));
        assert_eq!(r.model.as_deref(), Some("llama3.2:3b"));
        assert_eq!(key(&r), Some("sk-home"));
        assert_eq!(r.retries, Some(1));
        let conn = Server {
            endpoint: Some("work".into()),
            model: Some("m".into()),
            base_url: Some("http://x/v1".into()),
            api_key_env: Some("K".into()),
            ..Server::default()
        };
        let r = run(conn, &[("K", "sk-flag")]);
        assert_eq!(
            (r.base_url.as_deref(), r.model.as_deref(), key(&r)),
            (Some("http://x/v1"), Some("m"), Some("sk-flag"))
        );
    }

    #[test]
    fn command_defaults_and_builtins() {
        let chat =
            Server { section: Some(Section::Chat), base_url: Some("http://flag/v1".into()), ..Server::default() };
        let r = run(chat, &[]);
        assert_eq!(r.model.as_deref(), Some("chat-default"));
        assert_eq!((r.timeout, r.retries), (Some(3.0), Some(4)));
        let embed = Server { section: Some(Section::Embed), ..Server::default() };
        assert_eq!(run(embed, &[]).endpoint.as_deref(), Some("home"));
        let empty = resolve(&Server::default(), &Config::default(), &MapEnv(HashMap::new()), &Keys).expect("resolves");
        assert!(empty.base_url.is_none() && empty.preset.is_none() && empty.model.is_none() && empty.key.is_none());
        assert!(empty.timeout.is_none() && empty.retries.is_none());
    }

    #[test]
    fn errors() {
        let conn = Server { endpoint: Some("nope".into()), ..Server::default() };
        let e = resolve(&conn, &config(), &MapEnv(HashMap::new()), &Keys).expect_err("unknown endpoint");
        assert!(matches!(&e, CliError::Usage(m) if m.contains("known endpoints: home, plain, work")), "{e:?}");
        let conn = Server { endpoint: Some("plain".into()), ..Server::default() };
        let e = resolve(&conn, &config(), &MapEnv(HashMap::new()), &Keys).expect_err("unset key variable");
        assert!(matches!(&e, CliError::Usage(m) if m.contains("PLAIN_KEY is not set")), "{e:?}");
        let r = run(Server { endpoint: Some("plain".into()), ..Server::default() }, &[("PLAIN_KEY", "sk-plain")]);
        assert_eq!(key(&r), Some("sk-plain"));
    }
}
