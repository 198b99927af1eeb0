//! # mamba-serve
//!
//! Any [`ModelBackend`](mamba_backends::ModelBackend) as an OpenAI-compatible HTTP server:
//! the built-in model, one upstream server, or a [`BackendPool`](mamba_backends::BackendPool)
//! of replicas with failover, circuit breakers and fallbacks. `mamba-llm serve` is a thin
//! layer over this crate.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /v1/chat/completions` | whole answers, or SSE relayed chunk by chunk with `[DONE]`; `stream_options.include_usage` |
//! | `POST /v1/responses` | the Responses API: a `response` object, or its typed SSE events relayed as they arrive |
//! | `POST /v1/embeddings` | when the backend has embeddings; float or base64 vectors |
//! | `GET /v1/models` | the served model ids |
//! | `GET /health` | 200 once the backend answers, else 503; a pool's endpoints one by one (`degraded`, `unavailable`) |
//! | `GET /metrics` | Prometheus: requests, errors by kind, tokens, TTFT and latency histograms |
//! | `GET /` | a small chat page |
//!
//! Requests are read leniently (content parts, tool messages, `developer` messages; unknown
//! fields reach the upstream as they came). Errors have OpenAI's shape and the status clients
//! expect: 400 invalid request or context overflow (`context_length_exceeded`), 401 without
//! the key, 404 unknown model, 408 body stalled past the body timeout (or not in by the
//! request timeout), 413 body too large, 415 body not sent as `application/json`, 429 with `Retry-After` when the queue is
//! full, 503 when no upstream can answer, 504 on timeout; an upstream's own HTTP error keeps
//! its status and message. A client that disconnects drops its upstream request. Every
//! request writes one access-log line through `tracing` (target `mamba_serve::access`), one
//! whose client hung up too (status 499).
//!
//! A web page cannot drive the server unless allowed: bodies must be JSON, CORS preflights
//! are answered only for [`ServeConfig::cors_origin`]s, and on a loopback address requests
//! for another `Host` (DNS rebinding) get 403. `GET` endpoints answer `HEAD`; 405s carry
//! `Allow`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mamba_backends::OpenAICompatibleBackend;
//! use mamba_serve::{Limits, ServeConfig, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = OpenAICompatibleBackend::builder("qwen2.5-7b").base_url("http://gpu-1:8000/v1").build()?;
//! let config = ServeConfig::new(Arc::new(upstream)).api_key("s3cret").limits(Limits::new().max_concurrent(16));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Server::new(config).serve(listener, mamba_serve::shutdown_signal()).await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod chat_answer;
mod config;
mod error;
mod metrics;
mod request;
mod responses_answer;
mod responses_request;
mod server;

pub use config::{Limits, ServeConfig, MAX_LIMIT};
pub use server::{shutdown_signal, Server};
