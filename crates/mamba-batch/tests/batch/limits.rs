//! The cost cap: a run stops sending before what the output's lines cost (earlier runs
//! included) plus what is in flight would pass it, and a run with a higher cap finishes.

use mamba_batch::Stop;
use mamba_mock::{MockServer, MockUsage, Reply, Script};
use serde_json::json;

use crate::support::{options, records, run, write_input};

#[tokio::test(flavor = "multi_thread")]
async fn the_cost_cap_stops_a_run_and_a_higher_cap_resumes_it() {
    // Every answer reports 1000 prompt and 1000 completion tokens of gpt-4o-mini:
    // 0.00015 + 0.0006 = $0.00075 a request.
    let usage = MockUsage { prompt_tokens: 1000, completion_tokens: 1000 };
    let server =
        MockServer::start_with(Script::new().always(Reply { usage: Some(usage), ..Reply::text("ok") })).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..20)
        .map(|i| {
            let body =
                json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1000});
            json!({"custom_id": format!("r{i}"), "method": "POST", "url": "/v1/chat/completions", "body": body})
                .to_string()
        })
        .collect();
    let input = write_input(dir.path(), &lines);
    let out = dir.path().join("out.jsonl");

    let capped = run(&server, options(&input, &out).concurrency(2).max_cost(Some(0.006))).await.unwrap();
    assert_eq!((capped.stopped, capped.exit_code()), (Some(Stop::CostCap), 3));
    assert!(capped.cost_usd <= 0.006 + 1e-9, "{}", capped.cost_usd);
    let done = records(&out).len();
    assert!((6..=8).contains(&done), "{done} requests under a $0.006 cap");
    assert_eq!(capped.succeeded as usize, done);
    assert_eq!(server.chat_requests().len(), done, "nothing sent past the cap");
    assert!((capped.cost_usd - done as f64 * 0.00075).abs() < 1e-9, "the reported usage, priced");

    let rest = run(&server, options(&input, &out).concurrency(2).max_cost(Some(1.0))).await.unwrap();
    assert_eq!((rest.stopped, rest.skipped as usize, rest.succeeded as usize), (None, done, 20 - done));
    assert!((rest.total_cost_usd - 20.0 * 0.00075).abs() < 1e-9, "earlier runs counted: {}", rest.total_cost_usd);
    assert_eq!(records(&out).len(), 20);
    assert_eq!(server.chat_requests().len(), 20);
}
