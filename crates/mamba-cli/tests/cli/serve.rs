//! `mamba-llm serve` end to end: the binary in front of mock upstreams (and the built-in
//! model), asked through this library and curl, stopped with SIGTERM.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mamba_backends::{collect, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions, RetryPolicy};
use mamba_mock::{MockServer, Reply, Script};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[path = "hostile/serve.rs"]
mod hostile;

use crate::common::{model_file, BIN};

/// The binary sealed off from the machine (`common::cmd`), its log on a pipe.
fn cmd() -> Command {
    let mut c = crate::common::cmd();
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// Runs a client program within `limit`, in a process group of its own that is killed when it
/// ends or times out, so nothing it started (node's Chromium) outlives the test.
async fn output_in_group(mut c: Command, limit: Duration) -> Option<std::process::Output> {
    #[cfg(unix)]
    c.process_group(0);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = c.spawn().unwrap();
    let pid = child.id();
    let out = tokio::time::timeout(limit, child.wait_with_output()).await;
    if let (true, Some(pid)) = (cfg!(unix), pid) {
        let _ =
            std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
    }
    out.ok().map(|o| o.unwrap())
}

/// A running `serve` and the URL it printed.
struct Serving {
    child: Child,
    url: String,
    log: tokio::task::JoinHandle<Vec<String>>,
}

async fn serve(args: &[&str], env: &[(&str, &str)]) -> Serving {
    let mut c = cmd();
    c.arg("serve").arg("--port").arg("0").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut head = Vec::new();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            head.push(line.clone());
            if let Some(rest) = line.split("on http://").nth(1) {
                return format!("http://{}", rest.split_whitespace().next().unwrap());
            }
            assert!(!line.contains("error"), "{line}");
        }
        panic!("serve exited before listening");
    })
    .await
    .expect("serve did not start");
    // The log keeps what serve said at start too.
    let log = tokio::spawn(async move {
        let mut all = head;
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });
    Serving { child, url, log }
}

impl Serving {
    fn client(&self, model: &str) -> OpenAICompatibleBackend {
        OpenAICompatibleBackend::builder(model).base_url(&self.url).retry_policy(RetryPolicy::none()).build().unwrap()
    }

    /// SIGTERM, then the exit status and the log.
    async fn stop(mut self) -> (bool, Vec<String>) {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.unwrap().unwrap();
        (status.success(), self.log.await.unwrap())
    }
}

async fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sS", "--max-time", "20"]).args(args).output().await.expect("curl is needed");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn serves_an_upstream_to_this_library_and_curl_then_stops_on_sigterm() {
    let mock =
        MockServer::start_with(Script::new().always(Reply::text("hello from upstream").usage(3, 3))).await.unwrap();
    let upstream = format!("{},model=mock-model", mock.base_url());
    let s = serve(
        &["--upstream", &upstream, "--alias", "gpt-4o-mini", "--api-key-env", "SERVE_KEY"],
        &[("SERVE_KEY", "sk-s")],
    )
    .await;

    let client = OpenAICompatibleBackend::builder("gpt-4o-mini")
        .base_url(&s.url)
        .api_key("sk-s")
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let answer = client.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(answer.content, "hello from upstream");
    let streamed = collect(client.stream(&[Message::user("hi")], &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(streamed.content, "hello from upstream");
    let models: Vec<String> = client.list_models().await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(models, ["mock-model", "gpt-4o-mini"]);
    let err = s.client("mock-model").complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap_err();
    assert_eq!(err.status(), Some(401));

    let body = r#"{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}"#;
    let url = format!("{}/chat/completions", s.url);
    let whole =
        curl(&[&url, "-H", "authorization: Bearer sk-s", "-H", "content-type: application/json", "-d", body]).await;
    let whole: serde_json::Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(whole["choices"][0]["message"]["content"], "hello from upstream");
    let stream_body = r#"{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let sse = curl(&[
        "-N",
        &url,
        "-H",
        "authorization: Bearer sk-s",
        "-H",
        "content-type: application/json",
        "-d",
        stream_body,
    ])
    .await;
    assert!(sse.starts_with("data: {"), "{sse}");
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    let health = curl(&[&format!("{}/health", s.url.trim_end_matches("/v1"))]).await;
    assert!(health.contains("\"ok\""), "{health}");

    let (ok, log) = s.stop().await;
    assert!(ok, "{log:?}");
    assert!(
        log.iter().filter(|l| l.contains("/v1/chat/completions") && l.contains("status=200")).count() >= 3,
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("sk-s")), "the key is in the log: {log:#?}");
}

#[tokio::test]
async fn a_pool_of_upstreams_with_a_fallback() {
    let down = MockServer::start_with(Script::new().always(Reply::status(503))).await.unwrap();
    let up = MockServer::start_with(Script::new().always(Reply::text("from the replica"))).await.unwrap();
    let fallback = MockServer::start_with(Script::new().always(Reply::text("from the fallback"))).await.unwrap();
    let s = serve(
        &[
            "-m",
            "m",
            "--upstream",
            &down.base_url(),
            "--upstream",
            &up.base_url(),
            "--fallback",
            &format!("{},model=big,on=unavailable", fallback.base_url()),
            "--quiet",
        ],
        &[],
    )
    .await;
    let answer = s.client("m").complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(answer.content, "from the replica");
    up.set_script(Script::new().always(Reply::status(503)));
    let answer = s.client("m").complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(answer.content, "from the fallback");
    let (ok, log) = s.stop().await;
    assert!(ok);
    assert!(!log.iter().any(|l| l.contains("status=")), "--quiet still logged: {log:#?}");
}

#[tokio::test]
async fn bad_flags_are_usage_errors() {
    for args in [
        vec!["--upstream", "nosuch:model"],
        vec!["--upstream", "http://127.0.0.1:9/v1,colour=red"],
        vec!["--upstream", "http://127.0.0.1:9/v1,model=m", "--api-key-env", "MAMBA_TEST_UNSET_VAR"],
        vec!["--upstream", "http://127.0.0.1:9/v1,model=m", "--request-timeout=-1"],
        vec!["--host", "not an ip", "--upstream", "http://127.0.0.1:9/v1,model=m"],
    ] {
        let out = tokio::time::timeout(Duration::from_secs(30), cmd().arg("serve").args(&args).output())
            .await
            .unwrap()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("mamba-llm: "), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// The real model file, or None when `MAMBA_SKIP_LOCAL_MODEL=1` (else a failure).
#[allow(clippy::print_stderr)]
#[tokio::test]
async fn serves_the_built_in_model() {
    let Some(file) = model_file() else { return };
    let s = serve(&["--local", "--model-file", file.to_str().unwrap()], &[]).await;
    let models = s.client("x").list_models().await.unwrap();
    let model = models[0].id.clone();
    let options = RequestOptions::new().max_tokens(8).temperature(0.0);
    let streamed =
        collect(s.client(&model).stream(&[Message::user("Say hi.")], &options).await.unwrap()).await.unwrap();
    assert!(!streamed.content.is_empty());
    assert!(streamed.usage.is_some_and(|u| u.output_tokens > 0 && u.output_tokens <= 8), "{:?}", streamed.usage);
    let (ok, _) = s.stop().await;
    assert!(ok);
}

/// `response_format` reaches the built-in model through serve: a client of serve gets output
/// constrained to its schema (compact JSON that validates), complete and streamed.
#[tokio::test]
async fn serve_passes_response_format_to_the_built_in_model() {
    let Some(file) = model_file() else { return };
    let s = serve(&["--local", "--model-file", file.to_str().unwrap()], &[]).await;
    let model = s.client("x").list_models().await.unwrap()[0].id.clone();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5}
        },
        "required": ["sentiment", "score"],
        "additionalProperties": false
    });
    let options = RequestOptions::new()
        .temperature(0.0)
        .max_tokens(60)
        .response_format(mamba_backends::ResponseFormat::json_schema("review", schema));
    let messages =
        [Message::system("You are a helpful AI assistant."), Message::user("Rate this review: great phone!")];
    let complete = s.client(&model).complete(&messages, &options).await.unwrap();
    let streamed = collect(s.client(&model).stream(&messages, &options).await.unwrap()).await.unwrap();
    for answer in [&complete, &streamed] {
        let value: serde_json::Value = serde_json::from_str(&answer.content).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["sentiment", "score"], "{}", answer.content);
        assert!(["positive", "negative", "neutral"].contains(&value["sentiment"].as_str().unwrap()));
        assert!((1..=5).contains(&value["score"].as_i64().unwrap()), "{}", answer.content);
    }
    assert_eq!(streamed.content, complete.content);
    let (ok, _) = s.stop().await;
    assert!(ok);
}

fn peers_root() -> PathBuf {
    std::env::var_os("MAMBA_PEERS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache").join("mamba-peers"))
}

/// A real client's installation, or None when `MAMBA_SKIP_SERVE_CLIENTS=1` (else a failure).
#[allow(clippy::print_stderr)]
fn client_install(path: PathBuf, test: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if std::env::var("MAMBA_SKIP_SERVE_CLIENTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: {} is missing and MAMBA_SKIP_SERVE_CLIENTS=1", path.display());
        return None;
    }
    panic!(
        "{test}: {} is missing: run scripts/serve-venv.sh, or set MAMBA_SKIP_SERVE_CLIENTS=1 to skip",
        path.display()
    );
}

/// A live peer's URL, or None when `MAMBA_SKIP_PEERS=1` (else a failure).
#[allow(clippy::print_stderr)]
fn peer(var: &str, test: &str) -> Option<String> {
    if std::env::var("MAMBA_SKIP_PEERS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED the live part of {test}: MAMBA_SKIP_PEERS=1");
        return None;
    }
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => panic!(
            "{test}: {var} is not set, so its peer is not running: run scripts/test-all.sh, or set MAMBA_SKIP_PEERS=1"
        ),
    }
}

fn spec_yaml() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mamba-backends/tests/data/openai-openapi/openapi.yaml")
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/clients")
}

#[tokio::test]
async fn the_official_openai_sdk_and_the_openapi_spec() {
    let Some(python) = client_install(peers_root().join("serve-venv/bin/python"), "openai SDK test") else { return };
    let script = Script::new()
        .on(mamba_mock::Match::contains("slow"), Reply::text("a slow answer").delay(Duration::from_millis(1500)))
        .on(
            mamba_mock::Match::contains("weather"),
            Reply::tool_call("get_weather", serde_json::json!({"city": "Paris"})),
        )
        .on(mamba_mock::Match::contains("think"), Reply::text("four").reasoning("two and two"));
    let mock = MockServer::start_with(script).await.unwrap();
    let upstream = format!("{},model=mock-model", mock.base_url());
    let s = serve(
        &[
            "--upstream",
            &upstream,
            "--api-key-env",
            "SERVE_KEY",
            "--max-concurrent",
            "1",
            "--max-queue",
            "0",
            "--quiet",
        ],
        &[("SERVE_KEY", "sk-sdk")],
    )
    .await;
    let tools = match peer("MAMBA_LIVE_LLAMACPP_FC_URL", "the openai SDK test (tool calls)") {
        Some(url) => Some(serve(&["--upstream", &url, "--quiet"], &[]).await),
        None => None,
    };
    let mut c = Command::new(python);
    c.arg(clients_dir().join("openai_sdk.py")).arg(spec_yaml()).arg(&s.url).arg("sk-sdk");
    if let Some(t) = &tools {
        c.arg(&t.url);
    }
    let out = output_in_group(c, Duration::from_secs(240)).await.expect("the SDK test hung");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openai_sdk.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(stdout.contains("ok responses whole and streamed"), "{stdout}");
    assert!(stdout.contains("ok responses with reasoning and function calls"), "{stdout}");
    if tools.is_some() {
        assert!(stdout.contains("ok tool calls relayed"), "{stdout}");
        assert!(stdout.contains("ok tool calls through the Responses API"), "{stdout}");
    }
    s.stop().await;
    if let Some(t) = tools {
        t.stop().await;
    }
}

#[tokio::test]
async fn litellm_uses_serve_as_its_upstream() {
    let Some(litellm) = peer("MAMBA_LIVE_LITELLM_URL", "the LiteLLM-through-serve test") else { return };
    let key = std::env::var("MAMBA_LIVE_LITELLM_KEY").unwrap_or_default();
    let mock = MockServer::start_with(Script::new().always(Reply::text("relayed by mamba").usage(4, 3))).await.unwrap();
    let upstream = format!("{},model=mock-model", mock.base_url());
    // The port scripts/peers/litellm-config.yaml names for the model via-mamba-serve.
    let mut c = cmd();
    c.args(["serve", "--port", "18390", "--upstream", &upstream, "--model-name", "served-model"]);
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.contains("127.0.0.1:18390"), "{first}");
    let client = OpenAICompatibleBackend::builder("via-mamba-serve")
        .base_url(&litellm)
        .api_key(&key)
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let answer = client.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(answer.content, "relayed by mamba");
    let streamed = collect(client.stream(&[Message::user("hi")], &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(streamed.content, "relayed by mamba");
    assert_eq!(mock.chat_requests().len(), 2);
    assert_eq!(mock.chat_requests()[1].json.as_ref().unwrap()["stream"], true);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap().success());
}

#[tokio::test]
async fn the_chat_page_in_headless_chromium() {
    let Some(chromium) = client_install(PathBuf::from("/usr/bin/chromium"), "chat page test") else { return };
    let Some(playwright) =
        client_install(peers_root().join("npm-serve/node_modules/playwright-core"), "chat page test")
    else {
        return;
    };
    use mamba_mock::Match;
    let script = Script::new()
        .on(
            Match::contains("fail"),
            Reply::status(422).body(serde_json::json!({"error": {"message": "temperature must be at most 2", "type": "invalid_request_error"}})),
        )
        .on(Match::contains("think"), Reply::text("thought it through").reasoning("pondering the question"))
        .on(Match::contains("slow"), Reply::text("w ".repeat(400)).chunk_delay(Duration::from_millis(50)));
    let mock = MockServer::start_with(script).await.unwrap();
    let s = serve(&["--upstream", &format!("{},model=mock-model", mock.base_url())], &[]).await;
    let base = s.url.trim_end_matches("/v1").to_owned();
    let mut node = Command::new("node");
    node.arg(clients_dir().join("chat_page.cjs"))
        .arg(&base)
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", &chromium);
    let out = output_in_group(node, Duration::from_secs(120)).await.expect("the page test hung");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "chat_page.cjs failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all page checks passed"), "{stdout}");
    // The stop button closed the page's request, and the server dropped the upstream stream.
    for _ in 0..200 {
        if mock.disconnects() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(mock.disconnects(), 1, "the upstream stream was not dropped");
    let metrics = curl(&[&format!("{base}/metrics")]).await;
    assert!(metrics.contains("mamba_requests_cancelled_total{model=\"mock-model\"} 1"), "{metrics}");
    let sent = mock.chat_requests();
    assert_eq!(sent[0].json.as_ref().unwrap()["messages"][0]["content"], "You are terse.");
    assert_eq!(sent[0].json.as_ref().unwrap()["max_tokens"], 50);
    s.stop().await;
}
