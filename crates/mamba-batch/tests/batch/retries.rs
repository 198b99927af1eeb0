//! Retries: a 429 pauses the whole run for the server's `Retry-After` and the line is sent
//! again; 5xx answers are retried with backoff; a line failing past its retries is recorded
//! with the server's status and body, and retried by the next run.

use std::time::Duration;

use mamba_mock::{Match, MockServer, Reply, Rule, Script};

use crate::support::{numbered, options, quick_retries, records, run, write_input};

#[tokio::test(flavor = "multi_thread")]
async fn a_429_pauses_the_run_and_the_line_is_sent_again() {
    let limited = Reply::status(429).header("retry-after", "1");
    let server = MockServer::start_with(Script::new().rule(Rule::new(Match::call(1), limited).times(1))).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(10));
    let out = dir.path().join("out.jsonl");
    let summary = run(&server, options(&input, &out).concurrency(1)).await.unwrap();
    assert_eq!((summary.succeeded, summary.failed), (10, 0));
    assert_eq!(summary.rate_limit_pauses, 1);
    assert!(summary.elapsed_s >= 0.9, "the Retry-After paused the run: {}s", summary.elapsed_s);
    assert_eq!(server.chat_requests().len(), 11, "one request sent twice");
    let written = records(&out);
    assert_eq!(written.len(), 10);
    assert!(written.iter().all(|r| r["response"]["status_code"] == 200));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_and_what_survives_is_recorded() {
    let script = Script::new()
        .rule(Rule::new(Match::contains("r1"), Reply::status(500)).times(2))
        .on(Match::contains("r2"), Reply::status(503).body(serde_json::json!({"error": {"message": "down for good"}})));
    let server = MockServer::start_with(script).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &numbered(4));
    let out = dir.path().join("out.jsonl");
    let started = std::time::Instant::now();
    let summary = run(&server, options(&input, &out).retry(quick_retries(2))).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!((summary.succeeded, summary.failed, summary.exit_code()), (3, 1, 1));
    // r0, r3 once; r1 twice failing then answered; r2 three times failing.
    assert_eq!(server.chat_requests().len(), 1 + 3 + 3 + 1);
    let written = records(&out);
    let of = |id: &str| written.iter().find(|r| r["custom_id"] == id).unwrap().clone();
    assert_eq!(of("r1")["response"]["status_code"], 200);
    let r2 = of("r2");
    assert_eq!(r2["response"]["status_code"], 503, "{r2}");
    assert_eq!(r2["response"]["body"]["error"]["message"], "down for good", "the server's body, kept: {r2}");

    // The server is well again: the next run sends the failed line only.
    server.set_script(Script::new());
    let summary = run(&server, options(&input, &out).retry(quick_retries(2))).await.unwrap();
    assert_eq!((summary.skipped, summary.succeeded, summary.failed), (3, 1, 0));
    assert_eq!(server.chat_requests().len(), 9);
    let written = records(&out);
    assert_eq!(written.len(), 4);
    assert!(written.iter().all(|r| r["response"]["status_code"] == 200));
}
