//! Raw JSON requests: [`PostJson`] sends a JSON body exactly as given and [`RawResponse`] is
//! the server's answer unchanged, for callers that must keep the server's own JSON (batch
//! runners, proxies) rather than the typed [`ModelResponse`](crate::ModelResponse).
//!
//! This is not part of [`ModelBackend`], which speaks in messages and typed answers: a backend
//! that can send raw bodies says so with [`ModelBackend::as_post_json`], as one with embeddings
//! does with `as_embedder`, and [`post_json`] sends through any backend, failing with
//! `Unsupported` when it has none. The [`OpenAICompatibleBackend`](crate::OpenAICompatibleBackend)
//! and the [`BackendPool`](crate::BackendPool) implement it.

use bytes::Bytes;

use crate::backend::ModelBackend;
use crate::error::{Error, ErrorKind};
pub use crate::post_json::{PostJson, RawResponse};

/// Sends `body` as given to `path` through `backend`'s raw requests
/// ([`ModelBackend::as_post_json`]); a backend without them fails with
/// [`ErrorKind::Unsupported`].
///
/// ```no_run
/// use bytes::Bytes;
/// use mamba_backends::{create_ollama_backend, raw};
///
/// # async fn run() -> Result<(), mamba_backends::Error> {
/// let backend = create_ollama_backend("llama3.2");
/// let body = Bytes::from_static(br#"{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}"#);
/// let answer = raw::post_json(&backend, "/chat/completions", body).await?;
/// println!("{}", answer.status);
/// # Ok(()) }
/// ```
pub async fn post_json(backend: &dyn ModelBackend, path: &str, body: Bytes) -> Result<RawResponse, Error> {
    match backend.as_post_json() {
        Some(raw) => raw.post_json(path, body).await,
        None => {
            Err(Error::new(ErrorKind::Unsupported, format!("the {} backend cannot send JSON bodies", backend.name())))
        }
    }
}
