//! End-to-end tests of `mamba-llm extract` against the mock server: a value printed as one
//! JSON line, a malformed answer repaired without a second request, a retry with the
//! validation errors, exit 1 when the last attempt is still invalid, exit 2 for a bad schema,
//! and one line per input from --file and stdin.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use mamba_mock::{Match, MockServer, Reply, Rule, Script};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::common::{run, stderr, stdout, temp_dir};

const SCHEMA: &str = r#"{"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}, "required": ["name", "age"]}"#;

fn schema_file(text: &str) -> PathBuf {
    let path = temp_dir("extract").join("schema.json");
    std::fs::write(&path, text).unwrap();
    path
}

/// `mamba-llm extract --schema SCHEMA` against `server`, sealed off from the machine, no HTTP
/// retries.
fn cmd(server: &MockServer) -> Command {
    let mut c = crate::common::cmd();
    c.arg("extract").arg("--schema").arg(schema_file(SCHEMA));
    c.args(["--base-url", &server.base_url(), "-m", "m1", "--retries", "0"]);
    c
}

fn lines(o: &Output) -> Vec<Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The text of the last message of a chat request.
fn last_message(body: &Value) -> String {
    let messages = body["messages"].as_array().unwrap();
    messages.last().unwrap()["content"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_prints_the_value_as_one_line() {
    let server =
        MockServer::start_with(Script::new().always(Reply::text(r#"{"name": "Ann", "age": 31}"#))).await.unwrap();
    let o = run(cmd(&server).arg("Ann is 31.")).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "{\"name\":\"Ann\",\"age\":31}\n");
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].json.clone().unwrap();
    // auto on a server without a preset: plain json_schema, and the schema in the prompt too.
    assert_eq!(body["response_format"]["type"], "json_schema", "{body}");
    assert_eq!(last_message(&body), "Ann is 31.");

    // --json: the value and how it was had.
    let o = run(cmd(&server).args(["--json", "Ann is 31."])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = lines(&o);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["value"], json!({"name": "Ann", "age": 31}));
    assert_eq!(out[0]["attempts"], 1);
    assert_eq!(out[0]["index"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_repairs_a_malformed_answer_without_a_second_request() {
    let answer = "Here it is:\n```json\n{\"name\": \"Bo\", \"age\": 4,}\n```";
    let server = MockServer::start_with(Script::new().always(Reply::text(answer))).await.unwrap();
    let o = run(cmd(&server).args(["--json", "Bo is 4."])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = lines(&o);
    assert_eq!(out[0]["value"], json!({"name": "Bo", "age": 4}));
    assert_eq!(out[0]["attempts"], 1);
    let repairs = out[0]["repairs"].as_array().unwrap();
    assert!(repairs.contains(&json!("fence")) && repairs.contains(&json!("trailing_comma")), "{repairs:?}");
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_retries_with_the_validation_errors() {
    let script = Script::new()
        .rule(Rule::new(Match::any(), Reply::text(r#"{"name": "Cy", "age": -3}"#)).times(1))
        .always(Reply::text(r#"{"name": "Cy", "age": 3}"#));
    let server = MockServer::start_with(script).await.unwrap();
    let o = run(cmd(&server).arg("Cy is 3.")).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&o), vec![json!({"name": "Cy", "age": 3})]);
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 2);
    let second = requests[1].json.clone().unwrap();
    // The first answer and its errors went back to the model.
    let feedback = last_message(&second);
    assert!(feedback.contains("-3") || feedback.contains("minimum"), "{feedback}");
    let messages = second["messages"].as_array().unwrap();
    assert!(messages.iter().any(|m| m["role"] == "assistant"), "{second}");
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_exits_1_when_the_last_attempt_is_invalid() {
    let server = MockServer::start_with(Script::new().always(Reply::text(r#"{"name": "Di"}"#))).await.unwrap();
    let o = run(cmd(&server).args(["--attempts", "2", "Di is 5."])).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("mamba-llm: error: invalid_output"), "{err}");
    assert!(err.contains("age"), "the validation error: {err}");
    assert!(err.contains("--attempts"), "what to do next: {err}");
    assert_eq!(server.chat_requests().len(), 2);

    // --json: every attempt's text and error.
    server.clear_requests();
    let o = run(cmd(&server).args(["--json", "Di is 5."])).await;
    assert_eq!(o.status.code(), Some(1));
    let out = lines(&o);
    assert_eq!(out[0]["error"]["kind"], "invalid_output");
    assert_eq!(out[0]["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(out[0]["attempts"][0]["text"], r#"{"name": "Di"}"#);
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_exits_2_for_a_bad_schema_before_any_request() {
    let server = MockServer::start().await.unwrap();
    for (text, says) in [("{\"type\": ", "is not JSON"), (r#"{"type": "objekt"}"#, "not valid JSON Schema")] {
        let mut c = crate::common::cmd();
        c.arg("extract").arg("--schema").arg(schema_file(text));
        c.args(["--base-url", &server.base_url(), "-m", "m1", "hello"]);
        let o = run(&mut c).await;
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
    let mut c = crate::common::cmd();
    c.args(["extract", "--schema", "/nonexistent/schema.json", "--base-url", &server.base_url(), "hi"]);
    assert_eq!(run(&mut c).await.status.code(), Some(2));
    assert_eq!(server.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_gives_one_line_per_input_line() {
    let script = Script::new()
        .on(Match::contains("Ed"), Reply::text(r#"{"name": "Ed", "age": 1}"#))
        .on(Match::contains("Flo"), Reply::text(r#"{"name": "Flo", "age": 2}"#))
        .always(Reply::text("I cannot help with that."));
    let server = MockServer::start_with(script).await.unwrap();
    let file = temp_dir("extract-lines").join("inputs.txt");
    std::fs::write(&file, "Ed is 1.\n\nFlo is 2.\n").unwrap();
    let o = run(cmd(&server).arg("--file").arg(&file)).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&o), vec![json!({"name": "Ed", "age": 1}), json!({"name": "Flo", "age": 2})]);

    // stdin, one line without an answer: the others are printed, it is reported, exit 1.
    let mut child = cmd(&server)
        .args(["--json", "--attempts", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Flo is 2.\nnobody here\r\nEd is 1.\n").await.unwrap();
    drop(stdin);
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = lines(&o);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["value"]["name"], "Flo");
    assert_eq!(out[1]["index"], 1);
    assert_eq!(out[1]["error"]["kind"], "invalid_output");
    assert_eq!(out[2]["value"]["name"], "Ed");
    let err = stderr(&o);
    assert!(err.contains("input 2: invalid_output"), "{err}");
}
