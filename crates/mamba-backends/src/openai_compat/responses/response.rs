//! A whole Responses API answer (`object: "response"`) to a [`ModelResponse`]. Pure.
//!
//! Read leniently: any field may be missing, null or of another type; unknown output items
//! are skipped. The same reader serves the response inside `response.completed` events.

use bytes::Bytes;
use serde_json::Value;

use crate::classify;
use crate::error::Error;
use crate::openai_compat::wire::decode_error;
use crate::think::split_all;
use crate::types::{
    infer_finish_reason, normalise_tool_call, FinishReason, ModelResponse, ReasoningItem, ToolCall, Usage,
};

/// Parses a whole (non-streaming) answer of `POST /responses`.
pub(crate) fn parse_response(body: Bytes, think_tags: bool) -> Result<ModelResponse, Error> {
    let value: Value = serde_json::from_slice(&body).map_err(|e| decode_error("the response", &body, e))?;
    let parts = read_response(&value).map_err(|e| e.with_body(String::from_utf8_lossy(&body)))?;
    let (content, tag_reasoning) = split_all(&parts.text, think_tags);
    let mut content = content;
    if content.is_empty() && !parts.refusal.is_empty() {
        content = parts.refusal;
    }
    let mut reasoning = parts.reasoning;
    reasoning.push_str(&tag_reasoning);
    let mut tool_calls = parts.tool_calls;
    for (i, call) in tool_calls.iter_mut().enumerate() {
        normalise_tool_call(call, i);
    }
    Ok(ModelResponse {
        content,
        reasoning: (!reasoning.is_empty()).then_some(reasoning),
        finish_reason: infer_finish_reason(parts.finish, !tool_calls.is_empty()),
        tool_calls,
        usage: parts.usage,
        model: parts.model,
        id: parts.id,
        reasoning_items: parts.reasoning_items,
        raw: None,
    }
    .with_raw(body))
}

/// What a response object says.
#[derive(Debug, Default)]
pub(crate) struct ResponseParts {
    pub(crate) id: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) text: String,
    pub(crate) refusal: String,
    pub(crate) reasoning: String,
    pub(crate) reasoning_items: Vec<ReasoningItem>,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) usage: Option<Usage>,
    /// From `status` and `incomplete_details`; `None` while in progress.
    pub(crate) finish: Option<FinishReason>,
}

fn str_of<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn count_of(value: Option<&Value>, key: &str) -> Option<u64> {
    let v = value?.get(key)?;
    v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// The error a response object carries: a non-null `error`, or `status: "failed"`.
pub(crate) fn response_error(value: &Value) -> Option<Error> {
    let error = value.get("error").filter(|e| !e.is_null());
    let failed = str_of(value, "status") == Some("failed");
    match (error, failed) {
        (Some(error), _) => Some(classify::from_stream_frame(&serde_json::json!({ "error": error }))),
        (None, true) => Some(Error::new(crate::ErrorKind::Server, "the server reports that the response failed")),
        (None, false) => None,
    }
}

/// The usage object of the Responses API (`input_tokens`, `output_tokens`, their details).
pub(crate) fn read_usage(usage: Option<&Value>) -> Option<Usage> {
    let usage = usage.filter(|u| u.is_object())?;
    let input = count_of(Some(usage), "input_tokens").or_else(|| count_of(Some(usage), "prompt_tokens"));
    let output = count_of(Some(usage), "output_tokens").or_else(|| count_of(Some(usage), "completion_tokens"));
    let total = count_of(Some(usage), "total_tokens");
    if input.is_none() && output.is_none() && total.is_none() {
        return None;
    }
    let (input, output) = (input.unwrap_or(0), output.unwrap_or(0));
    let mut u = Usage::new(input, output);
    u.total_tokens = total.unwrap_or(input.saturating_add(output));
    u.reasoning_tokens = count_of(usage.get("output_tokens_details"), "reasoning_tokens");
    u.cached_input_tokens = count_of(usage.get("input_tokens_details"), "cached_tokens");
    Some(u)
}

/// `status` and `incomplete_details` as a finish reason.
pub(crate) fn read_finish(value: &Value) -> Option<FinishReason> {
    match str_of(value, "status")? {
        "completed" => Some(FinishReason::Stop),
        "incomplete" => {
            let reason = value.get("incomplete_details").and_then(|d| str_of(d, "reason"));
            Some(match reason {
                Some("max_output_tokens" | "max_tokens" | "length") => FinishReason::Length,
                Some("content_filter") => FinishReason::ContentFilter,
                Some(other) => FinishReason::Other(other.to_owned()),
                None => FinishReason::Length,
            })
        }
        "cancelled" | "failed" => Some(FinishReason::Error),
        _ => None,
    }
}

/// A reasoning output item, when it has an id.
pub(crate) fn read_reasoning_item(item: &Value, text: &mut String) -> Option<ReasoningItem> {
    let mut out = ReasoningItem::new(str_of(item, "id").unwrap_or(""));
    if let Some(summary) = item.get("summary").and_then(Value::as_array) {
        for part in summary {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                text.push_str(t);
                out.summary.push(t.to_owned());
            }
        }
    }
    if let Some(content) = item.get("content").and_then(Value::as_array) {
        for part in content {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                text.push_str(t);
            }
        }
    }
    out.encrypted_content = str_of(item, "encrypted_content").map(str::to_owned);
    (!out.id.is_empty()).then_some(out)
}

/// A function_call output item.
pub(crate) fn read_function_call(item: &Value) -> ToolCall {
    let arguments = match item.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    ToolCall::new(
        str_of(item, "call_id").or_else(|| str_of(item, "id")).unwrap_or(""),
        str_of(item, "name").unwrap_or(""),
        arguments,
    )
}

/// Reads a response object; its error when it carries one.
pub(crate) fn read_response(value: &Value) -> Result<ResponseParts, Error> {
    if let Some(error) = response_error(value) {
        return Err(error);
    }
    let mut parts = ResponseParts {
        id: str_of(value, "id").map(str::to_owned),
        model: str_of(value, "model").map(str::to_owned),
        usage: read_usage(value.get("usage")),
        finish: read_finish(value),
        ..ResponseParts::default()
    };
    for item in value.get("output").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        match str_of(item, "type") {
            Some("message") => match item.get("content") {
                Some(Value::String(text)) => parts.text.push_str(text),
                Some(Value::Array(content)) => {
                    for part in content {
                        match str_of(part, "type") {
                            Some("output_text" | "text") => {
                                parts.text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""))
                            }
                            Some("refusal") => {
                                parts.refusal.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or(""))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
            Some("reasoning") => {
                if let Some(r) = read_reasoning_item(item, &mut parts.reasoning) {
                    parts.reasoning_items.push(r);
                }
            }
            Some("function_call") => parts.tool_calls.push(read_function_call(item)),
            _ => {}
        }
    }
    // The convenience field some servers add, when no message item carried the text.
    if parts.text.is_empty() {
        if let Some(text) = value.get("output_text").and_then(Value::as_str) {
            parts.text.push_str(text);
        }
    }
    if parts.finish == Some(FinishReason::Stop) && !parts.tool_calls.is_empty() {
        parts.finish = Some(FinishReason::ToolCalls);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn complete(json: &str) -> ModelResponse {
        parse_response(Bytes::from(json.to_owned()), true).unwrap()
    }

    #[test]
    fn text_answer_with_usage_details() {
        let r = complete(
            r#"{"id":"resp_1","object":"response","status":"completed","model":"gpt-5-mini","output":[
                {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Thinking."}],"encrypted_content":"gAAA"},
                {"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hello!","annotations":[]}]}],
               "usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":4},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":27},"total_tokens":39}}"#,
        );
        assert_eq!(r.content, "Hello!");
        assert_eq!(r.reasoning.as_deref(), Some("Thinking."));
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
        assert_eq!(r.id.as_deref(), Some("resp_1"));
        assert_eq!(r.model.as_deref(), Some("gpt-5-mini"));
        let u = r.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.total_tokens), (9, 30, 39));
        assert_eq!((u.reasoning_tokens, u.cached_input_tokens), (Some(27), Some(4)));
        assert_eq!(
            r.reasoning_items,
            vec![ReasoningItem::new("rs_1").with_summary("Thinking.").with_encrypted_content("gAAA")]
        );
        assert_eq!(r.raw_json().unwrap()["object"], "response");
        let m = r.to_message();
        assert_eq!(m.reasoning_items.len(), 1);
    }

    #[test]
    fn function_calls_and_refusals() {
        let r = complete(
            r#"{"status":"completed","output":[{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"},
               {"type":"function_call","call_id":null,"name":"g","arguments":{"a":1}}]}"#,
        );
        assert_eq!(r.tool_calls[0], ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}"));
        assert_eq!(r.tool_calls[1], ToolCall::new("call_1", "g", "{\"a\":1}"));
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        let r = complete(
            r#"{"status":"completed","output":[{"type":"message","content":[{"type":"refusal","refusal":"No."}]}]}"#,
        );
        assert_eq!(r.content, "No.");
    }

    #[test]
    fn incomplete_and_in_progress() {
        let r = complete(r#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[]}"#);
        assert_eq!(r.finish_reason, Some(FinishReason::Length));
        let r = complete(r#"{"status":"incomplete","incomplete_details":{"reason":"content_filter"}}"#);
        assert_eq!(r.finish_reason, Some(FinishReason::ContentFilter));
        let r = complete(r#"{"status":null,"output":null,"usage":"n/a","output_text":"x"}"#);
        assert_eq!((r.content.as_str(), r.finish_reason, r.usage), ("x", None, None));
        let r = complete(r#"{"status":"completed","output":[{"type":"message","content":"<think>hm</think>ok"}]}"#);
        assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("ok", Some("hm")));
    }

    #[test]
    fn errors_are_classified() {
        let err = parse_response(
            Bytes::from_static(
                br#"{"status":"failed","error":{"code":"rate_limit_exceeded","message":"Rate limit reached"}}"#,
            ),
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
        let err = parse_response(Bytes::from_static(br#"{"status":"failed"}"#), true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Server);
        let err = parse_response(Bytes::from_static(b"<html>"), true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
    }
}
