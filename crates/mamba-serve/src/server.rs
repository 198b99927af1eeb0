//! The HTTP side: hyper's HTTP/1.1 server, routing, admission (concurrency and queue),
//! the handlers, the SSE relay, the access log, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use mamba_backends::{ChunkStream, Error, Message, ModelBackend, ModelResponse, RequestOptions, Usage};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::metrics::{ErrorLabels, Metrics, RequestLabels};
use crate::request::{parse_chat, parse_embeddings};
use crate::response::{completion, completion_id, embeddings, models, now_secs, ChunkWriter};
use crate::responses_request::parse_responses;
use crate::responses_response::{new_id, response_object, ResponsesWriter};

type ResBody = UnsyncBoxBody<Bytes, Infallible>;

const PAGE: &str = include_str!("page.html");

/// A running server's shared state.
pub(crate) struct State {
    config: ServeConfig,
    metrics: Metrics,
    slots: Arc<Semaphore>,
    admitted: AtomicUsize,
    /// `Bearer <key>`, when a key is required.
    bearer: Option<Vec<u8>>,
    created: u64,
}

impl State {
    pub(crate) fn new(config: ServeConfig) -> State {
        let bearer = config.api_key.as_ref().map(|k| format!("Bearer {k}").into_bytes());
        State {
            slots: Arc::new(Semaphore::new(config.limits.max_concurrent)),
            admitted: AtomicUsize::new(0),
            metrics: Metrics::new(),
            bearer,
            created: now_secs(),
            config,
        }
    }

    fn default_model(&self) -> &str {
        &self.config.models[0]
    }

    fn backend(&self) -> &Arc<dyn ModelBackend> {
        &self.config.backend
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A slot taken for one request: released (and the gauges updated) when dropped.
struct Slot {
    state: Arc<State>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.admitted.fetch_sub(1, Ordering::SeqCst);
        if self.permit.take().is_some() {
            self.state.metrics.running.dec();
        } else {
            self.state.metrics.waiting.dec();
        }
    }
}

async fn admit(state: &Arc<State>) -> Result<Slot, ApiError> {
    let limits = &state.config.limits;
    let admitted = state.admitted.fetch_add(1, Ordering::SeqCst);
    if admitted >= limits.max_concurrent + limits.max_queue {
        state.admitted.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::queue_full(Duration::from_secs(1)));
    }
    state.metrics.waiting.inc();
    let mut slot = Slot { state: state.clone(), permit: None };
    let permit = state
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(503, "service_unavailable", "The server is shutting down."))?;
    state.metrics.waiting.dec();
    state.metrics.running.inc();
    slot.permit = Some(permit);
    Ok(slot)
}

/// What the access log says about one request.
#[derive(Debug, Default)]
struct Outcome {
    model: String,
    stream: bool,
    ttft: Option<Duration>,
    usage: Option<Usage>,
    error: Option<&'static str>,
}

fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

fn json_response(status: u16, body: &Value) -> Response<ResBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut res = Response::new(full(bytes));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn error_response(e: &ApiError) -> Response<ResBody> {
    let mut res = json_response(e.status, &e.body());
    if let Some(after) = e.retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    res
}

impl State {
    fn authorised(&self, req: &Request<Incoming>) -> bool {
        let Some(expected) = &self.bearer else { return true };
        let given = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes).unwrap_or_default();
        // Constant time in the key's contents; only lengths that differ return early.
        given.len() == expected.len() && bool::from(given.ct_eq(expected))
    }

    fn check_model(&self, asked: Option<&str>) -> Result<String, ApiError> {
        match asked {
            None => Ok(self.default_model().to_owned()),
            Some(m) if self.config.models.iter().any(|s| s == m) => Ok(m.to_owned()),
            Some(m) => Err(ApiError::model_not_found(m, &self.config.models.join(", "))),
        }
    }

    fn count(&self, model: &str, endpoint: &str, status: u16) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels { model: model.to_owned(), endpoint: endpoint.to_owned(), status })
            .inc();
    }

    fn count_error(&self, model: &str, kind: &str) {
        self.metrics.errors.get_or_create(&ErrorLabels { model: model.to_owned(), kind: kind.to_owned() }).inc();
    }

    fn count_usage(&self, model: &str, usage: Option<&Usage>) {
        if let Some(u) = usage {
            let labels = Metrics::model(model);
            self.metrics.prompt_tokens.get_or_create(&labels).inc_by(u.input_tokens);
            self.metrics.generation_tokens.get_or_create(&labels).inc_by(u.output_tokens);
        }
    }
}

/// Routes one request. Never fails: every error is an answer.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ResBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut outcome = Outcome::default();
    let endpoint = match path.as_str() {
        "/v1/chat/completions" | "/chat/completions" => "chat",
        "/v1/responses" | "/responses" => "responses",
        "/v1/embeddings" | "/embeddings" => "embeddings",
        "/v1/models" | "/models" => "models",
        "/health" | "/v1/health" | "/healthz" => "health",
        "/metrics" => "metrics",
        "/" | "/index.html" => "page",
        _ => "other",
    };
    let result = route(&state, req, endpoint, &method, &path, &mut outcome, started).await;
    let res = match result {
        Ok(res) => res,
        Err(e) => {
            outcome.error = Some(e.label);
            if !outcome.model.is_empty() || counted(endpoint) {
                let model =
                    if outcome.model.is_empty() { state.default_model().to_owned() } else { outcome.model.clone() };
                state.count_error(&model, e.label);
            }
            error_response(&e)
        }
    };
    let status = res.status().as_u16();
    // A relayed stream logs and counts itself when it ends.
    if !(outcome.stream && status == 200) {
        if counted(endpoint) {
            let model = if outcome.model.is_empty() { state.default_model() } else { &outcome.model };
            state.count(model, endpoint, status);
            state.metrics.latency.get_or_create(&Metrics::model(model)).observe(started.elapsed().as_secs_f64());
        }
        access_log(&method, &path, status, &outcome, started.elapsed(), false);
    }
    res
}

/// The endpoints whose requests are counted per model.
fn counted(endpoint: &str) -> bool {
    matches!(endpoint, "chat" | "responses" | "embeddings")
}

fn access_log(method: &Method, path: &str, status: u16, o: &Outcome, elapsed: Duration, cancelled: bool) {
    tracing::info!(
        target: "mamba_serve::access",
        method = %method,
        path,
        status,
        model = o.model.as_str(),
        stream = o.stream,
        ms = elapsed.as_secs_f64() * 1e3,
        ttft_ms = o.ttft.map(|t| t.as_secs_f64() * 1e3),
        tokens_in = o.usage.map(|u| u.input_tokens),
        tokens_out = o.usage.map(|u| u.output_tokens),
        error = o.error,
        cancelled,
        "request"
    );
}

async fn read_body(state: &State, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = state.config.limits.max_body_bytes;
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::invalid_request(format!("could not read the request body: {e}"))),
    }
}

async fn route(
    state: &Arc<State>,
    req: Request<Incoming>,
    endpoint: &str,
    method: &Method,
    path: &str,
    outcome: &mut Outcome,
    started: Instant,
) -> Result<Response<ResBody>, ApiError> {
    let expect =
        |m: Method| if *method == m { Ok(()) } else { Err(ApiError::method_not_allowed(method.as_str(), path)) };
    match endpoint {
        "page" => {
            expect(Method::GET)?;
            let mut res = Response::new(full(PAGE));
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            Ok(res)
        }
        "metrics" => {
            expect(Method::GET)?;
            let mut res = Response::new(full(state.metrics.render()));
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            Ok(res)
        }
        "health" => {
            expect(Method::GET)?;
            let ready =
                tokio::time::timeout(Duration::from_secs(5), state.backend().health_check()).await.unwrap_or(false);
            let body =
                serde_json::json!({"status": if ready { "ok" } else { "unavailable" }, "model": state.default_model()});
            Ok(json_response(if ready { 200 } else { 503 }, &body))
        }
        "models" | "chat" | "responses" | "embeddings" => {
            if !state.authorised(&req) {
                return Err(ApiError::unauthorized());
            }
            match endpoint {
                "models" => {
                    expect(Method::GET)?;
                    Ok(json_response(200, &models(&state.config.models, state.created)))
                }
                "chat" => {
                    expect(Method::POST)?;
                    chat(state, req, outcome, started).await
                }
                "responses" => {
                    expect(Method::POST)?;
                    responses(state, req, outcome, started).await
                }
                _ => {
                    expect(Method::POST)?;
                    embed(state, req, outcome).await
                }
            }
        }
        _ => Err(ApiError::not_found(path)),
    }
}

async fn chat(
    state: &Arc<State>,
    req: Request<Incoming>,
    outcome: &mut Outcome,
    started: Instant,
) -> Result<Response<ResBody>, ApiError> {
    let body = read_body(state, req).await?;
    let request = parse_chat(&body)?;
    drop(body);
    outcome.stream = request.stream;
    outcome.model = state.check_model(request.model.as_deref())?;
    if !request.stream {
        let answer = complete_whole(state, &request.messages, &request.options, outcome).await?;
        let id = answer.id.clone().filter(|i| !i.is_empty()).unwrap_or_else(completion_id);
        return Ok(json_response(200, &completion(&answer, &id, &outcome.model, now_secs())));
    }

    let writer = StreamWriter::Chat(ChunkWriter::new(completion_id(), outcome.model.clone(), request.include_usage));
    relay(state, &request.messages, &request.options, outcome, started, writer).await
}

/// Starts a backend stream and answers with its SSE relay.
async fn relay(
    state: &Arc<State>,
    messages: &[mamba_backends::Message],
    options: &mamba_backends::RequestOptions,
    outcome: &mut Outcome,
    started: Instant,
    writer: StreamWriter,
) -> Result<Response<ResBody>, ApiError> {
    let timeout = state.config.limits.request_timeout;
    let backend = state.backend().clone();
    let (slot, stream) = tokio::time::timeout(timeout, async {
        let slot = admit(state).await?;
        let stream = backend.stream(messages, options).await.map_err(|e| upstream_error(&e))?;
        Ok::<_, ApiError>((slot, stream))
    })
    .await
    .map_err(|_| ApiError::timeout(timeout))??;
    let ttft = started.elapsed();
    outcome.ttft = Some(ttft);
    state.metrics.ttft.get_or_create(&Metrics::model(&outcome.model)).observe(ttft.as_secs_f64());
    state.metrics.open_streams.inc();
    let mut relay = SseRelay {
        stream,
        writer,
        state: state.clone(),
        _slot: slot,
        started,
        outcome: std::mem::take(outcome),
        done: false,
        finished: false,
        pending: Vec::new(),
    };
    // The Responses stream announces the response before the first token.
    for event in relay.writer.start() {
        relay.writer.push_event(&mut relay.pending, &event);
    }
    outcome.stream = true;
    let mut res = Response::new(relay.boxed_unsync());
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

async fn responses(
    state: &Arc<State>,
    req: Request<Incoming>,
    outcome: &mut Outcome,
    started: Instant,
) -> Result<Response<ResBody>, ApiError> {
    let body = read_body(state, req).await?;
    let request = parse_responses(&body)?;
    drop(body);
    outcome.stream = request.stream;
    outcome.model = state.check_model(request.model.as_deref())?;
    if request.stream {
        let writer = StreamWriter::Responses(Box::new(ResponsesWriter::new(outcome.model.clone(), request.echo)));
        return relay(state, &request.messages, &request.options, outcome, started, writer).await;
    }
    let answer = complete_whole(state, &request.messages, &request.options, outcome).await?;
    let id = answer.id.clone().filter(|i| i.starts_with("resp_")).unwrap_or_else(|| new_id("resp"));
    Ok(json_response(200, &response_object(&answer, &id, &outcome.model, now_secs(), &request.echo)))
}

/// A whole answer from the backend (chat and Responses alike): a slot in the queue, the
/// request timeout, and the usage counted.
async fn complete_whole(
    state: &Arc<State>,
    messages: &[Message],
    options: &RequestOptions,
    outcome: &mut Outcome,
) -> Result<ModelResponse, ApiError> {
    let timeout = state.config.limits.request_timeout;
    let backend = state.backend().clone();
    let answer = tokio::time::timeout(timeout, async {
        let _slot = admit(state).await?;
        backend.complete(messages, options).await.map_err(|e| upstream_error(&e))
    })
    .await
    .map_err(|_| ApiError::timeout(timeout))??;
    state.count_usage(&outcome.model, answer.usage.as_ref());
    outcome.usage = answer.usage;
    Ok(answer)
}

fn upstream_error(e: &Error) -> ApiError {
    tracing::debug!(target: "mamba_serve", error = %e, "upstream failed");
    ApiError::from(e)
}

async fn embed(
    state: &Arc<State>,
    req: Request<Incoming>,
    outcome: &mut Outcome,
) -> Result<Response<ResBody>, ApiError> {
    let body = read_body(state, req).await?;
    let request = parse_embeddings(&body)?;
    outcome.model = state.check_model(request.model.as_deref())?;
    let backend = state.backend().clone();
    let Some(embedder) = backend.as_embedder() else {
        return Err(ApiError::new(400, "invalid_request_error", "This server's backend has no embeddings.")
            .with_code("unsupported")
            .with_label("unsupported"));
    };
    let timeout = state.config.limits.request_timeout;
    let result = tokio::time::timeout(timeout, async {
        let _slot = admit(state).await?;
        embedder.embed(&request.inputs, &request.options).await.map_err(|e| upstream_error(&e))
    })
    .await
    .map_err(|_| ApiError::timeout(timeout))??;
    if let Some(u) = &result.usage {
        state.metrics.prompt_tokens.get_or_create(&Metrics::model(&outcome.model)).inc_by(u.input_tokens);
    }
    outcome.usage = result.usage;
    Ok(json_response(200, &embeddings(&result, &outcome.model, request.base64)))
}

/// The response body of a streamed answer: each backend chunk becomes its `data:` events as
/// soon as it arrives. Dropping it (the client went away) drops the backend's stream, which
/// closes the upstream connection or stops the generation.
struct SseRelay {
    stream: ChunkStream,
    writer: StreamWriter,
    state: Arc<State>,
    _slot: Slot,
    started: Instant,
    outcome: Outcome,
    /// The backend's stream ended (final chunk or error).
    done: bool,
    /// `[DONE]` or the error event was written.
    finished: bool,
    pending: Vec<u8>,
}

fn push_event(buf: &mut Vec<u8>, event: &Value) {
    buf.extend_from_slice(b"data: ");
    // Writing JSON to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, event);
    buf.extend_from_slice(b"\n\n");
}

/// What a relay writes: chat-completion chunks, or the Responses API's typed events.
#[derive(Debug)]
enum StreamWriter {
    Chat(ChunkWriter),
    Responses(Box<ResponsesWriter>),
}

impl StreamWriter {
    fn start(&mut self) -> Vec<Value> {
        match self {
            StreamWriter::Chat(_) => Vec::new(),
            StreamWriter::Responses(w) => w.start(),
        }
    }

    fn events(&mut self, chunk: &mamba_backends::StreamChunk) -> Vec<Value> {
        match self {
            StreamWriter::Chat(w) => w.events(chunk),
            StreamWriter::Responses(w) => w.events(chunk),
        }
    }

    /// The events for an error after the stream began.
    fn error(&mut self, e: &ApiError) -> Vec<Value> {
        match self {
            StreamWriter::Chat(_) => vec![e.body()],
            StreamWriter::Responses(w) => w.failed(e),
        }
    }

    /// Chat streams end with `[DONE]`; Responses streams with their last typed event.
    fn done_marker(&self) -> &'static [u8] {
        match self {
            StreamWriter::Chat(_) => b"data: [DONE]\n\n",
            StreamWriter::Responses(_) => b"",
        }
    }

    /// One SSE event; typed events also name their type on an `event:` line.
    fn push_event(&self, buf: &mut Vec<u8>, event: &Value) {
        if let (StreamWriter::Responses(_), Some(kind)) = (self, event.get("type").and_then(Value::as_str)) {
            buf.extend_from_slice(b"event: ");
            buf.extend_from_slice(kind.as_bytes());
            buf.push(b'\n');
        }
        push_event(buf, event);
    }

    fn path(&self) -> &'static str {
        match self {
            StreamWriter::Chat(_) => "/v1/chat/completions",
            StreamWriter::Responses(_) => "/v1/responses",
        }
    }

    fn endpoint(&self) -> &'static str {
        match self {
            StreamWriter::Chat(_) => "chat",
            StreamWriter::Responses(_) => "responses",
        }
    }
}

impl Body for SseRelay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if this.done {
                if this.finished {
                    return Poll::Ready(None);
                }
                this.finished = true;
                if this.outcome.error.is_none() {
                    this.pending.extend_from_slice(this.writer.done_marker());
                }
                let bytes = Bytes::from(std::mem::take(&mut this.pending));
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Pending => {
                    if this.pending.is_empty() {
                        return Poll::Pending;
                    }
                    let bytes = Bytes::from(std::mem::take(&mut this.pending));
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    if chunk.is_final {
                        this.done = true;
                        this.outcome.usage = chunk.usage;
                    }
                    for event in this.writer.events(&chunk) {
                        this.writer.push_event(&mut this.pending, &event);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    let api = ApiError::from(&e);
                    this.outcome.error = Some(api.label);
                    for event in this.writer.error(&api) {
                        this.writer.push_event(&mut this.pending, &event);
                    }
                }
                Poll::Ready(None) => {
                    // A stream must end with its final chunk; one that just stops was cut.
                    this.done = true;
                    let api = ApiError::new(
                        502,
                        "upstream_error",
                        "The upstream stream ended before the answer was complete.",
                    )
                    .with_label("stream");
                    this.outcome.error = Some(api.label);
                    for event in this.writer.error(&api) {
                        this.writer.push_event(&mut this.pending, &event);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for SseRelay {
    fn drop(&mut self) {
        let state = &self.state;
        let model = self.outcome.model.clone();
        let cancelled = !self.finished;
        state.metrics.open_streams.dec();
        state.count(&model, self.writer.endpoint(), 200);
        state.count_usage(&model, self.outcome.usage.as_ref());
        if cancelled {
            state.metrics.cancelled.get_or_create(&Metrics::model(&model)).inc();
        } else if let Some(kind) = self.outcome.error {
            state.count_error(&model, kind);
        }
        let elapsed = self.started.elapsed();
        state.metrics.latency.get_or_create(&Metrics::model(&model)).observe(elapsed.as_secs_f64());
        access_log(&Method::POST, self.writer.path(), 200, &self.outcome, elapsed, cancelled);
    }
}

/// A server for `config`, ready to [`serve`](Server::serve) on a listener.
///
/// ```no_run
/// use std::sync::Arc;
/// use mamba_backends::create_ollama_backend;
/// use mamba_serve::{ServeConfig, Server};
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let server = Server::new(ServeConfig::new(Arc::new(create_ollama_backend("llama3.2"))));
/// server.serve(listener, mamba_serve::shutdown_signal()).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Server {
    state: Arc<State>,
}

impl Server {
    /// A server for this configuration.
    pub fn new(config: ServeConfig) -> Server {
        Server { state: Arc::new(State::new(config)) }
    }

    /// Accepts connections on `listener` until `shutdown` completes; then stops accepting and
    /// lets requests in flight finish for the grace period ([`Limits::grace_period`](crate::Limits::grace_period)).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, _) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(target: "mamba_serve", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let state = self.state.clone();
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(target: "mamba_serve", error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        let grace = self.state.config.limits.grace;
        tracing::info!(target: "mamba_serve", grace_s = grace.as_secs_f64(), "shutting down: finishing requests in flight");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!(target: "mamba_serve", "all connections closed"),
            () = tokio::time::sleep(grace) => tracing::warn!(target: "mamba_serve", "grace period over; closing the remaining connections"),
        }
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
