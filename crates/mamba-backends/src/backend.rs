//! The [`ModelBackend`] trait: what every backend (one server, a pool, a fallback chain)
//! offers, usable as `Arc<dyn ModelBackend>`.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;

use crate::error::Error;
use crate::options::RequestOptions;
use crate::profile::ModelProfile;
use crate::stream::StreamChunk;
use crate::types::{Message, ModelResponse};

/// A stream of answer chunks. It ends with one chunk whose `is_final` is set, or with an error.
/// Dropping it closes the connection, so the server stops generating.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamChunk, Error>> + Send + 'static>>;

/// A chat model behind some server.
///
/// ```
/// use std::sync::Arc;
/// use mamba_backends::{create_ollama_backend, ModelBackend};
///
/// let backend: Arc<dyn ModelBackend> = Arc::new(create_ollama_backend("llama3.2"));
/// assert_eq!(backend.name(), "openai_compatible");
/// assert_eq!(backend.model(), "llama3.2");
/// ```
#[async_trait]
pub trait ModelBackend: Send + Sync {
    /// The backend's kind, e.g. `"openai_compatible"`.
    fn name(&self) -> &str;

    /// The model requests are sent for.
    fn model(&self) -> &str;

    /// What is known about the model.
    fn profile(&self) -> &ModelProfile;

    /// One whole answer.
    async fn complete(&self, messages: &[Message], options: &RequestOptions) -> Result<ModelResponse, Error>;

    /// A streamed answer. It returns once the first chunk has arrived: every failure before
    /// that (an HTTP error, a connection that breaks, a server that sends nothing) is returned
    /// here, after the retries the backend's policy allows; failures after it are items of the
    /// stream and are never retried, since part of the answer already reached the caller.
    async fn stream(&self, messages: &[Message], options: &RequestOptions) -> Result<ChunkStream, Error>;

    /// Whether the server is reachable: `GET {base_url}/models` answers 200, 401 or 403 (an
    /// authentication error still proves the server is there).
    async fn health_check(&self) -> bool;

    /// Releases resources. Connections also close when the backend is dropped.
    async fn close(&self) {}
}
