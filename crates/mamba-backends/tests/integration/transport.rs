//! The HTTP/1.1 transport: connection reuse, stale pooled connections, framing variants,
//! interim answers, heads split across reads.

use std::time::Duration;

use futures_util::StreamExt;
use mamba_backends::{Message, ModelBackend, RequestOptions};
use mamba_mock::{MockServer, Reply as MockReply, Script};

use crate::support::{Part, RawServer, Reply};
use crate::{backend, stream_answer};

fn hi() -> [Message; 1] {
    [Message::user("hi")]
}

const OK_BODY: &str = r#"{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}]}"#;

/// Sequential requests, plain and streamed (read to the end), share one pooled connection.
#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let server = MockServer::start().await.unwrap();
    let b = backend(&server.base_url());
    for _ in 0..3 {
        b.complete(&hi(), &RequestOptions::new()).await.unwrap();
        stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap();
    }
    assert!(b.health_check().await);
    assert_eq!(server.chat_requests().len(), 6);
    assert_eq!(server.connections(), 1);
}

/// A stream dropped before its end does not go back to the pool: the next request opens a
/// new connection.
#[tokio::test]
async fn a_dropped_stream_is_not_reused() {
    let server = MockServer::start_with(
        Script::new().always(MockReply::text("a b c d e f g").chunk_delay(Duration::from_millis(20))),
    )
    .await
    .unwrap();
    let b = backend(&server.base_url());
    let mut s = b.stream(&hi(), &RequestOptions::new()).await.unwrap();
    s.next().await.unwrap().unwrap();
    drop(s);
    stream_answer(&b, &hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(server.connections(), 2);
}

/// A stream read to its final chunk and dropped before the body's last bytes arrived (the
/// server ends the body a moment after `[DONE]`): its connection still goes back to the pool,
/// so a load of short streams does not open a connection per request.
#[tokio::test]
async fn a_finished_stream_dropped_before_its_body_ended_is_reused() {
    let server =
        MockServer::start_with(Script::new().always(MockReply::text("a b c").end_delay(Duration::from_millis(30))))
            .await
            .unwrap();
    let b = backend(&server.base_url());
    for _ in 0..3 {
        let mut s = b.stream(&hi(), &RequestOptions::new()).await.unwrap();
        let mut text = String::new();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap();
            text.push_str(&chunk.content);
            if chunk.is_final {
                break;
            }
        }
        assert_eq!(text, "a b c");
        // Dropped at once, as a caller that has its answer does; the body ends 30 ms later,
        // read by the background drain.
        drop(s);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(server.chat_requests().len(), 3);
    assert_eq!(server.connections(), 1);
}

/// A server that closes an idle keep-alive connection (without saying `connection: close`):
/// the next request finds the pooled connection dead and goes on a fresh one, unnoticed.
#[tokio::test]
async fn stale_pooled_connection_is_replaced() {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{OK_BODY}",
        OK_BODY.len()
    );
    let server = RawServer::fixed(Reply::raw(head.into_bytes())).await;
    let b = backend(&server.url());
    for _ in 0..3 {
        let r = b.complete(&hi(), &RequestOptions::new()).await.unwrap();
        assert_eq!(r.content, "ok");
        // Let the server's close reach the client before the next request.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.request_count(), 3);
}

/// `connection: close` and HTTP/1.0 answers are never pooled.
#[tokio::test]
async fn close_and_http10_are_not_pooled() {
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let head = format!(
            "{version} 200 OK\r\ncontent-length: {}\r\n{}\r\n{OK_BODY}",
            OK_BODY.len(),
            if version == "HTTP/1.1" { "connection: close\r\n" } else { "" }
        );
        let server = RawServer::fixed(Reply::raw(head.into_bytes())).await;
        let b = backend(&server.url());
        for _ in 0..2 {
            assert_eq!(b.complete(&hi(), &RequestOptions::new()).await.unwrap().content, "ok");
        }
    }
}

/// Interim 1xx answers (100 Continue, 103 Early Hints) are skipped.
#[tokio::test]
async fn interim_answers_are_skipped() {
    let raw = format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{OK_BODY}",
        OK_BODY.len()
    );
    let server = RawServer::fixed(Reply::raw(raw.into_bytes())).await;
    assert_eq!(backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap().content, "ok");
}

/// A head that arrives in pieces, one byte at a time.
#[tokio::test]
async fn head_in_pieces() {
    let raw = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{OK_BODY}",
        OK_BODY.len()
    );
    let mut parts = Vec::new();
    for b in raw.bytes() {
        parts.push(Part::Bytes(vec![b]));
        parts.push(Part::Delay(Duration::from_millis(1)));
    }
    let server = RawServer::fixed(Reply { parts }).await;
    assert_eq!(backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap().content, "ok");
}

/// Chunk extensions, trailers, and a body much larger than the read buffer.
#[tokio::test]
async fn chunk_extensions_trailers_and_large_bodies() {
    let content = "x".repeat(300_000);
    let body = format!(r#"{{"choices":[{{"message":{{"content":"{content}"}},"finish_reason":"stop"}}]}}"#);
    let mut raw =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_vec();
    for piece in body.as_bytes().chunks(7777) {
        raw.extend_from_slice(format!("{:X};name=value\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
    let server = RawServer::fixed(Reply::raw(raw)).await;
    let r = backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content.len(), 300_000);
}

/// A malformed chunked body is an error, not a wrong answer.
#[tokio::test]
async fn malformed_chunked_body() {
    let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n".to_vec();
    let server = RawServer::fixed(Reply::raw(raw)).await;
    let e = backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), mamba_backends::ErrorKind::Stream);
    assert!(e.message().contains("chunk"), "{e}");
}

/// Not HTTP at all.
#[tokio::test]
async fn not_http() {
    let server = RawServer::fixed(Reply::raw(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())).await;
    let e = backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), mamba_backends::ErrorKind::Decode, "{e}");
}

/// The request on the wire: host header, content length, credentials from the URL only as
/// Basic auth (never in the host header or the path).
#[tokio::test]
async fn request_head_on_the_wire() {
    let server = RawServer::fixed(Reply::json(200, OK_BODY)).await;
    let url = server.url().replace("http://", "http://user:pw@");
    backend(&url).complete(&hi(), &RequestOptions::new()).await.unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.header("host"), Some(server.addr.to_string().as_str()));
    assert_eq!(req.header("content-length").map(str::to_owned), Some(req.body.len().to_string()));
    assert!(req.header("user-agent").unwrap().starts_with("mamba-backends/"));
    assert_eq!(req.header("authorization"), Some("Basic dXNlcjpwdw=="));
    assert!(req.headers.iter().filter(|(k, _)| k != "authorization").all(|(_, v)| !v.contains("pw")));
    assert!(!req.path.contains("pw"));
}

/// A request that went out on a pooled connection is never sent again by the transport, even
/// when the server closes without answering: the server may be working on it. (Resending is
/// the retry policy's decision; here it allows none.)
#[tokio::test]
async fn a_sent_request_is_not_resent_by_the_transport() {
    let script = Script::new()
        .rule(mamba_mock::Rule::new(mamba_mock::Match::call(1), MockReply::text("first")))
        .always(MockReply::text("never").cut_after_bytes(0));
    let server = MockServer::start_with(script).await.unwrap();
    let b = backend(&server.base_url());
    assert_eq!(b.complete(&hi(), &RequestOptions::new()).await.unwrap().content, "first");
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), mamba_backends::ErrorKind::Connect, "{e}");
    assert!(e.message().contains("before responding"), "{e}");
    assert_eq!(server.chat_requests().len(), 2);
    assert_eq!(server.connections(), 1);
}

/// A server that sends something unasked on an idle connection (a 408 before closing it):
/// the connection is not reused, and the stale answer is not taken for the next request's.
#[tokio::test]
async fn unsolicited_bytes_on_an_idle_connection() {
    let mut parts = vec![Part::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{OK_BODY}",
            OK_BODY.len()
        )
        .into_bytes(),
    )];
    parts.push(Part::Delay(Duration::from_millis(5)));
    parts.push(Part::Bytes(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n".to_vec()));
    let server = RawServer::fixed(Reply { parts }).await;
    let b = backend(&server.url());
    for _ in 0..2 {
        assert_eq!(b.complete(&hi(), &RequestOptions::new()).await.unwrap().content, "ok");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(server.request_count(), 2);
}

/// An answer announced larger than the limit is refused before it is read.
#[tokio::test]
async fn announced_length_over_the_limit() {
    let raw =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\nconnection: close\r\n\r\n{"
            .to_vec();
    let server = RawServer::fixed(Reply::raw(raw)).await;
    let b = crate::builder(&server.url()).max_response_bytes(1024).build().unwrap();
    let e = b.complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), mamba_backends::ErrorKind::Decode);
    assert!(e.message().contains("100000000 announced"), "{e}");
}

/// A 101 nobody asked for is an error, not an answer.
#[tokio::test]
async fn unasked_protocol_switch() {
    let server =
        RawServer::fixed(Reply::raw(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n".to_vec())).await;
    let e = backend(&server.url()).complete(&hi(), &RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), mamba_backends::ErrorKind::Decode, "{e}");
}

/// `HttpClient::get`, the public entry for downloads: headers sent, status and headers read,
/// the body in pieces, and a `Range` answer's 206.
#[tokio::test]
async fn public_get_reads_head_and_body() {
    let body = vec![b'x'; 100_000];
    let server = RawServer::start(move |req, _| {
        let range = req.header("range").map(str::to_owned);
        match range {
            Some(r) if r == "bytes=90000-" => {
                Reply::with_status(206, &[("content-range", "bytes 90000-99999/100000")], &body[90_000..])
            }
            _ => Reply::with_status(200, &[("x-test", "yes")], &body),
        }
    })
    .await;
    let client = mamba_backends::http::HttpClient::new();
    let url = format!("{}/file.bin", server.url());
    let mut response = client.get(&url, &[], Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-test").unwrap(), "yes");
    let mut buf = Vec::new();
    while response.read_chunk(&mut buf, Duration::from_secs(5)).await.unwrap() > 0 {}
    assert_eq!(buf.len(), 100_000);

    let mut response = client.get(&url, &[("Range", "bytes=90000-")], Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status(), 206);
    let mut buf = Vec::new();
    while response.read_chunk(&mut buf, Duration::from_secs(5)).await.unwrap() > 0 {}
    assert_eq!(buf.len(), 10_000);
    assert!(client.get("not a url", &[], Duration::from_secs(1)).await.is_err());
}
