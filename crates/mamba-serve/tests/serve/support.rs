//! A gateway in front of a mock upstream, and a raw HTTP/1.1 client that shows exactly what
//! the gateway sent.

use std::sync::Arc;
use std::time::Duration;

use mamba_backends::{ModelBackend, OpenAICompatibleBackend, RetryPolicy};
use mamba_mock::{MockServer, Script};
use mamba_serve::{Limits, ServeConfig, Server};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The upstream backend for a mock: no retries, so faults show as they are.
pub fn upstream(mock: &MockServer, model: &str) -> Arc<dyn ModelBackend> {
    Arc::new(
        OpenAICompatibleBackend::builder(model)
            .base_url(mock.base_url())
            .retry_policy(RetryPolicy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("backend"),
    )
}

/// A running gateway.
pub struct Gateway {
    pub addr: std::net::SocketAddr,
    /// A clone of the running server (its metrics).
    pub server: Server,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    pub async fn start(config: ServeConfig) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = Server::new(config);
        let done = tokio::spawn(server.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        Gateway { addr, server, stop: Some(stop), done }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A client of the gateway through this library.
    pub fn client(&self, model: &str) -> OpenAICompatibleBackend {
        OpenAICompatibleBackend::builder(model)
            .base_url(self.url())
            .retry_policy(RetryPolicy::none())
            .build()
            .expect("client")
    }

    /// Starts the graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A gateway in front of a fresh mock with `script`.
pub async fn gateway_with(script: Script, limits: Limits) -> (MockServer, Gateway) {
    let mock = MockServer::start_with(script).await.expect("mock");
    let config = ServeConfig::new(upstream(&mock, "mock-model")).limits(limits);
    let gateway = Gateway::start(config).await;
    (mock, gateway)
}

/// A raw answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body.
    pub fn events(&self) -> Vec<String> {
        self.text().split("\n\n").filter_map(|e| e.strip_prefix("data: ").map(str::to_owned)).collect()
    }
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Sends one request and reads the whole answer (the connection closes after it).
pub async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&request_bytes(method, path, headers, body)).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse(&raw)
}

pub async fn post_json(addr: std::net::SocketAddr, path: &str, body: &Value) -> Answer {
    send(addr, "POST", path, &[("content-type", "application/json")], body.to_string().as_bytes()).await
}

/// [`post_json`] as a task of its own.
pub fn spawn_post(addr: std::net::SocketAddr, path: &'static str, body: Value) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move { post_json(addr, path, &body).await })
}

/// Opens a request and returns the connection without reading, for tests that leave early.
pub async fn open(addr: std::net::SocketAddr, path: &str, body: &Value) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let bytes = request_bytes("POST", path, &[("content-type", "application/json")], body.to_string().as_bytes());
    stream.write_all(&bytes).await.expect("write");
    stream
}

/// Sends raw bytes (a request written by hand) and reads the whole answer.
pub async fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse(&raw)
}

/// Parses a raw answer (head and body).
pub fn parse(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Answer { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// Polls `cond` every 10 ms for up to 5 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
