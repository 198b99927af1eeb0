//! What `chat` takes before it asks: `[defaults.chat]` of the config file and the template
//! applied to its settings (flags win), the attachments read, the first prompt filled in, and
//! the history of a continued conversation.

use mamba_backends::{Message, ModelBackend};

use crate::attach::{self, Attachment};
use crate::error::CliError;
use crate::prompt_template::Template;
use crate::settings::{Chat, Continue};
use mamba_home::log::Log;

/// What [`prepare`] settled.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) template: Option<Template>,
    /// `-p KEY VALUE` pairs, in order.
    params: Vec<(String, String)>,
    pub(crate) attachments: Vec<Attachment>,
    /// Write the exchanges to the conversation log.
    pub(crate) log_on: bool,
}

/// Applies `[defaults.chat]` and the template to `chat` (flags win), and reads the
/// attachments.
pub(crate) fn prepare(mut chat: Chat) -> Result<(Chat, Prepared), CliError> {
    let config = crate::config::load()?;
    let defaults = config.command(Some(crate::settings::Section::Chat.name()));
    let template = chat.template.as_deref().map(crate::prompt_template::load).transpose()?;
    if chat.params.len() % 2 != 0 {
        return Err(CliError::Usage("-p takes a KEY and a VALUE".into()));
    }
    let params = chat.params.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
    if template.is_none() && !chat.params.is_empty() {
        return Err(CliError::Usage("-p sets template parameters: use it with -t NAME".into()));
    }
    if let Some(t) = &template {
        // The template is chosen on the command line: above the environment and config.
        if chat.server.model.is_none() {
            chat.server.model.clone_from(&t.model);
        }
        chat.temperature = chat.temperature.or(t.temperature);
        chat.max_tokens = chat.max_tokens.or(t.max_tokens);
    }
    chat.temperature = chat.temperature.or(defaults.temperature);
    chat.max_tokens = chat.max_tokens.or(defaults.max_tokens);
    if chat.system.is_none() && template.as_ref().is_none_or(|t| t.system.is_none()) {
        chat.system.clone_from(&defaults.system);
    }
    chat.no_stream |= defaults.no_stream.unwrap_or(false);
    chat.show_reasoning |= defaults.show_reasoning.unwrap_or(false);
    let limit = config.max_attachment_bytes.unwrap_or(attach::DEFAULT_LIMIT);
    let attachments = chat.attach.iter().map(|a| attach::read(a, limit)).collect::<Result<Vec<_>, _>>()?;
    let log_on = !chat.no_log && config.log_enabled();
    Ok((chat, Prepared { template, params, attachments, log_on }))
}

impl Prepared {
    /// Whether chat should read stdin for a missing prompt.
    pub(crate) fn needs_input(&self) -> bool {
        self.template.as_ref().is_none_or(Template::needs_input)
    }

    /// The first user text: the template filled with `input`, or `input`; with a template its
    /// system message (unless `-s` gave one) and extra fields (before `--extra`'s) go into
    /// `chat`.
    pub(crate) fn first_prompt(
        &self,
        mut chat: Chat,
        input: Option<String>,
    ) -> Result<(Chat, Option<String>), CliError> {
        let Some(template) = &self.template else { return Ok((chat, input)) };
        if input.is_none() && template.needs_input() {
            return Err(CliError::Usage("the template uses $input: give a prompt as an argument or on stdin".into()));
        }
        let applied = template.apply(input.as_deref().unwrap_or(""), &self.params)?;
        if chat.system.is_none() {
            chat.system = applied.system;
        }
        // The template's fields first: `--extra` flags are merged after them and win.
        let mut extra: Vec<String> = applied.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        extra.append(&mut chat.extra);
        chat.extra = extra;
        Ok((chat, Some(applied.prompt)))
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
pub(crate) fn continued(continues: &Continue) -> Result<Option<(String, Vec<Message>)>, CliError> {
    let cid = match continues {
        Continue::Id(cid) => cid.clone(),
        Continue::Last => {
            let log = Log::open_default()?;
            match log.last_conversation()? {
                Some(cid) => cid,
                None => {
                    return Err(CliError::Usage(
                        "-c: the conversation log is empty; there is nothing to continue".into(),
                    ))
                }
            }
        }
        Continue::No => return Ok(None),
    };
    let log = Log::open_default()?;
    let history = log.history(&cid, crate::chat::NO_TOOLS)?;
    Ok(Some((cid, history)))
}
