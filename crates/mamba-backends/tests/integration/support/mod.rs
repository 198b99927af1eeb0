//! A loopback HTTP server that answers with exactly the bytes a test gives it, so tests see what
//! a real server's bytes do to the client: framing, chunking, delays, cuts.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// One step of an answer.
#[derive(Clone, Debug)]
pub enum Part {
    Bytes(Vec<u8>),
    Delay(Duration),
    /// Stop writing and keep the connection open until the client goes away.
    Hang,
}

/// An answer: parts written in order, then the connection is closed.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub parts: Vec<Part>,
}

impl Reply {
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply { parts: vec![Part::Bytes(bytes.into())] }
    }

    /// A response with a content length.
    pub fn with_status(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        Reply::raw(bytes)
    }

    pub fn json(status: u16, body: &str) -> Reply {
        Reply::with_status(status, &[("content-type", "application/json")], body.as_bytes())
    }

    /// An event stream sent with chunked encoding, one HTTP chunk per piece.
    pub fn sse_pieces(pieces: &[&[u8]]) -> Reply {
        let mut parts = vec![Part::Bytes(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec(),
        )];
        for piece in pieces.iter().filter(|p| !p.is_empty()) {
            parts.push(Part::Bytes(chunk(piece)));
        }
        parts.push(Part::Bytes(b"0\r\n\r\n".to_vec()));
        Reply { parts }
    }

    pub fn sse(body: &str) -> Reply {
        Reply::sse_pieces(&[body.as_bytes()])
    }

    /// An event stream with no length and no chunking: its end is the connection's close.
    pub fn sse_until_close(body: &[u8]) -> Reply {
        let mut bytes = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec();
        bytes.extend_from_slice(body);
        Reply::raw(bytes)
    }

    /// A recorded `curl -i` transcript (status line, headers, body), re-framed with a content
    /// length, or with chunked encoding in `pieces` when it is an event stream.
    pub fn transcript(path: &Path, pieces: usize) -> Reply {
        let t = Transcript::load(path);
        let mut head = format!("HTTP/1.1 {} {}\r\n", t.status, reason(t.status));
        for (k, v) in &t.headers {
            if k.eq_ignore_ascii_case("transfer-encoding")
                || k.eq_ignore_ascii_case("content-length")
                || k.eq_ignore_ascii_case("connection")
            {
                continue;
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if t.is_sse() {
            head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
            let mut parts = vec![Part::Bytes(head.into_bytes())];
            let size = t.body.len().div_ceil(pieces.max(1)).max(1);
            for piece in t.body.chunks(size) {
                parts.push(Part::Bytes(chunk(piece)));
            }
            parts.push(Part::Bytes(b"0\r\n\r\n".to_vec()));
            Reply { parts }
        } else {
            head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", t.body.len()));
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&t.body);
            Reply::raw(bytes)
        }
    }

    pub fn then(mut self, part: Part) -> Reply {
        self.parts.push(part);
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.parts.insert(0, Part::Delay(delay));
        self
    }
}

fn chunk(piece: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", piece.len()).into_bytes();
    out.extend_from_slice(piece);
    out.extend_from_slice(b"\r\n");
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A recorded exchange from `tests/data`.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Transcript {
    pub fn load(path: &Path) -> Transcript {
        let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let split =
            find(&raw, b"\r\n\r\n").map(|i| (i, 4)).or_else(|| find(&raw, b"\n\n").map(|i| (i, 2))).expect("head");
        let head = String::from_utf8_lossy(&raw[..split.0]).into_owned();
        let body = raw[split.0 + split.1..].to_vec();
        let mut lines = head.lines();
        let status_line = lines.next().expect("status line");
        let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
        let headers =
            lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
        Transcript { status, headers, body }
    }

    pub fn is_sse(&self) -> bool {
        self.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("event-stream"))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The test data folder.
pub fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path)
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// The server. Dropping it stops accepting.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    closed_early: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    /// Answers the n-th request (from 0) with `handler(request, n)`.
    pub async fn start(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let closed_early = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, early) = (requests.clone(), closed_early.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let (handler, reqs, early) = (handler.clone(), reqs.clone(), early.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, handler, reqs, early).await;
                });
            }
        });
        RawServer { addr, requests, closed_early, task }
    }

    /// Answers every request with the same reply.
    pub async fn fixed(reply: Reply) -> RawServer {
        RawServer::start(move |_, _| reply.clone()).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }

    /// Connections whose client went away before the whole answer was written.
    pub fn closed_early(&self) -> usize {
        self.closed_early.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut socket: TcpStream,
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    closed_early: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = socket.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let recorded = Recorded { method, path, headers, body };
    let index = {
        let mut reqs = requests.lock().expect("lock");
        reqs.push(recorded.clone());
        reqs.len() - 1
    };
    let reply = handler(&recorded, index);
    for part in reply.parts {
        match part {
            Part::Bytes(bytes) => {
                if socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err() {
                    closed_early.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
            }
            Part::Delay(d) => tokio::time::sleep(d).await,
            Part::Hang => {
                // Wait until the client closes its side.
                let mut probe = [0u8; 1];
                let _ = socket.read(&mut probe).await;
                closed_early.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
        }
    }
    socket.shutdown().await?;
    Ok(())
}
