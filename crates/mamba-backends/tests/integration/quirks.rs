//! The per-server stream snippets of provider-quirks.md (tests/data/quirks), replayed over
//! HTTP in several chunkings. One test per quirk; each names its server.

use futures_util::StreamExt;
use mamba_backends::{
    collect, ErrorKind, FinishReason, Message, ModelBackend, ModelResponse, RequestOptions, ToolCall,
};

use crate::backend;
use crate::support::{data, RawServer, Reply};

/// Serves the fixture whole, in 3 HTTP chunks and one byte per chunk; all must agree.
async fn replay(name: &str) -> Result<ModelResponse, mamba_backends::Error> {
    let body = std::fs::read(data(&format!("quirks/{name}"))).unwrap();
    let mut outcomes = Vec::new();
    for pieces in [1usize, 3, body.len()] {
        let size = body.len().div_ceil(pieces);
        let parts: Vec<&[u8]> = body.chunks(size).collect();
        let server = RawServer::fixed(Reply::sse_pieces(&parts)).await;
        let stream = backend(&server.url()).stream(&[Message::user("hi")], &RequestOptions::new()).await?;
        outcomes.push(collect(stream).await.map_err(|e| (e.kind(), e.message().to_owned())));
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "{name}: chunking changed the outcome: {outcomes:?}");
    let server = RawServer::fixed(Reply::sse_pieces(&[&body])).await;
    let stream = backend(&server.url()).stream(&[Message::user("hi")], &RequestOptions::new()).await?;
    collect(stream).await
}

fn usage_total(r: &ModelResponse) -> Option<u64> {
    r.usage.map(|u| u.total_tokens)
}

/// OpenAI gpt-4o: tool call fragments (id and name first, arguments split), `usage: null` on
/// every chunk, usage in a `choices: []` trailer.
#[tokio::test]
async fn openai_tool_stream() {
    let r = replay("openai-tool-stream.sse").await.unwrap();
    assert_eq!(
        r.tool_calls,
        vec![ToolCall::new("call_7kE4IjtnwXcGbX6hDM7xFu8T", "weather", r#"{"location":"Florence, Italy"}"#)]
    );
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(usage_total(&r), Some(72));
    assert_eq!(r.content, "");
}

/// Azure OpenAI: first chunk with empty choices and empty id/model; usage trailer.
#[tokio::test]
async fn azure_empty_first_chunk() {
    let r = replay("azure-empty-first-chunk.sse").await.unwrap();
    assert_eq!(r.content, "Hello there");
    assert_eq!(r.model.as_deref(), Some("gpt-5-mini-2025-08-07"));
    assert_eq!(r.id.as_deref(), Some("chatcmpl-AZ"));
    assert_eq!(r.usage.unwrap().reasoning_tokens, Some(64));
}

/// OpenRouter: processing comments, role on every delta, two finish chunks, usage on the
/// second (with choices), counted once.
#[tokio::test]
async fn openrouter_two_finish_chunks() {
    let r = replay("openrouter-two-finish-chunks.sse").await.unwrap();
    assert_eq!(r.content, "I'll check");
    assert_eq!(r.tool_calls, vec![ToolCall::new("toolu_bdrk_01AbC", "weather", r#"{"location": "Florence"}"#)]);
    assert_eq!(usage_total(&r), Some(460));
}

/// Groq: the whole call in one chunk; usage on the finish chunk and again in a trailer: the
/// last one is kept, not the sum.
#[tokio::test]
async fn groq_whole_call_and_double_usage() {
    let r = replay("groq-whole-tool-call.sse").await.unwrap();
    assert_eq!(
        r.tool_calls,
        vec![ToolCall::new("functions.weather:0", "weather", r#"{"location":"Florence, Italy"}"#)]
    );
    assert_eq!(usage_total(&r), Some(140));
}

/// TGI: id and type repeated on every tool chunk, finish_reason "stop" with a tool call,
/// `id: ""`, keep-alive comments.
#[tokio::test]
async fn tgi_repeated_ids_finish_stop() {
    let r = replay("tgi-tool-call-finish-stop.sse").await.unwrap();
    assert_eq!(r.tool_calls, vec![ToolCall::new("0", "get_weather", r#"{"location": "Paris"}"#)]);
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(r.id, None);
}

/// SGLang: explicit nulls for role, content, reasoning_content, tool_calls, usage.
#[tokio::test]
async fn sglang_explicit_nulls() {
    let r = replay("sglang-explicit-nulls.sse").await.unwrap();
    assert_eq!(r.content, "Hello!");
    assert_eq!(r.reasoning.as_deref(), Some("The user greets. Answer politely."));
    assert_eq!(usage_total(&r), Some(22));
    assert!(r.tool_calls.is_empty());
}

/// llama.cpp server: arguments split mid-token, `:` pings, reasoning_content, usage trailer.
#[tokio::test]
async fn llamacpp_server_arguments_split() {
    let r = replay("llamacpp-server-tool-args-split.sse").await.unwrap();
    assert_eq!(
        r.tool_calls,
        vec![ToolCall::new("Bq0wZ8mN3kLp7xR2vT5yC9dF1gH4jK6s", "weather", r#"{"location":"Florence"}"#)]
    );
    assert_eq!(r.reasoning.as_deref(), Some("Need weather."));
    assert_eq!(usage_total(&r), Some(175));
}

/// llama.cpp server: an error frame mid-stream and no `[DONE]`: the error reaches the caller,
/// classified, after the chunks that came before it.
#[tokio::test]
async fn llamacpp_server_error_without_done() {
    let e = replay("llamacpp-server-error-no-done.sse").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextOverflow);
    assert!(e.message().contains("available context size"));
    assert_eq!(e.status(), Some(400));
}

/// Ollama /v1: each tool call whole in one chunk, reasoning in `delta.reasoning`.
#[tokio::test]
async fn ollama_whole_calls() {
    let r = replay("ollama-whole-tool-calls.sse").await.unwrap();
    assert_eq!(
        r.tool_calls,
        vec![
            ToolCall::new("call_x1y2z3w4", "get_weather", r#"{"city":"Paris"}"#),
            ToolCall::new("call_a9b8c7d6", "get_weather", r#"{"city":"Rome"}"#)
        ]
    );
    assert_eq!(r.reasoning.as_deref(), Some("Two cities, two calls."));
}

/// vLLM: `content: ""` first, `reasoning` field, named tool_choice finishing with "stop".
#[tokio::test]
async fn vllm_named_tool_finish_stop() {
    let r = replay("vllm-named-tool-finish-stop.sse").await.unwrap();
    assert_eq!(r.tool_calls, vec![ToolCall::new("chatcmpl-tool-5c1e9a0b2f", "get_weather", r#"{"city": "Oslo"}"#)]);
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(r.reasoning.as_deref(), Some("Call the tool."));
}

/// vLLM: an error frame followed by `[DONE]` is an error, not a normal end.
#[tokio::test]
async fn vllm_error_then_done() {
    let e = replay("vllm-error-then-done.sse").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(e.message(), "Engine loop has died");
}

/// LocalAI: role, content null and id repeated on every tool chunk.
#[tokio::test]
async fn localai_repeated_ids() {
    let r = replay("localai-repeated-ids.sse").await.unwrap();
    assert_eq!(
        r.tool_calls,
        vec![ToolCall::new("3f1c2d4e-5b6a-4c7d-8e9f-0a1b2c3d4e5f-0", "search", r#"{"q":"rust"}"#)]
    );
    assert_eq!(usage_total(&r), Some(29));
}

/// DeepSeek: `: keep-alive` comments, reasoning_content before content.
#[tokio::test]
async fn deepseek_keepalive_and_reasoning() {
    let r = replay("deepseek-keepalive-reasoning.sse").await.unwrap();
    assert_eq!(r.content, "9.9 is larger.");
    assert_eq!(r.reasoning.as_deref(), Some("9.11 < 9.9"));
    assert_eq!(r.usage.unwrap().cached_input_tokens, Some(0));
}

/// Together: finish_reason "eos", usage on the last content chunk.
#[tokio::test]
async fn together_eos() {
    let r = replay("together-eos.sse").await.unwrap();
    assert_eq!(r.content, "Hi!");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(usage_total(&r), Some(10));
}

/// OpenRouter: an error after streaming started (HTTP 200, top-level error, finish "error").
#[tokio::test]
async fn openrouter_midstream_error() {
    let e = replay("openrouter-midstream-error.sse").await.unwrap_err();
    assert_eq!(e.message(), "Network connection lost.");
    assert_eq!(e.status(), Some(502));
    assert!(e.is_retryable());
}

/// SSE framing: CRLF, `data:` without a space, multi-line data, event/id/retry lines.
#[tokio::test]
async fn spec_framing() {
    let r = replay("framing-crlf-multiline.sse").await.unwrap();
    assert_eq!(r.content, "Héllo 🙂");
}

/// `<think>` tags split across chunks (Groq raw, llama.cpp `--reasoning-format none`).
#[tokio::test]
async fn think_tags_across_chunks() {
    let r = replay("think-tags-in-content.sse").await.unwrap();
    assert_eq!(r.content, "Hello there!");
    assert_eq!(r.reasoning.as_deref(), Some("\nThe user says hi.\n"));
}

/// Tool-call fragments without `index` (unverified shape, provider-quirks 3.13).
#[tokio::test]
async fn tool_calls_without_index() {
    let r = replay("tool-calls-without-index.sse").await.unwrap();
    assert_eq!(r.tool_calls, vec![ToolCall::new("call_a", "f", r#"{"x":1}"#), ToolCall::new("call_b", "g", "{}")]);
}

/// A finish_reason then a clean close without `[DONE]` is a normal end.
#[tokio::test]
async fn finish_then_close_is_normal() {
    let r = replay("finish-then-close.sse").await.unwrap();
    assert_eq!(r.content, "Done.");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
}

/// A close before any finish_reason or `[DONE]` is an error (the seed ended silently).
#[tokio::test]
async fn truncated_stream_is_an_error() {
    let e = replay("truncated.sse").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Stream);
    assert!(e.message().contains("before the answer finished"), "{e}");
}

/// Every chunk but the last has `is_final == false`, exactly one has it, and chunks arrive one
/// per event as the server sends them.
#[tokio::test]
async fn one_final_chunk_per_stream() {
    let body = std::fs::read(data("quirks/openai-tool-stream.sse")).unwrap();
    let server = RawServer::fixed(Reply::sse_pieces(&[&body])).await;
    let mut stream = backend(&server.url()).stream(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.unwrap());
    }
    // 6 events with choices, then the final chunk.
    assert_eq!(chunks.len(), 7);
    assert_eq!(chunks.iter().filter(|c| c.is_final).count(), 1);
    let last = chunks.last().unwrap();
    assert!(last.is_final);
    assert_eq!(last.usage.map(|u| u.total_tokens), Some(72));
    assert_eq!(last.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(chunks[0].model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert!(chunks[1..].iter().all(|c| c.model.is_none()));
}
