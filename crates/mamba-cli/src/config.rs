//! The config file: named endpoints, model aliases, the default endpoint and per-command
//! defaults, and where mamba-llm keeps its files.
//!
//! Precedence, for every setting: flags > environment > config > built-in defaults. An endpoint
//! named with `-e/--endpoint` is a flag (below the explicit flag for the same setting); the
//! config's default endpoint is config, and is not used at all when a flag or the environment
//! names a server (`--base-url`, `--preset`, `MAMBA_BASE_URL`, `OPENAI_BASE_URL`), so its key
//! and headers never go to another server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::output::CliError;

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The endpoint used when no flag or environment variable names a server.
    pub(crate) default_endpoint: Option<String>,
    /// Write the conversation log (default true).
    pub(crate) log: Option<bool>,
    /// Largest attachment in bytes (default 20 MiB).
    pub(crate) max_attachment_bytes: Option<u64>,
    /// Named endpoints.
    #[serde(default)]
    pub(crate) endpoints: BTreeMap<String, Endpoint>,
    /// Model aliases: short name → model id.
    #[serde(default)]
    pub(crate) aliases: BTreeMap<String, String>,
    /// Per-command defaults: `[defaults.chat]`, `[defaults.embed]`, …
    #[serde(default)]
    pub(crate) defaults: BTreeMap<String, CommandDefaults>,
}

/// A named server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Endpoint {
    /// API base URL.
    pub(crate) base_url: Option<String>,
    /// Server kind (its default URL when `base_url` is not given).
    pub(crate) preset: Option<String>,
    /// The name of a key saved with `mamba-llm keys set`.
    pub(crate) key: Option<String>,
    /// An environment variable holding the key.
    pub(crate) key_env: Option<String>,
    /// The model used when none is given.
    pub(crate) model: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Connect, response and idle timeout in seconds.
    pub(crate) timeout: Option<f64>,
    /// Deadline for a whole request in seconds.
    pub(crate) total_timeout: Option<f64>,
    /// Retries of failed requests.
    pub(crate) retries: Option<u32>,
}

/// Defaults for one command; flags and the environment override them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandDefaults {
    /// The endpoint for this command (instead of `default_endpoint`).
    pub(crate) endpoint: Option<String>,
    /// The model for this command.
    pub(crate) model: Option<String>,
    /// A system message (chat).
    pub(crate) system: Option<String>,
    /// Sampling temperature (chat).
    pub(crate) temperature: Option<f64>,
    /// Longest answer in tokens (chat).
    pub(crate) max_tokens: Option<u32>,
    /// Wait for the whole answer (chat).
    pub(crate) no_stream: Option<bool>,
    /// Print the reasoning (chat).
    pub(crate) show_reasoning: Option<bool>,
    /// Timeout in seconds.
    pub(crate) timeout: Option<f64>,
    /// Retries.
    pub(crate) retries: Option<u32>,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// `$XDG_CONFIG_HOME/mamba`, else `~/.config/mamba`: templates live here.
pub(crate) fn config_dir() -> Result<PathBuf, CliError> {
    env_path("XDG_CONFIG_HOME")
        .map(|d| d.join("mamba"))
        .or_else(|| home().map(|h| h.join(".config").join("mamba")))
        .ok_or_else(|| CliError::Failed("config", "no config folder: set HOME, XDG_CONFIG_HOME or MAMBA_CONFIG".into()))
}

/// The config file: `$MAMBA_CONFIG`, else `config.toml` in [`config_dir`].
pub(crate) fn config_path() -> Result<PathBuf, CliError> {
    match env_path("MAMBA_CONFIG") {
        Some(path) => Ok(path),
        None => Ok(config_dir()?.join("config.toml")),
    }
}

/// `$MAMBA_DATA_DIR`, else `$XDG_DATA_HOME/mamba`, else `~/.local/share/mamba`: the
/// conversation log and the keys file.
pub(crate) fn data_dir() -> Result<PathBuf, CliError> {
    env_path("MAMBA_DATA_DIR")
        .or_else(|| env_path("XDG_DATA_HOME").map(|d| d.join("mamba")))
        .or_else(|| home().map(|h| h.join(".local").join("share").join("mamba")))
        .ok_or_else(|| CliError::Failed("config", "no data folder: set HOME, XDG_DATA_HOME or MAMBA_DATA_DIR".into()))
}

/// Parses a config file's text; `path` names it in errors, which give line and column.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Config, CliError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let place = e.span().map(|span| line_col(text, span.start));
        let message = e.message().trim().to_owned();
        match place {
            Some((line, col)) => CliError::Usage(format!("{}:{line}:{col}: {message}", path.display())),
            None => CliError::Usage(format!("{}: {message}", path.display())),
        }
    })?;
    config.check(path)?;
    Ok(config)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    fn check(&self, path: &Path) -> Result<(), CliError> {
        let names = || self.endpoints.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut wanted: Vec<(&str, &String)> = Vec::new();
        if let Some(name) = &self.default_endpoint {
            wanted.push(("default_endpoint", name));
        }
        for defaults in self.defaults.values() {
            if let Some(name) = &defaults.endpoint {
                wanted.push(("defaults.*.endpoint", name));
            }
        }
        for (field, name) in wanted {
            if !self.endpoints.contains_key(name) {
                return Err(CliError::Usage(format!(
                    "{}: {field} = {name:?} is not an endpoint of this file (endpoints: {})",
                    path.display(),
                    names()
                )));
            }
        }
        Ok(())
    }

    /// The endpoint called `name`, or a usage error listing the known ones.
    pub(crate) fn endpoint(&self, name: &str) -> Result<&Endpoint, CliError> {
        self.endpoints.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
            let known = if names.is_empty() {
                "the config file defines none".to_owned()
            } else {
                format!("known endpoints: {}", names.join(", "))
            };
            CliError::Usage(format!("unknown endpoint {name:?}; {known}"))
        })
    }

    /// The model id behind an alias (itself when it is none).
    pub(crate) fn resolve_model(&self, model: String) -> String {
        self.aliases.get(&model).cloned().unwrap_or(model)
    }

    /// The defaults of `command` (empty when the file has none).
    pub(crate) fn command(&self, command: Option<&str>) -> CommandDefaults {
        command.and_then(|c| self.defaults.get(c)).cloned().unwrap_or_default()
    }

    /// Whether the conversation log is on.
    pub(crate) fn log_enabled(&self) -> bool {
        self.log.unwrap_or(true)
    }

    /// The config with secrets replaced, for `config show`: header values whose name says
    /// they are credentials or whose value looks like one whatever the name (`Bearer …`,
    /// `sk-…`, a long random token), and the credentials in base URLs (`user:password@`,
    /// `?api_key=…`).
    pub(crate) fn redacted(&self) -> Config {
        let mut config = self.clone();
        for endpoint in config.endpoints.values_mut() {
            for (name, value) in endpoint.headers.iter_mut() {
                if is_secret_header(name) || mamba_backends::redact::looks_like_secret(value) {
                    *value = "<redacted>".to_owned();
                }
            }
            if let Some(url) = &mut endpoint.base_url {
                *url = mamba_backends::redact::redact_url(url);
            }
        }
        config
    }
}

/// Header names whose values are credentials.
pub(crate) fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "key", "token", "secret", "cookie", "password", "auth", "credential", "signature"]
        .iter()
        .any(|w| name.contains(w))
}

/// The config file, read and parsed once (none: the built-in defaults).
pub(crate) fn load() -> Result<&'static Config, CliError> {
    static CONFIG: OnceLock<Result<Config, String>> = OnceLock::new();
    let loaded = CONFIG.get_or_init(|| read().map_err(|e| usage_message(&e)));
    loaded.as_ref().map_err(|m| CliError::Usage(m.clone()))
}

fn usage_message(e: &CliError) -> String {
    match e {
        CliError::Usage(m) | CliError::Failed(_, m) | CliError::Output(m) => m.clone(),
        CliError::Backend(e) => e.to_string(),
        CliError::BrokenPipe => "stdout was closed".to_owned(),
        CliError::Exit(code) => format!("exit code {code}"),
    }
}

fn read() -> Result<Config, CliError> {
    let path = match config_path() {
        Ok(path) => path,
        // No home at all: nothing to read.
        Err(_) => return Ok(Config::default()),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(CliError::Usage(format!("{}: cannot read the config file: {e}", path.display()))),
    }
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

/// A starting config for `config edit` when there is none.
pub(crate) const SKELETON: &str = r#"# mamba-llm config. Precedence: flags > environment > this file > built-in defaults.
# default_endpoint = "local"
# log = true                      # the conversation log (mamba-llm logs)
# max_attachment_bytes = 20971520

# [endpoints.local]
# base_url = "http://127.0.0.1:8080/v1"
# model = "llama3.2"

# [endpoints.openai]
# preset = "openai"
# key = "openai"                  # saved with: mamba-llm keys set openai
# model = "gpt-4o-mini"
# headers = { "OpenAI-Organization" = "org-..." }
# timeout = 30
# retries = 2

# [aliases]
# mini = "gpt-4o-mini"

# [defaults.chat]
# temperature = 0.7
# system = "Be brief."
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_aliases_and_defaults() {
        let text = r#"
default_endpoint = "work"
log = false
[endpoints.work]
preset = "openai"
key = "openai"
model = "gpt-4o-mini"
headers = { "X-Team" = "a", "Authorization" = "Bearer s3cret" }
timeout = 30
[aliases]
mini = "gpt-4o-mini"
[defaults.chat]
temperature = 0.5
endpoint = "work"
"#;
        let config = parse(Path::new("c.toml"), text).expect("parses");
        assert_eq!(config.default_endpoint.as_deref(), Some("work"));
        assert!(!config.log_enabled());
        assert_eq!(config.resolve_model("mini".into()), "gpt-4o-mini");
        assert_eq!(config.resolve_model("other".into()), "other");
        assert_eq!(config.command(Some("chat")).temperature, Some(0.5));
        assert!(config.command(Some("embed")).temperature.is_none());
        let shown = toml::to_string(&config.redacted()).expect("serialises");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("X-Team"));
    }

    /// `config show` hides a value that looks like a credential whatever its header's name,
    /// and the credentials of base URLs; other values stay.
    #[test]
    fn secrets_are_hidden_by_value_too() {
        let text = r#"
[endpoints.w]
base_url = "https://bob:pw-url-1@gw.example/v1?api_key=sk-query-1&api-version=2024"
headers = { "X-Custom" = "Bearer sk-custom-1", "X-Other" = "sk-proj-Abc123Def456", "X-Sig" = "Basic Ym9iOnB3", "X-Team" = "team-a", "User-Agent" = "mine/1.0" }
"#;
        let config = parse(Path::new("c.toml"), text).expect("parses");
        let shown = toml::to_string(&config.redacted()).expect("serialises");
        for secret in ["sk-custom-1", "sk-proj-Abc123Def456", "Ym9iOnB3", "pw-url-1", "sk-query-1"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in ["team-a", "mine/1.0", "gw.example/v1", "api-version=2024"] {
            assert!(shown.contains(kept), "{kept} not in {shown}");
        }
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse(Path::new("/x/config.toml"), "log = true\n[endpoints.a]\nbase_url = 3\n").expect_err("bad type");
        let CliError::Usage(m) = e else { panic!("not a usage error") };
        assert!(m.starts_with("/x/config.toml:3:12: "), "{m}");
        let e = parse(Path::new("c.toml"), "log = true\nbogus = 1\n").expect_err("unknown key");
        let CliError::Usage(m) = e else { panic!("not a usage error") };
        assert!(m.starts_with("c.toml:2:1: ") && m.contains("bogus"), "{m}");
        let e = parse(Path::new("c.toml"), "default_endpoint = \"nope\"\n").expect_err("unknown endpoint");
        let CliError::Usage(m) = e else { panic!("not a usage error") };
        assert!(m.contains("\"nope\" is not an endpoint"), "{m}");
    }

    #[test]
    fn skeleton_parses() {
        let config = parse(Path::new("s.toml"), SKELETON).expect("parses");
        assert!(config.endpoints.is_empty());
    }
}
