//! [`OpenAICompatibleBackendBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, USER_AGENT};
use http::Uri;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::request::{MessageRules, ToolIdRule, WireConfig};
use super::{OpenAICompatibleBackend, Shared, Timeouts};
use crate::error::Error;
use crate::http::HttpClient;
use crate::preset::{AuthStyle, MaxTokensField, Preset};
use crate::profile::{get_profile, ModelProfile};
use crate::retry::RetryPolicy;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a non-streamed request waits for its answer, which comes after the whole
/// generation (the official SDKs wait 10 minutes too), and its default total bound.
const DEFAULT_COMPLETE_TIMEOUT: Duration = Duration::from_secs(600);

/// Configures an [`OpenAICompatibleBackend`]. Every setting has a default; see each method.
///
/// ```
/// use std::time::Duration;
/// use mamba_backends::{OpenAICompatibleBackend, Preset};
///
/// let backend = OpenAICompatibleBackend::builder("qwen3:8b")
///     .preset(Preset::Ollama)                    // URL, fields and quirks of Ollama
///     .base_url("http://gpu-box:11434/v1")       // default: the preset's URL
///     .timeout(Duration::from_secs(30))          // connect, headers and idle; default 60 s
///     .build()?;
/// # Ok::<(), mamba_backends::Error>(())
/// ```
#[must_use]
pub struct OpenAICompatibleBackendBuilder {
    model: String,
    base_url: Option<String>,
    api_key: Option<SecretString>,
    timeouts: Timeouts,
    profile: Option<ModelProfile>,
    preset: Preset,
    headers: Vec<(String, String)>,
    http: Option<HttpClient>,
    transport: Option<Arc<dyn crate::transport::Transport>>,
    connect_set: bool,
    think_tags: bool,
    include_usage: Option<bool>,
    body: Map<String, Value>,
    max_response_bytes: usize,
    retry: RetryPolicy,
    trace_content: bool,
    drop_unsupported: bool,
    embed_concurrency: usize,
    wire_api: Option<crate::preset::WireApi>,
}

impl fmt::Debug for OpenAICompatibleBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAICompatibleBackendBuilder")
            .field("model", &self.model)
            .field("base_url", &self.base_url.as_deref().map(crate::redact::redact_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("preset", &self.preset)
            .field("timeouts", &self.timeouts)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OpenAICompatibleBackendBuilder {
    pub(super) fn new(model: String) -> Self {
        OpenAICompatibleBackendBuilder {
            model,
            base_url: None,
            api_key: None,
            timeouts: Timeouts {
                connect: DEFAULT_TIMEOUT,
                headers: DEFAULT_TIMEOUT,
                complete_headers: DEFAULT_COMPLETE_TIMEOUT,
                idle: DEFAULT_TIMEOUT,
                total: None,
                complete_total: Some(DEFAULT_COMPLETE_TIMEOUT),
            },
            profile: None,
            preset: Preset::Generic,
            headers: Vec::new(),
            http: None,
            transport: None,
            connect_set: false,
            think_tags: true,
            include_usage: None,
            body: Map::new(),
            max_response_bytes: 64 * 1024 * 1024,
            retry: RetryPolicy::default(),
            trace_content: false,
            drop_unsupported: false,
            embed_concurrency: 4,
            wire_api: None,
        }
    }

    /// The API base URL, e.g. `http://localhost:8000/v1`; a trailing `/` is ignored and a
    /// query string is kept on every request. Default: the preset's URL
    /// (`https://api.openai.com/v1` for [`Preset::Generic`]).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API key, sent as the preset says (`Authorization: Bearer` by default). It is kept as
    /// a secret: never in `Debug`, errors or logs. Default: none. An empty key counts as none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        let key: String = key.into();
        self.api_key = (!key.is_empty()).then(|| SecretString::from(key));
        self
    }

    /// The seed's single timeout: sets the connect, response-header (streamed and not) and
    /// idle timeouts. Defaults: 60 s, except the response of a non-streamed request (10 min).
    ///
    /// This is **not** a bound on the whole request (as reqwest's `timeout` is): a stream that
    /// keeps sending lasts as long as the answer does. For a bound on the whole request, set
    /// [`total_timeout`](Self::total_timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self.connect_set = true;
        self.timeouts.headers = timeout;
        self.timeouts.complete_headers = timeout;
        self.timeouts.idle = timeout;
        self
    }

    /// Time allowed to connect (resolve, race the addresses, finish TLS). Default 60 s. Set
    /// here (or with [`timeout`](Self::timeout)), it also applies to a client given with
    /// [`http_client`](Self::http_client) and is handed to a [`transport`](Self::transport)
    /// with each request ([`TransportRequest::connect_timeout`](crate::transport::TransportRequest::connect_timeout));
    /// unset, such a client keeps its own.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self.connect_set = true;
        self
    }

    /// Time from sending a request to the response headers, streamed or not. Defaults: 60 s
    /// for a stream (the head comes before the first token), 10 minutes for a non-streamed
    /// request, whose head comes only after the whole generation. A non-streamed request
    /// that times out after it was sent is not resent unless the retry policy says so
    /// ([`RetryPolicy::resend_unanswered`]).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.headers = timeout;
        self.timeouts.complete_headers = timeout;
        self
    }

    /// Time from sending a streamed request to its response headers. Default 60 s.
    pub fn stream_response_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.headers = timeout;
        self
    }

    /// Longest silence while reading a body or between stream chunks; a stalled server then
    /// ends in a `Timeout` error instead of a hang. Default 60 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.idle = timeout;
        self
    }

    /// A deadline for a whole request (retries included), streams included. Default: 10
    /// minutes for a non-streamed request, none for a stream (a long answer may stream for
    /// as long as it keeps coming; the idle timeout catches a stalled one).
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.total = Some(timeout);
        self.timeouts.complete_total = Some(timeout);
        self
    }

    /// Removes the total deadline of non-streamed requests (and of streams, which have none
    /// by default): only the connect, response and idle timeouts bound a request.
    pub fn no_total_timeout(mut self) -> Self {
        self.timeouts.total = None;
        self.timeouts.complete_total = None;
        self
    }

    /// The model profile. Default: [`get_profile`] of the model.
    pub fn profile(mut self, profile: ModelProfile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The server kind: its default URL, auth header, accepted fields and quirks. Default
    /// [`Preset::Generic`].
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self
    }

    /// A header sent with every request (e.g. OpenRouter's `HTTP-Referer`,
    /// `OpenAI-Organization`). Invalid names or values fail [`build`](Self::build).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A shared HTTP client (and its connection pool; its proxy and TLS settings). Default: a
    /// new client (proxies from the environment, built-in roots).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Another transport instead of the built-in client: reqwest (HTTP/2, its middleware; the
    /// `reqwest` feature provides `ReqwestTransport`) or a test
    /// double. Every timeout still applies: connect and response-head timeouts travel with
    /// each request ([`TransportRequest`](crate::transport::TransportRequest)), idle and total ones are
    /// enforced here. Cannot be combined with [`http_client`](Self::http_client).
    pub fn transport(mut self, transport: impl crate::transport::Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Whether a leading `<think>…</think>` in the content is moved to the reasoning.
    /// Default: on.
    pub fn parse_think_tags(mut self, yes: bool) -> Self {
        self.think_tags = yes;
        self
    }

    /// Whether streams ask for usage (`stream_options.include_usage`). Default: the preset's
    /// value (on for most servers).
    pub fn include_usage(mut self, yes: bool) -> Self {
        self.include_usage = Some(yes);
        self
    }

    /// A body field sent with every request (before the request's own
    /// [`extra`](crate::RequestOptions::extra), which overrides it).
    pub fn body_field(mut self, key: impl Into<String>, value: Value) -> Self {
        self.body.insert(key.into(), value);
        self
    }

    /// How failed requests are retried. Default: [`RetryPolicy::default`] (3 retries,
    /// exponential backoff with jitter, `Retry-After` honoured).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Whether the conversation and the answer are recorded as `debug` events of the request's
    /// tracing span (`gen_ai.prompt`, `gen_ai.completion`). Default: off; the API key is never
    /// recorded either way.
    pub fn trace_content(mut self, yes: bool) -> Self {
        self.trace_content = yes;
        self
    }

    /// What happens to request fields the preset's server rejects (Groq `n`, Mistral
    /// `logit_bias`, JSON Schema output on DeepSeek): by default the request fails with
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) before anything is sent; with
    /// `true` they are dropped (or downgraded) with a warning. Fields a server silently
    /// ignores (Ollama's `tool_choice`) are always dropped with a warning.
    pub fn drop_unsupported(mut self, yes: bool) -> Self {
        self.drop_unsupported = yes;
        self
    }

    /// How many requests of one embeddings call (inputs beyond the server's per-request
    /// limits are split) are in flight at once. Default 4.
    pub fn embedding_concurrency(mut self, n: usize) -> Self {
        self.embed_concurrency = n.max(1);
        self
    }

    /// Which API requests go to: chat completions, the Responses API, or
    /// [`WireApi::Auto`](crate::preset::WireApi::Auto) (the Responses API where the server has it,
    /// else chat, learned on the first request and remembered). Default: the preset's
    /// ([`PresetSpec::wire_api`](crate::preset::PresetSpec::wire_api): `Auto` for OpenAI and Azure,
    /// chat for the rest). Callers get the same answers and chunks either way.
    pub fn wire_api(mut self, api: crate::preset::WireApi) -> Self {
        self.wire_api = Some(api);
        self
    }

    /// The largest response body accepted, in bytes. Default 64 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Builds the backend. Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for an
    /// invalid URL or header; does no I/O.
    pub fn build(self) -> Result<OpenAICompatibleBackend, Error> {
        let spec = self.preset.spec();
        let given_url = self.base_url.as_deref().unwrap_or(spec.base_url).trim();
        // Exactly a URL, or a config error: `http::Uri` reads an out-of-range port as none,
        // which sent the key to port 80.
        crate::http::url::check(given_url, "base URL", &["http", "https"])?;
        let shown = crate::redact::redact_url(given_url);
        // `user:password@` in the URL is sent as Basic auth and never shown.
        let (bare_url, userinfo) = crate::http::split_userinfo(given_url)?;
        let raw_url = bare_url.as_str();
        if raw_url.contains("RESOURCE") || raw_url.contains("DEPLOYMENT") {
            return Err(Error::config(format!(
                "the {} preset has no usable default URL: set base_url (e.g. {raw_url})",
                spec.name
            )));
        }
        let (path, query) = match raw_url.split_once('?') {
            Some((path, query)) => (path.trim_end_matches('/'), Some(query.to_owned())),
            None => (raw_url.trim_end_matches('/'), None),
        };
        let query = merge_query(query, spec.query);
        let uri = |endpoint: &str| -> Result<Uri, Error> {
            let text = match &query {
                Some(q) => format!("{path}{endpoint}?{q}"),
                None => format!("{path}{endpoint}"),
            };
            let uri: Uri =
                text.parse().map_err(|e| Error::config(format!("invalid base URL {shown:?}")).with_source(e))?;
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") if HttpClient::supports_https() => {}
                Some("https") => {
                    return Err(Error::config("https URLs need the `rustls` feature of mamba-backends"));
                }
                _ => {
                    return Err(Error::config(format!(
                        "invalid base URL {shown:?}: it must start with http:// or https://"
                    )))
                }
            }
            if uri.host().is_none_or(str::is_empty) {
                return Err(Error::config(format!("invalid base URL {shown:?}: no host")));
            }
            Ok(uri)
        };
        let chat_uri = uri("/chat/completions")?;
        let completions_uri = uri("/completions")?;
        let responses_uri = uri("/responses")?;
        let models_uri = uri("/models")?;
        let embeddings_uri = uri("/embeddings")?;

        let mut headers =
            vec![(USER_AGENT, HeaderValue::from_static(concat!("mamba-backends/", env!("CARGO_PKG_VERSION"))))];
        if let Some(key) = &self.api_key {
            let (name, value) = match spec.auth {
                AuthStyle::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose_secret())),
                AuthStyle::Header(name) => (HeaderName::from_static(name), key.expose_secret().to_owned()),
            };
            // The message must not contain the key, so the parse error is not chained.
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| Error::config("the API key contains characters not allowed in an HTTP header"))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        if let Some(info) = &userinfo {
            if headers.iter().any(|(n, _)| *n == AUTHORIZATION) {
                return Err(Error::config(
                    "the base URL has a user and password and an API key is set: both would be the \
                     Authorization header; remove one",
                ));
            }
            headers.push((AUTHORIZATION, info.basic()?));
        }
        for (name, value) in &self.headers {
            let header_name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| Error::config(format!("invalid header name {name:?}")).with_source(e))?;
            crate::http::check_user_header(&header_name)?;
            let mut header_value = HeaderValue::from_str(value.trim())
                .map_err(|e| Error::config(format!("invalid value for header {name:?}")).with_source(e))?;
            if header_name == AUTHORIZATION || name.to_ascii_lowercase().contains("key") {
                header_value.set_sensitive(true);
            }
            headers.retain(|(n, _)| *n != header_name);
            headers.push((header_name, header_value));
        }

        let profile = self.profile.unwrap_or_else(|| get_profile(&self.model));
        let max_tokens_field = match spec.max_tokens {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            MaxTokensField::ByProfile if profile.uses_max_completion_tokens => "max_completion_tokens",
            MaxTokensField::ByProfile => "max_tokens",
        };
        let wire = WireConfig {
            target: spec.name,
            unsupported: spec.unsupported,
            drop_unsupported: self.drop_unsupported,
            structured: spec.structured_output,
            max_tokens_field,
            include_usage: self.include_usage.unwrap_or(spec.include_usage),
            renames: spec.renames,
            message: MessageRules {
                reasoning_echo_field: spec.reasoning_echo_field,
                tool_id_rule: if spec.nine_char_tool_ids { ToolIdRule::NineAlnum } else { ToolIdRule::Any },
                names: spec.message_names,
            },
            default_temperature: profile.default_temperature,
            body_extra: self.body,
        };
        // The Responses API has one token field and no stream options; the preset's field
        // rules still apply.
        let responses_wire = WireConfig {
            max_tokens_field: "max_output_tokens",
            include_usage: false,
            renames: &[],
            structured: crate::preset::StructuredOutput::Native,
            ..wire.clone()
        };
        let api = super::ApiChoice::new(self.wire_api.unwrap_or(spec.wire_api), self.wire_api.is_some());
        let client = match (self.transport, self.http) {
            (Some(_), Some(_)) => {
                return Err(Error::config("set either http_client or transport on the builder, not both"));
            }
            (Some(transport), None) => super::Client::Custom(transport),
            (None, Some(http)) => super::Client::Native(http),
            (None, None) => {
                super::Client::Native(HttpClient::builder().connect_timeout(Some(self.timeouts.connect)).build())
            }
        };
        let connect_timeout = self.connect_set.then_some(self.timeouts.connect);
        Ok(OpenAICompatibleBackend {
            shared: Arc::new(Shared {
                model: self.model,
                base_url: match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_owned(),
                },
                chat_uri,
                completions_uri,
                responses_uri,
                models_uri,
                headers,
                api_key: self.api_key,
                profile,
                preset: self.preset,
                wire,
                responses_wire,
                api,
                timeouts: self.timeouts,
                think_tags: self.think_tags,
                max_response_bytes: self.max_response_bytes,
                retry: self.retry,
                trace_content: self.trace_content,
                client,
                connect_timeout,
                embeddings_uri,
                embed_base64: std::sync::atomic::AtomicBool::new(true),
                embed_concurrency: self.embed_concurrency,
                files_root: super::batches::files_root(path).to_owned(),
                query,
            }),
        })
    }

    /// For the seed's factories, whose constant URLs cannot fail to parse.
    pub(super) fn build_infallible(self) -> OpenAICompatibleBackend {
        match self.build() {
            Ok(backend) => backend,
            Err(e) => unreachable!("a preset's default URL is valid: {e}"),
        }
    }
}

/// Adds the preset's query parameters that the URL does not already set.
fn merge_query(query: Option<String>, preset: Option<&'static str>) -> Option<String> {
    let Some(preset) = preset else { return query };
    let mut out = query.unwrap_or_default();
    for pair in preset.split('&') {
        let key = pair.split('=').next().unwrap_or(pair);
        let present = out.split('&').any(|p| p.split('=').next() == Some(key));
        if !present {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(pair);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn urls_are_trimmed_and_validated() {
        let b = OpenAICompatibleBackend::builder("m").base_url("http://localhost:8000/v1/").build().unwrap();
        assert_eq!(b.base_url(), "http://localhost:8000/v1");
        assert_eq!(b.shared.chat_uri, "http://localhost:8000/v1/chat/completions");
        for bad in ["localhost:8000", "ftp://x/v1", "http://", "not a url", ""] {
            let e = OpenAICompatibleBackend::builder("m").base_url(bad).build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        }
    }

    /// An out-of-range port is a config error at build (it was read as port 80, and the key
    /// went there), and so is anything after the port; the key of the URL is never shown.
    #[test]
    fn ports_out_of_range_are_config_errors() {
        for bad in [
            "http://127.0.0.1:99999/v1",
            "http://127.0.0.1:65536/v1",
            "http://127.0.0.1:0/v1",
            "http://127.0.0.1:80x/v1",
            "http://bob:sk-url-secret-99@127.0.0.1:99999/v1",
            "http://127.0.0.1:99999/v1?api_key=sk-url-secret-99",
        ] {
            let e = OpenAICompatibleBackend::builder("m").base_url(bad).api_key("sk-key-secret").build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
            let m = e.to_string();
            assert!(m.contains("port"), "{m}");
            assert!(!m.contains("secret"), "{m}");
        }
        let b = OpenAICompatibleBackend::builder("m").base_url("http://127.0.0.1:65535/v1").build().unwrap();
        assert_eq!(b.shared.chat_uri.port_u16(), Some(65535));
    }

    #[test]
    #[cfg(feature = "rustls")]
    fn query_strings_and_azure_legacy() {
        let b = OpenAICompatibleBackend::builder("gpt-4o")
            .preset(Preset::AzureLegacy)
            .base_url("https://r.openai.azure.com/openai/deployments/d")
            .build()
            .unwrap();
        assert_eq!(
            b.shared.chat_uri,
            "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
        );
        let b = OpenAICompatibleBackend::builder("gpt-4o")
            .preset(Preset::AzureLegacy)
            .base_url("https://r.openai.azure.com/openai/deployments/d?api-version=2025-01-01-preview")
            .build()
            .unwrap();
        assert_eq!(
            b.shared.models_uri,
            "https://r.openai.azure.com/openai/deployments/d/models?api-version=2025-01-01-preview"
        );
        let e = OpenAICompatibleBackend::builder("x").preset(Preset::Azure).build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    #[cfg(feature = "rustls")]
    fn key_is_sent_as_the_preset_says_and_never_shown() {
        let b = OpenAICompatibleBackend::builder("m").api_key("sk-very-secret").build().unwrap();
        let auth = b.shared.headers.iter().find(|(n, _)| n == AUTHORIZATION).unwrap();
        assert_eq!(auth.1, "Bearer sk-very-secret");
        assert!(auth.1.is_sensitive());
        assert!(!format!("{b:?}").contains("sk-very-secret"));
        let azure = OpenAICompatibleBackend::builder("m")
            .preset(Preset::AzureLegacy)
            .base_url("https://r.openai.azure.com/openai/deployments/d")
            .api_key("azure-secret")
            .build()
            .unwrap();
        assert!(azure.shared.headers.iter().any(|(n, v)| n == "api-key" && v == "azure-secret"));
        let e = OpenAICompatibleBackend::builder("m").api_key("bad\nkey-secret").build().unwrap_err();
        assert!(!e.to_string().contains("key-secret"));
        let builder = OpenAICompatibleBackend::builder("m").api_key("sk-builder-secret");
        assert!(!format!("{builder:?}").contains("sk-builder-secret"));
    }

    #[test]
    #[cfg(feature = "rustls")]
    fn headers_are_validated_and_replace() {
        let e = OpenAICompatibleBackend::builder("m").header("bad name", "x").build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let b = OpenAICompatibleBackend::builder("m")
            .header("User-Agent", "mine/1")
            .header("X-Title", "app")
            .build()
            .unwrap();
        assert_eq!(b.shared.headers.iter().filter(|(n, _)| n == USER_AGENT).count(), 1);
        assert!(b.shared.headers.iter().any(|(n, v)| n == USER_AGENT && v == "mine/1"));
    }

    #[test]
    fn transport_headers_are_refused() {
        for name in ["Host", "content-length", "Transfer-Encoding", "connection"] {
            let e =
                OpenAICompatibleBackend::builder("m").base_url("http://x/v1").header(name, "1").build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{name}");
            assert!(e.to_string().contains("remove it"), "{e}");
        }
    }

    #[test]
    fn url_credentials_become_basic_auth() {
        let b = OpenAICompatibleBackend::builder("m").base_url("http://bob:s3cr%40t@gw.local/v1").build().unwrap();
        assert_eq!(b.base_url(), "http://gw.local/v1");
        assert_eq!(b.shared.chat_uri, "http://gw.local/v1/chat/completions");
        let auth = b.shared.headers.iter().find(|(n, _)| n == AUTHORIZATION).unwrap();
        assert_eq!(auth.1, "Basic Ym9iOnMzY3JAdA==");
        assert!(auth.1.is_sensitive());
        assert!(!format!("{b:?}").contains("s3cr"));
        let builder = OpenAICompatibleBackend::builder("m").base_url("http://bob:s3cr%40t@gw.local/v1");
        assert!(!format!("{builder:?}").contains("s3cr"));
        let e = OpenAICompatibleBackend::builder("m")
            .base_url("http://bob:pw@gw.local/v1")
            .api_key("sk-x")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("remove one"), "{e}");
    }

    #[test]
    #[cfg(not(feature = "rustls"))]
    fn https_needs_the_rustls_feature() {
        let e = OpenAICompatibleBackend::builder("m").base_url("https://api.openai.com/v1").build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("rustls"));
    }

    #[test]
    fn max_tokens_field_by_preset_and_profile() {
        let field = |preset, model: &str| {
            OpenAICompatibleBackend::builder(model)
                .preset(preset)
                .base_url("http://x/v1")
                .build()
                .unwrap()
                .shared
                .wire
                .max_tokens_field
        };
        assert_eq!(field(Preset::Generic, "gpt-4o"), "max_tokens");
        assert_eq!(field(Preset::Generic, "o3-mini"), "max_completion_tokens");
        assert_eq!(field(Preset::OpenAI, "gpt-4o"), "max_completion_tokens");
        assert_eq!(field(Preset::Ollama, "gpt-5"), "max_tokens");
    }

    #[test]
    fn merge_query_keeps_user_values() {
        assert_eq!(merge_query(None, None), None);
        assert_eq!(merge_query(Some("a=1".into()), None).as_deref(), Some("a=1"));
        assert_eq!(merge_query(None, Some("api-version=1")).as_deref(), Some("api-version=1"));
        assert_eq!(merge_query(Some("api-version=2".into()), Some("api-version=1")).as_deref(), Some("api-version=2"));
        assert_eq!(merge_query(Some("x=1".into()), Some("api-version=1")).as_deref(), Some("x=1&api-version=1"));
    }
}
