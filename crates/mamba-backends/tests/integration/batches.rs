//! The Files and Batch APIs against `mamba-mock`'s Batch API: a whole batch (upload, create,
//! poll, download), cancel, errors, the key kept out of them, and the same calls through the
//! reqwest transport.

use std::time::Duration;

use mamba_backends::{batches::BatchStatus, ErrorKind, OpenAICompatibleBackend, RetryPolicy};
use mamba_mock::{BatchTiming, Match, MockServer, Reply, Script};
use serde_json::{json, Value};

fn line(id: &str, text: &str) -> String {
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions",
           "body": {"model": "m", "messages": [{"role": "user", "content": text}]}})
    .to_string()
}

fn client(url: &str, key: Option<&str>) -> OpenAICompatibleBackend {
    let mut b = OpenAICompatibleBackend::builder("m").base_url(url).retry_policy(RetryPolicy::none());
    if let Some(k) = key {
        b = b.api_key(k);
    }
    b.build().unwrap()
}

async fn until_done(b: &OpenAICompatibleBackend, id: &str) -> mamba_backends::batches::BatchJob {
    let mut seen = Vec::new();
    loop {
        let job = b.batches().retrieve_batch(id).await.unwrap();
        if seen.last() != Some(&job.status) {
            seen.push(job.status.clone());
        }
        if job.status.is_terminal() {
            assert!(seen.len() >= 2, "polling saw the batch move: {seen:?}");
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A whole batch: the upload is multipart with purpose `batch`, the key goes along, the batch
/// runs every line through the mock's rendering (a line the script fails goes to the error
/// file), and the files hold one record per line.
#[tokio::test]
async fn a_batch_from_upload_to_download() {
    let script = Script::new().on(Match::contains("please fail"), Reply::status(500));
    let server = MockServer::builder()
        .script(script)
        .api_key("sk-batch")
        .batch_timing(BatchTiming::new(Duration::from_millis(20), Duration::from_millis(5)))
        .start()
        .await
        .unwrap();
    let b = client(&server.base_url(), Some("sk-batch"));
    let input = [line("a", "hello"), line("b", "please fail"), line("c", "bye")].join("\n") + "\n";
    let file = b.batches().upload_file("batch", "in.jsonl", input.as_bytes()).await.unwrap();
    assert!(file.id.starts_with("file-"));
    assert_eq!(file.bytes, Some(input.len() as u64));
    assert_eq!(file.purpose.as_deref(), Some("batch"));
    let upload = server.requests().into_iter().find(|r| r.path == "/v1/files").unwrap();
    assert!(upload.header("content-type").unwrap().starts_with("multipart/form-data; boundary="));
    assert_eq!(upload.header("authorization"), Some("Bearer sk-batch"));
    assert_eq!(b.batches().retrieve_file(&file.id).await.unwrap().filename.as_deref(), Some("in.jsonl"));
    assert_eq!(&b.batches().file_content(&file.id).await.unwrap()[..], input.as_bytes());

    let job = b.batches().create_batch(&file.id, "/v1/chat/completions", "24h", None).await.unwrap();
    assert_eq!(job.status, BatchStatus::Validating);
    assert_eq!(job.input_file_id.as_deref(), Some(file.id.as_str()));
    let done = until_done(&b, &job.id).await;
    assert_eq!(done.status, BatchStatus::Completed);
    assert_eq!((done.request_counts.total, done.request_counts.completed, done.request_counts.failed), (3, 2, 1));
    let output = b.batches().file_content(done.output_file_id.as_deref().unwrap()).await.unwrap();
    let records: Vec<Value> =
        output.split(|c| *c == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["custom_id"], "a");
    assert_eq!(records[0]["response"]["status_code"], 200);
    assert_eq!(records[0]["response"]["body"]["choices"][0]["message"]["content"], "hello");
    // The error file, read piece by piece.
    let mut download = b.batches().file_download(done.error_file_id.as_deref().unwrap()).await.unwrap();
    let mut errors = Vec::new();
    while download.chunk(&mut errors).await.unwrap() > 0 {}
    let error: Value = serde_json::from_slice(errors.trim_ascii()).unwrap();
    assert_eq!(error["custom_id"], "b");
    assert_eq!(error["response"]["status_code"], 500);

    let list = b.batches().list_batches(None, Some(10)).await.unwrap();
    assert_eq!(list.data.len(), 1);
    assert_eq!(list.data[0].id, job.id);
    assert!(b.batches().delete_file(&file.id).await.unwrap()["deleted"].as_bool().unwrap());
}

/// Cancel: `cancelling`, then `cancelled` with the output of the lines that ran.
#[tokio::test]
async fn cancel_keeps_the_partial_output() {
    let server = MockServer::builder()
        .batch_timing(BatchTiming::new(Duration::from_millis(5), Duration::from_millis(40)))
        .start()
        .await
        .unwrap();
    let b = client(&server.base_url(), None);
    let input: Vec<String> = (0..50).map(|i| line(&format!("r{i}"), "x")).collect();
    let file = b.batches().upload_file("batch", "in.jsonl", input.join("\n").as_bytes()).await.unwrap();
    let job = b.batches().create_batch(&file.id, "/v1/chat/completions", "24h", None).await.unwrap();
    loop {
        let now = b.batches().retrieve_batch(&job.id).await.unwrap();
        if now.request_counts.completed >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelling = b.batches().cancel_batch(&job.id).await.unwrap();
    assert_eq!(cancelling.status, BatchStatus::Cancelling);
    let done = until_done(&b, &job.id).await;
    assert_eq!(done.status, BatchStatus::Cancelled);
    let ran = done.request_counts.completed;
    assert!((2..50).contains(&ran), "{ran}");
    let output = b.batches().file_content(done.output_file_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(output.iter().filter(|c| **c == b'\n').count() as u64, ran);
    // A finished batch cannot be cancelled: the server's 409 is an error.
    assert_eq!(b.batches().cancel_batch(&job.id).await.unwrap_err().status(), Some(409));
}

/// Errors are classified like every other call, and never carry the key.
#[tokio::test]
async fn errors_are_classified_and_redacted() {
    let server = MockServer::builder().api_key("sk-right").start().await.unwrap();
    let b = client(&server.base_url(), Some("sk-right"));
    let missing = b.batches().retrieve_batch("batch-nope").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
    let bad = b.batches().create_batch("file-nope", "/v1/chat/completions", "24h", None).await.unwrap_err();
    assert_eq!(bad.status(), Some(404));
    let file = b.batches().upload_file("batch", "in.jsonl", line("a", "x").as_bytes()).await.unwrap();
    let endpoint = b.batches().create_batch(&file.id, "/v1/images/generations", "24h", None).await.unwrap_err();
    assert_eq!(endpoint.kind(), ErrorKind::InvalidRequest);
    let wrong = client(&server.base_url(), Some("sk-wrong-secret"));
    let e = wrong.batches().upload_file("batch", "in.jsonl", b"{}").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert!(!format!("{e} {e:?}").contains("sk-wrong-secret"));
    assert!(b.batches().retrieve_batch("").await.is_err());
    // An input the server refuses in validation: the batch ends `failed`, its errors listed.
    let mixed =
        [line("a", "x"), json!({"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {}}).to_string()];
    let file = b.batches().upload_file("batch", "in.jsonl", mixed.join("\n")).await.unwrap();
    let job = b.batches().create_batch(&file.id, "/v1/chat/completions", "24h", None).await.unwrap();
    let failed = until_done(&b, &job.id).await;
    assert_eq!(failed.status, BatchStatus::Failed);
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(failed.errors[0].line, Some(2));
    assert_eq!(failed.errors[0].code.as_deref(), Some("mismatched_url"));
    assert_eq!(failed.output_file_id, None);
}

/// The same calls through the reqwest transport: the multipart content type travels with
/// the body.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn through_reqwest() {
    let server = MockServer::start().await.unwrap();
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(server.base_url())
        .transport(std::sync::Arc::new(mamba_backends::transport::ReqwestTransport::default()))
        .build()
        .unwrap();
    let file = b.batches().upload_file("batch", "in.jsonl", line("a", "hi").as_bytes()).await.unwrap();
    let job = b.batches().create_batch(&file.id, "/v1/chat/completions", "24h", None).await.unwrap();
    let done = until_done(&b, &job.id).await;
    assert_eq!(done.request_counts.completed, 1);
    let mut download = b.batches().file_download(done.output_file_id.as_deref().unwrap()).await.unwrap();
    let mut out = Vec::new();
    while download.chunk(&mut out).await.unwrap() > 0 {}
    assert!(String::from_utf8(out).unwrap().contains("\"custom_id\":\"a\""));
}
