//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the status
//! a client expects. One table maps the library's [`ErrorKind`] to status, type and code.

use std::time::Duration;

use mamba_backends::{Error, ErrorKind};
use serde_json::json;

/// An error answer: status, OpenAI error fields, and `Retry-After` for 429s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) message: Box<str>,
    pub(crate) kind: &'static str,
    pub(crate) param: Option<Box<str>>,
    pub(crate) code: Option<Box<str>>,
    pub(crate) retry_after: Option<Duration>,
    /// The `Allow` header of a 405.
    pub(crate) allow: Option<&'static str>,
    /// Close the connection after the answer (the request was not read to its end).
    pub(crate) close: bool,
    /// The metrics label: the library's error kind, or what this server refused.
    pub(crate) label: &'static str,
}

impl ApiError {
    pub(crate) fn new(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into().into_boxed_str(),
            kind,
            param: None,
            code: None,
            retry_after: None,
            allow: None,
            close: false,
            label: kind,
        }
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", message).with_label("invalid_request")
    }

    pub(crate) fn with_param(mut self, param: &str) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub(crate) fn with_code(mut self, code: &str) -> ApiError {
        self.code = Some(code.into());
        self
    }

    pub(crate) fn with_label(mut self, label: &'static str) -> ApiError {
        self.label = label;
        self
    }

    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(
            401,
            "invalid_request_error",
            "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.",
        )
        .with_code("invalid_api_key")
        .with_label("unauthorized")
    }

    /// The chat page without the key: a browser cannot send one when it opens a page.
    pub(crate) fn unauthorized_page() -> ApiError {
        ApiError::new(
            401,
            "invalid_request_error",
            "The chat page needs the API key, which a browser cannot send when it opens a page; start the server with --public-page to serve the page without it (its requests still need the key).",
        )
        .with_code("invalid_api_key")
        .with_label("unauthorized")
    }

    pub(crate) fn model_not_found(model: &str, served: &str) -> ApiError {
        ApiError::new(
            404,
            "invalid_request_error",
            format!("The model `{model}` does not exist; this server serves {served}."),
        )
        .with_param("model")
        .with_code("model_not_found")
        .with_label("model_not_found")
    }

    pub(crate) fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "invalid_request_error",
            format!("The request body is larger than this server's limit of {limit} bytes."),
        )
        .with_code("request_too_large")
        .with_label("body_too_large")
    }

    pub(crate) fn queue_full(retry_after: Duration) -> ApiError {
        let mut e = ApiError::new(
            429,
            "rate_limit_error",
            "The server is busy: every slot is taken and the queue is full. Retry shortly.",
        )
        .with_code("rate_limit_exceeded")
        .with_label("queue_full");
        e.retry_after = Some(retry_after);
        e
    }

    pub(crate) fn not_found(path: &str) -> ApiError {
        ApiError::new(404, "invalid_request_error", format!("Unknown path {path}.")).with_label("unknown_path")
    }

    pub(crate) fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> ApiError {
        let mut e =
            ApiError::new(405, "invalid_request_error", format!("{method} is not allowed on {path}; use {allow}."))
                .with_label("method_not_allowed");
        e.allow = Some(allow);
        e
    }

    /// A body that stalled (`stalled`: no bytes for `after`) or did not arrive within the
    /// request timeout `after`.
    pub(crate) fn body_timeout(after: Duration, stalled: bool) -> ApiError {
        let message = if stalled {
            format!(
                "The request body stalled: no bytes for {:.1} s; send the body without pauses (or raise --body-timeout).",
                after.as_secs_f64()
            )
        } else {
            format!(
                "The request body did not arrive within {:.1} s; send it faster (or raise --request-timeout).",
                after.as_secs_f64()
            )
        };
        let mut e = ApiError::new(408, "invalid_request_error", message)
            .with_code("request_timeout")
            .with_label("body_timeout");
        e.close = true;
        e
    }

    pub(crate) fn unsupported_media_type() -> ApiError {
        ApiError::new(
            415,
            "invalid_request_error",
            "Send the request body as JSON with the header 'Content-Type: application/json'.",
        )
        .with_code("unsupported_media_type")
        .with_label("unsupported_media_type")
    }

    pub(crate) fn host_not_allowed(host: &str) -> ApiError {
        ApiError::new(
            403,
            "permission_error",
            format!(
                "The Host {host:?} is not allowed on this loopback server; use localhost or 127.0.0.1, or start it with --allowed-host NAME."
            ),
        )
        .with_code("host_not_allowed")
        .with_label("host_not_allowed")
    }

    pub(crate) fn origin_not_allowed() -> ApiError {
        ApiError::new(
            403,
            "permission_error",
            "This origin may not call this server from a web page; start it with --cors-origin ORIGIN to allow it.",
        )
        .with_code("origin_not_allowed")
        .with_label("origin_not_allowed")
    }

    pub(crate) fn shutting_down() -> ApiError {
        ApiError::new(
            503,
            "service_unavailable",
            "The server shut down (its grace period ended) before the answer was complete; retry on another server.",
        )
        .with_code("server_shutdown")
        .with_label("shutdown")
    }

    pub(crate) fn timeout(after: Duration) -> ApiError {
        ApiError::new(
            504,
            "timeout_error",
            format!("The upstream did not answer within the request timeout of {:.1} s.", after.as_secs_f64()),
        )
        .with_code("timeout")
        .with_label("timeout")
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

/// Status, OpenAI error type and code for an error of `kind` that carries no upstream status.
fn table(kind: ErrorKind) -> (u16, &'static str, Option<&'static str>) {
    match kind {
        ErrorKind::Authentication => (401, "authentication_error", Some("invalid_api_key")),
        ErrorKind::PermissionDenied => (403, "permission_error", None),
        ErrorKind::RateLimited => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        ErrorKind::QuotaExceeded => (429, "insufficient_quota", Some("insufficient_quota")),
        ErrorKind::ContextOverflow => (400, "invalid_request_error", Some("context_length_exceeded")),
        ErrorKind::ModelNotFound => (404, "invalid_request_error", Some("model_not_found")),
        ErrorKind::InvalidRequest => (400, "invalid_request_error", None),
        ErrorKind::Unsupported => (400, "invalid_request_error", Some("unsupported")),
        ErrorKind::Unavailable | ErrorKind::Connect => (503, "service_unavailable", Some("upstream_unavailable")),
        ErrorKind::Timeout => (504, "timeout_error", Some("timeout")),
        ErrorKind::Server | ErrorKind::Decode | ErrorKind::Stream => (502, "upstream_error", None),
        // Structured-output outcomes: the model's answer, not the request, was at fault.
        ErrorKind::Refusal => (422, "invalid_request_error", Some("refusal")),
        ErrorKind::Truncated => (502, "upstream_error", Some("truncated")),
        ErrorKind::InvalidOutput => (502, "upstream_error", Some("invalid_output")),
        // Config and kinds added later.
        _ => (500, "server_error", None),
    }
}

impl From<&Error> for ApiError {
    /// An upstream's HTTP error keeps its status and message; other failures get the table's
    /// status. Context overflow always reads as clients expect ("maximum context length",
    /// code `context_length_exceeded`).
    fn from(e: &Error) -> ApiError {
        let kind = e.kind();
        let (table_status, typ, code) = table(kind);
        let status = match e.status() {
            Some(s) if (400..=599).contains(&s) => s,
            _ => table_status,
        };
        let mut message = e.message().to_owned();
        if message.is_empty() {
            message = e.to_string();
        }
        if kind == ErrorKind::ContextOverflow && !message.to_ascii_lowercase().contains("maximum context length") {
            message = format!("This model's maximum context length was exceeded: {message}");
        }
        let status = if kind == ErrorKind::ContextOverflow { 400 } else { status };
        // 4xx from an upstream are client errors to the client too; keep the type a client
        // library maps from the status.
        let typ = match status {
            400 | 404 | 413 | 422 if kind != ErrorKind::QuotaExceeded => "invalid_request_error",
            _ => typ,
        };
        let code = e.code().or(code).map(Box::from);
        let code = if kind == ErrorKind::ContextOverflow { Some("context_length_exceeded".into()) } else { code };
        ApiError {
            status,
            message: message.into_boxed_str(),
            kind: typ,
            param: None,
            code,
            retry_after: e.retry_after().or(if status == 429 { Some(Duration::from_secs(1)) } else { None }),
            allow: None,
            close: false,
            label: kind.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_statuses_clients_expect() {
        let cases = [
            (ErrorKind::InvalidRequest, 400),
            (ErrorKind::ContextOverflow, 400),
            (ErrorKind::Authentication, 401),
            (ErrorKind::ModelNotFound, 404),
            (ErrorKind::RateLimited, 429),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Connect, 503),
            (ErrorKind::Timeout, 504),
            (ErrorKind::Server, 502),
        ];
        for (kind, status) in cases {
            assert_eq!(ApiError::from(&Error::new(kind, "x")).status, status, "{kind:?}");
        }
    }

    #[test]
    fn upstream_status_and_message_are_kept() {
        let e = Error::new(ErrorKind::InvalidRequest, "bad temperature").with_status(422);
        let api = ApiError::from(&e);
        assert_eq!((api.status, &*api.message, api.kind), (422, "bad temperature", "invalid_request_error"));
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(Some(Duration::from_secs(7)));
        let api = ApiError::from(&e);
        assert_eq!(api.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn context_overflow_reads_as_clients_expect() {
        let e = Error::new(ErrorKind::ContextOverflow, "prompt too long: 5000 > 4096").with_status(413);
        let api = ApiError::from(&e);
        assert_eq!(api.status, 400);
        assert_eq!(api.code.as_deref(), Some("context_length_exceeded"));
        assert!(api.message.contains("maximum context length"), "{}", api.message);
        let body = api.body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["param"].is_null());
    }
}
