//! The chat template: the GGUF's own Jinja template (`tokenizer.chat_template`) rendered with
//! minijinja, the way Hugging Face's `apply_chat_template` renders it.

use mamba_backends::{Error, ErrorKind, Message, ToolDefinition};
use minijinja::{context, Environment, ErrorKind as JinjaErrorKind};
use serde::Serialize;
use serde_json::Value;

use crate::tools::ToolSyntax;

/// A compiled chat template.
#[derive(Debug)]
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    /// The template writes `<think>` blocks: answers are split into reasoning and content.
    thinks: bool,
    /// How the template's model calls tools; `None`: the template has no tools.
    tools: Option<ToolSyntax>,
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
    /// The arguments as a JSON value, as Hugging Face's templates expect them (they write
    /// `arguments | tojson`); the text itself when it is not JSON.
    arguments: Value,
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

/// Python's `json.dumps` layout: `", "` between items and `": "` after keys.
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `tojson` as Hugging Face's chat templates have it (Python's `json.dumps`, non-ASCII kept,
/// keys in their order, `indent` for the pretty form). minijinja's own escapes `<`, `>`, `&`
/// and `'` for HTML, which would change the prompt the model was trained on ("the user's
/// city" would read `the user\u0027s city`).
fn tojson(
    value: &minijinja::Value,
    indent: Option<usize>,
    kwargs: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    let indent = match indent {
        Some(n) => Some(n),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    // Python's other arguments: non-ASCII is never escaped here anyway.
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let value = serde_json::to_value(value).map_err(|e| {
        minijinja::Error::new(JinjaErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(e)
    })?;
    let mut out = Vec::new();
    let written = match indent {
        Some(width) => {
            let indent = vec![b' '; width];
            let mut ser = serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(&indent),
            );
            value.serialize(&mut ser)
        }
        None => value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, Spaced)),
    };
    written.map_err(|e| {
        minijinja::Error::new(JinjaErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(e)
    })?;
    Ok(minijinja::Value::from_safe_string(String::from_utf8_lossy(&out).into_owned()))
}

impl ChatTemplate {
    /// Compiles `source`; `bos` and `eos` are the texts of those tokens, which templates use.
    pub(crate) fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        // Python's string and dict methods (`.startswith`, `.split`, `.items()`, …), which
        // Qwen3's and other templates call.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_template_owned("chat", source.to_owned()).map_err(|e| {
            Error::new(ErrorKind::Unsupported, format!("the model's chat template cannot be compiled: {e}"))
                .with_source(e)
        })?;
        let thinks = crate::think::template_thinks(source);
        let tools = crate::tools::detect(source);
        Ok(ChatTemplate { env, bos: bos.to_owned(), eos: eos.to_owned(), thinks, tools })
    }

    /// How the template's model calls tools; `None` when the template has no tools.
    pub(crate) fn tool_syntax(&self) -> Option<ToolSyntax> {
        self.tools
    }

    /// Whether the template writes thinking blocks.
    pub(crate) fn thinks(&self) -> bool {
        self.thinks
    }

    /// Renders `messages` into the prompt text, ending with the assistant's turn opened.
    #[cfg(test)]
    pub(crate) fn render(&self, messages: &[Message]) -> Result<String, Error> {
        self.render_with(messages, &[], &serde_json::Map::new())
    }

    /// Renders `messages` into the prompt text, ending with the assistant's turn opened, with
    /// the `tools` the model may call (OpenAI's shape, as Hugging Face's templates read them;
    /// left undefined when there are none) and more template variables (`enable_thinking`, a
    /// request's `chat_template_kwargs`); they cannot replace `messages`, `tools` or the
    /// generation prompt.
    pub(crate) fn render_with(
        &self,
        messages: &[Message],
        tools: &[ToolDefinition],
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
                        function: WireFunction {
                            name: &c.name,
                            arguments: serde_json::from_str(&c.arguments)
                                .unwrap_or_else(|_| Value::String(c.arguments.clone())),
                        },
                    })
                    .collect(),
                tool_call_id: m.tool_call_id.as_deref(),
            })
            .collect();
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::new(ErrorKind::Unsupported, format!("the model's chat template is missing: {e}")))?;
        let tools = (!tools.is_empty()).then_some(minijinja::value::Serde(tools));
        let base = context! {
            messages => minijinja::value::Serde(wire),
            tools => tools,
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
        assert_eq!(t.render_with(&[Message::user("Hi")], &[], &vars).unwrap(), "Hi|<think>\n\n</think>|True");
        assert!(!ChatTemplate::new(CHATML, "", "").unwrap().thinks());
    }

    const CHATML_TOOLS: &str = include_str!("../tests/data/chatml-tools.jinja");

    #[test]
    fn tools_and_calls_render_as_hugging_face_renders_them() {
        let t = ChatTemplate::new(CHATML_TOOLS, "", "").unwrap();
        assert_eq!(t.tool_syntax(), Some(ToolSyntax::Tagged));
        let tools = [mamba_backends::ToolDefinition::function(
            "get_weather",
            "The weather in the user's city, <now> & later",
            serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}),
        )];
        let mut asked = Message::assistant("");
        asked.tool_calls = vec![mamba_backends::ToolCall::new("call_1", "get_weather", r#"{"city":"Paris","days":2}"#)];
        let messages = [Message::user("Weather in Paris?"), asked, Message::tool("call_1", "sunny")];
        let prompt = t.render_with(&messages, &tools, &serde_json::Map::new()).unwrap();
        // The tool in OpenAI's shape, keys in their order, Python's separators, nothing escaped.
        assert!(prompt.contains(
            r#"{"type": "function", "function": {"name": "get_weather", "description": "The weather in the user's city, <now> & later", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}"#
        ), "{prompt}");
        // The earlier call with its arguments as an object, and its answer.
        assert!(prompt.contains(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call><|im_end|>\n<|im_start|>tool\n<tool_response>\nsunny\n</tool_response>"
        ), "{prompt}");
        assert!(prompt.ends_with("<|im_start|>assistant\n"));
        // Without tools the template takes its other branch.
        let plain = t.render(&[Message::user("Hi")]).unwrap();
        assert!(!plain.contains("<tools>") && plain.starts_with("<|im_start|>system\nYou are a helpful assistant."));
    }

    #[test]
    fn tojson_and_python_methods_behave_as_in_hugging_face_templates() {
        let t = ChatTemplate::new(
            "{{ {'b': [1, 2.5, none, true], 'a': \"x'<é>\"} | tojson }}|{{ {'k': {}, 'l': []} | tojson(indent=2) }}|\
             {% if messages[0].content.startswith('Hi') %}yes{% endif %} {{ messages[0].content.split(',')[-1].strip() }} {{ 'a b'.upper() }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::user("Hi, there ")]).unwrap(),
            "{\"b\": [1, 2.5, null, true], \"a\": \"x'<é>\"}|{\n  \"k\": {},\n  \"l\": []\n}|yes there A B"
        );
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
