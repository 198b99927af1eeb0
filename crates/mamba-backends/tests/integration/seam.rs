//! The transport seam (issue 15, section 4): the integration suite's core cases through an
//! injected [`Transport`]: the built-in client behind the trait (always), and reqwest (with
//! the `reqwest` feature: `cargo test -p mamba-backends --features reqwest --test integration
//! seam`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mamba_backends::{
    collect,
    http::HttpClient,
    transport::{Transport, TransportRequest, TransportResponse},
    ErrorKind, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions, RetryPolicy,
};
use mamba_mock::{Match, MockServer, Reply, Rule, Script};

use crate::support::{RawServer, Reply as RawReply};

fn hi() -> [Message; 1] {
    [Message::user("hi")]
}

/// Records the timeouts each request carried, then hands it to the inner transport.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Transport>,
    seen: Mutex<Vec<(Option<Duration>, Option<Duration>)>>,
}

#[async_trait::async_trait]
impl Transport for Recording {
    async fn send(&self, request: TransportRequest<'_>) -> Result<TransportResponse, mamba_backends::Error> {
        self.seen.lock().unwrap().push((request.connect_timeout(), request.head_timeout()));
        self.inner.send(request).await
    }
}

fn backend(url: &str, transport: Arc<dyn Transport>) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("m")
        .base_url(url)
        .transport(transport)
        .timeout(Duration::from_secs(2))
        .retry_policy(RetryPolicy::default().jitter(false).initial_backoff(Duration::from_millis(10)))
        .build()
        .unwrap()
}

/// The core cases, for one transport.
async fn core_cases(make: impl Fn() -> Arc<dyn Transport>) {
    // A plain answer, and a streamed one in many chunks with a tool call, assembled.
    let server = MockServer::start_with(
        Script::new()
            .on(
                Match::contains("tool"),
                Reply::text("").with_tool_call("get_weather", serde_json::json!({"city": "Paris"})),
            )
            .always(Reply::text("The capital of France is Paris.").chunk_chars(3).usage(7, 9)),
    )
    .await
    .unwrap();
    let b = backend(&server.base_url(), make());
    let r = b.complete(&hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "The capital of France is Paris.");
    let s = collect(b.stream(&hi(), &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(s.content, "The capital of France is Paris.");
    assert_eq!(s.usage.map(|u| u.output_tokens), Some(9));
    let t = collect(b.stream(&[Message::user("tool please")], &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(t.tool_calls[0].name, "get_weather");

    // Errors classified from the body; 5xx retried; 4xx not.
    let server = MockServer::start_with(
        Script::new()
            .on(Match::contains("auth"), Reply::status(401).body(serde_json::json!({"error": {"message": "bad key"}})))
            .rule(Rule::new(Match::any(), Reply::status(503)).times(2))
            .always(Reply::text("recovered")),
    )
    .await
    .unwrap();
    let b = backend(&server.base_url(), make());
    let e = b.complete(&[Message::user("auth")], &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert!(e.message().contains("bad key"), "{e}");
    assert_eq!(b.complete(&hi(), &RequestOptions::new()).await.unwrap().content, "recovered");
    assert_eq!(server.chat_requests().len(), 4);

    // A stalled stream ends with the idle timeout; a slow head with the response timeout,
    // not resent.
    let server = MockServer::start_with(
        Script::new()
            .on(Match::contains("slow"), Reply::text("late").delay(Duration::from_secs(30)))
            .always(Reply::text("a b c d").hang_after_events(2)),
    )
    .await
    .unwrap();
    let b = backend(&server.base_url(), make());
    let e = collect(b.stream(&hi(), &RequestOptions::new()).await.unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let e = b.complete(&[Message::user("slow")], &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_unanswered(), "{e:?}");
    assert_eq!(server.chat_requests().len(), 2);

    // A redirect says where.
    let raw = RawServer::fixed(RawReply::with_status(308, &[("location", "http://elsewhere.test/v1")], b"")).await;
    let e = backend(&raw.url(), make()).complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.status(), Some(308));
    assert!(e.message().contains("elsewhere.test"), "{e}");
}

#[tokio::test]
async fn core_cases_through_the_built_in_client_as_a_transport() {
    core_cases(|| Arc::new(HttpClient::new())).await;
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn core_cases_through_reqwest() {
    core_cases(|| Arc::new(mamba_backends::transport::ReqwestTransport::default())).await;
}

/// Timeouts are not dropped by an injected transport: each request carries the connect
/// timeout set on the builder (none when unset: the transport's own) and the response one.
#[tokio::test]
async fn timeouts_travel_with_each_request() {
    let server = MockServer::start_with(Script::new().always(Reply::text("ok"))).await.unwrap();
    let recording = Arc::new(Recording { inner: Arc::new(HttpClient::new()), seen: Mutex::new(Vec::new()) });
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .transport(recording.clone())
        .connect_timeout(Duration::from_secs(3))
        .stream_response_timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    b.complete(&hi(), &RequestOptions::new()).await.unwrap();
    collect(b.stream(&hi(), &RequestOptions::new()).await.unwrap()).await.unwrap();
    let b =
        OpenAICompatibleBackend::builder("m").base_url(server.base_url()).transport(recording.clone()).build().unwrap();
    b.complete(&hi(), &RequestOptions::new()).await.unwrap();
    let seen = recording.seen.lock().unwrap().clone();
    let secs = Duration::from_secs;
    assert_eq!(seen, vec![(Some(secs(3)), Some(secs(600))), (Some(secs(3)), Some(secs(4))), (None, Some(secs(600)))]);
    let e =
        OpenAICompatibleBackend::builder("m").transport(recording).http_client(HttpClient::new()).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}
