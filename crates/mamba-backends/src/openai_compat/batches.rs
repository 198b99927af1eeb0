//! The Files and Batch APIs (`/files`, `/batches`): upload a JSONL file of requests, run it as
//! a batch on the server, follow it, download its output.
//!
//! Every call goes through the backend's machinery: its key and extra headers, transport
//! (proxy, TLS), retry policy, timeouts (a call's answer head within the non-streamed head
//! timeout, the whole call within the non-streamed total deadline), and errors without the
//! key. A download is the exception to the total deadline: only the idle timeout bounds it
//! once its head arrived, since output files can be large.
//!
//! Paths are `{base_url}/files` and `{base_url}/batches`, with the base URL's (or preset's)
//! query string. On a legacy Azure deployment URL (`…/openai/deployments/NAME`) the Files and
//! Batch APIs are not per deployment: their paths are under `…/openai`, with the
//! `api-version` kept.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::multipart::{self, FilePart};
use super::{within, OpenAICompatibleBackend, Shared, JSON};
use crate::error::Error;
use crate::http::{HttpResponse, Response};
use crate::types::batch::{BatchJob, BatchList, FileObject};

/// Everything but the unreserved characters of RFC 3986 is escaped in an id put in a path.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The body of a file being downloaded ([`Batches::file_download`]), read
/// piece by piece. Dropping it before the end closes the connection.
pub struct FileDownload {
    response: HttpResponse,
    idle: Duration,
}

impl fmt::Debug for FileDownload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDownload").field("length", &self.content_length()).finish_non_exhaustive()
    }
}

impl FileDownload {
    /// The size the server announced, if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }

    /// Appends the next piece to `buf` and returns its length; `0` at the end. Fails when
    /// nothing arrives within the backend's idle timeout.
    pub async fn chunk(&mut self, buf: &mut Vec<u8>) -> Result<usize, Error> {
        self.response.read_chunk(buf, self.idle).await
    }
}

impl Shared {
    /// The URL of a Files or Batch API path (`/files`, `/batches/ID/cancel`).
    fn batch_uri(&self, path: &str) -> Result<Uri, Error> {
        let text = match &self.query {
            Some(q) => format!("{}{path}?{q}", self.files_root),
            None => format!("{}{path}", self.files_root),
        };
        text.parse().map_err(|e| Error::config(format!("invalid URL for {path}")).with_source(e))
    }

    /// Sends a call and returns its 2xx body, with retries within the total deadline.
    async fn api_call(&self, method: &'static str, uri: &Uri, body: Option<(&Bytes, &str)>) -> Result<Vec<u8>, Error> {
        let deadline = self.deadline(false);
        let attempt = || async {
            let response = self.send_checked(method, uri, body, self.timeouts.complete_headers).await?;
            let Response { mut body, .. } = response;
            body.read_to_end(self.timeouts.idle, self.max_response_bytes).await
        };
        within(deadline, self.retrying(deadline, attempt)).await.map_err(|e| self.finish_error(e))
    }
}

fn segment(id: &str) -> Result<String, Error> {
    if id.is_empty() {
        return Err(Error::config("an empty id"));
    }
    Ok(utf8_percent_encode(id, PATH_SEGMENT).to_string())
}

/// The Files and Batch APIs of one backend, borrowed from it with
/// [`OpenAICompatibleBackend::batches`]. Cheap to make and to copy; every call goes through the
/// backend's key, headers, transport, retries and timeouts.
///
/// ```no_run
/// use mamba_backends::OpenAICompatibleBackend;
///
/// # async fn run() -> Result<(), mamba_backends::Error> {
/// let backend = OpenAICompatibleBackend::builder("gpt-4o-mini").api_key("sk-...").build()?;
/// let batches = backend.batches();
/// let file = batches.upload_file("batch", "requests.jsonl", b"{}\n".to_vec()).await?;
/// let job = batches.create_batch(&file.id, "/v1/chat/completions", "24h", None).await?;
/// println!("{} {:?}", job.id, job.status);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Batches<'a> {
    backend: &'a OpenAICompatibleBackend,
}

impl OpenAICompatibleBackend {
    /// The server's Files and Batch APIs (`/files`, `/batches`): upload a JSONL file of
    /// requests, run it as a batch on the server, follow it, download its output.
    pub fn batches(&self) -> Batches<'_> {
        Batches { backend: self }
    }
}

impl Batches<'_> {
    /// Uploads a file (`POST /files`, multipart: `purpose` and `file`). For the Batch API the
    /// purpose is `batch` and the content JSONL. The request body is built around the
    /// content's own buffer: pass a `Vec<u8>` to upload a large file without a copy (a slice
    /// is copied once).
    pub async fn upload_file(
        self,
        purpose: &str,
        filename: &str,
        content: impl Into<Vec<u8>>,
    ) -> Result<FileObject, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri("/files")?;
        let file = FilePart { name: "file", filename, content_type: "application/jsonl" };
        let (content_type, body) = multipart::form(&[("purpose", purpose)], &file, content.into());
        let body = Bytes::from(body);
        let bytes = s.api_call("POST", &uri, Some((&body, &content_type))).await?;
        FileObject::from_json(&bytes).map_err(|e| s.finish_error(e))
    }

    /// A file's metadata (`GET /files/{id}`).
    pub async fn retrieve_file(self, file_id: &str) -> Result<FileObject, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri(&format!("/files/{}", segment(file_id)?))?;
        let bytes = s.api_call("GET", &uri, None).await?;
        FileObject::from_json(&bytes).map_err(|e| s.finish_error(e))
    }

    /// A file's content in one piece (`GET /files/{id}/content`), up to the backend's
    /// [`max_response_bytes`](crate::backend::OpenAICompatibleBackendBuilder::max_response_bytes). For
    /// large files read it piece by piece with [`file_download`](Self::file_download).
    pub async fn file_content(self, file_id: &str) -> Result<Bytes, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri(&format!("/files/{}/content", segment(file_id)?))?;
        s.api_call("GET", &uri, None).await.map(Bytes::from)
    }

    /// Starts downloading a file's content (`GET /files/{id}/content`): retried until its
    /// head arrives with a 2xx status, then read with [`FileDownload::chunk`], each piece
    /// within the idle timeout, with no total deadline.
    pub async fn file_download(self, file_id: &str) -> Result<FileDownload, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri(&format!("/files/{}/content", segment(file_id)?))?;
        let head_timeout = s.timeouts.complete_headers;
        let response = s
            .retrying(None, || s.send_checked("GET", &uri, None, head_timeout))
            .await
            .map_err(|e| s.finish_error(e))?;
        Ok(FileDownload { response: HttpResponse::from_response(response), idle: s.timeouts.idle })
    }

    /// Deletes a file (`DELETE /files/{id}`); the server's answer as JSON.
    pub async fn delete_file(self, file_id: &str) -> Result<Value, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri(&format!("/files/{}", segment(file_id)?))?;
        let bytes = s.api_call("DELETE", &uri, None).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| s.finish_error(Error::decode(format!("the delete answer is not JSON ({e})"))))
    }

    /// Creates a batch (`POST /batches`) running every request of an uploaded file against
    /// `endpoint` (`/v1/chat/completions`, `/v1/embeddings`, …) within `completion_window`
    /// (`24h`, the only value OpenAI takes).
    pub async fn create_batch(
        self,
        input_file_id: &str,
        endpoint: &str,
        completion_window: &str,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<BatchJob, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri("/batches")?;
        let body = Bytes::from(create_body(input_file_id, endpoint, completion_window, metadata).to_string());
        let bytes = s.api_call("POST", &uri, Some((&body, JSON))).await?;
        BatchJob::from_json(&bytes).map_err(|e| s.finish_error(e))
    }

    /// A batch now (`GET /batches/{id}`).
    pub async fn retrieve_batch(self, batch_id: &str) -> Result<BatchJob, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri(&format!("/batches/{}", segment(batch_id)?))?;
        let bytes = s.api_call("GET", &uri, None).await?;
        BatchJob::from_json(&bytes).map_err(|e| s.finish_error(e))
    }

    /// Cancels a batch (`POST /batches/{id}/cancel`); it goes `cancelling`, then `cancelled`
    /// with the output of the requests that ran.
    pub async fn cancel_batch(self, batch_id: &str) -> Result<BatchJob, Error> {
        let s = &*self.backend.shared;
        let uri = s.batch_uri(&format!("/batches/{}/cancel", segment(batch_id)?))?;
        let body = Bytes::new();
        let bytes = s.api_call("POST", &uri, Some((&body, JSON))).await?;
        BatchJob::from_json(&bytes).map_err(|e| s.finish_error(e))
    }

    /// A page of batches, newest first (`GET /batches?after=&limit=`).
    pub async fn list_batches(self, after: Option<&str>, limit: Option<u32>) -> Result<BatchList, Error> {
        let s = &*self.backend.shared;
        let mut path = String::from("/batches");
        let mut params = Vec::new();
        if let Some(after) = after {
            params.push(format!("after={}", utf8_percent_encode(after, PATH_SEGMENT)));
        }
        if let Some(limit) = limit {
            params.push(format!("limit={limit}"));
        }
        let uri = if params.is_empty() {
            s.batch_uri(&path)?
        } else {
            // The base query (api-version) goes after the list's own parameters.
            path.push('?');
            path.push_str(&params.join("&"));
            let text = match &s.query {
                Some(q) => format!("{}{path}&{q}", s.files_root),
                None => format!("{}{path}", s.files_root),
            };
            text.parse().map_err(|e| Error::config("invalid URL for /batches").with_source(e))?
        };
        let bytes = s.api_call("GET", &uri, None).await?;
        BatchList::from_json(&bytes).map_err(|e| s.finish_error(e))
    }
}

/// The JSON of `POST /batches`.
fn create_body(
    input_file_id: &str,
    endpoint: &str,
    completion_window: &str,
    metadata: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut body = json!({
        "input_file_id": input_file_id,
        "endpoint": endpoint,
        "completion_window": completion_window,
    });
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        body["metadata"] = json!(m);
    }
    body
}

/// Where the Files and Batch APIs are for a base URL path (no query): the base itself, or,
/// for a legacy Azure deployment URL, the part before `/deployments/`.
pub(crate) fn files_root(base_path: &str) -> &str {
    match base_path.find("/openai/deployments/") {
        Some(i) => &base_path[..i + "/openai".len()],
        None => base_path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_in_spec_shape() {
        assert_eq!(
            create_body("file-1", "/v1/chat/completions", "24h", None),
            json!({"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"})
        );
        let m: BTreeMap<String, String> = [("job".to_owned(), "nightly".to_owned())].into();
        assert_eq!(create_body("f", "/v1/embeddings", "24h", Some(&m))["metadata"], json!({"job": "nightly"}));
        assert!(create_body("f", "e", "24h", Some(&BTreeMap::new())).get("metadata").is_none());
    }

    #[test]
    fn azure_deployment_urls_use_the_resource_root() {
        assert_eq!(files_root("https://r.openai.azure.com/openai/deployments/d"), "https://r.openai.azure.com/openai");
        assert_eq!(files_root("https://r.openai.azure.com/openai/v1"), "https://r.openai.azure.com/openai/v1");
        assert_eq!(files_root("http://127.0.0.1:8000/v1"), "http://127.0.0.1:8000/v1");
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(segment("batch_abc-1.x").unwrap(), "batch_abc-1.x");
        assert_eq!(segment("../x?y").unwrap(), "..%2Fx%3Fy");
        assert!(segment("").is_err());
    }

    /// An `https` base URL needs TLS to build a backend at all.
    #[cfg(feature = "rustls")]
    #[test]
    fn azure_uris_carry_the_query() {
        let b = OpenAICompatibleBackend::builder("m")
            .preset(crate::Preset::AzureLegacy)
            .base_url("https://r.openai.azure.com/openai/deployments/d")
            .build()
            .unwrap();
        assert_eq!(
            b.shared.batch_uri("/batches/b1/cancel").unwrap(),
            "https://r.openai.azure.com/openai/batches/b1/cancel?api-version=2024-10-21"
        );
    }

    #[test]
    fn plain_uris() {
        let plain = OpenAICompatibleBackend::builder("m").base_url("http://127.0.0.1:9/v1/").build().unwrap();
        assert_eq!(plain.shared.batch_uri("/files").unwrap(), "http://127.0.0.1:9/v1/files");
    }
}
