//! A loopback server of files for download tests ([`DownloadServer`]): files at URL paths
//! (Hugging Face's `/{repo}/resolve/{revision}/{file}`, say), the one `Range` form a resuming
//! download sends, and the faults a download must survive: a redirect, a body cut off half
//! way, `Range` ignored, a pause before each body. Every request's path and `Range` is
//! recorded.
//!
//! `Range: bytes=N-` with `N` above 0 is answered with 206 and the file from byte `N` on, or
//! with 416 when `N` is at or past its end. Every other request for a file gets 200 and the
//! whole file: no `Range`, `bytes=0-`, and the forms it does not parse (`bytes=A-B`, suffixes
//! `bytes=-N`, several ranges), as a server that ignores `Range` would.
//!
//! It is not the OpenAI mock ([`MockServer`](crate::MockServer)): model downloads
//! (`mamba-local`'s fetcher, `mamba-llm pull`) talk plain HTTP/1.1 GETs to a file host, one
//! request a connection, and this is all such a host needs to be. The tests of `mamba-local`
//! and of the CLI share it instead of each writing its own.
//!
//! ```
//! use mamba_mock::DownloadServer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = DownloadServer::builder()
//!     .file("/org/repo/resolve/main/model.gguf", b"GGUF...".to_vec())
//!     .cut_first(1)
//!     .start()
//!     .await?;
//! // ... point the downloader at server.url() ...
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert!(server.requests().is_empty());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The longest request head read; a longer one is dropped unanswered.
const MAX_HEAD: usize = 16 * 1024;

/// A request the download server received.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadRequest {
    /// The path asked for.
    pub path: String,
    /// The `Range` header, as sent.
    pub range: Option<String>,
}

/// Settings for a [`DownloadServer`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct DownloadServerBuilder {
    files: HashMap<String, Arc<Vec<u8>>>,
    redirects: HashMap<String, String>,
    cut_first: usize,
    ignore_range: bool,
    delay: Duration,
}

impl DownloadServerBuilder {
    /// Serves `bytes` at `path` (with its leading `/`); other paths are 404.
    pub fn file(mut self, path: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.files.insert(path.into(), Arc::new(bytes));
        self
    }

    /// Answers `from` with `302 Found` to `to` (a path of this server).
    pub fn redirect(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.redirects.insert(from.into(), to.into());
        self
    }

    /// The first `n` file answers send half their body and close the connection.
    pub fn cut_first(mut self, n: usize) -> Self {
        self.cut_first = n;
        self
    }

    /// Ignores `Range`: every file answer is `200` with the whole file.
    pub fn ignore_range(mut self) -> Self {
        self.ignore_range = true;
        self
    }

    /// Waits this long before each file's body (so that concurrent downloads overlap).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Binds a free port on 127.0.0.1 and starts serving on the current Tokio runtime.
    pub async fn start(self) -> std::io::Result<DownloadServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Shared { settings: self, seen: Mutex::default(), served: Mutex::new(0) });
        let (shutdown, watcher) = watch::channel(false);
        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut stop = watcher;
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.changed() => return,
                };
                let Ok((socket, _)) = accepted else { continue };
                tokio::spawn(answer(socket, Arc::clone(&accept_state)));
            }
        });
        Ok(DownloadServer { addr, state, shutdown })
    }
}

#[derive(Debug)]
struct Shared {
    settings: DownloadServerBuilder,
    seen: Mutex<Vec<DownloadRequest>>,
    /// File answers sent so far (for [`DownloadServerBuilder::cut_first`]).
    served: Mutex<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running server. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct DownloadServer {
    addr: SocketAddr,
    state: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Drop for DownloadServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl DownloadServer {
    /// Settings: no files yet, no faults.
    pub fn builder() -> DownloadServerBuilder {
        DownloadServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash (Hugging Face's endpoint form).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<DownloadRequest> {
        lock(&self.state.seen).clone()
    }
}

/// Reads one request head and answers it; the connection is closed after the answer.
async fn answer(mut socket: TcpStream, state: Arc<Shared>) {
    let Some(head) = read_head(&mut socket).await else { return };
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let range = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("range")))
        .map(|(_, v)| v.trim().to_owned());
    lock(&state.seen).push(DownloadRequest { path: path.clone(), range: range.clone() });
    let settings = &state.settings;
    let response = if let Some(to) = settings.redirects.get(&path) {
        format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()
    } else if let Some(data) = settings.files.get(&path) {
        let start = range
            .as_deref()
            .filter(|_| !settings.ignore_range)
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
            .unwrap_or(0);
        if start >= data.len() && start > 0 {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\ncontent-range: bytes */{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                data.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            return;
        }
        let body = data.get(start..).unwrap_or_default();
        let head = if start > 0 {
            format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                data.len() - 1,
                data.len(),
                body.len()
            )
        } else {
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len())
        };
        let cut = {
            let mut served = lock(&state.served);
            *served += 1;
            *served <= settings.cut_first
        };
        if !settings.delay.is_zero() {
            tokio::time::sleep(settings.delay).await;
        }
        let body = if cut { &body[..body.len() / 2] } else { body };
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        out
    } else {
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found".to_vec()
    };
    let _ = socket.write_all(&response).await;
    let _ = socket.shutdown().await;
}

/// The request head up to its blank line, as text; `None` when the peer closed first or the
/// head is over [`MAX_HEAD`].
async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD || socket.read(&mut byte).await.unwrap_or(0) == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}
