//! Responses API streams: the recorded LiteLLM transcripts (`tests/data/peers/litellm-responses`)
//! and hand-written streams in OpenAI's event shapes, decoded whole and split in two at every
//! byte; the outcome must not depend on how the bytes arrived.

use std::path::Path;

use crate::error::ErrorKind;
use crate::openai_compat::event_decoder::EventDecoder;
use crate::openai_compat::replay_tests::{self, decode, Outcome};
use crate::stream::StreamChunk;
use crate::types::{FinishReason, ModelResponse, ReasoningItem, ToolCall};

fn run(pieces: &[&[u8]]) -> (Vec<StreamChunk>, Outcome) {
    decode(EventDecoder::responses(true), pieces)
}

/// The same at every split point and byte by byte; exactly one final chunk on success.
fn check_splits(name: &str, body: &[u8]) -> (Vec<StreamChunk>, Outcome) {
    replay_tests::check_splits(|| EventDecoder::responses(true), name, body)
}

fn recorded(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peers/litellm-responses").join(name);
    let bytes = std::fs::read(&path).expect("fixture");
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    bytes[at + 4..].to_vec()
}

fn answer(outcome: Outcome) -> ModelResponse {
    match outcome {
        Outcome::Answer(a) => a,
        Outcome::Failed(kind, message) => panic!("failed: {kind:?} {message}"),
    }
}

#[test]
fn litellm_bridged_text_stream() {
    let (chunks, outcome) = check_splits("text_stream", &recorded("text_stream.http"));
    let a = answer(outcome);
    assert!(!a.content.is_empty());
    // max_output_tokens reached: response.incomplete.
    assert_eq!(a.finish_reason, Some(FinishReason::Length));
    let usage = a.usage.expect("usage");
    assert_eq!(usage.output_tokens, 16);
    assert!(a.id.as_deref().is_some_and(|id| id.starts_with("resp_")));
    assert_eq!(chunks.iter().filter(|c| c.model.is_some()).count(), 1);
    // The same text as the whole non-streaming answer would hold.
    let text: String = chunks.iter().map(|c| c.content.as_str()).collect();
    assert_eq!(text, a.content);
}

#[test]
fn litellm_bridged_tool_stream_that_failed() {
    // LiteLLM 1.108.7 streams the call's arguments, then fails its own usage bookkeeping and
    // sends response.failed: an error, not a half answer.
    let (chunks, outcome) = check_splits("tools_required_stream", &recorded("tools_required_stream.http"));
    assert!(chunks.iter().any(|c| c.tool_calls.first().is_some_and(|d| d.name.as_deref() == Some("get_weather"))));
    match outcome {
        Outcome::Failed(kind, message) => {
            assert_eq!(kind, ErrorKind::Server);
            assert!(message.contains("usage calculation"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn litellm_bridged_tool_result_roundtrip_stream() {
    let (_, outcome) = check_splits("tools_roundtrip_stream", &recorded("tools_roundtrip_stream.http"));
    let a = answer(outcome);
    assert!(a.usage.is_some());
    assert!(a.finish_reason.is_some());
}

/// OpenAI's event shapes: reasoning summary, a text answer, a function call streamed in
/// pieces, the encrypted reasoning item, and usage with its details.
const OPENAI_TOOL_STREAM: &str = concat!(
    "event: response.created\n",
    r#"data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_abc","object":"response","status":"in_progress","model":"gpt-5-mini-2025-08-07","output":[],"usage":null}}"#,
    "\n\n",
    "event: response.output_item.added\n",
    r#"data: {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}"#,
    "\n\n",
    "event: response.reasoning_summary_text.delta\n",
    r#"data: {"type":"response.reasoning_summary_text.delta","sequence_number":2,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Need the weather."}"#,
    "\n\n",
    "event: response.output_item.done\n",
    r#"data: {"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Need the weather."}],"encrypted_content":"gAAAAB-secret"}}"#,
    "\n\n",
    "event: response.output_text.delta\n",
    r#"data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Checking ","logprobs":[]}"#,
    "\n\n",
    "event: response.output_text.delta\n",
    r#"data: {"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"now.","logprobs":[]}"#,
    "\n\n",
    "event: response.output_item.added\n",
    r#"data: {"type":"response.output_item.added","sequence_number":6,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"in_progress","arguments":"","call_id":"call_X","name":"get_weather"}}"#,
    "\n\n",
    "event: response.function_call_arguments.delta\n",
    r#"data: {"type":"response.function_call_arguments.delta","sequence_number":7,"item_id":"fc_1","output_index":2,"delta":"{\"city\":"}"#,
    "\n\n",
    "event: response.function_call_arguments.delta\n",
    r#"data: {"type":"response.function_call_arguments.delta","sequence_number":8,"item_id":"fc_1","output_index":2,"delta":"\"Paris\"}"}"#,
    "\n\n",
    "event: response.function_call_arguments.done\n",
    r#"data: {"type":"response.function_call_arguments.done","sequence_number":9,"item_id":"fc_1","output_index":2,"arguments":"{\"city\":\"Paris\"}"}"#,
    "\n\n",
    "event: response.output_item.done\n",
    r#"data: {"type":"response.output_item.done","sequence_number":10,"output_index":2,"item":{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"Paris\"}","call_id":"call_X","name":"get_weather"}}"#,
    "\n\n",
    "event: response.some_future_event\n",
    r#"data: {"type":"response.some_future_event","sequence_number":11}"#,
    "\n\n",
    "event: response.completed\n",
    r#"data: {"type":"response.completed","sequence_number":12,"response":{"id":"resp_abc","object":"response","status":"completed","model":"gpt-5-mini-2025-08-07","output":[],"usage":{"input_tokens":50,"input_tokens_details":{"cached_tokens":10},"output_tokens":20,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":70}}}"#,
    "\n\n",
);

#[test]
fn openai_shaped_tool_stream() {
    let (chunks, outcome) = check_splits("openai tool stream", OPENAI_TOOL_STREAM.as_bytes());
    let a = answer(outcome);
    assert_eq!(a.content, "Checking now.");
    assert_eq!(a.reasoning.as_deref(), Some("Need the weather."));
    assert_eq!(a.tool_calls, vec![ToolCall::new("call_X", "get_weather", "{\"city\":\"Paris\"}")]);
    assert_eq!(a.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(a.model.as_deref(), Some("gpt-5-mini-2025-08-07"));
    assert_eq!(a.id.as_deref(), Some("resp_abc"));
    let u = a.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_input_tokens),
        (50, 20, Some(12), Some(10))
    );
    assert_eq!(
        a.reasoning_items,
        vec![ReasoningItem::new("rs_1").with_summary("Need the weather.").with_encrypted_content("gAAAAB-secret")]
    );
    // Every tool piece under index 0; the final chunk carries the usage and the items.
    assert!(chunks.iter().flat_map(|c| &c.tool_calls).all(|d| d.index == 0));
    let last = chunks.last().unwrap();
    assert!(last.is_final && last.usage.is_some() && last.reasoning_items.len() == 1);
}

#[test]
fn arguments_only_in_done_events_are_not_lost_or_doubled() {
    let body = concat!(
        r#"data: {"type":"response.output_item.added","output_index":0,"item":{"id":"fc_1","type":"function_call","call_id":"c1","name":"f","arguments":""}}"#,
        "\n\n",
        r#"data: {"type":"response.function_call_arguments.done","output_index":0,"item_id":"fc_1","arguments":"{\"a\":1}"}"#,
        "\n\n",
        r#"data: {"type":"response.output_item.done","output_index":0,"item":{"id":"fc_1","type":"function_call","call_id":"c1","name":"f","arguments":"{\"a\":1}"}}"#,
        "\n\n",
        r#"data: {"type":"response.output_item.done","output_index":1,"item":{"id":"fc_2","type":"function_call","call_id":"c2","name":"g","arguments":"{}"}}"#,
        "\n\n",
        r#"data: {"type":"response.completed","response":{"status":"completed"}}"#,
        "\n\n",
    );
    let a = answer(check_splits("done only", body.as_bytes()).1);
    assert_eq!(a.tool_calls, vec![ToolCall::new("c1", "f", "{\"a\":1}"), ToolCall::new("c2", "g", "{}")]);
}

#[test]
fn endings_and_failures() {
    let delta = concat!(r#"data: {"type":"response.output_text.delta","delta":"Hi"}"#, "\n\n");
    // Closed before response.completed.
    let (_, outcome) = check_splits("cut", delta.as_bytes());
    assert!(
        matches!(outcome, Outcome::Failed(ErrorKind::Stream, ref m) if m.contains("response.completed")),
        "{outcome:?}"
    );
    // [DONE] without completion is not a finished answer.
    let body = format!("{delta}data: [DONE]\n\n");
    assert!(matches!(check_splits("done early", body.as_bytes()).1, Outcome::Failed(ErrorKind::Stream, _)));
    // Incomplete for the token limit is a finished answer with Length.
    let body = format!(
        "{delta}{}\n\n",
        r#"data: {"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}}"#
    );
    let a = answer(check_splits("incomplete", body.as_bytes()).1);
    assert_eq!((a.content.as_str(), a.finish_reason), ("Hi", Some(FinishReason::Length)));
    // response.failed and error events are classified errors.
    let body = format!(
        "{delta}{}\n\n",
        r#"data: {"type":"response.failed","response":{"status":"failed","error":{"code":"rate_limit_exceeded","message":"slow down"}}}"#
    );
    assert!(matches!(check_splits("failed", body.as_bytes()).1, Outcome::Failed(ErrorKind::RateLimited, _)));
    let body = format!(
        "{delta}event: error\n{}\n\n",
        r#"data: {"type":"error","code":"context_length_exceeded","message":"Your input exceeds the context window of this model.","param":"input"}"#
    );
    assert!(matches!(check_splits("error event", body.as_bytes()).1, Outcome::Failed(ErrorKind::ContextOverflow, _)));
    let body = format!("{delta}{}\n\n", r#"data: {"error":{"message":"Error processing stream start","code":"500"}}"#);
    assert!(matches!(check_splits("proxy error frame", body.as_bytes()).1, Outcome::Failed(..)));
}

/// No input from the network may panic: mutated recorded streams end in chunks or an error.
#[test]
fn mutated_input_never_panics() {
    const NOISE: &[u8] = b"\n\r{}[]\":,\\ \0\xff\xc3data:nulltype[DONE]";
    let bodies =
        [recorded("text_stream.http"), recorded("tools_required_stream.http"), OPENAI_TOOL_STREAM.as_bytes().to_vec()];
    replay_tests::each_mutation(bodies, 200, NOISE, 0x9e37_79b9_7f4a_7c15, |bytes, cut| {
        let _ = run(&[&bytes[..cut], &bytes[cut..]]);
        let _ = super::response::parse_response(bytes::Bytes::from(bytes.to_vec()), true);
    });
}

#[test]
fn recorded_whole_answers() {
    let body = recorded("text_nonstream.http");
    let a = super::response::parse_response(bytes::Bytes::from(body), true).unwrap();
    assert!(!a.content.is_empty());
    assert!(a.usage.is_some());
    let body = recorded("tools_required.http");
    let a = super::response::parse_response(bytes::Bytes::from(body), true).unwrap();
    assert_eq!(a.tool_calls.len(), 1);
    assert_eq!(a.tool_calls[0].name, "get_weather");
    assert_eq!(a.finish_reason, Some(FinishReason::ToolCalls));
    let body = recorded("native_mock_nonstream.http");
    let a = super::response::parse_response(bytes::Bytes::from(body), true).unwrap();
    assert_eq!(a.content, "Hello from the LiteLLM mock model.");
}
