//! Cancellation: when the shutdown future completes, no new request is sent, the requests in
//! flight are waited for and written whole, and the summary says so; a later run finishes.

use std::sync::Arc;
use std::time::Duration;

use mamba_batch::{Batch, Progress, Stop};
use mamba_mock::{MockServer, Reply, Script};

use crate::support::{backend, ids, numbered, options, records, run, sorted, when, write_input};

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_waits_for_the_requests_in_flight() {
    let slow = Reply::text("ok").delay(Duration::from_millis(400));
    let server = MockServer::start_with(Script::new().always(slow)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(20));
    let out = dir.path().join("out.jsonl");
    let batch = Batch::open(options(&input, &out).concurrency(3)).unwrap();
    let progress = Arc::new(Progress::new());
    let summary =
        batch.run(backend(&server), Arc::clone(&progress), when(|| server.chat_requests().len() >= 3)).await.unwrap();
    assert_eq!(summary.stopped, Some(Stop::Interrupted));
    assert_eq!(summary.exit_code(), 130);
    assert!(summary.elapsed_s >= 0.35, "the run waited for the 400 ms answers: {}s", summary.elapsed_s);
    assert_eq!((summary.succeeded, summary.failed, summary.not_sent), (3, 0, 17));
    assert_eq!(server.chat_requests().len(), 3, "nothing sent after the shutdown");
    let written = records(&out);
    assert_eq!(written.len(), 3);
    assert!(written.iter().all(|r| r["response"]["status_code"] == 200));
    assert_eq!(progress.snapshot().in_flight, 0);

    server.set_script(Script::new());
    let summary = run(&server, options(&input, &out).concurrency(8)).await.unwrap();
    assert_eq!((summary.skipped, summary.succeeded, summary.stopped), (3, 17, None));
    assert_eq!(sorted(ids(&records(&out))), sorted((0..20).map(|i| format!("r{i}")).collect()));
    assert_eq!(server.chat_requests().len(), 20);
}
