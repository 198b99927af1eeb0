//! Turning a server's failure into an [`Error`]: every error body shape real servers send,
//! the status, and the message substrings that tell a context overflow or a missing model
//! apart from any other 400 (provider-quirks.md, sections 3.4 to 3.6).
//!
//! Pure functions: bytes and headers in, an [`Error`] out. Nothing here can panic on input.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// Longest body kept in an error, in bytes; longer bodies are cut at a character boundary.
const MAX_BODY: usize = 64 * 1024;
/// Longest message taken from a plain-text body.
const MAX_TEXT_MESSAGE: usize = 512;

/// What could be read from an error body.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ErrorInfo {
    /// The human-readable message.
    pub(crate) message: Option<String>,
    /// `type` / `error_type`, e.g. `invalid_request_error`.
    pub(crate) error_type: Option<String>,
    /// `code`, as text whether the server sent a string or a number.
    pub(crate) code: Option<String>,
    /// An HTTP status the body itself names (`code: 503`, `http_status_code`, `status`).
    pub(crate) status: Option<u16>,
}

impl ErrorInfo {
    /// The server's message; when it is missing or blank (llama-cpp-python's failed asserts),
    /// its error type, which says more than nothing.
    fn best_message(&self) -> Option<String> {
        self.message.clone().filter(|m| !m.trim().is_empty()).or_else(|| self.error_type.clone())
    }

    /// The server's machine-readable code, else its error type.
    fn code_or_type(&self) -> Option<String> {
        self.code.clone().or_else(|| self.error_type.clone())
    }
}

/// Reads an error body of any shape (provider-quirks 3.4): `{"error":{…}}` with `code` as a
/// string, a number or null; `{"error":"text"}` (+ `error_type`); the flat
/// `{"object":"error","message":…}`; Mistral's `message.detail[]`; FastAPI's `{"detail":…}`;
/// problem+json; an empty body; plain text.
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorInfo {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return ErrorInfo::default();
    }
    match serde_json::from_slice::<Value>(trimmed) {
        Ok(value) => parse_error_value(&value),
        Err(_) => {
            let text = String::from_utf8_lossy(trimmed);
            ErrorInfo { message: Some(truncate(text.trim(), MAX_TEXT_MESSAGE).to_owned()), ..ErrorInfo::default() }
        }
    }
}

/// Like [`parse_error_body`], for a value already parsed (a stream's error frame).
pub(crate) fn parse_error_value(value: &Value) -> ErrorInfo {
    let mut info = ErrorInfo::default();
    match value {
        Value::Object(map) => {
            if let Some(err) = map.get("error") {
                match err {
                    Value::Object(inner) => read_fields(inner, &mut info),
                    Value::String(s) => info.message = Some(s.clone()),
                    Value::Null => {}
                    other => info.message = Some(other.to_string()),
                }
                // TGI puts the kind beside the string: {"error":"…","error_type":"validation"}.
                if info.error_type.is_none() {
                    info.error_type = text_of(map.get("error_type"));
                }
            }
            // Flat shapes: {"object":"error","message":…}, {"message":…}, {"detail":…},
            // problem+json {"title","detail","status"}; fill only what is still missing.
            let mut flat = ErrorInfo::default();
            read_fields(map, &mut flat);
            info.message = info.message.or(flat.message);
            info.error_type = info.error_type.or(flat.error_type);
            info.code = info.code.or(flat.code);
            info.status = info.status.or(flat.status);
            if info.message.is_none() {
                info.message = detail_text(map.get("detail")).or_else(|| text_of(map.get("title")));
            }
            // problem+json validation lists (Prism): the specifics after the summary.
            if let Some(Value::Array(items)) = map.get("validation") {
                let specifics: Vec<String> = items.iter().filter_map(|i| text_of(i.get("message"))).take(5).collect();
                if !specifics.is_empty() {
                    let summary = info.message.take().unwrap_or_default();
                    info.message = Some(format!("{summary} ({})", specifics.join("; ")));
                }
            }
            if info.message.is_none() && info.error_type.is_none() && info.code.is_none() {
                info.message = Some(value.to_string());
            }
        }
        Value::String(s) => info.message = Some(s.clone()),
        Value::Null => {}
        other => info.message = Some(other.to_string()),
    }
    info
}

fn read_fields(map: &serde_json::Map<String, Value>, info: &mut ErrorInfo) {
    info.message = match map.get("message") {
        Some(Value::String(s)) => Some(s.clone()),
        // Mistral 422: "message": {"detail": [{"msg": …}]}
        Some(Value::Object(m)) => detail_text(m.get("detail")).or_else(|| Some(Value::Object(m.clone()).to_string())),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    info.error_type = text_of(map.get("type")).or_else(|| text_of(map.get("error_type")));
    info.code = text_of(map.get("code"));
    info.status =
        map.get("http_status_code").or_else(|| map.get("status")).or_else(|| map.get("code")).and_then(status_of);
}

/// FastAPI / pydantic `detail`: a string, or a list of `{loc, msg, type}`.
fn detail_text(detail: Option<&Value>) -> Option<String> {
    match detail? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Value::Object(o) => {
                        let msg = text_of(o.get("msg")).unwrap_or_else(|| item.to_string());
                        match o.get("loc").and_then(Value::as_array) {
                            Some(loc) if !loc.is_empty() => {
                                let loc: Vec<String> =
                                    loc.iter().map(|l| text_of(Some(l)).unwrap_or_default()).collect();
                                format!("{}: {msg}", loc.join("."))
                            }
                            _ => msg,
                        }
                    }
                    other => text_of(Some(other)).unwrap_or_default(),
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() && s != "None" => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn status_of(value: &Value) -> Option<u16> {
    let n = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    (100..=599).contains(&n).then_some(n as u16)
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

const QUOTA: &[&str] =
    &["insufficient_quota", "exceeded your current quota", "insufficient balance", "insufficient_balance"];
const CONTEXT: &[&str] = &[
    "maximum context length",
    "context_length_exceeded",
    "exceeds the available context size",
    "exceed_context_size_error",
    "`inputs` tokens + `max_new_tokens`",
    "prompt is longer than the context length",
    "longer than the model's context length",
    "context window",
    "contextwindowexceeded",
    "too large for model with",
    "input is too long",
];
const LOADING: &[&str] = &["loading model", "model_loading", "unavailable_error", "server busy", "overloaded"];
const MODEL_MISSING: &[&str] = &[
    "model_not_found",
    "does not exist",
    "invalid model",
    "model not exist",
    "not a valid model",
    "deploymentnotfound",
    "no models loaded",
];

/// The kind for a failure with this status (if any) and body.
pub(crate) fn classify(status: Option<u16>, info: &ErrorInfo) -> ErrorKind {
    let mut text = String::new();
    for part in [&info.message, &info.error_type, &info.code].into_iter().flatten() {
        text.push_str(&part.to_lowercase());
        text.push(' ');
    }
    let status = status.or(info.status);
    let model_missing = contains_any(&text, MODEL_MISSING) || (text.contains("not found") && text.contains("model"));

    if status == Some(402) || contains_any(&text, QUOTA) {
        return ErrorKind::QuotaExceeded;
    }
    if !matches!(status, Some(401 | 403 | 429)) && contains_any(&text, CONTEXT) {
        return ErrorKind::ContextOverflow;
    }
    match status {
        Some(401) => ErrorKind::Authentication,
        Some(403) => ErrorKind::PermissionDenied,
        Some(404) if model_missing || text.contains("deployment") => ErrorKind::ModelNotFound,
        Some(408) => ErrorKind::Timeout,
        Some(429) => ErrorKind::RateLimited,
        Some(501) => ErrorKind::Unsupported,
        Some(503 | 529) => ErrorKind::Unavailable,
        Some(s) if contains_any(&text, LOADING) && s >= 500 => ErrorKind::Unavailable,
        Some(s) if (400..500).contains(&s) && model_missing => ErrorKind::ModelNotFound,
        Some(409) => ErrorKind::Server,
        Some(s) if (400..500).contains(&s) => ErrorKind::InvalidRequest,
        Some(_) => ErrorKind::Server,
        // An error frame inside a stream without a status: read the type and code.
        None => {
            if contains_any(&text, LOADING) {
                ErrorKind::Unavailable
            } else if text.contains("rate_limit") || text.contains("rate limit") {
                ErrorKind::RateLimited
            } else if text.contains("authentication") || text.contains("invalid api key") {
                ErrorKind::Authentication
            } else if model_missing {
                ErrorKind::ModelNotFound
            } else if text.contains("invalid_request") || text.contains("validation") {
                ErrorKind::InvalidRequest
            } else {
                ErrorKind::Server
            }
        }
    }
}

/// The error for an HTTP answer with a non-success `status`.
pub(crate) fn from_response(status: u16, headers: &HeaderMap, body: &[u8], now: SystemTime) -> Error {
    let info = parse_error_body(body);
    let kind = classify(Some(status), &info);
    let retry_after = retry_after(headers, now, status == 429);
    let message = info.best_message().unwrap_or_else(|| match http::StatusCode::from_u16(status) {
        Ok(code) => code.canonical_reason().unwrap_or("no message").to_owned(),
        Err(_) => "no message".to_owned(),
    });
    // A server may reflect what it was sent (an `Authorization: Basic …` header, a key in
    // the URL): the message and body are kept without anything that looks like a secret.
    let message = crate::redact::redact_text(&message).into_owned();
    let mut error =
        Error::new(kind, message).with_status(status).with_retry_after(retry_after).with_code(info.code_or_type());
    // 409 and 408 are retryable by policy even though their kinds are shared with others.
    if status == 409 {
        error = error.with_retryable(true);
    }
    if !body.is_empty() {
        error = error.with_body(crate::redact::redact_text(truncate(&String::from_utf8_lossy(body), MAX_BODY)));
    }
    let request_id = ["x-request-id", "request-id"].iter().find_map(|name| headers.get(*name)?.to_str().ok());
    if let Some(id) = request_id.filter(|id| !id.is_empty()) {
        error = error.with_request_id(id);
    }
    error
}

/// The error for a `data: {"error": …}` frame inside a stream.
pub(crate) fn from_stream_frame(value: &Value) -> Error {
    let info = parse_error_value(value);
    let kind = classify(None, &info);
    let message = info.best_message().unwrap_or_else(|| "the server reported an error in the stream".to_owned());
    let message = crate::redact::redact_text(&message).into_owned();
    let body = value.to_string();
    let mut error =
        Error::new(kind, message).with_code(info.code_or_type()).with_body(crate::redact::redact_text(&body));
    if let Some(status) = info.status {
        error = error.with_status(status);
    }
    error
}

/// The wait the server asked for: `retry-after-ms` (Azure), `Retry-After` in seconds or as an
/// HTTP date, and for rate limits the `x-ratelimit-reset-*` durations (`6m0s`, `12ms`).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime, rate_limited: bool) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64((ms / 1000.0).min(1e9)));
        }
    }
    if let Some(value) = header("retry-after") {
        if let Ok(secs) = value.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs.min(1e9)));
            }
        } else if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    if rate_limited {
        let reset = |which: &str| header(&format!("x-ratelimit-reset-{which}")).and_then(parse_go_duration);
        let exhausted = |which: &str| header(&format!("x-ratelimit-remaining-{which}")) == Some("0");
        let (requests, tokens) = (reset("requests"), reset("tokens"));
        return match (exhausted("requests"), exhausted("tokens")) {
            (true, false) => requests,
            (false, true) => tokens,
            _ => requests.into_iter().chain(tokens).max(),
        };
    }
    None
}

/// Parses Go-style durations as OpenAI and Groq send them: `6m0s`, `12ms`, `1.5s`, `2h3m`.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" | "" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total.min(1e9)))
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn kind(status: u16, body: &str) -> ErrorKind {
        from_response(status, &HeaderMap::new(), body.as_bytes(), SystemTime::now()).kind()
    }

    fn message(status: u16, body: &str) -> String {
        from_response(status, &HeaderMap::new(), body.as_bytes(), SystemTime::now()).message().to_owned()
    }

    /// An upstream that reflects the request's `Authorization: Basic …` (or a key) in its
    /// error body does not get it into the error's message or body.
    #[test]
    fn reflected_credentials_are_redacted() {
        let body = r#"{"error":{"message":"denied for Authorization: Basic Ym9iOnMzY3JldA==","headers":{"authorization":"Bearer sk-live-Abc123XYZ"}}}"#;
        let e = from_response(401, &HeaderMap::new(), body.as_bytes(), SystemTime::now());
        assert_eq!(e.kind(), ErrorKind::Authentication);
        for shown in [e.to_string(), format!("{e:?}"), e.response_body().unwrap().to_owned()] {
            assert!(!shown.contains("Ym9iOnMzY3JldA=="), "{shown}");
            assert!(!shown.contains("sk-live-Abc123XYZ"), "{shown}");
        }
        assert!(e.message().contains("Basic [REDACTED]"), "{}", e.message());
        let frame: Value = serde_json::from_str(r#"{"error":{"message":"echo: Bearer sk-live-Abc123XYZ"}}"#).unwrap();
        let e = from_stream_frame(&frame);
        assert!(!e.to_string().contains("sk-live-Abc123XYZ") && !e.response_body().unwrap().contains("Abc123"), "{e}");
    }

    #[test]
    fn openai_nested_error_with_string_code() {
        let body = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let e = from_response(401, &HeaderMap::new(), body.as_bytes(), SystemTime::now());
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert_eq!(e.message(), "Incorrect API key provided");
        assert_eq!(e.code(), Some("invalid_api_key"));
        assert_eq!(e.status(), Some(401));
        assert_eq!(e.response_body(), Some(body));
    }

    #[test]
    fn error_as_plain_string_vllm_sglang_ollama_tgi() {
        assert_eq!(kind(401, r#"{"error":"Unauthorized"}"#), ErrorKind::Authentication);
        assert_eq!(message(401, r#"{"error":"Unauthorized"}"#), "Unauthorized");
        let tgi = r#"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":"validation"}"#;
        assert_eq!(kind(422, tgi), ErrorKind::ContextOverflow);
        assert_eq!(kind(404, r#"{"error":"model 'llama9' not found"}"#), ErrorKind::ModelNotFound);
    }

    #[test]
    fn flat_object_error_vllm_old_and_sglang() {
        let body = r#"{"object":"error","message":"The model `foo` does not exist.","type":"NotFoundError","param":"model","code":404}"#;
        assert_eq!(kind(404, body), ErrorKind::ModelNotFound);
        assert_eq!(message(404, body), "The model `foo` does not exist.");
        let sglang = r#"{"object":"error","message":"bad things","type":"BadRequestError","param":null,"code":400}"#;
        assert_eq!(kind(400, sglang), ErrorKind::InvalidRequest);
    }

    #[test]
    fn mistral_422_detail_list() {
        let body = r#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","n"],"msg":"Extra inputs are not permitted","input":2}]},"type":"invalid_request_error","param":null,"code":null}"#;
        assert_eq!(kind(422, body), ErrorKind::InvalidRequest);
        assert_eq!(message(422, body), "body.n: Extra inputs are not permitted");
    }

    #[test]
    fn fastapi_detail_llama_cpp_python() {
        assert_eq!(kind(401, r#"{"detail":"Invalid API key"}"#), ErrorKind::Authentication);
        assert_eq!(message(401, r#"{"detail":"Invalid API key"}"#), "Invalid API key");
        assert_eq!(kind(404, r#"{"detail":"Not Found"}"#), ErrorKind::InvalidRequest);
    }

    #[test]
    fn request_id_of_the_error_answer() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", http::HeaderValue::from_static("req_123"));
        assert_eq!(from_response(500, &headers, b"{}", SystemTime::now()).request_id(), Some("req_123"));
        let mut headers = HeaderMap::new();
        headers.insert("request-id", http::HeaderValue::from_static("abc"));
        let e = from_response(429, &headers, b"", SystemTime::now());
        assert_eq!(e.request_id(), Some("abc"));
        assert!(format!("{e:?}").contains("abc"));
        assert_eq!(from_response(400, &HeaderMap::new(), b"", SystemTime::now()).request_id(), None);
    }

    #[test]
    fn empty_body_tgi_401() {
        let e = from_response(401, &HeaderMap::new(), b"", SystemTime::now());
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert_eq!(e.message(), "Unauthorized");
        assert_eq!(e.response_body(), None);
    }

    #[test]
    fn plain_text_body() {
        assert_eq!(kind(500, "Internal Server Error"), ErrorKind::Server);
        assert_eq!(message(500, "Internal Server Error\n"), "Internal Server Error");
        assert_eq!(kind(502, "<html>Bad gateway</html>"), ErrorKind::Server);
    }

    #[test]
    fn mistral_401_flat_message() {
        assert_eq!(message(401, r#"{"message":"Unauthorized","request_id":"abc"}"#), "Unauthorized");
    }

    #[test]
    fn problem_json_prism() {
        let body = r#"{"type":"https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY","title":"Invalid request","status":422,"detail":"Your request is not valid and no HTTP validation response was found in the spec"}"#;
        assert_eq!(kind(422, body), ErrorKind::InvalidRequest);
        assert!(message(422, body).starts_with("Your request is not valid"));
        let with_list = r#"{"title":"Invalid request","status":422,"detail":"Your request is not valid","validation":[{"location":["body","tool_choice"],"message":"Request body property tool_choice must be object"}]}"#;
        assert_eq!(
            message(422, with_list),
            "Your request is not valid (Request body property tool_choice must be object)"
        );
    }

    #[test]
    fn context_overflow_wordings() {
        for (status, body) in [
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 4097 tokens. However, your messages resulted in 4294 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","code":400,"n_prompt_tokens":5000,"n_ctx":4096}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 2048 tokens. However, you requested 2723 tokens (1699 in the messages, 1024 in the completion).","type":"BadRequestError","param":null,"code":400}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"the prompt is longer than the context length currently available to the model","type":"invalid_request_error","param":null,"code":null}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"litellm.ContextWindowExceededError: blah","type":null,"param":null,"code":"400"}}"#,
            ),
        ] {
            assert_eq!(kind(status, body), ErrorKind::ContextOverflow, "{body}");
        }
    }

    #[test]
    fn model_not_found_wordings() {
        for (status, body) in [
            (
                404,
                r#"{"error":{"message":"The model `gpt-5x` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
            ),
            (
                404,
                r#"{"error":{"message":"model \"llama9\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"/chat/completions: Invalid model name passed in model=foo. Call `/v1/models` to view available models for your key.","type":"invalid_request_error","param":"model","code":"400"}}"#,
            ),
            (
                404,
                r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#,
            ),
            (400, r#"{"error":{"message":"Model Not Exist","type":"invalid_request_error"}}"#),
            (
                404,
                r#"{"error":{"code":404,"message":"model \"foo\" not found. To see available models, call GET /v1/models","type":"invalid_request_error"}}"#,
            ),
        ] {
            assert_eq!(kind(status, body), ErrorKind::ModelNotFound, "{body}");
        }
        // A wrong path is not a missing model.
        assert_eq!(
            kind(404, r#"{"error":{"message":"File Not Found","type":"not_found_error","code":404}}"#),
            ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn loading_and_overload_are_unavailable_and_retryable() {
        let e = from_response(
            503,
            &HeaderMap::new(),
            br#"{"error":{"message":"Loading model","type":"unavailable_error","code":503}}"#,
            SystemTime::now(),
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        assert_eq!(kind(529, ""), ErrorKind::Unavailable);
        assert_eq!(
            kind(500, r#"{"error":{"code":"model_loading","message":"loading","type":"model_loading"}}"#),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn quota_is_not_retryable_but_rate_limit_is() {
        let quota = from_response(
            429,
            &HeaderMap::new(),
            br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
            SystemTime::now(),
        );
        assert_eq!(quota.kind(), ErrorKind::QuotaExceeded);
        assert!(!quota.is_retryable());
        assert_eq!(kind(402, r#"{"error":{"message":"Insufficient Balance"}}"#), ErrorKind::QuotaExceeded);
        let rl = from_response(
            429,
            &HeaderMap::new(),
            br#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#,
            SystemTime::now(),
        );
        assert_eq!(rl.kind(), ErrorKind::RateLimited);
        assert!(rl.is_retryable());
    }

    #[test]
    fn statuses_without_bodies() {
        assert_eq!(kind(403, ""), ErrorKind::PermissionDenied);
        assert_eq!(kind(408, ""), ErrorKind::Timeout);
        assert_eq!(kind(422, "{}"), ErrorKind::InvalidRequest);
        assert_eq!(kind(501, ""), ErrorKind::Unsupported);
        assert_eq!(kind(504, ""), ErrorKind::Server);
        assert!(from_response(409, &HeaderMap::new(), b"", SystemTime::now()).is_retryable());
        assert!(!from_response(400, &HeaderMap::new(), b"", SystemTime::now()).is_retryable());
        assert_eq!(message(429, ""), "Too Many Requests");
        assert_eq!(message(599, ""), "no message");
    }

    #[test]
    fn empty_messages_fall_back_to_type_then_status() {
        // llama-cpp-python, tool_choice "required" with chatml-function-calling.
        assert_eq!(
            message(500, r#"{"error":{"message":"","type":"internal_server_error","param":null,"code":null}}"#),
            "internal_server_error"
        );
        assert_eq!(message(503, r#"{"error":{"message":"  "}}"#), "Service Unavailable");
    }

    #[test]
    fn leading_blank_lines_before_error_json() {
        assert_eq!(message(400, "\n\n  {\"error\":{\"message\":\"bad\"}}"), "bad");
    }

    #[test]
    fn stream_error_frames() {
        let v: Value = serde_json::from_str(
            r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#,
        )
        .unwrap();
        let e = from_stream_frame(&v);
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(e.status(), None);
        let v: Value = serde_json::from_str(r#"{"error":{"code":502,"message":"Network connection lost.","metadata":{"error_type":"provider_unavailable"}}}"#).unwrap();
        let e = from_stream_frame(&v);
        assert_eq!(e.status(), Some(502));
        assert_eq!(e.kind(), ErrorKind::Server);
        let v: Value =
            serde_json::from_str(r#"{"error":{"message":"Input validation error","http_status_code":422}}"#).unwrap();
        assert_eq!(from_stream_frame(&v).kind(), ErrorKind::InvalidRequest);
        let v: Value = serde_json::from_str(r#"{"error":{"object":"error","message":"maximum context length is 10","type":"BadRequestError","code":400}}"#).unwrap();
        assert_eq!(from_stream_frame(&v).kind(), ErrorKind::ContextOverflow);
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now, true), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h, now, true), Some(Duration::from_millis(1500)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        assert_eq!(retry_after(&h, now, true), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert("retry-after", HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now, true), Some(Duration::ZERO));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h, now, true), Some(Duration::from_millis(250)));
        h.clear();
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now, false), None);
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h, now, false), None);
    }

    #[test]
    fn ratelimit_reset_headers_for_429_only() {
        let now = SystemTime::now();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("12ms"));
        h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("6m0s"));
        assert_eq!(retry_after(&h, now, false), None);
        assert_eq!(retry_after(&h, now, true), Some(Duration::from_secs(360)));
        h.insert("x-ratelimit-remaining-requests", HeaderValue::from_static("0"));
        assert_eq!(retry_after(&h, now, true), Some(Duration::from_millis(12)));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("2h3m"), Some(Duration::from_secs(7380)));
        assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5q"), None);
    }

    #[test]
    fn never_panics_on_garbage() {
        for body in [
            &b"\xff\xfe{"[..],
            b"[]",
            b"null",
            b"123",
            b"\"text\"",
            b"{\"error\":null}",
            b"{\"error\":[1]}",
            b"{\"detail\":[1,{\"x\":1}]}",
            b"{\"message\":{}}",
            b"{\"error\":{\"code\":1e400}}",
        ] {
            for status in [0u16, 200, 400, 401, 404, 429, 500, 503, 999] {
                let _ = from_response(status, &HeaderMap::new(), body, SystemTime::now());
            }
        }
        let long = "é".repeat(MAX_BODY);
        let e = from_response(500, &HeaderMap::new(), long.as_bytes(), SystemTime::now());
        assert!(e.response_body().unwrap().len() <= MAX_BODY);
        assert!(e.message().len() <= MAX_TEXT_MESSAGE);
    }
}
