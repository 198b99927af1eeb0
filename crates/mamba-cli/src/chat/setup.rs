//! What `chat` takes before it asks: the config's `[defaults.chat]`, the template and the
//! attachments read ([`prepare`]), the template filled in ([`Prepared::apply`]), the final
//! settings and first prompt settled in one function ([`Prepared::settle`], flags win), and the
//! history of a continued conversation.

use mamba_backends::{Message, ModelBackend};

use crate::attach::{self, Attachment};
use crate::error::CliError;
use crate::prompt_template::{Applied, Template};
use crate::settings::{Chat, Continue};
use mamba_home::config::CommandDefaults;
use mamba_home::log::Log;

/// What [`prepare`] read: the config's `[defaults.chat]`, the template, the `-p` pairs, the
/// attachments. It changes no setting; [`Prepared::settle`] does, once.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// `[defaults.chat]` of the config file.
    defaults: CommandDefaults,
    pub(crate) template: Option<Template>,
    /// `-p KEY VALUE` pairs, in order.
    params: Vec<(String, String)>,
    pub(crate) attachments: Vec<Attachment>,
    /// Write the exchanges to the conversation log.
    pub(crate) log_on: bool,
}

/// Reads the config, the template and the attachments, and checks `-p`; settings are not
/// touched here (see [`Prepared::settle`]).
pub(crate) fn prepare(chat: &Chat) -> Result<Prepared, CliError> {
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
    let limit = config.max_attachment_bytes.unwrap_or(attach::DEFAULT_LIMIT);
    let attachments = chat.attach.iter().map(|a| attach::read(a, limit)).collect::<Result<Vec<_>, _>>()?;
    let log_on = !chat.no_log && config.log_enabled();
    Ok(Prepared { defaults, template, params, attachments, log_on })
}

impl Prepared {
    /// Whether chat should read stdin for a missing prompt.
    pub(crate) fn needs_input(&self) -> bool {
        self.template.as_ref().is_none_or(Template::needs_input)
    }

    /// The template filled with `input` (its own value, for [`Prepared::settle`]); `None`
    /// without a template.
    pub(crate) fn apply(&self, input: Option<&str>) -> Result<Option<Applied>, CliError> {
        let Some(template) = &self.template else { return Ok(None) };
        if input.is_none() && template.needs_input() {
            return Err(CliError::Usage("the template uses $input: give a prompt as an argument or on stdin".into()));
        }
        template.apply(input.unwrap_or(""), &self.params).map(Some)
    }

    /// The final settings and the first prompt, in one place: flags first, then the template
    /// (chosen on the command line: above the environment and config), then `[defaults.chat]`;
    /// the applied template's system message (unless `-s` gave one) and extra fields (before
    /// `--extra`'s, which win). The prompt is the applied template's, else `input`.
    pub(crate) fn settle(
        &self,
        mut chat: Chat,
        input: Option<String>,
        applied: Option<Applied>,
    ) -> (Chat, Option<String>) {
        let defaults = &self.defaults;
        if let Some(t) = &self.template {
            if chat.server.model.is_none() {
                chat.server.model.clone_from(&t.model);
            }
            chat.temperature = chat.temperature.or(t.temperature);
            chat.max_tokens = chat.max_tokens.or(t.max_tokens);
        }
        chat.temperature = chat.temperature.or(defaults.temperature);
        chat.max_tokens = chat.max_tokens.or(defaults.max_tokens);
        if chat.system.is_none() && self.template.as_ref().is_none_or(|t| t.system.is_none()) {
            chat.system.clone_from(&defaults.system);
        }
        chat.no_stream |= defaults.no_stream.unwrap_or(false);
        chat.show_reasoning |= defaults.show_reasoning.unwrap_or(false);
        let Some(applied) = applied else { return (chat, input) };
        if chat.system.is_none() {
            chat.system = applied.system;
        }
        let mut extra: Vec<String> = applied.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        extra.append(&mut chat.extra);
        chat.extra = extra;
        (chat, Some(applied.prompt))
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
