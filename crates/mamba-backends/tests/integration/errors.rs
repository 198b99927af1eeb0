//! Every error body shape of provider-quirks 3.4, classified over real HTTP, for plain and
//! streaming requests.

use std::time::Duration;

use mamba_backends::{ErrorKind, Message, ModelBackend, RequestOptions};

use crate::backend;
use crate::support::{RawServer, Reply};

async fn fail(reply: Reply) -> mamba_backends::Error {
    let server = RawServer::fixed(reply).await;
    backend(&server.url()).complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap_err()
}

async fn fail_stream(reply: Reply) -> mamba_backends::Error {
    let server = RawServer::fixed(reply).await;
    match backend(&server.url()).stream(&[Message::user("hi")], &RequestOptions::new()).await {
        Ok(_) => panic!("stream() should fail"),
        Err(e) => e,
    }
}

/// Both kinds of request see the same classified error with the server's message.
async fn both(reply: Reply, kind: ErrorKind, message_part: &str) {
    for e in [fail(reply.clone()).await, fail_stream(reply).await] {
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.message().contains(message_part), "{:?} lacks {message_part:?}", e.message());
        assert_eq!(e.model(), Some("test-model"));
    }
}

/// OpenAI: 401 `{"error":{…,"code":"invalid_api_key"}}`.
#[tokio::test]
async fn openai_401() {
    both(
        Reply::json(401, r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#),
        ErrorKind::Authentication,
        "Incorrect API key",
    )
    .await;
}

/// vLLM and SGLang: 401 `{"error":"Unauthorized"}`.
#[tokio::test]
async fn vllm_401_string_error() {
    both(Reply::json(401, r#"{"error":"Unauthorized"}"#), ErrorKind::Authentication, "Unauthorized").await;
}

/// TGI: 401 with an empty body.
#[tokio::test]
async fn tgi_401_empty_body() {
    let e = fail(Reply::with_status(401, &[], b"")).await;
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert_eq!(e.status(), Some(401));
}

/// llama-cpp-python (FastAPI): 401 `{"detail":"Invalid API key"}`.
#[tokio::test]
async fn fastapi_401_detail() {
    both(Reply::json(401, r#"{"detail":"Invalid API key"}"#), ErrorKind::Authentication, "Invalid API key").await;
}

/// LocalAI: 401 with `WWW-Authenticate` and an int code.
#[tokio::test]
async fn localai_401_int_code() {
    let reply = Reply::with_status(
        401,
        &[("content-type", "application/json"), ("www-authenticate", "Bearer")],
        br#"{"error":{"code":401,"message":"An authentication key is required","type":"invalid_request_error"}}"#,
    );
    both(reply, ErrorKind::Authentication, "authentication key is required").await;
}

/// OpenRouter: 403 moderation.
#[tokio::test]
async fn openrouter_403() {
    both(
        Reply::json(403, r#"{"error":{"code":403,"message":"Input flagged","metadata":{"reasons":["x"]}}}"#),
        ErrorKind::PermissionDenied,
        "flagged",
    )
    .await;
}

/// Ollama: 404 `model "x" not found, try pulling it first`.
#[tokio::test]
async fn ollama_404_model() {
    both(
        Reply::json(404, r#"{"error":{"message":"model \"llama9\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}}"#),
        ErrorKind::ModelNotFound,
        "try pulling",
    )
    .await;
}

/// llama.cpp server: 404 for a wrong path is not a missing model.
#[tokio::test]
async fn llamacpp_404_path() {
    both(
        Reply::json(404, r#"{"error":{"message":"File Not Found","type":"not_found_error","code":404}}"#),
        ErrorKind::InvalidRequest,
        "File Not Found",
    )
    .await;
}

/// OpenAI/Groq: 429 with `Retry-After` in seconds.
#[tokio::test]
async fn rate_limit_retry_after_seconds() {
    let reply = Reply::with_status(
        429,
        &[("content-type", "application/json"), ("retry-after", "12")],
        br#"{"error":{"message":"Rate limit reached for model","type":"tokens","code":"rate_limit_exceeded"}}"#,
    );
    for e in [fail(reply.clone()).await, fail_stream(reply).await] {
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(12)));
    }
}

/// OpenRouter / RFC 9110: `Retry-After` as an HTTP date (the seed crashed on it).
#[tokio::test]
async fn rate_limit_retry_after_http_date() {
    let at = std::time::SystemTime::now() + Duration::from_secs(120);
    let date = httpdate::fmt_http_date(at);
    let reply = Reply::with_status(429, &[("retry-after", &date)], br#"{"error":{"code":429,"message":"slow down"}}"#);
    let e = fail(reply).await;
    let wait = e.retry_after().unwrap();
    assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(121), "{wait:?}");
}

/// Azure: 429 with `retry-after-ms`.
#[tokio::test]
async fn azure_retry_after_ms() {
    let reply = Reply::with_status(429, &[("retry-after", "1"), ("retry-after-ms", "1500")], br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded call rate limit"}}"#);
    assert_eq!(fail(reply).await.retry_after(), Some(Duration::from_millis(1500)));
}

/// OpenAI: 429 `insufficient_quota` is QuotaExceeded and not retryable; DeepSeek 402 too.
#[tokio::test]
async fn quota_is_not_retryable() {
    let e = fail(Reply::json(429, r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#)).await;
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert!(!e.is_retryable());
    let e = fail(Reply::json(402, r#"{"error":{"message":"Insufficient Balance","type":"unknown_error"}}"#)).await;
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
}

/// Context overflow in the wordings of OpenAI, vLLM, llama.cpp server and TGI.
#[tokio::test]
async fn context_overflow_wordings() {
    for (status, body) in [
        (
            400,
            r#"{"error":{"message":"This model's maximum context length is 4097 tokens. However, your messages resulted in 4294 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        ),
        (
            400,
            r#"{"error":{"message":"This model's maximum context length is 2048 tokens. However, you requested 2723 tokens (1699 in the messages, 1024 in the completion).","type":"BadRequestError","param":null,"code":400}}"#,
        ),
        (
            400,
            r#"{"error":{"message":"request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","code":400,"n_prompt_tokens":5000,"n_ctx":4096}}"#,
        ),
        (
            422,
            r#"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":"validation"}"#,
        ),
    ] {
        let e = fail(Reply::json(status, body)).await;
        assert_eq!(e.kind(), ErrorKind::ContextOverflow, "{body}");
        assert!(!e.is_retryable());
    }
}

/// llama.cpp server: every route answers 503 "Loading model" while loading: retryable.
#[tokio::test]
async fn llamacpp_loading_model() {
    let reply = Reply::json(503, r#"{"error":{"message":"Loading model","type":"unavailable_error","code":503}}"#);
    for e in [fail(reply.clone()).await, fail_stream(reply).await] {
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        assert_eq!(e.code(), Some("503"));
    }
}

/// Mistral: 422 `message.detail[]` for a field it does not know.
#[tokio::test]
async fn mistral_422_detail() {
    both(
        Reply::json(422, r#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","n"],"msg":"Extra inputs are not permitted","input":2}]},"type":"invalid_request_error","param":null,"code":null}"#),
        ErrorKind::InvalidRequest,
        "body.n: Extra inputs are not permitted",
    )
    .await;
}

/// SGLang: flat `{"object":"error",…}` 400.
#[tokio::test]
async fn sglang_flat_error() {
    both(
        Reply::json(
            400,
            r#"{"object":"error","message":"Invalid tool_choice","type":"BadRequestError","param":null,"code":400}"#,
        ),
        ErrorKind::InvalidRequest,
        "Invalid tool_choice",
    )
    .await;
}

/// A plain-text 500 (llama-cpp-python on invalid JSON, proxies).
#[tokio::test]
async fn plain_text_500() {
    let e = fail(Reply::with_status(500, &[("content-type", "text/plain")], b"Internal Server Error")).await;
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(e.message(), "Internal Server Error");
    assert_eq!(e.response_body(), Some("Internal Server Error"));
}

/// Nothing listening: a connect error, retryable, with the OS's reason.
#[tokio::test]
async fn connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let e = backend(&format!("http://127.0.0.1:{port}/v1"))
        .complete(&[Message::user("hi")], &RequestOptions::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert!(e.is_retryable());
    assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

/// A 200 whose body is not JSON.
#[tokio::test]
async fn non_json_success_is_decode_error() {
    let e = fail(Reply::with_status(200, &[("content-type", "text/html")], b"<html>proxy login</html>")).await;
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(e.message().contains("<html>"));
}

/// A server that sends headers and then closes mid-body (content-length not reached).
#[tokio::test]
async fn truncated_body() {
    let e = fail(Reply::raw(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\nconnection: close\r\n\r\n{\"choices\":[".to_vec())).await;
    assert_eq!(e.kind(), ErrorKind::Stream, "{e}");
    assert!(e.is_retryable());
}

/// The server closes without answering at all.
#[tokio::test]
async fn closed_without_response() {
    let e = fail(Reply::raw(Vec::new())).await;
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
}
