//! Messages of a conversation: [`Message`], its [`Role`] and [`Content`] (text, or parts with
//! images).
//!
//! Messages serialise in the OpenAI wire shape with no server's rules applied, so a
//! conversation can be stored as JSON and read back; reading is lenient (null or missing
//! content, arguments as a JSON object) and keeps what the crate does not model: a message's
//! other members in [`Message::extra`], a part of another type or with members of its own as
//! [`ContentPart::Other`], both sent back verbatim. What one server needs on the
//! wire is written by the request builder (`openai_compat/request.rs`), which also holds
//! `Message`'s `Serialize` and `Deserialize` (they share the wire types, and keeping them there
//! lets the types import nothing from the wire code).

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tool::ToolCall;

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
    /// A part of a type this crate does not model (audio, files, …), or a text or image part
    /// with members of its own (`cache_control`), kept whole and sent verbatim.
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

impl ContentPart {
    /// The text of a text part: [`ContentPart::Text`], or a `{"type": "text", "text": …}` part
    /// kept as [`ContentPart::Other`] because it has members of its own (`cache_control`).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentPart::Text(text) => Some(text),
            ContentPart::Other(value) if value.get("type").and_then(Value::as_str) == Some("text") => {
                value.get("text").and_then(Value::as_str)
            }
            _ => None,
        }
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

/// A part reads as [`ContentPart::Text`] or [`ContentPart::Image`] only when those hold all
/// of it; a part with other members (`cache_control`, an unknown `detail`, …) is kept whole as
/// [`ContentPart::Other`] so it is sent as the caller wrote it.
impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Some(object) = value.as_object() else { return Ok(ContentPart::Other(value)) };
        let kind = object.get("type").and_then(Value::as_str);
        let part = match (kind, object.len()) {
            (Some("text"), 2) => {
                object.get("text").and_then(Value::as_str).map(|text| ContentPart::Text(text.to_owned()))
            }
            (Some("image_url"), 2) => match object.get("image_url") {
                // The older {"image_url": "…"}.
                Some(Value::String(url)) => Some(ContentPart::Image { url: url.clone(), detail: None }),
                Some(Value::Object(image)) => image_part(image),
                _ => None,
            },
            _ => None,
        };
        Ok(part.unwrap_or(ContentPart::Other(value)))
    }
}

/// `{"url", "detail"?}` as an image part, when it holds nothing else and a known detail.
fn image_part(image: &Map<String, Value>) -> Option<ContentPart> {
    let url = image.get("url")?.as_str()?;
    let detail = match image.get("detail") {
        None => None,
        Some(detail) => Some(ImageDetail::deserialize(detail).ok()?),
    };
    (image.len() == 1 + usize::from(detail.is_some())).then(|| ContentPart::Image { url: url.to_owned(), detail })
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
    /// The text of the content: the string itself, or the text parts joined without separator
    /// (a `{"type": "text", "text": …}` part kept as [`ContentPart::Other`] for its other
    /// members counts too).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Content::Text(text) => std::borrow::Cow::Borrowed(text),
            Content::Parts(parts) => {
                let mut out = String::new();
                for part in parts {
                    if let Some(text) = part.as_text() {
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

/// One message of a conversation.
///
/// Build them with [`Message::system`], [`Message::user`], [`Message::assistant`],
/// [`Message::tool`], or take a model's answer with [`ModelResponse::to_message`](crate::ModelResponse::to_message) so a tool
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
    /// The Responses API reasoning items of an assistant message (from
    /// [`ModelResponse::to_message`](crate::ModelResponse::to_message)), sent back as input
    /// items by a backend speaking the Responses API; the chat-completions wire ignores them.
    pub reasoning_items: Vec<super::ReasoningItem>,
    /// Members of the message this crate does not model (`cache_control`, `audio`, `refusal`,
    /// `prefix`, a vendor's fields, …), kept when a message is read from JSON and written
    /// verbatim (in the map's key order) after the known members on the chat-completions wire
    /// and in the stored shape.
    ///
    /// The members this crate models are never taken from here: `role`, `content`, `name`,
    /// `tool_calls`, `tool_call_id`, `reasoning_content`, `reasoning` (and the field a preset
    /// echoes reasoning in) are written from the typed fields, or left out when those are
    /// empty or a server's rule drops them (a server that rejects message names gets no
    /// `name`, whatever `extra` holds), so no key is written twice and the typed value wins.
    /// Reading JSON never puts those keys here.
    ///
    /// The Responses API input writer ignores `extra`: its items have another shape.
    pub extra: Map<String, Value>,
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
            reasoning_items: Vec::new(),
            extra: Map::new(),
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

    /// The same message carrying Responses API reasoning items (see
    /// [`reasoning_items`](Message::reasoning_items)).
    #[must_use]
    pub fn with_reasoning_items(mut self, items: Vec<super::ReasoningItem>) -> Message {
        self.reasoning_items = items;
        self
    }

    /// The same message with one more member the crate does not model, sent verbatim (see
    /// [`extra`](Message::extra); a member of that name already there is replaced).
    ///
    /// ```
    /// use mamba_backends::Message;
    /// let m = Message::user("hi").with_extra("cache_control", serde_json::json!({"type": "ephemeral"}));
    /// assert_eq!(serde_json::to_value(&m).unwrap()["cache_control"]["type"], "ephemeral");
    /// ```
    #[must_use]
    pub fn with_extra(mut self, key: impl Into<String>, value: Value) -> Message {
        self.extra.insert(key.into(), value);
        self
    }

    /// The message's text (text parts joined).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        self.content.text()
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

    #[test]
    fn parts_with_members_of_their_own_are_kept_whole() {
        use serde_json::json;
        let read = |v: Value| serde_json::from_value::<ContentPart>(v).unwrap();
        assert_eq!(read(json!({"type":"text","text":"t"})), ContentPart::text("t"));
        assert_eq!(
            read(json!({"type":"image_url","image_url":{"url":"u","detail":"low"}})),
            ContentPart::Image { url: "u".into(), detail: Some(ImageDetail::Low) }
        );
        assert_eq!(read(json!({"type":"image_url","image_url":"u"})), ContentPart::image_url("u"));
        for kept in [
            json!({"type":"text","text":"t","cache_control":{"type":"ephemeral"}}),
            json!({"type":"image_url","image_url":{"url":"u","detail":"original"}}),
            json!({"type":"image_url","image_url":{"url":"u","format":"image/png"}}),
            json!({"type":"image_url","image_url":{"url":"u"},"cache_control":{"type":"ephemeral"}}),
            json!({"type":"text","text":3}),
            json!("not an object"),
        ] {
            let part = read(kept.clone());
            assert_eq!(part, ContentPart::Other(kept.clone()));
            assert_eq!(serde_json::to_value(&part).unwrap(), kept);
        }
        // A kept text part still counts as text.
        let content = Content::Parts(vec![
            read(json!({"type":"text","text":"a","cache_control":{"type":"ephemeral"}})),
            ContentPart::text("b"),
            ContentPart::image_url("u"),
        ]);
        assert_eq!(content.text(), "ab");
        assert_eq!(ContentPart::image_url("u").as_text(), None);
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
