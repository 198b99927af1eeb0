//! The conversation and answer types: [`Message`], [`ToolDefinition`], [`ToolCall`],
//! [`Usage`], [`FinishReason`] and [`ModelResponse`].
//!
//! Messages, tools, tool choices and response formats serialise in the OpenAI wire shape, so a
//! conversation can be stored as JSON and read back. Reading is lenient (null or missing
//! content, arguments as a JSON object, unknown content parts); writing is strict.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// OpenAI's newer name for system instructions on reasoning models.
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

impl Role {
    /// The role as the wire spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// How detailed an image should be seen (OpenAI's `detail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    /// Let the server choose.
    Auto,
    /// Cheaper, low resolution.
    Low,
    /// Full resolution.
    High,
}

/// One part of a multi-part message.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ContentPart {
    /// Text.
    Text(String),
    /// An image by URL: `https://…` or a `data:image/png;base64,…` URL.
    Image {
        /// The URL or data URL.
        url: String,
        /// How closely to look; omitted on the wire when `None`.
        detail: Option<ImageDetail>,
    },
    /// A part of a type this crate does not model (audio, files, …), kept and sent verbatim.
    Other(Value),
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> ContentPart {
        ContentPart::Text(text.into())
    }

    /// An image part from a URL or a data URL.
    pub fn image_url(url: impl Into<String>) -> ContentPart {
        ContentPart::Image { url: url.into(), detail: None }
    }

    /// An image part from raw bytes, sent as a base64 data URL with the given MIME type.
    pub fn image_bytes(mime: &str, bytes: &[u8]) -> ContentPart {
        ContentPart::Image { url: format!("data:{mime};base64,{}", base64_encode(bytes)), detail: None }
    }
}

impl Serialize for ContentPart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentPart::Text(text) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "text")?;
                map.serialize_entry("text", text)?;
                map.end()
            }
            ContentPart::Image { url, detail } => {
                #[derive(Serialize)]
                struct ImageUrl<'a> {
                    url: &'a str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    detail: &'a Option<ImageDetail>,
                }
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "image_url")?;
                map.serialize_entry("image_url", &ImageUrl { url, detail })?;
                map.end()
            }
            ContentPart::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let kind = value.get("type").and_then(Value::as_str);
        Ok(match kind {
            Some("text") => match value.get("text").and_then(Value::as_str) {
                Some(text) => ContentPart::Text(text.to_owned()),
                None => ContentPart::Other(value),
            },
            Some("image_url") => {
                let image = value.get("image_url");
                // Both {"image_url": {"url": …}} and the older {"image_url": "…"}.
                let url = image.and_then(|i| i.get("url").and_then(Value::as_str).or_else(|| i.as_str()));
                match url {
                    Some(url) => ContentPart::Image {
                        url: url.to_owned(),
                        detail: image
                            .and_then(|i| i.get("detail"))
                            .and_then(|d| serde_json::from_value(d.clone()).ok()),
                    },
                    None => ContentPart::Other(value),
                }
            }
            _ => ContentPart::Other(value),
        })
    }
}

/// A message's content: plain text, or a list of parts (text and images).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text. An empty string stands for "no content".
    Text(String),
    /// Several parts, e.g. a question and an image.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text of the content: the string itself, or the text parts joined without separator.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Content::Text(text) => std::borrow::Cow::Borrowed(text),
            Content::Parts(parts) => {
                let mut out = String::new();
                for part in parts {
                    if let ContentPart::Text(text) = part {
                        out.push_str(text);
                    }
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }

    /// True for empty text or no parts.
    pub fn is_empty(&self) -> bool {
        match self {
            Content::Text(text) => text.is_empty(),
            Content::Parts(parts) => parts.is_empty(),
        }
    }
}

impl Default for Content {
    fn default() -> Self {
        Content::Text(String::new())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

impl From<Vec<ContentPart>> for Content {
    fn from(parts: Vec<ContentPart>) -> Self {
        Content::Parts(parts)
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<Value>::deserialize(deserializer)? {
            None | Some(Value::Null) => Content::default(),
            Some(Value::String(text)) => Content::Text(text),
            Some(Value::Array(items)) => Content::Parts(
                items
                    .into_iter()
                    .map(|v| ContentPart::deserialize(v).map_err(de::Error::custom))
                    .collect::<Result<_, _>>()?,
            ),
            Some(other) => {
                return Err(de::Error::custom(format!("message content must be a string or an array, got {other}")))
            }
        })
    }
}

/// A tool call the model made: which function, with which arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, to be echoed in the [`Message::tool`] answer. Servers that send none get
    /// a generated `call_<index>`.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text (`"{}"` when the server sent none), even from servers that
    /// send a JSON object.
    pub arguments: String,
}

impl ToolCall {
    /// A tool call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    /// The arguments parsed as JSON.
    pub fn parse_arguments<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.arguments)
    }
}

/// The wire shape of a tool call: `{"id", "type": "function", "function": {"name", "arguments"}}`.
pub(crate) struct WireToolCall<'a>(pub(crate) &'a ToolCall, pub(crate) &'a str);

impl Serialize for WireToolCall<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            arguments: &'a str,
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", self.1)?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry("function", &Function { name: &self.0.name, arguments: &self.0.arguments })?;
        map.end()
    }
}

/// Reads a tool call in the wire shape, with arguments as a string or an object.
#[derive(Deserialize)]
struct WireToolCallIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionIn>,
}

#[derive(Deserialize)]
struct WireFunctionIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

pub(crate) fn arguments_to_string(arguments: Option<&Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One message of a conversation.
///
/// Build them with [`Message::system`], [`Message::user`], [`Message::assistant`],
/// [`Message::tool`], or take a model's answer with [`ModelResponse::to_message`] so a tool
/// loop can send the history back. Serialises in the OpenAI wire shape.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says. Empty text for an assistant message that only calls tools.
    pub content: Content,
    /// An optional participant name (`name` on the wire).
    pub name: Option<String>,
    /// The tool calls of an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// The reasoning of an assistant message. Not sent back unless the backend's preset says
    /// the server needs it (DeepSeek's thinking mode).
    pub reasoning: Option<String>,
}

impl Message {
    /// A message with this role and content and nothing else.
    pub fn new(role: Role, content: impl Into<Content>) -> Message {
        Message {
            role,
            content: content.into(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning: None,
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Message {
        Message::new(Role::System, Content::Text(text.into()))
    }

    /// A user message with text or parts (`Vec<ContentPart>`).
    pub fn user(content: impl Into<Content>) -> Message {
        Message::new(Role::User, content)
    }

    /// An assistant message with text.
    pub fn assistant(text: impl Into<String>) -> Message {
        Message::new(Role::Assistant, Content::Text(text.into()))
    }

    /// An assistant message that called tools.
    pub fn assistant_with_tool_calls(text: impl Into<String>, tool_calls: Vec<ToolCall>) -> Message {
        Message { tool_calls, ..Message::assistant(text) }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Message {
        Message { tool_call_id: Some(tool_call_id.into()), ..Message::new(Role::Tool, Content::Text(content.into())) }
    }

    /// Sets the participant name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Message {
        self.name = Some(name.into());
        self
    }

    /// The message's text (text parts joined).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        self.content.text()
    }
}

/// How a message is written for one server: whether reasoning is echoed (and in which field),
/// and how tool-call ids are rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MessageWireOptions {
    /// Field to send the reasoning of an assistant message that called tools in; `None`
    /// sends none.
    pub(crate) reasoning_field: Option<&'static str>,
    /// Rewrite tool-call ids to this server's rule.
    pub(crate) tool_id_rule: ToolIdRule,
    /// Send `name` on messages (Groq rejects it).
    pub(crate) names: bool,
}

impl Default for MessageWireOptions {
    fn default() -> Self {
        MessageWireOptions { reasoning_field: None, tool_id_rule: ToolIdRule::Any, names: true }
    }
}

/// A server's rule for tool-call ids in the history it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ToolIdRule {
    /// Any id is accepted.
    #[default]
    Any,
    /// Exactly nine ASCII letters and digits (Mistral).
    NineAlnum,
}

impl ToolIdRule {
    pub(crate) fn apply<'a>(self, id: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            ToolIdRule::Any => std::borrow::Cow::Borrowed(id),
            ToolIdRule::NineAlnum => {
                if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return std::borrow::Cow::Borrowed(id);
                }
                // A stable mapping: the same id always becomes the same nine characters, so the
                // assistant's call and the tool's answer still match.
                const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for b in id.bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                let mut out = String::with_capacity(9);
                for _ in 0..9 {
                    out.push(ALPHABET[(hash % 62) as usize] as char);
                    hash /= 62;
                    if hash == 0 {
                        hash = 0x9e37_79b9_7f4a_7c15;
                    }
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }
}

pub(crate) struct WireMessage<'a> {
    pub(crate) message: &'a Message,
    pub(crate) options: MessageWireOptions,
}

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.message;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", m.role.as_str())?;
        // Assistant tool-call turns get "" rather than null: llama-cpp-python rejects null and a
        // missing key, and "" is valid for OpenAI's schema.
        map.serialize_entry("content", &m.content)?;
        if let (Some(name), true) = (&m.name, self.options.names) {
            map.serialize_entry("name", name)?;
        }
        if !m.tool_calls.is_empty() {
            struct Calls<'a>(&'a [ToolCall], ToolIdRule);
            impl Serialize for Calls<'_> {
                fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                    for call in self.0 {
                        let id = self.1.apply(&call.id);
                        seq.serialize_element(&WireToolCall(call, &id))?;
                    }
                    seq.end()
                }
            }
            map.serialize_entry("tool_calls", &Calls(&m.tool_calls, self.options.tool_id_rule))?;
        }
        if let Some(id) = &m.tool_call_id {
            map.serialize_entry("tool_call_id", &self.options.tool_id_rule.apply(id))?;
        }
        if let (Some(field), Some(reasoning)) = (self.options.reasoning_field, &m.reasoning) {
            if m.role == Role::Assistant && !m.tool_calls.is_empty() {
                map.serialize_entry(field, reasoning)?;
            }
        }
        map.end()
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireMessage { message: self, options: MessageWireOptions::default() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            role: Role,
            #[serde(default)]
            content: Content,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            tool_calls: Option<Vec<WireToolCallIn>>,
            #[serde(default)]
            tool_call_id: Option<String>,
            #[serde(default)]
            reasoning_content: Option<String>,
            #[serde(default)]
            reasoning: Option<String>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let tool_calls = raw
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let function = c.function.unwrap_or(WireFunctionIn { name: None, arguments: None });
                let mut call = ToolCall {
                    id: c.id.unwrap_or_default(),
                    name: function.name.unwrap_or_default(),
                    arguments: arguments_to_string(function.arguments.as_ref()),
                };
                normalise_tool_call(&mut call, i);
                call
            })
            .collect();
        Ok(Message {
            role: raw.role,
            content: raw.content,
            name: raw.name,
            tool_calls,
            tool_call_id: raw.tool_call_id,
            reasoning: raw.reasoning_content.or(raw.reasoning),
        })
    }
}

/// Fills what a server left out of a finished tool call: an id, and `{}` for empty arguments.
pub(crate) fn normalise_tool_call(call: &mut ToolCall, index: usize) {
    if call.id.is_empty() {
        call.id = format!("call_{index}");
    }
    if call.arguments.trim().is_empty() {
        call.arguments = "{}".to_owned();
    }
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolDefinition {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// Its parameters as a JSON Schema object.
    pub parameters: Value,
    /// OpenAI's strict schema adherence; omitted when `None`.
    pub strict: Option<bool>,
}

impl ToolDefinition {
    /// A function tool with a JSON Schema for its parameters.
    pub fn function(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> ToolDefinition {
        let description = description.into();
        ToolDefinition {
            name: name.into(),
            description: (!description.is_empty()).then_some(description),
            parameters,
            strict: None,
        }
    }
}

impl Serialize for ToolDefinition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: &'a Option<String>,
            parameters: &'a Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            strict: &'a Option<bool>,
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry(
            "function",
            &Function {
                name: &self.name,
                description: &self.description,
                parameters: &self.parameters,
                strict: &self.strict,
            },
        )?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ToolDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Function {
            name: String,
            #[serde(default)]
            description: Option<String>,
            #[serde(default)]
            parameters: Option<Value>,
            #[serde(default)]
            strict: Option<bool>,
        }
        let value = Value::deserialize(deserializer)?;
        if let Some(kind) = value.get("type").and_then(Value::as_str) {
            if kind != "function" {
                return Err(de::Error::custom(format!(
                    "unsupported tool type {kind:?}; only \"function\" tools exist"
                )));
            }
        }
        // The wire shape {"type": "function", "function": {…}}, or the bare function object.
        let function = match value.get("function") {
            Some(f) => f.clone(),
            None => value,
        };
        let f =
            Function::deserialize(function).map_err(|e| de::Error::custom(format!("invalid tool definition: {e}")))?;
        Ok(ToolDefinition {
            name: f.name,
            description: f.description,
            parameters: f.parameters.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            strict: f.strict,
        })
    }
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This function must be called.
    Function(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Function(name) => {
                serde_json::json!({"type": "function", "function": {"name": name}}).serialize(serializer)
            }
        }
    }
}

/// The shape the answer must have.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any valid JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// A name for the schema (OpenAI requires one).
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// OpenAI's strict mode; omitted when `None`.
        strict: Option<bool>,
    },
}

impl ResponseFormat {
    /// A JSON Schema format.
    pub fn json_schema(name: impl Into<String>, schema: Value) -> ResponseFormat {
        ResponseFormat::JsonSchema { name: name.into(), schema, strict: None }
    }
}

impl Serialize for ResponseFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResponseFormat::Text => serde_json::json!({"type": "text"}).serialize(serializer),
            ResponseFormat::JsonObject => serde_json::json!({"type": "json_object"}).serialize(serializer),
            ResponseFormat::JsonSchema { name, schema, strict } => {
                let mut inner = serde_json::Map::new();
                inner.insert("name".into(), Value::String(name.clone()));
                inner.insert("schema".into(), schema.clone());
                if let Some(strict) = strict {
                    inner.insert("strict".into(), Value::Bool(*strict));
                }
                serde_json::json!({"type": "json_schema", "json_schema": inner}).serialize(serializer)
            }
        }
    }
}

/// Token counts of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (`prompt_tokens` on the wire).
    pub input_tokens: u64,
    /// Generated tokens (`completion_tokens`).
    pub output_tokens: u64,
    /// Both (`total_tokens`, or the sum when the server sent none).
    pub total_tokens: u64,
    /// Of the output, tokens spent reasoning, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Of the input, tokens served from the prompt cache, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
}

impl Usage {
    /// Counts of `input` prompt and `output` generated tokens; the total is their sum.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            reasoning_tokens: None,
            cached_input_tokens: None,
        }
    }
}

/// Why the model stopped, normalised across servers (provider-quirks 3.12).
///
/// `eos` (Together) and `stop_sequence` (TGI) are [`Stop`](FinishReason::Stop);
/// `model_length` (Mistral) is [`Length`](FinishReason::Length); `abort` (vLLM, SGLang),
/// `error` (OpenRouter, Mistral) and `insufficient_system_resource` (DeepSeek) are
/// [`Error`](FinishReason::Error); `function_call` is [`ToolCalls`](FinishReason::ToolCalls).
/// An answer with tool calls whose server said `stop` (TGI, vLLM with a named tool choice,
/// older Ollama) reports `ToolCalls`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The content filter stopped the answer.
    ContentFilter,
    /// The server aborted the generation.
    Error,
    /// A value this crate does not know, verbatim.
    Other(String),
}

impl FinishReason {
    /// Normalises a server's value; `None` for an empty string.
    pub fn parse(value: &str) -> Option<FinishReason> {
        Some(match value {
            "" => return None,
            "stop" | "eos" | "stop_sequence" | "end_turn" | "eos_token" => FinishReason::Stop,
            "length" | "model_length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            "error" | "abort" | "insufficient_system_resource" => FinishReason::Error,
            other => FinishReason::Other(other.to_owned()),
        })
    }

    /// The normalised value as text (`"stop"`, `"length"`, `"tool_calls"`, …).
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Error => "error",
            FinishReason::Other(other) => other,
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(FinishReason::parse(&s).unwrap_or(FinishReason::Other(s)))
    }
}

/// Applies the rule "tool calls present and the server said stop (or nothing) means
/// `ToolCalls`".
pub(crate) fn infer_finish_reason(finish: Option<FinishReason>, has_tool_calls: bool) -> Option<FinishReason> {
    match finish {
        Some(FinishReason::Stop) | None if has_tool_calls => Some(FinishReason::ToolCalls),
        other => other,
    }
}

/// A finished answer.
///
/// Serialises to the JSON the CLI prints with `--json`:
/// `{"content", "reasoning", "tool_calls", "usage", "model", "finish_reason"}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelResponse {
    /// The text; `""` when there is none (tool calls only).
    pub content: String,
    /// The model's reasoning, from `reasoning_content`, `reasoning`, or a leading
    /// `<think>…</think>` in the content.
    pub reasoning: Option<String>,
    /// The tool calls, complete.
    pub tool_calls: Vec<ToolCall>,
    /// Token counts, when the server sent them.
    pub usage: Option<Usage>,
    /// The model that answered, as the server names it.
    pub model: Option<String>,
    /// Why it stopped.
    pub finish_reason: Option<FinishReason>,
    /// The server's response id (`chatcmpl-…`), when it sent a non-empty one.
    #[serde(skip)]
    pub id: Option<String>,
    #[serde(skip)]
    pub(crate) raw: Option<Bytes>,
}

impl ModelResponse {
    /// The answer as an assistant message, to append to the history of a tool loop.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: Content::Text(self.content.clone()),
            name: None,
            tool_calls: self.tool_calls.clone(),
            tool_call_id: None,
            reasoning: self.reasoning.clone(),
        }
    }

    /// An answer with this text and nothing else; add the rest with the `with_*` methods.
    ///
    /// ```
    /// use mamba_backends::{FinishReason, ModelResponse, Usage};
    /// let answer = ModelResponse::new("Paris.")
    ///     .with_finish_reason(FinishReason::Stop)
    ///     .with_usage(Usage::new(12, 3))
    ///     .with_model("smollm2");
    /// assert_eq!(answer.usage.map(|u| u.total_tokens), Some(15));
    /// ```
    pub fn new(content: impl Into<String>) -> ModelResponse {
        ModelResponse { content: content.into(), ..ModelResponse::default() }
    }

    /// The same answer with reasoning text.
    #[must_use]
    pub fn with_reasoning(mut self, reasoning: impl Into<String>) -> ModelResponse {
        self.reasoning = Some(reasoning.into());
        self
    }

    /// The same answer with tool calls.
    #[must_use]
    pub fn with_tool_calls(mut self, tool_calls: Vec<ToolCall>) -> ModelResponse {
        self.tool_calls = tool_calls;
        self
    }

    /// The same answer with token counts.
    #[must_use]
    pub fn with_usage(mut self, usage: Usage) -> ModelResponse {
        self.usage = Some(usage);
        self
    }

    /// The same answer naming the model that gave it.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> ModelResponse {
        self.model = Some(model.into());
        self
    }

    /// The same answer with why it stopped.
    #[must_use]
    pub fn with_finish_reason(mut self, finish_reason: FinishReason) -> ModelResponse {
        self.finish_reason = Some(finish_reason);
        self
    }

    /// The same answer with a response id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> ModelResponse {
        self.id = Some(id.into());
        self
    }

    pub(crate) fn with_raw(mut self, raw: Bytes) -> ModelResponse {
        self.raw = Some(raw);
        self
    }

    /// True when the model asked for tool calls.
    pub fn has_tool_calls(&self) -> bool {
        !self.tool_calls.is_empty()
    }

    /// The response body exactly as the server sent it (non-streaming answers only), for
    /// provider fields this crate does not model.
    pub fn raw_body(&self) -> Option<&[u8]> {
        self.raw.as_deref()
    }

    /// The response body parsed as JSON (non-streaming answers only).
    pub fn raw_json(&self) -> Option<Value> {
        self.raw.as_deref().and_then(|raw| serde_json::from_slice(raw.trim_ascii_start()).ok())
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_serialise_in_wire_shape() {
        assert_eq!(
            serde_json::to_value(Message::system("be brief")).unwrap(),
            json!({"role":"system","content":"be brief"})
        );
        let user = Message::user(vec![ContentPart::text("what is this?"), ContentPart::image_url("https://x/y.png")]);
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]})
        );
        let call = ToolCall::new("call_1", "get_weather", r#"{"city":"Paris"}"#);
        let assistant = Message::assistant_with_tool_calls("", vec![call]);
        assert_eq!(
            serde_json::to_value(&assistant).unwrap(),
            json!({"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]})
        );
        assert_eq!(
            serde_json::to_value(Message::tool("call_1", "18C")).unwrap(),
            json!({"role":"tool","content":"18C","tool_call_id":"call_1"})
        );
    }

    #[test]
    fn reasoning_is_only_sent_when_asked() {
        let mut m = Message::assistant_with_tool_calls("hi", vec![ToolCall::new("c", "f", "{}")]);
        m.reasoning = Some("thought".into());
        let plain = serde_json::to_value(&m).unwrap();
        assert!(plain.get("reasoning_content").is_none() && plain.get("reasoning").is_none());
        let options = MessageWireOptions { reasoning_field: Some("reasoning_content"), ..Default::default() };
        let wire = WireMessage { message: &m, options };
        assert_eq!(serde_json::to_value(&wire).unwrap()["reasoning_content"], json!("thought"));
        // Not on turns without tool calls.
        let mut text_only = Message::assistant("hi");
        text_only.reasoning = Some("thought".into());
        let wire = WireMessage { message: &text_only, options };
        assert!(serde_json::to_value(&wire).unwrap().get("reasoning_content").is_none());
    }

    #[test]
    fn nine_char_ids_are_stable_and_valid() {
        let a = ToolIdRule::NineAlnum.apply("call_7kE4IjtnwXcGbX6hDM7xFu8T").into_owned();
        let b = ToolIdRule::NineAlnum.apply("call_7kE4IjtnwXcGbX6hDM7xFu8T").into_owned();
        assert_eq!(a, b);
        assert_eq!(a.len(), 9);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, ToolIdRule::NineAlnum.apply("call_other").into_owned());
        assert_eq!(ToolIdRule::NineAlnum.apply("abcDEF123"), "abcDEF123");
        assert_eq!(ToolIdRule::Any.apply("x"), "x");
    }

    #[test]
    fn messages_read_leniently() {
        let m: Message = serde_json::from_value(json!({"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":{"a":1}}}]})).unwrap();
        assert_eq!(m.content, Content::Text(String::new()));
        assert_eq!(m.tool_calls, vec![ToolCall::new("1", "f", r#"{"a":1}"#)]);
        let m: Message = serde_json::from_value(
            json!({"role":"assistant","tool_calls":[{"function":{"name":"f"}}],"reasoning_content":"r"}),
        )
        .unwrap();
        assert_eq!(m.tool_calls, vec![ToolCall::new("call_0", "f", "{}")]);
        assert_eq!(m.reasoning.as_deref(), Some("r"));
        let m: Message = serde_json::from_value(json!({"role":"user","content":[{"type":"input_audio","input_audio":{}}, {"type":"image_url","image_url":"data:x"}]})).unwrap();
        match &m.content {
            Content::Parts(parts) => {
                assert!(matches!(parts[0], ContentPart::Other(_)));
                assert_eq!(parts[1], ContentPart::image_url("data:x"));
            }
            other => panic!("{other:?}"),
        }
        // Round trip.
        let again: Message = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn tools_and_choices_wire_shape() {
        let tool = ToolDefinition::function(
            "get_weather",
            "Weather for a city",
            json!({"type":"object","properties":{"city":{"type":"string"}}}),
        );
        let v = serde_json::to_value(&tool).unwrap();
        assert_eq!(
            v,
            json!({"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}})
        );
        let back: ToolDefinition = serde_json::from_value(v).unwrap();
        assert_eq!(back, tool);
        let bare: ToolDefinition = serde_json::from_value(json!({"name":"f"})).unwrap();
        assert_eq!(bare.name, "f");
        assert!(serde_json::from_value::<ToolDefinition>(json!({"type":"code_interpreter"})).is_err());
        assert_eq!(serde_json::to_value(ToolChoice::Required).unwrap(), json!("required"));
        assert_eq!(
            serde_json::to_value(ToolChoice::Function("f".into())).unwrap(),
            json!({"type":"function","function":{"name":"f"}})
        );
        assert_eq!(
            serde_json::to_value(ResponseFormat::json_schema("answer", json!({"type":"object"}))).unwrap(),
            json!({"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"}}})
        );
    }

    #[test]
    fn finish_reasons_normalise() {
        assert_eq!(FinishReason::parse("eos"), Some(FinishReason::Stop));
        assert_eq!(FinishReason::parse("stop_sequence"), Some(FinishReason::Stop));
        assert_eq!(FinishReason::parse("model_length"), Some(FinishReason::Length));
        assert_eq!(FinishReason::parse("abort"), Some(FinishReason::Error));
        assert_eq!(FinishReason::parse("insufficient_system_resource"), Some(FinishReason::Error));
        assert_eq!(FinishReason::parse("function_call"), Some(FinishReason::ToolCalls));
        assert_eq!(FinishReason::parse("weird"), Some(FinishReason::Other("weird".into())));
        assert_eq!(FinishReason::parse(""), None);
        assert_eq!(infer_finish_reason(Some(FinishReason::Stop), true), Some(FinishReason::ToolCalls));
        assert_eq!(infer_finish_reason(None, true), Some(FinishReason::ToolCalls));
        assert_eq!(infer_finish_reason(Some(FinishReason::Length), true), Some(FinishReason::Length));
        assert_eq!(infer_finish_reason(Some(FinishReason::Stop), false), Some(FinishReason::Stop));
    }

    #[test]
    fn response_to_message_keeps_calls() {
        let r = ModelResponse {
            content: "x".into(),
            tool_calls: vec![ToolCall::new("a", "f", "{}")],
            ..Default::default()
        };
        let m = r.to_message();
        assert_eq!(m.role, Role::Assistant);
        assert_eq!(m.tool_calls.len(), 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            json!({"content":"x","reasoning":null,"tool_calls":[{"id":"a","name":"f","arguments":"{}"}],"usage":null,"model":null,"finish_reason":null})
        );
    }

    #[test]
    fn base64_and_image_bytes() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(ContentPart::image_bytes("image/png", b"foo"), ContentPart::image_url("data:image/png;base64,Zm9v"));
    }
}
