//! One HTTP/1.1 connection: writing a request, reading a response head.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BufMut;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::chunked::ChunkedDecoder;
use crate::error::{Error, ErrorKind};

/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most interim (1xx) answers accepted before the final one.
pub(crate) const MAX_INTERIM: usize = 10;

/// A TCP stream, or TLS over one.
pub(crate) enum Io {
    Tcp(TcpStream),
    #[cfg(feature = "rustls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "rustls")]
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection and its buffers, reused across requests while the server keeps it alive.
pub(crate) struct Conn {
    pub(crate) io: Io,
    /// Received bytes not consumed yet (after a head: the start of the body).
    pub(crate) rbuf: Vec<u8>,
    /// The request being written.
    pub(crate) wbuf: Vec<u8>,
    /// The whole of the last request went out.
    pub(crate) sent: bool,
    /// A read filled `rbuf`: the next exchange starts with a larger one (see `exchange`).
    filled: bool,
}

/// How far `rbuf` grows on its own: a connection whose reads fill its buffer (answers of a
/// few KiB, sent at once) doubles it up to this, so that each answer and its head come in
/// one read; one that gets small reads (slow streams) keeps the small buffer.
const READ_AHEAD_MAX: usize = 16 * 1024;

/// How the body of a response is delimited (RFC 9112, section 6.3).
#[derive(Debug)]
pub(crate) enum Framing {
    /// No body (204, 304, HEAD).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkedDecoder),
    /// Until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
}

/// Why an exchange failed.
pub(crate) enum Failure {
    /// Nothing came back and the request may not have been seen: on a reused connection this
    /// is a server that closed it while idle, and the request can go on a fresh one.
    NoResponse(Error),
    /// Anything else.
    Failed(Error),
}

impl Conn {
    pub(crate) fn new(io: Io, read_capacity: usize) -> Conn {
        Conn { io, rbuf: Vec::with_capacity(read_capacity), wbuf: Vec::new(), sent: false, filled: false }
    }

    /// Whether an idle connection is still usable: the server has not closed it and has sent
    /// nothing unasked (a `408` before closing, say). Looks without waiting.
    pub(crate) fn is_reusable(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(Pin::new(&mut self.io).poll_read(&mut cx, &mut buf), Poll::Pending)
    }

    /// Writes the request in `wbuf` and reads the response head.
    ///
    /// Only a failure to send with nothing received is [`Failure::NoResponse`]: once the
    /// request is out, the server may be working on it, and resending is for the caller's
    /// retry policy to decide. A server that answers before it has read the whole request
    /// (413, 401) gets its answer read and returned; the connection is then not reused.
    ///
    /// `tail` follows `wbuf` on the wire: a large body is sent from where it is rather than
    /// copied into `wbuf`.
    pub(crate) async fn exchange(&mut self, is_head_request: bool, tail: &[u8]) -> Result<Head, Failure> {
        self.rbuf.clear();
        if std::mem::take(&mut self.filled) && self.rbuf.capacity() < READ_AHEAD_MAX {
            self.rbuf.reserve((self.rbuf.capacity() * 2).min(READ_AHEAD_MAX));
        }
        self.sent = false;
        let mut written = 0;
        let sending = std::future::poll_fn(|cx| self.poll_send(cx, &mut written, tail)).await;
        let early = match sending {
            Ok(Sent::All) => {
                self.sent = true;
                false
            }
            Ok(Sent::Early) => true,
            Err(e) => {
                // The server may have answered and closed before reading the whole body: its
                // answer is still in the receive queue.
                return match self.read_head(is_head_request).await {
                    Ok(mut head) => {
                        head.keep_alive = false;
                        Ok(head)
                    }
                    Err((_, false)) => {
                        Err(Failure::NoResponse(io_error("the connection failed while sending the request", e)))
                    }
                    Err((error, true)) => Err(Failure::Failed(error)),
                };
            }
        };
        match self.read_head(is_head_request).await {
            Ok(mut head) => {
                if early {
                    head.keep_alive = false;
                }
                Ok(head)
            }
            // Closed as the request went out, with nothing said: a pooled connection the
            // server had given up on.
            Err((error, false)) if early => Err(Failure::NoResponse(error)),
            Err((error, _)) => Err(Failure::Failed(error)),
        }
    }

    /// Writes `wbuf` then `tail` from `written`; while the server does not take more, looks
    /// for an answer it sends early.
    fn poll_send(&mut self, cx: &mut Context<'_>, written: &mut usize, tail: &[u8]) -> Poll<io::Result<Sent>> {
        let head = self.wbuf.len();
        loop {
            if *written < head + tail.len() {
                let rest = if *written < head { &self.wbuf[*written..] } else { &tail[*written - head..] };
                match Pin::new(&mut self.io).poll_write(cx, rest) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        *written += n;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            } else {
                // TLS may still hold the last records: push them out before waiting.
                match Pin::new(&mut self.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Ok(Sent::All)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if self.rbuf.capacity() - self.rbuf.len() < 512 {
                self.rbuf.reserve(self.rbuf.capacity().max(1024));
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                // The server closed its side: whatever it said is in `rbuf`.
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Sent::Early)),
                Poll::Ready(Ok(_)) => loop {
                    match parse_head(&self.rbuf, false) {
                        // "100 Continue" and other interim answers: go on sending.
                        Ok(Some((head, consumed))) if (102..200).contains(&head.status) || head.status == 100 => {
                            self.rbuf.drain(..consumed);
                        }
                        Ok(Some(_)) | Err(_) => return Poll::Ready(Ok(Sent::Early)),
                        Ok(None) if self.rbuf.len() > MAX_HEAD => return Poll::Ready(Ok(Sent::Early)),
                        Ok(None) => break,
                    }
                },
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads a final response head, skipping interim answers. The error says whether any
    /// byte of an answer arrived.
    async fn read_head(&mut self, is_head_request: bool) -> Result<Head, (Error, bool)> {
        let mut got_any = false;
        let mut interim = 0;
        loop {
            let head = loop {
                if !self.rbuf.is_empty() {
                    got_any = true;
                    if let Some((head, consumed)) = parse_head(&self.rbuf, is_head_request).map_err(|e| (e, true))? {
                        self.rbuf.drain(..consumed);
                        break head;
                    }
                    if self.rbuf.len() > MAX_HEAD {
                        return Err((Error::decode("the response head is larger than 64 KiB"), true));
                    }
                }
                if self.rbuf.capacity() - self.rbuf.len() < 512 {
                    self.rbuf.reserve(self.rbuf.capacity().max(1024));
                }
                let read = std::future::poll_fn(|cx| {
                    tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
                });
                let n = match read.await {
                    Ok(n) => n,
                    Err(e) => {
                        let what = if got_any {
                            "the connection failed while reading the response head"
                        } else {
                            "the connection failed before a response"
                        };
                        return Err((io_error(what, e), got_any));
                    }
                };
                if n == 0 {
                    let message = if got_any {
                        "the server closed the connection in the middle of the response head"
                    } else {
                        "the server closed the connection before responding"
                    };
                    return Err((Error::new(ErrorKind::Connect, message), got_any));
                }
                if self.rbuf.len() == self.rbuf.capacity() {
                    self.filled = true;
                }
            };
            match head.status {
                // Interim answers (100 Continue, 103 Early Hints) precede the real one; a
                // server that sends them without end gets no more patience than hyper's.
                100 | 102..=199 => {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err((
                            Error::decode(format!("the server sent more than {MAX_INTERIM} interim (1xx) answers")),
                            true,
                        ));
                    }
                }
                // Nothing here asks to switch protocols.
                101 => return Err((Error::decode("the server switched protocols (HTTP 101) unasked"), true)),
                _ => return Ok(head),
            }
        }
    }
}

/// How sending ended.
enum Sent {
    /// The whole request is out.
    All,
    /// The server answered (or closed) before taking all of it.
    Early,
}

pub(crate) fn io_error(what: &str, e: io::Error) -> Error {
    #[cfg(feature = "rustls")]
    if let Some(error) = super::tls::describe("the server", &e) {
        return error.with_source(e);
    }
    let kind = if e.kind() == io::ErrorKind::TimedOut { ErrorKind::Timeout } else { ErrorKind::Connect };
    Error::new(kind, format!("{what}: {e}")).with_source(e)
}

/// Writes a request head and body into `out`; a body larger than [`INLINE_BODY`] is left
/// out, and its length returned (0 otherwise): the caller sends it after `out`.
pub(crate) fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    path_and_query: &str,
    authority: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<(&[u8], &str)>,
) -> usize {
    out.clear();
    let inline = body.is_some_and(|(b, _)| b.len() <= INLINE_BODY);
    out.reserve(192 + path_and_query.len() + body.map_or(0, |(b, t)| if inline { b.len() } else { 0 } + t.len()));
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some((body, content_type)) = body {
        out.extend_from_slice(b"content-type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.extend_from_slice(b"\r\ncontent-length: ");
        let mut digits = itoa_buf(body.len());
        out.extend_from_slice(digits.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        if inline {
            out.put_slice(body);
        } else {
            return body.len();
        }
    } else {
        out.extend_from_slice(b"\r\n");
    }
    0
}

/// Bodies up to this size are copied after the head (one write); larger ones are written
/// from where they are, after it.
pub(crate) const INLINE_BODY: usize = 256 * 1024;

/// A decimal number without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: usize) -> Digits {
    let mut d = Digits { buf: [0; 20], start: 20 };
    loop {
        d.start -= 1;
        d.buf[d.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

/// Parses a response head; `None` when more bytes are needed.
pub(crate) fn parse_head(buf: &[u8], is_head_request: bool) -> Result<Option<(Head, usize)>, Error> {
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut big: Vec<httparse::Header<'_>>;
    let mut response = httparse::Response::new(&mut storage);
    let status = match response.parse(buf) {
        Err(httparse::Error::TooManyHeaders) => {
            big = vec![httparse::EMPTY_HEADER; 512];
            response = httparse::Response::new(&mut big);
            response.parse(buf)
        }
        other => other,
    };
    let consumed = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            let start = String::from_utf8_lossy(&buf[..buf.len().min(80)]).into_owned();
            return Err(Error::decode(format!("invalid HTTP response ({e}); it starts with {start:?}")));
        }
    };
    let code = response.code.unwrap_or(0);
    let http10 = response.version == Some(0);
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = http10;
    for h in response.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else { continue };
        if name == http::header::CONTENT_LENGTH {
            let text = std::str::from_utf8(h.value).unwrap_or("").trim();
            let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            match text.parse::<u64>() {
                Ok(n) if digits && length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Err(Error::decode(format!("invalid content-length {text:?}"))),
            }
        } else if name == http::header::TRANSFER_ENCODING {
            let text = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            transfer_encoding = true;
            chunked = text.rsplit(',').next().is_some_and(|last| last.trim() == "chunked");
        } else if name == http::header::CONNECTION {
            let text = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if text.split(',').any(|t| t.trim() == "close") {
                close = true;
            } else if http10 && text.split(',').any(|t| t.trim() == "keep-alive") {
                close = false;
            }
        }
        if let Ok(value) = HeaderValue::from_bytes(h.value) {
            headers.append(name, value);
        }
    }
    // RFC 9112 6.3: a message with both is a smuggling risk; it is read, never reused.
    if transfer_encoding && length.is_some() {
        close = true;
    }
    let framing = if is_head_request || code == 204 || code == 304 || (100..200).contains(&code) {
        Framing::Empty
    } else if chunked {
        Framing::Chunked(ChunkedDecoder::default())
    } else if transfer_encoding {
        // A coding other than chunked last: the body ends with the connection.
        close = true;
        Framing::Close
    } else if let Some(n) = length {
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    } else {
        close = true;
        Framing::Close
    };
    Ok(Some((Head { status: code, headers, framing, keep_alive: !close }, consumed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let mut out = Vec::new();
        let headers = vec![(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer k"))];
        write_request(
            &mut out,
            "POST",
            "/v1/chat/completions",
            "127.0.0.1:8080",
            &headers,
            Some((b"{}", "application/json")),
        );
        assert_eq!(
            out,
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
        write_request(&mut out, "GET", "/v1/models?x=1", "h", &[], None);
        assert_eq!(out, b"GET /v1/models?x=1 HTTP/1.1\r\nhost: h\r\n\r\n");
        write_request(&mut out, "POST", "/v1/files", "h", &[], Some((b"--b--", "multipart/form-data; boundary=b")));
        assert_eq!(
            out,
            b"POST /v1/files HTTP/1.1\r\nhost: h\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 5\r\n\r\n--b--"
        );
        let big = vec![b'x'; INLINE_BODY + 1];
        let tail = write_request(&mut out, "POST", "/f", "h", &[], Some((&big, "application/octet-stream")));
        assert_eq!(tail, big.len(), "a large body is not copied");
        assert!(out.ends_with(format!("content-length: {}\r\n\r\n", big.len()).as_bytes()));
        write_request(&mut out, "DELETE", "/v1/files/f", "h", &[], None);
        assert_eq!(out, b"DELETE /v1/files/f HTTP/1.1\r\nhost: h\r\n\r\n");
        assert_eq!(itoa_buf(0).as_bytes(), b"0");
        assert_eq!(itoa_buf(1234567).as_bytes(), b"1234567");
    }

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes(), false).unwrap().unwrap().0
    }

    #[test]
    fn framing_rules() {
        assert!(matches!(head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").framing, Framing::Length(5)));
        let both = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n");
        assert!(matches!(both.framing, Framing::Chunked(_)));
        assert!(!both.keep_alive);
        let gzip = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ncontent-length: 5\r\n\r\n");
        assert!(matches!(gzip.framing, Framing::Close));
        let close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert!(matches!(close.framing, Framing::Close));
        assert!(!close.keep_alive);
        assert!(matches!(head("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n").framing, Framing::Empty));
        assert!(matches!(head("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").framing, Framing::Empty));
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").keep_alive);
        assert!(head("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n").keep_alive);
        assert_eq!(head("HTTP/1.1 529 \r\ncontent-length: 1\r\n\r\n").status, 529);
    }

    #[test]
    fn partial_and_invalid_heads() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false).unwrap().is_none());
        assert!(parse_head(b"<html>", false).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", false).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n", false).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", false).is_err());
        let many: String = (0..300).map(|i| format!("x-h{i}: v\r\n")).collect();
        let h = head(&format!("HTTP/1.1 200 OK\r\n{many}content-length: 1\r\n\r\n"));
        assert_eq!(h.headers.len(), 301);
    }
}
