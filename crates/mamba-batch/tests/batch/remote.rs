//! The remote path: the input goes to the server's Files API, a batch is created on its Batch
//! API and polled, and the server's output and error files become the output. The state file
//! makes a second run follow the same batch, never uploading twice.

use std::sync::Arc;
use std::time::Duration;

use mamba_batch::{state_path, BatchError, Progress, RemoteBatch, RemoteOptions};
use mamba_mock::{BatchTiming, Match, MockServer, Reply, Script};
use serde_json::{json, Value};

use crate::support::{chat_line, client, ids, numbered, options, records, when, write_input};

async fn server(step_ms: u64, line_ms: u64) -> MockServer {
    let script = Script::new().on(Match::contains("please fail"), Reply::status(500));
    MockServer::builder()
        .script(script)
        .batch_timing(BatchTiming::new(Duration::from_millis(step_ms), Duration::from_millis(line_ms)))
        .start()
        .await
        .unwrap()
}

fn quick_polls() -> RemoteOptions {
    RemoteOptions::new().poll_interval(Duration::from_millis(10), Duration::from_millis(50))
}

/// The uploads the server received (`POST /v1/files`), as text.
fn uploads(server: &MockServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/v1/files"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_batch_uploads_polls_and_downloads() {
    let server = server(10, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = numbered(6);
    let no_model = json!({"messages": [{"role": "user", "content": "no model named"}]});
    lines.push(
        json!({"custom_id": "bare", "method": "POST", "url": "/v1/chat/completions", "body": no_model}).to_string(),
    );
    lines.push(chat_line("bad", "please fail"));
    let input = write_input(dir.path(), &lines);
    let out = dir.path().join("out.jsonl");
    let batch =
        RemoteBatch::open(options(&input, &out).default_model(Some("filled-in".into())), quick_polls()).unwrap();
    assert_eq!(batch.endpoint(), "/v1/chat/completions");
    assert!(batch.resuming().is_none());
    let progress = Arc::new(Progress::new());
    let summary = batch.run(&client(&server), Arc::clone(&progress), std::future::pending()).await.unwrap();
    assert_eq!(summary.status, "completed");
    assert_eq!((summary.total, summary.succeeded, summary.failed), (8, 7, 1));
    assert_eq!((summary.output_lines, summary.error_lines), (7, 1));
    assert_eq!(summary.exit_code(), 1, "a failed line");
    assert!(summary.uploaded && !summary.interrupted);
    assert_eq!(server.batch_ids(), std::slice::from_ref(&summary.batch_id));
    assert_eq!(server.uploads(), 1);
    assert_eq!(progress.status(), "downloading", "the last step the progress reported");

    // The upload: every line, the default model filled in only where none was named.
    let sent = uploads(&server);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains(r#""model":"filled-in""#) && sent[0].contains(r#""model":"m""#), "{}", sent[0]);
    assert_eq!(sent[0].matches("\"custom_id\"").count(), 8);
    // The output: the answered lines, then the error file's line.
    let written = records(&out);
    assert_eq!(written.len(), 8);
    assert_eq!(ids(&written)[7], "bad");
    assert_eq!(written[7]["response"]["status_code"], 500);
    let r0 = written.iter().find(|r| r["custom_id"] == "r0").unwrap();
    assert_eq!(r0["response"]["body"]["choices"][0]["message"]["content"], "r0");
    let state: Value = serde_json::from_slice(&std::fs::read(state_path(&out)).unwrap()).unwrap();
    assert_eq!((state["batch_id"].as_str(), &state["downloaded"]), (Some(summary.batch_id.as_str()), &json!(true)));

    // Run again: the same batch downloaded again, nothing uploaded, no new batch.
    let again =
        RemoteBatch::open(options(&input, &out).default_model(Some("filled-in".into())), quick_polls()).unwrap();
    assert_eq!(again.resuming().and_then(|s| s.batch_id.clone()), Some(summary.batch_id.clone()));
    let second = again.run(&client(&server), Arc::new(Progress::new()), std::future::pending()).await.unwrap();
    assert!(!second.uploaded);
    assert_eq!((server.uploads(), server.batch_ids().len()), (1, 1));
    assert_eq!(records(&out), written, "the same output");
}

/// Interrupted while polling: the batch goes on on the server, the state file names it, and
/// the next run follows it to its end without a second upload.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_remote_run_follows_the_same_batch() {
    let server = server(10, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(8));
    let out = dir.path().join("out.jsonl");
    let batch = RemoteBatch::open(options(&input, &out), quick_polls()).unwrap();
    // Stopped while polling: once the batch exists on the server.
    let stop = when(|| !server.batch_ids().is_empty());
    let first = batch.run(&client(&server), Arc::new(Progress::new()), stop).await.unwrap();
    assert!(first.interrupted);
    assert!(first.uploaded);
    assert_eq!(first.exit_code(), 130);
    assert!(!out.exists() || records(&out).is_empty(), "nothing downloaded yet");

    let again = RemoteBatch::open(options(&input, &out), quick_polls()).unwrap();
    assert_eq!(again.resuming().and_then(|s| s.batch_id.clone()), Some(first.batch_id.clone()));
    let second = again.run(&client(&server), Arc::new(Progress::new()), std::future::pending()).await.unwrap();
    assert_eq!((second.status.as_str(), second.succeeded, second.uploaded), ("completed", 8, false));
    assert_eq!(
        (server.uploads(), server.batch_ids(), second.batch_id),
        (1, vec![first.batch_id.clone()], first.batch_id)
    );
    assert_eq!(records(&out).len(), 8);
}

/// One batch has one endpoint: lines naming two urls are refused before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn mixed_urls_are_refused_and_nothing_is_uploaded() {
    let server = server(10, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = numbered(2);
    let embed = json!({"model": "e", "input": "x"});
    lines.push(json!({"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": embed}).to_string());
    let input = write_input(dir.path(), &lines);
    let out = dir.path().join("out.jsonl");
    match RemoteBatch::open(options(&input, &out), quick_polls()) {
        Err(BatchError::Refused(why)) => assert!(why.contains("url"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!((server.uploads(), server.request_count()), (0, 0));
    assert!(!out.exists() && !state_path(&out).exists());
}
