//! The HTTP/1.1 side, written on plain Tokio sockets so that faults can be exact: a response
//! cut after a given byte, a stream that stops mid-way, bytes replayed as recorded.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::embeddings::EmbeddingsRequest;
use crate::render::{error_body, error_type, Answer, ChatRequest};
use crate::script::Reply;
use crate::{ReceivedRequest, State};

/// Largest request accepted (head and body): batch input files go up to 200 MB on OpenAI.
const MAX_REQUEST: usize = 256 * 1024 * 1024;

/// Why writing stopped early.
#[derive(Debug)]
enum Stop {
    /// The client went away.
    ClientGone,
    /// The reply's `cut_after_bytes` was reached.
    Cut,
}

/// Writes with the `cut_after_bytes` budget.
struct Out<'a> {
    socket: &'a mut TcpStream,
    budget: Option<usize>,
}

impl Out<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let (bytes, cut) = match self.budget {
            Some(left) if bytes.len() >= left => (&bytes[..left], true),
            Some(left) => {
                self.budget = Some(left - bytes.len());
                (bytes, false)
            }
            None => (bytes, false),
        };
        if !bytes.is_empty() {
            self.socket.write_all(bytes).await.map_err(|_| Stop::ClientGone)?;
        }
        self.socket.flush().await.map_err(|_| Stop::ClientGone)?;
        if cut {
            return Err(Stop::Cut);
        }
        Ok(())
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub(crate) async fn serve_connection(mut socket: TcpStream, state: Arc<State>) {
    let _ = socket.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let request = match read_request(&mut socket, &mut buf).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(message) => {
                let body = error_body(400, &message);
                let _ = write_simple(
                    &mut Out { socket: &mut socket, budget: None },
                    400,
                    "application/json",
                    &[],
                    &body,
                    true,
                )
                .await;
                return;
            }
        };
        let close = request.close;
        match handle(&mut socket, &state, request).await {
            Ok(()) if !close => continue,
            Ok(()) => return,
            Err(Stop::Cut) => {
                let _ = socket.shutdown().await;
                return;
            }
            Err(Stop::ClientGone) => {
                state.disconnects.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

/// Reads one request; `None` when the client closed between requests.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Request>, String> {
    let mut tmp = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = memchr::memmem::find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_REQUEST {
            return Err("request head too large".into());
        }
        let n = socket.read(&mut tmp).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("/").to_owned();
    let version = first.next().unwrap_or("HTTP/1.1").to_owned();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let find =
        |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_ascii_lowercase());
    let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let body = if chunked {
        read_chunked(socket, buf).await?
    } else {
        let length: usize = find("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if length > MAX_REQUEST {
            return Err("request body too large".into());
        }
        while buf.len() < length {
            let n = socket.read(&mut tmp).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the request body ended early".into());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        buf.drain(..length).collect()
    };
    let close = match find("connection") {
        Some(v) if v.contains("close") => true,
        Some(v) if v.contains("keep-alive") => false,
        _ => version == "HTTP/1.0",
    };
    Ok(Some(Request { method, path, headers, body, close }))
}

async fn read_chunked(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let line_end = loop {
            if let Some(i) = memchr::memmem::find(buf, b"\r\n") {
                break i;
            }
            let n = socket.read(&mut tmp).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the chunked body ended early".into());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            let n = socket.read(&mut tmp).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the chunked body ended early".into());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        if size == 0 {
            buf.drain(..2);
            return Ok(body);
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
        if body.len() > MAX_REQUEST {
            return Err("request body too large".into());
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

async fn write_simple(
    out: &mut Out<'_>,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    body: &[u8],
    close: bool,
) -> Result<(), Stop> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    out.write(&bytes).await
}

/// The 401 body when the mock has a key and the request does not bring it.
fn key_refusal(state: &State, request: &Request) -> Option<Vec<u8>> {
    let auth = state.api_key.as_ref()?;
    let given = request.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    (given != auth).then(|| error_body(401, "Incorrect API key provided."))
}

async fn handle(socket: &mut TcpStream, state: &Arc<State>, request: Request) -> Result<(), Stop> {
    let parsed_body: Option<Value> = serde_json::from_slice(&request.body).ok();
    let path = request.path.split('?').next().unwrap_or("").to_owned();
    state.record(ReceivedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        json: parsed_body.clone(),
    });
    let close = request.close;
    let mut out = Out { socket, budget: None };
    if path == "/v1/files"
        || path.starts_with("/v1/files/")
        || path == "/v1/batches"
        || path.starts_with("/v1/batches/")
    {
        if let Some(body) = key_refusal(state, &request) {
            return write_simple(&mut out, 401, "application/json", &[], &body, close).await;
        }
        let query = request.path.split_once('?').map_or("", |(_, q)| q);
        let (status, body, content_type) = batch_route(state, &request, &path, query, parsed_body.as_ref());
        return write_simple(&mut out, status, content_type, &[], &body, close).await;
    }
    match (request.method.as_str(), path.as_str()) {
        ("GET", "/health") | ("GET", "/v1/health") => {
            write_simple(&mut out, 200, "application/json", &[], br#"{"status":"ok"}"#, close).await
        }
        ("GET", p) if p.ends_with("/models") => {
            let models = state.models();
            let data: Vec<Value> = models
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "mamba-mock"}))
                .collect();
            let body = json!({"object": "list", "data": data}).to_string();
            write_simple(&mut out, 200, "application/json", &[], body.as_bytes(), close).await
        }
        ("POST", p) if p.ends_with("/chat/completions") || p.ends_with("/completions") || p.ends_with("/responses") => {
            let Some(body) = parsed_body else {
                let body = error_body(400, "the request body is not valid JSON");
                return write_simple(&mut out, 400, "application/json", &[], &body, close).await;
            };
            let parsed = if p.ends_with("/chat/completions") {
                ChatRequest::parse(&body)
            } else if p.ends_with("/responses") {
                ChatRequest::parse_responses(&body)
            } else {
                ChatRequest::parse_text(&body)
            };
            let chat = match parsed {
                Ok(chat) => chat,
                Err(message) => {
                    let body = error_body(400, &message);
                    return write_simple(&mut out, 400, "application/json", &[], &body, close).await;
                }
            };
            if let Some(body) = key_refusal(state, &request) {
                return write_simple(&mut out, 401, "application/json", &[], &body, close).await;
            }
            let (reply, id) = state.choose(&chat);
            chat_reply(&mut out, &reply, &chat, id, close).await
        }
        ("POST", p) if p.ends_with("/embeddings") => {
            let parsed = match parsed_body.as_ref().map(EmbeddingsRequest::parse) {
                Some(Ok(request)) => request,
                Some(Err(message)) => {
                    let body = error_body(400, &message);
                    return write_simple(&mut out, 400, "application/json", &[], &body, close).await;
                }
                None => {
                    let body = error_body(400, "the request body is not valid JSON");
                    return write_simple(&mut out, 400, "application/json", &[], &body, close).await;
                }
            };
            if let Some(body) = key_refusal(state, &request) {
                return write_simple(&mut out, 401, "application/json", &[], &body, close).await;
            }
            let (reply, _) = state.choose(&parsed.as_chat());
            if let Some(result) = fault(&mut out, &reply, close).await {
                return result;
            }
            let headers: Vec<(String, String)> = reply.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let body = parsed.to_json(reply.model.as_deref(), reply.ignore_base64);
            write_simple(&mut out, 200, "application/json", &headers, &body, close).await
        }
        _ => {
            let body = error_body(404, &format!("no route for {} {}", request.method, request.path));
            write_simple(&mut out, 404, "application/json", &[], &body, close).await
        }
    }
}

/// The Files and Batch API routes: status, body and its content type.
fn batch_route(
    state: &Arc<State>,
    request: &Request,
    path: &str,
    query: &str,
    json: Option<&Value>,
) -> (u16, Vec<u8>, &'static str) {
    let store = &state.batches;
    let json_answer = |(status, body): crate::batches::Answered| (status, body, "application/json");
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["files"]) => json_answer(store.upload(request.header("content-type"), &request.body)),
        ("GET", ["files", id]) | ("DELETE", ["files", id]) => json_answer(store.file(&request.method, id, false)),
        ("GET", ["files", id, "content"]) => match store.file("GET", id, true) {
            (200, body) => (200, body, "application/octet-stream"),
            other => json_answer(other),
        },
        ("POST", ["batches"]) => json_answer(store.create(state, json)),
        ("GET", ["batches"]) => json_answer(store.list(query)),
        ("GET", ["batches", id]) => json_answer(store.get(id)),
        ("POST", ["batches", id, "cancel"]) => json_answer(store.cancel(id)),
        _ => json_answer((404, error_body(404, &format!("no route for {} {}", request.method, request.path)))),
    }
}

async fn hang(socket: &mut TcpStream) -> Stop {
    let mut probe = [0u8; 512];
    loop {
        match socket.read(&mut probe).await {
            Ok(0) | Err(_) => return Stop::ClientGone,
            Ok(_) => {}
        }
    }
}

/// The faults every route shares (cut budget, delay, hang, replay, status or body); `None`
/// when the reply is an answer, to be rendered by the route.
async fn fault(out: &mut Out<'_>, reply: &Reply, close: bool) -> Option<Result<(), Stop>> {
    out.budget = reply.cut_after_bytes;
    if let Some(ms) = reply.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if reply.hang {
        return Some(Err(hang(out.socket).await));
    }
    let headers: Vec<(String, String)> = reply.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(path) = &reply.replay {
        return Some(replay(out, path, reply).await);
    }
    if reply.status.is_some() || reply.body.is_some() {
        let status = reply.status.unwrap_or(200);
        let (content_type, body) = match &reply.body {
            None => {
                ("application/json", error_body(status, &format!("mock error: HTTP {status} ({})", error_type(status))))
            }
            Some(Value::String(text)) => ("text/plain", text.clone().into_bytes()),
            Some(value) => ("application/json", value.to_string().into_bytes()),
        };
        return Some(write_simple(out, status, content_type, &headers, &body, close).await);
    }
    None
}

async fn chat_reply(out: &mut Out<'_>, reply: &Reply, chat: &ChatRequest, id: u64, close: bool) -> Result<(), Stop> {
    if let Some(result) = fault(out, reply, close).await {
        return result;
    }
    let headers: Vec<(String, String)> = reply.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let answer = Answer::new(reply, chat, id);
    let responses = chat.api == "responses";
    if !chat.stream {
        let body = if responses { answer.to_response_json(chat) } else { answer.to_json() };
        return write_simple(out, 200, "application/json", &headers, &body, close).await;
    }
    let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write(head.as_bytes()).await?;
    let frames: Vec<String> = if responses {
        answer
            .response_events(reply, chat)
            .into_iter()
            .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
            .collect()
    } else {
        answer.events(reply, chat.include_usage).into_iter().map(|data| format!("data: {data}\n\n")).collect()
    };
    let mut pending = Vec::new();
    // Delays count from the head on a fixed schedule (event i at the sum of the delays before
    // it), so the timer's millisecond rounding does not add up over a stream.
    let mut due = tokio::time::Instant::now();
    for (i, frame) in frames.iter().enumerate() {
        if reply.hang_after_events == Some(i) {
            if !pending.is_empty() {
                out.write(&pending).await?;
            }
            return Err(hang(out.socket).await);
        }
        let chunk = format!("{:x}\r\n{frame}\r\n", frame.len());
        let delay = if i == 0 { reply.first_chunk_delay_ms.or(reply.chunk_delay_ms) } else { reply.chunk_delay_ms };
        if let Some(ms) = delay {
            if !pending.is_empty() {
                out.write(&std::mem::take(&mut pending)).await?;
            }
            due += Duration::from_millis(ms);
            tokio::time::sleep_until(due).await;
            out.write(chunk.as_bytes()).await?;
        } else {
            pending.extend_from_slice(chunk.as_bytes());
        }
    }
    if let Some(ms) = reply.end_delay_ms {
        if !pending.is_empty() {
            out.write(&std::mem::take(&mut pending)).await?;
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    pending.extend_from_slice(b"0\r\n\r\n");
    out.write(&pending).await
}

/// Sends a recorded answer: a `curl -i` transcript (its status, headers and body bytes, framed
/// again) or a bare event stream.
async fn replay(out: &mut Out<'_>, path: &std::path::Path, reply: &Reply) -> Result<(), Stop> {
    let raw = match std::fs::read(path) {
        Ok(raw) => raw,
        Err(e) => {
            let body = error_body(500, &format!("mamba-mock cannot read {}: {e}", path.display()));
            return write_simple(out, 500, "application/json", &[], &body, true).await;
        }
    };
    let (status, mut headers, body) = if raw.starts_with(b"HTTP/") {
        let split = memchr::memmem::find(&raw, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| memchr::memmem::find(&raw, b"\n\n").map(|i| (i, 2)));
        let (at, sep) = split.unwrap_or((raw.len(), 0));
        let head = String::from_utf8_lossy(&raw[..at]).into_owned();
        let mut lines = head.lines();
        let status =
            lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(200u16);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .filter(|(k, _)| {
                !["transfer-encoding", "content-length", "connection"].contains(&k.to_ascii_lowercase().as_str())
            })
            .collect();
        (status, headers, raw[(at + sep).min(raw.len())..].to_vec())
    } else {
        (200, vec![("content-type".to_owned(), "text/event-stream".to_owned())], raw)
    };
    headers.extend(reply.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let is_sse = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("event-stream"));
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if is_sse {
        head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
        out.write(head.as_bytes()).await?;
        // One HTTP chunk per recorded event, so a chunk delay paces them like the original.
        for piece in split_keep(&body, b"\n\n") {
            if let Some(ms) = reply.chunk_delay_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(piece);
            chunk.extend_from_slice(b"\r\n");
            out.write(&chunk).await?;
        }
        if !reply.hang {
            out.write(b"0\r\n\r\n").await?;
        }
        Err(Stop::Cut)
    } else {
        head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        out.write(&bytes).await?;
        Err(Stop::Cut)
    }
}

/// Splits after each `sep`, keeping it; the remainder (if any) is the last piece.
fn split_keep<'a>(bytes: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(i) = memchr::memmem::find(&bytes[start..], sep) {
        out.push(&bytes[start..start + i + sep.len()]);
        start += i + sep.len();
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}
