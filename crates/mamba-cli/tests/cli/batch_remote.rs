//! End-to-end tests of `mamba-llm batch --remote` and `batch status|cancel` against the Batch
//! API of `mamba-mock`.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use mamba_backends::{OpenAICompatibleBackend, RetryPolicy};
use mamba_mock::{BatchTiming, Match, MockServer, Reply, Script};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::batch::{batch, chat_line, json_out, records, write_input};
use crate::common::{cmd, stderr, temp_dir};

fn client(server: &MockServer) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("m").base_url(server.base_url()).retry_policy(RetryPolicy::none()).build().unwrap()
}

/// How many times the server was asked for a batch's state.
fn polls(server: &MockServer) -> usize {
    server.requests().iter().filter(|r| r.method == "GET" && r.path.starts_with("/v1/batches/")).count()
}

async fn server(step_ms: u64, line_ms: u64) -> MockServer {
    let script = Script::new().on(Match::contains("please fail"), Reply::status(500));
    MockServer::builder()
        .script(script)
        .batch_timing(BatchTiming::new(Duration::from_millis(step_ms), Duration::from_millis(line_ms)))
        .start()
        .await
        .unwrap()
}

/// A whole remote run: the input is checked, `-m` is filled into the uploaded file, the batch
/// is created and polled, and the output holds the server's output file then its error file,
/// byte for byte. A failed line makes the exit 1; the summary names the batch and status.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_run_uploads_polls_and_downloads() {
    let server = server(20, 10).await;
    let dir = temp_dir("remote-full");
    let mut lines: Vec<String> = (0..12).map(|i| chat_line(&format!("r{i}"), &format!("hello {i}"), None)).collect();
    lines.push(String::new());
    lines.push(chat_line("named", "named model", Some("other-model")));
    lines.push(chat_line("bad", "please fail", Some("m")));
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let o = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--remote",
        "--base-url",
        &url,
        "-m",
        "mock-model",
        "--poll-interval",
        "0.02",
        "--metadata",
        "job=test",
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "one line failed: {}", stderr(&o));
    let s = json_out(&o);
    assert_eq!(s["status"], "completed");
    assert_eq!((s["total"].as_u64(), s["succeeded"].as_u64(), s["failed"].as_u64()), (Some(14), Some(13), Some(1)));
    assert_eq!((s["output_lines"].as_u64(), s["error_lines"].as_u64()), (Some(13), Some(1)));
    // Tokens: the usage the mock's answers report, summed over the 13 answered lines.
    let usage: Vec<Value> = records(&out)
        .into_iter()
        .filter(|r| r["response"]["status_code"] == 200)
        .map(|r| r["response"]["body"]["usage"].clone())
        .collect();
    assert_eq!(usage.len(), 13);
    let sum = |k: &str| usage.iter().map(|u| u[k].as_u64().unwrap()).sum::<u64>();
    assert!(sum("prompt_tokens") > 0);
    assert_eq!(s["input_tokens"].as_u64(), Some(sum("prompt_tokens")));
    assert_eq!(s["output_tokens"].as_u64(), Some(sum("completion_tokens")));
    assert!(s["cost_usd"].is_number());
    assert_eq!(s["uploaded"], true);
    let id = s["batch_id"].as_str().unwrap();
    assert_eq!(server.batch_ids(), [id]);
    assert_eq!(server.uploads(), 1);

    let b = client(&server);
    let job = b.batches().retrieve_batch(id).await.unwrap();
    assert_eq!(job.metadata.as_ref().unwrap()["job"], "test");
    // The uploaded file: -m filled in where no model was named, never replacing one.
    let uploaded = b.batches().file_content(job.input_file_id.as_deref().unwrap()).await.unwrap();
    let uploaded: Vec<Value> =
        String::from_utf8(uploaded.to_vec()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(uploaded.len(), 14);
    assert_eq!(uploaded[0]["body"]["model"], "mock-model");
    assert_eq!(uploaded[12]["body"]["model"], "other-model");
    assert_eq!(uploaded[0]["url"], "/v1/chat/completions");
    // The output: the server's files, verbatim, output then errors.
    let mut want = b.batches().file_content(job.output_file_id.as_deref().unwrap()).await.unwrap().to_vec();
    want.extend_from_slice(&b.batches().file_content(job.error_file_id.as_deref().unwrap()).await.unwrap());
    let got = std::fs::read(&out).unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(want).unwrap());
    let records: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records[0]["response"]["body"]["choices"][0]["message"]["content"], "hello 0");
    assert_eq!(records[13]["custom_id"], "bad");
    assert_eq!(records[13]["response"]["status_code"], 500);
    // The state file says the output is there; running again downloads it again, uploads nothing.
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("out.jsonl.remote.json")).unwrap()).unwrap();
    assert_eq!(state["batch_id"], id);
    assert_eq!(state["downloaded"], true);
    let again = batch(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--remote",
        "--base-url",
        &url,
        "-m",
        "mock-model",
        "--json",
    ])
    .await;
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert_eq!(json_out(&again)["uploaded"], false);
    assert_eq!(server.uploads(), 1);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 14);
}

/// Killed while polling, the same command resumes polling the same batch: no second upload,
/// no second batch.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumes_polling_the_same_batch() {
    let server = server(10, 150).await;
    let dir = temp_dir("remote-resume");
    let lines: Vec<String> = (0..30).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let args = [
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--remote",
        "--base-url",
        &url,
        "--poll-interval",
        "0.02",
        "--json",
    ];
    let mut c = cmd();
    c.arg("batch").args(args);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let state = dir.join("out.jsonl.remote.json");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let polled = polls(&server);
        let has_id = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["batch_id"].is_string());
        if has_id && polled >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the first run never polled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert!(!out.exists(), "killed before the download");
    let ids = server.batch_ids();
    assert_eq!(ids.len(), 1);
    let job = client(&server).batches().retrieve_batch(&ids[0]).await.unwrap();
    assert!(!job.status.is_terminal(), "killed mid-batch: {}", job.status);
    let o = batch(&args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = json_out(&o);
    assert_eq!(s["batch_id"], ids[0].as_str());
    assert_eq!(s["uploaded"], false);
    assert_eq!(s["output_lines"], 30);
    assert_eq!(server.uploads(), 1, "no second upload");
    assert_eq!(server.batch_ids().len(), 1, "no second batch");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 30);
}

/// `batch status ID` and `batch cancel ID`, human and JSON; a cancelled batch's partial
/// output is what a resumed remote run downloads, exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn status_and_cancel() {
    let server = server(5, 150).await;
    let b = client(&server);
    let input: Vec<String> = (0..60).map(|i| chat_line(&format!("r{i}"), "x", Some("m"))).collect();
    let file = b.batches().upload_file("batch", "in.jsonl", input.join("\n").as_bytes()).await.unwrap();
    let job = b.batches().create_batch(&file.id, "/v1/chat/completions", "24h", None).await.unwrap();
    let url = server.base_url();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = batch(&["status", &job.id, "--base-url", &url, "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = json_out(&o);
    assert_eq!(s["id"], job.id.as_str());
    assert_eq!(s["status"], "in_progress");
    assert_eq!(s["request_counts"]["total"], 60);
    assert_eq!(s["input_file_id"], file.id.as_str());
    let o = batch(&["cancel", &job.id, "--base-url", &url, "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["status"], "cancelling");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let o = batch(&["status", &job.id, "--base-url", &url]).await;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if text.starts_with(&format!("{}: cancelled", job.id)) {
            assert!(text.contains("output file: file-"), "{text}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never cancelled: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = batch(&["status", "batch-nope", "--base-url", &url]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("mamba-llm: "), "{}", stderr(&o));
}

/// Servers without a Batch API are refused before anything is read or sent; so are the
/// flags a remote batch cannot honour, and more than one server.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_usage_errors() {
    let server = server(5, 5).await;
    let dir = temp_dir("remote-refuse");
    let input = write_input(&dir, &[chat_line("a", "x", Some("m"))]);
    let out = dir.join("out.jsonl");
    let (i, o_) = (input.to_str().unwrap(), out.to_str().unwrap());
    let url = server.base_url();
    let o = batch(&[i, "-o", o_, "--remote", "--preset", "vllm", "--base-url", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("vLLM has no OpenAI-compatible Batch API") && e.contains("openai, azure"), "{e}");
    for flag in [&["--rpm", "5"][..], &["--concurrency", "4"], &["--ordered"], &["--tpm", "9"]] {
        let mut args = vec![i, "-o", o_, "--remote", "--base-url", &url];
        args.extend_from_slice(flag);
        let o = batch(&args).await;
        assert_eq!(o.status.code(), Some(2), "{flag:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("does not apply to --remote"), "{}", stderr(&o));
    }
    let o = batch(&[i, "-o", o_, "--remote", "--base-url", &url, "--base-url", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(server.requests().is_empty(), "nothing reached the server");
    // An output that is not a remote batch's is not overwritten.
    std::fs::write(&out, "{\"custom_id\":\"local\"}\n").unwrap();
    let o = batch(&[i, "-o", o_, "--remote", "--base-url", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not from a remote batch"), "{}", stderr(&o));
    // A state file made from another input is not followed.
    std::fs::remove_file(&out).unwrap();
    let state = json!({"input_file_id": "file-x", "batch_id": "batch-x", "endpoint": "/v1/chat/completions",
                       "base_url": url, "requests": 99, "downloaded": false});
    std::fs::write(dir.join("out.jsonl.remote.json"), state.to_string()).unwrap();
    let o = batch(&[i, "-o", o_, "--remote", "--base-url", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is for a batch of 99 requests, but the input has 1"), "{}", stderr(&o));
    assert_eq!(server.uploads(), 0);
    assert!(server.requests().is_empty());
}

/// Invalid lines and mixed urls upload nothing (exit 2); a dry run prints what would be
/// uploaded; gzip on stdin works.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_input_uploads_nothing_and_stdin_gzip_works() {
    let server = server(5, 5).await;
    let dir = temp_dir("remote-invalid");
    let url = server.base_url();
    let out = dir.join("out.jsonl");
    let bad =
        write_input(&dir, &[chat_line("a", "x", Some("m")), "{not json".into(), chat_line("a", "dup", Some("m"))]);
    let o =
        batch(&[bad.to_str().unwrap(), "-o", out.to_str().unwrap(), "--remote", "--base-url", &url, "--json"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = json_out(&o);
    assert_eq!(e["error"]["kind"], "invalid_input");
    assert!(e["error"]["message"].as_str().unwrap().contains("nothing was uploaded"));
    assert_eq!(e["error"]["lines"].as_array().unwrap().len(), 2);
    let mixed = write_input(
        &dir,
        &[
            chat_line("a", "x", Some("m")),
            json!({"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}})
                .to_string(),
        ],
    );
    let o = batch(&[mixed.to_str().unwrap(), "-o", out.to_str().unwrap(), "--remote", "--base-url", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("one endpoint"), "{}", stderr(&o));
    let o = batch(&[
        mixed.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--remote",
        "--dry-run",
        "--shard",
        "0/1",
        "--base-url",
        &url,
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "a dry run checks the endpoint too: {}", stderr(&o));
    assert!(server.requests().is_empty(), "nothing reached the server");

    let lines: Vec<String> = (0..5).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let good = write_input(&dir, &lines);
    let o = batch(&[good.to_str().unwrap(), "-o", out.to_str().unwrap(), "--remote", "--dry-run", "--base-url", &url])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("would upload 5 requests to /v1/chat/completions"));
    let o = batch(&[good.to_str().unwrap(), "-o", out.to_str().unwrap(), "--remote", "--dry-run", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = json_out(&o);
    assert_eq!((plan["to_send"].as_u64(), plan["remote"]["requests"].as_u64()), (Some(5), Some(5)));
    assert_eq!(plan["remote"]["endpoint"], "/v1/chat/completions");
    // --max-cost is checked against the estimate before anything is uploaded: exit 3.
    let priced: Vec<String> = (0..5).map(|i| chat_line(&format!("p{i}"), "hi", Some("gpt-4o"))).collect();
    let priced = write_input(&dir, &priced);
    let o = batch(&[
        priced.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--remote",
        "--base-url",
        &url,
        "--max-cost",
        "0",
    ])
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("above --max-cost"), "{}", stderr(&o));
    assert!(server.requests().is_empty(), "a dry run and a cost cap send nothing");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut c = cmd();
    c.arg("batch").args([
        "-",
        "-o",
        out.to_str().unwrap(),
        "--remote",
        "--base-url",
        &url,
        "--poll-interval",
        "0.02",
        "--json",
    ]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&gz).await.unwrap();
    drop(stdin);
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["output_lines"], 5);
    assert_eq!(server.uploads(), 1);
}

/// Ctrl-C while polling stops polling (exit 130) and says how to resume; the batch goes on,
/// and cancelling it from elsewhere makes the resumed run end `cancelled`: the partial output
/// is downloaded, exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_then_a_cancelled_batch() {
    let server = server(5, 40).await;
    let dir = temp_dir("remote-ctrlc");
    let lines: Vec<String> = (0..80).map(|i| chat_line(&format!("r{i}"), "hi", Some("m"))).collect();
    let input = write_input(&dir, &lines);
    let out = dir.join("out.jsonl");
    let url = server.base_url();
    let args = [
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--remote",
        "--base-url",
        &url,
        "--poll-interval",
        "0.02",
    ];
    let mut c = cmd();
    c.arg("batch").args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while polls(&server) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never polled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let id = server.batch_ids()[0].clone();
    let e = stderr(&o);
    // Progress lines (no terminal: on status changes), then the one line saying how to resume.
    let last = e.lines().last().unwrap();
    assert!(
        last.contains(&format!("stopped polling batch {id}")) && last.contains("run the same command again"),
        "{e}"
    );
    assert!(!out.exists());
    let job = client(&server).batches().cancel_batch(&id).await.unwrap();
    assert_eq!(job.status.as_str(), "cancelling");
    let o = batch(&[&args[..], &["--json"]].concat()).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = json_out(&o);
    assert_eq!(s["status"], "cancelled");
    assert_eq!(s["batch_id"], id.as_str());
    let done = s["output_lines"].as_u64().unwrap();
    assert!((1..80).contains(&done), "{done}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count() as u64, done);
    assert_eq!(server.uploads(), 1);
}

/// A batch the server failed in validation: `batch status` lists its errors.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_a_failed_batch_and_its_errors() {
    let server = server(5, 5).await;
    let b = client(&server);
    let input = [chat_line("a", "x", Some("m")), "not json".into()].join("\n");
    let file = b.batches().upload_file("batch", "in.jsonl", input.into_bytes()).await.unwrap();
    let job = b.batches().create_batch(&file.id, "/v1/chat/completions", "24h", None).await.unwrap();
    let url = server.base_url();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let o = batch(&["status", &job.id, "--base-url", &url]).await;
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if !text.contains("validating") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(text.starts_with(&format!("{}: failed", job.id)), "{text}");
    assert!(text.contains("error: line 2: This line is not a JSON object."), "{text}");
    let o = batch(&["status", &job.id, "--base-url", &url, "--json"]).await;
    let s = json_out(&o);
    assert_eq!(s["errors"][0]["code"], "invalid_json_line");
    assert_eq!(s["errors"][0]["line"], 2);
}
