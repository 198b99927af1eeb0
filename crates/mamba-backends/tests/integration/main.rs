//! Integration tests: the backend against real HTTP servers on 127.0.0.1 that answer with
//! recorded or scripted bytes. Each test's doc names the server whose behaviour it pins.

#![allow(clippy::unwrap_used, clippy::print_stderr, unreachable_pub)]

mod batches;
mod complete;
mod connecting;
mod embeddings;
mod errors;
mod faults;
mod hostile;
mod imports;
mod live;
mod peers_embeddings;
mod peers_replay;
mod proxy;
mod quirks;
mod raw;
mod redaction;
mod responses;
mod seam;
mod streaming;
mod structured;
mod support;
mod surface;
mod text_completions;
mod tls;
mod tracing_spans;
mod transport;

use std::time::Duration;

use mamba_backends::{
    collect, Message, ModelBackend, ModelResponse, OpenAICompatibleBackend, Preset, RequestOptions, RetryPolicy,
};

/// A backend for `url` with short timeouts.
pub fn backend(url: &str) -> OpenAICompatibleBackend {
    builder(url).build().expect("backend")
}

pub fn builder(url: &str) -> mamba_backends::backend::OpenAICompatibleBackendBuilder {
    OpenAICompatibleBackend::builder("test-model")
        .base_url(url)
        .preset(Preset::Generic)
        .timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy::none())
}

/// A streamed answer, collected; an error before the first chunk comes from `stream()`
/// itself, a later one from the stream.
pub async fn stream_answer(
    backend: &impl ModelBackend,
    messages: &[Message],
    options: &RequestOptions,
) -> Result<ModelResponse, mamba_backends::Error> {
    collect(backend.stream(messages, options).await?).await
}
