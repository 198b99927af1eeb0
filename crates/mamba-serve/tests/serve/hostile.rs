//! What a hostile but fair client tries: bodies that stall or trickle, hundreds of idle
//! connections, bodies that are not JSON, foreign web pages and rebound DNS names, HEAD and
//! wrong methods, a client that hangs up, a shutdown that cuts a stream, a pool whose every
//! upstream fails.

use std::time::{Duration, Instant};

use mamba_backends::BackendPool;
use mamba_mock::{MockServer, Reply, Script};
use mamba_serve::{Limits, ServeConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{eventually, gateway_with, open, parse, post_json, send, send_raw, spawn_post, upstream, Gateway};

const CHAT: &str = "/v1/chat/completions";

/// Waits (up to 20 s) until the upstream got `n` chat requests.
async fn wait_for_upstream(mock: &MockServer, n: usize) {
    for _ in 0..2000 {
        if mock.chat_requests().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream got {} chat requests, not {n}", mock.chat_requests().len());
}

fn chat_body(stream: bool) -> serde_json::Value {
    json!({"model": "mock-model", "messages": [{"role": "user", "content": "hello there"}], "stream": stream})
}

/// A POST whose head announces `len` body bytes; only `sent` of them are written.
async fn stalled_post(addr: std::net::SocketAddr, len: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream
}

/// Reads until the server closes the connection, within `within`.
async fn read_all(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut raw = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut raw))
        .await
        .expect("the server kept the connection open")
        .unwrap();
    raw
}

#[tokio::test]
async fn a_stalled_and_a_trickling_body_get_408_and_the_connection_closes() {
    // The trickle never stalls 400 ms: the overall --request-timeout ends it.
    let limits = Limits::new().body_timeout(Duration::from_millis(400)).request_timeout(Duration::from_millis(800));
    let (mock, gw) = gateway_with(Script::new(), limits).await;

    let started = Instant::now();
    let mut stalled = stalled_post(gw.addr, 200, br#"{"model":"#).await;
    let answer = parse(&read_all(&mut stalled, Duration::from_secs(3)).await);
    assert_eq!(answer.status, 408, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "request_timeout");
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // One byte every 50 ms: never stalls, never finishes in time.
    let started = Instant::now();
    let stream = stalled_post(gw.addr, 200, b"{").await;
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), read.read_to_end(&mut raw)).await.unwrap().unwrap();
    trickle.abort();
    let answer = parse(&raw);
    assert_eq!(answer.status, 408, "{}", answer.text());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // A head that never ends: the connection is closed within the same bound.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\n").await.unwrap();
    let mut raw = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut raw)).await;
    assert!(closed.is_ok(), "a stalled head kept its connection");

    assert!(mock.chat_requests().is_empty());
    let metrics = gw.server.metrics();
    assert!(metrics.contains("kind=\"body_timeout\"} 2"), "{metrics}");
}

#[tokio::test]
async fn a_slow_body_that_keeps_arriving_is_not_cut_by_the_body_timeout() {
    // 1 byte every 50 ms for ~1 s with a 400 ms body timeout: idle never 400 ms, so it arrives.
    let limits = Limits::new().body_timeout(Duration::from_millis(400));
    let (mock, gw) = gateway_with(Script::new(), limits).await;
    let body = chat_body(false).to_string();
    let padded = format!("{body}{}", " ".repeat(20));
    let mut stream = stalled_post(gw.addr, padded.len(), b"").await;
    for chunk in padded.as_bytes().chunks(padded.len() / 20 + 1) {
        stream.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = parse(&read_until_answered(&mut stream).await);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(mock.chat_requests().len(), 1);
}

/// Reads until a whole (content-length) answer arrived, within 10 s.
async fn read_until_answered(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            raw.extend_from_slice(&buf[..n]);
            if n == 0 {
                return;
            }
            let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|n| n.trim().parse::<usize>().ok());
                if len.is_some_and(|len| body.len() >= len) {
                    return;
                }
            }
        }
    })
    .await
    .expect("no answer");
    raw
}

#[tokio::test]
async fn the_request_timeout_covers_reading_the_body() {
    let limits = Limits::new().request_timeout(Duration::from_millis(300));
    let (_mock, gw) = gateway_with(Script::new(), limits).await;
    let started = Instant::now();
    let mut stalled = stalled_post(gw.addr, 100, b"{").await;
    let answer = parse(&read_all(&mut stalled, Duration::from_secs(3)).await);
    assert_eq!(answer.status, 408, "{}", answer.text());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn health_answers_while_300_bodies_stall() {
    let (_mock, gw) = gateway_with(Script::new(), Limits::new()).await;
    let mut stalled = Vec::new();
    for _ in 0..300 {
        stalled.push(stalled_post(gw.addr, 1000, b"{\"messages\":").await);
    }
    let health = tokio::time::timeout(Duration::from_secs(10), send(gw.addr, "GET", "/health", &[], b""))
        .await
        .expect("/health did not answer");
    assert_eq!(health.status, 200, "{}", health.text());
    eventually("the 300 stalled connections are counted", || open_connections(&gw) >= 300).await;
    drop(stalled);
}

fn open_connections(gw: &Gateway) -> i64 {
    let metrics = gw.server.metrics();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("mamba_open_connections "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"))
}

#[tokio::test]
async fn connections_past_the_bound_wait_for_one_to_close() {
    // The stalled bodies' timeout is long: only closing one of them frees a connection.
    let limits = Limits::new().max_connections(2).body_timeout(Duration::from_secs(60));
    let (_mock, gw) = gateway_with(Script::new(), limits).await;
    let a = stalled_post(gw.addr, 100, b"{").await;
    let _b = stalled_post(gw.addr, 100, b"{").await;
    eventually("both stalled connections are open", || open_connections(&gw) == 2).await;
    let third = tokio::spawn(send(gw.addr, "GET", "/health", &[], b""));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third connection was served past --max-connections 2");
    assert_eq!(open_connections(&gw), 2);
    drop(a);
    let health = tokio::time::timeout(Duration::from_secs(20), third).await.unwrap().unwrap();
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn limits_past_what_fits_do_not_panic() {
    // `Instant + Duration::MAX` and a semaphore past MAX_PERMITS used to panic on every request.
    let limits = Limits::new()
        .request_timeout(Duration::MAX)
        .body_timeout(Duration::MAX)
        .grace_period(Duration::MAX)
        .max_concurrent(usize::MAX)
        .max_queue(usize::MAX)
        .max_connections(usize::MAX);
    let (mock, gw) = gateway_with(Script::new(), limits).await;
    let answer = post_json(gw.addr, CHAT, &chat_body(false)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = post_json(gw.addr, CHAT, &chat_body(true)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(mock.chat_requests().len(), 2);
    assert!(!gw.done.is_finished(), "the server stopped");
}

#[tokio::test]
async fn bodies_must_be_json() {
    let (mock, gw) = gateway_with(Script::new(), Limits::new()).await;
    let body = chat_body(false).to_string();
    for content_type in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data"), None]
    {
        let headers: Vec<(&str, &str)> = content_type.map(|c| ("content-type", c)).into_iter().collect();
        let e = send(gw.addr, "POST", CHAT, &headers, body.as_bytes()).await;
        assert_eq!(e.status, 415, "{content_type:?}: {}", e.text());
        assert_eq!(e.json()["error"]["code"], "unsupported_media_type");
        let e = send(gw.addr, "POST", "/v1/embeddings", &headers, br#"{"input":"a"}"#).await;
        assert_eq!(e.status, 415, "{content_type:?}");
    }
    assert!(mock.chat_requests().is_empty());
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let ok = send(gw.addr, "POST", CHAT, &[("content-type", content_type)], body.as_bytes()).await;
        assert_eq!(ok.status, 200, "{content_type}: {}", ok.text());
    }
}

fn preflight(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization, content-type"),
    ]
}

#[tokio::test]
async fn cors_only_for_the_origins_allowed() {
    // No origin allowed: a page elsewhere gets no grant.
    let (_mock, gw) = gateway_with(Script::new(), Limits::new()).await;
    let e = send(gw.addr, "OPTIONS", CHAT, &preflight("http://localhost:3000"), b"").await;
    assert_eq!(e.status, 403, "{}", e.text());
    assert_eq!(e.header("access-control-allow-origin"), None);

    let mock = MockServer::start().await.unwrap();
    let config = ServeConfig::new(upstream(&mock, "mock-model")).cors_origin("http://localhost:3000");
    let gw = Gateway::start(config).await;
    let ok = send(gw.addr, "OPTIONS", CHAT, &preflight("http://localhost:3000"), b"").await;
    assert_eq!(ok.status, 204, "{}", ok.text());
    assert_eq!(ok.header("access-control-allow-origin"), Some("http://localhost:3000"));
    assert!(ok.header("access-control-allow-methods").unwrap().contains("POST"));
    assert!(ok.header("access-control-allow-headers").unwrap().contains("authorization"));
    let evil = send(gw.addr, "OPTIONS", CHAT, &preflight("http://evil.example"), b"").await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.header("access-control-allow-origin"), None);

    let body = chat_body(false).to_string();
    let json = ("content-type", "application/json");
    let allowed = send(gw.addr, "POST", CHAT, &[json, ("origin", "http://localhost:3000")], body.as_bytes()).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("http://localhost:3000"));
    let foreign = send(gw.addr, "POST", CHAT, &[json, ("origin", "http://evil.example")], body.as_bytes()).await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
}

fn get_with_host(host: &str) -> Vec<u8> {
    format!("GET /health HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn a_loopback_server_refuses_foreign_host_names() {
    let mock = MockServer::start().await.unwrap();
    let gw = Gateway::start(ServeConfig::new(upstream(&mock, "mock-model")).allowed_host("My.Box")).await;
    for host in [
        "localhost",
        "localhost:8080",
        "127.0.0.1",
        "127.0.0.1:9",
        "127.5.6.7:80",
        "[::1]:8080",
        "[::1]",
        "my.box:8080",
        "app.localhost",
    ] {
        let answer = send_raw(gw.addr, &get_with_host(host)).await;
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
    }
    for host in ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "10.0.0.1", "localhost.evil.example"] {
        let answer = send_raw(gw.addr, &get_with_host(host)).await;
        assert_eq!(answer.status, 403, "{host}: {}", answer.text());
        assert_eq!(answer.json()["error"]["code"], "host_not_allowed");
    }
    // Whatever the path.
    let rebound = format!("POST {CHAT} HTTP/1.1\r\nhost: evil.example\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{{}}");
    assert_eq!(send_raw(gw.addr, rebound.as_bytes()).await.status, 403);
    assert!(mock.chat_requests().is_empty());
}

#[tokio::test]
async fn allowed_host_star_accepts_any_host() {
    let mock = MockServer::start().await.unwrap();
    let gw = Gateway::start(ServeConfig::new(upstream(&mock, "mock-model")).allowed_host("*")).await;
    for host in ["evil.example", "my.box:8080", "10.0.0.5"] {
        let answer = send_raw(gw.addr, &get_with_host(host)).await;
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
    }
}

#[tokio::test]
async fn head_answers_and_405_names_the_methods() {
    let (_mock, gw) = gateway_with(Script::new(), Limits::new()).await;
    for path in ["/health", "/v1/models", "/"] {
        let get = send(gw.addr, "GET", path, &[], b"").await;
        let head = send(gw.addr, "HEAD", path, &[], b"").await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(head.header("content-type"), get.header("content-type"), "{path}");
    }
    let e = send(gw.addr, "GET", CHAT, &[], b"").await;
    assert_eq!(e.status, 405);
    assert_eq!(e.header("allow"), Some("POST, OPTIONS"));
    let e = send(gw.addr, "DELETE", "/health", &[], b"").await;
    assert_eq!(e.status, 405);
    assert_eq!(e.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert!(e.json()["error"]["message"].as_str().unwrap().contains("GET, HEAD"));
}

#[tokio::test]
async fn with_a_key_metrics_and_the_page_are_closed_unless_made_public() {
    let mock = MockServer::start().await.unwrap();
    let key = [("authorization", "Bearer sk-test")];
    let gw = Gateway::start(ServeConfig::new(upstream(&mock, "mock-model")).api_key("sk-test")).await;
    for path in ["/metrics", "/"] {
        assert_eq!(send(gw.addr, "GET", path, &[], b"").await.status, 401, "{path}");
        assert_eq!(send(gw.addr, "GET", path, &key, b"").await.status, 200, "{path}");
    }
    assert_eq!(send(gw.addr, "GET", "/health", &[], b"").await.status, 200);
    // A browser opening the page cannot send the key: the 401 says how to serve it anyway.
    let page = send(gw.addr, "GET", "/", &[], b"").await;
    assert!(page.json()["error"]["message"].as_str().unwrap().contains("--public-page"), "{}", page.text());

    let config =
        ServeConfig::new(upstream(&mock, "mock-model")).api_key("sk-test").public_metrics(true).public_page(true);
    let gw = Gateway::start(config).await;
    for path in ["/metrics", "/"] {
        assert_eq!(send(gw.addr, "GET", path, &[], b"").await.status, 200, "{path}");
    }
    assert_eq!(send(gw.addr, "GET", "/v1/models", &[], b"").await.status, 401);
}

#[tokio::test]
async fn a_whole_answer_whose_client_hangs_up_is_counted() {
    let (mock, gw) = gateway_with(Script::new().always(Reply::hang()), Limits::new()).await;
    let conn = open(gw.addr, CHAT, &chat_body(false)).await;
    eventually("the upstream got the request", || mock.chat_requests().len() == 1).await;
    drop(conn);
    eventually("the request is counted as cancelled", || {
        gw.server.metrics().contains("mamba_requests_cancelled_total{model=\"mock-model\"} 1")
    })
    .await;
    let metrics = gw.server.metrics();
    assert!(
        metrics.contains("mamba_requests_total{model=\"mock-model\",endpoint=\"chat\",status=\"499\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mamba_e2e_request_latency_seconds_count{model=\"mock-model\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_stream_cut_at_the_grace_deadline_ends_with_an_error_event() {
    let script = Script::new().always(Reply::text("w ".repeat(300)).chunk_delay(Duration::from_millis(20)));
    let (mock, mut gw) = gateway_with(script, Limits::new().grace_period(Duration::from_millis(300))).await;
    let in_flight = spawn_post(gw.addr, CHAT, chat_body(true));
    wait_for_upstream(&mock, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.stop();
    let answer = tokio::time::timeout(Duration::from_secs(3), in_flight).await.unwrap().unwrap();
    let events = answer.events();
    let last = events.last().unwrap();
    assert!(last.contains("\"server_shutdown\""), "{}", answer.text());
    assert!(!events.iter().any(|e| e == "[DONE]"));
    tokio::time::timeout(Duration::from_secs(3), &mut gw.done).await.unwrap().unwrap().unwrap();
    let metrics = gw.server.metrics();
    assert!(metrics.contains("mamba_request_errors_total{model=\"mock-model\",kind=\"shutdown\"} 1"), "{metrics}");
    assert!(
        metrics.contains("mamba_requests_total{model=\"mock-model\",endpoint=\"chat\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mamba_open_streams 0"), "{metrics}");
}

#[tokio::test]
async fn a_whole_answer_still_running_at_the_grace_deadline_gets_503() {
    let (mock, mut gw) =
        gateway_with(Script::new().always(Reply::hang()), Limits::new().grace_period(Duration::from_millis(200))).await;
    let in_flight = spawn_post(gw.addr, CHAT, chat_body(false));
    wait_for_upstream(&mock, 1).await;
    gw.stop();
    let answer = tokio::time::timeout(Duration::from_secs(3), in_flight).await.unwrap().unwrap();
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "server_shutdown");
    tokio::time::timeout(Duration::from_secs(3), &mut gw.done).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn health_of_a_pool_whose_upstreams_fail() {
    let a = MockServer::start_with(Script::new().always(Reply::status(500))).await.unwrap();
    let b = MockServer::start_with(Script::new().always(Reply::status(500))).await.unwrap();
    let pool = BackendPool::builder()
        .endpoint(upstream(&a, "mock-model"))
        .endpoint(upstream(&b, "mock-model"))
        .failure_threshold(2)
        .build()
        .unwrap();
    let gw = Gateway::start(ServeConfig::from_pool(pool)).await;
    let health = send(gw.addr, "GET", "/health", &[], b"").await;
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")), "{}", health.text());

    // Every request fails on both: degraded at once, unavailable once their breakers open.
    assert_eq!(post_json(gw.addr, CHAT, &chat_body(false)).await.status, 500);
    let health = send(gw.addr, "GET", "/health", &[], b"").await;
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("degraded")), "{}", health.text());
    assert_eq!(post_json(gw.addr, CHAT, &chat_body(false)).await.status, 500);
    let health = send(gw.addr, "GET", "/health", &[], b"").await;
    assert_eq!((health.status, health.json()["status"].as_str()), (503, Some("unavailable")), "{}", health.text());
    let upstreams = health.json()["upstreams"].clone();
    assert_eq!(upstreams[0]["breaker"], "open", "{upstreams}");
    assert_eq!(upstreams[0]["answers"], true, "{upstreams}");

    // One replica down, one well: degraded.
    let live = MockServer::start().await.unwrap();
    let dead = MockServer::start().await.unwrap();
    let dead_backend = upstream(&dead, "mock-model");
    drop(dead);
    let pool = BackendPool::builder().endpoint(dead_backend).endpoint(upstream(&live, "mock-model")).build().unwrap();
    let gw = Gateway::start(ServeConfig::from_pool(pool)).await;
    let health = send(gw.addr, "GET", "/health", &[], b"").await;
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("degraded")), "{}", health.text());
}
