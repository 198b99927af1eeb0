//! Request translation: messages and options to the JSON body one server accepts. Pure.
//!
//! Every server rule is applied in the one pass that writes the body: the writer sees each key
//! as it goes out (typed options, the backend's extra fields, the request's `extra`), renames
//! it, drops it, or refuses the request, from the preset's data. Nothing re-derives which
//! fields a request sets.

use std::cell::Cell;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire::{LenientList, WireToolCall};
use crate::error::{Error, ErrorKind};
use crate::options::{RequestOptions, ResponseFormat};
use crate::preset::{FieldSupport, StructuredOutput};
use crate::types::{normalise_tool_call, Content, Message, Role, ToolCall};

/// How requests are written for one target (derived from the preset, the profile and the
/// builder's settings).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WireConfig {
    /// The target's name, for messages (`mistral`).
    pub(crate) target: &'static str,
    /// Request fields (wire names, after renames) the target does not take.
    pub(crate) unsupported: &'static [(&'static str, FieldSupport)],
    /// Drop rejected fields with a warning instead of failing.
    pub(crate) drop_unsupported: bool,
    /// How structured output is written.
    pub(crate) structured: StructuredOutput,
    /// `max_tokens` or `max_completion_tokens`.
    pub(crate) max_tokens_field: &'static str,
    /// Ask for usage in streams with `stream_options.include_usage`.
    pub(crate) include_usage: bool,
    /// Field renames, e.g. `seed` → `random_seed` (Mistral).
    pub(crate) renames: &'static [(&'static str, &'static str)],
    /// How messages are written.
    pub(crate) message: MessageRules,
    /// Temperature sent when the options set none (from an explicit profile value).
    pub(crate) default_temperature: Option<f64>,
    /// Extra body fields of the backend (preset or builder), written before the request's own
    /// `extra`, which override them.
    pub(crate) body_extra: Map<String, Value>,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            target: "generic",
            unsupported: &[],
            drop_unsupported: false,
            structured: StructuredOutput::Native,
            max_tokens_field: "max_tokens",
            include_usage: false,
            renames: &[],
            message: MessageRules::default(),
            default_temperature: None,
            body_extra: Map::new(),
        }
    }
}

impl WireConfig {
    /// True when no rule can change a body: the writer skips every lookup.
    pub(crate) fn is_plain(&self, extra: &Map<String, Value>) -> bool {
        extra.is_empty() && self.body_extra.is_empty() && self.renames.is_empty() && self.unsupported.is_empty()
    }

    fn unsupported(&self, key: &str) -> Option<FieldSupport> {
        self.unsupported.iter().find(|(field, _)| *field == key).map(|(_, support)| *support)
    }
}

/// One chat-completions request body.
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: &'a [Message],
    pub(crate) options: &'a RequestOptions,
    pub(crate) stream: bool,
    pub(crate) config: &'a WireConfig,
}

struct Messages<'a>(&'a [Message], MessageRules);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            seq.serialize_element(&RequestMessage { message, rules: self.1 })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// Writes the body's fields, applying every rule of the target to each key as it goes out.
pub(crate) struct Writer<'c, M> {
    pub(crate) map: M,
    pub(crate) config: &'c WireConfig,
    pub(crate) extra: &'c Map<String, Value>,
    /// No rule can apply (the fast path).
    pub(crate) plain: bool,
    /// Why the request was refused, when a rule refused it.
    pub(crate) refused: &'c Cell<Option<Error>>,
}

impl<'c, M: SerializeMap> Writer<'c, M> {
    /// Starts a body's map; `extra` is the request's own extra fields.
    pub(crate) fn start<S: Serializer<SerializeMap = M>>(
        serializer: S,
        config: &'c WireConfig,
        extra: &'c Map<String, Value>,
        refused: &'c Cell<Option<Error>>,
    ) -> Result<Writer<'c, M>, S::Error> {
        Ok(Writer { map: serializer.serialize_map(None)?, config, extra, plain: config.is_plain(extra), refused })
    }
}

impl<M: SerializeMap> Writer<'_, M> {
    /// A typed field: renamed, left to an `extra` field of the same name, or admitted.
    pub(crate) fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), M::Error> {
        if self.plain {
            return self.map.serialize_entry(key, value);
        }
        let key = self.config.renames.iter().find(|(from, _)| *from == key).map_or(key, |(_, to)| *to);
        if self.extra.contains_key(key) || self.config.body_extra.contains_key(key) {
            return Ok(());
        }
        if self.admit(key)? {
            self.map.serialize_entry(key, value)?;
        }
        Ok(())
    }

    /// An extra field (backend's, then the request's): admitted like a typed one.
    pub(crate) fn extra_field(&mut self, key: &str, value: &Value) -> Result<(), M::Error> {
        if self.admit(key)? {
            self.map.serialize_entry(key, value)?;
        }
        Ok(())
    }

    /// Whether `key` goes out: fields the target ignores are dropped with a warning; fields
    /// it rejects refuse the request, or with `drop_unsupported` are dropped with a warning.
    pub(crate) fn admit(&mut self, key: &str) -> Result<bool, M::Error> {
        match self.config.unsupported(key) {
            None => Ok(true),
            Some(FieldSupport::Rejected) if !self.config.drop_unsupported => Err(self.refuse(format!(
                "the {} server rejects `{key}`; leave it out, or build the backend with drop_unsupported(true) to drop it",
                self.config.target
            ))),
            Some(_) => {
                tracing::warn!(field = key, target = self.config.target, "the server does not support this field; it is not sent");
                Ok(false)
            }
        }
    }

    pub(crate) fn refuse(&self, message: String) -> M::Error {
        let error = ser::Error::custom(&message);
        self.refused.set(Some(Error::new(ErrorKind::Unsupported, message)));
        error
    }

    /// Refuses the request with `error` as it is (its kind kept).
    pub(crate) fn refuse_with(&self, error: Error) -> M::Error {
        let e = ser::Error::custom(error.message());
        self.refused.set(Some(error));
        e
    }
}

impl ChatRequest<'_> {
    fn write<S: Serializer>(&self, serializer: S, refused: &Cell<Option<Error>>) -> Result<S::Ok, S::Error> {
        let o = self.options;
        let c = self.config;
        let mut w = Writer::start(serializer, c, &o.extra, refused)?;
        w.field("model", self.model)?;
        if !c.message.names && self.messages.iter().any(|m| m.name.is_some()) {
            tracing::warn!(target = c.target, "the server rejects message names; they are not sent");
        }
        w.field("messages", &Messages(self.messages, c.message))?;
        write_options(w, o, self.stream, Input::Chat)
    }
}

/// One legacy text-completions request body (`/v1/completions`): a prompt instead of messages,
/// and the options that API has.
pub(crate) struct TextRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) prompt: &'a str,
    pub(crate) options: &'a RequestOptions,
    pub(crate) stream: bool,
    pub(crate) config: &'a WireConfig,
}

impl TextRequest<'_> {
    fn write<S: Serializer>(&self, serializer: S, refused: &Cell<Option<Error>>) -> Result<S::Ok, S::Error> {
        let o = self.options;
        let c = self.config;
        let mut w = Writer::start(serializer, c, &o.extra, refused)?;
        w.field("model", self.model)?;
        w.field("prompt", self.prompt)?;
        write_options(w, o, self.stream, Input::Prompt)
    }
}

/// Which API a body is for.
#[derive(Clone, Copy, PartialEq)]
enum Input {
    Chat,
    Prompt,
}

/// The fields after the input, in one order for both APIs.
fn write_options<M: SerializeMap>(
    mut w: Writer<'_, M>,
    o: &RequestOptions,
    stream: bool,
    input: Input,
) -> Result<M::Ok, M::Error> {
    let c = w.config;
    if input == Input::Prompt {
        let chat_only = if !o.tools.is_empty() || o.tool_choice.is_some() || o.parallel_tool_calls.is_some() {
            Some("tools")
        } else if o.response_format.is_some() {
            Some("response_format")
        } else {
            None
        };
        if let Some(what) = chat_only {
            return Err(
                w.refuse(format!("the text completions API has no `{what}`; use the chat completions API for it"))
            );
        }
    }
    if stream {
        w.field("stream", &true)?;
        if c.include_usage {
            w.field("stream_options", &StreamOptions { include_usage: true })?;
        }
    }
    if let Some(t) = o.temperature.or(c.default_temperature) {
        w.field("temperature", &t)?;
    }
    if let Some(n) = o.max_tokens {
        // `max_completion_tokens` exists on chat only.
        let key = if input == Input::Chat { c.max_tokens_field } else { "max_tokens" };
        w.field(key, &n)?;
    }
    if !o.tools.is_empty() {
        w.field("tools", &o.tools)?;
    }
    if let Some(choice) = &o.tool_choice {
        w.field("tool_choice", choice)?;
    }
    if let Some(parallel) = o.parallel_tool_calls {
        w.field("parallel_tool_calls", &parallel)?;
    }
    if let (Some(effort), Input::Chat) = (o.reasoning_effort, input) {
        w.field("reasoning_effort", &effort)?;
    }
    if let (Some(ResponseFormat::JsonSchema { name, schema, .. }), true) = (&o.response_format, o.adapt_schema) {
        // Structured output from `Extract`: the schema in this server's own form.
        match crate::structured::translate(schema, c.structured, c.target) {
            Ok(translated) => w.field("response_format", &translated.response_format(name))?,
            Err(e) => return Err(w.refuse_with(e)),
        }
    } else if let Some(format) = &o.response_format {
        if let (ResponseFormat::JsonSchema { .. }, StructuredOutput::JsonObjectOnly) = (format, c.structured) {
            if !c.drop_unsupported {
                return Err(w.refuse(format!(
                    "the {} server has no JSON Schema output, only json_object; use ResponseFormat::JsonObject, or drop_unsupported(true) to send json_object",
                    c.target
                )));
            }
            tracing::warn!(target = c.target, "JSON Schema output is not supported; json_object is sent instead");
        }
        w.field("response_format", &WireFormat(format, c.structured))?;
    }
    if !o.stop.is_empty() {
        w.field("stop", &o.stop)?;
    }
    if let Some(seed) = o.seed {
        w.field("seed", &seed)?;
    }
    if let Some(top_p) = o.top_p {
        w.field("top_p", &top_p)?;
    }
    if let Some(p) = o.frequency_penalty {
        w.field("frequency_penalty", &p)?;
    }
    if let Some(p) = o.presence_penalty {
        w.field("presence_penalty", &p)?;
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

/// A response format in the form the target accepts.
struct WireFormat<'a>(&'a ResponseFormat, StructuredOutput);

impl Serialize for WireFormat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde_json::json;
        match (self.0, self.1) {
            (ResponseFormat::JsonSchema { schema, .. }, StructuredOutput::JsonObjectWithSchema) => {
                json!({"type": "json_object", "schema": schema}).serialize(serializer)
            }
            (ResponseFormat::JsonSchema { schema, .. }, StructuredOutput::TgiJson) => {
                json!({"type": "json", "value": schema}).serialize(serializer)
            }
            // Reached only with drop_unsupported: the closest the target has.
            (ResponseFormat::JsonSchema { .. }, StructuredOutput::JsonObjectOnly) => {
                json!({"type": "json_object"}).serialize(serializer)
            }
            (ResponseFormat::JsonObject, StructuredOutput::JsonSchemaOnly) => json!({
                "type": "json_schema",
                "json_schema": {"name": "json_object", "schema": {"type": "object"}}
            })
            .serialize(serializer),
            (format, _) => format.serialize(serializer),
        }
    }
}

/// A request body that the rule-applying [`Writer`] writes (chat or Responses).
pub(crate) trait BodyWriter {
    /// Writes the body; a refusal is left in `refused`.
    fn write_to<S: Serializer>(&self, serializer: S, refused: &Cell<Option<Error>>) -> Result<S::Ok, S::Error>;
    /// Bytes to reserve.
    fn size_hint(&self) -> usize;
}

impl BodyWriter for ChatRequest<'_> {
    fn write_to<S: Serializer>(&self, serializer: S, refused: &Cell<Option<Error>>) -> Result<S::Ok, S::Error> {
        self.write(serializer, refused)
    }
    fn size_hint(&self) -> usize {
        256 + self.messages.len() * 128
    }
}

impl BodyWriter for TextRequest<'_> {
    fn write_to<S: Serializer>(&self, serializer: S, refused: &Cell<Option<Error>>) -> Result<S::Ok, S::Error> {
        self.write(serializer, refused)
    }
    fn size_hint(&self) -> usize {
        256 + self.prompt.len()
    }
}

/// The body as bytes, or why the target cannot take the request (`Unsupported`), or why it
/// could not be written (`InvalidRequest`). Never an empty body.
pub(crate) fn to_body(request: &ChatRequest<'_>) -> Result<Vec<u8>, Error> {
    write_body(request)
}

/// A text-completions body, as [`to_body`] writes a chat one.
pub(crate) fn to_text_body(request: &TextRequest<'_>) -> Result<Vec<u8>, Error> {
    write_body(request)
}

/// Writes any [`BodyWriter`] (see [`to_body`]).
pub(crate) fn write_body<B: BodyWriter>(request: &B) -> Result<Vec<u8>, Error> {
    struct Writing<'r, B> {
        request: &'r B,
        refused: Cell<Option<Error>>,
    }
    impl<B: BodyWriter> Serialize for Writing<'_, B> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.request.write_to(serializer, &self.refused)
        }
    }
    let writing = Writing { request, refused: Cell::new(None) };
    let mut out = Vec::with_capacity(request.size_hint());
    match serde_json::to_writer(&mut out, &writing) {
        Ok(()) => Ok(out),
        Err(e) => Err(writing.refused.take().unwrap_or_else(|| {
            Error::new(ErrorKind::InvalidRequest, format!("the request could not be written as JSON: {e}"))
                .with_source(e)
        })),
    }
}

/// A tool call as a request writes it: `{"id", "type": "function", "function": {"name",
/// "arguments"}}`, with the id already rewritten to the server's rule.
struct RequestToolCall<'a>(&'a ToolCall, &'a str);

impl Serialize for RequestToolCall<'_> {
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

/// How messages are written for one server: whether reasoning is echoed (and in which
/// field), how tool-call ids are rewritten, whether names are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MessageRules {
    /// The field the reasoning of an assistant message that called tools is echoed back in;
    /// `None` echoes none.
    pub(crate) reasoning_echo_field: Option<&'static str>,
    /// Rewrite tool-call ids to this server's rule.
    pub(crate) tool_id_rule: ToolIdRule,
    /// Send `name` on messages (Groq rejects it).
    pub(crate) names: bool,
}

impl Default for MessageRules {
    fn default() -> Self {
        MessageRules { reasoning_echo_field: None, tool_id_rule: ToolIdRule::Any, names: true }
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

/// One message as a request writes it for one server.
pub(crate) struct RequestMessage<'a> {
    pub(crate) message: &'a Message,
    pub(crate) rules: MessageRules,
}

impl Serialize for RequestMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.message;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", m.role.as_str())?;
        // Assistant tool-call turns get "" rather than null: llama-cpp-python rejects null and a
        // missing key, and "" is valid for OpenAI's schema.
        map.serialize_entry("content", &m.content)?;
        if let (Some(name), true) = (&m.name, self.rules.names) {
            map.serialize_entry("name", name)?;
        }
        if !m.tool_calls.is_empty() {
            struct Calls<'a>(&'a [ToolCall], ToolIdRule);
            impl Serialize for Calls<'_> {
                fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                    for call in self.0 {
                        let id = self.1.apply(&call.id);
                        seq.serialize_element(&RequestToolCall(call, &id))?;
                    }
                    seq.end()
                }
            }
            map.serialize_entry("tool_calls", &Calls(&m.tool_calls, self.rules.tool_id_rule))?;
        }
        if let Some(id) = &m.tool_call_id {
            map.serialize_entry("tool_call_id", &self.rules.tool_id_rule.apply(id))?;
        }
        if let (Some(field), Some(reasoning)) = (self.rules.reasoning_echo_field, &m.reasoning) {
            if m.role == Role::Assistant && !m.tool_calls.is_empty() {
                map.serialize_entry(field, reasoning)?;
            }
        }
        // Members the crate does not model, after the known ones; never a key written (or
        // dropped by a rule) above, so a rule cannot be bypassed and no key appears twice.
        for (key, value) in &m.extra {
            if !MessageKey::is_modelled(key, self.rules) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// The stored shape of a [`Message`] (a conversation saved as JSON): the wire shape with no
/// server's rules applied. Here, beside the wire writer it shares, so `types` imports nothing
/// from the wire code.
impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The stored shape is the wire shape with no server's rules applied.
        RequestMessage { message: self, rules: MessageRules::default() }.serialize(serializer)
    }
}

/// Reading is lenient: null or missing content, arguments as a JSON object, unknown parts;
/// members the crate does not model go to [`Message::extra`]. Tool-call strings borrow from
/// the input when the deserializer lends it (`serde_json::from_slice`) and are owned
/// otherwise (`serde_json::from_value`, `pythonize`).
impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

/// A member name of a message: one the crate models, or another one kept in `extra`.
enum MessageKey {
    Role,
    Content,
    Name,
    ToolCalls,
    ToolCallId,
    ReasoningContent,
    Reasoning,
    Other(String),
}

impl MessageKey {
    /// The modelled member `name` names, if any (no allocation for them).
    fn known(name: &str) -> Option<MessageKey> {
        Some(match name {
            "role" => MessageKey::Role,
            "content" => MessageKey::Content,
            "name" => MessageKey::Name,
            "tool_calls" => MessageKey::ToolCalls,
            "tool_call_id" => MessageKey::ToolCallId,
            "reasoning_content" => MessageKey::ReasoningContent,
            "reasoning" => MessageKey::Reasoning,
            _ => return None,
        })
    }

    /// True when the writer writes `key` from a typed field (or a rule drops it), so a
    /// member of that name in `extra` is never written.
    fn is_modelled(key: &str, rules: MessageRules) -> bool {
        MessageKey::known(key).is_some() || rules.reasoning_echo_field == Some(key)
    }
}

impl<'de> Deserialize<'de> for MessageKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = MessageKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a message member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageKey, E> {
                Ok(MessageKey::known(v).unwrap_or_else(|| MessageKey::Other(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<MessageKey, E> {
                Ok(MessageKey::known(&v).unwrap_or(MessageKey::Other(v)))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// Reads one message's members; a modelled member given twice is an error, as with a derived
/// `Deserialize`.
struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(field));
            }
            *slot = Some(value);
            Ok(())
        }
        let mut role: Option<Role> = None;
        let mut content: Option<Content> = None;
        let mut name: Option<Option<String>> = None;
        let mut tool_calls: Option<LenientList<WireToolCall<'de>>> = None;
        let mut tool_call_id: Option<Option<String>> = None;
        let mut reasoning_content: Option<Option<String>> = None;
        let mut reasoning: Option<Option<String>> = None;
        let mut extra = Map::new();
        while let Some(key) = map.next_key::<MessageKey>()? {
            match key {
                MessageKey::Role => once(&mut role, map.next_value()?, "role")?,
                MessageKey::Content => once(&mut content, map.next_value()?, "content")?,
                MessageKey::Name => once(&mut name, map.next_value()?, "name")?,
                MessageKey::ToolCalls => once(&mut tool_calls, map.next_value()?, "tool_calls")?,
                MessageKey::ToolCallId => once(&mut tool_call_id, map.next_value()?, "tool_call_id")?,
                MessageKey::ReasoningContent => {
                    once(&mut reasoning_content, map.next_value()?, "reasoning_content")?;
                }
                MessageKey::Reasoning => once(&mut reasoning, map.next_value()?, "reasoning")?,
                MessageKey::Other(key) => {
                    extra.insert(key, map.next_value()?);
                }
            }
        }
        let role = role.ok_or_else(|| de::Error::missing_field("role"))?;
        let tool_calls = tool_calls
            .unwrap_or_default()
            .0
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let (name, arguments) = c.function.0.map_or((None, None), |f| (f.name.0, f.arguments.0));
                let mut call =
                    ToolCall::new(c.id.0.unwrap_or_default(), name.unwrap_or_default(), arguments.unwrap_or_default());
                normalise_tool_call(&mut call, i);
                call
            })
            .collect();
        Ok(Message {
            role,
            content: content.unwrap_or_default(),
            name: name.flatten(),
            tool_calls,
            tool_call_id: tool_call_id.flatten(),
            reasoning: reasoning_content.flatten().or(reasoning.flatten()),
            reasoning_items: Vec::new(),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ContentPart, ToolCall, ToolChoice, ToolDefinition};
    use serde_json::json;

    fn body(messages: &[Message], options: &RequestOptions, stream: bool, config: &WireConfig) -> Value {
        let bytes = to_body(&ChatRequest { model: "m", messages, options, stream, config }).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// A request that sets every option the writer knows.
    fn every_option() -> RequestOptions {
        RequestOptions::new()
            .temperature(0.5)
            .max_tokens(10)
            .tools(vec![ToolDefinition::function("f", "does f", json!({"type":"object"}))])
            .tool_choice(ToolChoice::Function("f".into()))
            .parallel_tool_calls(false)
            .response_format(ResponseFormat::JsonObject)
            .stop(["\n\n"])
            .seed(7)
            .top_p(0.9)
            .frequency_penalty(0.1)
            .presence_penalty(0.2)
    }

    fn text_body(prompt: &str, options: &RequestOptions, stream: bool, config: &WireConfig) -> Result<Value, Error> {
        let bytes = to_text_body(&TextRequest { model: "m", prompt, options, stream, config })?;
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn text_completion_bodies_take_the_chat_rules() {
        let config = WireConfig {
            include_usage: true,
            max_tokens_field: "max_completion_tokens",
            renames: &[("seed", "random_seed")],
            ..WireConfig::default()
        };
        let options =
            RequestOptions::new().max_tokens(16).seed(3).stop(["\n"]).temperature(0.0).extra("ignore_eos", json!(true));
        let v = text_body("Once upon", &options, true, &config).unwrap();
        assert_eq!(
            v,
            json!({"model":"m","prompt":"Once upon","stream":true,"stream_options":{"include_usage":true},
                   "temperature":0.0,"max_tokens":16,"stop":["\n"],"random_seed":3,"ignore_eos":true})
        );
        let v = text_body("x", &RequestOptions::new(), false, &WireConfig::default()).unwrap();
        assert_eq!(v, json!({"model":"m","prompt":"x"}));
    }

    #[test]
    fn text_completions_refuse_chat_only_options() {
        for options in [
            RequestOptions::new().tools(vec![ToolDefinition::function("f", "", json!({"type":"object"}))]),
            RequestOptions::new().tool_choice(ToolChoice::Auto),
            RequestOptions::new().response_format(ResponseFormat::JsonObject),
        ] {
            let e = text_body("x", &options, false, &WireConfig::default()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(e.message().contains("chat completions API"), "{e}");
        }
    }

    #[test]
    fn minimal_request_sends_only_model_and_messages() {
        let v = body(&[Message::user("hi")], &RequestOptions::new(), false, &WireConfig::default());
        assert_eq!(v, json!({"model":"m","messages":[{"role":"user","content":"hi"}]}));
    }

    #[test]
    fn stream_with_and_without_usage() {
        let v = body(&[Message::user("hi")], &RequestOptions::new(), true, &WireConfig::default());
        assert_eq!(v["stream"], json!(true));
        assert!(v.get("stream_options").is_none());
        let cfg = WireConfig { include_usage: true, ..Default::default() };
        let v = body(&[Message::user("hi")], &RequestOptions::new(), true, &cfg);
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        // Never on non-streaming requests.
        let v = body(&[Message::user("hi")], &RequestOptions::new(), false, &cfg);
        assert!(v.get("stream_options").is_none() && v.get("stream").is_none());
    }

    #[test]
    fn every_option_in_wire_shape() {
        let options = every_option();
        let v = body(&[Message::system("s"), Message::user("u")], &options, false, &WireConfig::default());
        assert_eq!(
            v,
            json!({
                "model":"m",
                "messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],
                "temperature":0.5,"max_tokens":10,
                "tools":[{"type":"function","function":{"name":"f","description":"does f","parameters":{"type":"object"}}}],
                "tool_choice":{"type":"function","function":{"name":"f"}},
                "parallel_tool_calls":false,
                "response_format":{"type":"json_object"},
                "stop":["\n\n"],"seed":7,"top_p":0.9,"frequency_penalty":0.1,"presence_penalty":0.2
            })
        );
    }

    #[test]
    fn extra_is_merged_last_and_overrides() {
        let options = RequestOptions::new().temperature(0.5).extra("temperature", json!(1.0)).extra("top_k", json!(40));
        let bytes = to_body(&ChatRequest {
            model: "m",
            messages: &[],
            options: &options,
            stream: false,
            config: &WireConfig::default(),
        })
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("temperature").count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["temperature"], json!(1.0));
        assert_eq!(v["top_k"], json!(40));
        // Overriding the model works too.
        let options = RequestOptions::new().extra("model", json!("other"));
        let v = body(&[], &options, false, &WireConfig::default());
        assert_eq!(v["model"], json!("other"));
    }

    #[test]
    fn renames_drops_and_max_tokens_field() {
        let cfg = WireConfig {
            max_tokens_field: "max_completion_tokens",
            renames: &[("seed", "random_seed")],
            unsupported: &[("top_p", FieldSupport::Ignored)],
            ..Default::default()
        };
        let v = body(&[], &RequestOptions::new().max_tokens(5).seed(1).top_p(0.5), false, &cfg);
        assert_eq!(v, json!({"model":"m","messages":[],"max_completion_tokens":5,"random_seed":1}));
    }

    #[test]
    fn default_temperature_only_when_configured() {
        let cfg = WireConfig { default_temperature: Some(0.7), ..Default::default() };
        assert_eq!(body(&[], &RequestOptions::new(), false, &cfg)["temperature"], json!(0.7));
        assert_eq!(body(&[], &RequestOptions::new().temperature(0.1), false, &cfg)["temperature"], json!(0.1));
        assert!(body(&[], &RequestOptions::new(), false, &WireConfig::default()).get("temperature").is_none());
    }

    #[test]
    fn tool_loop_history_round_trips() {
        let history = vec![
            Message::user(vec![ContentPart::text("weather?"), ContentPart::image_url("data:image/png;base64,AAAA")]),
            Message::assistant_with_tool_calls(
                "",
                vec![ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}")],
            ),
            Message::tool("call_1", "sunny"),
        ];
        let v = body(&history, &RequestOptions::new(), false, &WireConfig::default());
        assert_eq!(v["messages"][1]["tool_calls"][0]["function"]["arguments"], json!("{\"city\":\"Paris\"}"));
        assert_eq!(v["messages"][1]["content"], json!(""));
        assert_eq!(v["messages"][2]["tool_call_id"], json!("call_1"));
        assert_eq!(v["messages"][0]["content"][1]["image_url"]["url"], json!("data:image/png;base64,AAAA"));
    }

    #[test]
    fn body_extra_is_overridden_by_request_extra() {
        let mut extra = Map::new();
        extra.insert("top_k".into(), json!(1));
        extra.insert("x".into(), json!(2));
        let cfg = WireConfig { body_extra: extra, ..Default::default() };
        let v = body(&[], &RequestOptions::new().extra("top_k", json!(9)), false, &cfg);
        assert_eq!(v["top_k"], json!(9));
        assert_eq!(v["x"], json!(2));
    }

    /// The rules see every field the writer writes: every key of a request with every option
    /// set (and streaming, and an extra field) is dropped when the target ignores it and
    /// refuses the request when the target rejects it. The key list comes from the writer's
    /// own output, so a field added to the writer is covered without touching this test.
    #[test]
    fn rules_see_every_field_the_writer_writes() {
        let options = every_option().extra("top_k", json!(40));
        let full =
            body(&[Message::user("u")], &options, true, &WireConfig { include_usage: true, ..Default::default() });
        let keys: Vec<String> = full.as_object().unwrap().keys().cloned().collect();
        assert!(keys.len() >= 15, "{keys:?}");
        for key in &keys {
            let key: &'static str = Box::leak(key.clone().into_boxed_str());
            let ignored: &'static [(&'static str, FieldSupport)] = Box::leak(Box::new([(key, FieldSupport::Ignored)]));
            let cfg = WireConfig { include_usage: true, unsupported: ignored, ..Default::default() };
            let v = body(&[Message::user("u")], &options, true, &cfg);
            assert!(v.get(key).is_none(), "an ignored `{key}` was sent");
            assert_eq!(v.as_object().unwrap().len(), keys.len() - 1, "only `{key}` is dropped");

            let rejected: &'static [(&'static str, FieldSupport)] =
                Box::leak(Box::new([(key, FieldSupport::Rejected)]));
            let cfg = WireConfig { include_usage: true, unsupported: rejected, ..Default::default() };
            let err = to_body(&ChatRequest {
                model: "m",
                messages: &[Message::user("u")],
                options: &options,
                stream: true,
                config: &cfg,
            })
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "`{key}`: {err}");
            assert!(err.to_string().contains(key), "{err}");
            let cfg = WireConfig { drop_unsupported: true, ..cfg };
            let v = body(&[Message::user("u")], &options, true, &cfg);
            assert!(v.get(key).is_none(), "a rejected `{key}` was sent with drop_unsupported");
        }
    }

    /// A renamed field is judged by its wire name, and an `extra` field of that name wins.
    #[test]
    fn renamed_fields_and_extra_overrides() {
        let cfg = WireConfig { renames: &[("seed", "random_seed")], ..Default::default() };
        let v = body(&[], &RequestOptions::new().seed(1).extra("random_seed", json!(9)), false, &cfg);
        assert_eq!(v, json!({"model":"m","messages":[],"random_seed":9}));
        let cfg = WireConfig {
            renames: &[("seed", "random_seed")],
            unsupported: &[("random_seed", FieldSupport::Rejected)],
            ..Default::default()
        };
        let err = to_body(&ChatRequest {
            model: "m",
            messages: &[],
            options: &RequestOptions::new().seed(1),
            stream: false,
            config: &cfg,
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn reasoning_is_only_sent_when_asked() {
        let mut m = Message::assistant_with_tool_calls("hi", vec![ToolCall::new("c", "f", "{}")]);
        m.reasoning = Some("thought".into());
        let plain = serde_json::to_value(&m).unwrap();
        assert!(plain.get("reasoning_content").is_none() && plain.get("reasoning").is_none());
        let rules = MessageRules { reasoning_echo_field: Some("reasoning_content"), ..Default::default() };
        let wire = RequestMessage { message: &m, rules };
        assert_eq!(serde_json::to_value(&wire).unwrap()["reasoning_content"], json!("thought"));
        // Not on turns without tool calls.
        let mut text_only = Message::assistant("hi");
        text_only.reasoning = Some("thought".into());
        let wire = RequestMessage { message: &text_only, rules };
        assert!(serde_json::to_value(&wire).unwrap().get("reasoning_content").is_none());
    }

    /// A message with members the crate does not model, tool calls, content parts and null
    /// content, as a Python caller would write it.
    fn rich_messages() -> Value {
        json!([
            {"role": "system", "content": "s", "cache_control": {"type": "ephemeral"}},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
            ]},
            {"role": "assistant", "content": null, "refusal": null, "audio": {"id": "a1"},
             "reasoning_content": "thought",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny", "x_vendor": [1, 2]},
            {"role": "assistant", "content": "Sun", "prefix": true}
        ])
    }

    fn check_rich(messages: &[Message]) {
        assert_eq!(messages.len(), 5);
        assert_eq!(messages[0].extra, json!({"cache_control": {"type": "ephemeral"}}).as_object().unwrap().clone());
        assert_eq!(messages[1].name.as_deref(), Some("ann"));
        assert!(messages[1].extra.is_empty());
        let Content::Parts(parts) = &messages[1].content else { panic!("parts expected: {:?}", messages[1]) };
        assert_eq!(parts.len(), 3);
        // A text part with members of its own is kept whole.
        assert!(matches!(&parts[0], ContentPart::Other(v) if v["cache_control"]["type"] == "ephemeral"));
        assert!(matches!(&parts[1], ContentPart::Image { url, .. } if url == "data:image/png;base64,AAAA"));
        assert!(matches!(&parts[2], ContentPart::Other(v) if v["type"] == "input_audio"));
        let a = &messages[2];
        assert_eq!(a.content, Content::Text(String::new()));
        assert_eq!(a.reasoning.as_deref(), Some("thought"));
        assert_eq!(a.tool_calls, vec![ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}")]);
        assert_eq!(a.extra, json!({"refusal": null, "audio": {"id": "a1"}}).as_object().unwrap().clone());
        assert_eq!(messages[3].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(messages[3].extra["x_vendor"], json!([1, 2]));
        assert_eq!(messages[4].extra["prefix"], json!(true));
    }

    #[test]
    fn unknown_members_are_read_from_borrowed_and_owned_data() {
        let value = rich_messages();
        let text = value.to_string();
        check_rich(&serde_json::from_str::<Vec<Message>>(&text).unwrap());
        check_rich(&serde_json::from_slice::<Vec<Message>>(text.as_bytes()).unwrap());
        // Owned data: a deserializer that cannot lend &str (as pythonize's).
        check_rich(&serde_json::from_value::<Vec<Message>>(value.clone()).unwrap());
        let one: Message = serde_json::from_value(value[2].clone()).unwrap();
        check_rich(&[
            serde_json::from_value(value[0].clone()).unwrap(),
            serde_json::from_value(value[1].clone()).unwrap(),
            one,
            serde_json::from_value(value[3].clone()).unwrap(),
            serde_json::from_value(value[4].clone()).unwrap(),
        ]);
        // Escaped strings cannot be borrowed even from a slice.
        let escaped = r#"{"role":"assistant","content":"","tool_calls":[{"id":"c\u0031","function":{"name":"f\n","arguments":"{}"}}]}"#;
        let m: Message = serde_json::from_str(escaped).unwrap();
        assert_eq!((m.tool_calls[0].id.as_str(), m.tool_calls[0].name.as_str()), ("c1", "f\n"));
    }

    #[test]
    fn message_reading_keeps_its_errors() {
        let err = serde_json::from_str::<Message>(r#"{"content":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `role`"), "{err}");
        let err = serde_json::from_str::<Message>(r#"{"role":"user","role":"user"}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field `role`"), "{err}");
        assert!(serde_json::from_str::<Message>(r#"{"role":"robot"}"#).is_err());
        assert!(serde_json::from_str::<Message>(r#"{"role":"user","content":3}"#).is_err());
        assert!(serde_json::from_value::<Message>(json!("user")).is_err());
        let m: Message = serde_json::from_str(r#"{"role":"user"}"#).unwrap();
        assert_eq!(m, Message::user(""));
    }

    #[test]
    fn extra_members_go_out_verbatim_after_the_known_ones() {
        let messages: Vec<Message> = serde_json::from_value(rich_messages()).unwrap();
        let v = body(&messages, &RequestOptions::new(), false, &WireConfig::default());
        let mut expected = rich_messages();
        // The stored and wire shapes write "" for null content and leave reasoning out.
        expected[2]["content"] = json!("");
        expected[2].as_object_mut().unwrap().remove("reasoning_content");
        expected[2]["tool_calls"][0]["function"]["arguments"] = json!("{\"city\":\"Paris\"}");
        assert_eq!(v["messages"], expected);
        // After the known members, in the body's text.
        let bytes = to_body(&ChatRequest {
            model: "m",
            messages: &messages[2..3],
            options: &RequestOptions::new(),
            stream: false,
            config: &WireConfig::default(),
        })
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.find("\"tool_calls\"").unwrap() < text.find("\"audio\"").unwrap(), "{text}");
        // The stored shape round-trips.
        let stored = serde_json::to_string(&messages).unwrap();
        let back: Vec<Message> = serde_json::from_str(&stored).unwrap();
        for (a, b) in messages.iter().zip(&back) {
            assert_eq!(a.extra, b.extra);
        }
        assert_eq!(back[0].extra["cache_control"], json!({"type": "ephemeral"}));
        assert_eq!(back[4].extra["prefix"], json!(true));
    }

    #[test]
    fn extra_never_repeats_a_key_nor_brings_back_a_dropped_one() {
        let mut m = Message::assistant_with_tool_calls("typed", vec![ToolCall::new("c", "f", "{}")])
            .with_name("typed")
            .with_extra("role", json!("system"))
            .with_extra("content", json!("smuggled"))
            .with_extra("name", json!("smuggled"))
            .with_extra("tool_call_id", json!("smuggled"))
            .with_extra("reasoning_content", json!("smuggled"))
            .with_extra("reasoning", json!("smuggled"))
            .with_extra("cache_control", json!({"type": "ephemeral"}));
        m.reasoning = Some("thought".into());
        for rules in [
            MessageRules::default(),
            MessageRules { names: false, ..Default::default() },
            MessageRules { reasoning_echo_field: Some("reasoning_content"), ..Default::default() },
            MessageRules { reasoning_echo_field: Some("thinking"), ..Default::default() },
        ] {
            let m = m.clone().with_extra("thinking", json!("smuggled"));
            let text = serde_json::to_string(&RequestMessage { message: &m, rules }).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["role"], json!("assistant"));
            assert_eq!(v["content"], json!("typed"));
            assert_eq!(v.get("name").is_some(), rules.names, "{text}");
            assert_eq!(v["cache_control"], json!({"type": "ephemeral"}));
            // The function's `name` is the other one.
            assert_eq!(text.matches("\"name\":").count(), 1 + usize::from(rules.names), "{text}");
            for key in ["role", "content", "reasoning_content", "reasoning", "tool_call_id"] {
                assert!(text.matches(&format!("\"{key}\"")).count() <= 1, "{key} twice: {text}");
            }
            if let Some(field) = rules.reasoning_echo_field {
                assert_eq!(v[field], json!("thought"), "{text}");
                assert_eq!(text.matches("smuggled").count(), usize::from(field == "reasoning_content"), "{text}");
            } else {
                // No echo: the unmodelled `thinking` goes out, the modelled keys do not.
                assert_eq!(v["thinking"], json!("smuggled"));
                assert_eq!(text.matches("smuggled").count(), 1, "{text}");
                assert!(v.get("reasoning_content").is_none() && v.get("reasoning").is_none());
            }
        }
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

    /// Structured output from `Extract` (the crate-private flag) is written in each form; a
    /// user's own format is not adapted (the tests above).
    #[test]
    fn adapted_schemas_take_each_servers_form() {
        let schema = json!({"type": "object", "properties": {"a": {"type": ["string", "null"], "minLength": 1}, "n": {"type": "number", "maximum": 5}}, "required": ["a"]});
        let mut options = RequestOptions::new().response_format(ResponseFormat::JsonSchema {
            name: "out".into(),
            schema: schema.clone(),
            strict: Some(true),
        });
        let plain = |form: StructuredOutput, options: &RequestOptions| {
            let config = WireConfig { structured: form, target: "t", ..WireConfig::default() };
            to_body(&ChatRequest { model: "m", messages: &[], options, stream: false, config: &config })
        };
        // Without the flag: as today.
        let v: Value = serde_json::from_slice(&plain(StructuredOutput::OpenAiStrict, &options).unwrap()).unwrap();
        assert_eq!(v["response_format"]["json_schema"]["schema"], schema);
        assert!(plain(StructuredOutput::JsonObjectOnly, &options).is_err());
        options.adapt_schema = true;
        let form = |f: StructuredOutput| -> Value {
            let v: Value = serde_json::from_slice(&plain(f, &options).unwrap()).unwrap();
            v["response_format"].clone()
        };
        let strict = form(StructuredOutput::OpenAiStrict);
        assert_eq!(strict["json_schema"]["strict"], json!(true));
        assert_eq!(strict["json_schema"]["schema"]["required"], json!(["a", "n"]));
        assert_eq!(strict["json_schema"]["schema"]["additionalProperties"], json!(false));
        assert_eq!(
            form(StructuredOutput::Native),
            json!({"type": "json_schema", "json_schema": {"name": "out", "schema": schema}})
        );
        assert_eq!(
            form(StructuredOutput::NoTypeArrays)["json_schema"]["schema"]["properties"]["a"]["anyOf"],
            json!([{"type": "string"}, {"type": "null"}])
        );
        let llama = form(StructuredOutput::JsonObjectWithSchema);
        assert_eq!(llama["type"], json!("json_object"));
        assert_eq!(llama["schema"]["properties"]["n"], json!({"type": "number", "description": "(maximum: 5)"}));
        assert_eq!(form(StructuredOutput::JsonObjectOnly), json!({"type": "json_object"}));
        assert_eq!(form(StructuredOutput::TgiJson), json!({"type": "json", "value": schema}));
        // A schema the form cannot take refuses the request, naming the keyword and the server.
        options.response_format = Some(ResponseFormat::JsonSchema {
            name: "out".into(),
            schema: json!({"type": "object", "additionalProperties": {"type": "string"}}),
            strict: Some(true),
        });
        let e = plain(StructuredOutput::OpenAiStrict, &options).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("additionalProperties") && e.to_string().contains("the t server"), "{e}");
    }
}
