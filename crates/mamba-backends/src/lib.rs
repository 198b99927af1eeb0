//! # mamba-backends
//!
//! One async [`ModelBackend`] over every OpenAI-compatible chat-completions server: OpenAI,
//! Azure, Ollama, vLLM, llama.cpp, LM Studio, SGLang, TGI, LocalAI, LiteLLM, OpenRouter, Groq,
//! DeepSeek, Mistral, Together and Fireworks.
//!
//! * **Lenient in, strict out.** Every response shape real servers send is read (null or
//!   missing content, arguments as objects, unknown finish reasons, reasoning in any of its
//!   fields or in `<think>` tags, errors in any body shape); requests carry only what the
//!   target accepts ([`Preset`]).
//! * **Nothing is lost.** Streamed tool calls are assembled whole, a stream cut before the
//!   server finished is an error (never a silent end), and every failure is one [`Error`] with
//!   a kind, the status, the server's message, its body and `Retry-After`.
//! * **Cheap.** A small HTTP/1.1 transport whose bodies are read straight into the parser's
//!   buffer, typed parsing that borrows from it, an SSE decoder that does not allocate per
//!   event: less CPU per request and per stream than a pooled hyper client, and half its memory
//!   per open stream (BENCHMARKS.md).
//! * **Resilient.** Retries with backoff and `Retry-After` ([`RetryPolicy`]), connect, header,
//!   idle and total timeouts, and [`BackendPool`] for replicas with failover, circuit breakers
//!   and fallbacks.
//!
//! ```no_run
//! use mamba_backends::{collect, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions};
//!
//! # async fn run() -> Result<(), mamba_backends::Error> {
//! let backend = OpenAICompatibleBackend::builder("llama3.2")
//!     .base_url("http://localhost:11434/v1")
//!     .build()?;
//! let messages = [Message::system("Be brief."), Message::user("What is Rust?")];
//!
//! // One answer.
//! let answer = backend.complete(&messages, &RequestOptions::new().temperature(0.2)).await?;
//! println!("{}", answer.content);
//!
//! // Or streamed, then assembled into the same answer.
//! let stream = backend.stream(&messages, &RequestOptions::new()).await?;
//! let answer = collect(stream).await?;
//! println!("{} ({:?} tokens)", answer.content, answer.usage.map(|u| u.total_tokens));
//! # Ok(()) }
//! ```
//!
//! Errors are classified the same way whichever server sent them:
//!
//! ```
//! use mamba_backends::{Error, ErrorKind};
//!
//! fn should_shorten_prompt(e: &Error) -> bool {
//!     e.kind() == ErrorKind::ContextOverflow
//! }
//! ```
//!
//! ## Conventions
//!
//! * Builders and option sets ([`OpenAICompatibleBackendBuilder`], [`RequestOptions`],
//!   [`RetryPolicy`], [`ModelProfile`], [`PresetSpec`], [`BackendPoolBuilder`]) take setters named
//!   after what they set (`.temperature(0.2)`, `.reasoning(true)`).
//! * Finished values ([`Message`], [`ModelResponse`], [`StreamChunk`], [`ToolDefinition`],
//!   [`Error`]) are built by a constructor and changed with `with_*` methods that return the
//!   changed value (`ModelResponse::new("Paris.").with_usage(Usage::new(12, 3))`); structs that
//!   will grow are `#[non_exhaustive]`, so only these constructors make them outside this crate.
//! * A backend of your own implements [`ModelBackend`]: `complete` is required; `stream`
//!   defaults to the whole answer as one chunk, `health` and `list_models` to what can be known.
//! * A server this crate does not ship a preset for is described as data with
//!   [`Preset::custom`].
//!
//! ## Features
//!
//! | feature | default | what it gives |
//! |---|---|---|
//! | `rustls` | yes | `https://` URLs through rustls (ring; the OS roots, which honour `SSL_CERT_FILE`, and the webpki roots). Without it only `http://`. |
//! | `reqwest` | no | `ReqwestTransport`: the [`Transport`] seam over reqwest, for HTTP/2 or reqwest middleware. |
//!
//! The crate needs a Tokio runtime with I/O and time enabled.

#![deny(missing_docs)]
#![warn(unused_crate_dependencies)]

mod backend;
#[cfg(feature = "__bench")]
#[doc(hidden)]
pub mod bench_api;
mod classify;
mod detect;
mod embed;
mod error;
mod health;
mod http;
mod openai_compat;
mod options;
mod pool;
mod preset;
mod profile;
mod raw;
pub mod redact;
mod retry;
mod sse;
mod stream;
mod think;
mod transport;
#[cfg(feature = "reqwest")]
mod transport_reqwest;
mod types;

pub use backend::{ChunkStream, ModelBackend};
pub use embed::{Embedder, EmbeddingInput, EmbeddingOptions, Embeddings, EncodingFormat};
pub use error::{Error, ErrorKind};
pub use health::{HealthReport, ModelInfo};
#[cfg(feature = "rustls")]
pub use http::{AcceptAnyCertificate, Certificate, Identity};
pub use http::{HttpClient, HttpClientBuilder, HttpResponse, Proxy};
pub use openai_compat::{
    create_lmstudio_backend, create_ollama_backend, create_vllm_backend, FileDownload, OpenAICompatibleBackend,
    OpenAICompatibleBackendBuilder,
};
pub use options::{ReasoningEffort, ReasoningSummary, RequestOptions, ResponseFormat};
pub use pool::{BackendPool, BackendPoolBuilder, BreakerState};
pub use preset::{
    AuthStyle, EmbeddingSpec, FieldSupport, MaxTokensField, Preset, PresetSpec, Probe, StructuredOutput, WireApi,
};
pub use profile::{get_profile, get_profiles_by_provider, list_profiles, register_profile, ModelProfile};
pub use raw::RawResponse;
pub use retry::RetryPolicy;
pub use stream::{collect, StreamAccumulator, StreamChunk, ToolCallDelta};
pub use transport::{BodyStream, Transport, TransportRequest, TransportResponse};
#[cfg(feature = "reqwest")]
pub use transport_reqwest::ReqwestTransport;
pub use types::{BatchJob, BatchJobError, BatchList, BatchStatus, FileObject, RequestCounts};
pub use types::{
    Content, ContentPart, FinishReason, ImageDetail, Message, ModelResponse, ReasoningItem, Role, ToolCall, ToolChoice,
    ToolDefinition, Usage,
};

/// The README's examples compile.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

// Dev-dependencies used by the integration tests only.
#[cfg(test)]
use {mamba_mock as _, rcgen as _, tokio as _, tracing_subscriber as _};
