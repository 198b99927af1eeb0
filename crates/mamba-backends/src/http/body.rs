//! A response body, read straight into the caller's buffer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BufMut;

use super::conn::{Conn, Framing};
use super::{Inner, Key};
use crate::error::Error;

/// The smallest and largest read into a caller's buffer; reads that fill the buffer double
/// the next one (a stream of large coalesced writes gets large reads, a trickle stays small).
const MIN_READ: usize = 2 * 1024;
const MAX_READ: usize = 64 * 1024;

/// The body of a response. Dropping it before its end closes the connection, so the server
/// stops sending; read to its end, the connection goes back to the pool.
pub(crate) struct NativeBody {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    client: Arc<Inner>,
    key: Key,
    next_read: usize,
    /// Set after an error: every later read fails too.
    failed: bool,
}

impl std::fmt::Debug for NativeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("framing", &self.framing).finish_non_exhaustive()
    }
}

fn body_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::stream(format!("{what}: {e}")).with_source(e)
}

impl NativeBody {
    pub(super) fn new(conn: Conn, framing: Framing, keep_alive: bool, client: Arc<Inner>, key: Key) -> NativeBody {
        let mut body =
            NativeBody { conn: Some(conn), framing, keep_alive, client, key, next_read: MIN_READ, failed: false };
        if matches!(body.framing, Framing::Empty) {
            body.finish(0);
        }
        body
    }

    /// The body is complete: the connection goes back to the pool if it can be reused.
    fn finish(&mut self, excess: usize) {
        let conn = self.conn.take();
        let framing = std::mem::replace(&mut self.framing, Framing::Empty);
        if let Some(conn) = conn {
            let reusable = self.keep_alive && excess == 0 && conn.rbuf.is_empty() && !matches!(framing, Framing::Close);
            if reusable {
                Inner::put_back(&self.client, self.key.clone(), conn);
            }
        }
    }

    /// Appends body bytes to `dst`: `Ready(Ok(n))` with `n > 0`, or `Ready(Ok(0))` at the end.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, dst: &mut Vec<u8>) -> Poll<Result<usize, Error>> {
        if self.failed {
            return Poll::Ready(Err(Error::stream("the response body already failed")));
        }
        let result = self.poll_read_inner(cx, dst);
        if matches!(result, Poll::Ready(Err(_))) {
            self.fail();
        }
        result
    }

    fn poll_read_inner(&mut self, cx: &mut Context<'_>, dst: &mut Vec<u8>) -> Poll<Result<usize, Error>> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(Ok(0)) };
            let start = dst.len();
            // Bytes that arrived with the head first, then the socket.
            let got = if !conn.rbuf.is_empty() {
                let take = match &self.framing {
                    Framing::Length(n) => (*n).min(conn.rbuf.len() as u64) as usize,
                    _ => conn.rbuf.len(),
                };
                dst.extend_from_slice(&conn.rbuf[..take]);
                conn.rbuf.drain(..take);
                take
            } else {
                if dst.capacity() - dst.len() < self.next_read {
                    dst.reserve(self.next_read);
                }
                let room = dst.capacity() - dst.len();
                let limit = match &self.framing {
                    Framing::Length(n) => (*n).min(room as u64) as usize,
                    _ => room,
                };
                let mut limited = (&mut *dst).limit(limit);
                match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut limited) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        self.conn = None;
                        return Poll::Ready(Err(body_error("the connection broke while reading the response", e)));
                    }
                    Poll::Ready(Ok(0)) => {
                        if matches!(self.framing, Framing::Close) {
                            self.conn = None;
                            self.framing = Framing::Empty;
                            return Poll::Ready(Ok(0));
                        }
                        self.conn = None;
                        let e = std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the server closed the connection before the body ended",
                        );
                        return Poll::Ready(Err(body_error("the response broke off", e)));
                    }
                    Poll::Ready(Ok(n)) => {
                        if n == room && self.next_read < MAX_READ {
                            self.next_read *= 2;
                        }
                        n
                    }
                }
            };
            let (data, done, excess) = match &mut self.framing {
                Framing::Length(remaining) => {
                    *remaining -= got as u64;
                    (got, *remaining == 0, 0)
                }
                Framing::Close => (got, false, 0),
                Framing::Chunked(decoder) => match decoder.decode(dst, start) {
                    Ok(decoded) => (decoded.data, decoded.done, decoded.excess),
                    Err(e) => {
                        self.conn = None;
                        return Poll::Ready(Err(body_error("the response body is not valid", e)));
                    }
                },
                Framing::Empty => (0, true, 0),
            };
            if done {
                self.finish(excess);
            }
            if data > 0 || done {
                return Poll::Ready(Ok(data));
            }
            // Only chunk framing so far: read on.
        }
    }

    /// The body's length, when the server announced one.
    fn announced_length(&self) -> Option<u64> {
        match &self.framing {
            Framing::Length(n) => Some(*n),
            _ => None,
        }
    }

    /// Gives the body up: the connection is closed and every later read fails.
    fn fail(&mut self) {
        self.conn = None;
        self.failed = true;
    }
}

/// A response body: from the built-in client (read straight into the caller's buffer), or
/// the byte stream of an injected [`Transport`](crate::transport::Transport).
pub(crate) enum Body {
    Native(NativeBody),
    Stream { stream: crate::transport::BodyStream, failed: bool },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Native(b) => b.fmt(f),
            Body::Stream { .. } => f.write_str("Body(stream)"),
        }
    }
}

impl Body {
    /// A body that has ended (a placeholder).
    pub(crate) fn empty() -> Body {
        Body::Stream { stream: Box::pin(futures_util::stream::empty()), failed: false }
    }

    /// True for a body of the built-in client (whose connection can go back to its pool).
    pub(crate) fn is_native(&self) -> bool {
        matches!(self, Body::Native(_))
    }

    /// Appends body bytes to `dst`: `Ready(Ok(n))` with `n > 0`, or `Ready(Ok(0))` at the end.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, dst: &mut Vec<u8>) -> Poll<Result<usize, Error>> {
        match self {
            Body::Native(b) => b.poll_read(cx, dst),
            Body::Stream { stream, failed } => loop {
                if *failed {
                    return Poll::Ready(Err(Error::stream("the response body already failed")));
                }
                match stream.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(Ok(0)),
                    Poll::Ready(Some(Ok(bytes))) if bytes.is_empty() => continue,
                    Poll::Ready(Some(Ok(bytes))) => {
                        dst.extend_from_slice(&bytes);
                        return Poll::Ready(Ok(bytes.len()));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        *failed = true;
                        return Poll::Ready(Err(e));
                    }
                }
            },
        }
    }

    /// Appends the next piece of the body to `out` and returns its length (`0` at the end),
    /// waiting at most `idle` for it.
    pub(crate) async fn read_some(&mut self, out: &mut Vec<u8>, idle: std::time::Duration) -> Result<usize, Error> {
        let read = std::future::poll_fn(|cx| self.poll_read(cx, out));
        match tokio::time::timeout(idle, read).await {
            Ok(result) => result,
            Err(_) => {
                Err(Error::timeout(format!("no data for {} while reading the response", super::fmt_duration(idle))))
            }
        }
    }

    /// Gives the body up: every later read fails (a native body also closes its connection).
    fn fail(&mut self) {
        match self {
            Body::Native(b) => b.fail(),
            Body::Stream { failed, .. } => *failed = true,
        }
    }

    /// Reads the whole body, allowing `idle` between reads and at most `limit` bytes. A body
    /// that times out or grows past the limit is given up.
    pub(crate) async fn read_to_end(&mut self, idle: std::time::Duration, limit: usize) -> Result<Vec<u8>, Error> {
        let announced = match self {
            Body::Native(b) => b.announced_length(),
            Body::Stream { .. } => None,
        };
        let mut out = match announced {
            Some(n) if n > limit as u64 => {
                self.fail();
                return Err(Error::decode(format!("the response is larger than {limit} bytes ({n} announced)")));
            }
            // What the server announces is reserved up to 1 MiB; more grows as it arrives.
            Some(n) => Vec::with_capacity(n.min(1024 * 1024) as usize),
            None => Vec::new(),
        };
        loop {
            let n = match self.read_some(&mut out, idle).await {
                Ok(n) => n,
                Err(e) => {
                    self.fail();
                    return Err(e);
                }
            };
            if n == 0 {
                return Ok(out);
            }
            if out.len() > limit {
                self.fail();
                return Err(Error::decode(format!("the response is larger than {limit} bytes")));
            }
        }
    }
}
