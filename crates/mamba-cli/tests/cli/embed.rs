//! End-to-end tests of `mamba-llm embed` against the mock server.

use std::process::{Output, Stdio};
use std::time::Duration;

use mamba_mock::{vector_for, MockServer, Reply, Script};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[path = "hostile/embed.rs"]
mod hostile;

use crate::common::run;

/// `mamba-llm embed` against `server`, sealed off from the machine (`common::cmd`), no retries.
fn cmd(server: &MockServer) -> Command {
    let mut c = crate::common::cmd();
    c.arg("embed").arg("--base-url").arg(server.base_url()).arg("--retries").arg("0");
    c
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_line_per_input_from_arguments() {
    let server = MockServer::start().await.unwrap();
    let o = run(cmd(&server).args(["-m", "e1", "first text", "second text"])).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = lines(&o);
    assert_eq!(out.len(), 2);
    for (i, text) in ["first text", "second text"].iter().enumerate() {
        assert_eq!(out[i]["index"], i);
        assert_eq!(floats(&out[i]["embedding"]), vector_for(text.as_bytes(), 8));
    }
    let body = server.requests()[0].json.clone().unwrap();
    assert_eq!(body["model"], "e1");
    assert_eq!(body["input"], json!(["first text", "second text"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_object_with_dimensions_from_stdin() {
    let server = MockServer::start().await.unwrap();
    let mut child = cmd(&server)
        .args(["-m", "e1", "--dimensions", "4", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"alpha\n\nbeta\r\n").await.unwrap();
    drop(stdin);
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = lines(&o);
    assert_eq!(out.len(), 1);
    let doc = &out[0];
    assert_eq!(doc["model"], "e1");
    assert_eq!(doc["usage"], json!({"input_tokens": 3, "total_tokens": 3}));
    assert_eq!(doc["data"][1]["index"], 1);
    assert_eq!(floats(&doc["data"][1]["embedding"]), vector_for(b"beta", 4));
    assert_eq!(server.requests()[0].json.clone().unwrap()["dimensions"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_input_and_errors_as_for_chat() {
    let dir = std::env::temp_dir().join(format!("mamba-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("inputs.txt");
    std::fs::write(&file, "one\ntwo\nthree\n").unwrap();
    let server = MockServer::start().await.unwrap();
    let o = run(cmd(&server).arg("--file").arg(&file)).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines(&o).len(), 3);

    let failing =
        MockServer::start_with(Script::new().always(Reply::status(404).body(json!({"error": "model 'x' not found"}))))
            .await
            .unwrap();
    let o = run(cmd(&failing).args(["-m", "x", "hello"])).await;
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("mamba-llm: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = run(cmd(&failing).args(["-m", "x", "--json", "hello"])).await;
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| serde_json::from_slice(&o.stderr).unwrap());
    assert_eq!(doc["error"]["kind"], "model_not_found");

    // Nothing to embed, and Groq has no embeddings: usage error / unsupported.
    let o = run(&mut cmd(&server)).await;
    assert_eq!(o.status.code(), Some(2));
    let o = run(cmd(&server).args(["--preset", "groq", "-m", "m", "hi"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no embeddings endpoint"));
    std::fs::remove_dir_all(&dir).unwrap();
}
