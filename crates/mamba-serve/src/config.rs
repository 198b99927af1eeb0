//! What a server serves and its limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mamba_backends::ModelBackend;

/// The limits of one server. Every one has a default; set them with the builder methods.
///
/// ```
/// use std::time::Duration;
/// use mamba_serve::Limits;
///
/// let limits = Limits::new().max_concurrent(8).max_queue(32).request_timeout(Duration::from_secs(60));
/// assert_eq!(limits.get_max_concurrent(), 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub(crate) max_body_bytes: usize,
    pub(crate) max_concurrent: usize,
    pub(crate) max_queue: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            max_concurrent: 64,
            max_queue: 256,
            request_timeout: Duration::from_secs(600),
            grace: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The defaults: 8 MiB bodies, 64 requests at once, 256 queued, 600 s to the first token
    /// (the whole answer when not streamed), 30 s of grace at shutdown.
    pub fn new() -> Limits {
        Limits::default()
    }

    /// The largest request body accepted; larger ones get 413.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Limits {
        self.max_body_bytes = bytes;
        self
    }

    /// Requests sent to the backend at once (at least 1).
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Limits {
        self.max_concurrent = n.max(1);
        self
    }

    /// Requests waiting for a slot; beyond them a request gets 429 with `Retry-After`.
    #[must_use]
    pub fn max_queue(mut self, n: usize) -> Limits {
        self.max_queue = n;
        self
    }

    /// How long a request may wait for its answer (for a stream: its first token, queueing
    /// included); then 504.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Limits {
        self.request_timeout = timeout;
        self
    }

    /// After SIGINT or SIGTERM, how long requests in flight may take to finish.
    #[must_use]
    pub fn grace_period(mut self, grace: Duration) -> Limits {
        self.grace = grace;
        self
    }

    /// The concurrency limit.
    pub fn get_max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// The grace period at shutdown.
    pub fn get_grace_period(&self) -> Duration {
        self.grace
    }
}

/// What to serve: a backend under a model name, with an optional API key and limits.
///
/// ```
/// use std::sync::Arc;
/// use mamba_backends::create_ollama_backend;
/// use mamba_serve::{Limits, ServeConfig};
///
/// let config = ServeConfig::new(Arc::new(create_ollama_backend("llama3.2")))
///     .alias("gpt-4o-mini")
///     .api_key("s3cret")
///     .limits(Limits::new().max_concurrent(4));
/// assert_eq!(config.model_ids(), ["llama3.2", "gpt-4o-mini"]);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct ServeConfig {
    pub(crate) backend: Arc<dyn ModelBackend>,
    pub(crate) models: Vec<String>,
    pub(crate) api_key: Option<String>,
    pub(crate) limits: Limits,
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("backend", &self.backend.name())
            .field("models", &self.models)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("limits", &self.limits)
            .finish()
    }
}

impl ServeConfig {
    /// Serves `backend` under its model name.
    pub fn new(backend: Arc<dyn ModelBackend>) -> ServeConfig {
        let model = backend.model().to_owned();
        ServeConfig { backend, models: vec![model], api_key: None, limits: Limits::default() }
    }

    /// Serves the backend under this name instead of its model name.
    #[must_use]
    pub fn model_name(mut self, name: impl Into<String>) -> ServeConfig {
        self.models[0] = name.into();
        self
    }

    /// Another name clients may ask for (listed in `/v1/models` too).
    #[must_use]
    pub fn alias(mut self, name: impl Into<String>) -> ServeConfig {
        let name = name.into();
        if !self.models.contains(&name) {
            self.models.push(name);
        }
        self
    }

    /// Requires `Authorization: Bearer <key>` on `/v1/*` (compared in constant time).
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> ServeConfig {
        self.api_key = Some(key.into());
        self
    }

    /// The limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> ServeConfig {
        self.limits = limits;
        self
    }

    /// The model ids served, the default first.
    pub fn model_ids(&self) -> &[String] {
        &self.models
    }
}
