//! Backends: the [`ModelBackend`] trait, what every backend (one server, a pool, a fallback
//! chain) offers, usable as `Arc<dyn ModelBackend>`, and the [`ChunkStream`] it streams; the
//! [`OpenAICompatibleBackend`], its [`OpenAICompatibleBackendBuilder`] and the three
//! factories of the seed's API. All but the builder and [`ChunkStream`] are also at the crate
//! root.
//!
//! A facade: the trait lives in `model_backend.rs` and the backend in `openai_compat/`, and
//! nothing in the crate imports this file, so publishing both here makes no import cycle.

pub use crate::model_backend::{ChunkStream, ModelBackend};
pub use crate::openai_compat::{
    create_lmstudio_backend, create_ollama_backend, create_vllm_backend, OpenAICompatibleBackend,
    OpenAICompatibleBackendBuilder,
};
