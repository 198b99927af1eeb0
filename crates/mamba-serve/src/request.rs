//! Reading client requests: the chat-completions and embeddings bodies, as leniently as the
//! library reads server answers. Pure: bytes in, the library's types out.

use mamba_backends::{
    embeddings::{EmbeddingInput, EmbeddingOptions, EncodingFormat},
    Message, RequestOptions, ResponseFormat, ToolChoice, ToolDefinition,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A chat-completions request, read.
#[derive(Debug)]
pub(crate) struct ChatRequest {
    /// The model asked for, if any.
    pub(crate) model: Option<String>,
    pub(crate) messages: Vec<Message>,
    pub(crate) options: RequestOptions,
    pub(crate) stream: bool,
    /// `stream_options.include_usage`: one last chunk with no choices and the usage.
    pub(crate) include_usage: bool,
}

#[derive(Deserialize)]
struct RawChat {
    #[serde(default)]
    model: Option<String>,
    messages: Option<Vec<Value>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<Value>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

pub(crate) fn invalid(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::invalid_request(message).with_param(param)
}

/// Reads a chat-completions body. Fields this crate does not know (`n`, `user`, `logprobs`,
/// `top_k`, …) are kept in [`RequestOptions::extra`] and reach the upstream as they came.
pub(crate) fn parse_chat(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let raw: RawChat = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let Some(raw_messages) = raw.messages else {
        return Err(invalid("'messages' is a required property", "messages"));
    };
    if raw_messages.is_empty() {
        return Err(invalid("'messages' must contain at least one message", "messages"));
    }
    let mut messages = Vec::with_capacity(raw_messages.len());
    for (i, value) in raw_messages.into_iter().enumerate() {
        // `developer` is the newer name of the system role.
        let value = match value {
            Value::Object(mut map) => {
                if map.get("role").and_then(Value::as_str) == Some("developer") {
                    map.insert("role".into(), Value::String("system".into()));
                }
                Value::Object(map)
            }
            other => other,
        };
        let message = Message::deserialize(value)
            .map_err(|e| invalid(format!("invalid message at messages[{i}]: {e}"), &format!("messages[{i}]")))?;
        messages.push(message);
    }

    let mut options = RequestOptions::new();
    options.temperature = raw.temperature;
    options.max_tokens = raw.max_completion_tokens.or(raw.max_tokens);
    if let Some(tools) = raw.tools {
        for (i, tool) in tools.into_iter().enumerate() {
            let tool = ToolDefinition::deserialize(tool)
                .map_err(|e| invalid(format!("invalid tool at tools[{i}]: {e}"), &format!("tools[{i}]")))?;
            options.tools.push(tool);
        }
    }
    options.tool_choice = raw.tool_choice.as_ref().map(parse_tool_choice).transpose()?;
    options.parallel_tool_calls = raw.parallel_tool_calls;
    options.response_format = raw.response_format.as_ref().map(parse_response_format).transpose()?;
    options.stop = match raw.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(invalid("'stop' must be a string or an array of strings", "stop")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("'stop' must be a string or an array of strings", "stop")),
    };
    options.seed = raw.seed;
    options.top_p = raw.top_p;
    options.frequency_penalty = raw.frequency_penalty;
    options.presence_penalty = raw.presence_penalty;
    options.extra = raw.extra;

    let include_usage =
        raw.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    Ok(ChatRequest {
        model: raw.model.filter(|m| !m.is_empty()),
        messages,
        options,
        stream: raw.stream.unwrap_or(false),
        include_usage,
    })
}

pub(crate) fn parse_tool_choice(value: &Value) -> Result<ToolChoice, ApiError> {
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(invalid(
                format!("invalid tool_choice {other:?}: use auto, none, required or a function"),
                "tool_choice",
            )),
        },
        Value::Object(map) => {
            let name = map
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| map.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice names no function", "tool_choice"))?;
            Ok(ToolChoice::Function(name.to_owned()))
        }
        _ => Err(invalid("'tool_choice' must be a string or an object", "tool_choice")),
    }
}

fn parse_response_format(value: &Value) -> Result<ResponseFormat, ApiError> {
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("text");
    match kind {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let spec = value.get("json_schema").unwrap_or(&Value::Null);
            let name = spec.get("name").and_then(Value::as_str).unwrap_or("response");
            let schema = spec.get("schema").cloned().unwrap_or_else(|| serde_json::json!({}));
            let mut format = ResponseFormat::json_schema(name, schema);
            if let ResponseFormat::JsonSchema { strict, .. } = &mut format {
                *strict = spec.get("strict").and_then(Value::as_bool);
            }
            Ok(format)
        }
        other => Err(invalid(format!("invalid response_format type {other:?}"), "response_format")),
    }
}

pub(crate) fn json_error(e: &serde_json::Error) -> ApiError {
    if e.is_syntax() || e.is_eof() {
        ApiError::invalid_request(format!("the request body is not valid JSON: {e}"))
    } else {
        ApiError::invalid_request(format!("invalid request: {e}"))
    }
}

/// An embeddings request, read.
#[derive(Debug)]
pub(crate) struct EmbeddingsRequest {
    pub(crate) model: Option<String>,
    pub(crate) inputs: Vec<EmbeddingInput>,
    pub(crate) options: EmbeddingOptions,
    /// Whether the client asked for base64 vectors (the OpenAI SDKs do by default).
    pub(crate) base64: bool,
}

#[derive(Deserialize)]
struct RawEmbeddings {
    #[serde(default)]
    model: Option<String>,
    input: Option<Value>,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Reads an embeddings body: `input` as a string, strings, token ids, or lists of token ids.
pub(crate) fn parse_embeddings(body: &[u8]) -> Result<EmbeddingsRequest, ApiError> {
    let raw: RawEmbeddings = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let bad = || invalid("'input' must be a string, an array of strings, or token ids", "input");
    let inputs = match raw.input.ok_or_else(|| invalid("'input' is a required property", "input"))? {
        Value::String(s) => vec![EmbeddingInput::Text(s)],
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => {
            vec![EmbeddingInput::Tokens(token_ids(&items).ok_or_else(bad)?)]
        }
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(EmbeddingInput::Text(s)),
                Value::Array(ids) => token_ids(&ids).map(EmbeddingInput::Tokens).ok_or_else(bad),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    if inputs.is_empty() {
        return Err(invalid("'input' must not be empty", "input"));
    }
    let base64 = match raw.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(format!("invalid encoding_format {other:?}: use float or base64"), "encoding_format"))
        }
    };
    let mut options = EmbeddingOptions::new();
    options.dimensions = raw.dimensions;
    // Vectors are asked of the upstream as floats and encoded here when the client wants base64.
    options.encoding_format = Some(EncodingFormat::Float);
    options.user = raw.user;
    options.extra = raw.extra;
    Ok(EmbeddingsRequest { model: raw.model.filter(|m| !m.is_empty()), inputs, options, base64 })
}

fn token_ids(items: &[Value]) -> Option<Vec<u32>> {
    items.iter().map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok())).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mamba_backends::message::{ContentPart, Role};

    #[test]
    fn reads_a_full_request_and_keeps_unknown_fields() {
        let body = br#"{"model":"m","messages":[
            {"role":"developer","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hi "},{"type":"image_url","image_url":{"url":"data:x"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
            "stream":true,"stream_options":{"include_usage":true},"temperature":0.5,"max_completion_tokens":9,
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
            "tool_choice":{"type":"function","function":{"name":"f"}},"stop":"END","top_k":40,"n":1,"user":"u"}"#;
        let r = parse_chat(body).unwrap();
        assert_eq!(r.model.as_deref(), Some("m"));
        assert!(r.stream && r.include_usage);
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.messages[0].role, Role::System);
        assert!(
            matches!(&r.messages[1].content, mamba_backends::message::Content::Parts(p) if matches!(p[1], ContentPart::Image { .. }))
        );
        assert_eq!(r.messages[2].tool_calls[0].name, "f");
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(r.options.temperature, Some(0.5));
        assert_eq!(r.options.max_tokens, Some(9));
        assert_eq!(r.options.tool_choice, Some(ToolChoice::Function("f".into())));
        assert_eq!(r.options.stop, vec!["END".to_owned()]);
        assert_eq!(r.options.extra.get("top_k"), Some(&serde_json::json!(40)));
        assert_eq!(r.options.extra.get("user"), Some(&serde_json::json!("u")));
        assert!(!r.options.extra.contains_key("stream_options"));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert_eq!(parse_chat(b"{not json").unwrap_err().status, 400);
        let e = parse_chat(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = parse_chat(br#"{"messages":[{"role":"wizard","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
        let e = parse_chat(br#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#).unwrap_err();
        assert!(e.message.contains("temperature") || e.message.contains("invalid"), "{}", e.message);
        let e = parse_chat(br#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"maybe"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
    }

    #[test]
    fn embeddings_inputs_in_every_shape() {
        let r = parse_embeddings(br#"{"model":"e","input":"one","encoding_format":"base64"}"#).unwrap();
        assert_eq!(r.inputs, vec![EmbeddingInput::Text("one".into())]);
        assert!(r.base64);
        let r = parse_embeddings(br#"{"input":["a","b"]}"#).unwrap();
        assert_eq!(r.inputs.len(), 2);
        let r = parse_embeddings(br#"{"input":[1,2,3]}"#).unwrap();
        assert_eq!(r.inputs, vec![EmbeddingInput::Tokens(vec![1, 2, 3])]);
        let r = parse_embeddings(br#"{"input":[[1],[2,3]]}"#).unwrap();
        assert_eq!(r.inputs.len(), 2);
        assert_eq!(parse_embeddings(br#"{"input":{}}"#).unwrap_err().param.as_deref(), Some("input"));
        assert_eq!(parse_embeddings(br#"{"input":[]}"#).unwrap_err().status, 400);
    }
}
