//! `raw::PostJson::post_json`: a JSON body sent as given and the server's bytes back (what a
//! batch runner writes to its output), through one backend and through a pool.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mamba_backends::raw::PostJson;
use mamba_backends::{BackendPool, ErrorKind, RetryPolicy};
use mamba_mock::{Match, MockServer, Reply, Rule, Script};

use crate::builder;

const BODY: &str = r#"{"model":"other","messages":[{"role":"user","content":"hi"}],"logprobs":true,"n":1}"#;

#[tokio::test]
async fn sends_the_body_as_given_and_returns_the_servers_bytes() {
    let server = MockServer::start().await.unwrap();
    let backend = builder(&server.base_url()).api_key("sk-secret-123").build().unwrap();
    let raw = backend.post_json("/chat/completions", Bytes::from_static(BODY.as_bytes())).await.unwrap();
    assert_eq!(raw.status, 200);
    assert!(raw.header("content-type").is_some_and(|v| v.starts_with("application/json")));
    let sent = &server.chat_requests()[0];
    assert_eq!(sent.body, BODY.as_bytes(), "the body went out byte for byte");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-secret-123"));
    let v: serde_json::Value = serde_json::from_slice(&raw.body).unwrap();
    assert_eq!(v["model"], "other", "the line's model, not the backend's");
    // A path without its slash, and embeddings.
    let raw = backend.post_json("embeddings", Bytes::from_static(br#"{"model":"e","input":"x"}"#)).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw.body).unwrap();
    assert_eq!(v["object"], "list");
}

#[tokio::test]
async fn errors_keep_status_and_body_and_are_retried_by_the_policy() {
    let server = MockServer::start_with(Script::new().rule(Rule::new(Match::any(), Reply::status(503)).times(1)).on(
        Match::contains("bad"),
        Reply { status: Some(400), body: Some(serde_json::json!({"error": {"message": "no"}})), ..Reply::default() },
    ))
    .await
    .unwrap();
    let backend = builder(&server.base_url())
        .retry_policy(RetryPolicy::default().max_retries(2).initial_backoff(Duration::from_millis(1)).jitter(false))
        .build()
        .unwrap();
    let raw = backend.post_json("/chat/completions", Bytes::from_static(BODY.as_bytes())).await.unwrap();
    assert_eq!(raw.status, 200);
    assert_eq!(server.chat_requests().len(), 2, "the 503 was retried");
    let bad = r#"{"model":"m","messages":[{"role":"user","content":"bad"}]}"#;
    let e = backend.post_json("/chat/completions", Bytes::from_static(bad.as_bytes())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.response_body(), Some(r#"{"error":{"message":"no"}}"#));
}

#[tokio::test]
async fn a_pool_fails_over() {
    let down = format!("http://127.0.0.1:{}/v1", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let server = MockServer::start().await.unwrap();
    let pool = BackendPool::builder()
        .endpoint(Arc::new(builder(&down).build().unwrap()))
        .endpoint(Arc::new(builder(&server.base_url()).build().unwrap()))
        .build()
        .unwrap();
    for _ in 0..4 {
        let raw = pool.post_json("/chat/completions", Bytes::from_static(BODY.as_bytes())).await.unwrap();
        assert_eq!(raw.status, 200);
    }
    assert_eq!(server.chat_requests().len(), 4);
}
