//! Resuming: a run stopped part way resumes with the same output and sends only what is left;
//! the output is repaired first (a torn last line cut off, repeated custom_ids and lines
//! that are not records moved out), failed lines are retried unless asked not to.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use mamba_batch::{invalid_lines_path, Batch, Progress, Stop};
use mamba_mock::{Match, MockServer, Reply, Script};

use crate::support::{backend, ids, line_count, numbered, options, record, records, run, sorted, when, write_input};

/// A run stopped part way (once 8 lines are written) wrote whole lines only; with a torn line appended (a crash in
/// the middle of a write), the next run cuts it off, skips what was done, and sends each
/// remaining line once: 60 requests for 60 lines in all.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_resumes_where_it_stopped() {
    let slow = Reply::text("ok").delay(Duration::from_millis(20));
    let server = MockServer::start_with(Script::new().always(slow)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(60));
    let out = dir.path().join("out.jsonl");

    let batch = Batch::open(options(&input, &out).concurrency(4)).unwrap();
    let stop = when(|| line_count(&out) >= 8);
    let first = batch.run(backend(&server), Arc::new(Progress::new()), stop).await.unwrap();
    assert_eq!(first.stopped, Some(Stop::Interrupted));
    assert_eq!(first.exit_code(), 130);
    let before = records(&out);
    assert!(!before.is_empty() && before.len() < 60, "stopped part way: {} lines", before.len());
    assert_eq!(before.len() as u64, first.succeeded);
    assert_eq!(first.not_sent, 60 - first.succeeded);
    assert_eq!(server.chat_requests().len(), before.len(), "the requests in flight were waited for and written");

    let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    f.write_all(br#"{"id":"batch_req_x","custom_id":"r59","response":{"status_co"#).unwrap();
    drop(f);
    let batch = Batch::open(options(&input, &out).concurrency(8)).unwrap();
    let plan = batch.plan().clone();
    assert!(plan.repaired_torn_line);
    assert_eq!(plan.already_done as usize, before.len());
    assert_eq!(plan.to_send as usize, 60 - before.len());
    let second = batch.run(backend(&server), Arc::new(Progress::new()), std::future::pending()).await.unwrap();
    assert_eq!((second.skipped as usize, second.succeeded as usize), (before.len(), 60 - before.len()));
    assert_eq!(second.stopped, None);
    let after = records(&out);
    assert_eq!(after[..before.len()], before[..], "the earlier lines are kept as they were");
    assert_eq!(sorted(ids(&after)), sorted((0..60).map(|i| format!("r{i}")).collect()), "every line once");
    assert_eq!(server.chat_requests().len(), 60, "no line sent twice");
}

/// An output holding a repeated custom_id, a line that is no record, and a failed line: the
/// plan counts and names them, the repeat is dropped, the junk moved to `OUT.invalid`, the
/// failed line sent again; the rest is left alone.
#[tokio::test(flavor = "multi_thread")]
async fn repeats_and_junk_are_moved_aside_and_failures_retried() {
    let server = MockServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(5));
    let out = dir.path().join("out.jsonl");
    let junk = "this line is not a record";
    let earlier = [record("r0", 200), record("r0", 200), junk.to_owned(), record("r1", 500), record("r2", 200)];
    std::fs::write(&out, earlier.join("\n") + "\n").unwrap();

    let batch = Batch::open(options(&input, &out)).unwrap();
    let plan = batch.plan().clone();
    assert_eq!((plan.lines, plan.in_shard, plan.already_done, plan.to_send), (5, 5, 2, 3));
    assert_eq!((plan.duplicates_removed, plan.duplicate_ids.clone()), (1, vec!["r0".to_owned()]));
    assert_eq!((plan.invalid_output_lines, plan.invalid_output_line_numbers.clone()), (1, vec![3]));
    assert_eq!(plan.retrying_failed, 1);
    assert_eq!(plan.invalid_lines_file.as_deref(), Some(invalid_lines_path(&out).as_path()));
    assert_eq!(std::fs::read_to_string(invalid_lines_path(&out)).unwrap(), format!("{junk}\n"));
    // Repaired at open: the kept lines only, in their order.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("{}\n{}\n", record("r0", 200), record("r2", 200)));

    let summary = batch.run(backend(&server), Arc::new(Progress::new()), std::future::pending()).await.unwrap();
    assert_eq!((summary.skipped, summary.succeeded, summary.failed), (2, 3, 0));
    let after = records(&out);
    assert_eq!(ids(&after)[..2], ["r0", "r2"]);
    assert_eq!(sorted(ids(&after)), ["r0", "r1", "r2", "r3", "r4"]);
    assert!(after.iter().all(|r| r["response"]["status_code"] == 200));
    let sent: Vec<String> = server
        .chat_requests()
        .iter()
        .map(|r| r.json.as_ref().unwrap()["messages"][0]["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(sent), ["r1", "r3", "r4"], "only the failed and the missing lines");
}

/// With `retry_failed(false)` a failed line counts as done: it stays as it was and is not
/// sent; a line failing in this run is recorded with the server's status and body.
#[tokio::test(flavor = "multi_thread")]
async fn failed_lines_are_kept_when_asked() {
    let server = MockServer::start_with(Script::new().on(Match::contains("r3"), Reply::status(400))).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(4));
    let out = dir.path().join("out.jsonl");
    std::fs::write(&out, record("r1", 500) + "\n").unwrap();

    let summary = run(&server, options(&input, &out).retry_failed(false)).await.unwrap();
    assert_eq!((summary.skipped, summary.succeeded, summary.failed, summary.exit_code()), (1, 2, 1, 1));
    let after = records(&out);
    assert_eq!(
        after[0].to_string(),
        serde_json::from_str::<serde_json::Value>(&record("r1", 500)).unwrap().to_string()
    );
    let r3 = after.iter().find(|r| r["custom_id"] == "r3").unwrap();
    assert_eq!(r3["response"]["status_code"], 400, "{r3}");
    assert!(r3["response"]["body"].is_object(), "the server's error body is kept: {r3}");
    assert_eq!(server.chat_requests().len(), 3, "r1 was not sent");

    // Run again with retries of failed lines: r1 and r3 are sent; r3 fails again.
    let summary = run(&server, options(&input, &out)).await.unwrap();
    assert_eq!((summary.skipped, summary.succeeded, summary.failed), (2, 1, 1));
    assert_eq!(server.chat_requests().len(), 5);
}
