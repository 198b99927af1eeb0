//! `mamba-llm logs`: list and search the conversation log ([`mamba_home::log`]).

use clap::Args;

use crate::error::CliError;
use crate::print::line;
use mamba_home::log::{Exchange, Log};

/// `mamba-llm logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The newest N exchanges (0: all).
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 10)]
    pub(crate) count: usize,
    /// Only exchanges whose prompt, system message, answer or reasoning has these words.
    #[arg(short = 'q', long = "query", value_name = "TEXT")]
    pub(crate) query: Option<String>,
    /// Only this conversation.
    #[arg(long, value_name = "ID")]
    pub(crate) cid: Option<String>,
    /// Print a JSON array of exchanges.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print the log database's path.
    #[arg(long)]
    pub(crate) path: bool,
}

/// What `logs` does: its flags resolved ([`LogsDo::from_flags`]), no clap type below main.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogsDo {
    /// Print the log database's path (`--path` wins over the other flags).
    Path,
    /// Print exchanges.
    List {
        /// The newest N (0: all).
        count: usize,
        /// Only those with these words.
        query: Option<String>,
        /// Only this conversation.
        cid: Option<String>,
        /// A JSON array instead of text.
        json: bool,
    },
}

impl LogsDo {
    /// `logs`'s flags as what to do.
    pub(crate) fn from_flags(args: LogsArgs) -> LogsDo {
        if args.path {
            return LogsDo::Path;
        }
        LogsDo::List { count: args.count, query: args.query, cid: args.cid, json: args.json }
    }
}

/// `mamba-llm logs …`.
pub(crate) fn run(what: LogsDo) -> Result<(), CliError> {
    let (count, query, cid, json) = match what {
        LogsDo::Path => return line(&mamba_home::paths::log_path()?.display().to_string()),
        LogsDo::List { count, query, cid, json } => (count, query, cid, json),
    };
    let log = Log::open_default()?;
    let exchanges = log.list(count, query.as_deref(), cid.as_deref())?;
    if json {
        let text = serde_json::to_string_pretty(&exchanges).map_err(|e| CliError::Output(e.to_string()))?;
        return line(&text);
    }
    for (i, x) in exchanges.iter().enumerate() {
        if i > 0 {
            line("")?;
        }
        line(&render(x))?;
    }
    Ok(())
}

/// One exchange as text: a header line, then the prompt and the answer.
fn render(x: &Exchange) -> String {
    let mut head = format!("## {}  cid {}", x.time, x.conversation_id);
    if let Some(model) = &x.model {
        head.push_str(&format!("  {model}"));
    }
    if let Some(endpoint) = &x.endpoint {
        head.push_str(&format!(" @ {endpoint}"));
    }
    if let (Some(i), Some(o)) = (x.input_tokens, x.output_tokens) {
        head.push_str(&format!("  {i}+{o} tokens"));
    }
    if let Some(cost) = x.cost_usd {
        head.push_str(&format!("  ${cost:.6}"));
    }
    if let Some(ms) = x.latency_ms {
        head.push_str(&format!("  {ms} ms"));
    }
    let mut out = head;
    if let Some(system) = &x.system {
        out.push_str(&format!("\nsystem: {system}"));
    }
    for a in &x.attachments {
        out.push_str(&format!("\nattached: {a}"));
    }
    out.push_str(&format!("\n> {}", x.prompt.replace('\n', "\n> ")));
    if let Some(error) = &x.error {
        out.push_str(&format!("\nfailed: {error}"));
    }
    if let Some(answer) = x.answer.as_deref().filter(|a| !a.is_empty()) {
        out.push_str(&format!("\n{answer}"));
    }
    if let Some(serde_json::Value::Array(calls)) = &x.tool_calls {
        for call in calls {
            out.push_str(&format!(
                "\n[tool call {}] {}({})",
                call["id"].as_str().unwrap_or(""),
                call["name"].as_str().unwrap_or(""),
                call["arguments"].as_str().unwrap_or("")
            ));
        }
    }
    out
}
