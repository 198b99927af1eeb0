//! [`BackendPool`]: several endpoints serving one model, with least-outstanding-requests
//! choice, failover, a circuit breaker per endpoint, and a fallback chain to other backends.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use tokio::time::Instant;

use crate::backend::{ChunkStream, ModelBackend};
use crate::embeddings::{Embedder, EmbeddingInput, EmbeddingOptions, Embeddings};
use crate::error::{Error, ErrorKind};
use crate::health::{HealthReport, ModelInfo};
use crate::options::RequestOptions;
use crate::profile::ModelProfile;
use crate::raw::{PostJson, RawResponse};
use crate::stream::StreamChunk;
use crate::types::{Message, ModelResponse};

/// The state of one endpoint's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Taking traffic; the count of consecutive failures.
    Closed(u32),
    /// Refusing traffic until the cool-down ends.
    Open,
    /// One probe request is allowed through; its outcome closes or reopens the breaker.
    HalfOpen,
}

#[derive(Debug)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

struct Endpoint {
    backend: Arc<dyn ModelBackend>,
    outstanding: AtomicUsize,
    breaker: Mutex<Breaker>,
}

impl Endpoint {
    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The breaker is open and its cool-down not over.
    fn is_open(&self) -> bool {
        matches!(*self.breaker(), Breaker::Open { until } if Instant::now() < until)
    }
}

struct Fallback {
    backend: Arc<dyn ModelBackend>,
    on: Vec<ErrorKind>,
}

struct Inner {
    name: String,
    endpoints: Vec<Arc<Endpoint>>,
    fallbacks: Vec<Fallback>,
    failure_threshold: u32,
    cool_down: Duration,
    next: AtomicUsize,
}

/// Endpoints of one model behind one [`ModelBackend`], so a pool can replace a single backend
/// without other changes.
///
/// * Each request goes to the endpoint with the fewest requests in flight (ties in turn).
/// * A retryable failure (connection, timeout, 429, 5xx, a stream broken before its first
///   chunk) moves the request to the next endpoint; other errors are returned as they are.
/// * Each endpoint has a circuit breaker fed by real traffic: after `failure_threshold`
///   consecutive failures (default 5) it opens and the endpoint gets no requests for
///   `cool_down` (default 30 s); then one probe request decides whether it closes again.
/// * When every endpoint failed with a kind listed for a fallback (say `ContextOverflow`),
///   the fallback backends (another model, another pool) are tried in order.
///
/// Endpoints keep their own [`RetryPolicy`](crate::RetryPolicy): give them few retries, the
/// pool moves on to the next endpoint instead.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use mamba_backends::{BackendPool, ErrorKind, OpenAICompatibleBackend, Preset, RetryPolicy};
///
/// let replica = |url: &str| {
///     OpenAICompatibleBackend::builder("meta-llama/Llama-3.1-8B-Instruct")
///         .preset(Preset::Vllm)
///         .base_url(url)
///         .retry_policy(RetryPolicy::none())
///         .build()
/// };
/// let bigger = OpenAICompatibleBackend::builder("meta-llama/Llama-3.1-70B-Instruct").base_url("http://big:8000/v1").build()?;
/// let pool = BackendPool::builder()
///     .endpoint(Arc::new(replica("http://gpu-1:8000/v1")?))
///     .endpoint(Arc::new(replica("http://gpu-2:8000/v1")?))
///     .cool_down(Duration::from_secs(10))
///     .fallback(Arc::new(bigger), &[ErrorKind::ContextOverflow])
///     .build()?;
/// # let _ = pool;
/// # Ok::<(), mamba_backends::Error>(())
/// ```
#[derive(Clone)]
pub struct BackendPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for BackendPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendPool")
            .field("model", &self.model())
            .field("endpoints", &self.inner.endpoints.len())
            .field("fallbacks", &self.inner.fallbacks.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`BackendPool`].
#[must_use]
pub struct BackendPoolBuilder {
    endpoints: Vec<Arc<dyn ModelBackend>>,
    fallbacks: Vec<Fallback>,
    failure_threshold: u32,
    cool_down: Duration,
}

impl fmt::Debug for BackendPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendPoolBuilder").field("endpoints", &self.endpoints.len()).finish_non_exhaustive()
    }
}

impl BackendPoolBuilder {
    /// Adds an endpoint.
    pub fn endpoint(mut self, backend: Arc<dyn ModelBackend>) -> Self {
        self.endpoints.push(backend);
        self
    }

    /// Consecutive failures that open an endpoint's breaker. Default 5.
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }

    /// How long an open breaker refuses traffic before a probe. Default 30 s.
    pub fn cool_down(mut self, d: Duration) -> Self {
        self.cool_down = d;
        self
    }

    /// A backend to try when the endpoints failed with one of `on`.
    pub fn fallback(mut self, backend: Arc<dyn ModelBackend>, on: &[ErrorKind]) -> Self {
        self.fallbacks.push(Fallback { backend, on: on.to_vec() });
        self
    }

    /// Builds the pool; at least one endpoint is needed.
    pub fn build(self) -> Result<BackendPool, Error> {
        let Some(first) = self.endpoints.first() else {
            return Err(Error::config("a BackendPool needs at least one endpoint"));
        };
        let name = format!("pool({})", first.name());
        Ok(BackendPool {
            inner: Arc::new(Inner {
                name,
                endpoints: self
                    .endpoints
                    .into_iter()
                    .map(|backend| {
                        Arc::new(Endpoint {
                            backend,
                            outstanding: AtomicUsize::new(0),
                            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
                        })
                    })
                    .collect(),
                fallbacks: self.fallbacks,
                failure_threshold: self.failure_threshold,
                cool_down: self.cool_down,
                next: AtomicUsize::new(0),
            }),
        })
    }
}

/// Counts a request in flight on an endpoint; records its outcome in the breaker.
struct Lease {
    endpoint: Arc<Endpoint>,
    threshold: u32,
    cool_down: Duration,
    settled: bool,
}

impl Lease {
    fn settle(&mut self, outcome: Result<(), &Error>) {
        if self.settled {
            return;
        }
        self.settled = true;
        let failed = outcome.err().is_some_and(Error::is_retryable);
        let mut breaker = self.endpoint.breaker();
        *breaker = match (&*breaker, failed) {
            (_, false) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, true) if failures + 1 < self.threshold => {
                Breaker::Closed { failures: failures + 1 }
            }
            (_, true) => {
                tracing::warn!(cool_down_ms = self.cool_down.as_millis() as u64, "endpoint circuit breaker opened");
                Breaker::Open { until: Instant::now() + self.cool_down }
            }
        };
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.outstanding.fetch_sub(1, Ordering::SeqCst);
        if !self.settled {
            // Cancelled: no verdict. A probe that was cancelled lets another one through.
            let mut breaker = self.endpoint.breaker();
            if let Breaker::HalfOpen { probing } = &mut *breaker {
                *probing = false;
            }
        }
    }
}

impl BackendPool {
    /// A builder.
    pub fn builder() -> BackendPoolBuilder {
        BackendPoolBuilder {
            endpoints: Vec::new(),
            fallbacks: Vec::new(),
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }

    /// The breaker state of each endpoint, in the order they were added.
    pub fn breaker_states(&self) -> Vec<BreakerState> {
        let now = Instant::now();
        self.inner
            .endpoints
            .iter()
            .map(|e| match *e.breaker() {
                Breaker::Closed { failures } => BreakerState::Closed(failures),
                Breaker::Open { until } if now >= until => BreakerState::HalfOpen,
                Breaker::Open { .. } => BreakerState::Open,
                Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
            })
            .collect()
    }

    /// Each endpoint's own [`ModelBackend::health_check`] (probed at once), in the order they
    /// were added; with [`breaker_states`](BackendPool::breaker_states) it tells which
    /// endpoints can serve.
    pub async fn endpoint_health_checks(&self) -> Vec<bool> {
        futures_util::future::join_all(self.inner.endpoints.iter().map(|e| e.backend.health_check())).await
    }

    /// Requests in flight on each endpoint.
    pub fn outstanding(&self) -> Vec<usize> {
        self.inner.endpoints.iter().map(|e| e.outstanding.load(Ordering::SeqCst)).collect()
    }

    /// Picks the available endpoint with the fewest requests in flight, skipping `tried`.
    fn lease(&self, tried: &[usize]) -> Result<(usize, Lease), Error> {
        let n = self.inner.endpoints.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut best: Option<(usize, usize)> = None;
        let mut soonest: Option<Instant> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if tried.contains(&i) {
                continue;
            }
            let e = &self.inner.endpoints[i];
            let available = match *e.breaker() {
                Breaker::Closed { .. } => true,
                Breaker::Open { until } if now >= until => true,
                Breaker::Open { until } => {
                    soonest = Some(soonest.map_or(until, |s| s.min(until)));
                    false
                }
                Breaker::HalfOpen { probing } => !probing,
            };
            let load = e.outstanding.load(Ordering::SeqCst);
            if available && best.is_none_or(|(_, l)| load < l) {
                best = Some((i, load));
            }
        }
        let Some((i, _)) = best else {
            let wait = soonest.map(|s| s.saturating_duration_since(now));
            return Err(Error::new(
                ErrorKind::Unavailable,
                "every endpoint of the pool is failing (circuit breakers open)",
            )
            .with_retry_after(wait));
        };
        let endpoint = Arc::clone(&self.inner.endpoints[i]);
        {
            let mut breaker = endpoint.breaker();
            match *breaker {
                Breaker::Open { .. } | Breaker::HalfOpen { probing: false } => {
                    *breaker = Breaker::HalfOpen { probing: true };
                }
                _ => {}
            }
        }
        endpoint.outstanding.fetch_add(1, Ordering::SeqCst);
        Ok((
            i,
            Lease {
                endpoint,
                threshold: self.inner.failure_threshold,
                cool_down: self.inner.cool_down,
                settled: false,
            },
        ))
    }

    /// Sends to the least-loaded available endpoint, then to the others while the failures
    /// are retryable. On success the value and its endpoint's lease; else the last error.
    async fn on_endpoints<T, F, Fut>(&self, call: F) -> Result<(T, Lease), Error>
    where
        F: Fn(Arc<dyn ModelBackend>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut tried = Vec::new();
        let mut last: Option<Error> = None;
        while tried.len() < self.inner.endpoints.len() {
            let (i, mut lease) = match self.lease(&tried) {
                Ok(lease) => lease,
                Err(e) => {
                    last.get_or_insert(e);
                    break;
                }
            };
            tried.push(i);
            match call(Arc::clone(&lease.endpoint.backend)).await {
                Ok(value) => return Ok((value, lease)),
                Err(e) => {
                    lease.settle(Err(&e));
                    let retryable = e.is_retryable();
                    last = Some(e);
                    if !retryable {
                        break;
                    }
                    tracing::warn!(endpoint = i, "failing over to another endpoint");
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Unavailable, "no endpoint could take the request")))
    }

    /// Tries the fallbacks listed for the error's kind, in order.
    async fn on_fallbacks<T, F, Fut>(&self, error: Error, call: F) -> Result<T, Error>
    where
        F: Fn(Arc<dyn ModelBackend>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        for fallback in self.fallbacks_for(&error) {
            tracing::warn!(
                model = fallback.model(),
                error.kind = error.kind().as_str(),
                "falling back to another backend"
            );
            match call(Arc::clone(fallback)).await {
                Ok(value) => return Ok(value),
                Err(e) if self.fallbacks_for(&e).next().is_some() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(error)
    }

    fn fallbacks_for(&self, error: &Error) -> impl Iterator<Item = &Arc<dyn ModelBackend>> {
        let kind = error.kind();
        self.inner.fallbacks.iter().filter(move |f| f.on.contains(&kind)).map(|f| &f.backend)
    }
}

/// A stream that holds its endpoint's lease until it ends, and reports its outcome.
struct LeasedStream {
    inner: ChunkStream,
    lease: Lease,
}

impl Stream for LeasedStream {
    type Item = Result<StreamChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = this.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) if chunk.is_final => this.lease.settle(Ok(())),
            Poll::Ready(Some(Err(e))) => this.lease.settle(Err(e)),
            _ => {}
        }
        item
    }
}

#[async_trait]
impl ModelBackend for BackendPool {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn model(&self) -> &str {
        self.inner.endpoints[0].backend.model()
    }

    fn profile(&self) -> &ModelProfile {
        self.inner.endpoints[0].backend.profile()
    }

    async fn complete(&self, messages: &[Message], options: &RequestOptions) -> Result<ModelResponse, Error> {
        let call = |backend: Arc<dyn ModelBackend>| async move { backend.complete(messages, options).await };
        match self.on_endpoints(call).await {
            Ok((response, mut lease)) => {
                lease.settle(Ok(()));
                Ok(response)
            }
            Err(error) => self.on_fallbacks(error, call).await,
        }
    }

    async fn stream(&self, messages: &[Message], options: &RequestOptions) -> Result<ChunkStream, Error> {
        let call = |backend: Arc<dyn ModelBackend>| async move { backend.stream(messages, options).await };
        match self.on_endpoints(call).await {
            // The lease lives as long as the stream, which reports its outcome.
            Ok((inner, lease)) => Ok(Box::pin(LeasedStream { inner, lease })),
            Err(error) => self.on_fallbacks(error, call).await,
        }
    }

    /// Whether some endpoint can take requests: its circuit breaker is not open and its
    /// server answers.
    async fn health_check(&self) -> bool {
        for endpoint in &self.inner.endpoints {
            if !endpoint.is_open() && endpoint.backend.health_check().await {
                return true;
            }
        }
        false
    }

    /// The report of the first healthy endpoint whose breaker is not open, else of the last
    /// one (not ready when its breaker is open: real requests to it failed).
    async fn health(&self) -> HealthReport {
        let mut last = HealthReport::default();
        for endpoint in &self.inner.endpoints {
            last = endpoint.backend.health().await;
            if endpoint.is_open() {
                last.ready = Some(false);
                last.error = Some("its requests keep failing: the pool's circuit breaker for it is open".to_owned());
                continue;
            }
            if last.is_healthy() {
                break;
            }
        }
        last
    }

    /// Every model any endpoint lists, each once, in the order found; the first error when
    /// no endpoint could list them.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, Error> {
        let mut models: Vec<ModelInfo> = Vec::new();
        let mut first_error = None;
        let mut any = false;
        for endpoint in &self.inner.endpoints {
            match endpoint.backend.list_models().await {
                Ok(list) => {
                    any = true;
                    for model in list {
                        if !models.iter().any(|m| m.id == model.id) {
                            models.push(model);
                        }
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if !any => Err(e),
            _ => Ok(models),
        }
    }

    async fn close(&self) {
        for endpoint in &self.inner.endpoints {
            endpoint.backend.close().await;
        }
    }

    fn as_embedder(&self) -> Option<&dyn Embedder> {
        Some(self)
    }

    fn as_post_json(&self) -> Option<&dyn PostJson> {
        Some(self)
    }
}

/// Sent as chat requests are: least loaded endpoint first, failover on retryable errors,
/// breakers fed by the outcome, then the fallbacks. An endpoint without raw requests
/// ([`ModelBackend::as_post_json`] is `None`) fails with `Unsupported`.
#[async_trait]
impl PostJson for BackendPool {
    async fn post_json(&self, path: &str, body: bytes::Bytes) -> Result<RawResponse, Error> {
        let call = |backend: Arc<dyn ModelBackend>| {
            let body = body.clone();
            async move { crate::raw::post_json(&*backend, path, body).await }
        };
        match self.on_endpoints(call).await {
            Ok((response, mut lease)) => {
                lease.settle(Ok(()));
                Ok(response)
            }
            Err(error) => self.on_fallbacks(error, call).await,
        }
    }
}

/// Embedding calls go to the endpoints as chat requests do: least loaded first, failover on
/// retryable errors, breakers fed by the outcome, then the fallbacks. Each endpoint splits a
/// call into requests by its own server's limits. An endpoint without embeddings
/// ([`ModelBackend::as_embedder`] is `None`) fails with `Unsupported`.
#[async_trait]
impl Embedder for BackendPool {
    async fn embed(&self, inputs: &[EmbeddingInput], options: &EmbeddingOptions) -> Result<Embeddings, Error> {
        let call = |backend: Arc<dyn ModelBackend>| async move {
            match backend.as_embedder() {
                Some(embedder) => embedder.embed(inputs, options).await,
                None => {
                    Err(Error::new(ErrorKind::Unsupported, format!("the {} backend has no embeddings", backend.name())))
                }
            }
        };
        match self.on_endpoints(call).await {
            Ok((embeddings, mut lease)) => {
                lease.settle(Ok(()));
                Ok(embeddings)
            }
            Err(error) => self.on_fallbacks(error, call).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers the health probe, fails every request (as a server whose `/models` works
    /// while its generation is broken).
    struct Broken(ModelProfile);

    #[async_trait]
    impl ModelBackend for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn model(&self) -> &str {
            "m"
        }
        fn profile(&self) -> &ModelProfile {
            &self.0
        }
        async fn complete(&self, _: &[Message], _: &RequestOptions) -> Result<ModelResponse, Error> {
            Err(Error::new(ErrorKind::Server, "500 from the upstream"))
        }
        async fn health_check(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_pool_whose_endpoints_all_fail_is_not_healthy() {
        let broken = || Arc::new(Broken(ModelProfile::unknown())) as Arc<dyn ModelBackend>;
        let pool = BackendPool::builder().endpoint(broken()).endpoint(broken()).failure_threshold(2).build().unwrap();
        assert!(pool.health_check().await);
        for _ in 0..2 {
            assert!(pool.complete(&[], &RequestOptions::new()).await.is_err());
        }
        assert_eq!(pool.breaker_states(), [BreakerState::Open, BreakerState::Open]);
        // Their servers still answer the probe, but no request gets through.
        assert_eq!(pool.endpoint_health_checks().await, [true, true]);
        assert!(!pool.health_check().await);
        let report = pool.health().await;
        assert!(!report.is_healthy());
        assert!(report.error.as_deref().is_some_and(|e| e.contains("circuit breaker")), "{report:?}");
    }

    /// Raw requests are not part of `ModelBackend`: a pool reaches its endpoints' through
    /// `as_post_json`, and an endpoint without them fails as the old trait default did.
    #[tokio::test]
    async fn raw_requests_to_endpoints_without_them_are_unsupported() {
        let pool = BackendPool::builder().endpoint(Arc::new(Broken(ModelProfile::unknown()))).build().unwrap();
        assert!((&pool as &dyn ModelBackend).as_post_json().is_some());
        let e = pool.post_json("/chat/completions", bytes::Bytes::from_static(b"{}")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("the broken backend cannot send JSON bodies"), "{e}");
    }
}
