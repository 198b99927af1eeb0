//! Real embeddings answers recorded from llama-cpp-python 0.3.36 (SmolLM2-135M, mean pooling,
//! `--embedding true`) and the LiteLLM proxy in front of it, replayed byte for byte.

use mamba_backends::{
    embeddings::{Embedder, EmbeddingInput, EmbeddingOptions},
    ErrorKind, OpenAICompatibleBackend, Preset, RetryPolicy,
};
use serde_json::Value;

use crate::support::{data, RawServer, Reply, Transcript};

const TEXTS: [&str; 2] = ["The capital of France is Paris.", "Embeddings map text to vectors."];

fn embedder(url: &str, preset: Preset) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("smollm2-135m-instruct")
        .preset(preset)
        .base_url(url)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

/// The vectors of a recorded body, read through `serde_json::Value` (the slow, obvious way).
fn recorded_vectors(path: &str) -> Vec<Vec<f32>> {
    let t = Transcript::load(&data(path));
    let body: Value = serde_json::from_slice(&t.body).unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

async fn replay(
    path: &str,
    preset: Preset,
) -> (RawServer, Result<mamba_backends::embeddings::Embeddings, mamba_backends::Error>) {
    let server = RawServer::fixed(Reply::transcript(&data(path), 4)).await;
    let b = embedder(&server.url(), preset);
    let out = b.embed(&EmbeddingInput::texts(TEXTS), &EmbeddingOptions::new()).await;
    (server, out)
}

/// llama.cpp and LiteLLM ignore `encoding_format: base64` and answer floats: read exactly.
#[tokio::test]
async fn float_answers_to_base64_requests() {
    for (path, preset, tokens, model) in [
        ("peers/llamacpp/embed_base64_ignored.http", Preset::LlamaCpp, Some(14), "smollm2-135m-instruct"),
        ("peers/llamacpp/embed_float.http", Preset::LlamaCpp, Some(14), "smollm2-135m-instruct"),
        ("peers/litellm/embed_base64.http", Preset::LiteLlm, None, "smollm2-embed"),
        ("peers/litellm/embed_float.http", Preset::LiteLlm, None, "smollm2-embed"),
    ] {
        let (server, out) = replay(path, preset).await;
        let out = out.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(out.vectors, recorded_vectors(path), "{path}");
        assert_eq!(out.vectors[0].len(), 576, "{path}: SmolLM2-135M's hidden size");
        assert_eq!(out.model.as_deref(), Some(model), "{path}");
        if let Some(tokens) = tokens {
            assert_eq!(out.usage.map(|u| u.input_tokens), Some(tokens), "{path}");
        }
        assert_eq!(server.requests()[0].json()["encoding_format"], "base64", "{path}: both presets ask for base64");
    }
}

/// llama-cpp-python started without `--embedding true`: its 500 becomes `Unsupported` with
/// the flag to use, not retried.
#[tokio::test]
async fn llamacpp_without_embedding_flag() {
    let (server, out) = replay("peers/llamacpp/embed_disabled.http", Preset::LlamaCpp).await;
    let e = out.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("--embedding true"), "{e}");
    assert_eq!(e.status(), Some(500));
    assert_eq!(server.request_count(), 1);
}

/// LiteLLM's unknown model is `ModelNotFound`.
#[tokio::test]
async fn litellm_unknown_model() {
    let (_server, out) = replay("peers/litellm/embed_unknown_model.http", Preset::LiteLlm).await;
    let e = out.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ModelNotFound, "{e}");
}
