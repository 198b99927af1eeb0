//! The settings commands run with: plain typed structs, one per concern (which server and how
//! to reach it, which built-in model, how to print), made from the parsed flags at the top
//! (`main`'s one match over the command) and passed down, so no clap struct travels below it.
//! Also the small readers every command shares: an environment variable, a number of seconds,
//! a preset name.
//!
//! The config file, the environment and the saved keys are merged into a server's settings
//! when a command connects ([`crate::resolve`]), not before: `chat --local`, `models --local`
//! and `batch --dry-run` never read the endpoints, so a broken endpoint does not stop them.

use std::path::PathBuf;
use std::time::Duration;

use mamba_backends::{preset::WireApi, Preset};

use crate::args::ConnArgs;
use crate::error::CliError;

/// A command whose `[defaults.NAME]` section of the config file applies to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Chat,
    Health,
    Models,
    Embed,
    Extract,
    Bench,
    Sql,
}

impl Section {
    /// The section's name in the config file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Section::Chat => "chat",
            Section::Health => "health",
            Section::Models => "models",
            Section::Embed => "embed",
            Section::Extract => "extract",
            Section::Bench => "bench",
            Section::Sql => "sql",
        }
    }
}

/// The API a connection speaks (`--api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// Chat completions, the Responses API, or auto.
    Wire(WireApi),
    /// Legacy text completions: `bench` only.
    Completions,
}

impl Api {
    fn parse(name: &str) -> Option<Api> {
        match name {
            "completions" => Some(Api::Completions),
            other => WireApi::parse(other).map(Api::Wire),
        }
    }
}

/// Which server a command asks for and how to reach it, as the flags give it; the config file
/// and the environment fill in the rest when it connects.
#[derive(Debug, Clone, Default)]
pub(crate) struct Server {
    /// Whose `[defaults.NAME]` applies (none: no section).
    pub(crate) section: Option<Section>,
    /// `-e`: a named endpoint of the config file.
    pub(crate) endpoint: Option<String>,
    /// `-m`: a model id or alias.
    pub(crate) model: Option<String>,
    /// `--preset`, checked when the server is resolved.
    pub(crate) preset: Option<String>,
    pub(crate) base_url: Option<String>,
    /// The environment variable holding the key.
    pub(crate) api_key_env: Option<String>,
    /// Seconds, checked when the server is resolved (the config file may give them too).
    pub(crate) timeout: Option<f64>,
    pub(crate) total_timeout: Option<f64>,
    pub(crate) retries: Option<u32>,
    pub(crate) api: Option<Api>,
}

impl Server {
    /// The server flags of a command with its `[defaults.NAME]` section.
    pub(crate) fn from_flags(conn: ConnArgs, section: Section) -> Server {
        Server {
            section: Some(section),
            endpoint: conn.endpoint,
            model: conn.model,
            preset: conn.preset,
            base_url: conn.base_url,
            api_key_env: conn.api_key_env,
            timeout: conn.timeout,
            total_timeout: conn.total_timeout,
            retries: conn.retries,
            // clap allows only the four names.
            api: conn.api.as_deref().and_then(Api::parse),
        }
    }
}

/// The built-in model asked for: `-m NAME` (a built-in model's name) and `--model-file`, else
/// `MAMBA_MODEL_FILE`.
#[derive(Debug, Clone, Default)]
// Without the `local` feature nothing loads a model, so nothing reads these.
#[cfg_attr(not(feature = "local"), allow(dead_code))]
pub(crate) struct LocalModel {
    /// A built-in model's name (any other name is a server's model).
    pub(crate) name: Option<String>,
    /// `--model-file`.
    pub(crate) file_flag: Option<PathBuf>,
    /// `MAMBA_MODEL_FILE`.
    pub(crate) file_env: Option<PathBuf>,
}

impl LocalModel {
    /// The model of `-m` and `--model-file`, with `MAMBA_MODEL_FILE` from the environment.
    pub(crate) fn new(name: Option<String>, file_flag: Option<PathBuf>) -> LocalModel {
        let file_env = std::env::var_os("MAMBA_MODEL_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
        LocalModel { name, file_flag, file_env }
    }

    /// The GGUF file given, and by what (`--model-file` above `MAMBA_MODEL_FILE`).
    #[cfg_attr(not(feature = "local"), allow(dead_code))]
    pub(crate) fn given_file(&self) -> Option<(PathBuf, &'static str)> {
        match (&self.file_flag, &self.file_env) {
            (Some(path), _) => Some((path.clone(), "--model-file")),
            (None, Some(path)) => Some((path.clone(), "MAMBA_MODEL_FILE")),
            (None, None) => None,
        }
    }
}

/// Which conversation `chat` continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Continue {
    /// A new one.
    No,
    /// `-c`: the last one of the log.
    Last,
    /// `--cid ID`.
    Id(String),
}

/// `chat`'s settings from its flags. [`crate::chat::setup::Prepared::settle`] completes them,
/// once, from the template and `[defaults.chat]` (flags win).
#[derive(Debug)]
pub(crate) struct Chat {
    /// The user message given as an argument.
    pub(crate) prompt: Option<String>,
    pub(crate) server: Server,
    /// Print JSON instead of text.
    pub(crate) json: bool,
    pub(crate) system: Option<String>,
    pub(crate) temperature: Option<f64>,
    pub(crate) max_tokens: Option<u32>,
    /// A JSON file of tools.
    pub(crate) tools: Option<PathBuf>,
    pub(crate) tool_choice: Option<String>,
    pub(crate) response_format: Option<String>,
    /// `KEY=JSON` request body fields, merged in this order.
    pub(crate) extra: Vec<String>,
    pub(crate) no_stream: bool,
    pub(crate) show_reasoning: bool,
    /// A conversation even when stdin is not a terminal.
    pub(crate) interactive: bool,
    /// `--local` or `--model-file`: the built-in model answers, whatever is configured.
    pub(crate) force_local: bool,
    /// `--model-file`.
    pub(crate) model_file: Option<PathBuf>,
    pub(crate) max_input_bytes: u64,
    /// `-t`: a template's name or file.
    pub(crate) template: Option<String>,
    /// `-p KEY VALUE`, as given: paired (and an odd count refused) by
    /// [`crate::chat::setup::prepare`] after the template loads, so the errors come in the
    /// order they always did.
    pub(crate) params: Vec<String>,
    pub(crate) continues: Continue,
    /// `--no-log`.
    pub(crate) no_log: bool,
    /// `-a`: files or URLs to attach.
    pub(crate) attach: Vec<String>,
}

impl Chat {
    /// `chat`'s flags as settings.
    pub(crate) fn from_flags(args: crate::args::ChatArgs) -> Chat {
        let c = args.conversation;
        let continues = match (c.cid, c.continue_last) {
            (Some(cid), _) => Continue::Id(cid),
            (None, true) => Continue::Last,
            (None, false) => Continue::No,
        };
        Chat {
            prompt: args.prompt,
            json: args.conn.json,
            server: Server::from_flags(args.conn, Section::Chat),
            system: args.system,
            temperature: args.temperature,
            max_tokens: args.max_tokens,
            tools: args.tools,
            tool_choice: args.tool_choice,
            response_format: args.response_format,
            extra: args.extra,
            no_stream: args.no_stream,
            show_reasoning: args.show_reasoning,
            interactive: args.interactive,
            force_local: args.local || args.model_file.is_some(),
            model_file: args.model_file,
            max_input_bytes: args.max_input_bytes,
            template: c.template,
            params: c.params,
            continues,
            no_log: c.no_log,
            attach: c.attach,
        }
    }

    /// The built-in model this chat would use: `-m` (a built-in model's name) and the file.
    pub(crate) fn local_model(&self) -> LocalModel {
        LocalModel::new(self.server.model.clone(), self.model_file.clone())
    }
}

/// `embed`'s settings.
#[derive(Debug)]
pub(crate) struct Embed {
    /// Texts given as arguments.
    pub(crate) texts: Vec<String>,
    pub(crate) server: Server,
    /// One `--json` document instead of JSON lines.
    pub(crate) json: bool,
    /// `--file`: one input per line.
    pub(crate) file: Option<PathBuf>,
    pub(crate) max_input_bytes: u64,
    pub(crate) dimensions: Option<u32>,
}

impl Embed {
    /// `embed`'s flags as settings.
    pub(crate) fn from_flags(args: crate::args::EmbedArgs) -> Embed {
        Embed {
            texts: args.texts,
            json: args.conn.json,
            server: Server::from_flags(args.conn, Section::Embed),
            file: args.file,
            max_input_bytes: args.max_input_bytes,
            dimensions: args.dimensions,
        }
    }
}

/// `sql`'s settings.
#[derive(Debug)]
// A build without the `sql` feature only says how to get it.
#[cfg_attr(not(feature = "sql"), allow(dead_code))]
pub(crate) struct Sql {
    pub(crate) query: String,
    pub(crate) server: Server,
    /// `--table NAME=PATH`, as given.
    pub(crate) tables: Vec<String>,
    pub(crate) output: Option<PathBuf>,
    /// `--concurrency`, when given.
    pub(crate) concurrency: Option<usize>,
    pub(crate) max_cost: Option<f64>,
    pub(crate) cache: Option<PathBuf>,
    pub(crate) on_error: String,
    /// `--ballista df://HOST:PORT`.
    pub(crate) ballista: Option<String>,
    /// `--partitions`.
    pub(crate) partitions: Option<usize>,
}

impl Sql {
    /// `sql`'s flags as settings.
    pub(crate) fn from_flags(args: crate::args::SqlArgs) -> Sql {
        Sql {
            query: args.query,
            server: Server::from_flags(args.conn, Section::Sql),
            tables: args.tables,
            output: args.output,
            concurrency: args.concurrency.map(|n| n as usize),
            max_cost: args.max_cost,
            cache: args.cache,
            on_error: args.on_error,
            ballista: args.ballista,
            partitions: args.partitions.map(|n| n as usize),
        }
    }
}

/// `extract`'s settings.
#[derive(Debug)]
pub(crate) struct Extract {
    /// The input given as an argument.
    pub(crate) prompt: Option<String>,
    pub(crate) server: Server,
    /// Each output line is `{"index", "value", "attempts", ...}` or `{"index", "error"}`.
    pub(crate) json: bool,
    /// `--schema`.
    pub(crate) schema: PathBuf,
    /// `--file`: one input per line.
    pub(crate) file: Option<PathBuf>,
    pub(crate) attempts: u32,
    /// `--mode`, one of the names clap allows.
    pub(crate) mode: String,
    pub(crate) system: Option<String>,
    pub(crate) temperature: Option<f64>,
    pub(crate) max_tokens: Option<u32>,
    /// `--local` or `--model-file`.
    pub(crate) force_local: bool,
    pub(crate) model_file: Option<PathBuf>,
    pub(crate) max_input_bytes: u64,
}

impl Extract {
    /// `extract`'s flags as settings.
    pub(crate) fn from_flags(args: crate::args::ExtractArgs) -> Extract {
        Extract {
            prompt: args.prompt,
            json: args.conn.json,
            server: Server::from_flags(args.conn, Section::Extract),
            schema: args.schema,
            file: args.file,
            attempts: args.attempts,
            mode: args.mode,
            system: args.system,
            temperature: args.temperature,
            max_tokens: args.max_tokens,
            force_local: args.local || args.model_file.is_some(),
            model_file: args.model_file,
            max_input_bytes: args.max_input_bytes,
        }
    }

    /// The built-in model asked for: `-m` (a built-in model's name) and the file.
    pub(crate) fn local_model(&self) -> LocalModel {
        LocalModel::new(self.server.model.clone(), self.model_file.clone())
    }
}

/// An environment variable's value; blank counts as unset (the rule of
/// [`mamba_home::settings::ProcessEnv`], which the precedence rule reads through).
pub(crate) fn env(name: &str) -> Option<String> {
    mamba_home::settings::Env::var(&mamba_home::settings::ProcessEnv, name)
}

/// The longest time a flag in seconds may give (about 31 years): longer is "never", and a
/// deadline that far past now cannot be computed (`Duration::from_secs_f64(1e20)` panics).
const MAX_SECONDS: f64 = 1e9;

/// A flag's number of seconds as a duration: above 0, at most 1e9; else a usage error.
pub(crate) fn seconds(flag: &str, secs: f64) -> Result<Duration, CliError> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if secs > 0.0 && secs <= MAX_SECONDS => Ok(d),
        _ => Err(CliError::Usage(format!(
            "{flag} must be a number of seconds above 0 and at most {MAX_SECONDS:e}, not {secs}"
        ))),
    }
}

/// `--max-cost`: a number of USD, 0 or more (`batch`, `sql`, `ballista executor`).
pub(crate) fn check_max_cost(usd: Option<f64>) -> Result<(), CliError> {
    match usd {
        Some(c) if !(c.is_finite() && c >= 0.0) => {
            Err(CliError::Usage("--max-cost must be a number of USD, 0 or more".into()))
        }
        _ => Ok(()),
    }
}

/// [`seconds`] of a flag that may be absent.
pub(crate) fn optional_seconds(flag: &str, secs: Option<f64>) -> Result<Option<Duration>, CliError> {
    secs.map(|secs| seconds(flag, secs)).transpose()
}

/// The preset named `name`; else the message naming the known ones.
pub(crate) fn preset(name: &str) -> Result<Preset, String> {
    Preset::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        format!("unknown preset {name:?}; known presets: {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(seconds("--t", 1.5).ok(), Some(Duration::from_millis(1500)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            assert!(matches!(seconds("--t", bad), Err(CliError::Usage(m)) if m.starts_with("--t must be")), "{bad}");
        }
        assert!(preset("nosuch").is_err_and(|m| m.contains("known presets: ")));
        assert_eq!(Api::parse("completions"), Some(Api::Completions));
        assert_eq!(Api::parse("auto"), Some(Api::Wire(WireApi::Auto)));
    }
}
