//! What `chat` takes from the config file, templates, attachments and the conversation log.

use std::time::Instant;

use clap::Args;
use mamba_backends::{Message, ModelBackend, ModelResponse};
use mamba_home::log::{new_conversation_id, Exchange, Log};

use crate::args::ChatArgs;
use crate::attach::{self, Attachment};
use crate::output::CliError;
use crate::template::Template;

/// `chat`'s flags for templates, attachments and the log.
#[derive(Debug, Args, Default)]
pub(crate) struct DailyArgs {
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

/// What [`prepare`] settled.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) template: Option<Template>,
    pub(crate) attachments: Vec<Attachment>,
    log_on: bool,
}

/// Applies `[defaults.chat]` and the template to `args` (flags win), and reads the attachments.
pub(crate) fn prepare(args: &mut ChatArgs) -> Result<Prepared, CliError> {
    let config = crate::config::load()?;
    args.conn.command.get_or_insert("chat");
    let defaults = config.command(Some("chat"));
    let template = args.daily.template.as_deref().map(crate::template::load).transpose()?;
    if args.daily.params.len() % 2 != 0 {
        return Err(CliError::Usage("-p takes a KEY and a VALUE".into()));
    }
    if template.is_none() && !args.daily.params.is_empty() {
        return Err(CliError::Usage("-p sets template parameters: use it with -t NAME".into()));
    }
    if let Some(t) = &template {
        // The template is chosen on the command line: above the environment and config.
        if args.conn.model.is_none() {
            args.conn.model.clone_from(&t.model);
        }
        args.temperature = args.temperature.or(t.temperature);
        args.max_tokens = args.max_tokens.or(t.max_tokens);
    }
    args.temperature = args.temperature.or(defaults.temperature);
    args.max_tokens = args.max_tokens.or(defaults.max_tokens);
    if args.system.is_none() && template.as_ref().is_none_or(|t| t.system.is_none()) {
        args.system.clone_from(&defaults.system);
    }
    args.no_stream |= defaults.no_stream.unwrap_or(false);
    args.show_reasoning |= defaults.show_reasoning.unwrap_or(false);
    let limit = config.max_attachment_bytes.unwrap_or(attach::DEFAULT_LIMIT);
    let attachments = args.daily.attach.iter().map(|a| attach::read(a, limit)).collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared { template, attachments, log_on: !args.daily.no_log && config.log_enabled() })
}

impl Prepared {
    /// Whether chat should read stdin for a missing prompt.
    pub(crate) fn needs_input(&self) -> bool {
        self.template.as_ref().is_none_or(Template::needs_input)
    }

    /// The first user text: the template filled with `input`, or `input`; with a template its
    /// system message and extra fields go into `args`.
    pub(crate) fn first_prompt(&self, args: &mut ChatArgs, input: Option<String>) -> Result<Option<String>, CliError> {
        let Some(template) = &self.template else { return Ok(input) };
        if input.is_none() && template.needs_input() {
            return Err(CliError::Usage("the template uses $input: give a prompt as an argument or on stdin".into()));
        }
        let pairs: Vec<(String, String)> =
            args.daily.params.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
        let applied = template.apply(input.as_deref().unwrap_or(""), &pairs)?;
        if args.system.is_none() {
            args.system = applied.system;
        }
        // The template's fields first: `--extra` flags are merged after them and win.
        let mut extra: Vec<String> = applied.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        extra.append(&mut args.extra);
        args.extra = extra;
        Ok(Some(applied.prompt))
    }

    /// The user message for `prompt`, with the attachments; fails before any request when the
    /// model reads no images.
    pub(crate) fn user_message(&self, backend: &dyn ModelBackend, prompt: &str) -> Result<(Message, String), CliError> {
        attach::check_vision(backend.model(), backend.profile(), &self.attachments)?;
        let text = attach::prompt_text(prompt, &self.attachments);
        Ok((Message::user(attach::content(text.clone(), &self.attachments)), text))
    }
}

/// The history of the conversation `-c` or `--cid` continues, and its id.
pub(crate) fn continued(args: &ChatArgs) -> Result<Option<(String, Vec<Message>)>, CliError> {
    let cid = if let Some(cid) = &args.daily.cid {
        cid.clone()
    } else if args.daily.continue_last {
        let log = Log::open_default()?;
        match log.last_conversation()? {
            Some(cid) => cid,
            None => {
                return Err(CliError::Usage("-c: the conversation log is empty; there is nothing to continue".into()))
            }
        }
    } else {
        return Ok(None);
    };
    let log = Log::open_default()?;
    let history = log.history(&cid, crate::chat::NO_TOOLS)?;
    Ok(Some((cid, history)))
}

/// Writes exchanges to the log. A log that cannot be written is reported once (the answer is
/// already printed) and makes the command fail at its end.
#[derive(Debug)]
pub(crate) struct Recorder {
    on: bool,
    cid: String,
    endpoint: String,
    streamed: bool,
    log: Option<Log>,
    failure: Option<CliError>,
}

impl Recorder {
    pub(crate) fn new(prepared: &Prepared, cid: Option<String>, endpoint: String, streamed: bool) -> Recorder {
        Recorder {
            on: prepared.log_on,
            cid: cid.unwrap_or_else(new_conversation_id),
            endpoint,
            streamed,
            log: None,
            failure: None,
        }
    }

    /// Records one exchange: `history` as sent (its system message), the user text, and the
    /// answer or the failure.
    pub(crate) fn record(
        &mut self,
        history: &[Message],
        user_text: &str,
        attachments: &[Attachment],
        backend: &dyn ModelBackend,
        result: Result<&ModelResponse, &CliError>,
        started: Instant,
    ) {
        if !self.on || self.failure.is_some() {
            return;
        }
        let model = backend.model();
        let mut x = match result {
            Ok(response) => {
                let mut x = Exchange::from_response(response);
                x.cost_usd = response.usage.as_ref().and_then(|u| backend.profile().cost(u));
                x.model = response.model.clone().filter(|m| !m.is_empty()).or_else(|| Some(model.to_owned()));
                x
            }
            Err(e) => Exchange {
                error: Some(crate::output::error_json(e)),
                model: Some(model.to_owned()),
                ..Exchange::default()
            },
        };
        x.conversation_id = self.cid.clone();
        x.endpoint = Some(self.endpoint.clone());
        x.system =
            history.iter().find(|m| m.role == mamba_backends::message::Role::System).map(|m| m.text().into_owned());
        x.prompt = user_text.to_owned();
        x.attachments = attachments.iter().map(|a| a.name().to_owned()).collect();
        x.latency_ms = Some(started.elapsed().as_millis() as u64);
        x.streamed = Some(self.streamed);
        let written = match &self.log {
            Some(log) => log.insert(&x).map(|_| ()),
            None => Log::open_default().and_then(|log| {
                log.insert(&x)?;
                self.log = Some(log);
                Ok(())
            }),
        };
        if let Err(e) = written {
            self.failure = Some(CliError::Failed("log", format!("{e} (the answer was printed but not saved)")));
        }
    }

    /// The log's failure, if any, once the answers are out.
    pub(crate) fn finish(self) -> Result<(), CliError> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A URL without its credentials (`user:password@`, `?api_key=…` and the like), for the log.
pub(crate) fn safe_url(url: &str) -> String {
    mamba_backends::redact::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(safe_url("https://u:p@host:1/v1?x=1"), "https://[REDACTED]@host:1/v1?x=1");
        assert_eq!(
            safe_url("https://host/v1?api_key=k&token=t&x=1"),
            "https://host/v1?api_key=[REDACTED]&token=[REDACTED]&x=1"
        );
        assert_eq!(safe_url("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080/v1");
        assert_eq!(safe_url("http://host"), "http://host");
    }
}
