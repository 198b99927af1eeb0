//! # mamba-mock
//!
//! A scriptable OpenAI-compatible chat-completions server for tests, on `127.0.0.1`.
//!
//! * `POST /v1/chat/completions` and `POST /v1/responses` (the Responses API: input items,
//!   typed events, reasoning items), streaming (SSE) and not; the same answers as legacy text
//!   completions on `POST /v1/completions`; `GET /v1/models`; `GET /health`.
//! * With no script it echoes the last user message (streamed word by word when asked).
//! * Scripts ([`Script`]) answer with text, tool calls, reasoning, usage and any chunking, or
//!   with faults: an HTTP status with body and headers (429 with `Retry-After`), a delay before
//!   the head, slow chunks, a connection cut after N bytes, a malformed JSON frame, an error
//!   frame mid-stream, no `[DONE]`, a hang; or replay a recorded response file byte for byte.
//! * Rules match on the model, the last message's text or role, and the call count, so a test
//!   can script a whole tool-calling conversation.
//! * OpenAI's Files and Batch APIs (`/v1/files`, `/v1/batches`): uploaded JSONL runs line by
//!   line through the same rendering and script as live requests (a rule can make lines
//!   fail), with progress visible to polling ([`BatchTiming`]), output and error files, and
//!   cancel.
//! * [`DownloadServer`], beside the OpenAI mock: files at URL paths (Hugging Face's layout) with
//!   `Range`, a redirect, a cut-off body, for the tests of model downloads.
//! * Requests are recorded for assertions ([`MockServer::requests`]): the last 1,000 by
//!   default, so that a long run does not keep every body it ever saw
//!   ([`MockServerBuilder::keep_requests`], [`MockServerBuilder::keep_all_requests`]);
//!   [`MockServer::request_count`] counts them all.
//!
//! ```
//! use mamba_mock::{Match, MockServer, Reply, Script};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let script = Script::new()
//!     .on(Match::call(1), Reply::tool_call("get_weather", json!({"city": "Paris"})))
//!     .on(Match::role("tool"), Reply::text("It is sunny in Paris."))
//!     .always(Reply::status(429).header("retry-after", "1"));
//! let server = MockServer::start_with(script).await?;
//! assert!(server.base_url().ends_with("/v1"));
//! // ... point the client under test at server.base_url() ...
//! assert_eq!(server.chat_requests().len(), 0);
//! # Ok(()) }
//! ```
//!
//! The same script as a JSON file, for `mamba-llm mock --script FILE`:
//!
//! ```json
//! {"rules": [
//!   {"match": {"call": 1}, "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
//!   {"match": {"role": "tool"}, "reply": {"text": "It is sunny in Paris."}},
//!   {"reply": {"status": 429, "headers": {"retry-after": "1"}}}
//! ]}
//! ```

#![deny(missing_docs)]

mod batches;
mod download;
mod embeddings;
mod render;
mod script;
mod server;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use batches::BatchTiming;
pub use download::{DownloadRequest, DownloadServer, DownloadServerBuilder};
pub use embeddings::vector_for;
pub use script::{Match, MockToolCall, MockUsage, Reply, Rule, Script, ScriptError};

/// A request the server received.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReceivedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path with its query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The headers in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The body as JSON, when it was JSON.
    pub json: Option<Value>,
}

impl ReceivedRequest {
    /// A header's value (first of that name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True for embeddings requests.
    pub fn is_embeddings(&self) -> bool {
        self.method == "POST" && self.path.split('?').next().is_some_and(|p| p.ends_with("/embeddings"))
    }

    /// True for Responses API requests (`POST …/responses`).
    pub fn is_responses(&self) -> bool {
        self.method == "POST" && self.path.split('?').next().is_some_and(|p| p.ends_with("/responses"))
    }

    /// True for chat-completion requests.
    pub fn is_chat(&self) -> bool {
        self.method == "POST" && self.path.split('?').next().is_some_and(|p| p.ends_with("/chat/completions"))
    }

    /// True for legacy text-completion requests (`/v1/completions`).
    pub fn is_text_completion(&self) -> bool {
        self.method == "POST"
            && self
                .path
                .split('?')
                .next()
                .is_some_and(|p| p.ends_with("/completions") && !p.ends_with("/chat/completions"))
    }
}

/// How many requests a server keeps by default ([`MockServerBuilder::keep_requests`]).
pub const DEFAULT_KEPT_REQUESTS: usize = 1000;

#[derive(Debug, Default)]
struct Inner {
    script: Script,
    uses: Vec<usize>,
    /// The newest requests, oldest first: at most `keep` of them (`None`: all).
    requests: VecDeque<ReceivedRequest>,
    keep: Option<usize>,
    /// Every request received, kept or not.
    received: usize,
    chat_calls: usize,
}

#[derive(Debug)]
pub(crate) struct State {
    inner: Mutex<Inner>,
    connections: AtomicUsize,
    pub(crate) disconnects: AtomicUsize,
    pub(crate) api_key: Option<String>,
    pub(crate) batches: Arc<batches::Store>,
    pub(crate) batch_timing: BatchTiming,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request; past the limit the oldest one is forgotten.
    pub(crate) fn record(&self, request: ReceivedRequest) {
        let mut inner = self.lock();
        inner.received += 1;
        if let Some(keep) = inner.keep {
            if keep == 0 {
                return;
            }
            while inner.requests.len() >= keep {
                inner.requests.pop_front();
            }
        }
        inner.requests.push_back(request);
    }

    pub(crate) fn models(&self) -> Vec<String> {
        let inner = self.lock();
        if inner.script.models.is_empty() {
            vec!["mock-model".to_owned()]
        } else {
            inner.script.models.clone()
        }
    }

    /// The reply for a chat request (the first matching rule, else an echo) and its number.
    pub(crate) fn choose(&self, chat: &render::ChatRequest) -> (Reply, u64) {
        let mut inner = self.lock();
        inner.chat_calls += 1;
        let call = inner.chat_calls;
        let rules = inner.script.rules.len();
        inner.uses.resize(rules, 0);
        for i in 0..rules {
            let rule = &inner.script.rules[i];
            if rule.times.is_some_and(|t| inner.uses[i] >= t) {
                continue;
            }
            let m = &rule.when;
            let matches = m.model.as_ref().is_none_or(|model| *model == chat.model)
                && m.contains.as_ref().is_none_or(|text| chat.last_text.contains(text.as_str()))
                && m.role.as_ref().is_none_or(|role| *role == chat.last_role)
                && m.call.is_none_or(|n| n == call)
                && m.stream.is_none_or(|s| s == chat.stream)
                && m.api.as_ref().is_none_or(|api| api == chat.api);
            if matches {
                let reply = rule.reply.clone();
                inner.uses[i] += 1;
                return (reply, call as u64);
            }
        }
        (Reply::default(), call as u64)
    }
}

/// Settings for a [`MockServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MockServerBuilder {
    port: u16,
    script: Script,
    api_key: Option<String>,
    batch_timing: BatchTiming,
    keep: Option<usize>,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        MockServerBuilder {
            port: 0,
            script: Script::default(),
            api_key: None,
            batch_timing: BatchTiming::default(),
            keep: Some(DEFAULT_KEPT_REQUESTS),
        }
    }
}

impl MockServerBuilder {
    /// The port on 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The script (default: echo).
    pub fn script(mut self, script: Script) -> Self {
        self.script = script;
        self
    }

    /// Require `Authorization: Bearer <key>` on chat requests (401 otherwise).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The pauses of batches run by the Batch API (default: 20 ms between statuses, 5 ms
    /// after each line).
    pub fn batch_timing(mut self, timing: BatchTiming) -> Self {
        self.batch_timing = timing;
        self
    }

    /// How many of the newest requests are kept for [`MockServer::requests`] (default
    /// [`DEFAULT_KEPT_REQUESTS`]); older ones are forgotten, so that memory stays bounded
    /// however long the server runs. `0` keeps none ([`MockServer::request_count`] still
    /// counts them).
    pub fn keep_requests(mut self, n: usize) -> Self {
        self.keep = Some(n);
        self
    }

    /// Keeps every request received (memory grows with every body: for short tests that
    /// inspect more than [`DEFAULT_KEPT_REQUESTS`] requests).
    pub fn keep_all_requests(mut self) -> Self {
        self.keep = None;
        self
    }

    /// Binds and starts serving on the current Tokio runtime.
    pub async fn start(self) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            inner: Mutex::new(Inner { script: self.script, keep: self.keep, ..Inner::default() }),
            connections: AtomicUsize::new(0),
            disconnects: AtomicUsize::new(0),
            api_key: self.api_key,
            batches: Arc::default(),
            batch_timing: self.batch_timing,
        });
        let (shutdown, watcher) = watch::channel(false);
        let accept_state = state.clone();
        tokio::spawn(async move {
            let mut stop = watcher.clone();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.changed() => return,
                };
                let Ok((socket, _)) = accepted else { continue };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let (state, mut stop) = (accept_state.clone(), watcher.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = server::serve_connection(socket, state) => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        });
        Ok(MockServer { addr, state, shutdown })
    }
}

/// The running server. Dropping it stops it (open connections are closed).
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl MockServer {
    /// An echoing server on a free port.
    pub async fn start() -> std::io::Result<MockServer> {
        MockServer::builder().start().await
    }

    /// A server running `script` on a free port.
    pub async fn start_with(script: Script) -> std::io::Result<MockServer> {
        MockServer::builder().script(script).start().await
    }

    /// Settings.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the script (rule use counts start again; the call count does not).
    pub fn set_script(&self, script: Script) {
        let mut inner = self.state.lock();
        inner.script = script;
        inner.uses.clear();
    }

    /// Adds a rule after the existing ones.
    pub fn push_rule(&self, rule: Rule) {
        self.state.lock().script.rules.push(rule);
    }

    /// The requests received, in order: the newest [`MockServerBuilder::keep_requests`] of
    /// them (by default [`DEFAULT_KEPT_REQUESTS`]).
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.state.lock().requests.iter().cloned().collect()
    }

    /// How many requests were received, including those no longer kept.
    pub fn request_count(&self) -> usize {
        self.state.lock().received
    }

    /// The chat-completion requests received, in order (of the kept ones).
    pub fn chat_requests(&self) -> Vec<ReceivedRequest> {
        self.state.lock().requests.iter().filter(|r| r.is_chat()).cloned().collect()
    }

    /// The Responses API requests received, in order (of the kept ones).
    pub fn responses_requests(&self) -> Vec<ReceivedRequest> {
        self.state.lock().requests.iter().filter(|r| r.is_responses()).cloned().collect()
    }

    /// Forgets the recorded requests (the count of [`request_count`](Self::request_count)
    /// stays).
    pub fn clear_requests(&self) {
        self.state.lock().requests.clear();
    }

    /// Files uploaded to the Files API so far.
    pub fn uploads(&self) -> usize {
        self.state.batches.uploads()
    }

    /// The ids of the batches created so far, oldest first.
    pub fn batch_ids(&self) -> Vec<String> {
        self.state.batches.batch_ids()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Connections whose client left before the answer was complete (a dropped stream, a
    /// client timeout during a hang).
    pub fn disconnects(&self) -> usize {
        self.state.disconnects.load(Ordering::SeqCst)
    }
}
