//! The config file: named endpoints, model aliases, the default endpoint and per-command
//! defaults.
//!
//! Precedence, for every setting: flags > environment > config > built-in defaults. An endpoint
//! named with `-e/--endpoint` is a flag (below the explicit flag for the same setting); the
//! config's default endpoint is config, and is not used at all when a flag or the environment
//! names a server (`--base-url`, `--preset`, `MAMBA_BASE_URL`, `OPENAI_BASE_URL`), so its key
//! and headers never go to another server. [`crate::settings`] applies the rule.
//!
//! The file is TOML with no unknown keys; an error names the file, line and column.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The endpoint used when no flag or environment variable names a server.
    pub default_endpoint: Option<String>,
    /// Write the conversation log (default true).
    pub log: Option<bool>,
    /// Largest attachment in bytes (default 20 MiB).
    pub max_attachment_bytes: Option<u64>,
    /// Named endpoints.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Model aliases: short name → model id.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Per-command defaults: `[defaults.chat]`, `[defaults.embed]`, …
    #[serde(default)]
    pub defaults: BTreeMap<String, CommandDefaults>,
}

/// A named server. Its `Debug` hides secret header values and the credentials of its base URL
/// (as [`Config::redacted`] does), so `{:?}` of a config or an endpoint never prints a key.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// API base URL.
    pub base_url: Option<String>,
    /// Server kind (its default URL when `base_url` is not given).
    pub preset: Option<String>,
    /// The name of a key saved with `mamba-llm keys set`.
    pub key: Option<String>,
    /// An environment variable holding the key.
    pub key_env: Option<String>,
    /// The model used when none is given.
    pub model: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Connect, response and idle timeout in seconds.
    pub timeout: Option<f64>,
    /// Deadline for a whole request in seconds.
    pub total_timeout: Option<f64>,
    /// Retries of failed requests.
    pub retries: Option<u32>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url.as_deref().map(mamba_backends::redact::redact_url))
            .field("preset", &self.preset)
            .field("key", &self.key)
            .field("key_env", &self.key_env)
            .field("model", &self.model)
            .field("headers", &MaskedHeaders(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()))
            .field("timeout", &self.timeout)
            .field("total_timeout", &self.total_timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Headers for `Debug`: a secret value (by its name or by its look) shows as `<redacted>`.
pub(crate) struct MaskedHeaders<'a>(pub(crate) Vec<(&'a str, &'a str)>);

impl std::fmt::Debug for MaskedHeaders<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(name, value)| (name, mask_header(name, value)))).finish()
    }
}

/// A header's value for showing: `<redacted>` when its name or its look says it is a credential.
fn mask_header<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_header(name) || mamba_backends::redact::looks_like_secret(value) {
        "<redacted>"
    } else {
        value
    }
}

/// Defaults for one command; flags and the environment override them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandDefaults {
    /// The endpoint for this command (instead of `default_endpoint`).
    pub endpoint: Option<String>,
    /// The model for this command.
    pub model: Option<String>,
    /// A system message (chat).
    pub system: Option<String>,
    /// Sampling temperature (chat).
    pub temperature: Option<f64>,
    /// Longest answer in tokens (chat).
    pub max_tokens: Option<u32>,
    /// Wait for the whole answer (chat).
    pub no_stream: Option<bool>,
    /// Print the reasoning (chat).
    pub show_reasoning: Option<bool>,
    /// Timeout in seconds.
    pub timeout: Option<f64>,
    /// Retries.
    pub retries: Option<u32>,
}

/// Parses a config file's text; `path` names it in errors, which give line and column.
pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
    // The parser's own error quotes the line, which may hold a header value: only its message
    // and place are kept.
    let config: Config = toml::from_str(text).map_err(|e| {
        let place = e.span().map(|span| line_col(text, span.start));
        let message = e.message().trim().to_owned();
        match place {
            Some((line, col)) => Error::new(ErrorKind::Config, format!("{}:{line}:{col}: {message}", path.display())),
            None => Error::new(ErrorKind::Config, format!("{}: {message}", path.display())),
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
    /// Reads the config file at `path`; a missing file is the built-in defaults (an empty
    /// config).
    pub fn read(path: &Path) -> Result<Config, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::with_source(
                ErrorKind::Config,
                format!("{}: cannot read the config file: {e}", path.display()),
                e,
            )),
        }
    }

    /// Reads the config file at [`config_path`](crate::paths::config_path) (none, or no home
    /// folder at all: the built-in defaults). Each call reads the file again; a program that
    /// asks often keeps the result.
    pub fn load() -> Result<Config, Error> {
        match crate::paths::config_path() {
            Ok(path) => Config::read(&path),
            // No home at all: nothing to read.
            Err(_) => Ok(Config::default()),
        }
    }

    fn check(&self, path: &Path) -> Result<(), Error> {
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
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "{}: {field} = {name:?} is not an endpoint of this file (endpoints: {})",
                        path.display(),
                        names()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The endpoint called `name`, or an error ([`ErrorKind::Config`]) listing the known ones.
    pub fn endpoint(&self, name: &str) -> Result<&Endpoint, Error> {
        self.endpoints.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
            let known = if names.is_empty() {
                "the config file defines none".to_owned()
            } else {
                format!("known endpoints: {}", names.join(", "))
            };
            Error::new(ErrorKind::Config, format!("unknown endpoint {name:?}; {known}"))
        })
    }

    /// The model id behind an alias (itself when it is none).
    pub fn resolve_model(&self, model: String) -> String {
        self.aliases.get(&model).cloned().unwrap_or(model)
    }

    /// The defaults of `command` (empty when the file has none).
    pub fn command(&self, command: Option<&str>) -> CommandDefaults {
        command.and_then(|c| self.defaults.get(c)).cloned().unwrap_or_default()
    }

    /// Whether the conversation log is on (default true).
    pub fn log_enabled(&self) -> bool {
        self.log.unwrap_or(true)
    }

    /// The config with secrets replaced, for showing it: header values whose name says
    /// they are credentials ([`is_secret_header`]) or whose value looks like one whatever the
    /// name (`Bearer …`, `sk-…`, a long random token), and the credentials in base URLs
    /// (`user:password@`, `?api_key=…`).
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        for endpoint in config.endpoints.values_mut() {
            for (name, value) in endpoint.headers.iter_mut() {
                *value = mask_header(name, value).to_owned();
            }
            if let Some(url) = &mut endpoint.base_url {
                *url = mamba_backends::redact::redact_url(url);
            }
        }
        config
    }
}

/// Whether a header's name says its value is a credential (`Authorization`, `X-Api-Key`,
/// anything with `token`, `secret`, `cookie`, `password`, …).
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "key", "token", "secret", "cookie", "password", "auth", "credential", "signature"]
        .iter()
        .any(|w| name.contains(w))
}

/// A starting config for `config edit` when there is none.
pub const SKELETON: &str = r#"# mamba-llm config. Precedence: flags > environment > this file > built-in defaults.
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
        assert_eq!(e.kind(), ErrorKind::Config);
        let m = e.to_string();
        assert!(m.starts_with("/x/config.toml:3:12: "), "{m}");
        let e = parse(Path::new("c.toml"), "log = true\nbogus = 1\n").expect_err("unknown key");
        assert_eq!(e.kind(), ErrorKind::Config);
        let m = e.to_string();
        assert!(m.starts_with("c.toml:2:1: ") && m.contains("bogus"), "{m}");
        let e = parse(Path::new("c.toml"), "default_endpoint = \"nope\"\n").expect_err("unknown endpoint");
        assert_eq!(e.kind(), ErrorKind::Config);
        let m = e.to_string();
        assert!(m.contains("\"nope\" is not an endpoint"), "{m}");
    }

    #[test]
    fn skeleton_parses() {
        let config = parse(Path::new("s.toml"), SKELETON).expect("parses");
        assert!(config.endpoints.is_empty());
    }
}
