//! Stream transport: framing without chunked encoding, empty streams, JSON answers to stream
//! requests, idle timeouts, dropping a stream.

use std::time::Duration;

use futures_util::StreamExt;
use mamba_backends::{ErrorKind, FinishReason, Message, ModelBackend, RequestOptions};

use crate::support::{Part, RawServer, Reply};
use crate::{backend, builder, stream_answer};

fn hi() -> [Message; 1] {
    [Message::user("hi")]
}

const EVENT: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n";

/// A stream request carries `stream: true` and, for the generic preset, asks for usage.
#[tokio::test]
async fn stream_request_shape() {
    let server = RawServer::fixed(Reply::sse(
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
    ))
    .await;
    crate::stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap();
    let body = server.requests()[0].json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    let server =
        RawServer::fixed(Reply::sse("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")).await;
    let b = builder(&server.url()).include_usage(false).build().unwrap();
    crate::stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap();
    assert!(server.requests()[0].json().get("stream_options").is_none());
}

/// A body delimited by the connection's close (no length, no chunking) works; its end after
/// `[DONE]` is clean.
#[tokio::test]
async fn close_delimited_stream() {
    let body = format!(
        "{EVENT}{EVENT}data: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"
    );
    let server = RawServer::fixed(Reply::sse_until_close(body.as_bytes())).await;
    let r = crate::stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "tok tok ");
}

/// llama-cpp-python (auto tool choice while streaming, context overflow while streaming):
/// 200, SSE headers, and an empty body. An error, not an empty answer.
#[tokio::test]
async fn empty_200_stream_is_an_error() {
    let server = RawServer::fixed(Reply::sse_pieces(&[])).await;
    let e = crate::stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Stream);
    assert!(e.message().contains("without sending any event"), "{e}");
}

/// Prism (and servers that ignore `stream: true`): a JSON answer to a stream request becomes
/// chunks.
#[tokio::test]
async fn json_answer_to_a_stream_request() {
    let server = RawServer::fixed(Reply::json(200, r#"{"id":"string","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#)).await;
    let chunks: Vec<_> = backend(&server.url()).stream(&hi(), &RequestOptions::new()).await.unwrap().collect().await;
    assert_eq!(chunks.len(), 2);
    let last = chunks[1].as_ref().unwrap();
    assert!(last.is_final);
    assert_eq!(last.usage.map(|u| u.total_tokens), Some(2));
    assert_eq!(chunks[0].as_ref().unwrap().content, "whole");
}

/// A malformed JSON frame is an error (the seed logged and skipped it, losing data).
#[tokio::test]
async fn malformed_frame_is_an_error() {
    let server = RawServer::fixed(Reply::sse(&format!(
        "{EVENT}data: {{\"choices\":[{{\"delta\":{{\"content\":\"x\"}}\n\ndata: [DONE]\n\n"
    )))
    .await;
    let mut stream = backend(&server.url()).stream(&hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().content, "tok ");
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(stream.next().await.is_none());
}

/// A server that stalls mid-stream ends in a Timeout error, not a hang.
#[tokio::test(start_paused = true)]
async fn stalled_stream_times_out() {
    let reply = Reply::sse_pieces(&[EVENT.as_bytes()]);
    // Keep the first chunk, then hang instead of finishing.
    let parts: Vec<Part> = reply.parts[..2].to_vec();
    let server = RawServer::fixed(Reply { parts }.then(Part::Hang)).await;
    let b = builder(&server.url()).idle_timeout(Duration::from_secs(5)).build().unwrap();
    let started = tokio::time::Instant::now();
    let mut stream = b.stream(&hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().content, "tok ");
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("5s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

/// Slow response headers hit the response timeout.
#[tokio::test(start_paused = true)]
async fn slow_headers_time_out() {
    let server = RawServer::fixed(Reply::json(200, "{}").delayed(Duration::from_secs(30))).await;
    let b = builder(&server.url()).response_timeout(Duration::from_secs(2)).build().unwrap();
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("response headers"), "{e}");
}

/// The total deadline bounds a stream that keeps trickling.
#[tokio::test(start_paused = true)]
async fn total_deadline_bounds_a_trickling_stream() {
    let mut parts =
        vec![Part::Bytes(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec())];
    for _ in 0..100 {
        parts.push(Part::Bytes(EVENT.as_bytes().to_vec()));
        parts.push(Part::Delay(Duration::from_secs(1)));
    }
    let server = RawServer::fixed(Reply { parts }).await;
    let b = builder(&server.url())
        .idle_timeout(Duration::from_secs(5))
        .total_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let e = crate::stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("total"), "{e}");
}

/// Dropping a stream mid-way closes the connection: the server sees the client go.
#[tokio::test]
async fn dropping_a_stream_closes_the_connection() {
    let reply = Reply::sse_pieces(&[EVENT.as_bytes()]);
    let parts: Vec<Part> = reply.parts[..2].to_vec();
    let server = RawServer::fixed(Reply { parts }.then(Part::Hang)).await;
    let mut stream = backend(&server.url()).stream(&hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().content, "tok ");
    assert_eq!(server.closed_early(), 0);
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.closed_early() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.closed_early(), 1, "the server did not see the client disconnect");
}

/// An `event: error` with a text payload is an error.
#[tokio::test]
async fn error_event_with_text() {
    let server = RawServer::fixed(Reply::sse(&format!("{EVENT}event: error\ndata: upstream exploded\n\n"))).await;
    let e = crate::stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.message(), "upstream exploded");
}

/// The connection breaking after the finish reason loses only the trailer: a normal end.
#[tokio::test]
async fn break_after_finish_is_tolerated() {
    // Chunked encoding that is never terminated: hyper reports a body error at the close.
    let body = b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n";
    let mut bytes = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(b"\r\n");
    let server = RawServer::fixed(Reply::raw(bytes)).await;
    let r = crate::stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!((r.content.as_str(), r.finish_reason), ("ok", Some(FinishReason::Stop)));
}

/// ... while breaking before it is a Stream error with the transport's cause as its source.
#[tokio::test]
async fn break_before_finish_is_an_error() {
    let mut bytes = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    bytes.extend_from_slice(format!("{:x}\r\n{EVENT}\r\n", EVENT.len()).as_bytes());
    let server = RawServer::fixed(Reply::raw(bytes)).await;
    let e = crate::stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Stream);
    assert!(std::error::Error::source(&e).is_some());
}

/// An `event: error` is an error whatever its data, even JSON without an `error` key.
#[tokio::test]
async fn error_event_with_json_without_error_key() {
    let server = RawServer::fixed(Reply::sse(&format!(
        "{EVENT}event: error\ndata: {{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n"
    )))
    .await;
    let e = stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.message(), "overloaded");
}

/// Silence after the finish reason (a server that never sends `[DONE]` nor closes): the
/// answer is whole; the idle timeout ends the stream normally.
#[tokio::test(start_paused = true)]
async fn silence_after_the_finish_reason_is_a_normal_end() {
    let finish = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    let reply = Reply::sse_pieces(&[EVENT.as_bytes(), finish.as_bytes()]);
    let parts: Vec<Part> = reply.parts[..3].to_vec();
    let server = RawServer::fixed(Reply { parts }.then(Part::Hang)).await;
    let b = builder(&server.url()).idle_timeout(Duration::from_secs(5)).build().unwrap();
    let r = stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!((r.content.as_str(), r.finish_reason), ("tok ", Some(FinishReason::Stop)));
}

/// A usage trailer cut off after the finish reason, then a clean close: the answer is whole.
#[tokio::test]
async fn cut_trailer_after_the_finish_reason() {
    let body = format!("{EVENT}data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt");
    let server = RawServer::fixed(Reply::sse_until_close(body.as_bytes())).await;
    let r = stream_answer(&backend(&server.url()), &hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "tok ");
}
