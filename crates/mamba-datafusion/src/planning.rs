//! A backend that answers nothing: for processes that only plan queries (a Ballista client or
//! scheduler), where the functions must exist by name and type but rows are answered
//! elsewhere. Running one fails with a message saying where rows are answered.

use async_trait::async_trait;
use mamba_backends::embeddings::{Embedder, EmbeddingInput, EmbeddingOptions, Embeddings};
use mamba_backends::{Error, ErrorKind, Message, ModelBackend, ModelProfile, ModelResponse, RequestOptions};

/// Why a planning-only function refuses to run.
pub(crate) const REFUSAL: &str =
    "this process only plans queries: llm(), llm_json() and embed() run on the cluster's executors, with their own server settings";

#[derive(Debug)]
pub(crate) struct PlanOnly {
    profile: ModelProfile,
}

impl PlanOnly {
    pub(crate) fn new() -> PlanOnly {
        PlanOnly { profile: ModelProfile::unknown() }
    }

    fn refuse() -> Error {
        Error::new(ErrorKind::Unsupported, REFUSAL)
    }
}

#[async_trait]
impl ModelBackend for PlanOnly {
    fn name(&self) -> &str {
        "plan-only"
    }

    fn model(&self) -> &str {
        ""
    }

    fn profile(&self) -> &ModelProfile {
        &self.profile
    }

    async fn complete(&self, _: &[Message], _: &RequestOptions) -> Result<ModelResponse, Error> {
        Err(PlanOnly::refuse())
    }

    async fn health_check(&self) -> bool {
        false
    }

    fn as_embedder(&self) -> Option<&dyn Embedder> {
        Some(self)
    }
}

#[async_trait]
impl Embedder for PlanOnly {
    async fn embed(&self, _: &[EmbeddingInput], _: &EmbeddingOptions) -> Result<Embeddings, Error> {
        Err(PlanOnly::refuse())
    }
}
