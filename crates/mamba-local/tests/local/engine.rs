//! Generation behaviour: sampling, streaming, stops, limits, errors, cancellation, concurrency.

use futures_util::StreamExt;
use mamba_backends::{
    collect, ErrorKind, FinishReason, Message, ModelBackend, RequestOptions, ResponseFormat, ToolDefinition,
};
use mamba_local::{LocalBackend, LocalOptions};

use crate::support::{backend, model_path};

fn france() -> Vec<Message> {
    vec![Message::system("You are a helpful AI assistant."), Message::user("What is the capital of France?")]
}

fn story() -> Vec<Message> {
    vec![Message::user("Write a short story about a cat who learns to fly.")]
}

#[tokio::test]
async fn the_same_seed_gives_the_same_answer() {
    let Some(backend) = backend() else { return };
    let options = |seed| RequestOptions::new().temperature(1.0).top_p(0.95).seed(seed).max_tokens(24);
    let a = backend.complete(&story(), &options(42)).await.unwrap();
    let b = backend.complete(&story(), &options(42)).await.unwrap();
    assert_eq!(a.content, b.content);
    let others = [1, 2, 3];
    let mut differs = false;
    for seed in others {
        differs |= backend.complete(&story(), &options(seed)).await.unwrap().content != a.content;
    }
    assert!(differs, "other seeds should give another answer at temperature 1");
}

#[tokio::test]
async fn the_collected_stream_equals_the_complete_answer() {
    let Some(backend) = backend() else { return };
    let options = RequestOptions::new().temperature(0.0).max_tokens(40);
    let whole = backend.complete(&story(), &options).await.unwrap();
    let mut stream = backend.stream(&story(), &options).await.unwrap();
    let mut pieces = Vec::new();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if chunk.is_final {
            last = Some(chunk);
        } else {
            pieces.push(chunk.content);
        }
    }
    assert!(pieces.len() > 10, "streamed token by token: {} pieces", pieces.len());
    assert_eq!(pieces.concat(), whole.content);
    let last = last.unwrap();
    assert_eq!(last.usage, whole.usage);
    let collected = collect(backend.stream(&story(), &options).await.unwrap()).await.unwrap();
    assert_eq!(collected, whole);
    assert_eq!(whole.model.as_deref(), Some(backend.model()));
}

#[tokio::test]
async fn stop_sequences_end_the_answer_without_their_text() {
    let Some(backend) = backend() else { return };
    let greedy = RequestOptions::new().temperature(0.0).max_tokens(32);
    let full = backend.complete(&france(), &greedy).await.unwrap();
    assert!(full.content.contains("Paris"), "{:?}", full.content);
    // "Paris" is one stop; "of Fr" spans two tokens ("of", " France").
    for stop in ["Paris", "of Fr"] {
        let at = full.content.find(stop).unwrap();
        let answer = backend.complete(&france(), &greedy.clone().stop([stop])).await.unwrap();
        assert_eq!(answer.content, full.content[..at], "stop {stop:?}");
        assert_eq!(answer.finish_reason, Some(FinishReason::Stop));
        assert!(answer.usage.unwrap().output_tokens < full.usage.unwrap().output_tokens);
    }
}

#[tokio::test]
async fn max_tokens_ends_with_length_and_exact_usage() {
    let Some(backend) = backend() else { return };
    let answer = backend.complete(&story(), &RequestOptions::new().temperature(0.0).max_tokens(5)).await.unwrap();
    assert_eq!(answer.finish_reason, Some(FinishReason::Length));
    let usage = answer.usage.unwrap();
    assert_eq!(usage.output_tokens, 5);
    assert_eq!(usage.input_tokens, backend.prompt_tokens(&story()).unwrap().len() as u64);
    assert_eq!(usage.total_tokens, usage.input_tokens + 5);
    assert_eq!(backend.tokenize(&answer.content, false).len(), 5, "{:?}", answer.content);
}

#[tokio::test]
async fn prompt_and_max_tokens_over_the_context_fail_before_any_work() {
    let Some(backend) = backend() else { return };
    let context = backend.context_window() as u32;
    let err = backend.complete(&france(), &RequestOptions::new().max_tokens(context)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextOverflow, "{err}");
    assert!(err.to_string().contains(&context.to_string()), "{err}");
    let long = vec![Message::user("word ".repeat(context as usize))];
    let err = backend.complete(&long, &RequestOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextOverflow, "{err}");
    let err = backend.stream(&long, &RequestOptions::new().max_tokens(1)).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::ContextOverflow, "{err}");
}

#[tokio::test]
async fn tools_are_refused_not_ignored() {
    let Some(backend) = backend() else { return };
    let tool = ToolDefinition::function("lookup", "Look up", serde_json::json!({"type": "object"}));
    let err = backend.complete(&france(), &RequestOptions::new().tool(tool)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("tools"), "{err}");
    let text = RequestOptions::new().response_format(ResponseFormat::Text).max_tokens(2);
    assert!(backend.complete(&france(), &text).await.is_ok(), "plain text format is what it does anyway");
}

#[tokio::test]
async fn dropping_a_stream_stops_the_generation_within_a_token() {
    // Its own backend, so that no other test's tokens are counted.
    let Some(path) = model_path() else { return };
    let backend = LocalBackend::load_async(&path, LocalOptions::new()).await.unwrap();
    let mut stream = backend.stream(&story(), &RequestOptions::new().temperature(0.0).max_tokens(1000)).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.content.is_empty());
    let at_drop = backend.sampled_tokens();
    drop(stream);
    // The queue is in order: once this one-token request is answered, the dropped one has ended.
    let next = backend.complete(&france(), &RequestOptions::new().temperature(0.0).max_tokens(1)).await.unwrap();
    assert_eq!(next.usage.unwrap().output_tokens, 1);
    let after = backend.sampled_tokens();
    assert!(after - at_drop <= 3, "{} tokens were sampled after the drop (1 for the next request)", after - at_drop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_requests_are_all_answered() {
    let Some(backend) = backend() else { return };
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let backend = backend.clone();
            tokio::spawn(async move {
                let question = format!("What is {i} plus {i}?");
                backend
                    .complete(&[Message::user(question)], &RequestOptions::new().temperature(0.0).max_tokens(8))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let answer = task.await.unwrap().unwrap();
        assert!(!answer.content.is_empty());
        assert!(answer.usage.unwrap().output_tokens >= 1);
    }
}

#[tokio::test]
async fn names_health_and_models() {
    let Some(backend) = backend() else { return };
    assert_eq!(backend.name(), "local");
    assert!(!backend.model().is_empty());
    assert_eq!(backend.profile().context_window, Some(backend.context_window() as u32));
    assert!(backend.health_check().await);
    let health = backend.health().await;
    assert!(health.is_healthy());
    assert_eq!(health.models, [backend.model().to_owned()]);
    let models = backend.list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id, backend.model());
    let info = mamba_local::gguf_metadata(backend.model_path()).unwrap();
    assert_eq!(info.architecture, "llama");
    // The id is the file's name made one word clients can send back.
    assert_eq!(info.name.to_lowercase().replace(' ', "-"), backend.model());
    assert!(!backend.model().contains(char::is_whitespace), "{:?}", backend.model());
}

#[test]
fn a_missing_or_broken_file_is_a_clear_error() {
    let err = LocalBackend::load("/nonexistent/model.gguf", LocalOptions::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
    let dir = std::env::temp_dir().join(format!("mamba-local-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, b"not a gguf file at all").unwrap();
    let err = LocalBackend::load(&bad, LocalOptions::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("GGUF"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
