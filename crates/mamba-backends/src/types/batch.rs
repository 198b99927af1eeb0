//! The Files and Batch API objects: [`FileObject`], [`BatchJob`] and what they hold.
//!
//! Read leniently: servers that copy OpenAI's Batch API (Azure, Groq, LiteLLM, Together,
//! mocks) leave fields out, send `null`, or add statuses of their own. Every field but the id
//! is optional or defaulted, an unknown status is kept as [`BatchStatus::Other`], and the
//! object as sent is in `raw`.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::Error;

/// A file on the server (`POST /files`, `GET /files/{id}`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FileObject {
    /// The id (`file-…`).
    pub id: String,
    /// Its size in bytes.
    pub bytes: Option<u64>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// The name it was uploaded with.
    pub filename: Option<String>,
    /// `batch`, `batch_output`, …
    pub purpose: Option<String>,
    /// `uploaded`, `processed`, `error` (deprecated by OpenAI, still sent).
    pub status: Option<String>,
    /// The object as the server sent it.
    pub raw: Value,
}

/// Where a batch is. Unknown values are kept in [`Other`](BatchStatus::Other).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchStatus {
    /// The input file is being checked.
    Validating,
    /// The input file failed validation; see [`BatchJob::errors`].
    Failed,
    /// Requests are being run.
    InProgress,
    /// Done; the output files are being written.
    Finalizing,
    /// Done; the output files are ready.
    Completed,
    /// The completion window passed before every request ran.
    Expired,
    /// Cancel asked for; requests in flight are finishing.
    Cancelling,
    /// Cancelled; the output of the requests that ran is kept.
    Cancelled,
    /// A status this crate does not know (or none: the empty string).
    Other(String),
}

impl BatchStatus {
    /// Reads a status; anything unknown is kept as [`Other`](BatchStatus::Other).
    pub fn parse(value: &str) -> BatchStatus {
        match value {
            "validating" => BatchStatus::Validating,
            "failed" => BatchStatus::Failed,
            "in_progress" => BatchStatus::InProgress,
            "finalizing" => BatchStatus::Finalizing,
            "completed" => BatchStatus::Completed,
            "expired" => BatchStatus::Expired,
            "cancelling" => BatchStatus::Cancelling,
            "cancelled" => BatchStatus::Cancelled,
            other => BatchStatus::Other(other.to_owned()),
        }
    }

    /// The status as the API writes it.
    pub fn as_str(&self) -> &str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Failed => "failed",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
            BatchStatus::Other(s) => s,
        }
    }

    /// The batch will not change any more: completed, failed, expired or cancelled. Unknown
    /// statuses are not terminal (polling goes on).
    pub fn is_terminal(&self) -> bool {
        matches!(self, BatchStatus::Completed | BatchStatus::Failed | BatchStatus::Expired | BatchStatus::Cancelled)
    }

    /// Completed, the only end in which every request ran.
    pub fn is_success(&self) -> bool {
        *self == BatchStatus::Completed
    }
}

impl fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many requests of a batch there are and how many have ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RequestCounts {
    /// Requests in the batch (0 until validated).
    pub total: u64,
    /// Requests answered.
    pub completed: u64,
    /// Requests that failed.
    pub failed: u64,
}

impl RequestCounts {
    /// Counts from numbers.
    pub fn new(total: u64, completed: u64, failed: u64) -> RequestCounts {
        RequestCounts { total, completed, failed }
    }
}

/// One error of a batch (a validation failure of its input, typically).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchJobError {
    /// A code (`invalid_json_line`, …).
    pub code: Option<String>,
    /// What is wrong.
    pub message: Option<String>,
    /// The parameter at fault.
    pub param: Option<String>,
    /// The input line at fault, from 1.
    pub line: Option<u64>,
}

/// A batch (`POST /batches`, `GET /batches/{id}`, `POST /batches/{id}/cancel`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchJob {
    /// The id (`batch_…`).
    pub id: String,
    /// Where it is.
    pub status: BatchStatus,
    /// The endpoint every request goes to (`/v1/chat/completions`).
    pub endpoint: Option<String>,
    /// The uploaded input.
    pub input_file_id: Option<String>,
    /// `24h`.
    pub completion_window: Option<String>,
    /// The answered requests, once there are any (OpenAI: once the batch ends).
    pub output_file_id: Option<String>,
    /// The failed requests, when some failed.
    pub error_file_id: Option<String>,
    /// Request counts (zeros when the server sent none).
    pub request_counts: RequestCounts,
    /// Errors of the batch itself (`errors.data`).
    pub errors: Vec<BatchJobError>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Unix seconds.
    pub in_progress_at: Option<i64>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub finalizing_at: Option<i64>,
    /// Unix seconds.
    pub completed_at: Option<i64>,
    /// Unix seconds.
    pub failed_at: Option<i64>,
    /// Unix seconds.
    pub expired_at: Option<i64>,
    /// Unix seconds.
    pub cancelling_at: Option<i64>,
    /// Unix seconds.
    pub cancelled_at: Option<i64>,
    /// The metadata given at creation.
    pub metadata: Option<Map<String, Value>>,
    /// The object as the server sent it.
    pub raw: Value,
}

/// A page of batches (`GET /batches`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchList {
    /// The batches, newest first.
    pub data: Vec<BatchJob>,
    /// More come after the last one (pass its id as `after`).
    pub has_more: bool,
}

fn string(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn uint(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn int(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn decode(what: &str, bytes: &[u8]) -> Result<Value, Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let shown: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
        Error::decode(format!("the {what} is not JSON ({e}): {shown}")).with_source(e)
    })?;
    if !value.is_object() {
        return Err(Error::decode(format!("the {what} is not a JSON object")));
    }
    Ok(value)
}

fn id_of(what: &str, value: &Value) -> Result<String, Error> {
    string(value, "id").filter(|s| !s.is_empty()).ok_or_else(|| Error::decode(format!("the {what} has no id")))
}

impl FileObject {
    /// Reads a file object from the server's JSON.
    pub fn from_json(bytes: &[u8]) -> Result<FileObject, Error> {
        FileObject::from_value(decode("file object", bytes)?)
    }

    /// Reads a file object from parsed JSON.
    pub fn from_value(raw: Value) -> Result<FileObject, Error> {
        Ok(FileObject {
            id: id_of("file object", &raw)?,
            bytes: uint(&raw, "bytes"),
            created_at: int(&raw, "created_at"),
            filename: string(&raw, "filename"),
            purpose: string(&raw, "purpose"),
            status: string(&raw, "status"),
            raw,
        })
    }
}

impl BatchJob {
    /// Reads a batch from the server's JSON.
    pub fn from_json(bytes: &[u8]) -> Result<BatchJob, Error> {
        BatchJob::from_value(decode("batch object", bytes)?)
    }

    /// Reads a batch from parsed JSON.
    pub fn from_value(raw: Value) -> Result<BatchJob, Error> {
        let counts = raw.get("request_counts").unwrap_or(&Value::Null);
        let request_counts = RequestCounts {
            total: uint(counts, "total").unwrap_or(0),
            completed: uint(counts, "completed").unwrap_or(0),
            failed: uint(counts, "failed").unwrap_or(0),
        };
        // `errors` is `{"object": "list", "data": [...]}`; a bare array is read too.
        let items = match raw.get("errors") {
            Some(Value::Object(e)) => e.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]),
            Some(Value::Array(items)) => items.as_slice(),
            _ => &[],
        };
        let errors = items
            .iter()
            .map(|e| BatchJobError {
                code: string(e, "code"),
                message: string(e, "message"),
                param: string(e, "param"),
                line: uint(e, "line"),
            })
            .collect();
        Ok(BatchJob {
            id: id_of("batch object", &raw)?,
            status: BatchStatus::parse(raw.get("status").and_then(Value::as_str).unwrap_or("")),
            endpoint: string(&raw, "endpoint"),
            input_file_id: string(&raw, "input_file_id"),
            completion_window: string(&raw, "completion_window"),
            output_file_id: string(&raw, "output_file_id").filter(|s| !s.is_empty()),
            error_file_id: string(&raw, "error_file_id").filter(|s| !s.is_empty()),
            request_counts,
            errors,
            created_at: int(&raw, "created_at"),
            in_progress_at: int(&raw, "in_progress_at"),
            expires_at: int(&raw, "expires_at"),
            finalizing_at: int(&raw, "finalizing_at"),
            completed_at: int(&raw, "completed_at"),
            failed_at: int(&raw, "failed_at"),
            expired_at: int(&raw, "expired_at"),
            cancelling_at: int(&raw, "cancelling_at"),
            cancelled_at: int(&raw, "cancelled_at"),
            metadata: raw.get("metadata").and_then(Value::as_object).cloned(),
            raw,
        })
    }
}

impl BatchList {
    /// Reads a list of batches (`{"data": [...], "has_more"}`, or a bare array). Entries that
    /// are not batches (no id) are left out.
    pub fn from_json(bytes: &[u8]) -> Result<BatchList, Error> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("the batch list is not JSON ({e})")).with_source(e))?;
        let (items, has_more) = match &value {
            Value::Array(items) => (items.as_slice(), false),
            Value::Object(map) => (
                map.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]),
                map.get("has_more").and_then(Value::as_bool).unwrap_or(false),
            ),
            _ => return Err(Error::decode("the batch list is neither an object nor an array")),
        };
        let data = items.iter().filter_map(|item| BatchJob::from_value(item.clone()).ok()).collect();
        Ok(BatchList { data, has_more })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's example (with its trailing comma removed), as Prism sends it.
    const SPEC_CREATED: &str = r#"{"id":"batch_abc123","object":"batch","endpoint":"/v1/chat/completions","errors":null,
        "input_file_id":"file-abc123","completion_window":"24h","status":"validating","output_file_id":null,
        "error_file_id":null,"created_at":1711471533,"in_progress_at":null,"expires_at":null,"finalizing_at":null,
        "completed_at":null,"failed_at":null,"expired_at":null,"cancelling_at":null,"cancelled_at":null,
        "request_counts":{"total":0,"completed":0,"failed":0},
        "metadata":{"customer_id":"user_123456789","batch_description":"Nightly eval job"}}"#;

    #[test]
    fn reads_the_spec_example_with_nulls() {
        let b = BatchJob::from_json(SPEC_CREATED.as_bytes()).unwrap();
        assert_eq!(b.id, "batch_abc123");
        assert_eq!(b.status, BatchStatus::Validating);
        assert!(!b.status.is_terminal());
        assert_eq!(b.endpoint.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(b.input_file_id.as_deref(), Some("file-abc123"));
        assert_eq!(b.output_file_id, None);
        assert_eq!(b.error_file_id, None);
        assert_eq!(b.created_at, Some(1_711_471_533));
        assert_eq!(b.completed_at, None);
        assert_eq!(b.request_counts, RequestCounts::new(0, 0, 0));
        assert!(b.errors.is_empty());
        assert_eq!(b.metadata.as_ref().unwrap()["customer_id"], "user_123456789");
        assert_eq!(b.raw["object"], "batch");
    }

    #[test]
    fn unknown_status_missing_fields_and_errors() {
        let b = BatchJob::from_json(
            br#"{"id":"b1","status":"queued_somewhere","request_counts":{"total":"10","completed":4},
                "errors":{"object":"list","data":[{"code":"invalid_json_line","message":"bad","line":3,"param":null}]},
                "output_file_id":""}"#,
        )
        .unwrap();
        assert_eq!(b.status, BatchStatus::Other("queued_somewhere".into()));
        assert_eq!(b.status.as_str(), "queued_somewhere");
        assert!(!b.status.is_terminal());
        assert_eq!(b.request_counts, RequestCounts::new(10, 4, 0));
        assert_eq!(b.errors.len(), 1);
        assert_eq!(b.errors[0].code.as_deref(), Some("invalid_json_line"));
        assert_eq!(b.errors[0].line, Some(3));
        assert_eq!(b.errors[0].param, None);
        assert_eq!(b.output_file_id, None, "an empty id is no id");
        assert_eq!(b.endpoint, None);
        let none =
            BatchJob::from_json(br#"{"id":"b2","status":null,"request_counts":null,"errors":[{"message":"m"}]}"#)
                .unwrap();
        assert_eq!(none.status, BatchStatus::Other(String::new()));
        assert_eq!(none.request_counts, RequestCounts::default());
        assert_eq!(none.errors[0].message.as_deref(), Some("m"));
        assert!(BatchJob::from_json(br#"{"status":"completed"}"#).is_err());
        assert!(BatchJob::from_json(b"[]").is_err());
        assert!(BatchJob::from_json(b"<html>").is_err());
    }

    #[test]
    fn statuses_round_trip_and_end() {
        for s in
            ["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"]
        {
            assert_eq!(BatchStatus::parse(s).as_str(), s);
            assert_eq!(BatchStatus::parse(s).to_string(), s);
        }
        let terminal: Vec<&str> = ["validating", "failed", "in_progress", "finalizing", "completed", "expired"]
            .into_iter()
            .chain(["cancelling", "cancelled"])
            .filter(|s| BatchStatus::parse(s).is_terminal())
            .collect();
        assert_eq!(terminal, ["failed", "completed", "expired", "cancelled"]);
        assert!(BatchStatus::Completed.is_success());
        assert!(!BatchStatus::Cancelled.is_success());
    }

    #[test]
    fn files_and_lists() {
        let f = FileObject::from_json(
            br#"{"id":"file-abc123","object":"file","bytes":120000,"created_at":1677610602,"expires_at":null,
                "filename":"salesOverview.pdf","purpose":"assistants","status":null}"#,
        )
        .unwrap();
        assert_eq!(f.id, "file-abc123");
        assert_eq!(f.bytes, Some(120_000));
        assert_eq!(f.filename.as_deref(), Some("salesOverview.pdf"));
        assert_eq!(f.status, None);
        assert!(FileObject::from_json(br#"{"object":"file"}"#).is_err());
        let list = BatchList::from_json(
            br#"{"object":"list","data":[{"id":"a","status":"completed"},{"x":1}],"has_more":true}"#,
        )
        .unwrap();
        assert_eq!(list.data.len(), 1);
        assert!(list.has_more);
        assert_eq!(BatchList::from_json(br#"[{"id":"a"}]"#).unwrap().data[0].id, "a");
    }
}
