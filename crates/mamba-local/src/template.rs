//! The chat template: the GGUF's own Jinja template (`tokenizer.chat_template`) rendered with
//! minijinja, the way Hugging Face's `apply_chat_template` renders it.

use mamba_backends::{Error, ErrorKind, Message};
use minijinja::{context, Environment, ErrorKind as JinjaErrorKind};
use serde::Serialize;

/// A compiled chat template.
#[derive(Debug)]
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    /// The template writes `<think>` blocks: answers are split into reasoning and content.
    thinks: bool,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'a str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

fn raise_exception(message: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(JinjaErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `source`; `bos` and `eos` are the texts of those tokens, which templates use.
    pub(crate) fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.to_owned()).map_err(|e| {
            Error::new(ErrorKind::Unsupported, format!("the model's chat template cannot be compiled: {e}"))
                .with_source(e)
        })?;
        let thinks = crate::think::template_thinks(source);
        Ok(ChatTemplate { env, bos: bos.to_owned(), eos: eos.to_owned(), thinks })
    }

    /// Whether the template writes thinking blocks.
    pub(crate) fn thinks(&self) -> bool {
        self.thinks
    }

    /// Renders `messages` into the prompt text, ending with the assistant's turn opened.
    #[cfg(test)]
    pub(crate) fn render(&self, messages: &[Message]) -> Result<String, Error> {
        self.render_with(messages, &serde_json::Map::new())
    }

    /// Renders `messages` into the prompt text, ending with the assistant's turn opened, with
    /// more template variables (`enable_thinking`, a request's
    /// `chat_template_kwargs`); they cannot replace `messages` or the generation prompt.
    pub(crate) fn render_with(
        &self,
        messages: &[Message],
        variables: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, Error> {
        let wire: Vec<WireMessage<'_>> = messages
            .iter()
            .map(|m| WireMessage {
                role: m.role.as_str(),
                content: m.text().into_owned(),
                name: m.name.as_deref(),
                tool_calls: m
                    .tool_calls
                    .iter()
                    .map(|c| WireToolCall {
                        id: &c.id,
                        r#type: "function",
                        function: WireFunction { name: &c.name, arguments: &c.arguments },
                    })
                    .collect(),
                tool_call_id: m.tool_call_id.as_deref(),
            })
            .collect();
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::new(ErrorKind::Unsupported, format!("the model's chat template is missing: {e}")))?;
        let base = context! {
            messages => minijinja::value::Serde(wire),
            add_generation_prompt => true,
            bos_token => &self.bos,
            eos_token => &self.eos,
        };
        // Later contexts fill only what earlier ones lack: ours win over the request's.
        template.render(context! { ..base, ..minijinja::Value::from(minijinja::value::Serde(variables)) }).map_err(
            |e| {
                Error::new(
                    ErrorKind::InvalidRequest,
                    format!("the model's chat template cannot render these messages: {e}"),
                )
                .with_source(e)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_every_role_and_opens_the_assistant_turn() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
        let prompt = t
            .render(&[
                Message::system("Be brief."),
                Message::user("Hi"),
                Message::assistant("Hello!"),
                Message::tool("call_1", "42"),
            ])
            .unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>tool\n42<|im_end|>\n<|im_start|>assistant\n"
        );
        let default_system = t.render(&[Message::user("Hi")]).unwrap();
        assert!(default_system.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    }

    #[test]
    fn more_variables_reach_the_template_but_never_replace_the_messages() {
        let source = "{{ messages[0].content }}|{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>{% endif %}|{{ add_generation_prompt }}";
        let t = ChatTemplate::new(source, "", "").unwrap();
        assert!(t.thinks());
        assert_eq!(t.render(&[Message::user("Hi")]).unwrap(), "Hi||True");
        let mut vars = serde_json::Map::new();
        vars.insert("enable_thinking".into(), serde_json::json!(false));
        vars.insert("messages".into(), serde_json::json!([{"role": "user", "content": "injected"}]));
        vars.insert("add_generation_prompt".into(), serde_json::json!(false));
        assert_eq!(t.render_with(&[Message::user("Hi")], &vars).unwrap(), "Hi|<think>\n\n</think>|True");
        assert!(!ChatTemplate::new(CHATML, "", "").unwrap().thinks());
    }

    #[test]
    fn a_template_that_cannot_compile_or_render_is_a_clear_error() {
        let err = ChatTemplate::new("{% for %}", "", "").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("chat template"), "{err}");
        let t =
            ChatTemplate::new("{{ raise_exception('Only user and assistant roles are supported') }}", "", "").unwrap();
        let err = t.render(&[Message::user("x")]).unwrap_err();
        assert!(err.to_string().contains("Only user and assistant roles"), "{err}");
        let t = ChatTemplate::new("{{ messages[0].content.nosuchmethod() }}", "", "").unwrap();
        assert!(t.render(&[Message::user("x")]).is_err());
    }
}
