//! Legacy text completions (`POST {base_url}/completions`): a prompt in, text out. The API
//! vLLM's, SGLang's and llama.cpp's own benchmarks use, and what base (non-chat) models serve.
//! Requests are written by the chat writer's rules (the preset's renames, extras and refusals);
//! responses and streams are read by the chat readers, which take a choice's `text` as its
//! content.

use bytes::Bytes;

use super::api_choice::Api;
use super::request::{to_text_body, TextRequest};
use super::OpenAICompatibleBackend;
use crate::backend::ChunkStream;
use crate::error::Error;
use crate::options::RequestOptions;
use crate::types::ModelResponse;

impl OpenAICompatibleBackend {
    /// Completes `prompt` with the text-completions API (`/completions`), with the same retries,
    /// timeouts and errors as [`complete`](crate::ModelBackend::complete). Tools and response
    /// formats are chat-only: options that set them fail with
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) before anything is sent.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), mamba_backends::Error> {
    /// use mamba_backends::{OpenAICompatibleBackend, RequestOptions};
    ///
    /// let backend = OpenAICompatibleBackend::builder("my-model").base_url("http://localhost:8000/v1").build()?;
    /// let answer = backend.complete_text("The capital of France is", &RequestOptions::new().max_tokens(8)).await?;
    /// println!("{}", answer.content);
    /// # Ok(()) }
    /// ```
    pub async fn complete_text(&self, prompt: &str, options: &RequestOptions) -> Result<ModelResponse, Error> {
        let s = &*self.shared;
        let body = self.text_body(prompt, options, false)?;
        let span = s.span(options, false, "text_completion");
        s.trace_prompt(&span, &body);
        let head_timeout = s.timeouts.complete_headers;
        // The answers have chat's shape (with `text` choices): chat's reader reads them.
        self.complete_with(span, || async { Ok((Api::Chat, s.post(&s.completions_uri, &body, head_timeout).await?)) })
            .await
    }

    /// Streams the completion of `prompt` from the text-completions API, chunk by chunk, with
    /// the same contract as [`stream`](crate::ModelBackend::stream): exactly one final chunk
    /// with the finish reason and usage (asked for with `stream_options` where the preset says
    /// the server takes it).
    pub async fn stream_text(&self, prompt: &str, options: &RequestOptions) -> Result<ChunkStream, Error> {
        let s = &*self.shared;
        let body = self.text_body(prompt, options, true)?;
        let span = s.span(options, true, "text_completion");
        s.trace_prompt(&span, &body);
        let head_timeout = s.timeouts.headers;
        self.stream_with(span, || async { Ok((Api::Chat, s.post(&s.completions_uri, &body, head_timeout).await?)) })
            .await
    }

    fn text_body(&self, prompt: &str, options: &RequestOptions, stream: bool) -> Result<Bytes, Error> {
        let s = &*self.shared;
        to_text_body(&TextRequest { model: &s.model, prompt, options, stream, config: &s.wire })
            .map(Bytes::from)
            .map_err(|e| s.finish_error(e))
    }
}
