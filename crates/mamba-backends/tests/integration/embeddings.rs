//! Embeddings against the mock server: batching and reassembly, base64 and its fallbacks,
//! server differences from the presets, error classification, retries and the pool.

use std::sync::Arc;
use std::time::Duration;

use mamba_backends::{
    embeddings::{Embedder, EmbeddingInput, EmbeddingOptions, EncodingFormat},
    pool::BreakerState,
    preset::EmbeddingSpec,
    BackendPool, ErrorKind, ModelBackend, OpenAICompatibleBackend, Preset, RetryPolicy,
};
use mamba_mock::{vector_for, Match, MockServer, Reply, Rule, Script};
use serde_json::json;

fn embedder(server: &MockServer, preset: Preset) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("embed-model")
        .preset(preset)
        .base_url(server.base_url())
        .timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn small_batches(max_inputs: usize, max_tokens: usize) -> Preset {
    let spec = EmbeddingSpec::OPENAI.max_inputs(max_inputs).max_tokens(max_tokens);
    Preset::custom(
        Preset::Generic.spec().to_custom("small", "Small batches", "http://127.0.0.1:9/v1").embeddings(Some(spec)),
    )
}

fn expected(texts: &[String], dims: usize) -> Vec<Vec<f32>> {
    texts.iter().map(|t| vector_for(t.as_bytes(), dims)).collect()
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("input number {i}")).collect()
}

fn bodies(server: &MockServer) -> Vec<serde_json::Value> {
    server.requests().into_iter().filter(|r| r.is_embeddings()).map(|r| r.json.unwrap()).collect()
}

/// OpenAI's endpoint: base64 asked for by default and decoded exactly.
#[tokio::test]
async fn base64_by_default_decodes_exactly() {
    let server = MockServer::start().await.unwrap();
    let b = embedder(&server, Preset::OpenAI);
    let t = texts(3);
    let out = b.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap();
    assert_eq!(out.vectors, expected(&t, 8));
    assert_eq!(out.model.as_deref(), Some("embed-model"));
    let usage = out.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.total_tokens), (12, 12));
    let sent = bodies(&server);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0], json!({"model": "embed-model", "input": t, "encoding_format": "base64"}));
    assert_eq!(server.requests()[0].path, "/v1/embeddings");
}

/// Inputs beyond the per-request limits are split, sent concurrently and put back in order;
/// usage is summed.
#[tokio::test]
async fn batches_by_count_and_tokens_reassemble_in_order() {
    let server = MockServer::start().await.unwrap();
    let b = embedder(&server, small_batches(3, 1_000_000));
    let t = texts(10);
    let out = b.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new().dimensions(5)).await.unwrap();
    assert_eq!(out.vectors, expected(&t, 5));
    assert_eq!(out.usage.unwrap().input_tokens, 40);
    let mut sizes: Vec<usize> = bodies(&server).iter().map(|b| b["input"].as_array().unwrap().len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 3, 3, 3]);
    assert!(bodies(&server).iter().all(|b| b["dimensions"] == 5));

    // 16-byte texts count 4 tokens: 10 tokens per request fit two.
    let server = MockServer::start().await.unwrap();
    let b = embedder(&server, small_batches(100, 10));
    let t = texts(5);
    let out = b.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap();
    assert_eq!(out.vectors, expected(&t, 8));
    assert_eq!(bodies(&server).len(), 3);
}

/// A server that answers floats to a base64 request is read, then asked for floats.
#[tokio::test]
async fn a_server_ignoring_base64_is_remembered() {
    let server = MockServer::start_with(Script::new().always(Reply::default().ignore_base64())).await.unwrap();
    let b = embedder(&server, Preset::Generic);
    let t = texts(2);
    for _ in 0..2 {
        let out = b.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap();
        assert_eq!(out.vectors, expected(&t, 8));
    }
    let sent = bodies(&server);
    assert_eq!(sent[0]["encoding_format"], "base64");
    assert!(sent[1].get("encoding_format").is_none(), "{}", sent[1]);
}

/// A server that rejects base64 (400 naming encoding_format) gets the same inputs again as
/// floats, within the same call, and floats afterwards.
#[tokio::test]
async fn a_server_rejecting_base64_is_asked_again_for_floats() {
    let reject = Reply::status(400)
        .body(json!({"detail": [{"loc": ["body", "encoding_format"], "msg": "unexpected value; permitted: 'float'"}]}));
    let server = MockServer::start_with(Script::new().rule(Rule::new(Match::any(), reject).times(1))).await.unwrap();
    let b = embedder(&server, Preset::LiteLlm);
    let t = texts(2);
    let out = b.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap();
    assert_eq!(out.vectors, expected(&t, 8));
    b.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap();
    let formats: Vec<_> = bodies(&server).iter().map(|b| b.get("encoding_format").cloned()).collect();
    assert_eq!(formats, [Some(json!("base64")), None, None]);
}

/// An explicit format is sent as asked; floats from a server that defaults to them.
#[tokio::test]
async fn explicit_formats_and_float_presets() {
    let server = MockServer::start().await.unwrap();
    let b = embedder(&server, Preset::Ollama);
    let t = texts(1);
    assert_eq!(b.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap().vectors, expected(&t, 8));
    let opts = EmbeddingOptions::new().encoding_format(EncodingFormat::Base64);
    assert_eq!(b.embed(&EmbeddingInput::texts(&t), &opts).await.unwrap().vectors, expected(&t, 8));
    let formats: Vec<_> = bodies(&server).iter().map(|b| b.get("encoding_format").cloned()).collect();
    assert_eq!(formats, [None, Some(json!("base64"))]);
}

/// Token-id inputs go as arrays of ids, never in the same request as texts.
#[tokio::test]
async fn token_inputs() {
    let server = MockServer::start().await.unwrap();
    let b = embedder(&server, Preset::Vllm);
    let inputs = vec![EmbeddingInput::from(vec![1, 2, 3]), EmbeddingInput::from("text")];
    let out = b.embed(&inputs, &EmbeddingOptions::new()).await.unwrap();
    let ids: Vec<u8> = [1u32, 2, 3].iter().flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(out.vectors, vec![vector_for(&ids, 8), vector_for(b"text", 8)]);
    let sent = bodies(&server);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().any(|b| b["input"] == json!([[1, 2, 3]])));
}

/// Servers without an endpoint, or without `dimensions`, refuse before any request.
#[tokio::test]
async fn unsupported_without_a_request() {
    let server = MockServer::start().await.unwrap();
    for preset in [Preset::Groq, Preset::DeepSeek, Preset::Tgi] {
        let e =
            embedder(&server, preset).embed(&EmbeddingInput::texts(["a"]), &EmbeddingOptions::new()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{preset}");
        assert!(e.to_string().contains("no embeddings endpoint"), "{e}");
    }
    let e = embedder(&server, Preset::LlamaCpp)
        .embed(&EmbeddingInput::texts(["a"]), &EmbeddingOptions::new().dimensions(4))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(server.requests().is_empty());
    // Mistral takes it under its own name (the mock ignores that name).
    embedder(&server, Preset::Mistral)
        .embed(&EmbeddingInput::texts(["a"]), &EmbeddingOptions::new().dimensions(4))
        .await
        .unwrap();
    assert_eq!(bodies(&server)[0]["output_dimension"], 4);
    // No inputs, no request.
    let out = embedder(&server, Preset::OpenAI).embed(&[], &EmbeddingOptions::new()).await.unwrap();
    assert!(out.vectors.is_empty());
    assert_eq!(bodies(&server).len(), 1);
}

/// One failed part fails the call and names its inputs; errors are classified as for chat.
#[tokio::test]
async fn a_failed_part_names_its_inputs() {
    let too_long = Reply::status(400).body(json!({"error": {"message": "This model's maximum context length is 8192 tokens, however you requested 9000 tokens", "type": "invalid_request_error", "code": "context_length_exceeded"}}));
    let server = MockServer::start_with(Script::new().on(Match::contains("number 4"), too_long)).await.unwrap();
    let b = embedder(&server, small_batches(3, 1_000_000));
    let e = b.embed(&EmbeddingInput::texts(texts(10)), &EmbeddingOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextOverflow);
    assert!(e.to_string().contains("inputs 3..6 of 10"), "{e}");
    assert_eq!(e.model(), Some("embed-model"));

    let missing = Reply::status(404).body(json!({"error": "model 'nomic-embed-text' not found, try pulling it first"}));
    let server = MockServer::start_with(Script::new().always(missing)).await.unwrap();
    let e = embedder(&server, Preset::Ollama)
        .embed(&EmbeddingInput::texts(["a"]), &EmbeddingOptions::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ModelNotFound);
    assert!(!e.to_string().contains("inputs"), "a single request names no range: {e}");
}

/// llama.cpp without embeddings: llama-server's 501 and llama-cpp-python's 500 become
/// `Unsupported` saying how to turn them on, and are not retried.
#[tokio::test]
async fn llamacpp_without_embeddings_is_unsupported() {
    let bodies_ = [
        (
            501,
            json!({"error": {"code": 501, "message": "This server does not support embeddings. Start it with `--embeddings`", "type": "not_supported_error"}}),
        ),
        (
            500,
            json!({"error": {"message": "Llama model must be created with embedding=True to call this method", "type": "internal_server_error"}}),
        ),
    ];
    for (status, body) in bodies_ {
        let server = MockServer::start_with(Script::new().always(Reply::status(status).body(body))).await.unwrap();
        let b = OpenAICompatibleBackend::builder("smollm")
            .preset(Preset::LlamaCpp)
            .base_url(server.base_url())
            .retry_policy(RetryPolicy::default().jitter(false))
            .build()
            .unwrap();
        let e = b.embed(&EmbeddingInput::texts(["a"]), &EmbeddingOptions::new()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("--embeddings"), "{e}");
        assert_eq!(server.requests().len(), 1, "not retried");
    }
}

/// Retryable failures are retried by the backend's policy, as for chat.
#[tokio::test(start_paused = true)]
async fn overload_is_retried() {
    let script = Script::new().rule(Rule::new(Match::any(), Reply::status(503)).times(2));
    let server = MockServer::start_with(script).await.unwrap();
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .retry_policy(RetryPolicy::default().jitter(false))
        .build()
        .unwrap();
    let out = b.embed(&EmbeddingInput::texts(["x"]), &EmbeddingOptions::new()).await.unwrap();
    assert_eq!(out.vectors.len(), 1);
    assert_eq!(server.requests().len(), 3);
}

/// The pool sends embeddings through its endpoints' `as_embedder`, fails over on retryable
/// errors and feeds the breakers.
#[tokio::test]
async fn pool_fails_over_and_feeds_breakers() {
    let down = MockServer::start_with(Script::new().always(Reply::status(503))).await.unwrap();
    let up = MockServer::start().await.unwrap();
    let pool = BackendPool::builder()
        .endpoint(Arc::new(embedder(&down, Preset::Vllm)))
        .endpoint(Arc::new(embedder(&up, Preset::Vllm)))
        .failure_threshold(1)
        .build()
        .unwrap();
    let t = texts(4);
    for _ in 0..2 {
        let out = pool.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap();
        assert_eq!(out.vectors, expected(&t, 8));
    }
    assert_eq!(pool.breaker_states(), [BreakerState::Open, BreakerState::Closed(0)]);
    assert_eq!(down.requests().len(), 1, "the open breaker kept the second call away");
    // A pool is itself an embedder for an outer pool.
    let as_dyn: Arc<dyn ModelBackend> = Arc::new(pool);
    assert!(as_dyn.as_embedder().is_some());
    let outer = BackendPool::builder().endpoint(as_dyn).build().unwrap();
    assert_eq!(outer.embed(&EmbeddingInput::texts(&t), &EmbeddingOptions::new()).await.unwrap().vectors.len(), 4);
}

/// A generic backend pointed at llama.cpp without embeddings gets the same `Unsupported`.
#[tokio::test]
async fn generic_preset_recognises_llamacpp_without_embeddings() {
    let body = json!({"error": {"message": "Llama model must be created with embedding=True to call this method", "type": "internal_server_error"}});
    let server = MockServer::start_with(Script::new().always(Reply::status(500).body(body))).await.unwrap();
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .retry_policy(RetryPolicy::default().jitter(false))
        .build()
        .unwrap();
    let e = b.embed(&EmbeddingInput::texts(["a"]), &EmbeddingOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("--embedding true"), "{e}");
    assert_eq!(server.requests().len(), 1, "not retried");
}
