//! [`ReqwestTransport`]: the [`Transport`] seam over reqwest (feature `reqwest`).

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::error::{Error, ErrorKind};
use crate::transport::{Transport, TransportRequest, TransportResponse};

/// Sends the backend's requests with a [`reqwest::Client`]: HTTP/2 (negotiated by ALPN, or
/// prior knowledge when the client is built so), reqwest's proxy and TLS settings and its
/// middleware-wrapped clients. Timeouts: the connect and response-head timeouts of each
/// request bound `send` together (reqwest has no per-request connect timeout); idle and total
/// timeouts are the backend's, as with the built-in client.
///
/// ```
/// # #[cfg(feature = "reqwest")] {
/// use mamba_backends::transport::ReqwestTransport;
/// use mamba_backends::OpenAICompatibleBackend;
///
/// let backend = OpenAICompatibleBackend::builder("gpt-4o")
///     .transport(ReqwestTransport::default())
///     .build()?;
/// # }
/// # Ok::<(), mamba_backends::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl Default for ReqwestTransport {
    /// A reqwest client with its defaults (proxies from the environment, HTTP/2 by ALPN),
    /// except redirects: not followed, so that they become the backend's error that says
    /// where the server points, as with the built-in client.
    fn default() -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build();
        ReqwestTransport { client: client.unwrap_or_default() }
    }
}

impl ReqwestTransport {
    /// A transport over `client`. Build it with `redirect(reqwest::redirect::Policy::none())`
    /// to have redirects reported rather than followed.
    pub fn new(client: reqwest::Client) -> ReqwestTransport {
        ReqwestTransport { client }
    }
}

fn convert(e: reqwest::Error) -> Error {
    // The URL is left out: it may carry a query key.
    let e = e.without_url();
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() || e.is_request() {
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Stream
    } else {
        ErrorKind::Connect
    };
    let mut message = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    Error::new(kind, message).with_source(e)
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, request: TransportRequest<'_>) -> Result<TransportResponse, Error> {
        let method = reqwest::Method::from_bytes(request.method().as_bytes())
            .map_err(|e| Error::config(format!("invalid method {}", request.method())).with_source(e))?;
        let mut builder = self.client.request(method, request.uri().to_string());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body() {
            builder = builder.header(http::header::CONTENT_TYPE, request.content_type()).body(body.clone());
        }
        let bound = match (request.connect_timeout(), request.head_timeout()) {
            (Some(c), Some(h)) => Some(c + h),
            (c, h) => c.or(h),
        };
        let sending = builder.send();
        let response = match bound {
            Some(t) => match tokio::time::timeout(t, sending).await {
                Ok(result) => result.map_err(convert)?,
                Err(_) => {
                    let e = Error::timeout(format!("no response headers within {}", crate::http::fmt_duration(t)));
                    // Whether the request went out is unknown here; a POST is assumed sent.
                    return Err(if request.method() == "GET" { e } else { e.with_unanswered() });
                }
            },
            None => sending.await.map_err(convert)?,
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes_stream().map(|piece| piece.map_err(convert));
        Ok(TransportResponse::new(status, headers, Box::pin(body)))
    }
}
