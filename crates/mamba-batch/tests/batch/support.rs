//! What the suite's modules share: input lines, a backend for a mock, a run to its end, and
//! reading the output back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mamba_backends::{ModelBackend, OpenAICompatibleBackend, RetryPolicy};
use mamba_batch::{Batch, BatchError, BatchOptions, Input, Progress, Summary};
use mamba_mock::MockServer;
use serde_json::{json, Value};

/// A chat request line whose user message is `text` (the mock echoes it back).
pub(crate) fn chat_line(id: &str, text: &str) -> String {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 16});
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body}).to_string()
}

/// `n` chat lines `r0`, `r1`, … each saying its own id.
pub(crate) fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| chat_line(&format!("r{i}"), &format!("r{i}"))).collect()
}

/// `dir/in.jsonl` holding `lines`.
pub(crate) fn write_input(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("in.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Options reading `input` and writing `dir/out.jsonl`.
pub(crate) fn options(input: &Path, out: &Path) -> BatchOptions {
    BatchOptions::new(Input::Path(input.to_owned()), out)
}

/// A backend for the mock with no retries of its own: the run retries (the crate's rule).
pub(crate) fn client(server: &MockServer) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("m").base_url(server.base_url()).retry_policy(RetryPolicy::none()).build().unwrap()
}

/// [`client`] as the engine takes it.
pub(crate) fn backend(server: &MockServer) -> Arc<dyn ModelBackend> {
    Arc::new(client(server))
}

/// A run's retries with a millisecond backoff, so that a test waits only where the server
/// says so (`Retry-After`).
pub(crate) fn quick_retries(n: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_retries(n)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(5))
}

/// Completes once `ready` holds (polled every 5 ms, for 20 s at most): a shutdown, or a
/// checkpoint, tied to what happened rather than to a time that a loaded machine may miss.
pub(crate) async fn when(mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(tokio::time::Instant::now() < deadline, "waited 20 s for a condition");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Lines in a file (0 when it does not exist).
pub(crate) fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// Opens and runs a batch to its end (a minute at most).
pub(crate) async fn run(server: &MockServer, options: BatchOptions) -> Result<Summary, BatchError> {
    let batch = Batch::open(options)?;
    let run = batch.run(backend(server), Arc::new(Progress::new()), std::future::pending());
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the batch did not finish")
}

/// The output's records, in file order.
pub(crate) fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Their custom_ids, in file order.
pub(crate) fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r["custom_id"].as_str().unwrap().to_owned()).collect()
}

/// The text an answered record's body holds (the mock's echo of the line's message).
pub(crate) fn answer(record: &Value) -> &str {
    record["response"]["body"]["choices"][0]["message"]["content"].as_str().unwrap_or("")
}

/// `ids` sorted, for comparing sets.
pub(crate) fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// An output record as the engine writes it, for a hand-made earlier output.
pub(crate) fn record(id: &str, status: u16) -> String {
    json!({
        "id": format!("batch_req_{id}"),
        "custom_id": id,
        "response": {"status_code": status, "request_id": "", "body": {"n": id}},
        "error": null,
    })
    .to_string()
}
