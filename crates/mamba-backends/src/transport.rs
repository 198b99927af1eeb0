//! The transport seam: "send this request, give me the response head and a body stream".
//!
//! [`HttpClient`](crate::http::HttpClient) is the default implementation. Another one
//! (`ReqwestTransport` with the `reqwest` feature, for HTTP/2 or reqwest's middleware; a test
//! double) is given to the backend with
//! [`OpenAICompatibleBackendBuilder::transport`](crate::backend::OpenAICompatibleBackendBuilder::transport).
//! Everything above the transport stays the backend's: request bodies, error classification,
//! retries, the idle timeout between body pieces, the total deadline, stream decoding.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::error::Error;
#[cfg(feature = "reqwest")]
pub use crate::transport_reqwest::ReqwestTransport;

/// The body of a response from a [`Transport`]: byte pieces in order, then the end.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// One request, as the backend hands it to a [`Transport`].
#[derive(Debug)]
pub struct TransportRequest<'a> {
    pub(crate) method: &'static str,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a [(HeaderName, HeaderValue)],
    pub(crate) body: Option<&'a Bytes>,
    pub(crate) content_type: &'a str,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) head_timeout: Option<Duration>,
}

impl<'a> TransportRequest<'a> {
    /// `GET`, `POST` or `DELETE`.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The full URL.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// Headers to send (authorization included: keep them out of logs). `Host`,
    /// `Content-Length` and `Content-Type` are the transport's to write.
    pub fn headers(&self) -> &'a [(HeaderName, HeaderValue)] {
        self.headers
    }

    /// The body, or none. Send it with [`content_type`](TransportRequest::content_type).
    pub fn body(&self) -> Option<&'a Bytes> {
        self.body
    }

    /// The body's media type: `application/json` for API calls, `multipart/form-data;
    /// boundary=…` for file uploads. Meaningless without a body.
    pub fn content_type(&self) -> &'a str {
        self.content_type
    }

    /// The backend's connect timeout: the transport must give up connecting after it (if it
    /// cannot apply it to the connection alone, it may bound connecting plus the response
    /// head by `connect_timeout + head_timeout`). `None`: the transport's own setting.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// Time allowed, once connected, to send the request and receive the response head.
    /// When it passes after the request went out, return a
    /// [`Timeout`](crate::ErrorKind::Timeout) error marked
    /// [`with_unanswered`](Error::with_unanswered) for a POST, so that it is not resent unless
    /// the retry policy says so.
    pub fn head_timeout(&self) -> Option<Duration> {
        self.head_timeout
    }
}

/// A response head and its body.
pub struct TransportResponse {
    status: u16,
    headers: HeaderMap,
    body: BodyStream,
}

impl fmt::Debug for TransportResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportResponse").field("status", &self.status).finish_non_exhaustive()
    }
}

impl TransportResponse {
    /// A response with any status; the backend classifies non-2xx answers from the body.
    pub fn new(status: u16, headers: HeaderMap, body: BodyStream) -> TransportResponse {
        TransportResponse { status, headers, body }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub(crate) fn into_parts(self) -> (u16, HeaderMap, BodyStream) {
        (self.status, self.headers, self.body)
    }
}

/// Sends requests for a backend: "send this request, give me the response head and a body
/// stream". Errors are [`Error`]s: connection failures as
/// [`Connect`](crate::ErrorKind::Connect) (retryable unless, like a certificate error, they
/// cannot get better), timeouts as [`Timeout`](crate::ErrorKind::Timeout). Dropping the body
/// stream before its end should close the connection.
///
/// ```
/// use mamba_backends::transport::{BodyStream, Transport, TransportRequest, TransportResponse};
/// use mamba_backends::Error;
///
/// /// Answers every request with the same JSON, without a network: a test double.
/// #[derive(Debug)]
/// struct Canned(&'static str);
///
/// #[async_trait::async_trait]
/// impl Transport for Canned {
///     async fn send(&self, _request: TransportRequest<'_>) -> Result<TransportResponse, Error> {
///         let piece: Result<bytes::Bytes, Error> = Ok(bytes::Bytes::from_static(self.0.as_bytes()));
///         let body: BodyStream = Box::pin(futures_util::stream::iter([piece]));
///         Ok(TransportResponse::new(200, http::HeaderMap::new(), body))
///     }
/// }
/// ```
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Sends `request` and returns once the response head has arrived.
    async fn send(&self, request: TransportRequest<'_>) -> Result<TransportResponse, Error>;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    async fn send(&self, request: TransportRequest<'_>) -> Result<TransportResponse, Error> {
        (**self).send(request).await
    }
}

#[async_trait]
impl Transport for crate::http::HttpClient {
    async fn send(&self, request: TransportRequest<'_>) -> Result<TransportResponse, Error> {
        let inner = crate::http::Request {
            method: request.method,
            uri: request.uri,
            headers: request.headers,
            body: request.body.map(|b| (&b[..], request.content_type)),
            head_timeout: request.head_timeout,
            connect_timeout: request.connect_timeout,
        };
        let response = crate::http::HttpClient::send(self, &inner).await?;
        let mut body = response.body;
        let stream = futures_util::stream::poll_fn(move |cx| {
            let mut buf = Vec::new();
            match body.poll_read(cx, &mut buf) {
                std::task::Poll::Pending => std::task::Poll::Pending,
                std::task::Poll::Ready(Ok(0)) => std::task::Poll::Ready(None),
                std::task::Poll::Ready(Ok(_)) => std::task::Poll::Ready(Some(Ok(Bytes::from(buf)))),
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            }
        });
        Ok(TransportResponse::new(response.status, response.headers, Box::pin(stream)))
    }
}
