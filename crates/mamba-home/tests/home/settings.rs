//! The precedence rule, flags > environment > config file > built-in defaults, through
//! [`mamba_home::settings::resolve`] with a map for the environment and a fixed key store.

use std::collections::HashMap;
use std::path::Path;

use mamba_home::config::parse;
use mamba_home::settings::{resolve, Env, Flags, KeyStore, Resolved};
use mamba_home::{Config, Error, ErrorKind, KeyFile};
use secrecy::{ExposeSecret, SecretString};

struct MapEnv(HashMap<&'static str, &'static str>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| (*v).to_owned())
    }
}

struct Keys;

impl KeyStore for Keys {
    fn key(&self, name: &str) -> Result<SecretString, Error> {
        match name {
            "work" => Ok(SecretString::from("sk-work".to_owned())),
            "home" => Ok(SecretString::from("sk-home".to_owned())),
            _ => KeyFile::new("/nonexistent/keys.json").get(name),
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
    parse(Path::new("c.toml"), CONFIG).expect("parses")
}

fn run(conn: Flags, env: &[(&'static str, &'static str)]) -> Resolved {
    resolve(&conn, &config(), &MapEnv(env.iter().copied().collect()), &Keys).expect("resolves")
}

fn key(r: &Resolved) -> Option<&str> {
    r.key.as_ref().map(|k| k.expose_secret())
}

#[test]
fn config_alone_gives_the_default_endpoint() {
    let r = run(Flags::default(), &[]);
    assert_eq!(r.endpoint.as_deref(), Some("work"));
    assert_eq!(r.base_url.as_deref(), Some("http://work/v1"));
    assert_eq!(r.model.as_deref(), Some("w-model"));
    assert_eq!(key(&r), Some("sk-work"));
    assert_eq!(r.headers, vec![("X-Team".to_owned(), "t".to_owned())]);
    assert_eq!(r.timeout, Some(7.0));
}

#[test]
fn environment_beats_config() {
    let r = run(Flags::default(), &[("MAMBA_MODEL", "env-model"), ("MAMBA_API_KEY", "sk-env")]);
    assert_eq!(r.base_url.as_deref(), Some("http://work/v1"));
    assert_eq!(r.model.as_deref(), Some("env-model"));
    assert_eq!(key(&r), Some("sk-env"));
    // A server named by the environment: the default endpoint (and its key) is not used.
    let r = run(Flags::default(), &[("MAMBA_BASE_URL", "http://env/v1")]);
    assert_eq!(r.base_url.as_deref(), Some("http://env/v1"));
    assert!(r.endpoint.is_none() && r.key.is_none() && r.headers.is_empty());
    let r = run(Flags::default(), &[("MAMBA_ENDPOINT", "home")]);
    assert_eq!(
        (r.preset.as_deref(), r.model.as_deref(), key(&r)),
        (Some("ollama"), Some("llama3.2:3b"), Some("sk-home"))
    );
}

#[test]
fn flags_beat_environment_and_config() {
    let conn = Flags { model: Some("flag-model".into()), timeout: Some(1.5), ..Flags::default() };
    let r = run(conn, &[("MAMBA_MODEL", "env-model")]);
    assert_eq!(r.model.as_deref(), Some("flag-model"));
    assert_eq!(r.timeout, Some(1.5));
    let conn = Flags { base_url: Some("http://flag/v1".into()), ..Flags::default() };
    let r = run(conn, &[("MAMBA_BASE_URL", "http://env/v1")]);
    assert_eq!(r.base_url.as_deref(), Some("http://flag/v1"));
    assert!(r.key.is_none(), "the default endpoint's key went to a server named by a flag");
    // -e is a flag: above the environment, below the explicit flags.
    let conn = Flags { endpoint: Some("home".into()), ..Flags::default() };
    let r =
        run(conn, &[("MAMBA_BASE_URL", "http://env/v1"), ("MAMBA_MODEL", "env-model"), ("MAMBA_API_KEY", "sk-env")]);
    assert_eq!((r.base_url.as_deref(), r.preset.as_deref()), (None, Some("ollama")));
    assert_eq!(r.model.as_deref(), Some("llama3.2:3b"));
    assert_eq!(key(&r), Some("sk-home"));
    assert_eq!(r.retries, Some(1));
    let conn = Flags {
        endpoint: Some("work".into()),
        model: Some("m".into()),
        base_url: Some("http://x/v1".into()),
        api_key_env: Some("K".into()),
        ..Flags::default()
    };
    let r = run(conn, &[("K", "sk-flag")]);
    assert_eq!((r.base_url.as_deref(), r.model.as_deref(), key(&r)), (Some("http://x/v1"), Some("m"), Some("sk-flag")));
}

#[test]
fn command_defaults_and_builtins() {
    let chat = Flags { command: Some("chat".into()), base_url: Some("http://flag/v1".into()), ..Flags::default() };
    let r = run(chat, &[]);
    assert_eq!(r.model.as_deref(), Some("chat-default"));
    assert_eq!((r.timeout, r.retries), (Some(3.0), Some(4)));
    let embed = Flags { command: Some("embed".into()), ..Flags::default() };
    assert_eq!(run(embed, &[]).endpoint.as_deref(), Some("home"));
    let empty = resolve(&Flags::default(), &Config::default(), &MapEnv(HashMap::new()), &Keys).expect("resolves");
    assert!(empty.base_url.is_none() && empty.preset.is_none() && empty.model.is_none() && empty.key.is_none());
    assert!(empty.timeout.is_none() && empty.retries.is_none());
}

#[test]
fn errors() {
    let conn = Flags { endpoint: Some("nope".into()), ..Flags::default() };
    let e = resolve(&conn, &config(), &MapEnv(HashMap::new()), &Keys).expect_err("unknown endpoint");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("known endpoints: home, plain, work"), "{e:?}");
    let conn = Flags { endpoint: Some("plain".into()), ..Flags::default() };
    let e = resolve(&conn, &config(), &MapEnv(HashMap::new()), &Keys).expect_err("unset key variable");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("PLAIN_KEY is not set"), "{e:?}");
    let r = run(Flags { endpoint: Some("plain".into()), ..Flags::default() }, &[("PLAIN_KEY", "sk-plain")]);
    assert_eq!(key(&r), Some("sk-plain"));
}

/// A key named by an endpoint comes from the key store: a real keys file here, and a missing
/// key is the store's error, not a silent none.
#[test]
fn keys_come_from_the_key_file() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let file = KeyFile::new(dir.path().join("keys.json"));
    file.set("work", SecretString::from("sk-from-file".to_owned())).expect("saves");
    let r = resolve(&Flags::default(), &config(), &MapEnv(HashMap::new()), &file).expect("resolves");
    assert_eq!(key(&r), Some("sk-from-file"));
    let flags = Flags { endpoint: Some("home".into()), ..Flags::default() };
    let e = resolve(&flags, &config(), &MapEnv(HashMap::new()), &file).expect_err("no key home");
    assert_eq!(e.kind(), ErrorKind::NoKey);
    // --api-key-env names a variable that is not set.
    let flags = Flags { api_key_env: Some("NOPE".into()), ..Flags::default() };
    let e = resolve(&flags, &config(), &MapEnv(HashMap::new()), &file).expect_err("unset");
    assert_eq!(e.to_string(), "--api-key-env NOPE: the environment variable NOPE is not set");
}

/// `{:?}` of a config, an endpoint or a resolved connection holding an `Authorization`
/// header, a secret-looking header, a URL password and a key prints none of them.
#[test]
fn debug_prints_no_secret() {
    let text = r#"
default_endpoint = "s"
[endpoints.s]
base_url = "https://bob:pw-debug-1@gw.example/v1?api_key=sk-query-debug"
key = "work"
headers = { "Authorization" = "Bearer sk-debug-auth", "X-Custom" = "sk-proj-Debug123Value456", "X-Team" = "team-a" }
"#;
    let config = parse(Path::new("c.toml"), text).expect("parses");
    let resolved = resolve(&Flags::default(), &config, &MapEnv(HashMap::new()), &Keys).expect("resolves");
    assert_eq!(key(&resolved), Some("sk-work"), "the key is there");
    assert!(resolved.headers.iter().any(|(n, v)| n == "Authorization" && v == "Bearer sk-debug-auth"));
    let endpoint = config.endpoint("s").expect("the endpoint");
    for shown in [format!("{config:?}"), format!("{endpoint:?}"), format!("{resolved:?}"), format!("{resolved:#?}")] {
        for secret in ["sk-debug-auth", "sk-proj-Debug123Value456", "pw-debug-1", "sk-query-debug", "sk-work"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in ["Authorization", "team-a", "gw.example/v1", "<redacted>"] {
            assert!(shown.contains(kept), "{kept} not in {shown}");
        }
    }
}
