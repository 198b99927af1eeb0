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
//! ## The crate's map
//!
//! The root holds what an agent author uses every day: the backend and its factories, the
//! model trait, messages, options, answers, streams, tools, presets, retries, the pool,
//! errors, and the seed's profile registry. Everything else is in a module named for its
//! topic; a module holds its whole topic, so the few root names of a topic are there too.
//!
//! | module | what it holds |
//! |---|---|
//! | [`backend`] | [`ModelBackend`], the [`ChunkStream`](backend::ChunkStream) it streams, [`OpenAICompatibleBackend`], its [`OpenAICompatibleBackendBuilder`](backend::OpenAICompatibleBackendBuilder), the factories |
//! | [`message`] | [`Message`] and its parts: [`Role`](message::Role), [`Content`](message::Content), [`ContentPart`](message::ContentPart), [`ImageDetail`](message::ImageDetail), [`ReasoningItem`](message::ReasoningItem) |
//! | [`options`] | [`RequestOptions`], [`ResponseFormat`], [`ReasoningEffort`](options::ReasoningEffort), [`ReasoningSummary`](options::ReasoningSummary) |
//! | [`stream`] | [`StreamChunk`], [`StreamAccumulator`], [`collect`], [`ToolCallDelta`](stream::ToolCallDelta) |
//! | [`structured`] | typed structured output: [`Extract`], [`ExtractOptions`], [`ExtractMode`], [`Extracted`], and the pure steps ([`translate`](structured::translate), [`parse_lenient`](structured::parse_lenient), [`Validator`](structured::Validator), [`complete_partial`](structured::complete_partial)) |
//! | [`preset`] | [`Preset`] and the settings a custom one is made of: [`PresetSpec`](preset::PresetSpec), [`WireApi`](preset::WireApi), [`AuthStyle`](preset::AuthStyle), … |
//! | [`pool`] | [`BackendPool`], [`BackendPoolBuilder`](pool::BackendPoolBuilder), [`BreakerState`](pool::BreakerState) |
//! | [`embeddings`] | the [`Embedder`](embeddings::Embedder) trait, its inputs, options and [`Embeddings`](embeddings::Embeddings) |
//! | [`health`] | [`HealthReport`](health::HealthReport), [`ModelInfo`](health::ModelInfo) |
//! | [`batches`] | the Files and Batch APIs: the [`Batches`](batches::Batches) handle of [`OpenAICompatibleBackend::batches`], its objects |
//! | [`raw`] | [`PostJson`](raw::PostJson): a JSON body sent as given, the server's [`RawResponse`](raw::RawResponse) back |
//! | [`http`] | the built-in HTTP/1.1 client: [`HttpClient`](http::HttpClient), [`Proxy`](http::Proxy), TLS settings |
//! | [`transport`] | the [`Transport`](transport::Transport) seam under the backend (and `ReqwestTransport`) |
//! | [`redact`] | secrets taken out of URLs and text before they are shown |
//!
//! ## Conventions
//!
//! * Builders and option sets ([`OpenAICompatibleBackendBuilder`](backend::OpenAICompatibleBackendBuilder),
//!   [`RequestOptions`], [`RetryPolicy`], [`ModelProfile`], [`PresetSpec`](preset::PresetSpec),
//!   [`BackendPoolBuilder`](pool::BackendPoolBuilder)) take setters named after what they set
//!   (`.temperature(0.2)`, `.reasoning(true)`).
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
//! | `reqwest` | no | `transport::ReqwestTransport`: the [`Transport`](transport::Transport) seam over reqwest, for HTTP/2 or reqwest middleware. |
//!
//! The crate needs a Tokio runtime with I/O and time enabled.

#![deny(missing_docs)]
#![warn(unused_crate_dependencies)]

pub mod backend;
pub mod batches;
#[cfg(feature = "__bench")]
#[doc(hidden)]
pub mod bench_api;
mod classify;
mod detect;
pub mod embeddings;
mod error;
pub mod health;
pub mod http;
pub mod message;
mod model_backend;
mod openai_compat;
pub mod options;
pub mod pool;
mod post_json;
pub mod preset;
mod profile;
pub mod raw;
pub mod redact;
mod retry;
mod sse;
pub mod stream;
pub mod structured;
mod think;
pub mod transport;
#[cfg(feature = "reqwest")]
mod transport_reqwest;
mod types;

pub use backend::{
    create_lmstudio_backend, create_ollama_backend, create_vllm_backend, ModelBackend, OpenAICompatibleBackend,
};
pub use error::{Error, ErrorKind};
pub use options::{RequestOptions, ResponseFormat};
pub use pool::BackendPool;
pub use preset::Preset;
pub use profile::{get_profile, get_profiles_by_provider, list_profiles, register_profile, ModelProfile};
pub use retry::RetryPolicy;
/// The `schemars` [`Extract`] takes schemas from. With `use mamba_backends::schemars::{self,
/// JsonSchema};` in scope, `#[derive(JsonSchema)]` works without a direct dependency (the derive
/// names `schemars::…`), so the versions always match.
pub use schemars;
pub use stream::{collect, StreamAccumulator, StreamChunk};
pub use structured::{Extract, ExtractMode, ExtractOptions, Extracted};
pub use types::{FinishReason, Message, ModelResponse, ToolCall, ToolChoice, ToolDefinition, Usage};

/// The README's examples compile.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

// Dev-dependencies used by the integration tests only.
#[cfg(test)]
use {mamba_mock as _, proc_macro2 as _, rcgen as _, syn as _, tokio as _, tracing_subscriber as _};
