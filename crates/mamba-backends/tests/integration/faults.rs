//! The fault matrix: scripted faults of the mock server against the default retry policy,
//! timeouts and the pool, on tokio's paused clock. Each row checks the result or error kind,
//! the (virtual) time it took, and how many requests the server saw.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mamba_backends::{
    pool::BreakerState, BackendPool, ErrorKind, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions,
    RetryPolicy,
};
use mamba_mock::{Match, MockServer, Reply, Rule, Script};
use tokio::time::Instant;

/// A backend with the default retry policy (3 retries, 0.5 s doubling backoff, jitter off so
/// the waits are exact) and 5 s timeouts.
fn resilient(server: &MockServer) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .timeout(Duration::from_secs(5))
        .retry_policy(RetryPolicy::default().jitter(false))
        .build()
        .unwrap()
}

fn hi() -> [Message; 1] {
    [Message::user("hi")]
}

async fn mock(script: Script) -> MockServer {
    MockServer::start_with(script).await.unwrap()
}

async fn complete(b: &impl ModelBackend) -> Result<mamba_backends::ModelResponse, mamba_backends::Error> {
    b.complete(&hi(), &RequestOptions::new()).await
}

#[tokio::test(start_paused = true)]
async fn connection_refused_is_retried_then_returned() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(format!("http://127.0.0.1:{port}/v1"))
        .retry_policy(RetryPolicy::default().jitter(false))
        .build()
        .unwrap();
    let t = Instant::now();
    let e = complete(&b).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    // 0.5 + 1 + 2 s of backoff between four attempts.
    assert_eq!(t.elapsed().as_millis() / 100, 35);
}

#[tokio::test(start_paused = true)]
async fn reset_mid_stream_after_first_chunk_is_not_retried() {
    let server = mock(Script::new().always(Reply::text("one two three four five").cut_after_bytes(420))).await;
    let b = resilient(&server);
    let mut stream = b.stream(&hi(), &RequestOptions::new()).await.unwrap();
    let mut got = Vec::new();
    let error = loop {
        match stream.next().await {
            Some(Ok(c)) => got.push(c),
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error"),
        }
    };
    assert!(!got.is_empty());
    assert_eq!(error.kind(), ErrorKind::Stream);
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn truncated_body_is_retried() {
    let script = Script::new()
        .rule(Rule::new(Match::any(), Reply::text("cut").cut_after_bytes(150)).times(1))
        .always(Reply::text("whole"));
    let server = mock(script).await;
    let r = complete(&resilient(&server)).await.unwrap();
    assert_eq!(r.content, "whole");
    assert_eq!(server.chat_requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn idle_stall_mid_stream_times_out_without_retry() {
    let server = mock(Script::new().always(Reply::text("a b c d").hang_after_events(3))).await;
    let b = resilient(&server);
    let t = Instant::now();
    let stream = b.stream(&hi(), &RequestOptions::new()).await.unwrap();
    let e = mamba_backends::collect(stream).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(t.elapsed() >= Duration::from_secs(5) && t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn stall_before_the_first_chunk_is_retried() {
    let script = Script::new()
        .rule(Rule::new(Match::any(), Reply::text("x").hang_after_events(0)).times(1))
        .always(Reply::text("fresh"));
    let server = mock(script).await;
    let b = resilient(&server);
    let r = mamba_backends::collect(b.stream(&hi(), &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(r.content, "fresh");
    assert_eq!(server.chat_requests().len(), 2);
}

async fn rate_limited_then_ok(header: (&str, String)) -> (Duration, usize) {
    let limited = Reply::status(429).header(header.0, header.1);
    let server = mock(Script::new().rule(Rule::new(Match::any(), limited).times(1)).always(Reply::text("ok"))).await;
    let t = Instant::now();
    let r = complete(&resilient(&server)).await.unwrap();
    assert_eq!(r.content, "ok");
    (t.elapsed(), server.chat_requests().len())
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_honoured() {
    let (elapsed, requests) = rate_limited_then_ok(("retry-after", "7".into())).await;
    assert_eq!((elapsed.as_secs(), requests), (7, 2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured() {
    let at = std::time::SystemTime::now() + Duration::from_secs(20);
    let (elapsed, requests) = rate_limited_then_ok(("retry-after", httpdate::fmt_http_date(at))).await;
    assert!(elapsed >= Duration::from_secs(18) && elapsed <= Duration::from_secs(21), "{elapsed:?}");
    assert_eq!(requests, 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_is_honoured() {
    let (elapsed, requests) = rate_limited_then_ok(("retry-after-ms", "1500".into())).await;
    assert_eq!((elapsed.as_millis(), requests), (1500, 2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_cap_returns_at_once() {
    let server = mock(Script::new().always(Reply::status(429).header("retry-after", "3600"))).await;
    let t = Instant::now();
    let e = complete(&resilient(&server)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
    assert!(t.elapsed() < Duration::from_millis(10));
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn loading_model_then_success() {
    let loading = Reply::status(503)
        .body(serde_json::json!({"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}));
    let server = mock(Script::new().rule(Rule::new(Match::any(), loading).times(2)).always(Reply::text("ready"))).await;
    let t = Instant::now();
    assert_eq!(complete(&resilient(&server)).await.unwrap().content, "ready");
    assert_eq!(t.elapsed().as_millis(), 1500);
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn server_errors_until_retries_run_out() {
    let server = mock(Script::new().always(Reply::status(500))).await;
    let t = Instant::now();
    let e = complete(&resilient(&server)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(t.elapsed().as_millis(), 3500);
    assert_eq!(server.chat_requests().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn quota_and_client_errors_are_not_retried() {
    let quota = Reply::status(429).body(
        serde_json::json!({"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}),
    );
    for (reply, kind) in [
        (quota, ErrorKind::QuotaExceeded),
        (Reply::status(400), ErrorKind::InvalidRequest),
        (Reply::status(401), ErrorKind::Authentication),
        (Reply::status(403), ErrorKind::PermissionDenied),
        (
            Reply::status(404).body(serde_json::json!({"error": {"message": "model not found"}})),
            ErrorKind::ModelNotFound,
        ),
        (Reply::status(422), ErrorKind::InvalidRequest),
    ] {
        let server = mock(Script::new().always(reply)).await;
        let e = complete(&resilient(&server)).await.unwrap_err();
        assert_eq!(e.kind(), kind);
        assert_eq!(server.chat_requests().len(), 1, "{kind:?} was retried");
    }
}

/// A request that went out and got no head within the response timeout is not resent by
/// default (the server is likely generating it); `resend_unanswered` opts in.
#[tokio::test(start_paused = true)]
async fn slow_headers_time_out_and_are_retried_on_request() {
    let script = || {
        Script::new()
            .rule(Rule::new(Match::any(), Reply::text("late").delay(Duration::from_secs(120))).times(1))
            .always(Reply::text("on time"))
    };
    let server = mock(script()).await;
    let e = complete(&resilient(&server)).await.unwrap_err();
    assert!(e.is_unanswered(), "{e}");
    assert_eq!(server.chat_requests().len(), 1);

    let server = mock(script()).await;
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .timeout(Duration::from_secs(5))
        .retry_policy(RetryPolicy::default().jitter(false).resend_unanswered(true))
        .build()
        .unwrap();
    let t = Instant::now();
    let r = complete(&b).await.unwrap();
    assert_eq!(r.content, "on time");
    // 5 s response timeout, then 0.5 s backoff.
    assert_eq!(t.elapsed().as_millis(), 5500);
    assert_eq!(server.chat_requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_never_pass_the_total_deadline() {
    let server = mock(Script::new().always(Reply::status(503))).await;
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .total_timeout(Duration::from_secs(2))
        .retry_policy(RetryPolicy::default().jitter(false).max_retries(10))
        .build()
        .unwrap();
    let t = Instant::now();
    let e = complete(&b).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(t.elapsed() <= Duration::from_secs(2), "{:?}", t.elapsed());
    // 0 s, 0.5 s, 1.5 s; the next wait (2 s) would end past the deadline.
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn error_frame_mid_stream_is_not_retried() {
    let server = mock(Script::new().always(Reply::text("a b c").error_frame_at(2))).await;
    let b = resilient(&server);
    let e = mamba_backends::collect(b.stream(&hi(), &RequestOptions::new()).await.unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test]
async fn dropped_stream_disconnects_the_server() {
    let server = mock(Script::new().always(Reply::text("a b c d e f").chunk_delay(Duration::from_millis(50)))).await;
    let b = resilient(&server);
    let mut stream = b.stream(&hi(), &RequestOptions::new()).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.disconnects() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.disconnects(), 1, "the server never saw the client leave");
}

#[tokio::test]
async fn dropped_complete_future_disconnects_the_server() {
    let server = mock(Script::new().always(Reply::hang())).await;
    let b = resilient(&server);
    let call = tokio::spawn(async move { complete(&b).await });
    while server.chat_requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    call.abort();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.disconnects() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.disconnects(), 1);
}

fn endpoint(url: &str) -> Arc<dyn ModelBackend> {
    Arc::new(OpenAICompatibleBackend::builder("m").base_url(url).retry_policy(RetryPolicy::none()).build().unwrap())
}

#[tokio::test(start_paused = true)]
async fn pool_with_a_dead_and_a_live_endpoint() {
    let live = mock(Script::new().always(Reply::text("alive"))).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let pool = BackendPool::builder()
        .endpoint(endpoint(&dead))
        .endpoint(endpoint(&live.base_url()))
        .failure_threshold(2)
        .build()
        .unwrap();
    for _ in 0..6 {
        assert_eq!(complete(&pool).await.unwrap().content, "alive");
    }
    assert_eq!(live.chat_requests().len(), 6);
    // The dead endpoint opened its breaker after two failures and was left alone after that.
    assert_eq!(pool.breaker_states()[0], BreakerState::Open);
    assert_eq!(pool.breaker_states()[1], BreakerState::Closed(0));
    assert_eq!(pool.outstanding(), vec![0, 0]);
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_and_closes() {
    let flaky = mock(
        Script::new().rule(Rule::new(Match::any(), Reply::status(500)).times(2)).always(Reply::text("flaky recovered")),
    )
    .await;
    let steady = mock(Script::new().always(Reply::text("steady"))).await;
    let pool = BackendPool::builder()
        .endpoint(endpoint(&flaky.base_url()))
        .endpoint(endpoint(&steady.base_url()))
        .failure_threshold(2)
        .cool_down(Duration::from_secs(10))
        .build()
        .unwrap();
    // Every request succeeds (failing over to the steady endpoint) while the flaky one fails
    // twice and opens.
    for _ in 0..4 {
        complete(&pool).await.unwrap();
    }
    assert_eq!(flaky.chat_requests().len(), 2);
    assert_eq!(pool.breaker_states()[0], BreakerState::Open);
    // No traffic to it during the cool-down.
    for _ in 0..4 {
        assert_eq!(complete(&pool).await.unwrap().content, "steady");
    }
    assert_eq!(flaky.chat_requests().len(), 2);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(pool.breaker_states()[0], BreakerState::HalfOpen);
    // The probe goes to the recovered endpoint (fewest in flight, ties in turn) and closes it.
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(complete(&pool).await.unwrap().content);
    }
    assert!(answers.iter().any(|a| a == "flaky recovered"), "{answers:?}");
    assert_eq!(pool.breaker_states()[0], BreakerState::Closed(0));
}

#[tokio::test(start_paused = true)]
async fn all_breakers_open_fails_fast_with_the_wait() {
    let down = mock(Script::new().always(Reply::status(503))).await;
    let pool = BackendPool::builder()
        .endpoint(endpoint(&down.base_url()))
        .failure_threshold(1)
        .cool_down(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(complete(&pool).await.unwrap_err().kind(), ErrorKind::Unavailable);
    let e = complete(&pool).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("circuit breakers open"));
    assert!(e.retry_after().is_some_and(|w| w <= Duration::from_secs(30)));
    assert_eq!(down.chat_requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn fallback_chain_on_context_overflow() {
    let small = mock(
        Script::new()
            .always(Reply::status(400).body(
                serde_json::json!({"error": {"message": "This model's maximum context length is 4096 tokens."}}),
            )),
    )
    .await;
    let big = mock(Script::new().always(Reply::text("from the big model"))).await;
    let pool = BackendPool::builder()
        .endpoint(endpoint(&small.base_url()))
        .fallback(endpoint(&big.base_url()), &[ErrorKind::ContextOverflow])
        .build()
        .unwrap();
    assert_eq!(complete(&pool).await.unwrap().content, "from the big model");
    let streamed = mamba_backends::collect(pool.stream(&hi(), &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(streamed.content, "from the big model");
    // An error not listed for the fallback is returned as is.
    let auth = mock(Script::new().always(Reply::status(401))).await;
    let pool = BackendPool::builder()
        .endpoint(endpoint(&auth.base_url()))
        .fallback(endpoint(&big.base_url()), &[ErrorKind::ContextOverflow])
        .build()
        .unwrap();
    assert_eq!(complete(&pool).await.unwrap_err().kind(), ErrorKind::Authentication);
}

#[tokio::test(start_paused = true)]
async fn pool_streams_hold_their_lease_until_the_end() {
    let server = mock(Script::new().always(Reply::text("a b c"))).await;
    let pool = BackendPool::builder().endpoint(endpoint(&server.base_url())).build().unwrap();
    let mut stream = pool.stream(&hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(pool.outstanding(), vec![1]);
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
    }
    drop(stream);
    assert_eq!(pool.outstanding(), vec![0]);
    assert_eq!(pool.breaker_states(), vec![BreakerState::Closed(0)]);
}
