//! OpenAI's Files and Batch APIs, run in memory.
//!
//! * `POST /v1/files` (multipart: `purpose`, `file`) stores the bytes; `GET /v1/files/{id}`,
//!   `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`.
//! * `POST /v1/batches` checks the input file and endpoint and starts the batch
//!   (`validating`); `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`, `GET /v1/batches`.
//!
//! A batch runs each input line as if it were sent to its URL: the script picks the reply (a
//! rule matching a model or text can make lines fail), the chat or embeddings rendering
//! writes the body. An input with a line that is not a request for the batch's endpoint fails
//! validation: the batch ends `failed` with the lines in `errors`, nothing run. Answers go to the output file, HTTP errors and unreadable lines to the
//! error file, in OpenAI's batch output format. It moves `validating → in_progress →
//! finalizing → completed` (or `cancelling → cancelled`, keeping the output so far), with a
//! pause between steps and after each line ([`BatchTiming`](crate::BatchTiming)) so that
//! polling sees progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::embeddings::EmbeddingsRequest;
use crate::render::{error_body, Answer, ChatRequest};
use crate::State;

/// Pauses of the mock's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchTiming {
    /// Between two statuses (`validating` to `in_progress`, `finalizing` to `completed`).
    pub step: Duration,
    /// After each line.
    pub per_line: Duration,
}

impl Default for BatchTiming {
    /// 20 ms a step, 5 ms a line.
    fn default() -> Self {
        BatchTiming { step: Duration::from_millis(20), per_line: Duration::from_millis(5) }
    }
}

impl BatchTiming {
    /// Pauses of `step` between statuses and `per_line` after each line.
    pub fn new(step: Duration, per_line: Duration) -> BatchTiming {
        BatchTiming { step, per_line }
    }
}

/// The endpoints a batch may name.
const ENDPOINTS: &[&str] = &["/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses"];

#[derive(Debug)]
struct StoredFile {
    bytes: Arc<Vec<u8>>,
    filename: String,
    purpose: String,
    created_at: u64,
}

#[derive(Debug)]
struct MockBatch {
    object: Value,
    cancel: Arc<AtomicBool>,
}

/// The files and batches of one server.
#[derive(Debug, Default)]
pub(crate) struct Store {
    inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    files: HashMap<String, StoredFile>,
    batches: HashMap<String, MockBatch>,
    /// Batch ids, oldest first.
    order: Vec<String>,
    next: u64,
    uploads: usize,
}

/// A route's answer: status and JSON body.
pub(crate) type Answered = (u16, Vec<u8>);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn not_found(what: &str, id: &str) -> Answered {
    (404, error_body(404, &format!("No {what} found with id '{id}'.")))
}

fn bad(message: &str) -> Answered {
    (400, error_body(400, message))
}

fn ok(value: &Value) -> Answered {
    (200, value.to_string().into_bytes())
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Uploads so far.
    pub(crate) fn uploads(&self) -> usize {
        self.lock().uploads
    }

    /// Batch ids, oldest first.
    pub(crate) fn batch_ids(&self) -> Vec<String> {
        self.lock().order.clone()
    }

    fn id(inner: &mut StoreInner, prefix: &str) -> String {
        inner.next += 1;
        format!("{prefix}-mock{:06}", inner.next)
    }

    fn file_object(id: &str, f: &StoredFile) -> Value {
        json!({"id": id, "object": "file", "bytes": f.bytes.len(), "created_at": f.created_at,
               "filename": f.filename, "purpose": f.purpose, "status": "processed", "expires_at": null})
    }

    fn put_file(&self, bytes: Vec<u8>, filename: &str, purpose: &str) -> String {
        let mut inner = self.lock();
        let id = Store::id(&mut inner, "file");
        let file = StoredFile {
            bytes: Arc::new(bytes),
            filename: filename.to_owned(),
            purpose: purpose.to_owned(),
            created_at: now(),
        };
        inner.files.insert(id.clone(), file);
        id
    }

    /// `POST /v1/files`.
    pub(crate) fn upload(&self, content_type: Option<&str>, body: &[u8]) -> Answered {
        let Some(boundary) = content_type.and_then(boundary_of) else {
            return bad("the upload must be multipart/form-data with a boundary");
        };
        let parts = match parse_multipart(body, &boundary) {
            Ok(parts) => parts,
            Err(message) => return bad(&message),
        };
        let purpose = parts.iter().find(|p| p.name == "purpose").map(|p| String::from_utf8_lossy(p.body).into_owned());
        let Some(purpose) = purpose else { return bad("Missing required parameter: 'purpose'.") };
        let Some(file) = parts.iter().find(|p| p.name == "file" && p.filename.is_some()) else {
            return bad("Missing required parameter: 'file'.");
        };
        if !["batch", "batch-api", "assistants", "fine-tune", "vision", "user_data", "evals"]
            .contains(&purpose.as_str())
        {
            return bad(&format!("Invalid value for 'purpose': {purpose:?}."));
        }
        let filename = file.filename.clone().unwrap_or_default();
        let id = self.put_file(file.body.to_vec(), &filename, &purpose);
        let mut inner = self.lock();
        inner.uploads += 1;
        let object = Store::file_object(&id, &inner.files[&id]);
        ok(&object)
    }

    /// `GET /v1/files/{id}` and `…/content`, `DELETE /v1/files/{id}`.
    pub(crate) fn file(&self, method: &str, id: &str, content: bool) -> Answered {
        let mut inner = self.lock();
        if method == "DELETE" {
            return match inner.files.remove(id) {
                Some(_) => ok(&json!({"id": id, "object": "file", "deleted": true})),
                None => not_found("file", id),
            };
        }
        match inner.files.get(id) {
            Some(f) if content => (200, f.bytes.as_ref().clone()),
            Some(f) => ok(&Store::file_object(id, f)),
            None => not_found("file", id),
        }
    }

    /// `POST /v1/batches`.
    pub(crate) fn create(self: &Arc<Self>, state: &Arc<State>, body: Option<&Value>) -> Answered {
        let Some(body) = body.and_then(Value::as_object) else { return bad("the request body is not a JSON object") };
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
        let (input_file_id, endpoint, window) = (field("input_file_id"), field("endpoint"), field("completion_window"));
        if !ENDPOINTS.contains(&endpoint) {
            return bad(&format!("Invalid value for 'endpoint': {endpoint:?}; supported: {}", ENDPOINTS.join(", ")));
        }
        if window != "24h" {
            return bad("Invalid value for 'completion_window': only '24h' is supported.");
        }
        let mut inner = self.lock();
        let Some(input) = inner.files.get(input_file_id) else { return not_found("file", input_file_id) };
        if input.purpose != "batch" && input.purpose != "batch-api" {
            return bad(&format!("The input file must have purpose 'batch', not {:?}.", input.purpose));
        }
        let input = Arc::clone(&input.bytes);
        let id = Store::id(&mut inner, "batch");
        let created = now();
        let object = json!({
            "id": id, "object": "batch", "endpoint": endpoint, "errors": null,
            "input_file_id": input_file_id, "completion_window": "24h", "status": "validating",
            "output_file_id": null, "error_file_id": null, "created_at": created,
            "in_progress_at": null, "expires_at": created + 86_400, "finalizing_at": null,
            "completed_at": null, "failed_at": null, "expired_at": null, "cancelling_at": null,
            "cancelled_at": null, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata").cloned().unwrap_or(Value::Null),
        });
        let cancel = Arc::new(AtomicBool::new(false));
        inner.batches.insert(id.clone(), MockBatch { object: object.clone(), cancel: Arc::clone(&cancel) });
        inner.order.push(id.clone());
        drop(inner);
        let run = Run { store: Arc::clone(self), state: Arc::clone(state), id, endpoint: endpoint.to_owned(), cancel };
        tokio::spawn(run.go(input));
        ok(&object)
    }

    /// `GET /v1/batches/{id}`.
    pub(crate) fn get(&self, id: &str) -> Answered {
        match self.lock().batches.get(id) {
            Some(b) => ok(&b.object),
            None => not_found("batch", id),
        }
    }

    /// `POST /v1/batches/{id}/cancel`.
    pub(crate) fn cancel(&self, id: &str) -> Answered {
        let mut inner = self.lock();
        let Some(b) = inner.batches.get_mut(id) else { return not_found("batch", id) };
        let status = b.object["status"].as_str().unwrap_or("").to_owned();
        if ["completed", "failed", "expired", "cancelled"].contains(&status.as_str()) {
            return (409, error_body(409, &format!("Cannot cancel a batch with status '{status}'.")));
        }
        b.cancel.store(true, Ordering::SeqCst);
        if status != "cancelling" {
            b.object["status"] = json!("cancelling");
            b.object["cancelling_at"] = json!(now());
        }
        ok(&b.object)
    }

    /// `GET /v1/batches`: newest first, `after` and `limit` honoured.
    pub(crate) fn list(&self, query: &str) -> Answered {
        let param = |k: &str| query.split('&').find_map(|p| p.strip_prefix(k).and_then(|v| v.strip_prefix('=')));
        let limit: usize = param("limit").and_then(|v| v.parse().ok()).unwrap_or(20).clamp(1, 100);
        let inner = self.lock();
        let mut ids: Vec<&String> = inner.order.iter().rev().collect();
        if let Some(after) = param("after") {
            if let Some(i) = ids.iter().position(|id| id.as_str() == after) {
                ids.drain(..=i);
            }
        }
        let has_more = ids.len() > limit;
        let data: Vec<Value> =
            ids.iter().take(limit).filter_map(|id| inner.batches.get(*id)).map(|b| b.object.clone()).collect();
        let first = data.first().and_then(|b| b["id"].as_str()).map(str::to_owned);
        let last = data.last().and_then(|b| b["id"].as_str()).map(str::to_owned);
        ok(&json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}))
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Map<String, Value>)) {
        if let Some(b) = self.lock().batches.get_mut(id) {
            if let Some(map) = b.object.as_object_mut() {
                change(map);
            }
        }
    }
}

/// One batch being run.
struct Run {
    store: Arc<Store>,
    state: Arc<State>,
    id: String,
    endpoint: String,
    cancel: Arc<AtomicBool>,
}

impl Run {
    async fn go(self, input: Arc<Vec<u8>>) {
        let timing = self.state.batch_timing;
        tokio::time::sleep(timing.step).await;
        let lines: Vec<&[u8]> =
            input.split(|b| *b == b'\n').map(<[u8]>::trim_ascii).filter(|l| !l.is_empty()).collect();
        // Validation, as OpenAI does it: any bad line fails the whole batch, nothing runs.
        let errors: Vec<Value> = lines
            .iter()
            .enumerate()
            .filter_map(|(n, line)| {
                self.invalid(line)
                    .map(|(code, message)| json!({"code": code, "message": message, "param": null, "line": n + 1}))
            })
            .collect();
        if !errors.is_empty() || lines.is_empty() {
            let errors = if lines.is_empty() {
                vec![json!({"code": "empty_file", "message": "The input file is empty.", "param": null, "line": null})]
            } else {
                errors
            };
            self.store.update(&self.id, |b| {
                b.insert("status".into(), json!("failed"));
                b.insert("failed_at".into(), json!(now()));
                b.insert("errors".into(), json!({"object": "list", "data": errors}));
            });
            return;
        }
        let total = lines.len();
        self.store.update(&self.id, |b| {
            if b["status"] == "validating" {
                b.insert("status".into(), json!("in_progress"));
            }
            b.insert("in_progress_at".into(), json!(now()));
            b.insert("request_counts".into(), json!({"total": total, "completed": 0, "failed": 0}));
        });
        let (mut output, mut errors) = (Vec::new(), Vec::new());
        let (mut completed, mut failed) = (0u64, 0u64);
        for (n, line) in lines.iter().enumerate() {
            if self.cancel.load(Ordering::SeqCst) {
                break;
            }
            let (record, good) = self.one(line, n);
            if good {
                completed += 1;
                output.extend_from_slice(record.as_bytes());
                output.push(b'\n');
            } else {
                failed += 1;
                errors.extend_from_slice(record.as_bytes());
                errors.push(b'\n');
            }
            self.store.update(&self.id, |b| {
                b.insert("request_counts".into(), json!({"total": total, "completed": completed, "failed": failed}));
            });
            tokio::time::sleep(timing.per_line).await;
        }
        let cancelled = self.cancel.load(Ordering::SeqCst);
        if !cancelled {
            self.store.update(&self.id, |b| {
                b.insert("status".into(), json!("finalizing"));
                b.insert("finalizing_at".into(), json!(now()));
            });
            tokio::time::sleep(timing.step).await;
        }
        let output_id = (!output.is_empty())
            .then(|| self.store.put_file(output, &format!("{}_output.jsonl", self.id), "batch_output"));
        let error_id = (!errors.is_empty())
            .then(|| self.store.put_file(errors, &format!("{}_error.jsonl", self.id), "batch_output"));
        let (status, at) = if cancelled { ("cancelled", "cancelled_at") } else { ("completed", "completed_at") };
        self.store.update(&self.id, |b| {
            b.insert("status".into(), json!(status));
            b.insert(at.into(), json!(now()));
            b.insert("output_file_id".into(), json!(output_id));
            b.insert("error_file_id".into(), json!(error_id));
        });
    }

    /// Why a line cannot be part of this batch: a code and a message.
    fn invalid(&self, line: &[u8]) -> Option<(&'static str, String)> {
        let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(line) else {
            return Some(("invalid_json_line", "This line is not a JSON object.".into()));
        };
        if !v.get("custom_id").is_some_and(Value::is_string) {
            return Some(("missing_required_parameter", "custom_id is missing.".into()));
        }
        if v.get("method").and_then(Value::as_str) != Some("POST") {
            return Some(("invalid_method", "method must be POST.".into()));
        }
        if v.get("url").and_then(Value::as_str) != Some(self.endpoint.as_str()) {
            return Some(("mismatched_url", format!("The url must be the batch's endpoint {}.", self.endpoint)));
        }
        if !v.get("body").is_some_and(Value::is_object) {
            return Some(("invalid_body", "body must be a JSON object.".into()));
        }
        None
    }

    /// One line's output record, and whether it succeeded.
    fn one(&self, line: &[u8], n: usize) -> (String, bool) {
        let request_id = format!("req_mock_{}_{n}", self.id);
        let id = format!("batch_req_{}_{n}", self.id.trim_start_matches("batch-"));
        let parsed: Option<Value> = serde_json::from_slice(line).ok();
        let custom_id = parsed.as_ref().and_then(|v| v.get("custom_id")).cloned().unwrap_or(Value::Null);
        let failure = |code: &str, message: String| {
            let record = json!({"id": id, "custom_id": custom_id, "response": null,
                                "error": {"code": code, "message": message}});
            (record.to_string(), false)
        };
        let Some(parsed) = parsed else { return failure("invalid_json_line", format!("line {} is not JSON", n + 1)) };
        if parsed.get("url").and_then(Value::as_str) != Some(self.endpoint.as_str()) {
            return failure("invalid_url", format!("the line's url is not the batch's endpoint {}", self.endpoint));
        }
        let Some(body) = parsed.get("body") else { return failure("missing_body", "the line has no body".into()) };
        let (status, answer) = self.render(body);
        let answer: Value = serde_json::from_slice(&answer)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer).into_owned()));
        let record = json!({"id": id, "custom_id": custom_id,
                            "response": {"status_code": status, "request_id": request_id, "body": answer},
                            "error": null});
        (record.to_string(), (200..300).contains(&status))
    }

    /// The status and body the server would answer `body` with at the batch's endpoint.
    fn render(&self, body: &Value) -> (u16, Vec<u8>) {
        let parsed = match self.endpoint.as_str() {
            "/v1/embeddings" => EmbeddingsRequest::parse(body).map(|e| {
                let chat = e.as_chat();
                (Some(e), chat)
            }),
            "/v1/responses" => ChatRequest::parse_responses(body).map(|c| (None, c)),
            "/v1/completions" => ChatRequest::parse_text(body).map(|c| (None, c)),
            _ => ChatRequest::parse(body).map(|c| (None, c)),
        };
        let (embeddings, chat) = match parsed {
            Ok(p) => p,
            Err(message) => return (400, error_body(400, &message)),
        };
        let (reply, call) = self.state.choose(&chat);
        if reply.status.is_some() || reply.body.is_some() {
            let status = reply.status.unwrap_or(200);
            let body = match &reply.body {
                None => error_body(status, &format!("mock error: HTTP {status}")),
                Some(Value::String(text)) => text.clone().into_bytes(),
                Some(value) => value.to_string().into_bytes(),
            };
            return (status, body);
        }
        if let Some(e) = embeddings {
            return (200, e.to_json(reply.model.as_deref(), reply.ignore_base64));
        }
        let answer = Answer::new(&reply, &chat, call);
        if chat.api == "responses" {
            (200, answer.to_response_json(&chat))
        } else {
            (200, answer.to_json())
        }
    }
}

/// The boundary of a `multipart/form-data` content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// One part of a form.
#[derive(Debug)]
struct Part<'a> {
    name: String,
    filename: Option<String>,
    body: &'a [u8],
}

/// Splits a `multipart/form-data` body into its parts.
fn parse_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let Some(start) = memchr::memmem::find(body, delimiter.as_bytes()) else {
        return Err("the multipart body has no boundary".into());
    };
    let mut rest = &body[start + delimiter.len()..];
    let next = format!("\r\n--{boundary}");
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest_after_crlf = rest.strip_prefix(b"\r\n").ok_or("a malformed multipart boundary line")?;
        let head_end = memchr::memmem::find(rest_after_crlf, b"\r\n\r\n").ok_or("a multipart part without headers")?;
        let head = String::from_utf8_lossy(&rest_after_crlf[..head_end]).into_owned();
        let content = &rest_after_crlf[head_end + 4..];
        let end = memchr::memmem::find(content, next.as_bytes()).ok_or("a multipart part without its end")?;
        let disposition = head
            .split("\r\n")
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition")))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let param = |key: &str| {
            disposition.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        parts.push(Part {
            name: param("name").unwrap_or_default(),
            filename: param("filename"),
            body: &content[..end],
        });
        rest = &content[end + next.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_form() {
        let body = b"--b1\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\ncontent-type: application/jsonl\r\n\r\n{\"a\":1}\n\r\n--b1--\r\n";
        let parts = parse_multipart(body, "b1").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].body), ("purpose", &b"batch"[..]));
        assert_eq!(parts[1].filename.as_deref(), Some("in.jsonl"));
        assert_eq!(parts[1].body, b"{\"a\":1}\n");
        assert!(parse_multipart(b"nothing", "b1").is_err());
        assert_eq!(boundary_of("multipart/form-data; boundary=\"x y\"").as_deref(), Some("x y"));
        assert_eq!(boundary_of("application/json"), None);
    }
}
