//! Integration tests: the backend against real HTTP servers on 127.0.0.1 that answer with
//! recorded or scripted bytes. Each test's doc names the server whose behaviour it pins.

#![allow(clippy::unwrap_used, clippy::print_stderr, unreachable_pub)]

mod complete;
mod errors;
mod peers_replay;
mod quirks;
mod redaction;
mod streaming;
mod support;

use std::time::Duration;

use mamba_backends::{OpenAICompatibleBackend, Preset};

/// A backend for `url` with short timeouts.
pub fn backend(url: &str) -> OpenAICompatibleBackend {
    builder(url).build().expect("backend")
}

pub fn builder(url: &str) -> mamba_backends::OpenAICompatibleBackendBuilder {
    OpenAICompatibleBackend::builder("test-model")
        .base_url(url)
        .preset(Preset::Generic)
        .timeout(Duration::from_secs(10))
}
