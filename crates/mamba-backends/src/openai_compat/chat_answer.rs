//! A whole (non-streaming) chat-completion answer: wire bytes to [`ModelResponse`]. Pure.

use bytes::Bytes;

use super::scan::wire_response;
use super::wire::{decode_error, WireFunction, WireMessage};
use crate::classify;
use crate::error::Error;
use crate::think::split_all;
use crate::types::{infer_finish_reason, normalise_tool_call, FinishReason, ModelResponse, ToolCall};

/// Parses a whole (non-streaming) answer. `think_tags` splits a leading `<think>` block off the
/// content into the reasoning.
pub(crate) fn parse_response(body: Bytes, think_tags: bool) -> Result<ModelResponse, Error> {
    let wire = wire_response(&body).map_err(|e| decode_error("the response", &body, e))?;
    if let Some(error) = wire.error.as_ref().filter(|e| !e.is_null()) {
        let value = serde_json::json!({ "error": error });
        return Err(classify::from_stream_frame(&value).with_body(String::from_utf8_lossy(&body)));
    }
    let Some(choice) = wire.first_choice() else {
        return Err(Error::decode("the response has no choices").with_body(String::from_utf8_lossy(&body)));
    };
    let empty = WireMessage::empty();
    let message = choice.message.0.as_ref().or(choice.delta.0.as_ref()).unwrap_or(&empty);

    let text = message.content.text.as_deref().or(choice.text.0.as_deref()).unwrap_or("");
    let (mut content, tag_reasoning) = split_all(text, think_tags);
    if content.is_empty() {
        if let Some(refusal) = message.refusal.non_empty() {
            content.push_str(refusal);
        }
    }
    let mut reasoning = String::new();
    if let Some(r) = message.reasoning_text() {
        reasoning.push_str(r);
    }
    if let Some(thinking) = &message.content.thinking {
        reasoning.push_str(thinking);
    }
    reasoning.push_str(&tag_reasoning);

    let mut tool_calls: Vec<ToolCall> = message
        .tool_calls
        .0
        .iter()
        .map(|c| {
            let f = c.function.0.as_ref();
            ToolCall {
                id: c.id.non_empty().unwrap_or("").to_owned(),
                name: f.and_then(|f| f.name.non_empty()).unwrap_or("").to_owned(),
                arguments: f.and_then(|f| f.arguments.0.as_deref()).unwrap_or("").to_owned(),
            }
        })
        .collect();
    if tool_calls.is_empty() {
        if let Some(call) = legacy_function_call(message.function_call.0.as_ref()) {
            tool_calls.push(call);
        }
    }
    for (i, call) in tool_calls.iter_mut().enumerate() {
        normalise_tool_call(call, i);
    }

    let finish = choice.finish_reason.0.as_deref().and_then(FinishReason::parse);
    Ok(ModelResponse {
        content,
        reasoning: (!reasoning.is_empty()).then_some(reasoning),
        finish_reason: infer_finish_reason(finish, !tool_calls.is_empty()),
        tool_calls,
        usage: wire.usage.0.as_ref().and_then(|u| u.to_usage()),
        model: wire.model.non_empty().map(str::to_owned),
        id: wire.id.non_empty().map(str::to_owned),
        reasoning_items: Vec::new(),
        raw: None,
    }
    .with_raw(body))
}

fn legacy_function_call(f: Option<&WireFunction<'_>>) -> Option<ToolCall> {
    let f = f?;
    let name = f.name.non_empty()?;
    Some(ToolCall {
        id: String::new(),
        name: name.trim_end_matches(':').to_owned(),
        arguments: f.arguments.0.as_deref().unwrap_or("").to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn complete(json: &str) -> ModelResponse {
        parse_response(Bytes::from(json.to_owned()), true).unwrap()
    }

    #[test]
    fn openai_text_answer() {
        let r = complete(
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12},"service_tier":"default","system_fingerprint":"fp_1"}"#,
        );
        assert_eq!(r.content, "Hello!");
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
        assert_eq!(r.usage.unwrap().total_tokens, 12);
        assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(r.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(r.raw_json().unwrap()["system_fingerprint"], "fp_1");
    }

    #[test]
    fn content_null_absent_or_empty_is_empty_string() {
        for msg in [r#"{"content":null}"#, r#"{}"#, r#"{"content":""}"#, r#"{"role":"assistant"}"#] {
            let r = complete(&format!(r#"{{"choices":[{{"message":{msg}}}]}}"#));
            assert_eq!(r.content, "");
            assert_eq!(r.finish_reason, None);
        }
    }

    #[test]
    fn tool_calls_with_stop_and_object_arguments() {
        // TGI: no content key, finish_reason "stop", id "0".
        let r = complete(
            r#"{"id":"","choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"0","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},"finish_reason":"stop"}]}"#,
        );
        assert_eq!(r.tool_calls, vec![ToolCall::new("0", "get_weather", r#"{"city":"Paris"}"#)]);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.id, None);
    }

    #[test]
    fn llama_cpp_python_legacy_function_call_beside_tool_calls() {
        let r = complete(
            r#"{"choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"call__0_get_weather_cmpl-1","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}],"role":"assistant","function_call":{"name":"get_weather:","arguments":"{\"location\": \"Paris\"}"}},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
        );
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "get_weather");
        // Only the legacy field: one call, the stray colon dropped.
        let r = complete(
            r#"{"choices":[{"message":{"function_call":{"name":"get_weather:","arguments":"{}"}},"finish_reason":"function_call"}]}"#,
        );
        assert_eq!(r.tool_calls, vec![ToolCall::new("call_0", "get_weather", "{}")]);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn reasoning_fields_and_think_tags() {
        let r = complete(r#"{"choices":[{"message":{"content":"4","reasoning_content":"2+2"}}]}"#);
        assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("4", Some("2+2")));
        let r = complete(r#"{"choices":[{"message":{"content":"4","reasoning":"2+2"}}]}"#);
        assert_eq!(r.reasoning.as_deref(), Some("2+2"));
        let r = complete(r#"{"choices":[{"message":{"content":"4","reasoning":"same","reasoning_content":"same"}}]}"#);
        assert_eq!(r.reasoning.as_deref(), Some("same"));
        let r = complete(r#"{"choices":[{"message":{"content":"<think>\nhmm\n</think>\n\n4"}}]}"#);
        assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("4", Some("\nhmm\n")));
        let off =
            parse_response(Bytes::from_static(br#"{"choices":[{"message":{"content":"<think>x</think>y"}}]}"#), false)
                .unwrap();
        assert_eq!((off.content.as_str(), off.reasoning), ("<think>x</think>y", None));
    }

    #[test]
    fn unknown_finish_reason_is_kept_and_empty_is_none() {
        assert_eq!(
            complete(r#"{"choices":[{"message":{"content":"x"},"finish_reason":"weird"}]}"#).finish_reason,
            Some(FinishReason::Other("weird".into()))
        );
        assert_eq!(complete(r#"{"choices":[{"message":{"content":"x"},"finish_reason":""}]}"#).finish_reason, None);
        assert_eq!(
            complete(r#"{"choices":[{"message":{"content":"x"},"finish_reason":"eos"}]}"#).finish_reason,
            Some(FinishReason::Stop)
        );
    }

    #[test]
    fn blank_lines_before_the_body_deepseek() {
        let r = complete("\n\n\n  {\"choices\":[{\"message\":{\"content\":\"ok\"}}]}");
        assert_eq!(r.content, "ok");
    }

    #[test]
    fn error_in_a_200_body_is_an_error() {
        let e = parse_response(
            Bytes::from_static(
                br#"{"error":{"message":"No connected db.","type":"no_db_connection","param":null,"code":"400"}}"#,
            ),
            true,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(e.message(), "No connected db.");
    }

    #[test]
    fn garbage_is_a_decode_error() {
        for body in ["", "not json", "[]", "{\"choices\":[]}", "{\"choices\":\"x\"}", "\u{0}"] {
            let e = parse_response(Bytes::from(body.to_owned()), true).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Decode, "{body:?}");
        }
    }

    #[test]
    fn refusal_becomes_content() {
        let r = complete(
            r#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#,
        );
        assert_eq!(r.content, "I can't help with that.");
    }

    #[test]
    fn legacy_text_completions_read_as_content() {
        let r = complete(
            r#"{"id":"cmpl-1","object":"text_completion","model":"m","choices":[{"text":" Paris.","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        );
        assert_eq!(r.content, " Paris.");
        assert_eq!(r.finish_reason, Some(FinishReason::Length));
        assert_eq!(r.usage.map(|u| u.output_tokens), Some(2));
    }
}
