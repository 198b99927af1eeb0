//! The transport: a small HTTP/1.1 client with a connection pool, written for this one job.
//!
//! Why not hyper (or reqwest on top of it)? A chat client sends one request per connection at
//! a time and then reads one body, usually an event stream, to its end. hyper's client spends,
//! per connection, a spawned task, a request channel (about 9 KiB), and fixed 8 KiB read and
//! write buffers, and every event crosses from that task to the caller. Here the caller's own
//! future drives the socket: the response head is parsed with `httparse` (the parser hyper
//! uses), the body is read straight into the caller's buffer (the SSE decoder's, or the JSON
//! body's) and chunked framing is removed in place. BENCHMARKS.md has the measurements that
//! decided it: less CPU per request and per stream than a pooled hyper client, and less than
//! half its memory per open stream.
//!
//! What it does: HTTP/1.1 keep-alive with a pool per host and proxy (idle connections reused
//! LIFO, dropped after an idle timeout, and reaped when their server closed them),
//! `Content-Length`, chunked and close-delimited bodies (chunk extensions and trailers capped
//! at 16 KiB, at most 10 interim 1xx answers), TLS through rustls (`rustls` feature; ALPN
//! `http/1.1`; OS and webpki roots, extra roots, client certificates), Happy Eyeballs over
//! every resolved address, proxies (HTTP absolute form, `CONNECT`, SOCKS5) from the
//! environment or the builder. An idle connection is checked before reuse (closed by the
//! server, or sent something unasked: not reused), and a request whose sending fails on a
//! pooled connection goes once more on a new one; once a request is sent, it is never resent
//! here. A server that answers before the request body is all sent (413, 401) has its answer
//! read. What it does not do: HTTP/2 (use the `reqwest` feature's transport), compression
//! (it sends no `Accept-Encoding`), redirects (the backend reports them).

mod auth;
mod body;
mod chunked;
mod conn;
mod connect;
pub(crate) mod proxy;
#[cfg(feature = "rustls")]
mod tls;
pub(crate) mod url;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub(crate) use auth::split_userinfo;
pub(crate) use body::{Body, NativeBody};
use conn::{write_request, Conn, Failure, Io};
pub use proxy::Proxy;
#[cfg(feature = "rustls")]
pub use tls::{AcceptAnyCertificate, Certificate, Identity};

use crate::error::{Error, ErrorKind};

/// A pooled HTTP/1.1 client (HTTPS through rustls with the `rustls` feature).
///
/// Cloning is cheap and clones share the connection pool, so several backends can share one
/// client with [`OpenAICompatibleBackendBuilder::http_client`](crate::backend::OpenAICompatibleBackendBuilder::http_client).
/// It needs a Tokio runtime with I/O and time enabled.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

/// Settings of an [`HttpClient`].
#[derive(Clone, Debug)]
#[must_use]
pub struct HttpClientBuilder {
    connect_timeout: Option<Duration>,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    read_buf_size: usize,
    /// How often idle connections are checked for servers that closed them.
    reap_interval: Duration,
    #[cfg(feature = "rustls")]
    tls: tls::TlsSettings,
    proxy: ProxySetting,
}

/// Where the proxy settings come from.
#[derive(Clone, Debug)]
enum ProxySetting {
    Env,
    None,
    Given(proxy::Proxies),
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder {
            connect_timeout: Some(Duration::from_secs(60)),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: usize::MAX,
            read_buf_size: 4 * 1024,
            reap_interval: Duration::from_secs(5),
            #[cfg(feature = "rustls")]
            tls: tls::TlsSettings::default(),
            proxy: ProxySetting::Env,
        }
    }
}

impl HttpClientBuilder {
    /// Time allowed to open a TCP connection (and finish TLS). Default 60 s; `None` waits for
    /// the operating system.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle pooled connection is kept. Default 90 s; `None` keeps it until the
    /// server closes it.
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// How many idle connections are kept per host. Default: no limit.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// The size of a connection's buffer for response heads (and bodies shorter than it).
    /// Default 4 KiB. A read that fills it doubles it for the connection's next answer (up to
    /// 16 KiB), so answers of a few KiB sent at once come in one read each while slow streams
    /// keep the small buffer; it also grows when a head needs more.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buf_size = bytes.max(512);
        self
    }

    /// Trusts `cert` (a corporate CA, the CA of a self-signed server) besides the built-in
    /// roots. Environment alternative: `SSL_CERT_FILE` / `SSL_CERT_DIR`, read with the OS roots.
    #[cfg(feature = "rustls")]
    pub fn add_root_certificate(mut self, cert: Certificate) -> Self {
        self.tls.roots.push(cert);
        self
    }

    /// Whether the built-in roots are trusted: the operating system's (which honour
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`) and the Mozilla roots of `webpki-roots`. Default on;
    /// off trusts only the roots given with [`add_root_certificate`](Self::add_root_certificate).
    #[cfg(feature = "rustls")]
    pub fn tls_built_in_roots(mut self, yes: bool) -> Self {
        self.tls.built_in_roots = yes;
        self
    }

    /// A client certificate and key, sent to servers that ask for one (mutual TLS).
    #[cfg(feature = "rustls")]
    pub fn identity(mut self, identity: Identity) -> Self {
        self.tls.identity = Some(identity);
        self
    }

    /// Turns off the check of the server's certificate: HTTPS to a development server with a
    /// self-signed certificate, without its CA. Anyone on the path can then read and change
    /// the traffic, the API key included, so it takes a value whose name says so, and the
    /// client logs a warning. Prefer [`add_root_certificate`](Self::add_root_certificate).
    #[cfg(feature = "rustls")]
    pub fn dangerously_accept_any_certificate(mut self, acknowledgement: AcceptAnyCertificate) -> Self {
        let _ = acknowledgement;
        self.tls.accept_any = true;
        self
    }

    /// Sends requests through a proxy (replacing the environment's settings).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxySetting::Given(proxy.proxies);
        self
    }

    /// Connects directly, whatever the environment says.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxySetting::None;
        self
    }

    /// Takes the proxies from the environment, the default: `HTTP_PROXY`, `HTTPS_PROXY`,
    /// `ALL_PROXY` (and their lower-case forms, which win), with `NO_PROXY` exceptions
    /// (domains and their subdomains, IPs, CIDR ranges, `*`), read once when the client is
    /// built. Upper-case `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set (CGI, "httpoxy").
    pub fn proxy_from_env(mut self) -> Self {
        self.proxy = ProxySetting::Env;
        self
    }

    /// Builds the client. No I/O happens until the first request; the proxy environment is
    /// read here.
    pub fn build(self) -> HttpClient {
        let proxies = match &self.proxy {
            ProxySetting::Env => Some(proxy::Proxies::from_env(|name| std::env::var(name).ok())),
            ProxySetting::None => None,
            ProxySetting::Given(p) => Some(p.clone()),
        }
        .filter(|p| !p.is_empty());
        HttpClient {
            inner: Arc::new(Inner {
                proxies,
                settings: self,
                idle: Mutex::new(HashMap::new()),
                reaping: std::sync::atomic::AtomicBool::new(false),
                #[cfg(feature = "rustls")]
                tls: std::sync::OnceLock::new(),
            }),
        }
    }
}

/// Where a connection goes: scheme, host and port, and the proxy it goes through.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    https: bool,
    host: String,
    port: u16,
    proxy: Option<Arc<proxy::ProxyServer>>,
}

impl Key {
    fn of(uri: &Uri) -> Result<Key, Error> {
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(Error::config(format!("unsupported URL {uri}: only http and https"))),
        };
        let host = uri.host().ok_or_else(|| Error::config(format!("no host in {uri}")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let port = match uri.port() {
            Some(port) => port.as_u16(),
            // `Uri` reads a port it cannot hold (`:99999`) as none: never the default port.
            None if has_port(uri) => {
                return Err(Error::config(format!(
                    "invalid URL {:?}: the port must be between 1 and 65535",
                    crate::redact::redact_url(&uri.to_string())
                )))
            }
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
        };
        if port == 0 {
            return Err(Error::config("invalid URL: port 0"));
        }
        Ok(Key { https, host, port, proxy: None })
    }
}

/// Whether the authority of `uri` writes a port (a `:` after the host, outside IPv6 brackets).
fn has_port(uri: &Uri) -> bool {
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_brackets = host_port.rsplit_once(']').map_or(host_port, |(_, rest)| rest);
    after_brackets.contains(':')
}

struct Idle {
    conn: Conn,
    since: Instant,
}

pub(crate) struct Inner {
    settings: HttpClientBuilder,
    /// The proxies, `None` when there are none (the common case costs one branch).
    proxies: Option<proxy::Proxies>,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
    /// A reaper task runs (set and cleared under the `idle` lock).
    reaping: std::sync::atomic::AtomicBool,
    /// Built at the first HTTPS connection (reading the OS roots takes a few milliseconds).
    #[cfg(feature = "rustls")]
    tls: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl Inner {
    fn idle(&self) -> MutexGuard<'_, HashMap<Key, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, entry: &Idle, now: Instant) -> bool {
        self.settings.pool_idle_timeout.is_none_or(|t| now.duration_since(entry.since) < t)
    }

    /// Closes the timed-out connections of one host's idle list. The list is in the order the
    /// connections went idle (pushed at the end, taken from the end), so the expired ones are
    /// a prefix: only they are looked at, not every idle connection on every request (with
    /// hundreds of idle connections that scan was a visible part of a request's CPU).
    fn drop_expired(&self, list: &mut Vec<Idle>, now: Instant) {
        let expired = list.iter().position(|entry| self.fresh(entry, now)).unwrap_or(list.len());
        list.drain(..expired);
    }

    /// An idle connection to reuse, unless the last one failed (`pooled` false): then a new
    /// connection is made, and the other idle ones stay in the pool.
    fn acquire(&self, key: &Key, pooled: bool) -> Option<Conn> {
        if pooled {
            self.checkout(key)
        } else {
            None
        }
    }

    /// The most recently used idle connection that has not timed out and that the server has
    /// not closed. Expired connections are closed on the way.
    fn checkout(&self, key: &Key) -> Option<Conn> {
        let mut idle = self.idle();
        let list = idle.get_mut(key)?;
        self.drop_expired(list, Instant::now());
        while let Some(mut entry) = list.pop() {
            if entry.conn.is_reusable() {
                return Some(entry.conn);
            }
        }
        None
    }

    pub(crate) fn put_back(this: &Arc<Inner>, key: Key, mut conn: Conn) {
        // A huge request (images) must not keep its buffer for the connection's lifetime.
        if conn.wbuf.capacity() > 64 * 1024 {
            conn.wbuf = Vec::new();
        }
        let mut idle = this.idle();
        let now = Instant::now();
        let list = idle.entry(key).or_default();
        this.drop_expired(list, now);
        if list.len() < this.settings.pool_max_idle_per_host {
            list.push(Idle { conn, since: now });
        }
        if !this.reaping.swap(true, Ordering::Relaxed) {
            Inner::spawn_reaper(this);
        }
    }

    /// Closes, every `reap_interval`, idle connections that timed out or that their server
    /// closed (which would otherwise sit in CLOSE_WAIT until their host is used again). The
    /// task ends when the pool is empty or the client is dropped.
    fn spawn_reaper(this: &Arc<Inner>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            this.reaping.store(false, Ordering::Relaxed);
            return;
        };
        let weak = Arc::downgrade(this);
        let interval = this.settings.reap_interval;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.reap() == 0 {
                    return;
                }
            }
        });
    }

    /// Drops dead and expired idle connections; returns how many are left. With none left
    /// the reaper stops (under the lock, so a `put_back` after it starts a new one).
    fn reap(&self) -> usize {
        let mut idle = self.idle();
        let now = Instant::now();
        idle.retain(|_, list| {
            list.retain_mut(|entry| self.fresh(entry, now) && entry.conn.is_reusable());
            !list.is_empty()
        });
        let left = idle.values().map(Vec::len).sum();
        if left == 0 {
            self.reaping.store(false, Ordering::Relaxed);
        }
        left
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle().values().map(Vec::len).sum()
    }

    /// Resolves, races the addresses (Happy Eyeballs) and finishes TLS, all within the
    /// connect timeout.
    async fn connect(&self, key: &Key, timeout: Option<Duration>) -> Result<Conn, Error> {
        let attempt = async {
            let stream = match &key.proxy {
                None => self.open(&key.host, key.port).await?,
                Some(proxy) => self.through(key, proxy).await?,
            };
            let io = self.wrap(key, stream).await?;
            Ok(Conn::new(io, self.settings.read_buf_size))
        };
        match timeout.or(self.settings.connect_timeout) {
            Some(t) => match tokio::time::timeout(t, attempt).await {
                Ok(result) => result,
                Err(_) => Err(Error::timeout(format!(
                    "connecting to {}:{} timed out after {}",
                    key.host,
                    key.port,
                    fmt_duration(t)
                ))),
            },
            None => attempt.await,
        }
    }

    /// A TCP connection to `host:port`: resolved, and its addresses raced.
    async fn open(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let addrs = connect::resolve(host, port)
            .await
            .map_err(|e| Error::new(ErrorKind::Connect, format!("could not resolve {host}: {e}")).with_source(e))?;
        let stream = connect::race(&connect::interleave(addrs), connect::STAGGER).await.map_err(|(addr, e)| {
            Error::new(ErrorKind::Connect, format!("could not connect to {host} ({addr}): {e}")).with_source(e)
        })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A TCP stream to the target through `proxy`: a `CONNECT` tunnel for https targets of an
    /// HTTP proxy (http ones go in absolute form on the proxy connection itself), or SOCKS5.
    async fn through(&self, key: &Key, proxy: &proxy::ProxyServer) -> Result<TcpStream, Error> {
        let mut stream = self.open(&proxy.host, proxy.port).await.map_err(|e| {
            Error::new(e.kind(), format!("could not reach the proxy {proxy}: {}", e.message()))
                .with_retryable(e.is_retryable())
        })?;
        let target = if key.host.contains(':') {
            format!("[{}]:{}", key.host, key.port)
        } else {
            format!("{}:{}", key.host, key.port)
        };
        match proxy.kind {
            proxy::Kind::Http if key.https => {
                proxy::connect_tunnel(&mut stream, proxy, &target).await?;
                Ok(stream)
            }
            proxy::Kind::Http => Ok(stream),
            proxy::Kind::Socks5 | proxy::Kind::Socks5h => {
                let failed = |e: tokio_socks::Error| {
                    let refused = matches!(
                        e,
                        tokio_socks::Error::PasswordAuthFailure(_)
                            | tokio_socks::Error::NoAcceptableAuthMethods
                            | tokio_socks::Error::ConnectionNotAllowedByRuleset
                    );
                    Error::new(
                        ErrorKind::Connect,
                        format!("the SOCKS5 proxy {proxy} refused a connection to {target}: {e}"),
                    )
                    .with_retryable(!refused)
                    .with_source(e)
                };
                let socks = if proxy.kind == proxy::Kind::Socks5h {
                    let target = (key.host.as_str(), key.port);
                    match &proxy.auth {
                        Some(a) => {
                            tokio_socks::tcp::Socks5Stream::connect_with_password_and_socket(
                                stream,
                                target,
                                &a.user,
                                &a.password,
                            )
                            .await
                        }
                        None => tokio_socks::tcp::Socks5Stream::connect_with_socket(stream, target).await,
                    }
                } else {
                    let addrs = connect::resolve(&key.host, key.port).await.map_err(|e| {
                        Error::new(ErrorKind::Connect, format!("could not resolve {}: {e}", key.host)).with_source(e)
                    })?;
                    let addr = connect::interleave(addrs)[0];
                    match &proxy.auth {
                        Some(a) => {
                            tokio_socks::tcp::Socks5Stream::connect_with_password_and_socket(
                                stream,
                                addr,
                                &a.user,
                                &a.password,
                            )
                            .await
                        }
                        None => tokio_socks::tcp::Socks5Stream::connect_with_socket(stream, addr).await,
                    }
                };
                Ok(socks.map_err(failed)?.into_inner())
            }
        }
    }

    #[cfg(feature = "rustls")]
    async fn wrap(&self, key: &Key, stream: TcpStream) -> Result<Io, Error> {
        if !key.https {
            return Ok(Io::Tcp(stream));
        }
        let connector = match self.tls.get_or_init(|| self.settings.tls.connector().map_err(|e| e.message().to_owned()))
        {
            Ok(connector) => connector,
            Err(message) => return Err(Error::config(message.clone())),
        };
        let name = rustls::pki_types::ServerName::try_from(key.host.clone())
            .map_err(|e| Error::config(format!("invalid TLS server name {:?}", key.host)).with_source(e))?;
        let tls = connector.connect(name, stream).await.map_err(|e| match tls::describe(&key.host, &e) {
            Some(error) => error.with_source(e),
            None => Error::new(ErrorKind::Connect, format!("the TLS handshake with {} failed: {e}", key.host))
                .with_source(e),
        })?;
        Ok(Io::Tls(Box::new(tls)))
    }

    #[cfg(not(feature = "rustls"))]
    async fn wrap(&self, key: &Key, stream: TcpStream) -> Result<Io, Error> {
        if key.https {
            return Err(Error::config("https URLs need the `rustls` feature of mamba-backends"));
        }
        Ok(Io::Tcp(stream))
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

/// A request to send.
pub(crate) struct Request<'a> {
    pub(crate) method: &'static str,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a [(HeaderName, HeaderValue)],
    /// A body and its content type.
    pub(crate) body: Option<(&'a [u8], &'a str)>,
    /// Time allowed, once connected, to send the request and receive the response head.
    pub(crate) head_timeout: Option<Duration>,
    /// Overrides the client's connect timeout.
    pub(crate) connect_timeout: Option<Duration>,
}

/// A response: its head, and the body still to be read.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
}

impl HttpClient {
    /// A client with default settings.
    pub fn new() -> HttpClient {
        HttpClientBuilder::default().build()
    }

    /// Settings for a client.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// Whether `https://` URLs can be used (the `rustls` feature).
    pub(crate) fn supports_https() -> bool {
        cfg!(feature = "rustls")
    }

    /// Sends a request and reads the response head.
    pub(crate) async fn send(&self, request: &Request<'_>) -> Result<Response, Error> {
        let mut key = Key::of(request.uri)?;
        let mut path = request.uri.path_and_query().map_or("/", |p| p.as_str());
        // The Host header: host and port as written, never credentials of a user@host URL.
        let authority = request.uri.authority().map_or("", |a| a.as_str());
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let absolute: String;
        let mut headers = std::borrow::Cow::Borrowed(request.headers);
        if let Some(proxies) = &self.inner.proxies {
            proxies.check_target(key.https, &key.host)?;
            key.proxy = proxies.for_target(key.https, &key.host).cloned();
            if let Some(p) = key.proxy.as_deref().filter(|p| p.kind == proxy::Kind::Http && !key.https) {
                // Through an HTTP proxy, an http request names its whole target.
                absolute = format!("http://{authority}{path}");
                path = &absolute;
                if let Some(auth) = p.authorization()? {
                    headers.to_mut().push((http::header::PROXY_AUTHORIZATION, auth));
                }
            }
        }
        let headers = &*headers;
        let mut pooled = true;
        loop {
            let (mut conn, reused) = match self.inner.acquire(&key, pooled) {
                Some(conn) => (conn, true),
                None => (self.inner.connect(&key, request.connect_timeout).await?, false),
            };
            let tail = write_request(&mut conn.wbuf, request.method, path, authority, headers, request.body);
            let tail = request.body.map_or(&[][..], |(b, _)| &b[b.len() - tail..]);
            let exchange = conn.exchange(request.method == "HEAD", tail);
            let result = match request.head_timeout {
                Some(t) => match tokio::time::timeout(t, exchange).await {
                    Ok(result) => result,
                    Err(_) => return Err(head_timeout_error(request.method, t, conn.sent)),
                },
                None => exchange.await,
            };
            // An HTTP proxy's own refusal of an http request (an https one was refused at
            // CONNECT).
            if let (Ok(head), Some(p), false) = (&result, key.proxy.as_deref(), key.https) {
                if head.status == 407 {
                    return Err(proxy::refusal(p, 407, "the request"));
                }
            }
            match result {
                Ok(head) => {
                    let body = Body::Native(NativeBody::new(
                        conn,
                        head.framing,
                        head.keep_alive,
                        Arc::clone(&self.inner),
                        key,
                    ));
                    return Ok(Response { status: head.status, headers: head.headers, body });
                }
                // A pooled connection the server closed as the request went out: the request
                // was not sent, and goes once more, on a new connection.
                Err(Failure::NoResponse(e)) if reused => {
                    tracing::debug!(error = %e, "a pooled connection was closed by the server; reconnecting");
                    pooled = false;
                }
                Err(Failure::NoResponse(e) | Failure::Failed(e)) => return Err(e),
            }
        }
    }
}

/// The error of a response head that did not come in time. A request that went out whole is
/// being worked on: unless it is a GET, it is marked unanswered, so that it is not resent
/// unless the caller asked for that.
fn head_timeout_error(method: &str, t: Duration, sent: bool) -> Error {
    if !sent {
        return Error::timeout(format!("the request could not be sent within {}", fmt_duration(t)));
    }
    let e = Error::timeout(format!("no response headers within {} after the request was sent", fmt_duration(t)));
    if matches!(method, "GET" | "HEAD") {
        e
    } else {
        e.with_unanswered()
    }
}

/// A response of [`HttpClient::get`]: the head, and the body read piece by piece.
///
/// Dropping it before the end of the body closes the connection.
#[derive(Debug)]
pub struct HttpResponse {
    status: u16,
    headers: HeaderMap,
    body: Body,
}

impl HttpResponse {
    pub(crate) fn from_response(response: Response) -> HttpResponse {
        HttpResponse { status: response.status, headers: response.headers, body: response.body }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Appends the next piece of the body to `buf` and returns its length; `0` at the end.
    /// Waits at most `idle` for data.
    pub async fn read_chunk(&mut self, buf: &mut Vec<u8>, idle: Duration) -> Result<usize, Error> {
        self.body.read_some(buf, idle).await
    }
}

impl HttpClient {
    /// `GET url` with extra `headers`, for downloads and probes: the head once it arrives
    /// (within the client's connect timeout plus `head_timeout`), with any status; the body is
    /// read with [`HttpResponse::read_chunk`]. Redirects are not followed.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        head_timeout: Duration,
    ) -> Result<HttpResponse, Error> {
        url::check(url, "URL", &["http", "https"])?;
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::config(format!("invalid URL {:?}", crate::redact::redact_url(url))).with_source(e))?;
        let headers = headers
            .iter()
            .map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| Error::config(format!("invalid header name {name:?}")).with_source(e))?;
                check_user_header(&name)?;
                let value = HeaderValue::from_str(value)
                    .map_err(|e| Error::config(format!("invalid value for header {name}")).with_source(e))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let request = Request {
            method: "GET",
            uri: &uri,
            headers: &headers,
            body: None,
            head_timeout: Some(head_timeout),
            connect_timeout: None,
        };
        let response = self.send(&request).await?;
        Ok(HttpResponse { status: response.status, headers: response.headers, body: response.body })
    }
}

/// Refuses headers the transport writes itself: sent twice, they make the request ambiguous
/// (a smuggling risk), and the server picks either.
pub(crate) fn check_user_header(name: &HeaderName) -> Result<(), Error> {
    use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    if [HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION].contains(name) {
        return Err(Error::config(format!(
            "the {name} header is written by the transport from the URL and the body; remove it"
        )));
    }
    Ok(())
}

/// "1.5s", "250ms", "2m".
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_short() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn client_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<HttpClient>();
    }

    /// A server that answers every request on a connection with a keep-alive 200 whose body
    /// is `len` bytes of `x` (head and body in one write) and, after `close_after` answers,
    /// closes the connection (without saying so).
    async fn server(len: usize, close_after: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let mut answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n").into_bytes();
        answer.resize(answer.len() + len, b'x');
        let answer = std::sync::Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    for _ in 0..close_after {
                        if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let _ = socket.write_all(&answer).await;
                    }
                });
            }
        });
        url
    }

    /// [`server`] with two-byte answers.
    async fn keep_alive_server(close_after: usize) -> String {
        server(2, close_after).await
    }

    /// GETs `url` and reads the whole body.
    async fn get_body(client: &HttpClient, url: &str) -> Vec<u8> {
        let mut r = client.get(url, &[], Duration::from_secs(5)).await.unwrap();
        let mut buf = Vec::new();
        while r.read_chunk(&mut buf, Duration::from_secs(5)).await.unwrap() > 0 {}
        buf
    }

    async fn get_all(client: &HttpClient, url: &str) {
        assert_eq!(get_body(client, url).await, b"xx");
    }

    fn idle_read_capacity(client: &HttpClient) -> usize {
        client.inner.idle().values().flatten().map(|idle| idle.conn.rbuf.capacity()).max().unwrap()
    }

    /// A connection whose reads fill its buffer (answers of a few KiB sent at once) doubles it
    /// for the next answer, up to 16 KiB; one with small answers keeps the default 4 KiB.
    #[tokio::test]
    async fn the_read_buffer_grows_for_answers_that_fill_it() {
        for (len, expect) in [(6000, 8 * 1024), (30_000, 16 * 1024), (100, 4 * 1024)] {
            let client = HttpClient::new();
            let url = server(len, usize::MAX).await;
            for _ in 0..4 {
                assert_eq!(get_body(&client, &url).await.len(), len);
            }
            assert_eq!(client.inner.idle_count(), 1);
            let capacity = idle_read_capacity(&client);
            assert!((expect..expect + 1024).contains(&capacity), "{len}-byte answers: {capacity}-byte buffer");
        }
    }

    /// Idle connections the server closed are dropped by the reaper, not kept in CLOSE_WAIT
    /// until their host is used again; the reaper stops with the pool empty.
    #[tokio::test]
    async fn reaper_closes_connections_the_server_closed() {
        let client =
            HttpClientBuilder { reap_interval: Duration::from_millis(50), ..HttpClientBuilder::default() }.build();
        let url = keep_alive_server(1).await;
        get_all(&client, &url).await;
        assert_eq!(client.inner.idle_count(), 1);
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if client.inner.idle_count() == 0 {
                break;
            }
        }
        assert_eq!(client.inner.idle_count(), 0);
        assert!(!client.inner.reaping.load(Ordering::Relaxed));
        // Healthy connections stay.
        let url = keep_alive_server(100).await;
        get_all(&client, &url).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(client.inner.idle_count(), 1);
        assert!(client.inner.reaping.load(Ordering::Relaxed));
    }

    /// The reconnect path (a pooled connection failed) makes a new connection and leaves the
    /// other idle connections in the pool.
    #[tokio::test]
    async fn reconnecting_keeps_healthy_idle_connections() {
        let client = HttpClient::new();
        let url = keep_alive_server(100).await;
        let key = Key::of(&url.parse().unwrap()).unwrap();
        get_all(&client, &url).await;
        assert_eq!(client.inner.idle_count(), 1);
        assert!(client.inner.acquire(&key, false).is_none());
        assert_eq!(client.inner.idle_count(), 1);
        assert!(client.inner.acquire(&key, true).is_some());
        assert_eq!(client.inner.idle_count(), 0);
    }

    #[tokio::test]
    async fn transport_headers_are_refused_by_get() {
        let e = HttpClient::new()
            .get("http://127.0.0.1:1/", &[("Host", "evil")], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn keys() {
        let k = Key::of(&"http://LocalHost:8080/v1".parse().unwrap()).unwrap();
        assert_eq!(k, Key { https: false, host: "localhost".into(), port: 8080, proxy: None });
        let k = Key::of(&"https://[::1]/v1".parse().unwrap()).unwrap();
        assert_eq!(k, Key { https: true, host: "::1".into(), port: 443, proxy: None });
        assert!(Key::of(&"ftp://x/".parse().unwrap()).is_err());
        // `Uri` takes `:99999` as no port; the key must not go to port 80.
        let e = Key::of(&"http://127.0.0.1:99999/v1".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("between 1 and 65535"), "{e}");
        assert!(Key::of(&"http://[::1]/v1".parse().unwrap()).is_ok());
    }

    #[tokio::test]
    async fn get_refuses_bad_ports_without_connecting() {
        let e = HttpClient::new().get("http://127.0.0.1:99999/x", &[], Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = HttpClient::new().get("http://u:sk-sec-123@h:99999/x", &[], Duration::from_secs(1)).await.unwrap_err();
        assert!(!e.to_string().contains("sk-sec-123"), "{e}");
    }
}
