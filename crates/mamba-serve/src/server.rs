//! The HTTP side: hyper's HTTP/1.1 server, routing, admission (concurrency and queue),
//! the handlers, the SSE relay, the access log, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONNECTION,
    CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER, VARY,
};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use mamba_backends::{
    backend::ChunkStream, pool::BreakerState, Error, Message, ModelBackend, ModelResponse, RequestOptions, Usage,
};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::chat_answer::{completion, completion_id, embeddings, models, now_secs, ChunkWriter};
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::metrics::{ErrorLabels, Metrics, RequestLabels};
use crate::request::{parse_chat, parse_embeddings};
use crate::responses_answer::{new_id, response_object, ResponsesWriter};
use crate::responses_request::parse_responses;

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
    /// Set when the grace period after a shutdown is over: answers still running end now.
    cut: watch::Sender<bool>,
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
            cut: watch::Sender::new(false),
            config,
        }
    }

    fn default_model(&self) -> &str {
        &self.config.models[0]
    }

    /// The model a request is counted under: the one it named, else the served one.
    fn model_of<'a>(&'a self, outcome: &'a Outcome) -> &'a str {
        if outcome.model.is_empty() {
            self.default_model()
        } else {
            &outcome.model
        }
    }

    fn backend(&self) -> &Arc<dyn ModelBackend> {
        &self.config.backend
    }

    /// Completes when the grace period after a shutdown is over.
    fn cut(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.cut.subscribe();
        async move {
            if rx.wait_for(|cut| *cut).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// When `started`'s request must have its answer (or its stream's first token).
    fn deadline(&self, started: Instant) -> Instant {
        far(started, self.config.limits.request_timeout)
    }
}

/// `at + after`, or a far future when that does not fit in an `Instant`.
fn far(at: Instant, after: Duration) -> Instant {
    at.checked_add(after).or_else(|| at.checked_add(crate::config::MAX_WAIT)).unwrap_or(at)
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
    if admitted >= limits.max_concurrent.saturating_add(limits.max_queue) {
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
    if let Some(allow) = e.allow {
        res.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    }
    if e.close {
        res.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
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

    /// The counts of a request answered (or cut, `cancelled`) after `elapsed`.
    fn count_finished(&self, model: &str, endpoint: &str, status: u16, cancelled: bool, elapsed: Duration) {
        self.count(model, endpoint, status);
        if cancelled {
            self.metrics.cancelled.get_or_create(&Metrics::model(model)).inc();
        }
        self.metrics.latency.get_or_create(&Metrics::model(model)).observe(elapsed.as_secs_f64());
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

/// One request's access-log line and counts: written when it is answered, or, when the
/// client leaves before its answer (the handler is dropped), as cancelled with status 499.
struct Record {
    state: Arc<State>,
    method: Method,
    path: String,
    endpoint: &'static str,
    started: Instant,
    outcome: Outcome,
    written: bool,
}

/// The status logged for a request whose client went away first (nginx's "client closed").
const CLIENT_CLOSED: u16 = 499;

impl Record {
    fn write(&mut self, status: u16, cancelled: bool) {
        self.written = true;
        let elapsed = self.started.elapsed();
        if counted(self.endpoint) {
            self.state.count_finished(self.state.model_of(&self.outcome), self.endpoint, status, cancelled, elapsed);
        }
        access_log(&self.method, &self.path, status, &self.outcome, elapsed, cancelled);
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.written {
            self.write(CLIENT_CLOSED, true);
        }
    }
}

fn endpoint_of(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" | "/chat/completions" => "chat",
        "/v1/responses" | "/responses" => "responses",
        "/v1/embeddings" | "/embeddings" => "embeddings",
        "/v1/models" | "/models" => "models",
        "/health" | "/v1/health" | "/healthz" => "health",
        "/metrics" => "metrics",
        "/" | "/index.html" => "page",
        _ => "other",
    }
}

/// The methods an endpoint answers (the `Allow` header).
fn allowed_methods(endpoint: &str) -> Option<&'static str> {
    match endpoint {
        "chat" | "responses" | "embeddings" => Some("POST, OPTIONS"),
        "models" | "health" | "metrics" | "page" => Some("GET, HEAD, OPTIONS"),
        _ => None,
    }
}

/// Routes one request. Never fails: every error is an answer. `check_host`: the server
/// listens on a loopback address, so only loopback (or allowed) `Host`s are served.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>, check_host: bool) -> Response<ResBody> {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let endpoint = endpoint_of(&path);
    let origin = req.headers().get(ORIGIN).cloned();
    let mut record = Record {
        state: state.clone(),
        method: req.method().clone(),
        path,
        endpoint,
        started,
        outcome: Outcome::default(),
        written: false,
    };
    let method = record.method.clone();
    let path = record.path.clone();
    let result = route(&state, req, endpoint, &method, &path, &mut record.outcome, started, check_host).await;
    let mut res = match result {
        Ok(res) => res,
        Err(e) => {
            let outcome = &mut record.outcome;
            outcome.error = Some(e.label);
            if !outcome.model.is_empty() || counted(endpoint) {
                state.count_error(state.model_of(outcome), e.label);
            }
            error_response(&e)
        }
    };
    if let Some(origin) = origin.filter(|o| state.cors_allows(o)) {
        grant_origin(res.headers_mut(), origin);
    }
    let status = res.status().as_u16();
    if record.outcome.stream && status == 200 {
        // A relayed stream logs and counts itself when it ends.
        record.written = true;
    } else {
        record.write(status, false);
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

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads a JSON body: 408 when no body bytes arrive for the body timeout (a stall), or when
/// the whole body has not arrived within the request timeout (a trickle).
async fn read_body(state: &State, req: Request<Incoming>, started: Instant) -> Result<Bytes, ApiError> {
    if !is_json(&req) {
        return Err(ApiError::unsupported_media_type());
    }
    let limits = &state.config.limits;
    let limit = limits.max_body_bytes;
    let idle = limits.body_timeout;
    let mut body = Limited::new(req.into_body(), limit);
    let collect = async move {
        let mut bytes = Vec::new();
        loop {
            match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => return Err(ApiError::body_timeout(idle, true)),
                Ok(None) => return Ok(Bytes::from(bytes)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                Ok(Some(Err(e))) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    return Err(ApiError::too_large(limit))
                }
                Ok(Some(Err(e))) => {
                    return Err(ApiError::invalid_request(format!("could not read the request body: {e}")))
                }
            }
        }
    };
    match tokio::time::timeout_at(far(started, limits.request_timeout), collect).await {
        Err(_) => Err(ApiError::body_timeout(limits.request_timeout, false)),
        Ok(read) => read,
    }
}

/// The host name of a `Host` value, lower case, without port, brackets or a final dot.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        }
    };
    name.trim_end_matches('.').to_owned()
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl State {
    /// On a loopback bind, the request's host must be a loopback name or address, or one
    /// the user allowed: a page whose DNS name was rebound to 127.0.0.1 sends its own name.
    fn check_host(&self, req: &Request<Incoming>) -> Result<(), ApiError> {
        let given = match req.uri().authority() {
            Some(authority) => Some(authority.as_str().to_owned()),
            None => match req.headers().get(HOST) {
                Some(v) => Some(v.to_str().map(str::to_owned).map_err(|_| ApiError::host_not_allowed("(not ASCII)"))?),
                None => None,
            },
        };
        // No Host at all (HTTP/1.0 tools): not a browser.
        let Some(given) = given else { return Ok(()) };
        let name = host_name(&given);
        let allowed = &self.config.allowed_hosts;
        if is_loopback_name(&name)
            || allowed.iter().any(|a| a == "*" || *a == name || a.eq_ignore_ascii_case(given.trim()))
        {
            Ok(())
        } else {
            Err(ApiError::host_not_allowed(&given))
        }
    }

    fn cors_allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else { return false };
        let origin = origin.trim_end_matches('/');
        self.config.cors_origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    /// `/metrics` and the page need the key too, unless the user made them public.
    fn authorised_for(&self, req: &Request<Incoming>, public: bool) -> Result<(), ApiError> {
        if public || self.authorised(req) {
            Ok(())
        } else if req.uri().path() == "/" {
            // A browser cannot send the key when it opens the page.
            Err(ApiError::unauthorized_page())
        } else {
            Err(ApiError::unauthorized())
        }
    }
}

/// The CORS grant for an allowed `origin` (and `Vary: Origin`, as the answer depends on it).
fn grant_origin(headers: &mut http::HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(VARY, HeaderValue::from_static("Origin"));
}

/// `OPTIONS`: a CORS preflight from an allowed origin gets its grant; one from any other
/// origin gets 403 without it; a plain `OPTIONS` gets `Allow`.
fn options(state: &State, req: &Request<Incoming>, allow: &'static str) -> Result<Response<ResBody>, ApiError> {
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    res.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    let Some(origin) = req.headers().get(ORIGIN) else { return Ok(res) };
    if !state.cors_allows(origin) {
        return Err(ApiError::origin_not_allowed());
    }
    let headers = res.headers_mut();
    grant_origin(headers, origin.clone());
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(allow));
    let asked = req.headers().get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        asked.unwrap_or_else(|| HeaderValue::from_static("authorization, content-type")),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
async fn route(
    state: &Arc<State>,
    req: Request<Incoming>,
    endpoint: &str,
    method: &Method,
    path: &str,
    outcome: &mut Outcome,
    started: Instant,
    check_host: bool,
) -> Result<Response<ResBody>, ApiError> {
    if check_host {
        state.check_host(&req)?;
    }
    let Some(allow) = allowed_methods(endpoint) else { return Err(ApiError::not_found(path)) };
    if *method == Method::OPTIONS {
        return options(state, &req, allow);
    }
    let wrong = || ApiError::method_not_allowed(method.as_str(), path, allow);
    let expect_get = || if *method == Method::GET || *method == Method::HEAD { Ok(()) } else { Err(wrong()) };
    let expect_post = || if *method == Method::POST { Ok(()) } else { Err(wrong()) };
    match endpoint {
        "page" => {
            expect_get()?;
            state.authorised_for(&req, state.config.public_page)?;
            let mut res = Response::new(full(PAGE));
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            Ok(res)
        }
        "metrics" => {
            expect_get()?;
            state.authorised_for(&req, state.config.public_metrics)?;
            let mut res = Response::new(full(state.metrics.render()));
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            Ok(res)
        }
        "health" => {
            expect_get()?;
            Ok(health(state).await)
        }
        _ => {
            state.authorised_for(&req, false)?;
            match endpoint {
                "models" => {
                    expect_get()?;
                    Ok(json_response(200, &models(&state.config.models, state.created)))
                }
                "chat" => {
                    expect_post()?;
                    chat(state, req, outcome, started).await
                }
                "responses" => {
                    expect_post()?;
                    responses(state, req, outcome, started).await
                }
                _ => {
                    expect_post()?;
                    embed(state, req, outcome, started).await
                }
            }
        }
    }
}

fn breaker_name(state: BreakerState) -> (&'static str, u32) {
    match state {
        BreakerState::Closed(failures) => ("closed", failures),
        BreakerState::Open => ("open", 0),
        BreakerState::HalfOpen => ("half_open", 0),
    }
}

/// `/health`: 200 `ok` when the backend answers; for a pool, each endpoint (its probe and
/// its circuit breaker), `degraded` while some fail, and 503 `unavailable` when none is
/// healthy.
async fn health(state: &State) -> Response<ResBody> {
    let probe_within = Duration::from_secs(5);
    let model = state.default_model();
    let Some(pool) = &state.config.pool else {
        let ready = tokio::time::timeout(probe_within, state.backend().health_check()).await.unwrap_or(false);
        let body = serde_json::json!({"status": if ready { "ok" } else { "unavailable" }, "model": model});
        return json_response(if ready { 200 } else { 503 }, &body);
    };
    let breakers = pool.breaker_states();
    let probes = tokio::time::timeout(probe_within, pool.endpoint_health_checks())
        .await
        .unwrap_or_else(|_| vec![false; breakers.len()]);
    let mut healthy = 0;
    let mut all_well = true;
    let upstreams: Vec<Value> = breakers
        .iter()
        .zip(&probes)
        .map(|(&breaker, &answers)| {
            let ok = answers && breaker != BreakerState::Open;
            healthy += usize::from(ok);
            let (name, failures) = breaker_name(breaker);
            all_well &= ok && failures == 0;
            serde_json::json!({"healthy": ok, "answers": answers, "breaker": name, "recent_failures": failures})
        })
        .collect();
    let status = match (healthy, all_well) {
        (0, _) => "unavailable",
        (_, true) => "ok",
        _ => "degraded",
    };
    let body = serde_json::json!({"status": status, "model": model, "upstreams": upstreams});
    json_response(if healthy == 0 { 503 } else { 200 }, &body)
}

async fn chat(
    state: &Arc<State>,
    req: Request<Incoming>,
    outcome: &mut Outcome,
    started: Instant,
) -> Result<Response<ResBody>, ApiError> {
    let body = read_body(state, req, started).await?;
    let request = parse_chat(&body)?;
    drop(body);
    outcome.stream = request.stream;
    outcome.model = state.check_model(request.model.as_deref())?;
    if !request.stream {
        let answer = complete_whole(state, &request.messages, &request.options, outcome, started).await?;
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
    let backend = state.backend().clone();
    let (slot, stream) = answer_within(state, started, async {
        let slot = admit(state).await?;
        let stream = backend.stream(messages, options).await.map_err(|e| upstream_error(&e))?;
        Ok::<_, ApiError>((slot, stream))
    })
    .await?;
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
        cut: Box::pin(state.cut()),
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
    let body = read_body(state, req, started).await?;
    let request = parse_responses(&body)?;
    drop(body);
    outcome.stream = request.stream;
    outcome.model = state.check_model(request.model.as_deref())?;
    if request.stream {
        let writer = StreamWriter::Responses(Box::new(ResponsesWriter::new(outcome.model.clone(), request.echo)));
        return relay(state, &request.messages, &request.options, outcome, started, writer).await;
    }
    let answer = complete_whole(state, &request.messages, &request.options, outcome, started).await?;
    let id = answer.id.clone().filter(|i| i.starts_with("resp_")).unwrap_or_else(|| new_id("resp"));
    Ok(json_response(200, &response_object(&answer, &id, &outcome.model, now_secs(), &request.echo)))
}

/// `answer` within the request timeout (counted from the request's head), unless the grace
/// period after a shutdown ends first.
async fn answer_within<T>(
    state: &State,
    started: Instant,
    answer: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let timeout = state.config.limits.request_timeout;
    tokio::select! {
        answer = tokio::time::timeout_at(state.deadline(started), answer) => answer.map_err(|_| ApiError::timeout(timeout))?,
        () = state.cut() => Err(ApiError::shutting_down()),
    }
}

/// A whole answer from the backend (chat and Responses alike): a slot in the queue, the
/// request timeout, and the usage counted.
async fn complete_whole(
    state: &Arc<State>,
    messages: &[Message],
    options: &RequestOptions,
    outcome: &mut Outcome,
    started: Instant,
) -> Result<ModelResponse, ApiError> {
    let backend = state.backend().clone();
    let answer = answer_within(state, started, async {
        let _slot = admit(state).await?;
        backend.complete(messages, options).await.map_err(|e| upstream_error(&e))
    })
    .await?;
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
    started: Instant,
) -> Result<Response<ResBody>, ApiError> {
    let body = read_body(state, req, started).await?;
    let request = parse_embeddings(&body)?;
    outcome.model = state.check_model(request.model.as_deref())?;
    let backend = state.backend().clone();
    let Some(embedder) = backend.as_embedder() else {
        return Err(ApiError::new(400, "invalid_request_error", "This server's backend has no embeddings.")
            .with_code("unsupported")
            .with_label("unsupported"));
    };
    let result = answer_within(state, started, async {
        let _slot = admit(state).await?;
        embedder.embed(&request.inputs, &request.options).await.map_err(|e| upstream_error(&e))
    })
    .await?;
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
    /// The end of the grace period after a shutdown: the stream ends with an error event.
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
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
            if this.cut.as_mut().poll(cx).is_ready() {
                this.done = true;
                let api = ApiError::shutting_down();
                this.outcome.error = Some(api.label);
                for event in this.writer.error(&api) {
                    this.writer.push_event(&mut this.pending, &event);
                }
                continue;
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
        let elapsed = self.started.elapsed();
        state.count_finished(&model, self.writer.endpoint(), 200, cancelled, elapsed);
        state.count_usage(&model, self.outcome.usage.as_ref());
        if let Some(kind) = self.outcome.error.filter(|_| !cancelled) {
            state.count_error(&model, kind);
        }
        access_log(&Method::POST, self.writer.path(), 200, &self.outcome, elapsed, cancelled);
    }
}

/// One open connection: its place under the connection limit, and the gauge.
struct OpenConnection {
    gauge: prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>,
    _permit: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(state: &State, permit: OwnedSemaphorePermit) -> OpenConnection {
        let gauge = state.metrics.connections.clone();
        gauge.inc();
        OpenConnection { gauge, _permit: permit }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gauge.dec();
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

    /// The metrics in the Prometheus text format, as `GET /metrics` serves them (a clone of
    /// the server reads them while it serves and after it stopped).
    pub fn metrics(&self) -> String {
        self.state.metrics.render()
    }

    /// Accepts connections on `listener` until `shutdown` completes; then stops accepting and
    /// lets requests in flight finish for the grace period ([`Limits::grace_period`](crate::Limits::grace_period)).
    /// Answers still running then end (a stream with an error event) and their connections
    /// close.
    ///
    /// At most [`Limits::max_connections`](crate::Limits::max_connections) connections are
    /// open at once; each has [`Limits::body_timeout`](crate::Limits::body_timeout) to send
    /// a request's head, and its body may stall no longer than that. On a loopback address only loopback `Host`s (and those
    /// allowed with [`ServeConfig::allowed_host`](crate::ServeConfig::allowed_host)) are served.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let limits = self.state.config.limits;
        let check_host = listener.local_addr().map(|a| a.ip().is_loopback()).unwrap_or(true);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.body_timeout.min(limits.request_timeout));
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            while tasks.try_join_next().is_some() {}
            // Past the bound, wait for a connection to close (new ones wait in the backlog).
            let permit = tokio::select! {
                permit = connections.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
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
                async move { Ok::<_, Infallible>(handle(state, req, check_host).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            let open = OpenConnection::new(&self.state, permit);
            tasks.spawn(async move {
                let _open = open;
                if let Err(e) = conn.await {
                    tracing::debug!(target: "mamba_serve", error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        let grace = limits.grace;
        tracing::info!(target: "mamba_serve", grace_s = grace.as_secs_f64(), "shutting down: finishing requests in flight");
        let mut closed = std::pin::pin!(graceful.shutdown());
        tokio::select! {
            () = &mut closed => tracing::info!(target: "mamba_serve", "all connections closed"),
            () = tokio::time::sleep(grace) => {
                tracing::warn!(target: "mamba_serve", "grace period over; ending the answers still running");
                self.state.cut.send_replace(true);
                // Their error events go out; then whatever is left is closed.
                if tokio::time::timeout(Duration::from_secs(1), &mut closed).await.is_err() {
                    tracing::warn!(target: "mamba_serve", connections = tasks.len(), "closing the remaining connections");
                }
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
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
