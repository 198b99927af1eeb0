//! `mamba-llm chat`: one question, or a conversation, answered by a server or the built-in
//! model, printed as it streams. [`setup`] prepares the settings and the first prompt,
//! [`record`] writes the conversation log.

pub(crate) mod record;
pub(crate) mod setup;

use std::io::IsTerminal;

use futures_util::StreamExt;
use std::time::Instant;

use mamba_backends::redact::redact_url;
use mamba_backends::{
    message::Role, Message, ModelBackend, ModelResponse, RequestOptions, ResponseFormat, StreamAccumulator, ToolChoice,
    ToolDefinition,
};
use serde_json::Value;

use self::record::Recorder;
use self::setup::Prepared;
use crate::connect::{find_server, Found};
use crate::error::CliError;
use crate::json::response_json;
use crate::local::{self, Why};
use crate::print::{line, note, report, Printer};
use crate::settings::Chat;

/// Builds the request options from the flags.
pub(crate) fn options(args: &Chat) -> Result<RequestOptions, CliError> {
    let mut options = RequestOptions::new();
    if let Some(t) = args.temperature {
        options = options.temperature(t);
    }
    if let Some(n) = args.max_tokens {
        options = options.max_tokens(n);
    }
    if let Some(path) = &args.tools {
        let text =
            std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--tools {}: {e}", path.display())))?;
        let tools: Vec<ToolDefinition> = serde_json::from_str(&text).map_err(|e| {
            CliError::Usage(format!("--tools {}: not a JSON array of OpenAI tools: {e}", path.display()))
        })?;
        options = options.tools(tools);
    }
    if let Some(choice) = &args.tool_choice {
        options = options.tool_choice(match choice.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            "" => return Err(CliError::Usage("--tool-choice needs auto, none, required or a function name".into())),
            name => ToolChoice::Function(name.to_owned()),
        });
    }
    if let Some(format) = &args.response_format {
        options = options.response_format(match format.as_str() {
            "json" | "json_object" | "json-object" => ResponseFormat::JsonObject,
            "text" => ResponseFormat::Text,
            other => match other.strip_prefix("json-schema:").or_else(|| other.strip_prefix("json_schema:")) {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| CliError::Usage(format!("--response-format json-schema:{path}: {e}")))?;
                    let schema: Value = serde_json::from_str(&text)
                        .map_err(|e| CliError::Usage(format!("--response-format json-schema:{path}: not JSON: {e}")))?;
                    let name = std::path::Path::new(path)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .filter(|s| !s.is_empty())
                        .unwrap_or("response")
                        .to_owned();
                    ResponseFormat::json_schema(name, schema)
                }
                None => {
                    return Err(CliError::Usage(format!(
                        "--response-format {other:?}: use `json` or `json-schema:FILE`"
                    )))
                }
            },
        });
    }
    for pair in &args.extra {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!("--extra {pair:?}: expected KEY=JSON")));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(CliError::Usage(format!("--extra {pair:?}: the key is empty")));
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        options = options.extra(key, value);
    }
    Ok(options)
}

/// `mamba-llm chat`.
pub(crate) async fn run(args: Chat) -> Result<(), CliError> {
    let prepared = setup::prepare(&args)?;
    let stdin_is_tty = std::io::stdin().is_terminal();
    let input = match &args.prompt {
        Some(prompt) => Some(prompt.clone()),
        None if stdin_is_tty || args.interactive || !prepared.needs_input() => None,
        None => {
            // Within --max-input-bytes: a huge stdin fails once the limit is read.
            let text = crate::input::read_capped(std::io::stdin().lock(), args.max_input_bytes, "stdin")?;
            let text = text.trim().to_owned();
            if text.is_empty() {
                return Err(CliError::Usage("no prompt: give one as an argument or on stdin".into()));
            }
            Some(text)
        }
    };
    let applied = prepared.apply(input.as_deref())?;
    let (args, prompt) = prepared.settle(args, input, applied);
    let options = options(&args)?;
    let continued = setup::continued(&args.continues)?;
    let chosen = choose(&args).await?;
    let backend = chosen.backend.as_ref();
    let (cid, mut history) = match continued {
        Some((cid, history)) => (Some(cid), history),
        None => (None, Vec::new()),
    };
    if let Some(system) = &args.system {
        history.retain(|m| m.role != Role::System);
        history.insert(0, Message::system(system));
    }
    let mut turn = Turn {
        backend,
        options: &options,
        args: &args,
        prepared: &prepared,
        recorder: Recorder::new(&prepared, cid, chosen.endpoint.clone(), !args.no_stream),
        attached: false,
    };
    match prompt {
        Some(prompt) if args.interactive => {
            match turn.ask(&mut history, &prompt).await {
                Err(CliError::BrokenPipe) => return Err(CliError::BrokenPipe),
                Err(e) => report(&e, args.json),
                Ok(()) => {}
            }
            repl(&chosen.label, history, &mut turn).await?;
        }
        Some(prompt) => turn.ask(&mut history, &prompt).await?,
        None => repl(&chosen.label, history, &mut turn).await?,
    }
    turn.recorder.finish()
}

/// One conversation's fixed parts.
struct Turn<'a> {
    backend: &'a dyn ModelBackend,
    options: &'a RequestOptions,
    args: &'a Chat,
    prepared: &'a Prepared,
    recorder: Recorder,
    /// The attachments were sent.
    attached: bool,
}

impl Turn<'_> {
    /// Sends `prompt` after `history`, prints and logs the answer, and adds both to `history`
    /// (on failure `history` is unchanged).
    async fn ask(&mut self, history: &mut Vec<Message>, prompt: &str) -> Result<(), CliError> {
        // The attachments go with the first prompt of the run.
        let attachments: &[crate::attach::Attachment] = if self.attached { &[] } else { &self.prepared.attachments };
        let (message, text) = if self.attached {
            (Message::user(prompt), prompt.to_owned())
        } else {
            self.prepared.user_message(self.backend, prompt)?
        };
        history.push(message);
        let started = Instant::now();
        let result = answer(self.backend, history, self.options, self.args).await;
        self.recorder.record(history, &text, attachments, self.backend, result.as_ref(), started);
        match result {
            Ok(response) => {
                self.attached = true;
                if self.args.json {
                    line(&response_json(&response))?;
                }
                record_turn(history, &response);
                Ok(())
            }
            Err(e) => {
                history.pop();
                Err(e)
            }
        }
    }
}

/// The backend that answers and how to name it.
struct Chosen {
    backend: Box<dyn ModelBackend>,
    label: String,
    /// The endpoint's name or URL, for the log.
    endpoint: String,
}

/// The backend that answers, and how to name it: `--local` or `--model-file` → the built-in
/// model; else a configured server; else a server running on this machine; else the built-in
/// model.
async fn choose(args: &Chat) -> Result<Chosen, CliError> {
    if args.force_local {
        let (backend, label) = local::open(&args.local_model(), Why::Asked).await?;
        return Ok(Chosen { backend, label, endpoint: "built-in".to_owned() });
    }
    match find_server(&args.server, |builder| builder).await? {
        Found::Server(conn) => {
            conn.note_if_found();
            let label = format!("{} at {}", conn.backend.model(), redact_url(conn.backend.base_url()));
            let endpoint = conn.endpoint.clone().unwrap_or_else(|| redact_url(conn.backend.base_url()));
            Ok(Chosen { backend: Box::new(conn.backend), label, endpoint })
        }
        Found::Nothing { searched } => {
            let (backend, label) = local::open(&args.local_model(), Why::NoServer(searched)).await?;
            Ok(Chosen { backend, label, endpoint: "built-in".to_owned() })
        }
    }
}

/// One answer, printed as it arrives (unless `--json`).
async fn answer(
    backend: &dyn ModelBackend,
    history: &[Message],
    options: &RequestOptions,
    args: &Chat,
) -> Result<ModelResponse, CliError> {
    let json = args.json;
    let mut printer = Printer::new(args.show_reasoning);
    if args.no_stream {
        let response = backend.complete(history, options).await?;
        if !json {
            printer.reasoning(response.reasoning.as_deref().unwrap_or(""))?;
            printer.content(&response.content)?;
            printer.finish(&response)?;
        }
        return Ok(response);
    }
    let mut stream = backend.stream(history, options).await?;
    let mut acc = StreamAccumulator::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                if !json {
                    printer.reasoning(&chunk.reasoning)?;
                    printer.content(&chunk.content)?;
                }
                acc.push(&chunk);
            }
            Err(e) => {
                if !json {
                    printer.interrupt();
                }
                return Err(CliError::Backend(e));
            }
        }
    }
    let response = acc.finish();
    if !json {
        printer.finish(&response)?;
    }
    Ok(response)
}

/// What a tool call gets as its result: mamba-llm runs no tools.
pub(crate) const NO_TOOLS: &str = "error: mamba-llm cannot run tools; answer without this tool";

/// Adds an answer to the conversation. Tools cannot run here: each call gets an answer saying
/// so, which keeps the history valid for servers that require a result for every call.
fn record_turn(history: &mut Vec<Message>, response: &ModelResponse) {
    history.push(response.to_message());
    for call in &response.tool_calls {
        history.push(Message::tool(&call.id, NO_TOOLS));
    }
}

async fn repl(label: &str, mut history: Vec<Message>, turn: &mut Turn<'_>) -> Result<(), CliError> {
    note(&format!("mamba-llm: chatting with {label}. /reset starts over, /exit or Ctrl-D quits."));
    let system: Vec<Message> = history.iter().filter(|m| m.role == Role::System).cloned().collect();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    loop {
        {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "> ");
            let _ = err.flush();
        }
        let input = match crate::input::next_line_capped(&mut stdin, turn.args.max_input_bytes).await {
            Some(Ok(input)) => input,
            // A line over the limit (or not text) was skipped; the conversation goes on.
            Some(Err(e)) => {
                report(&e, turn.args.json);
                continue;
            }
            None => {
                note("");
                return Ok(());
            }
        };
        let input = input.trim();
        match input {
            "" => continue,
            "/exit" | "/quit" => return Ok(()),
            "/reset" => {
                history.clone_from(&system);
                note("mamba-llm: conversation cleared.");
                continue;
            }
            _ => {}
        }
        match turn.ask(&mut history, input).await {
            Ok(()) => {}
            Err(CliError::BrokenPipe) => return Err(CliError::BrokenPipe),
            Err(e) => report(&e, turn.args.json),
        }
    }
}
