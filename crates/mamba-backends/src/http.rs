//! The transport: a pooled hyper client, the timeouts around it, and body reading.
//!
//! hyper is used directly, without reqwest or tower: a request here is one pooled connection
//! checkout, one write and one read, and the only per-request allocations are the body and
//! the response (the benchmarks in BENCHMARKS.md measured what that buys).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::{Error, ErrorKind};

#[cfg(feature = "rustls")]
type TlsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A pooled HTTP/1.1 and HTTP/2 client (HTTPS through rustls with the `rustls` feature).
///
/// Cloning is cheap and clones share the connection pool, so several backends can share one
/// client with [`OpenAICompatibleBackendBuilder::http_client`](crate::OpenAICompatibleBackendBuilder::http_client).
/// It needs a Tokio runtime with I/O and time enabled.
///
/// `http://` URLs go through a plain connector; the TLS connector (and its root store) is
/// built on the first `https://` request. Keeping them apart matters: the TLS connector's
/// connect future is several KiB larger, for every connection, even for plain HTTP.
#[derive(Clone)]
pub struct HttpClient {
    plain: Client<HttpConnector, Full<Bytes>>,
    #[cfg(feature = "rustls")]
    tls: std::sync::Arc<std::sync::OnceLock<Client<TlsConnector, Full<Bytes>>>>,
    settings: HttpClientBuilder,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// Settings of an [`HttpClient`].
#[derive(Clone, Debug)]
#[must_use]
pub struct HttpClientBuilder {
    connect_timeout: Option<Duration>,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    read_buf_size: Option<usize>,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder {
            connect_timeout: Some(Duration::from_secs(60)),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: usize::MAX,
            read_buf_size: None,
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

    /// How long an idle pooled connection is kept. Default 90 s.
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// How many idle connections are kept per host. Default: no limit.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// A fixed HTTP/1 read buffer size per connection in bytes (hyper's default grows from
    /// 8 KiB). Smaller saves memory with many open streams; answers larger than it take more
    /// reads.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buf_size = Some(bytes.max(1024));
        self
    }

    /// Builds the client. No I/O happens until the first request.
    pub fn build(self) -> HttpClient {
        HttpClient {
            plain: self.client(self.connector()),
            #[cfg(feature = "rustls")]
            tls: std::sync::Arc::default(),
            settings: self,
        }
    }

    fn connector(&self) -> HttpConnector {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(self.connect_timeout);
        http.enforce_http(false);
        http
    }

    fn client<C>(&self, connector: C) -> Client<C, Full<Bytes>>
    where
        C: hyper_util::client::legacy::connect::Connect + Clone,
    {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        if let Some(size) = self.read_buf_size {
            builder.http1_read_buf_exact_size(size);
        }
        builder.build(connector)
    }

    #[cfg(feature = "rustls")]
    fn tls_client(&self) -> Client<TlsConnector, Full<Bytes>> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_webpki_roots(provider) {
            Ok(builder) => builder,
            // Only a provider without TLS 1.2 and 1.3 fails here; ring has both.
            Err(e) => unreachable!("ring supports the default TLS versions: {e}"),
        };
        self.client(builder.https_or_http().enable_http1().enable_http2().wrap_connector(self.connector()))
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
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

    /// Sends a request and waits for the response head.
    pub(crate) fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> impl Future<Output = Result<http::Response<Incoming>, Error>> + Send + 'static {
        #[cfg(feature = "rustls")]
        if request.uri().scheme_str() == Some("https") {
            let future = self.tls.get_or_init(|| self.settings.tls_client()).request(request);
            return futures_util::future::Either::Left(async move { future.await.map_err(transport_error) });
        }
        let future = self.plain.request(request);
        futures_util::future::Either::Right(async move { future.await.map_err(transport_error) })
    }
}

/// The innermost message of an error chain ("Connection refused (os error 111)").
pub(crate) fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn chain_has_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        current = err.source();
    }
    false
}

fn transport_error(e: hyper_util::client::legacy::Error) -> Error {
    let cause = root_cause(&e);
    if e.is_connect() {
        if chain_has_timeout(&e) {
            return Error::new(ErrorKind::Timeout, format!("connect timed out: {cause}")).with_source(e);
        }
        return Error::new(ErrorKind::Connect, format!("could not connect: {cause}")).with_source(e);
    }
    Error::new(ErrorKind::Connect, format!("the connection failed before a response: {cause}")).with_source(e)
}

/// A body that broke while being read.
pub(crate) fn body_error(e: hyper::Error) -> Error {
    let cause = root_cause(&e);
    Error::stream(format!("the connection broke while reading the response: {cause}")).with_source(e)
}

/// Reads a whole body, allowing `idle` between frames and at most `limit` bytes.
pub(crate) async fn read_body(body: &mut Incoming, idle: Duration, limit: usize) -> Result<Bytes, Error> {
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => return Err(body_error(e)),
            Ok(None) => break,
            Err(_) => {
                return Err(Error::timeout(format!("no data for {} while reading the response", fmt_duration(idle))))
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(f.len() + data.len() * 2);
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
        let len = rest.as_ref().map_or_else(|| first.as_ref().map_or(0, Bytes::len), BytesMut::len);
        if len > limit {
            return Err(Error::decode(format!("the response is larger than {limit} bytes")));
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(first), None) => first,
        (None, None) => Bytes::new(),
    })
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
}
