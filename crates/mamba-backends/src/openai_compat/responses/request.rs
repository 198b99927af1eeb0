//! Request translation for the Responses API: messages and options to a `POST /responses`
//! body. Pure.
//!
//! Leading system and developer messages become `instructions`; the rest become input items:
//! messages (text, `input_text` and `input_image` parts), an assistant's reasoning items and
//! tool calls (`reasoning`, `function_call`), and tool results (`function_call_output`). The
//! same rule-applying writer as chat's sees every key, so preset data still decides what goes
//! out.

use std::cell::Cell;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use crate::error::Error;
use crate::openai_compat::request::{BodyWriter, WireConfig, Writer};
use crate::options::{RequestOptions, ResponseFormat};
use crate::types::{Content, ContentPart, ImageDetail, Message, ReasoningItem, Role, ToolChoice, ToolDefinition};

/// Options the Responses API has no field for, by their chat names.
pub(crate) fn chat_only_options(o: &RequestOptions) -> Option<&'static str> {
    if !o.stop.is_empty() {
        Some("stop")
    } else if o.seed.is_some() {
        Some("seed")
    } else if o.frequency_penalty.is_some() {
        Some("frequency_penalty")
    } else if o.presence_penalty.is_some() {
        Some("presence_penalty")
    } else {
        None
    }
}

/// One Responses API request body.
pub(crate) struct ResponsesRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: &'a [Message],
    pub(crate) options: &'a RequestOptions,
    pub(crate) stream: bool,
    pub(crate) config: &'a WireConfig,
}

impl ResponsesRequest<'_> {
    /// How many leading messages are instructions (system or developer, text only).
    fn instruction_count(&self) -> usize {
        self.messages
            .iter()
            .take_while(|m| matches!(m.role, Role::System | Role::Developer) && matches!(m.content, Content::Text(_)))
            .count()
    }
}

impl BodyWriter for ResponsesRequest<'_> {
    fn write_to<S: Serializer>(&self, serializer: S, refused: &Cell<Option<Error>>) -> Result<S::Ok, S::Error> {
        let o = self.options;
        let c = self.config;
        let mut w = Writer::start(serializer, c, &o.extra, refused)?;
        w.field("model", self.model)?;
        let n = self.instruction_count();
        if n > 0 {
            w.field("instructions", &Instructions(&self.messages[..n]))?;
        }
        let store = o.store.unwrap_or(false);
        w.field("input", &Input { messages: &self.messages[n..], store })?;
        if self.stream {
            w.field("stream", &true)?;
        }
        w.field("store", &store)?;
        if let Some(id) = &o.previous_response_id {
            w.field("previous_response_id", id)?;
        }
        if let Some(t) = o.temperature.or(c.default_temperature) {
            w.field("temperature", &t)?;
        }
        if let Some(top_p) = o.top_p {
            w.field("top_p", &top_p)?;
        }
        if let Some(max) = o.max_tokens {
            w.field("max_output_tokens", &max)?;
        }
        if !o.tools.is_empty() {
            w.field("tools", &Tools(&o.tools))?;
        }
        if let Some(choice) = &o.tool_choice {
            w.field("tool_choice", &Choice(choice))?;
        }
        if let Some(parallel) = o.parallel_tool_calls {
            w.field("parallel_tool_calls", &parallel)?;
        }
        if let (Some(ResponseFormat::JsonSchema { name, schema, .. }), true) = (&o.response_format, o.adapt_schema) {
            // Structured output from `Extract`: the schema in this server's own form.
            match crate::structured::translate(schema, c.structured, c.target) {
                Ok(translated) => w.field("text", &serde_json::json!({ "format": translated.text_format(name) }))?,
                Err(e) => return Err(w.refuse_with(e)),
            }
        } else if let Some(format) = &o.response_format {
            w.field("text", &TextParam(format))?;
        }
        if o.reasoning_effort.is_some() || o.reasoning_summary.is_some() {
            #[derive(Serialize)]
            struct Reasoning {
                #[serde(skip_serializing_if = "Option::is_none")]
                effort: Option<crate::options::ReasoningEffort>,
                #[serde(skip_serializing_if = "Option::is_none")]
                summary: Option<crate::options::ReasoningSummary>,
            }
            w.field("reasoning", &Reasoning { effort: o.reasoning_effort, summary: o.reasoning_summary })?;
        }
        if o.encrypted_reasoning {
            w.field("include", &["reasoning.encrypted_content"])?;
        }
        if let Some(field) = chat_only_options(o) {
            if !c.drop_unsupported {
                return Err(w.refuse(format!(
                    "the Responses API has no `{field}`; leave it out, use the chat-completions API (WireApi::ChatCompletions), or build the backend with drop_unsupported(true) to drop it"
                )));
            }
            tracing::warn!(field, "the Responses API has no such field; it is not sent");
        }
        for (key, value) in &c.body_extra {
            if !o.extra.contains_key(key) {
                w.extra_field(key, value)?;
            }
        }
        for (key, value) in &o.extra {
            w.extra_field(key, value)?;
        }
        w.map.end()
    }

    fn size_hint(&self) -> usize {
        256 + self.messages.len() * 128
    }
}

/// The leading system messages' texts, joined by blank lines.
struct Instructions<'a>(&'a [Message]);

impl Serialize for Instructions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let [one] = self.0 {
            return serializer.serialize_str(&one.text());
        }
        let joined: Vec<_> = self.0.iter().map(Message::text).collect();
        serializer.serialize_str(&joined.join("\n\n"))
    }
}

/// The conversation as input items.
struct Input<'a> {
    messages: &'a [Message],
    /// Reasoning items without encrypted content can be referred to by id only when the
    /// server stores responses.
    store: bool,
}

impl Serialize for Input<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for m in self.messages {
            match m.role {
                Role::Tool => seq.serialize_element(&FunctionCallOutput(m))?,
                Role::Assistant => {
                    for item in &m.reasoning_items {
                        if self.store || item.encrypted_content.is_some() {
                            seq.serialize_element(&ReasoningInput(item))?;
                        }
                    }
                    if !m.content.is_empty() {
                        seq.serialize_element(&InputMessage(m))?;
                    }
                    for call in &m.tool_calls {
                        seq.serialize_element(&FunctionCall(call))?;
                    }
                }
                _ => seq.serialize_element(&InputMessage(m))?,
            }
        }
        seq.end()
    }
}

/// `{"type": "message", "role", "content"}` with text or input parts.
struct InputMessage<'a>(&'a Message);

impl Serialize for InputMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("type", "message")?;
        map.serialize_entry("role", m.role.as_str())?;
        match &m.content {
            Content::Text(text) => map.serialize_entry("content", text)?,
            // An assistant's parts are its earlier output: its text is enough.
            Content::Parts(_) if m.role == Role::Assistant => map.serialize_entry("content", &m.text())?,
            Content::Parts(parts) => map.serialize_entry("content", &Parts(parts))?,
        }
        map.end()
    }
}

struct Parts<'a>(&'a [ContentPart]);

impl Serialize for Parts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for part in self.0 {
            match part {
                ContentPart::Text(text) => {
                    seq.serialize_element(&serde_json::json!({"type": "input_text", "text": text}))?
                }
                ContentPart::Image { url, detail } => {
                    let detail = match detail.unwrap_or(ImageDetail::Auto) {
                        ImageDetail::Auto => "auto",
                        ImageDetail::Low => "low",
                        ImageDetail::High => "high",
                    };
                    seq.serialize_element(
                        &serde_json::json!({"type": "input_image", "image_url": url, "detail": detail}),
                    )?
                }
                // A chat text part kept whole for members of its own: the Responses API
                // takes its text (those members are chat-wire only, like `Message::extra`).
                ContentPart::Other(_) if part.as_text().is_some() => seq.serialize_element(
                    &serde_json::json!({"type": "input_text", "text": part.as_text().unwrap_or_default()}),
                )?,
                ContentPart::Other(value) => seq.serialize_element(value)?,
            }
        }
        seq.end()
    }
}

/// `{"type": "reasoning", "id", "summary": [{"type": "summary_text", "text"}], "encrypted_content"}`.
struct ReasoningInput<'a>(&'a ReasoningItem);

impl Serialize for ReasoningInput<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Summary<'a>(&'a [String]);
        impl Serialize for Summary<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for text in self.0 {
                    seq.serialize_element(&serde_json::json!({"type": "summary_text", "text": text}))?;
                }
                seq.end()
            }
        }
        let item = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", "reasoning")?;
        map.serialize_entry("id", &item.id)?;
        map.serialize_entry("summary", &Summary(&item.summary))?;
        if let Some(encrypted) = &item.encrypted_content {
            map.serialize_entry("encrypted_content", encrypted)?;
        }
        map.end()
    }
}

/// `{"type": "function_call", "call_id", "name", "arguments"}`.
struct FunctionCall<'a>(&'a crate::types::ToolCall);

impl Serialize for FunctionCall<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("type", "function_call")?;
        map.serialize_entry("call_id", &self.0.id)?;
        map.serialize_entry("name", &self.0.name)?;
        map.serialize_entry("arguments", &self.0.arguments)?;
        map.end()
    }
}

/// `{"type": "function_call_output", "call_id", "output"}`.
struct FunctionCallOutput<'a>(&'a Message);

impl Serialize for FunctionCallOutput<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("type", "function_call_output")?;
        map.serialize_entry("call_id", self.0.tool_call_id.as_deref().unwrap_or(""))?;
        map.serialize_entry("output", &self.0.text())?;
        map.end()
    }
}

/// Function tools in the Responses shape: flat, `strict` and `parameters` always present.
struct Tools<'a>(&'a [ToolDefinition]);

impl Serialize for Tools<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for tool in self.0 {
            #[derive(Serialize)]
            struct Tool<'a> {
                r#type: &'static str,
                name: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                description: &'a Option<String>,
                parameters: &'a serde_json::Value,
                strict: Option<bool>,
            }
            seq.serialize_element(&Tool {
                r#type: "function",
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
                strict: tool.strict,
            })?;
        }
        seq.end()
    }
}

struct Choice<'a>(&'a ToolChoice);

impl Serialize for Choice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Function(name) => serde_json::json!({"type": "function", "name": name}).serialize(serializer),
            other => other.serialize(serializer),
        }
    }
}

/// `text: {"format": …}`.
struct TextParam<'a>(&'a ResponseFormat);

impl Serialize for TextParam<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let format = match self.0 {
            ResponseFormat::Text => serde_json::json!({"type": "text"}),
            ResponseFormat::JsonObject => serde_json::json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema, strict } => {
                let mut f = serde_json::json!({"type": "json_schema", "name": name, "schema": schema});
                if let Some(strict) = strict {
                    f["strict"] = serde_json::Value::Bool(*strict);
                }
                f
            }
        };
        serde_json::json!({ "format": format }).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::openai_compat::request::write_body;
    use crate::options::{ReasoningEffort, ReasoningSummary};
    use crate::types::ToolCall;
    use serde_json::{json, Value};

    fn body(messages: &[Message], options: &RequestOptions, stream: bool) -> Value {
        let config = WireConfig::default();
        let bytes = write_body(&ResponsesRequest { model: "m", messages, options, stream, config: &config }).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn minimal_request_is_stateless() {
        let v = body(&[Message::user("hi")], &RequestOptions::new(), false);
        assert_eq!(v, json!({"model":"m","input":[{"type":"message","role":"user","content":"hi"}],"store":false}));
        let v = body(&[Message::user("hi")], &RequestOptions::new(), true);
        assert_eq!(v["stream"], json!(true));
    }

    #[test]
    fn leading_system_messages_become_instructions() {
        let v = body(
            &[Message::system("a"), Message::new(Role::Developer, "b"), Message::user("u"), Message::system("late")],
            &RequestOptions::new(),
            false,
        );
        assert_eq!(v["instructions"], json!("a\n\nb"));
        assert_eq!(v["input"][0]["role"], json!("user"));
        assert_eq!(v["input"][1], json!({"type":"message","role":"system","content":"late"}));
    }

    #[test]
    fn every_option_in_responses_shape() {
        let options = RequestOptions::new()
            .temperature(0.5)
            .top_p(0.9)
            .max_tokens(10)
            .tools(vec![ToolDefinition::function("f", "does f", json!({"type":"object"}))])
            .tool_choice(ToolChoice::Function("f".into()))
            .parallel_tool_calls(false)
            .response_format(ResponseFormat::json_schema("out", json!({"type":"object"})))
            .reasoning_effort(ReasoningEffort::Low)
            .reasoning_summary(ReasoningSummary::Auto)
            .encrypted_reasoning(true)
            .previous_response_id("resp_1")
            .store(true);
        let v = body(&[Message::user("u")], &options, false);
        assert_eq!(
            v,
            json!({
                "model":"m",
                "input":[{"type":"message","role":"user","content":"u"}],
                "store":true,"previous_response_id":"resp_1",
                "temperature":0.5,"top_p":0.9,"max_output_tokens":10,
                "tools":[{"type":"function","name":"f","description":"does f","parameters":{"type":"object"},"strict":null}],
                "tool_choice":{"type":"function","name":"f"},
                "parallel_tool_calls":false,
                "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"}}},
                "reasoning":{"effort":"low","summary":"auto"},
                "include":["reasoning.encrypted_content"]
            })
        );
        let v = body(&[], &RequestOptions::new().tool_choice(ToolChoice::Required), false);
        assert_eq!(v["tool_choice"], json!("required"));
        let v = body(&[], &RequestOptions::new().response_format(ResponseFormat::JsonObject), false);
        assert_eq!(v["text"], json!({"format":{"type":"json_object"}}));
    }

    /// `Message::extra` is chat-wire only; a chat text part kept whole for its own members
    /// still reaches the Responses API as `input_text`.
    #[test]
    fn message_extra_is_not_sent_as_input() {
        let user: Message =
            serde_json::from_value(json!({"role":"user","cache_control":{"type":"ephemeral"},"content":[
            {"type":"text","text":"look","cache_control":{"type":"ephemeral"}},
            {"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}))
            .unwrap();
        assert!(!user.extra.is_empty());
        let v =
            body(&[user, Message::assistant("a").with_extra("refusal", json!(null))], &RequestOptions::new(), false);
        assert_eq!(
            v["input"],
            json!([
                {"type":"message","role":"user","content":[
                    {"type":"input_text","text":"look"},
                    {"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]},
                {"type":"message","role":"assistant","content":"a"}
            ])
        );
    }

    #[test]
    fn tool_loop_history_as_items() {
        let reasoning = ReasoningItem::new("rs_1").with_summary("think").with_encrypted_content("enc");
        let history = vec![
            Message::user(vec![ContentPart::text("weather?"), ContentPart::image_url("data:image/png;base64,AAAA")]),
            Message::assistant_with_tool_calls(
                "",
                vec![ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}")],
            )
            .with_reasoning_items(vec![reasoning, ReasoningItem::new("rs_plain")]),
            Message::tool("call_1", "sunny"),
        ];
        let v = body(&history, &RequestOptions::new(), false);
        assert_eq!(
            v["input"],
            json!([
                {"type":"message","role":"user","content":[
                    {"type":"input_text","text":"weather?"},
                    {"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"auto"}]},
                {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"think"}],"encrypted_content":"enc"},
                {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
                {"type":"function_call_output","call_id":"call_1","output":"sunny"}
            ])
        );
        // With store on, an item without encrypted content is sent by id too.
        let v = body(&history, &RequestOptions::new().store(true), false);
        assert_eq!(v["input"][2], json!({"type":"reasoning","id":"rs_plain","summary":[]}));
    }

    #[test]
    fn chat_only_options_are_refused_or_dropped() {
        let config = WireConfig::default();
        for options in [
            RequestOptions::new().stop(["x"]),
            RequestOptions::new().seed(1),
            RequestOptions::new().frequency_penalty(0.1),
            RequestOptions::new().presence_penalty(0.1),
        ] {
            let request =
                ResponsesRequest { model: "m", messages: &[], options: &options, stream: false, config: &config };
            let err = write_body(&request).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            let dropping = WireConfig { drop_unsupported: true, ..WireConfig::default() };
            let request = ResponsesRequest { config: &dropping, ..request };
            let v: Value = serde_json::from_slice(&write_body(&request).unwrap()).unwrap();
            assert_eq!(v, json!({"model":"m","input":[],"store":false}));
        }
    }

    #[test]
    fn extra_overrides_typed_fields() {
        let v = body(&[], &RequestOptions::new().extra("store", json!(true)).extra("truncation", json!("auto")), false);
        assert_eq!(v, json!({"model":"m","input":[],"store":true,"truncation":"auto"}));
    }

    #[test]
    fn adapted_schemas_go_in_text_format() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let mut options = RequestOptions::new().response_format(ResponseFormat::JsonSchema {
            name: "out".into(),
            schema: schema.clone(),
            strict: Some(true),
        });
        options.adapt_schema = true;
        let config = WireConfig { structured: crate::preset::StructuredOutput::OpenAiStrict, ..WireConfig::default() };
        let bytes = write_body(&ResponsesRequest {
            model: "m",
            messages: &[],
            options: &options,
            stream: false,
            config: &config,
        })
        .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["text"],
            json!({"format": {"type": "json_schema", "name": "out", "strict": true, "schema": {
                "type": "object", "properties": {"a": {"type": ["string", "null"]}}, "required": ["a"], "additionalProperties": false
            }}})
        );
        // Native: as given, no strict.
        let v: Value = serde_json::from_slice(
            &write_body(&ResponsesRequest {
                model: "m",
                messages: &[],
                options: &options,
                stream: false,
                config: &WireConfig::default(),
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(v["text"], json!({"format": {"type": "json_schema", "name": "out", "schema": schema}}));
    }
}
