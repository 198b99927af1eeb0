//! Legacy text completions (`/v1/completions`) against the mock: the body written, the answer
//! and the stream read by the chat readers, errors and retries as for chat.

use std::time::Duration;

use futures_util::StreamExt;
use mamba_backends::{
    ErrorKind, FinishReason, OpenAICompatibleBackend, Preset, RequestOptions, RetryPolicy, ToolDefinition,
};
use mamba_mock::{Match, MockServer, Reply, Rule, Script};
use serde_json::json;

fn vllm(server: &MockServer, retry: RetryPolicy) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("base-model")
        .preset(Preset::Vllm)
        .base_url(server.base_url())
        .timeout(Duration::from_secs(10))
        .retry_policy(retry)
        .build()
        .unwrap()
}

/// The whole answer: the prompt goes out as `prompt` to `/v1/completions`, the `text` choice
/// comes back as the content, with usage and finish reason.
#[tokio::test]
async fn complete_text_sends_a_prompt_and_reads_text() {
    let server =
        MockServer::start_with(Script::new().always(Reply::text(" Paris.").finish_reason("length"))).await.unwrap();
    let b = vllm(&server, RetryPolicy::none());
    let r = b.complete_text("The capital of France is", &RequestOptions::new().max_tokens(4).seed(1)).await.unwrap();
    assert_eq!(r.content, " Paris.");
    assert_eq!(r.finish_reason, Some(FinishReason::Length));
    assert!(r.usage.is_some_and(|u| u.input_tokens == 5 && u.output_tokens == 1));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].is_text_completion());
    assert_eq!(requests[0].path, "/v1/completions");
    assert_eq!(
        requests[0].json.clone().unwrap(),
        json!({"model": "base-model", "prompt": "The capital of France is", "max_tokens": 4, "seed": 1})
    );
}

/// The stream: text chunks as they come, usage asked for (the vLLM preset takes
/// `stream_options`), exactly one final chunk with the finish reason and usage.
#[tokio::test]
async fn stream_text_has_one_final_chunk_with_usage() {
    let server = MockServer::start_with(Script::new().always(Reply::text("one two three"))).await.unwrap();
    let b = vllm(&server, RetryPolicy::none());
    let mut stream = b.stream_text("count", &RequestOptions::new()).await.unwrap();
    let (mut text, mut finals, mut usage) = (String::new(), 0, None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        text.push_str(&chunk.content);
        if chunk.is_final {
            finals += 1;
            usage = chunk.usage;
            assert_eq!(chunk.finish_reason, Some(FinishReason::Stop));
        }
    }
    assert_eq!(text, "one two three");
    assert_eq!(finals, 1);
    assert!(usage.is_some_and(|u| u.output_tokens == 3 && u.input_tokens == 1));
    let body = server.requests()[0].json.clone().unwrap();
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

/// Errors are classified and retried as for chat; chat-only options are refused before
/// anything is sent.
#[tokio::test]
async fn errors_retries_and_chat_only_options() {
    let limited = Reply::status(429).header("retry-after", "0");
    let script = Script::new().rule(Rule::new(Match::any(), limited).times(1)).always(Reply::text("ok"));
    let server = MockServer::start_with(script).await.unwrap();
    let b = vllm(&server, RetryPolicy::default().max_retries(2).initial_backoff(Duration::from_millis(1)));
    assert_eq!(b.complete_text("x", &RequestOptions::new()).await.unwrap().content, "ok");
    assert_eq!(server.requests().len(), 2);

    let tools = RequestOptions::new().tools(vec![ToolDefinition::function("f", "", json!({"type": "object"}))]);
    let e = b.complete_text("x", &tools).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(server.requests().len(), 2, "nothing sent");

    let server = MockServer::start_with(Script::new().always(Reply::status(404))).await.unwrap();
    let e = vllm(&server, RetryPolicy::none()).stream_text("x", &RequestOptions::new()).await.err().unwrap();
    assert_eq!(e.status(), Some(404));
}
