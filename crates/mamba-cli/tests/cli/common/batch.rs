//! What the `mamba-llm batch` suites (local and `--remote` runs) share: input lines, and
//! running the command.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use super::{cmd, stderr};

/// A chat request line; `model` goes in the body when given.
pub fn chat_line(id: &str, text: &str, model: Option<&str>) -> String {
    let mut body = json!({"messages": [{"role": "user", "content": text}], "max_tokens": 16});
    if let Some(m) = model {
        body["model"] = json!(m);
    }
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body}).to_string()
}

/// `dir/in.jsonl` with `lines`.
pub fn write_input(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("in.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Runs `mamba-llm batch ARGS` to its end (two minutes at most).
pub async fn batch(args: &[&str]) -> Output {
    let mut c = cmd();
    c.arg("batch").args(args);
    tokio::time::timeout(Duration::from_secs(120), c.output()).await.expect("mamba-llm batch did not finish").unwrap()
}

/// The JSON object a `--json` run printed on stdout.
pub fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", String::from_utf8_lossy(&o.stdout), stderr(o)))
}

/// The output file's records.
pub fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
