//! What a server serves and its limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mamba_backends::{BackendPool, ModelBackend};

/// The longest time any limit takes (about 100 years): `Instant + Duration::MAX` panics,
/// and no request waits this long anyway.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The most requests or connections a limit counts (tokio's semaphore holds no more).
pub const MAX_LIMIT: usize = tokio::sync::Semaphore::MAX_PERMITS;

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
    pub(crate) body_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            max_concurrent: 64,
            max_queue: 256,
            request_timeout: Duration::from_secs(600),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            grace: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The defaults: 8 MiB bodies, 64 requests at once, 256 queued, 600 s to the first token
    /// (the whole answer when not streamed), 30 s to read a request's head or for its body to
    /// stall, 4096
    /// connections open at once, 30 s of grace at shutdown.
    pub fn new() -> Limits {
        Limits::default()
    }

    /// The largest request body accepted; larger ones get 413.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Limits {
        self.max_body_bytes = bytes;
        self
    }

    /// Requests sent to the backend at once (at least 1, at most [`MAX_LIMIT`]).
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Limits {
        self.max_concurrent = n.clamp(1, MAX_LIMIT);
        self
    }

    /// Requests waiting for a slot; beyond them a request gets 429 with `Retry-After`.
    #[must_use]
    pub fn max_queue(mut self, n: usize) -> Limits {
        self.max_queue = n.min(MAX_LIMIT);
        self
    }

    /// How long a request may wait for its answer (for a stream: its first token), counted
    /// from its head: reading the body and queueing are included; then 504 (408 while the
    /// body is still arriving). Longer than about 100 years counts as 100 years.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Limits {
        self.request_timeout = timeout.min(MAX_WAIT);
        self
    }

    /// How long a client may take to send a request's head, and how long its body may stall
    /// (no bytes at all): then 408 and the connection is closed. A body that keeps arriving,
    /// however slowly, is bounded by [`Limits::request_timeout`] instead. Idle keep-alive
    /// connections are closed after it too.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Limits {
        self.body_timeout = timeout.min(MAX_WAIT);
        self
    }

    /// Connections open at once (at least 1, at most [`MAX_LIMIT`]); past it, new connections wait in the
    /// listener's backlog until one closes.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Limits {
        self.max_connections = n.clamp(1, MAX_LIMIT);
        self
    }

    /// After SIGINT or SIGTERM, how long requests in flight may take to finish.
    #[must_use]
    pub fn grace_period(mut self, grace: Duration) -> Limits {
        self.grace = grace.min(MAX_WAIT);
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
    pub(crate) pool: Option<BackendPool>,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) public_metrics: bool,
    pub(crate) public_page: bool,
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("backend", &self.backend.name())
            .field("models", &self.models)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("limits", &self.limits)
            .field("cors_origins", &self.cors_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("public_metrics", &self.public_metrics)
            .field("public_page", &self.public_page)
            .finish_non_exhaustive()
    }
}

impl ServeConfig {
    /// Serves `backend` under its model name.
    pub fn new(backend: Arc<dyn ModelBackend>) -> ServeConfig {
        let model = backend.model().to_owned();
        ServeConfig {
            backend,
            models: vec![model],
            api_key: None,
            limits: Limits::default(),
            pool: None,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            public_metrics: false,
            public_page: false,
        }
    }

    /// Serves a pool of replicas; `/health` then reports each endpoint (its probe and its
    /// circuit breaker): `degraded` while some fail, 503 `unavailable` when none is healthy.
    pub fn from_pool(pool: BackendPool) -> ServeConfig {
        let mut config = ServeConfig::new(Arc::new(pool.clone()));
        config.pool = Some(pool);
        config
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

    /// Requires `Authorization: Bearer <key>` on `/v1/*` (compared in constant time), and on
    /// `/metrics` and the chat page unless they are made [public](ServeConfig::public_metrics).
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> ServeConfig {
        self.api_key = Some(key.into());
        self
    }

    /// Lets a web page from `origin` (e.g. `http://localhost:3000`, or `*` for any) call the
    /// API: its CORS preflights are answered and its responses carry
    /// `Access-Control-Allow-Origin`. Other origins get neither.
    #[must_use]
    pub fn cors_origin(mut self, origin: impl Into<String>) -> ServeConfig {
        self.cors_origins.push(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// On a loopback address, a `Host` name accepted besides `localhost` and loopback
    /// addresses (others get 403, so DNS rebinding cannot reach the server). `*` accepts
    /// any `Host`: it turns that DNS-rebinding check off.
    #[must_use]
    pub fn allowed_host(mut self, name: impl Into<String>) -> ServeConfig {
        self.allowed_hosts.push(name.into().to_ascii_lowercase());
        self
    }

    /// With an API key: `/metrics` answers without it (default: the key is needed).
    #[must_use]
    pub fn public_metrics(mut self, yes: bool) -> ServeConfig {
        self.public_metrics = yes;
        self
    }

    /// With an API key: the chat page (`/`) loads without it (default: the key is needed;
    /// the page asks for the key for its own requests either way).
    #[must_use]
    pub fn public_page(mut self, yes: bool) -> ServeConfig {
        self.public_page = yes;
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
