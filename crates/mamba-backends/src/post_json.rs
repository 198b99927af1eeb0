//! The raw-request types, [`PostJson`] and [`RawResponse`], published as
//! [`raw`](crate::raw). They live in their own file so that [`ModelBackend`](crate::ModelBackend)
//! (whose `as_post_json` returns a `PostJson`) and [`raw::post_json`](crate::raw::post_json)
//! (which takes a `ModelBackend`) import them one way, without a cycle.

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;

use crate::error::Error;

/// Sends a JSON body as given and returns the server's own answer.
///
/// ```no_run
/// use bytes::Bytes;
/// use mamba_backends::raw::PostJson;
/// use mamba_backends::OpenAICompatibleBackend;
///
/// # async fn run() -> Result<(), mamba_backends::Error> {
/// let backend = OpenAICompatibleBackend::builder("gpt-4o-mini").base_url("http://localhost:8000/v1").build()?;
/// let body = Bytes::from_static(br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#);
/// let raw = backend.post_json("/chat/completions", body).await?;
/// println!("{} {}", raw.status, String::from_utf8_lossy(&raw.body));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait PostJson: Send + Sync {
    /// POSTs `body`, a JSON document sent exactly as given, to `path` under the backend's base
    /// URL (`"/chat/completions"`, `"/embeddings"`), with the backend's headers and key,
    /// timeouts, retries (and, for a pool, endpoint choice and failover). The answer is the
    /// server's own: status, headers and body bytes unchanged. A non-2xx answer is the
    /// classified [`Error`], its [`status`](Error::status) and
    /// [`response_body`](Error::response_body) set.
    async fn post_json(&self, path: &str, body: Bytes) -> Result<RawResponse, Error>;
}

/// A 2xx answer to [`PostJson::post_json`]: status, headers
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
