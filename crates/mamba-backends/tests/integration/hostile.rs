//! The review's findings (issue 15, section 5): hostile and slow answers that once kept the
//! client busy, resent non-idempotent requests, or hid what the server said. Each test pins
//! one fix.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mamba_backends::{ErrorKind, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions, RetryPolicy};
use mamba_mock::{MockServer, Reply as MockReply, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{Part, RawServer, Reply};
use crate::{backend, builder, stream_answer};

fn hi() -> [Message; 1] {
    [Message::user("hi")]
}

const OK_BODY: &str = r#"{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}]}"#;

/// A server that, for every connection, reads the request head and then writes `head` and
/// `filler` without end, as fast as the client takes it. Counts the bytes written.
async fn endless(head: &'static [u8], filler: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                if socket.write_all(head).await.is_err() {
                    return;
                }
                let block = filler.repeat(64 * 1024 / filler.len());
                while socket.write_all(&block).await.is_ok() {
                    count.fetch_add(block.len(), Ordering::Relaxed);
                }
            });
        }
    });
    (url, written)
}

const SSE_CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

/// High: an endless chunk extension (no data ever) once spun past the idle timeout at full
/// CPU. Now the 16 KiB cap ends it at once, having read little.
#[tokio::test]
async fn endless_chunk_extension_fails_fast() {
    let (url, written) =
        endless(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5;e=", b"x")
            .await;
    let b = builder(&url).idle_timeout(Duration::from_secs(5)).build().unwrap();
    let t = std::time::Instant::now();
    let e = stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap_err();
    assert!(e.message().contains("chunk extension"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(written.load(Ordering::Relaxed) < 16 * 1024 * 1024);
}

/// High: endless trailers after the last chunk, likewise.
#[tokio::test]
async fn endless_trailers_fail_fast() {
    let head: &'static [u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n0\r\n";
    let (url, _) = endless(head, b"x-trailer: 0123456789abcdef\r\n").await;
    let b = builder(&url).idle_timeout(Duration::from_secs(5)).build().unwrap();
    let t = std::time::Instant::now();
    let e = stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{e}");
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert!(e.message().contains("trailers"), "{e}");
}

/// High: a stream of bytes that are never an event (SSE comments sent as fast as possible)
/// keeps the socket always ready; the total deadline is still checked against the clock.
#[tokio::test]
async fn busy_socket_still_meets_the_total_deadline() {
    let (url, _) = endless(SSE_CHUNKED, b"8\r\n: ping\n\n\r\n").await;
    let b = builder(&url).total_timeout(Duration::from_millis(1500)).build().unwrap();
    let t = std::time::Instant::now();
    let e = stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// High: interim answers without end are refused after 10.
#[tokio::test]
async fn endless_interim_answers_are_refused() {
    let hints = "HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n".repeat(11);
    let body = format!("{hints}HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{OK_BODY}", OK_BODY.len());
    let server = RawServer::fixed(Reply::raw(body.into_bytes())).await;
    let e = backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(e.message().contains("interim"), "{e}");
    // Ten are still fine.
    let hints = "HTTP/1.1 103 Early Hints\r\n\r\n".repeat(10);
    let body = format!("{hints}HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{OK_BODY}", OK_BODY.len());
    let server = RawServer::fixed(Reply::raw(body.into_bytes())).await;
    assert_eq!(backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap().content, "ok");
}

fn defaults(server: &MockServer) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .retry_policy(RetryPolicy::default().jitter(false))
        .build()
        .unwrap()
}

/// High: a reasoning model that needs 70 s before its non-streamed answer: with the
/// defaults it is sent once and answered, not timed out at 60 s and sent four times.
#[tokio::test(start_paused = true)]
async fn slow_generation_is_waited_for_by_default() {
    let server =
        MockServer::start_with(Script::new().always(MockReply::text("thought").delay(Duration::from_secs(70))))
            .await
            .unwrap();
    let t = Instant::now();
    let r = defaults(&server).complete(&hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "thought");
    assert_eq!(t.elapsed().as_secs(), 70);
    assert_eq!(server.chat_requests().len(), 1);
}

/// High: a POST that was sent and then timed out waiting is not resent (it is being
/// generated, and billed); the caller can opt in.
#[tokio::test(start_paused = true)]
async fn sent_request_that_timed_out_is_not_resent_unless_asked() {
    let server = MockServer::start_with(Script::new().always(MockReply::text("late").delay(Duration::from_secs(120))))
        .await
        .unwrap();
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .response_timeout(Duration::from_secs(5))
        .retry_policy(RetryPolicy::default().jitter(false))
        .build()
        .unwrap();
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.is_unanswered() && !e.is_retryable(), "{e:?}");
    assert!(e.message().contains("after the request was sent"), "{e}");
    assert_eq!(server.chat_requests().len(), 1);

    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .response_timeout(Duration::from_secs(5))
        .retry_policy(RetryPolicy::default().jitter(false).max_retries(1).resend_unanswered(true))
        .build()
        .unwrap();
    b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(server.chat_requests().len(), 3);
}

/// Medium: a body trickled at one byte a second never trips the idle timeout; the default
/// total bound of a non-streamed request (10 minutes) ends it, and `total_timeout` sooner.
#[tokio::test(start_paused = true)]
async fn trickled_body_meets_the_total_bound() {
    let mut reply = Reply::raw(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", 100_000).into_bytes());
    for _ in 0..5000 {
        reply = reply.then(Part::Delay(Duration::from_secs(1))).then(Part::Bytes(b" ".to_vec()));
    }
    let server = RawServer::fixed(reply).await;
    let t = Instant::now();
    let b = builder(&server.url()).timeout(Duration::from_secs(5)).build().unwrap();
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(t.elapsed().as_secs(), 600);
    let t = Instant::now();
    let b =
        builder(&server.url()).timeout(Duration::from_secs(5)).total_timeout(Duration::from_secs(20)).build().unwrap();
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(t.elapsed().as_secs(), 20);
}

/// Medium: a server that answers 413 (or 401) while the 20 MiB body is still being written
/// and closes: its answer is read and returned, once, not reported as a connect error and
/// sent four times.
#[tokio::test]
async fn early_answer_while_the_body_is_written() {
    for (status, kind) in [(413u16, ErrorKind::InvalidRequest), (401, ErrorKind::Authentication)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let body = r#"{"error":{"message":"request entity too large or key wrong"}}"#;
                    let answer = format!(
                        "HTTP/1.1 {status} No\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    // Close without reading the rest: the kernel resets the connection.
                    drop(socket);
                });
            }
        });
        let b = OpenAICompatibleBackend::builder("m")
            .base_url(url)
            .retry_policy(RetryPolicy::default().jitter(false).initial_backoff(Duration::from_millis(1)))
            .build()
            .unwrap();
        let big = Message::user("x".repeat(20 * 1024 * 1024));
        let e = b.complete(&[big], &RequestOptions::new()).await.unwrap_err();
        assert_eq!(e.status(), Some(status), "{e}");
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.message().contains("too large or key wrong"), "{e}");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }
}

/// Low: a redirect is an error that says where to, and it is not retried.
#[tokio::test]
async fn redirects_say_where() {
    let server =
        RawServer::fixed(Reply::with_status(301, &[("location", "https://api.example.test/v1/chat/completions")], b""))
            .await;
    let b = builder(&server.url())
        .retry_policy(RetryPolicy::default().initial_backoff(Duration::from_millis(1)))
        .build()
        .unwrap();
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.status(), Some(301));
    assert!(!e.is_retryable());
    assert!(e.message().contains("redirected the request to https://api.example.test/v1/chat/completions"), "{e}");
    assert_eq!(server.request_count(), 1);
    let e = b.stream(&hi(), &RequestOptions::new()).await.err().unwrap();
    assert_eq!(e.status(), Some(301));
}

/// Low: `user:password@` in the base URL goes out as Basic auth and is never shown.
#[tokio::test]
async fn url_credentials_are_sent_as_basic_auth() {
    let server = RawServer::fixed(Reply::json(500, r#"{"error":{"message":"nope"}}"#)).await;
    let url = server.url().replace("http://", "http://gateway-user:hunter2@");
    let b = builder(&url).build().unwrap();
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    let request = &server.requests()[0];
    assert_eq!(request.header("authorization"), Some("Basic Z2F0ZXdheS11c2VyOmh1bnRlcjI="));
    assert_eq!(request.header("host"), Some(server.addr.to_string().as_str()));
    for text in [format!("{b:?}"), format!("{e:?}"), e.to_string(), b.base_url().to_owned()] {
        assert!(!text.contains("hunter2"), "{text}");
    }
}
