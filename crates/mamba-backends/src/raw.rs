//! [`RawResponse`]: a server's answer to a JSON body sent as given
//! ([`ModelBackend::post_json`](crate::ModelBackend::post_json)), for callers that must keep
//! the server's own JSON (batch runners, proxies) rather than the typed [`ModelResponse`](crate::ModelResponse).

use bytes::Bytes;
use http::HeaderMap;

/// A 2xx answer to [`ModelBackend::post_json`](crate::ModelBackend::post_json): status, headers
/// (`x-request-id`, `x-ratelimit-*`) and the body bytes exactly as the server sent them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RawResponse {
    /// The status code (2xx).
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, unchanged.
    pub body: Bytes,
}

impl RawResponse {
    /// A response (for backends written outside this crate, and tests).
    pub fn new(status: u16, headers: HeaderMap, body: impl Into<Bytes>) -> RawResponse {
        RawResponse { status, headers, body: body.into() }
    }

    /// The value of header `name`, when it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
