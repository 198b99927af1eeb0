//! The mock's own tests: every fault and the replay, checked on the bytes a client receives.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mamba_mock::{Match, MockServer, Reply, Rule, Script};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "hostile/mock.rs"]
mod hostile;

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body, de-chunked.
    body: Vec<u8>,
    /// All bytes received.
    raw: Vec<u8>,
    /// The chunked body had its terminating zero chunk.
    complete: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `data:` payloads of an event stream.
    fn events(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    fn text(&self) -> String {
        self.events()
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn send_raw(server: &MockServer, method: &str, path: &str, body: &str, extra_headers: &str) -> Answer {
    let mut socket = TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = socket.read_to_end(&mut raw).await;
    parse(raw)
}

fn parse(raw: Vec<u8>) -> Answer {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let rest = raw.get(at + 4..).unwrap_or(&[]).to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let (body, complete) = if chunked { dechunk(&rest) } else { (rest, true) };
    Answer { status, headers, body, raw, complete }
}

fn dechunk(mut bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = bytes.windows(2).position(|w| w == b"\r\n") else { return (out, false) };
        let Ok(size) = usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).unwrap_or("x").trim(), 16) else {
            return (out, false);
        };
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return (out, true);
        }
        if bytes.len() < size {
            out.extend_from_slice(bytes);
            return (out, false);
        }
        out.extend_from_slice(&bytes[..size]);
        bytes = bytes.get(size + 2..).unwrap_or(&[]);
    }
}

async fn chat(server: &MockServer, body: Value) -> Answer {
    send_raw(server, "POST", "/v1/chat/completions", &body.to_string(), "").await
}

fn ask(text: &str, stream: bool) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream})
}

#[tokio::test]
async fn echoes_the_last_user_message() {
    let server = MockServer::start().await.unwrap();
    let a = chat(&server, ask("hello there", false)).await;
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["choices"][0]["message"]["content"], "hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let s = chat(&server, ask("hello there friend", true)).await;
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert_eq!(s.text(), "hello there friend");
    // role, 3 words, finish, [DONE]
    assert_eq!(s.events().len(), 6);
    assert_eq!(s.events().last().unwrap(), "[DONE]");
    assert!(s.complete);
}

#[tokio::test]
async fn models_health_and_unknown_paths() {
    let server = MockServer::start_with(Script::new().models(["a", "b"])).await.unwrap();
    let m = send_raw(&server, "GET", "/v1/models", "", "").await;
    assert_eq!(m.json()["data"][1]["id"], "b");
    let h = send_raw(&server, "GET", "/health", "", "").await;
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));
    let n = send_raw(&server, "GET", "/nope", "", "").await;
    assert_eq!(n.status, 404);
    let bad = send_raw(&server, "POST", "/v1/chat/completions", "{not json", "").await;
    assert_eq!(bad.status, 400);
    let no_messages = chat(&server, json!({"model": "m"})).await;
    assert_eq!(no_messages.status, 400);
    assert_eq!(server.requests().len(), 5);
    assert_eq!(server.chat_requests().len(), 2);
}

#[tokio::test]
async fn usage_reasoning_and_tool_calls_stream() {
    let script = Script::new().always(
        Reply::tool_call("get_weather", json!({"city": "Paris"})).reasoning("need weather").usage(11, 7).chunk_chars(5),
    );
    let server = MockServer::start_with(script).await.unwrap();
    let mut request = ask("weather?", true);
    request["stream_options"] = json!({"include_usage": true});
    let s = chat(&server, request).await;
    let events: Vec<Value> = s.events().iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    let reasoning: String =
        events.iter().filter_map(|e| e["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    assert_eq!(reasoning, "need weather");
    let args: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    let usage = events.iter().find(|e| e["choices"] == json!([])).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 18);
    let finish = events.iter().find_map(|e| e["choices"][0]["finish_reason"].as_str()).unwrap();
    assert_eq!(finish, "tool_calls");
}

#[tokio::test]
async fn status_with_body_and_headers() {
    let script = Script::new()
        .on(Match::contains("limit"), Reply::status(429).header("retry-after", "3"))
        .on(Match::contains("text"), Reply::status(500).body(json!("plain failure")))
        .on(
            Match::contains("custom"),
            Reply::status(400).body(json!({"error": {"message": "maximum context length is 8"}})),
        );
    let server = MockServer::start_with(script).await.unwrap();
    let a = chat(&server, ask("rate limit me", true)).await;
    assert_eq!((a.status, a.header("retry-after")), (429, Some("3")));
    assert_eq!(a.json()["error"]["type"], "rate_limit_error");
    let b = chat(&server, ask("text please", false)).await;
    assert_eq!(
        (b.status, b.header("content-type"), b.body.as_slice()),
        (500, Some("text/plain"), &b"plain failure"[..])
    );
    let c = chat(&server, ask("custom", false)).await;
    assert_eq!(c.json()["error"]["message"], "maximum context length is 8");
}

#[tokio::test(start_paused = true)]
async fn delay_before_the_head() {
    let server =
        MockServer::start_with(Script::new().always(Reply::text("late").delay(Duration::from_secs(30)))).await.unwrap();
    let started = tokio::time::Instant::now();
    let a = chat(&server, ask("x", false)).await;
    assert_eq!(a.json()["choices"][0]["message"]["content"], "late");
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn slow_chunks() {
    let server = MockServer::start_with(Script::new().always(Reply::text("a b c").chunk_delay(Duration::from_secs(2))))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let a = chat(&server, ask("x", true)).await;
    assert_eq!(a.text(), "a b c");
    // role, 3 words, finish, [DONE]: six events, two seconds apart.
    assert!(started.elapsed() >= Duration::from_secs(12), "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn first_chunk_delay_replaces_the_chunk_delay_of_the_first_event() {
    let reply = Reply::text("a b c").first_chunk_delay(Duration::from_secs(10)).chunk_delay(Duration::from_secs(2));
    let server = MockServer::start_with(Script::new().always(reply)).await.unwrap();
    let started = tokio::time::Instant::now();
    let a = chat(&server, ask("x", true)).await;
    assert_eq!(a.text(), "a b c");
    // role after 10 s, then 3 words, finish and [DONE] two seconds apart: 20 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(20) && took < Duration::from_secs(21), "{took:?}");
    let script = Script::from_json(r#"{"rules":[{"reply":{"text":"a","first_chunk_delay_ms":5}}]}"#).unwrap();
    assert_eq!(script.rules[0].reply.first_chunk_delay_ms, Some(5));
}

#[tokio::test]
async fn connection_cut_after_n_bytes() {
    let server =
        MockServer::start_with(Script::new().always(Reply::text("one two three").cut_after_bytes(150))).await.unwrap();
    let a = chat(&server, ask("x", true)).await;
    assert_eq!(a.raw.len(), 150);
    assert!(!a.complete);
    let b = chat(&server, ask("x", false)).await;
    assert_eq!(b.raw.len(), 150);
}

#[tokio::test]
async fn malformed_frame_error_frame_and_no_done() {
    let script = Script::new()
        .on(Match::contains("bad"), Reply::text("a b").malformed_frame_at(1))
        .on(Match::contains("err"), Reply::text("a b c d").error_frame_at(2))
        .on(Match::contains("nodone"), Reply::text("a b").no_done());
    let server = MockServer::start_with(script).await.unwrap();
    let bad = chat(&server, ask("bad", true)).await;
    assert!(serde_json::from_str::<Value>(&bad.events()[1]).is_err());
    let err = chat(&server, ask("err", true)).await;
    let events = err.events();
    assert_eq!(events.len(), 4);
    assert!(events[2].contains("mock error mid-stream"));
    assert_eq!(events[3], "[DONE]");
    let nodone = chat(&server, ask("nodone", true)).await;
    assert!(nodone.events().iter().all(|e| e != "[DONE]"));
    assert!(nodone.complete);
}

#[tokio::test]
async fn hang_until_the_client_leaves() {
    let server = MockServer::start_with(Script::new().always(Reply::hang())).await.unwrap();
    let mut socket = TcpStream::connect(server.addr()).await.unwrap();
    let body = ask("x", false).to_string();
    let request = format!("POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf)).await;
    assert!(read.is_err(), "the server answered");
    drop(socket);
    for _ in 0..100 {
        if server.disconnects() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.disconnects(), 1);
}

#[tokio::test]
async fn hang_after_events() {
    let server = MockServer::start_with(Script::new().always(Reply::text("a b c").hang_after_events(2))).await.unwrap();
    let mut socket = TcpStream::connect(server.addr()).await.unwrap();
    let body = ask("x", true).to_string();
    let request = format!("POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let a = parse(got);
    assert_eq!(a.events().len(), 2);
    assert!(!a.complete);
}

#[tokio::test]
async fn a_whole_tool_conversation_by_rules() {
    let script = Script::new()
        .on(Match::call(1), Reply::tool_call("add", json!({"a": 1, "b": 2})))
        .on(Match::role("tool").stream(false), Reply::text("The sum is 3."))
        .rule(Rule::new(Match::model("other"), Reply::text("only once")).times(1));
    let server = MockServer::start_with(script).await.unwrap();
    let first = chat(&server, ask("1+2?", false)).await.json();
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "add");
    let history = json!({"model": "m", "messages": [
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "3"}
    ]});
    let second = chat(&server, history).await.json();
    assert_eq!(second["choices"][0]["message"]["content"], "The sum is 3.");
    let other = json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&server, other.clone()).await.json()["choices"][0]["message"]["content"], "only once");
    // Used up: back to the echo.
    assert_eq!(chat(&server, other).await.json()["choices"][0]["message"]["content"], "hi");
    assert_eq!(server.chat_requests()[1].json.as_ref().unwrap()["messages"][2]["role"], "tool");
}

#[tokio::test]
async fn replays_a_recorded_file_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("mamba-mock-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sse = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n: ping\n\ndata: [DONE]";
    std::fs::write(dir.join("a.sse"), sse).unwrap();
    let transcript = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 999\r\nx-extra: yes\r\n\r\n{\"error\":{\"message\":\"Loading model\"}}";
    std::fs::write(dir.join("b.http"), transcript).unwrap();
    let sse_transcript =
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{sse}");
    std::fs::write(dir.join("c.http"), &sse_transcript).unwrap();
    let script = Script::new()
        .on(Match::contains("a"), Reply::replay(dir.join("a.sse")))
        .on(Match::contains("b"), Reply::replay(dir.join("b.http")))
        .on(Match::contains("c"), Reply::replay(dir.join("c.http")));
    let server = MockServer::start_with(script).await.unwrap();
    let a = chat(&server, ask("a", true)).await;
    assert_eq!(a.body, sse.as_bytes());
    let b = chat(&server, ask("b", false)).await;
    assert_eq!((b.status, b.header("x-extra")), (503, Some("yes")));
    assert_eq!(b.body, br#"{"error":{"message":"Loading model"}}"#);
    let c = chat(&server, ask("c", true)).await;
    assert_eq!(c.body, sse.as_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn api_key_required_when_set() {
    let server = MockServer::builder().api_key("sk-mock").start().await.unwrap();
    assert_eq!(chat(&server, ask("x", false)).await.status, 401);
    let ok = send_raw(
        &server,
        "POST",
        "/v1/chat/completions",
        &ask("x", false).to_string(),
        "authorization: Bearer sk-mock\r\n",
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn keep_alive_and_chunked_requests() {
    let server = MockServer::start().await.unwrap();
    let mut socket = TcpStream::connect(server.addr()).await.unwrap();
    let body = ask("first", false).to_string();
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let requests = format!(
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunked}",
        body.len()
    );
    socket.write_all(requests.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(server.connections(), 1);
    assert_eq!(server.chat_requests().len(), 2);
}
