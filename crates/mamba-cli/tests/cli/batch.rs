//! End-to-end tests of `mamba-llm batch` against the mock server, and one live run against
//! the llama.cpp peer.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use mamba_mock::{Match, MockServer, Reply, Rule, Script};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::batch::{batch, chat_line, json_out as summary, records, write_input};
use crate::common::{closed_port, cmd, llamacpp_peer, ran_live, stderr, temp_dir as tmp_dir};

fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r["custom_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_a_file_and_writes_openai_batch_output() {
    let server = MockServer::start().await.unwrap();
    let dir = tmp_dir("basic");
    let mut lines: Vec<String> = (0..30).map(|i| chat_line(&format!("r{i}"), &format!("hello {i}"), None)).collect();
    lines.push(String::new());
    lines.push(chat_line("named", "named model", Some("other-model")));
    lines.push(
        json!({"custom_id": "e1", "method": "POST", "url": "/v1/embeddings", "body": {"input": ["a b", "c"]}})
            .to_string(),
    );
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &url,
        "-m",
        "mock-model",
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!((s["total"].as_u64(), s["succeeded"].as_u64(), s["failed"].as_u64()), (Some(32), Some(32), Some(0)));
    assert!(s["input_tokens"].as_u64().unwrap() > 0);
    let recs = records(&out);
    assert_eq!(recs.len(), 32);
    let by_id: HashMap<String, &Value> =
        recs.iter().map(|r| (r["custom_id"].as_str().unwrap().to_owned(), r)).collect();
    let r = by_id["r3"];
    assert!(r["id"].as_str().unwrap().starts_with("batch_req_"));
    assert_eq!(r["response"]["status_code"], 200);
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["response"]["body"]["object"], "chat.completion");
    assert_eq!(r["response"]["body"]["model"], "mock-model", "-m fills a missing model");
    assert_eq!(by_id["named"]["response"]["body"]["model"], "other-model", "-m never overrides");
    assert_eq!(by_id["e1"]["response"]["body"]["data"].as_array().unwrap().len(), 2);
    // The bodies were sent as given: the server saw the line's own body.
    let sent: Vec<Value> = server.chat_requests().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert!(sent.iter().any(|b| b["model"] == "other-model" && b["max_tokens"] == 16));
    assert_eq!(sent.len(), 31);
}

/// The Responses API and legacy text completions in the same file: each line goes to its own
/// endpoint and the server's answer is kept verbatim.
#[tokio::test(flavor = "multi_thread")]
async fn responses_and_text_completion_lines() {
    let server = MockServer::start().await.unwrap();
    let dir = tmp_dir("apis");
    let lines = vec![
        json!({"custom_id": "resp", "method": "POST", "url": "/v1/responses",
               "body": {"input": "hello responses", "max_output_tokens": 16}})
        .to_string(),
        json!({"custom_id": "text", "method": "POST", "url": "/v1/completions",
               "body": {"prompt": "hello text", "max_tokens": 16}})
        .to_string(),
    ];
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &server.base_url(),
        "-m",
        "m",
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let recs = records(&out);
    let by_id: HashMap<String, &Value> =
        recs.iter().map(|r| (r["custom_id"].as_str().unwrap().to_owned(), r)).collect();
    assert_eq!(by_id["resp"]["response"]["body"]["object"], "response");
    assert_eq!(by_id["text"]["response"]["body"]["object"], "text_completion");
    assert_eq!(by_id["text"]["response"]["body"]["choices"][0]["text"], "hello text");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&"/v1/responses".to_owned()) && paths.contains(&"/v1/completions".to_owned()), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_lines_exit_2_and_send_nothing() {
    let server = MockServer::start().await.unwrap();
    let dir = tmp_dir("invalid");
    let mut lines: Vec<String> = vec![
        chat_line("a", "fine", Some("m")),
        "{not json".into(),
        json!({"custom_id": "b", "method": "GET", "url": "/v1/chat/completions", "body": {}}).to_string(),
        json!({"custom_id": "c", "method": "POST", "url": "/v1/images/generations", "body": {"model": "m"}})
            .to_string(),
        chat_line("d", "no model", None),
        chat_line("a", "duplicate id", Some("m")),
    ];
    for i in 0..30 {
        lines.push(json!({"method": "POST"}).to_string() + &" ".repeat(i % 2));
    }
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let o = batch(&[input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("line 2: not a JSON object"), "{err}");
    assert!(err.contains("line 3: method must be \"POST\""), "{err}");
    assert!(err.contains("line 4: url \"/v1/images/generations\" is not supported"), "{err}");
    assert!(err.contains("line 5: body.model is missing"), "{err}");
    assert!(err.contains("line 6: custom_id \"a\" is already used on line 1"), "{err}");
    assert!(err.contains("line 7: custom_id is missing"), "{err}");
    assert_eq!(err.matches("mamba-llm: line ").count(), 20, "the first 20 are listed: {err}");
    assert!(err.contains("35 invalid lines"), "{err}");
    assert!(server.requests().is_empty());
    assert!(!out.exists());
    // As JSON.
    let o = batch(&[input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--json"]).await;
    assert_eq!(o.status.code(), Some(2));
    let v = summary(&o);
    assert_eq!(v["error"]["kind"], "invalid_input");
    assert_eq!(v["error"]["lines"][0]["line"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_estimates_and_sends_nothing() {
    let server = MockServer::start().await.unwrap();
    let dir = tmp_dir("dry");
    // "abcdefgh" is 2 tokens, plus 4 for the message; max_tokens 16.
    let lines: Vec<String> = (0..10).map(|i| chat_line(&format!("r{i}"), "abcdefgh", Some("gpt-4o-mini"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let o =
        batch(&[input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--dry-run", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = summary(&o);
    assert_eq!(plan["to_send"], 10);
    assert_eq!(plan["prompt_tokens"], 60);
    assert_eq!(plan["max_output_tokens"], 160);
    let cost = plan["estimated_cost_usd"].as_f64().unwrap();
    assert!((cost - (60.0 * 0.15 + 160.0 * 0.6) / 1e6).abs() < 1e-12, "{cost}");
    assert!(server.requests().is_empty());
    assert!(!out.exists());
    let o = batch(&[input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--dry-run"]).await;
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("10 requests to send"));
}

/// Killed mid-run (SIGKILL, so nothing is cleaned up), with a torn last line added as a crash
/// in the middle of a write leaves it: the second run repairs the output, skips what is done,
/// and ends with every line answered once.
#[tokio::test(flavor = "multi_thread")]
async fn resumes_after_a_kill_and_repairs_a_torn_line() {
    let server =
        MockServer::start_with(Script::new().always(Reply { delay_ms: Some(20), ..Reply::text("ok") })).await.unwrap();
    let dir = tmp_dir("resume");
    let n = 300;
    let lines: Vec<String> = (0..n).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let mut c = cmd();
    c.arg("batch").args([
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &url,
        "--concurrency",
        "4",
    ]);
    c.stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let written = std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0);
        if written >= 40 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the first run wrote nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.unwrap();
    let before = records(&out);
    assert!(before.len() < n, "killed before the end");
    let sent_before = server.chat_requests().len();
    // A torn last line.
    let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    f.write_all(br#"{"id":"batch_req_x","custom_id":"r299","response":{"status_co"#).unwrap();
    drop(f);
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &url,
        "--concurrency",
        "8",
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["skipped"].as_u64().unwrap() as usize, before.len());
    assert_eq!((s["succeeded"].as_u64().unwrap() as usize), n - before.len());
    let after = records(&out);
    let mut got = ids(&after);
    got.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    want.sort();
    assert_eq!(got, want, "every line once");
    // At most the requests in flight at the kill (4) were sent twice.
    let total_sent = server.chat_requests().len();
    assert!(total_sent <= n + 4, "{total_sent} requests for {n} lines");
    assert!(sent_before >= before.len());
}

/// Ctrl-C stops sending, waits for the requests in flight (their lines are written whole),
/// exits 130, and a later run finishes the job.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_waits_for_requests_in_flight() {
    let server =
        MockServer::start_with(Script::new().always(Reply { delay_ms: Some(200), ..Reply::text("ok") })).await.unwrap();
    let dir = tmp_dir("ctrlc");
    let n = 100;
    let lines: Vec<String> = (0..n).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let args =
        [input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--concurrency", "4", "--json"];
    let mut c = cmd();
    c.arg("batch").args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.chat_requests().len() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "no requests");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["stopped"], "interrupted");
    let sent = server.chat_requests().len();
    let written = records(&out).len();
    assert_eq!(written, sent, "every request sent was waited for and written");
    assert!(written < n);
    let o = batch(&args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(records(&out).len(), n);
    assert_eq!(server.chat_requests().len(), n);
}

/// Failed lines keep the server's status and body; a later run sends them again, unless
/// --no-retry-failed; a request without an HTTP answer is an `error` with the kind.
#[tokio::test(flavor = "multi_thread")]
async fn failures_are_recorded_and_retried_on_resume() {
    let bad = json!({"error": {"message": "bad thing", "type": "invalid_request_error", "code": "nope"}});
    let server = MockServer::start_with(Script::new().on(
        Match::contains("fail"),
        Reply {
            status: Some(400),
            body: Some(bad.clone()),
            headers: [("x-request-id".to_owned(), "req_bad1".to_owned())].into(),
            ..Reply::default()
        },
    ))
    .await
    .unwrap();
    let dir = tmp_dir("failures");
    let lines = vec![
        chat_line("ok1", "fine", Some("m")),
        chat_line("bad1", "please fail", Some("m")),
        chat_line("ok2", "fine", Some("m")),
    ];
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let args = [input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--json"];
    let o = batch(&args).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(summary(&o)["failed"], 1);
    let recs = records(&out);
    let bad_rec = recs.iter().find(|r| r["custom_id"] == "bad1").unwrap();
    assert_eq!(bad_rec["response"]["status_code"], 400);
    assert_eq!(bad_rec["response"]["body"], bad);
    assert_eq!(bad_rec["response"]["request_id"], "req_bad1", "the error answer's x-request-id is kept");
    assert_eq!(bad_rec["error"], Value::Null);
    // Kept as they are.
    let mut keep = args.to_vec();
    keep.push("--no-retry-failed");
    let o = batch(&keep).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&o)["skipped"], 3);
    assert_eq!(records(&out).len(), 3);
    // Sent again, and now it succeeds.
    server.set_script(Script::new());
    let o = batch(&args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&o)["succeeded"], 1);
    let recs = records(&out);
    assert_eq!(recs.len(), 3);
    assert!(recs.iter().all(|r| r["response"]["status_code"] == 200));
    // No HTTP answer at all.
    let closed = format!("http://127.0.0.1:{}/v1", closed_port());
    let out2 = dir.join("out2.jsonl");
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--base-url",
        &closed,
        "--retries",
        "0",
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let recs = records(&out2);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["response"], Value::Null);
    assert_eq!(recs[0]["error"]["code"], "connect");
}

/// --max-cost stops sending, exits 3, and a run with a higher cap finishes the job.
#[tokio::test(flavor = "multi_thread")]
async fn cost_cap_stops_and_a_higher_cap_resumes() {
    // Every answer reports 1000 prompt and 1000 completion tokens of gpt-4o-mini:
    // 0.00015 + 0.0006 = $0.00075 a request.
    let usage = mamba_mock::MockUsage { prompt_tokens: 1000, completion_tokens: 1000 };
    let server =
        MockServer::start_with(Script::new().always(Reply { usage: Some(usage), ..Reply::text("ok") })).await.unwrap();
    let dir = tmp_dir("cost");
    let lines: Vec<String> = (0..20)
        .map(|i| {
            json!({"custom_id": format!("r{i}"), "method": "POST", "url": "/v1/chat/completions",
                   "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1000}})
            .to_string()
        })
        .collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let run = |cap: &'static str| {
        let (input, out, url) = (input.clone(), out.clone(), url.clone());
        async move {
            batch(&[
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--base-url",
                &url,
                "--concurrency",
                "2",
                "--max-cost",
                cap,
                "--json",
            ])
            .await
        }
    };
    let o = run("0.006").await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["stopped"], "cost_cap");
    let spent = s["cost_usd"].as_f64().unwrap();
    assert!(spent <= 0.006 + 1e-9, "{spent}");
    let done = records(&out).len();
    assert!((6..=8).contains(&done), "{done} requests under a $0.006 cap");
    assert_eq!(server.chat_requests().len(), done);
    let o = run("1").await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["skipped"].as_u64().unwrap() as usize, done);
    assert!((s["total_cost_usd"].as_f64().unwrap() - 20.0 * 0.00075).abs() < 1e-9);
    assert_eq!(records(&out).len(), 20);
}

/// N shards of one input cover every line exactly once; outputs concatenate.
#[tokio::test(flavor = "multi_thread")]
async fn shards_cover_every_line_once() {
    let server = MockServer::start().await.unwrap();
    let dir = tmp_dir("shards");
    let n = 100;
    let lines: Vec<String> = (0..n).map(|i| chat_line(&format!("id-{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let url = server.base_url();
    let mut all = Vec::new();
    for k in 0..3 {
        let out = dir.join(format!("out{k}.jsonl"));
        let shard = format!("{k}/3");
        let o =
            batch(&[input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--shard", &shard]).await;
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let got = ids(&records(&out));
        assert!(!got.is_empty() && got.len() < n, "shard {k} took {}", got.len());
        all.extend(got);
    }
    all.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
    want.sort();
    assert_eq!(all, want);
    assert_eq!(server.chat_requests().len(), n);
    let o = batch(&[input.to_str().unwrap(), "-o", "x", "--shard", "3/3"]).await;
    assert_eq!(o.status.code(), Some(2));
}

/// --ordered writes in input order although early requests answer last.
#[tokio::test(flavor = "multi_thread")]
async fn ordered_output_follows_the_input() {
    let server = MockServer::start_with(
        Script::new().on(Match::contains("slow"), Reply { delay_ms: Some(300), ..Reply::text("late") }),
    )
    .await
    .unwrap();
    let dir = tmp_dir("ordered");
    let lines: Vec<String> =
        (0..40).map(|i| chat_line(&format!("r{i}"), if i % 10 == 0 { "slow" } else { "fast" }, Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let url = server.base_url();
    let want: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
    let out = dir.join("ordered.jsonl");
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &url,
        "--ordered",
        "--concurrency",
        "8",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(ids(&records(&out)), want);
    let out = dir.join("unordered.jsonl");
    let o =
        batch(&[input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--base-url", &url, "--concurrency", "8"]).await;
    assert_eq!(o.status.code(), Some(0));
    let got = ids(&records(&out));
    assert_ne!(got, want, "without --ordered the slow lines come later");
    assert_eq!(got.len(), 40);
}

/// Gzip on stdin; two replicas share the load.
#[tokio::test(flavor = "multi_thread")]
async fn gzip_stdin_and_replicas() {
    let a = MockServer::start().await.unwrap();
    let b = MockServer::start().await.unwrap();
    let dir = tmp_dir("gzip");
    let lines: Vec<String> = (0..40).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let out = dir.join("out.jsonl");
    let mut c = cmd();
    c.arg("batch").args([
        "-",
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &a.base_url(),
        "--base-url",
        &b.base_url(),
        "--json",
    ]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&gz).await.unwrap();
    drop(stdin);
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&o)["succeeded"], 40);
    assert_eq!(records(&out).len(), 40);
    let (na, nb) = (a.chat_requests().len(), b.chat_requests().len());
    assert_eq!(na + nb, 40);
    assert!(na >= 5 && nb >= 5, "both replicas served: {na} and {nb}");
}

/// A 429 with Retry-After pauses the whole run (not only its own request), and the request
/// succeeds on its retry.
#[tokio::test(flavor = "multi_thread")]
async fn a_429_pauses_the_run() {
    let server = MockServer::start_with(
        Script::new().rule(
            Rule::new(
                Match::call(1),
                Reply {
                    status: Some(429),
                    headers: [("retry-after".to_owned(), "1".to_owned())].into(),
                    ..Reply::default()
                },
            )
            .times(1),
        ),
    )
    .await
    .unwrap();
    let dir = tmp_dir("429");
    let lines: Vec<String> = (0..20).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &url,
        "--concurrency",
        "1",
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["succeeded"], 20);
    assert_eq!(s["rate_limit_pauses"], 1, "{s}");
    assert!(s["elapsed_s"].as_f64().unwrap() >= 0.9, "the Retry-After paused the run: {s}");
    assert_eq!(server.chat_requests().len(), 21);
    assert!(records(&out).iter().all(|r| r["response"]["status_code"] == 200));
}

/// A short run against the llama.cpp peer (one request at a time: the peer interrupts a
/// running request when another arrives). Without `MAMBA_LIVE_LLAMACPP_URL` this fails,
/// unless `MAMBA_SKIP_PEERS=1`.
#[tokio::test(flavor = "multi_thread")]
async fn live_llamacpp_batch() {
    let Some(url) = llamacpp_peer("live_llamacpp_batch") else { return };
    let dir = tmp_dir("live");
    let lines: Vec<String> = (0..3)
        .map(|i| {
            json!({"custom_id": format!("q{i}"), "method": "POST", "url": "/v1/chat/completions",
                   "body": {"messages": [{"role": "system", "content": "You are a helpful AI assistant."},
                                          {"role": "user", "content": format!("Say the number {i}.")}],
                            "max_tokens": 8, "temperature": 0}})
            .to_string()
        })
        .collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--base-url",
        &url,
        "--preset",
        "llamacpp",
        "-m",
        "smollm2-135m-instruct",
        "--concurrency",
        "1",
        "--timeout",
        "120",
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["succeeded"], 3);
    assert!(s["output_tokens"].as_u64().unwrap() > 0);
    let recs = records(&out);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["response"]["status_code"], 200);
        assert!(r["response"]["body"]["choices"][0]["message"]["content"].is_string(), "{r}");
    }
    ran_live("live_llamacpp_batch");
}

#[path = "hostile/batch.rs"]
mod hostile;
