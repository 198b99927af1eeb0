//! Reading `POST /v1/responses` bodies (OpenAI's Responses API) into the library's messages and
//! options, as leniently as the chat reader: `input` as a string or as items (messages with
//! text or input parts, `function_call`, `function_call_output`, `reasoning`), `instructions`
//! as a leading system message, flat function tools, `text.format`. Pure.

use mamba_backends::{
    message::{Content, ContentPart, ImageDetail, ReasoningItem, Role},
    options::{ReasoningEffort, ReasoningSummary},
    Message, RequestOptions, ResponseFormat, ToolCall, ToolDefinition,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::request::{invalid, json_error, parse_tool_choice};

/// A Responses request, read.
#[derive(Debug)]
pub(crate) struct ResponsesRequest {
    pub(crate) model: Option<String>,
    pub(crate) messages: Vec<Message>,
    pub(crate) options: RequestOptions,
    pub(crate) stream: bool,
    /// What the answer echoes back (`instructions`, `tools`, `tool_choice`, …).
    pub(crate) echo: Echo,
}

/// The request's settings as a response object repeats them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    pub(crate) instructions: Option<String>,
    pub(crate) max_output_tokens: Option<u32>,
    pub(crate) temperature: Option<f64>,
    pub(crate) top_p: Option<f64>,
    pub(crate) tools: Vec<Value>,
    pub(crate) tool_choice: Option<Value>,
    pub(crate) parallel_tool_calls: Option<bool>,
    pub(crate) text: Option<Value>,
    pub(crate) metadata: Option<Value>,
}

#[derive(Deserialize)]
struct RawResponses {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    previous_response_id: Option<Value>,
    #[serde(default)]
    background: Option<bool>,
    // Responses-only settings with no meaning for an upstream chat server: read and dropped.
    #[serde(default)]
    store: Option<Value>,
    #[serde(default)]
    include: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    truncation: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Reads a Responses body. Unknown fields are kept in [`RequestOptions::extra`].
pub(crate) fn parse_responses(body: &[u8]) -> Result<ResponsesRequest, ApiError> {
    let raw: RawResponses = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    if raw.previous_response_id.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(invalid(
            "this server keeps no responses: send the whole conversation in 'input' instead of 'previous_response_id'",
            "previous_response_id",
        )
        .with_code("unsupported"));
    }
    if raw.background == Some(true) {
        return Err(
            invalid("background responses are not supported by this server", "background").with_code("unsupported")
        );
    }
    let _ = (raw.store, raw.include, raw.truncation, raw.stream_options);

    let mut messages = Vec::new();
    let instructions = match raw.instructions {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(invalid("'instructions' must be a string", "instructions")),
    };
    if let Some(text) = instructions.as_ref().filter(|s| !s.is_empty()) {
        messages.push(Message::system(text.clone()));
    }
    match raw.input {
        None | Some(Value::Null) => return Err(invalid("'input' is a required property", "input")),
        Some(Value::String(s)) => messages.push(Message::user(s)),
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                read_item(item, &mut messages)
                    .map_err(|m| invalid(format!("input[{i}]: {m}"), &format!("input[{i}]")))?;
            }
        }
        Some(_) => return Err(invalid("'input' must be a string or an array of input items", "input")),
    }
    if !messages.iter().any(|m| m.role != Role::System) {
        return Err(invalid("'input' must contain at least one item", "input"));
    }

    let mut options = RequestOptions::new();
    options.temperature = raw.temperature;
    options.top_p = raw.top_p;
    options.max_tokens = raw.max_output_tokens;
    for (i, tool) in raw.tools.unwrap_or_default().iter().enumerate() {
        options.tools.push(read_tool(tool).map_err(|m| invalid(format!("tools[{i}]: {m}"), &format!("tools[{i}]")))?);
    }
    options.tool_choice = raw.tool_choice.as_ref().map(parse_tool_choice).transpose()?;
    options.parallel_tool_calls = raw.parallel_tool_calls;
    if let Some(format) = raw.text.as_ref().and_then(|t| t.get("format")).filter(|f| !f.is_null()) {
        options.response_format = Some(read_format(format)?);
    }
    if let Some(reasoning) = raw.reasoning.as_ref().filter(|r| r.is_object()) {
        options.reasoning_effort = match reasoning.get("effort").and_then(Value::as_str) {
            None => None,
            Some("none") => Some(ReasoningEffort::None),
            Some("minimal") => Some(ReasoningEffort::Minimal),
            Some("low") => Some(ReasoningEffort::Low),
            Some("medium") => Some(ReasoningEffort::Medium),
            Some("high") => Some(ReasoningEffort::High),
            Some(other) => return Err(invalid(format!("invalid reasoning.effort {other:?}"), "reasoning.effort")),
        };
        options.reasoning_summary = match reasoning.get("summary").and_then(Value::as_str) {
            Some("auto") => Some(ReasoningSummary::Auto),
            Some("concise") => Some(ReasoningSummary::Concise),
            Some("detailed") => Some(ReasoningSummary::Detailed),
            _ => None,
        };
    }
    options.extra = raw.extra;

    // The tools as the answer repeats them: the Responses shape, whatever shape came in.
    let tools = options
        .tools
        .iter()
        .map(|t| {
            let mut v =
                serde_json::json!({"type": "function", "name": t.name, "parameters": t.parameters, "strict": t.strict});
            if let Some(d) = &t.description {
                v["description"] = Value::String(d.clone());
            }
            v
        })
        .collect();
    let echo = Echo {
        instructions,
        max_output_tokens: raw.max_output_tokens,
        temperature: raw.temperature,
        top_p: raw.top_p,
        tools,
        tool_choice: raw.tool_choice,
        parallel_tool_calls: raw.parallel_tool_calls,
        text: raw.text,
        metadata: raw.metadata.filter(Value::is_object),
    };
    Ok(ResponsesRequest {
        model: raw.model.filter(|m| !m.is_empty()),
        messages,
        options,
        stream: raw.stream.unwrap_or(false),
        echo,
    })
}

fn str_field<'v>(item: &'v Value, key: &str) -> Option<&'v str> {
    item.get(key).and_then(Value::as_str)
}

/// The assistant message the next assistant-side item belongs to: the last message when it is
/// an assistant's that `fits`, else a new empty one.
fn assistant_turn(messages: &mut Vec<Message>, fits: impl Fn(&Message) -> bool) -> &mut Message {
    let reuse = messages.last().is_some_and(|m| m.role == Role::Assistant && fits(m));
    if !reuse {
        messages.push(Message::assistant(""));
    }
    let last = messages.len() - 1;
    &mut messages[last]
}

fn read_item(item: Value, messages: &mut Vec<Message>) -> Result<(), String> {
    if !item.is_object() {
        return Err("an input item must be an object".into());
    }
    let kind = str_field(&item, "type").unwrap_or(if item.get("role").is_some() { "message" } else { "" });
    match kind {
        "message" => {
            let role = match str_field(&item, "role") {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("system" | "developer") => Role::System,
                Some(other) => return Err(format!("unknown role {other:?}")),
                None => return Err("a message needs a 'role'".into()),
            };
            let content = read_content(item.get("content"))?;
            if role == Role::Assistant {
                let text = match &content {
                    Content::Text(t) => t.clone(),
                    Content::Parts(_) => Message::new(Role::Assistant, content.clone()).text().into_owned(),
                };
                // Reasoning items before an assistant's message belong to the same turn.
                let turn = assistant_turn(messages, |m| m.content.is_empty() && m.tool_calls.is_empty());
                turn.content = Content::Text(text);
            } else {
                messages.push(Message::new(role, content));
            }
        }
        "function_call" => {
            let name = str_field(&item, "name").ok_or("a function_call needs a 'name'")?;
            let call_id = str_field(&item, "call_id").or_else(|| str_field(&item, "id")).unwrap_or("");
            let arguments = match item.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => "{}".to_owned(),
                Some(other) => other.to_string(),
            };
            assistant_turn(messages, |_| true).tool_calls.push(ToolCall::new(call_id, name, arguments));
        }
        "function_call_output" => {
            let call_id = str_field(&item, "call_id").ok_or("a function_call_output needs a 'call_id'")?;
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(_)) => {
                    Message::new(Role::User, read_content(item.get("output"))?).text().into_owned()
                }
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            messages.push(Message::tool(call_id, output));
        }
        "reasoning" => {
            let mut reasoning = ReasoningItem::new(str_field(&item, "id").unwrap_or(""));
            for part in item.get("summary").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(text) = str_field(part, "text") {
                    reasoning = reasoning.with_summary(text);
                }
            }
            reasoning.encrypted_content = str_field(&item, "encrypted_content").map(str::to_owned);
            let turn = assistant_turn(messages, |m| m.content.is_empty() && m.tool_calls.is_empty());
            turn.reasoning_items.push(reasoning);
        }
        "" => return Err("an input item needs a 'type'".into()),
        other => return Err(format!("input items of type {other:?} are not supported by this server")),
    }
    Ok(())
}

fn read_content(content: Option<&Value>) -> Result<Content, String> {
    match content {
        Some(Value::String(s)) => Ok(Content::Text(s.clone())),
        None | Some(Value::Null) => Ok(Content::Text(String::new())),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                let kind = str_field(part, "type").unwrap_or("");
                match kind {
                    "input_text" | "output_text" | "text" | "refusal" => {
                        let text = str_field(part, "text").or_else(|| str_field(part, "refusal")).unwrap_or("");
                        out.push(ContentPart::text(text));
                    }
                    "input_image" => {
                        let url = match part.get("image_url") {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Object(o)) => o.get("url").and_then(Value::as_str).unwrap_or("").to_owned(),
                            _ => return Err("input_image needs an 'image_url' (file ids are not supported)".into()),
                        };
                        let detail = match str_field(part, "detail") {
                            Some("low") => Some(ImageDetail::Low),
                            Some("high") => Some(ImageDetail::High),
                            Some("auto") => Some(ImageDetail::Auto),
                            _ => None,
                        };
                        out.push(ContentPart::Image { url, detail });
                    }
                    _ => out.push(ContentPart::Other(part.clone())),
                }
            }
            // Text-only parts read as plain text: every upstream takes that.
            if out.iter().all(|p| matches!(p, ContentPart::Text(_))) {
                let text: String = out
                    .iter()
                    .filter_map(|p| if let ContentPart::Text(t) = p { Some(t.as_str()) } else { None })
                    .collect();
                return Ok(Content::Text(text));
            }
            Ok(Content::Parts(out))
        }
        Some(_) => Err("'content' must be a string or an array of parts".into()),
    }
}

/// A tool in the Responses shape (flat) or, leniently, the chat shape (`function: {…}`).
fn read_tool(tool: &Value) -> Result<ToolDefinition, String> {
    let kind = str_field(tool, "type").unwrap_or("function");
    if kind != "function" {
        return Err(format!("tools of type {kind:?} are not supported by this server; use function tools"));
    }
    let spec = tool.get("function").filter(|f| f.is_object()).unwrap_or(tool);
    let name = str_field(spec, "name").filter(|n| !n.is_empty()).ok_or("a function tool needs a 'name'")?;
    let parameters = spec
        .get("parameters")
        .filter(|p| !p.is_null())
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
    let mut def = ToolDefinition::function(name, "", parameters);
    def.description = str_field(spec, "description").map(str::to_owned);
    def.strict = spec.get("strict").and_then(Value::as_bool);
    Ok(def)
}

/// `text.format` in the Responses shape (`name`, `schema` at the top of the format).
fn read_format(format: &Value) -> Result<ResponseFormat, ApiError> {
    match str_field(format, "type").unwrap_or("text") {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let spec = format.get("json_schema").filter(|s| s.is_object()).unwrap_or(format);
            let name = str_field(spec, "name").unwrap_or("response");
            let schema = spec.get("schema").cloned().unwrap_or_else(|| serde_json::json!({}));
            let mut out = ResponseFormat::json_schema(name, schema);
            if let ResponseFormat::JsonSchema { strict, .. } = &mut out {
                *strict = spec.get("strict").and_then(Value::as_bool);
            }
            Ok(out)
        }
        other => Err(invalid(format!("invalid text.format type {other:?}"), "text.format")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mamba_backends::ToolChoice;
    use serde_json::json;

    #[test]
    fn a_string_input_and_instructions() {
        let r = parse_responses(br#"{"model":"m","input":"hi","instructions":"be brief","max_output_tokens":7,"stream":true,"store":false,"top_k":3}"#).unwrap();
        assert_eq!(r.model.as_deref(), Some("m"));
        assert!(r.stream);
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(r.messages[0].text(), "be brief");
        assert_eq!(r.messages[1].text(), "hi");
        assert_eq!(r.options.max_tokens, Some(7));
        assert_eq!(r.options.extra.get("top_k"), Some(&json!(3)));
        assert!(!r.options.extra.contains_key("store"));
        assert_eq!(r.echo.instructions.as_deref(), Some("be brief"));
    }

    #[test]
    fn items_become_a_conversation() {
        let body = json!({"input": [
            {"role": "developer", "content": "sys"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "what is "}, {"type": "input_image", "image_url": "data:x", "detail": "low"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}], "encrypted_content": "enc"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling", "annotations": []}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\":1}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "ok"}]},
            {"role": "user", "content": "thanks"}],
            "tools": [{"type": "function", "name": "f", "description": "does f", "parameters": {"type": "object"}, "strict": true},
                      {"type": "function", "function": {"name": "g"}}],
            "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": false,
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
            "reasoning": {"effort": "low"}, "temperature": 0.2, "top_p": 0.5});
        let r = parse_responses(body.to_string().as_bytes()).unwrap();
        let m = &r.messages;
        assert_eq!(m.len(), 6, "{m:#?}");
        assert_eq!(m[0].role, Role::System);
        assert!(
            matches!(&m[1].content, Content::Parts(p) if matches!(&p[1], ContentPart::Image { detail: Some(ImageDetail::Low), .. }))
        );
        assert_eq!(m[2].role, Role::Assistant);
        assert_eq!(m[2].text(), "calling");
        assert_eq!(m[2].reasoning_items[0].id, "rs_1");
        assert_eq!(m[2].reasoning_items[0].encrypted_content.as_deref(), Some("enc"));
        assert_eq!(m[2].tool_calls.len(), 2);
        assert_eq!(m[2].tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(m[4].text(), "ok");
        assert_eq!(m[5].text(), "thanks");
        let o = &r.options;
        assert_eq!(o.tools.len(), 2);
        assert_eq!(o.tools[0].description.as_deref(), Some("does f"));
        assert_eq!(o.tools[0].strict, Some(true));
        assert_eq!(o.tools[1].name, "g");
        assert_eq!(o.tool_choice, Some(ToolChoice::Function("f".into())));
        assert_eq!(o.parallel_tool_calls, Some(false));
        assert!(
            matches!(&o.response_format, Some(ResponseFormat::JsonSchema { name, strict: Some(true), .. }) if name == "out")
        );
        assert_eq!(o.reasoning_effort, Some(ReasoningEffort::Low));
        assert_eq!((o.temperature, o.top_p), (Some(0.2), Some(0.5)));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert_eq!(parse_responses(b"{").unwrap_err().status, 400);
        assert_eq!(parse_responses(br#"{"model":"m"}"#).unwrap_err().param.as_deref(), Some("input"));
        assert_eq!(parse_responses(br#"{"input":[]}"#).unwrap_err().param.as_deref(), Some("input"));
        let e = parse_responses(br#"{"input":[{"role":"wizard","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[0]"));
        let e = parse_responses(br#"{"input":"x","tools":[{"type":"web_search"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0]"));
        let e = parse_responses(br#"{"input":"x","previous_response_id":"resp_1"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("previous_response_id"));
        let e = parse_responses(br#"{"input":"x","text":{"format":{"type":"yaml"}}}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("text.format"));
        let r = parse_responses(br#"{"input":"x","text":{"format":{"type":"json_object"}}}"#).unwrap();
        assert_eq!(r.options.response_format, Some(ResponseFormat::JsonObject));
    }
}
