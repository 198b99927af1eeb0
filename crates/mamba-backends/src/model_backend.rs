//! The [`ModelBackend`] trait, what every backend (one server, a pool, a fallback chain)
//! offers, usable as `Arc<dyn ModelBackend>`, and the [`ChunkStream`] it streams. Published
//! by the [`backend`](crate::backend) module; this file holds only the trait and imports no
//! backend, so the backends (which implement it) import it one way.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;

use crate::error::{Error, ErrorKind};
use crate::health::{HealthReport, ModelInfo};
use crate::options::RequestOptions;
use crate::profile::ModelProfile;
use crate::raw::PostJson;
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
    ///
    /// The default, for backends that can only answer whole, calls [`complete`](Self::complete)
    /// and yields its answer as one chunk and the final chunk
    /// ([`StreamChunk::from_response`]).
    async fn stream(&self, messages: &[Message], options: &RequestOptions) -> Result<ChunkStream, Error> {
        let response = self.complete(messages, options).await?;
        Ok(stream_of(&response))
    }

    /// Whether the server is reachable: for HTTP backends, `GET {base_url}/models` answers
    /// 200, 401 or 403 (an authentication error still proves the server is there).
    async fn health_check(&self) -> bool;

    /// A detailed look at the server. The default reports only what
    /// [`health_check`](Self::health_check) says.
    async fn health(&self) -> HealthReport {
        HealthReport::new(self.health_check().await)
    }

    /// The models the server offers. The default fails with [`ErrorKind::Unsupported`].
    async fn list_models(&self) -> Result<Vec<ModelInfo>, Error> {
        Err(Error::new(ErrorKind::Unsupported, format!("the {} backend cannot list models", self.name())))
    }

    /// The backend's embeddings, when it has them (the [`OpenAICompatibleBackend`]
    /// and [`BackendPool`](crate::BackendPool) do). The default is `None`. A pool sends
    /// embedding calls to its endpoints through this, with the same failover and breakers as
    /// chat.
    fn as_embedder(&self) -> Option<&dyn crate::embeddings::Embedder> {
        None
    }

    /// The backend's raw JSON requests ([`PostJson`]), when it has them (the
    /// [`OpenAICompatibleBackend`] and
    /// [`BackendPool`](crate::BackendPool) do). The default is `None`. A pool sends raw
    /// requests to its endpoints through this, with the same failover and breakers as chat.
    fn as_post_json(&self) -> Option<&dyn PostJson> {
        None
    }

    /// Releases resources. Connections also close when the backend is dropped.
    async fn close(&self) {}
}

/// A whole answer as a [`ChunkStream`] (see [`StreamChunk::from_response`]).
pub(crate) fn stream_of(response: &ModelResponse) -> ChunkStream {
    Box::pin(futures_util::stream::iter(StreamChunk::from_response(response).map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::collect;
    use crate::types::{FinishReason, ToolCall, Usage};

    /// A backend written the way an outside crate would: only the public constructors.
    struct Canned(ModelProfile);

    #[async_trait]
    impl ModelBackend for Canned {
        fn name(&self) -> &str {
            "canned"
        }
        fn model(&self) -> &str {
            "canned-1"
        }
        fn profile(&self) -> &ModelProfile {
            &self.0
        }
        async fn complete(&self, _: &[Message], _: &RequestOptions) -> Result<ModelResponse, Error> {
            Ok(ModelResponse::new("Paris.")
                .with_reasoning("France's capital.")
                .with_tool_calls(vec![ToolCall::new("call_0", "lookup", r#"{"q":"France"}"#)])
                .with_usage(Usage::new(10, 3))
                .with_model("canned-1")
                .with_finish_reason(FinishReason::ToolCalls))
        }
        async fn health_check(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn default_stream_collects_to_the_complete_answer() {
        let backend: &dyn ModelBackend = &Canned(ModelProfile::unknown());
        let whole = backend.complete(&[], &RequestOptions::new()).await.unwrap();
        let streamed = collect(backend.stream(&[], &RequestOptions::new()).await.unwrap()).await.unwrap();
        assert_eq!(streamed, whole);
        assert_eq!(streamed.usage.map(|u| u.total_tokens), Some(13));
    }

    #[tokio::test]
    async fn default_health_and_models() {
        let backend: &dyn ModelBackend = &Canned(ModelProfile::unknown());
        assert!(backend.health().await.is_healthy());
        let err = backend.list_models().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("canned"), "{err}");
    }
}
