//! [`OpenAICompatibleBackend`]: one chat-completions server.

mod api_choice;
pub(crate) mod batches;
mod builder;
pub(crate) mod chat_answer;
mod chat_stream;
mod completions;
#[cfg(test)]
mod differential_tests;
mod embeddings;
pub(crate) mod event_decoder;
mod event_shape;
mod health;
mod multipart;
mod parsed_event;
#[cfg(test)]
mod preset_tests;
#[cfg(test)]
mod replay_tests;
pub(crate) mod request;
pub(crate) mod responses;
mod scan;
mod sse_stream;
pub(crate) mod wire;

use std::fmt;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::Uri;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tracing::Instrument;

pub use builder::OpenAICompatibleBackendBuilder;

use self::api_choice::{Api, ApiChoice};
use self::chat_answer::parse_response;
use self::event_decoder::EventDecoder;
use self::request::{to_body, write_body, ChatRequest, WireConfig};
use self::responses::request::ResponsesRequest;
use self::sse_stream::{SseStream, StreamOwner};
use crate::backend::{ChunkStream, ModelBackend};
use crate::classify;
use crate::error::Error;
use crate::health::{HealthReport, ModelInfo};
use crate::http::{Body, HttpClient, Request, Response};
use crate::options::RequestOptions;
use crate::preset::Preset;
use crate::profile::ModelProfile;
use crate::raw::{PostJson, RawResponse};
use crate::retry::RetryPolicy;
use crate::transport::{Transport, TransportRequest};
use crate::types::{Message, ModelResponse};

/// The media type of API request bodies.
const JSON: &str = "application/json";

/// Error bodies are read up to this size.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// The timeouts of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    /// Response head of a streamed request (and of the model list).
    pub(crate) headers: Duration,
    /// Response head of a non-streamed request: the whole generation comes before it.
    pub(crate) complete_headers: Duration,
    pub(crate) idle: Duration,
    /// Streamed requests.
    pub(crate) total: Option<Duration>,
    /// Non-streamed requests.
    pub(crate) complete_total: Option<Duration>,
}

/// A model on any OpenAI-compatible chat-completions server.
///
/// Cheap to clone (clones share the configuration and the connection pool). See the
/// [crate documentation](crate) for an example.
#[derive(Clone)]
pub struct OpenAICompatibleBackend {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    model: String,
    base_url: String,
    chat_uri: Uri,
    /// Legacy text completions (`/completions`).
    completions_uri: Uri,
    responses_uri: Uri,
    models_uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    api_key: Option<SecretString>,
    profile: ModelProfile,
    preset: Preset,
    wire: WireConfig,
    /// How Responses API requests are written.
    responses_wire: WireConfig,
    /// Which API requests go to.
    api: ApiChoice,
    timeouts: Timeouts,
    think_tags: bool,
    max_response_bytes: usize,
    retry: RetryPolicy,
    trace_content: bool,
    client: Client,
    /// The connect timeout set on the backend builder, for a client it did not create.
    connect_timeout: Option<Duration>,
    embeddings_uri: Uri,
    /// Base64 embeddings are still asked for (cleared when the server ignores or refuses them).
    embed_base64: AtomicBool,
    /// Embedding requests of one call in flight at once.
    embed_concurrency: usize,
    /// Where `/files` and `/batches` go: the base URL's path (for a legacy Azure deployment
    /// URL, the resource's `/openai`), without the query.
    files_root: String,
    /// The base URL's query with the preset's (`api-version`).
    query: Option<String>,
}

/// What sends the requests.
pub(crate) enum Client {
    /// The built-in client, called directly (no boxed future, body read in place).
    Native(HttpClient),
    /// An injected [`Transport`].
    Custom(Arc<dyn Transport>),
}

impl fmt::Debug for OpenAICompatibleBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("OpenAICompatibleBackend")
            .field("model", &s.model)
            .field("base_url", &crate::redact::redact_url(&s.base_url))
            .field("preset", &s.preset)
            .field("api_key", &s.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("profile", &s.profile.name)
            .field("timeouts", &s.timeouts)
            .finish_non_exhaustive()
    }
}

impl OpenAICompatibleBackend {
    /// A backend for `model` with every default: OpenAI's URL, no key, 60 s timeouts, the
    /// model's registered profile. Fails only if the default URL were invalid.
    pub fn new(model: impl Into<String>) -> Result<OpenAICompatibleBackend, Error> {
        OpenAICompatibleBackend::builder(model).build()
    }

    /// A builder for `model`.
    pub fn builder(model: impl Into<String>) -> OpenAICompatibleBackendBuilder {
        OpenAICompatibleBackendBuilder::new(model.into())
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The preset the backend was built with.
    pub fn preset(&self) -> Preset {
        self.shared.preset
    }

    /// The API requests go to now: [`WireApi::ChatCompletions`](crate::preset::WireApi), `Responses`,
    /// or `Auto` while an `Auto` backend has not yet learned whether the server has the
    /// Responses API.
    pub fn wire_api(&self) -> crate::preset::WireApi {
        self.shared.api.current()
    }

    /// The models the server lists (`GET {base_url}/models`), in any of the shapes servers
    /// use (`{"data": […]}`, a bare array, Ollama's `{"models": […]}`).
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>, Error> {
        let s = &*self.shared;
        let result = async {
            let response = s.get(&s.models_uri).await?;
            let Response { status, headers, mut body } = response;
            let bytes = body.read_to_end(s.timeouts.idle, s.max_response_bytes).await?;
            if !(200..300).contains(&status) {
                return Err(classify::from_response(status, &headers, &bytes, SystemTime::now()));
            }
            parse_models(&bytes)
        }
        .await;
        result.map_err(|e| s.finish_error(e))
    }
}

fn parse_models(bytes: &[u8]) -> Result<Vec<ModelInfo>, Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| wire::decode_error("the model list", bytes, e))?;
    let items = match &value {
        Value::Array(items) => items.as_slice(),
        Value::Object(map) => match (map.get("data"), map.get("models")) {
            (Some(Value::Array(items)), _) => items.as_slice(),
            (_, Some(Value::Array(items))) => items.as_slice(),
            _ => &[],
        },
        _ => &[],
    };
    Ok(items
        .iter()
        .filter_map(|item| {
            let id = ["id", "model", "name"].iter().find_map(|k| item.get(*k).and_then(Value::as_str))?;
            let context_window = item
                .get("max_model_len")
                .or_else(|| item.get("context_length"))
                .or_else(|| item.get("context_window"))
                .or_else(|| item.get("max_context_length"))
                .or_else(|| item.get("meta").and_then(|m| m.get("n_ctx")))
                .and_then(Value::as_u64);
            Some(ModelInfo {
                id: id.to_owned(),
                owned_by: item.get("owned_by").and_then(Value::as_str).map(str::to_owned),
                context_window,
                raw: item.clone(),
            })
        })
        .collect())
}

impl Shared {
    /// Sends a request and waits for the head, within `head_timeout` once connected.
    async fn send(
        &self,
        method: &'static str,
        uri: &Uri,
        body: Option<(&Bytes, &str)>,
        head_timeout: Duration,
    ) -> Result<Response, Error> {
        let response = match &self.client {
            Client::Native(http) => {
                let request = Request {
                    method,
                    uri,
                    headers: &self.headers,
                    body: body.map(|(b, t)| (&b[..], t)),
                    head_timeout: Some(head_timeout),
                    connect_timeout: self.connect_timeout,
                };
                http.send(&request).await?
            }
            Client::Custom(transport) => {
                let request = TransportRequest {
                    method,
                    uri,
                    headers: &self.headers,
                    body: body.map(|(b, _)| b),
                    content_type: body.map_or("application/json", |(_, t)| t),
                    connect_timeout: self.connect_timeout,
                    head_timeout: Some(head_timeout),
                };
                let (status, headers, stream) = transport.send(request).await?.into_parts();
                Response { status, headers, body: Body::Stream { stream, failed: false } }
            }
        };
        if let Some(error) = redirect_error(response.status, &response.headers) {
            return Err(error);
        }
        Ok(response)
    }

    async fn get(&self, uri: &Uri) -> Result<Response, Error> {
        self.send("GET", uri, None, self.timeouts.headers).await
    }

    /// POSTs a request to the API the backend speaks, starting with the body prepared for
    /// `first`; when the server says it is the wrong API, to the other one (remembered).
    /// A non-2xx answer becomes its classified error, body read.
    async fn post_api(
        &self,
        messages: &[Message],
        options: &RequestOptions,
        stream: bool,
        first: &(Api, Bytes),
    ) -> Result<(Api, Response), Error> {
        let head_timeout = if stream { self.timeouts.headers } else { self.timeouts.complete_headers };
        let mut api = self.api.pick(options);
        let mut body = if api == first.0 { first.1.clone() } else { self.body(api, messages, options, stream)? };
        loop {
            let uri = match api {
                Api::Chat => &self.chat_uri,
                Api::Responses => &self.responses_uri,
            };
            match self.post(uri, &body, head_timeout).await {
                Ok(response) => {
                    self.api.confirm(api);
                    return Ok((api, response));
                }
                Err(error) => match self.api.switch_after(api, &error) {
                    Some(next) => {
                        api = next;
                        body = self.body(api, messages, options, stream)?;
                    }
                    None => return Err(error),
                },
            }
        }
    }

    /// POSTs a JSON body; a non-2xx answer becomes its classified error, body read.
    async fn post(&self, uri: &Uri, body: &Bytes, head_timeout: Duration) -> Result<Response, Error> {
        self.send_checked("POST", uri, Some((body, JSON)), head_timeout).await
    }

    /// Sends a request; a non-2xx answer becomes its classified error, body read.
    async fn send_checked(
        &self,
        method: &'static str,
        uri: &Uri,
        body: Option<(&Bytes, &str)>,
        head_timeout: Duration,
    ) -> Result<Response, Error> {
        let mut response = self.send(method, uri, body, head_timeout).await?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        let bytes = response.body.read_to_end(self.timeouts.idle, MAX_ERROR_BODY).await.unwrap_or_default();
        Err(classify::from_response(response.status, &response.headers, &bytes, SystemTime::now()))
    }

    fn body(&self, api: Api, messages: &[Message], options: &RequestOptions, stream: bool) -> Result<Bytes, Error> {
        let body = match api {
            Api::Chat => to_body(&ChatRequest { model: &self.model, messages, options, stream, config: &self.wire }),
            Api::Responses => write_body(&ResponsesRequest {
                model: &self.model,
                messages,
                options,
                stream,
                config: &self.responses_wire,
            }),
        };
        body.map(Bytes::from).map_err(|e| self.finish_error(e))
    }

    /// The API for a request and its body.
    fn first_body(&self, messages: &[Message], options: &RequestOptions, stream: bool) -> Result<(Api, Bytes), Error> {
        let api = self.api.pick(options);
        Ok((api, self.body(api, messages, options, stream)?))
    }

    /// Adds what every error leaving the backend carries, and removes the key.
    fn finish_error(&self, error: Error) -> Error {
        let error = error.with_model(&self.model);
        match &self.api_key {
            Some(key) => error.redact(key.expose_secret()),
            None => error,
        }
    }

    fn deadline(&self, stream: bool) -> Option<tokio::time::Instant> {
        let total = if stream { self.timeouts.total } else { self.timeouts.complete_total };
        total.map(|t| tokio::time::Instant::now() + t)
    }
}

impl StreamOwner for Shared {
    fn finish_error(&self, error: Error) -> Error {
        Shared::finish_error(self, error)
    }

    fn trace_content(&self) -> bool {
        self.trace_content
    }

    fn record_outcome(&self, span: &tracing::Span, outcome: Result<&ModelResponse, &Error>) {
        record_outcome(span, outcome)
    }
}

/// A redirect is an error that says where the server points: a chat request is never
/// followed to another address (its key would go along), and the fix is the base URL.
fn redirect_error(status: u16, headers: &http::HeaderMap) -> Option<Error> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let message = if location.is_empty() {
        "the server redirected the request without saying where; check the base URL".to_owned()
    } else {
        let shown: String = location.chars().take(300).collect();
        format!("the server redirected the request to {shown}; set the base URL to where it points")
    };
    Some(Error::new(crate::error::ErrorKind::Config, message).with_status(status).with_retryable(false))
}

async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, fut).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout("the total deadline passed")),
        },
        None => fut.await,
    }
}

impl Shared {
    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up. A wait that
    /// would end after the total deadline returns the error at once.
    async fn retrying<T, F, Fut>(&self, deadline: Option<tokio::time::Instant>, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut retry = 0;
        loop {
            // Each attempt's future (a whole exchange: kilobytes of state) lives in a box of its
            // own, so that the futures around it (this one, the deadline, the caller's, the
            // trait's box) stay small: moving them is then cheap.
            let error = match Box::pin(attempt()).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let Some(wait) = self.retry.delay(retry, &error) else { return Err(error) };
            if deadline.is_some_and(|d| tokio::time::Instant::now() + wait >= d) {
                return Err(error);
            }
            retry += 1;
            tracing::warn!(
                retry,
                wait_ms = wait.as_millis() as u64,
                error.kind = error.kind().as_str(),
                status = error.status(),
                "retrying after a {} error",
                error.kind()
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// With `trace_content`, the request body (the conversation) as an event of the span.
    /// Never on by default: conversations are the user's data.
    fn trace_prompt(&self, span: &tracing::Span, body: &Bytes) {
        if self.trace_content {
            span.in_scope(|| tracing::debug!(gen_ai.prompt = %String::from_utf8_lossy(body), "prompt"));
        }
    }

    /// The span of one request; `operation` is its GenAI operation name (`chat`,
    /// `text_completion`).
    fn span(&self, options: &RequestOptions, stream: bool, operation: &'static str) -> tracing::Span {
        tracing::info_span!(
            "chat",
            otel.name = %format_args!("{operation} {}", self.model),
            gen_ai.operation.name = operation,
            gen_ai.provider.name = self.preset.name(),
            gen_ai.request.model = %self.model,
            gen_ai.request.max_tokens = options.max_tokens,
            gen_ai.request.temperature = options.temperature,
            gen_ai.request.top_p = options.top_p,
            gen_ai.request.stream = stream,
            server.address = self.chat_uri.host().unwrap_or(""),
            server.port = self.chat_uri.port_u16(),
            gen_ai.response.id = tracing::field::Empty,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    }
}

/// Records the outcome of a request on its span.
pub(crate) fn record_outcome(span: &tracing::Span, outcome: Result<&ModelResponse, &Error>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(r) => {
            if let Some(id) = &r.id {
                span.record("gen_ai.response.id", id.as_str());
            }
            if let Some(model) = &r.model {
                span.record("gen_ai.response.model", model.as_str());
            }
            if let Some(finish) = &r.finish_reason {
                span.record("gen_ai.response.finish_reasons", finish.as_str());
            }
            if let Some(u) = r.usage {
                span.record("gen_ai.usage.input_tokens", u.input_tokens);
                span.record("gen_ai.usage.output_tokens", u.output_tokens);
            }
        }
        Err(e) => {
            span.record("error.type", e.kind().as_str());
        }
    }
}

impl OpenAICompatibleBackend {
    /// Runs a non-streamed request: `send` posts it (to whichever API) and gives the answer's
    /// head; its body is read and parsed by that API's reader, with retries within the
    /// deadline, the outcome on `span`, and the key kept out of errors.
    pub(crate) async fn complete_with<F, Fut>(&self, span: tracing::Span, send: F) -> Result<ModelResponse, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(Api, Response), Error>>,
    {
        let s = &*self.shared;
        let deadline = s.deadline(false);
        let attempt = || async {
            let (api, mut response) = send().await?;
            let bytes = response.body.read_to_end(s.timeouts.idle, s.max_response_bytes).await?;
            match api {
                Api::Chat => parse_response(Bytes::from(bytes), s.think_tags),
                Api::Responses => responses::response::parse_response(Bytes::from(bytes), s.think_tags),
            }
        };
        let result = within(deadline, s.retrying(deadline, attempt))
            .instrument(span.clone())
            .await
            .map_err(|e| s.finish_error(e));
        record_outcome(&span, result.as_ref());
        if let (true, Ok(response)) = (s.trace_content, &result) {
            span.in_scope(|| tracing::debug!(gen_ai.completion = %response.content, "completion"));
        }
        result
    }

    /// Runs a streamed request: `send` posts it, and the stream is returned once its first
    /// chunk came. An attempt lasts until that chunk: a failure before it can still be
    /// retried; after it, errors are items of the stream.
    pub(crate) async fn stream_with<F, Fut>(&self, span: tracing::Span, send: F) -> Result<ChunkStream, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(Api, Response), Error>>,
    {
        let s = &*self.shared;
        let deadline = s.deadline(true);
        let attempt = || {
            let span = span.clone();
            let sent = send();
            async move {
                let (api, mut response) = sent.await?;
                let is_json = response
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
                if is_json {
                    // The server ignored `stream: true` and sent the whole answer (Prism does).
                    let bytes = response.body.read_to_end(s.timeouts.idle, s.max_response_bytes).await?;
                    let whole = match api {
                        Api::Chat => parse_response(Bytes::from(bytes), s.think_tags)?,
                        Api::Responses => responses::response::parse_response(Bytes::from(bytes), s.think_tags)?,
                    };
                    record_outcome(&span, Ok(&whole));
                    return Ok(crate::model_backend::stream_of(&whole));
                }
                let decoder = match api {
                    Api::Chat => EventDecoder::new(s.think_tags),
                    Api::Responses => EventDecoder::responses(s.think_tags),
                };
                let mut stream =
                    SseStream::new(response.body, decoder, s.timeouts.idle, deadline, Arc::clone(&self.shared), span);
                match stream.next().await {
                    Some(Ok(first)) => {
                        stream.push_front(first);
                        Ok(Box::pin(stream) as ChunkStream)
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(Error::stream("the stream ended without a chunk")),
                }
            }
        };
        let result = within(deadline, s.retrying(deadline, attempt))
            .instrument(span.clone())
            .await
            .map_err(|e| s.finish_error(e));
        if let Err(e) = &result {
            record_outcome(&span, Err(e));
        }
        result
    }
}

#[async_trait]
impl ModelBackend for OpenAICompatibleBackend {
    fn name(&self) -> &str {
        "openai_compatible"
    }

    fn model(&self) -> &str {
        &self.shared.model
    }

    fn profile(&self) -> &ModelProfile {
        &self.shared.profile
    }

    async fn complete(&self, messages: &[Message], options: &RequestOptions) -> Result<ModelResponse, Error> {
        let s = &*self.shared;
        let first = s.first_body(messages, options, false)?;
        let span = s.span(options, false, "chat");
        s.trace_prompt(&span, &first.1);
        let first = &first;
        self.complete_with(span, || s.post_api(messages, options, false, first)).await
    }

    async fn stream(&self, messages: &[Message], options: &RequestOptions) -> Result<ChunkStream, Error> {
        let s = &*self.shared;
        let first = s.first_body(messages, options, true)?;
        let span = s.span(options, true, "chat");
        s.trace_prompt(&span, &first.1);
        let first = &first;
        self.stream_with(span, || s.post_api(messages, options, true, first)).await
    }

    async fn health_check(&self) -> bool {
        let s = &*self.shared;
        match s.get(&s.models_uri).await {
            Ok(response) => matches!(response.status, 200 | 401 | 403),
            Err(_) => false,
        }
    }

    async fn health(&self) -> HealthReport {
        OpenAICompatibleBackend::health(self).await
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, Error> {
        OpenAICompatibleBackend::list_models(self).await
    }

    fn as_embedder(&self) -> Option<&dyn crate::embeddings::Embedder> {
        Some(self)
    }

    fn as_post_json(&self) -> Option<&dyn PostJson> {
        Some(self)
    }
}

#[async_trait]
impl PostJson for OpenAICompatibleBackend {
    async fn post_json(&self, path: &str, body: Bytes) -> Result<RawResponse, Error> {
        let s = &*self.shared;
        let result = async {
            let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
            let url = format!("{}{path}", s.base_url);
            let uri: Uri =
                url.parse().map_err(|e| Error::config(format!("invalid request path {path:?}")).with_source(e))?;
            let deadline = s.deadline(false);
            let attempt = || async {
                let response = s.post(&uri, &body, s.timeouts.complete_headers).await?;
                let Response { status, headers, mut body } = response;
                let bytes = body.read_to_end(s.timeouts.idle, s.max_response_bytes).await?;
                Ok(RawResponse::new(status, headers, bytes))
            };
            within(deadline, s.retrying(deadline, attempt)).await
        }
        .await;
        result.map_err(|e| s.finish_error(e))
    }
}

/// A backend for Ollama's OpenAI layer at `http://localhost:11434/v1`, no key. Does no I/O and
/// cannot fail; use [`OpenAICompatibleBackend::builder`] with [`Preset::Ollama`] to change the
/// URL.
pub fn create_ollama_backend(model: impl Into<String>) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder(model).preset(Preset::Ollama).build_infallible()
}

/// A backend for vLLM at `http://localhost:8000/v1`, no key.
pub fn create_vllm_backend(model: impl Into<String>) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder(model).preset(Preset::Vllm).build_infallible()
}

/// A backend for LM Studio at `http://localhost:1234/v1` with the model `local-model` (LM
/// Studio answers with whichever model is loaded).
pub fn create_lmstudio_backend() -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("local-model").preset(Preset::LmStudio).build_infallible()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_in_every_shape() {
        let openai =
            parse_models(br#"{"object":"list","data":[{"id":"gpt-4o","object":"model","owned_by":"openai"}]}"#)
                .unwrap();
        assert_eq!(openai[0].id, "gpt-4o");
        assert_eq!(openai[0].owned_by.as_deref(), Some("openai"));
        let vllm = parse_models(br#"{"data":[{"id":"m","max_model_len":8192}]}"#).unwrap();
        assert_eq!(vllm[0].context_window, Some(8192));
        let llamacpp =
            parse_models(br#"{"models":[{"name":"x"}],"object":"list","data":[{"id":"x","meta":{"n_ctx":4096}}]}"#)
                .unwrap();
        assert_eq!(llamacpp[0].context_window, Some(4096));
        let together = parse_models(br#"[{"id":"t","context_length":32768}]"#).unwrap();
        assert_eq!(together[0].context_window, Some(32768));
        let ollama_native =
            parse_models(br#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest"}]}"#).unwrap();
        assert_eq!(ollama_native[0].id, "llama3.2:latest");
        assert!(parse_models(b"{}").unwrap().is_empty());
        assert!(parse_models(b"nope").is_err());
    }

    #[test]
    fn debug_hides_credentials_in_the_base_url() {
        let b = OpenAICompatibleBackend::builder("m")
            .base_url("http://bob:pw-SECRET1@127.0.0.1:9/v1?api_key=sk-SECRET2&api-version=2024")
            .build()
            .unwrap();
        let shown = format!("{b:?}");
        assert!(!shown.contains("SECRET1") && !shown.contains("SECRET2"), "{shown}");
        assert!(shown.contains("127.0.0.1:9/v1") && shown.contains("api-version=2024"), "{shown}");
    }

    #[test]
    fn factories_use_the_seed_defaults() {
        let o = create_ollama_backend("llama3.2");
        assert_eq!(o.base_url(), "http://localhost:11434/v1");
        assert_eq!(o.model(), "llama3.2");
        let v = create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct");
        assert_eq!(v.base_url(), "http://localhost:8000/v1");
        let l = create_lmstudio_backend();
        assert_eq!((l.base_url(), l.model()), ("http://localhost:1234/v1", "local-model"));
        assert_eq!(o.name(), "openai_compatible");
    }
}
