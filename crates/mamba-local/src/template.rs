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
        Ok(ChatTemplate { env, bos: bos.to_owned(), eos: eos.to_owned() })
    }

    /// Renders `messages` into the prompt text, ending with the assistant's turn opened.
    pub(crate) fn render(&self, messages: &[Message]) -> Result<String, Error> {
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
        template
            .render(context! {
                messages => minijinja::value::Serde(wire),
                add_generation_prompt => true,
                bos_token => &self.bos,
                eos_token => &self.eos,
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidRequest,
                    format!("the model's chat template cannot render these messages: {e}"),
                )
                .with_source(e)
            })
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
