//! The one error type of the crate.
//!
//! Every failure, whether the server answered with an HTTP error, sent an error frame in the
//! middle of a stream, closed the connection early or could not be reached, is an [`Error`]
//! with an [`ErrorKind`]. The kind is what callers branch on; the accessors give the HTTP
//! status, the server's own message, the raw body and the server's `Retry-After`.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What went wrong, normalised across servers.
///
/// The classification uses the HTTP status first and then the server's error body, so that,
/// for example, a 400 that says "maximum context length" is [`ErrorKind::ContextOverflow`]
/// on vLLM, llama.cpp, OpenAI and TGI alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The API key is missing or wrong (HTTP 401).
    Authentication,
    /// The key is valid but may not do this (HTTP 403).
    PermissionDenied,
    /// Too many requests (HTTP 429); see [`Error::retry_after`].
    RateLimited,
    /// The account is out of credit or quota (`insufficient_quota`, HTTP 402). Not retryable.
    QuotaExceeded,
    /// The prompt plus the requested output does not fit the model's context window.
    ContextOverflow,
    /// The model (or Azure deployment) does not exist on this server.
    ModelNotFound,
    /// The server rejected the request as malformed (HTTP 400, 404 on an unknown path, 422).
    InvalidRequest,
    /// The request asks for something this server or this crate cannot do.
    Unsupported,
    /// The server failed (HTTP 500, 502, 504) or reported an error in a stream.
    Server,
    /// The server is up but not ready: loading a model, overloaded (HTTP 503, 529).
    Unavailable,
    /// A deadline passed: connect, response headers, between stream chunks, or in total.
    Timeout,
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// The server answered, but not with JSON of a shape this crate understands.
    Decode,
    /// The stream broke: cut before the server finished, or the connection failed mid-way.
    Stream,
    /// The backend is misconfigured (invalid base URL, header or option), or a schema given
    /// for structured output is not valid JSON Schema.
    Config,
    /// The model refused to answer (a `refusal`, or the content filter stopped it); the
    /// refusal's text is in the message. Not retryable.
    Refusal,
    /// The answer was cut by the token limit (`finish_reason: length`) before its JSON was
    /// complete: raise `max_tokens` or ask for less. Not retryable unchanged.
    Truncated,
    /// Structured output still failed to parse or validate after the last attempt;
    /// [`attempts_of`](crate::structured::attempts_of) gives every attempt's text and error.
    InvalidOutput,
}

impl ErrorKind {
    /// Every kind, in declaration order (for lists of kinds a user may name, e.g. a gateway's
    /// fallback conditions).
    pub const ALL: [ErrorKind; 18] = [
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::RateLimited,
        ErrorKind::QuotaExceeded,
        ErrorKind::ContextOverflow,
        ErrorKind::ModelNotFound,
        ErrorKind::InvalidRequest,
        ErrorKind::Unsupported,
        ErrorKind::Server,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Decode,
        ErrorKind::Stream,
        ErrorKind::Config,
        ErrorKind::Refusal,
        ErrorKind::Truncated,
        ErrorKind::InvalidOutput,
    ];

    /// The kind named by its [`as_str`](ErrorKind::as_str) form (`rate_limited`, …).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind in `snake_case`, as the CLI prints it in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::ContextOverflow => "context_overflow",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Server => "server",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Decode => "decode",
            ErrorKind::Stream => "stream",
            ErrorKind::Config => "config",
            ErrorKind::Refusal => "refusal",
            ErrorKind::Truncated => "truncated",
            ErrorKind::InvalidOutput => "invalid_output",
        }
    }

    /// Whether a request that failed with this kind may succeed when sent again unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Connect
                | ErrorKind::Stream
        )
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::ContextOverflow => "context window exceeded",
            ErrorKind::ModelNotFound => "model not found",
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Server => "server error",
            ErrorKind::Unavailable => "server unavailable",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Connect => "connection failed",
            ErrorKind::Decode => "could not decode the response",
            ErrorKind::Stream => "stream failed",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Refusal => "the model refused",
            ErrorKind::Truncated => "the answer was cut by the token limit",
            ErrorKind::InvalidOutput => "the answer is not valid structured output",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The error of every fallible operation in this crate.
///
/// `Display` prints one line: what happened, the HTTP status when there was one, and the
/// server's own message. The underlying transport error, if any, is the [`source`](StdError::source).
/// Neither `Display` nor `Debug` ever contains the API key: the backend removes it from any
/// text the server echoes back before the error reaches you.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    retryable: Option<bool>,
    body: Option<String>,
    code: Option<String>,
    model: Option<String>,
    request_id: Option<String>,
    source: Option<BoxError>,
    unanswered: bool,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                retry_after: None,
                retryable: None,
                body: None,
                code: None,
                model: None,
                request_id: None,
                source: None,
                unanswered: false,
            }),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn decode(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Decode, message)
    }

    pub(crate) fn stream(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Stream, message)
    }

    pub(crate) fn timeout(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Timeout, message)
    }

    /// The HTTP status the error came with.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Error {
        self.inner.status = Some(status);
        self
    }

    /// How long the server asked to wait before trying again.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Error {
        self.inner.retry_after = retry_after;
        self
    }

    /// Overrides whether the error is retryable (by default its kind decides).
    #[must_use]
    pub fn with_retryable(mut self, retryable: bool) -> Error {
        self.inner.retryable = Some(retryable);
        self
    }

    /// The response body, as the server sent it.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<String>) -> Error {
        self.inner.body = Some(body.into());
        self
    }

    /// The error code the server gave (such as `"context_length_exceeded"`).
    #[must_use]
    pub fn with_code(mut self, code: Option<String>) -> Error {
        self.inner.code = code;
        self
    }

    /// The model the request was for (kept if one is already set).
    #[must_use]
    pub fn with_model(mut self, model: &str) -> Error {
        if self.inner.model.is_none() {
            self.inner.model = Some(model.to_owned());
        }
        self
    }

    /// Sets the id the server gave the failed request (its `x-request-id` header), for
    /// support tickets and logs.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Error {
        self.inner.request_id = Some(request_id.into());
        self
    }

    /// Takes the underlying error out (the structured-output loop wraps it with its attempts).
    pub(crate) fn take_source(&mut self) -> Option<BoxError> {
        self.inner.source.take()
    }

    /// The underlying error, reported by [`source`](StdError::source).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Error {
        self.inner.source = Some(source.into());
        self
    }

    /// Marks a request that was sent whole and then got no answer in time: the server may be
    /// working on it (and billing it), so it is not retryable unless the retry policy says so
    /// ([`RetryPolicy::resend_unanswered`](crate::RetryPolicy::resend_unanswered)).
    #[must_use]
    pub fn with_unanswered(mut self) -> Error {
        self.inner.unanswered = true;
        self.inner.retryable = Some(false);
        self
    }

    /// Whether the request was sent whole and then timed out waiting for its answer (see
    /// [`with_unanswered`](Self::with_unanswered)).
    pub fn is_unanswered(&self) -> bool {
        self.inner.unanswered
    }

    /// Replaces every occurrence of `secret` in the message and body (servers sometimes echo
    /// the key they rejected).
    /// The same error, its message prefixed with where it happened (`inputs 16..32 of 40`).
    pub(crate) fn prefixed(mut self, context: &str) -> Error {
        self.inner.message = format!("{context}: {}", self.inner.message);
        self
    }

    pub(crate) fn redact(mut self, secret: &str) -> Error {
        if secret.len() >= 4 {
            if self.inner.message.contains(secret) {
                self.inner.message = self.inner.message.replace(secret, "[REDACTED]");
            }
            if let Some(body) = &mut self.inner.body {
                if body.contains(secret) {
                    *body = body.replace(secret, "[REDACTED]");
                }
            }
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether sending the same request again may succeed: rate limits, overloaded or loading
    /// servers, 5xx, timeouts, connection failures and broken streams.
    ///
    /// `QuotaExceeded`, authentication, invalid requests and context overflows are never
    /// retryable.
    pub fn is_retryable(&self) -> bool {
        self.inner.retryable.unwrap_or_else(|| self.inner.kind.is_retryable())
    }

    /// The HTTP status the server answered with, if the failure came from an HTTP answer.
    /// Errors sent inside a stream carry the status the server put in the frame, if any.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// How long the server asked us to wait (`Retry-After` in seconds or as an HTTP date,
    /// `retry-after-ms`, or for a 429 the `x-ratelimit-reset-*` headers).
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The server's error body as text, when there was one.
    pub fn response_body(&self) -> Option<&str> {
        self.inner.body.as_deref()
    }

    /// The id the server gave the failed request (`x-request-id` or `request-id` of its
    /// error answer), when it sent one.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// The model the failing request was for.
    pub fn model(&self) -> Option<&str> {
        self.inner.model.as_deref()
    }

    /// The message: the server's own words when it gave any, else a description.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The server's machine-readable error code or type, e.g. `context_length_exceeded`,
    /// `insufficient_quota`, `unavailable_error`, when it sent one.
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// True for [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// True for [`ErrorKind::Connect`].
    pub fn is_connect(&self) -> bool {
        self.inner.kind == ErrorKind::Connect
    }

    /// True for [`ErrorKind::RateLimited`].
    pub fn is_rate_limited(&self) -> bool {
        self.inner.kind == ErrorKind::RateLimited
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.describe())?;
        if let Some(status) = self.inner.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        d.field("message", &self.inner.message);
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(code) = &self.inner.code {
            d.field("code", code);
        }
        if let Some(retry_after) = &self.inner.retry_after {
            d.field("retry_after", retry_after);
        }
        if let Some(model) = &self.inner.model {
            d.field("model", model);
        }
        if let Some(request_id) = &self.inner.request_id {
            d.field("request_id", request_id);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_ref().map(|e| &**e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn every_kind_is_listed_once_and_named_back() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(ErrorKind::ALL.iter().filter(|k| **k == kind).count(), 1, "{kind:?}");
        }
        assert_eq!(ErrorKind::from_name("nope"), None);
    }

    #[test]
    fn error_is_small_send_and_sync() {
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Result<(), Error>>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_is_one_line_with_status_and_message() {
        let e = Error::new(ErrorKind::RateLimited, "slow down").with_status(429);
        assert_eq!(e.to_string(), "rate limited (HTTP 429): slow down");
        let e = Error::timeout("no response headers within 5s");
        assert_eq!(e.to_string(), "timed out: no response headers within 5s");
    }

    #[test]
    fn retryable_follows_kind_unless_overridden() {
        assert!(Error::new(ErrorKind::Server, "x").is_retryable());
        assert!(!Error::new(ErrorKind::QuotaExceeded, "x").is_retryable());
        assert!(!Error::new(ErrorKind::Server, "x").with_retryable(false).is_retryable());
    }

    #[test]
    fn source_chain_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::stream("connection lost").with_source(io);
        let src = e.source().expect("source");
        assert_eq!(src.to_string(), "reset by peer");
    }

    #[test]
    fn redact_removes_the_key_from_message_and_body() {
        let e = Error::new(ErrorKind::Authentication, "Incorrect API key provided: sk-secret-123")
            .with_body(r#"{"error":"bad key sk-secret-123"}"#)
            .redact("sk-secret-123");
        assert!(!e.to_string().contains("sk-secret-123"));
        assert!(!format!("{e:?}").contains("sk-secret-123"));
        assert!(!e.response_body().unwrap_or_default().contains("sk-secret-123"));
    }

    #[test]
    fn kind_names_are_snake_case() {
        assert_eq!(ErrorKind::ContextOverflow.as_str(), "context_overflow");
        assert_eq!(ErrorKind::PermissionDenied.to_string(), "permission_denied");
    }
}
