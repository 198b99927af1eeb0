//! Hostile inputs to `embed`: huge lines are refused at the limit, and a file is read, sent
//! and written in batches instead of whole.

use std::process::Stdio;
use std::time::Duration;

use std::path::{Path, PathBuf};

use mamba_mock::{vector_for, Match, MockServer, Reply, Script};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::{cmd, floats, lines, run};

/// A file of inputs in a folder of its own, removed with the folder when dropped (pass or
/// fail).
struct TempFile {
    dir: PathBuf,
    file: PathBuf,
}

impl TempFile {
    fn path(&self) -> &Path {
        &self.file
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_file(name: &str, text: &str) -> TempFile {
    let dir = std::env::temp_dir().join(format!("mamba-embed-hostile-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("inputs.txt");
    std::fs::write(&file, text).unwrap();
    TempFile { dir, file }
}

/// A line longer than --max-input-bytes is a usage error naming the flag; nothing is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_over_the_limit_is_refused() {
    let server = MockServer::start().await.unwrap();
    let file = temp_file("long", &format!("short\n{}\n", "x".repeat(300)));
    let o = run(cmd(&server).args(["--max-input-bytes", "100", "--file"]).arg(file.path())).await;
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 2 of") && err.contains("--max-input-bytes"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(server.request_count(), 0, "nothing is sent before the first batch is read");
    // The same file with a larger limit goes through.
    let o = run(cmd(&server).args(["--max-input-bytes", "1000", "--file"]).arg(file.path())).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines(&o).len(), 2);
}

/// An endless stdin line fails once the limit is read (it is never read whole).
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_stdin_line_fails_fast() {
    let server = MockServer::start().await.unwrap();
    let mut child = cmd(&server)
        .args(["--max-input-bytes", "4096"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = tokio::spawn(async move {
        let block = vec![b'y'; 64 * 1024];
        while stdin.write_all(&block).await.is_ok() {}
    });
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("finished").unwrap();
    feeder.abort();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("larger than 4 KiB"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// 2,500 lines go as three batches, written in input order with running indices, as JSON
/// lines and as one `--json` document.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_is_embedded_in_batches() {
    let n = 2500;
    let text: String = (0..n).map(|i| format!("line {i}\n")).collect();
    let file = temp_file("batches", &text);
    let server = MockServer::builder().keep_all_requests().start().await.unwrap();
    let o = run(cmd(&server).args(["-m", "e1", "--dimensions", "3", "--file"]).arg(file.path())).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = lines(&o);
    assert_eq!(out.len(), n);
    for (i, item) in out.iter().enumerate() {
        assert_eq!(item["index"], i);
    }
    assert_eq!(floats(&out[n - 1]["embedding"]), vector_for(format!("line {}", n - 1).as_bytes(), 3));
    let sizes: Vec<usize> =
        server.requests().iter().map(|r| r.json.as_ref().unwrap()["input"].as_array().unwrap().len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), n);
    assert!(sizes.len() >= 3 && sizes.iter().all(|s| *s <= 1024), "{sizes:?}");

    let o = run(cmd(&server).args(["-m", "e1", "--dimensions", "3", "--json", "--file"]).arg(file.path())).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["data"].as_array().unwrap().len(), n);
    assert_eq!(doc["data"][n - 1]["index"], n - 1);
    assert!(doc["usage"]["input_tokens"].as_u64().unwrap() > 0, "{}", doc["usage"]);
}

/// Results come while the input is still being read: the first batch is written before
/// stdin ends (it was read whole first, holding all of it in memory).
#[tokio::test(flavor = "multi_thread")]
async fn results_are_written_before_the_input_ends() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = MockServer::start().await.unwrap();
    let mut child = cmd(&server).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let first: String = (0..1100).map(|i| format!("text {i}\n")).collect();
    stdin.write_all(first.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let early = tokio::time::timeout(Duration::from_secs(20), async {
        let mut n = 0;
        while n < 1024 {
            out.next_line().await.unwrap().expect("a result line");
            n += 1;
        }
        n
    })
    .await
    .expect("no result before the end of the input");
    assert_eq!(early, 1024);
    stdin.write_all(b"last one\n").await.unwrap();
    drop(stdin);
    let mut rest = 0;
    while out.next_line().await.unwrap().is_some() {
        rest += 1;
    }
    assert_eq!(early + rest, 1101);
    assert!(child.wait().await.unwrap().success());
}

/// An upstream failure after the first batch leaves a valid `--json` document: the vectors
/// written so far, and an `"error"` member; the exit code is non-zero (it stopped inside
/// `{"data":[...`).
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_the_first_batch_closes_the_json_document() {
    let text: String = (0..1500).map(|i| format!("line {i}\n")).collect();
    let file = temp_file("fails", &text);
    let server = MockServer::start_with(
        Script::new().on(Match::call(2), Reply::status(500).body(serde_json::json!({"error": "upstream broke"}))),
    )
    .await
    .unwrap();
    let o = run(cmd(&server).args(["-m", "e1", "--dimensions", "3", "--json", "--file"]).arg(file.path())).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let doc: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    let data = doc["data"].as_array().unwrap();
    assert_eq!(data.len(), 1024, "the first batch");
    assert_eq!(data[1023]["index"], 1023);
    assert_eq!(doc["error"]["status"], 500, "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap().contains("upstream broke"), "{doc}");
    assert!(err.contains("500") && err.contains("1024 embedding"), "{err}");
    assert_eq!(server.request_count(), 2);
    // Without --json, the lines written stay valid JSON lines and the error goes to stderr.
    let server = MockServer::start_with(Script::new().on(Match::call(2), Reply::status(500))).await.unwrap();
    let o = run(cmd(&server).args(["-m", "e1", "--dimensions", "3", "--file"]).arg(file.path())).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(lines(&o).len(), 1024);
}
