//! Which settings a connection gets, from flags, the environment, the config file and the
//! built-in defaults (in that order): the command line's connection flags handed to
//! [`mamba_home::settings::resolve`], which holds the rule.

use mamba_home::settings::{Env, Flags, KeyStore};
use secrecy::SecretString;

pub(crate) use mamba_home::settings::{ProcessEnv, Resolved};

use crate::config::Config;
use crate::error::CliError;
use crate::settings::{Section, Server};

/// The keys file in the data folder, found again at each use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SavedKeys;

impl KeyStore for SavedKeys {
    fn key(&self, name: &str) -> Result<SecretString, mamba_home::Error> {
        mamba_home::KeyFile::open_default()?.get(name)
    }
}

/// Resolves the server flags `conn` against `config`, `env` and `keys`.
pub(crate) fn resolve(
    conn: &Server,
    config: &Config,
    env: &dyn Env,
    keys: &dyn KeyStore,
) -> Result<Resolved, CliError> {
    let flags = Flags {
        command: conn.section.map(|s| Section::name(s).to_owned()),
        endpoint: conn.endpoint.clone(),
        base_url: conn.base_url.clone(),
        preset: conn.preset.clone(),
        model: conn.model.clone(),
        api_key_env: conn.api_key_env.clone(),
        timeout: conn.timeout,
        total_timeout: conn.total_timeout,
        retries: conn.retries,
    };
    Ok(mamba_home::settings::resolve(&flags, config, env, keys)?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
        fn key(&self, name: &str) -> Result<SecretString, mamba_home::Error> {
            Ok(SecretString::from(format!("sk-{name}")))
        }
    }

    /// Every connection flag reaches the rule (the rule itself is tested in mamba-home).
    #[test]
    fn every_flag_is_handed_over() {
        let config = crate::config::parse(
            std::path::Path::new("c.toml"),
            "[endpoints.e]\nkey = \"k\"\nheaders = { \"X-A\" = \"1\" }\n[defaults.chat]\nsystem = \"s\"\nretries = 9\n",
        )
        .expect("parses");
        let conn = Server { endpoint: Some("e".into()), section: Some(Section::Chat), ..Server::default() };
        let env = MapEnv(HashMap::new());
        let r = resolve(&conn, &config, &env, &Keys).expect("resolves");
        assert_eq!(r.endpoint.as_deref(), Some("e"));
        assert_eq!(r.key.as_ref().map(|k| k.expose_secret()), Some("sk-k"));
        assert_eq!(r.retries, Some(9), "the command's name did not reach [defaults.chat]");
        let conn = Server {
            base_url: Some("http://u/v1".into()),
            preset: Some("vllm".into()),
            model: Some("m".into()),
            api_key_env: Some("K".into()),
            timeout: Some(1.0),
            total_timeout: Some(2.0),
            retries: Some(3),
            ..Server::default()
        };
        let env = MapEnv([("K", "sk-env")].into_iter().collect());
        let r = resolve(&conn, &config, &env, &Keys).expect("resolves");
        assert_eq!(
            (r.base_url.as_deref(), r.preset.as_deref(), r.model.as_deref()),
            (Some("http://u/v1"), Some("vllm"), Some("m"))
        );
        assert_eq!(r.key.as_ref().map(|k| k.expose_secret()), Some("sk-env"));
        assert_eq!((r.timeout, r.total_timeout, r.retries), (Some(1.0), Some(2.0), Some(3)));
        let e = resolve(&Server { endpoint: Some("nope".into()), ..Server::default() }, &config, &env, &Keys)
            .expect_err("unknown endpoint");
        assert!(matches!(&e, CliError::Usage(m) if m.contains("known endpoints: e")), "{e:?}");
    }
}
