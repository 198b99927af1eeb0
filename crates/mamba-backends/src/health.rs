//! What a backend can tell about its server: [`HealthReport`] and [`ModelInfo`].

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::preset::Preset;

/// What a backend found out about its server ([`ModelBackend::health`](crate::ModelBackend::health)).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The server answered (an HTTP backend: `GET {base_url}/models`, with any status); an
    /// in-process model: it is loaded.
    pub reachable: bool,
    /// That answer's status.
    pub status: Option<u16>,
    /// Time to that answer's headers.
    #[serde(rename = "latency_ms", serialize_with = "millis")]
    pub latency: Option<Duration>,
    /// `Some(false)` when the server rejected the key (401, 403); `None` when unknown.
    pub authenticated: Option<bool>,
    /// The server's readiness probe: `Some(false)` while it loads or starts (503).
    pub ready: Option<bool>,
    /// Whether the backend's model is in the list; `None` when no list was served.
    pub model_listed: Option<bool>,
    /// The model ids the server lists.
    pub models: Vec<String>,
    /// The kind of server, when it could be told from its answers.
    #[serde(serialize_with = "preset_name")]
    pub server_kind: Option<Preset>,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

fn millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

fn preset_name<S: serde::Serializer>(p: &Option<Preset>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(p.name()),
        None => s.serialize_none(),
    }
}

impl HealthReport {
    /// Reachable, not rejecting the key, and not loading. (A model missing from the list is
    /// reported but not counted: llama.cpp and others answer any model name.)
    pub fn is_healthy(&self) -> bool {
        self.reachable && self.authenticated != Some(false) && self.ready != Some(false)
    }

    /// A report that says only whether the server answered; fill in the rest as known.
    pub fn new(reachable: bool) -> HealthReport {
        HealthReport { reachable, ..HealthReport::default() }
    }
}

/// A model a server lists.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelInfo {
    /// The id to send as `model`.
    pub id: String,
    /// `owned_by`, when given.
    pub owned_by: Option<String>,
    /// The context window, when the server says (vLLM `max_model_len`, llama.cpp
    /// `meta.n_ctx`, OpenRouter and Together `context_length`, Groq `context_window`).
    pub context_window: Option<u64>,
    /// The entry as the server sent it.
    pub raw: Value,
}

impl ModelInfo {
    /// A model with only its id known.
    pub fn new(id: impl Into<String>) -> ModelInfo {
        ModelInfo { id: id.into(), owned_by: None, context_window: None, raw: Value::Null }
    }
}
