//! Output order: completion order by default, input order with `ordered`, and an ordered run
//! sends only `concurrency` lines ahead of the next one to write.

use std::sync::Arc;
use std::time::Duration;

use mamba_batch::{Batch, Progress};
use mamba_mock::{Match, MockServer, Reply, Script};

use crate::support::{answer, backend, ids, numbered, options, records, run, sorted, when, write_input};

/// The first line answers `ms` after the others.
async fn slow_first_line(ms: u64) -> MockServer {
    let slow = Reply::text("r0").delay(Duration::from_millis(ms));
    MockServer::start_with(Script::new().on(Match::contains("r0"), slow)).await.unwrap()
}

/// With `ordered`, the slow first line still comes first and every answer is its own line's;
/// without it, the answers that finished first are written first.
#[tokio::test(flavor = "multi_thread")]
async fn ordered_output_follows_the_input_however_answers_finish() {
    let server = slow_first_line(300).await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(10));
    let want: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();

    let out = dir.path().join("ordered.jsonl");
    let summary = run(&server, options(&input, &out).concurrency(4).ordered(true)).await.unwrap();
    assert_eq!((summary.succeeded, summary.failed, summary.exit_code()), (10, 0, 0));
    let written = records(&out);
    assert_eq!(ids(&written), want, "input order");
    for r in &written {
        assert_eq!(answer(r), r["custom_id"].as_str().unwrap(), "each line holds its own answer: {r}");
        assert_eq!(r["response"]["status_code"], 200);
    }
    assert_eq!(server.chat_requests().len(), 10);

    let out = dir.path().join("unordered.jsonl");
    let summary = run(&server, options(&input, &out).concurrency(4)).await.unwrap();
    assert_eq!(summary.succeeded, 10);
    let got = ids(&records(&out));
    assert_ne!(got[0], "r0", "completion order: the slow line is not first");
    assert_eq!(sorted(got), sorted(want), "every line once");
    assert_eq!(server.chat_requests().len(), 20);
}

/// An ordered run waiting on a slow first line sends no more than `concurrency` lines: the
/// finished ones wait in memory, bounded by the window.
#[tokio::test(flavor = "multi_thread")]
async fn an_ordered_run_sends_only_a_window_ahead() {
    let server = slow_first_line(1500).await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(12));
    let out = dir.path().join("out.jsonl");
    let batch = Batch::open(options(&input, &out).concurrency(3).ordered(true)).unwrap();
    let progress = Arc::new(Progress::new());
    let handle = tokio::spawn(batch.run(backend(&server), Arc::clone(&progress), std::future::pending()));
    when(|| server.chat_requests().len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // r0 is still out: r1 and r2 came back, and nothing past the window of 3 was sent.
    assert_eq!(server.chat_requests().len(), 3, "a window of 3 lines while r0 is out");
    assert_eq!(std::fs::read_to_string(&out).unwrap_or_default(), "", "nothing written before r0");
    let summary = handle.await.unwrap().unwrap();
    assert_eq!(summary.succeeded, 12);
    assert_eq!(ids(&records(&out)), (0..12).map(|i| format!("r{i}")).collect::<Vec<_>>());
    assert_eq!(progress.snapshot().succeeded, 12);
}
