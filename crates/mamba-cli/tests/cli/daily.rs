//! `mamba-llm` as a daily driver, end to end against the mock server: the config file and its
//! precedence, saved keys (never leaked), the conversation log (rows, search, continue,
//! migration, a locked or damaged database), templates, attachments, completions and the man
//! page. Every run gets its own HOME, MAMBA_CONFIG and MAMBA_DATA_DIR.

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mamba_mock::{Match, MockServer, Reply, Script};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const KEY: &str = "sk-daily-SECRET-4f9a2c";

use crate::common::{run, stderr, stdout};

/// A sandbox: its own home, config file and data folder.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str) -> Home {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mamba-daily-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Home { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn db(&self) -> PathBuf {
        self.data().join("logs.db")
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The binary with common's clean environment, pointed at this sandbox (its home, config,
    /// data and cache) and with no editor of the user's.
    fn cmd(&self) -> Command {
        let mut c = crate::common::cmd();
        c.env_remove("VISUAL").env_remove("EDITOR");
        c.env("HOME", &self.dir).env("MAMBA_CONFIG", self.config()).env("MAMBA_DATA_DIR", self.data());
        c.env("MAMBA_CACHE_DIR", self.dir.join("cache"));
        c
    }

    async fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args)).await
    }

    async fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.cmd();
        c.args(args);
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).await.unwrap();
        drop(stdin);
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap()
    }

    /// `logs -n 0 --json`.
    async fn rows(&self) -> Vec<Value> {
        let o = self.run(&["logs", "-n", "0", "--json"]).await;
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<Value>(&stdout(&o)).unwrap().as_array().unwrap().clone()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn body(server: &MockServer, i: usize) -> Value {
    server.chat_requests()[i].json.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn precedence_flags_environment_config_defaults() {
    let a = MockServer::start().await.unwrap();
    let b = MockServer::start().await.unwrap();
    let home = Home::new("precedence");
    home.write_config(&format!(
        r#"
default_endpoint = "a"
[endpoints.a]
base_url = "{}"
model = "config-model"
headers = {{ "X-Team" = "blue" }}
[endpoints.b]
base_url = "{}"
model = "b-model"
[aliases]
fast = "llama3.2:3b"
[defaults.chat]
temperature = 0.3
max_tokens = 11
"#,
        a.base_url(),
        b.base_url()
    ));
    // Config alone: the default endpoint, its model, headers and the chat defaults.
    let o = home.run(&["chat", "--no-stream", "hi"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
    let req = &a.chat_requests()[0];
    assert_eq!(req.header("x-team"), Some("blue"));
    let v = req.json.clone().unwrap();
    assert_eq!(
        (v["model"].clone(), v["temperature"].clone(), v["max_tokens"].clone()),
        (json!("config-model"), json!(0.3), json!(11))
    );
    // The environment beats the config.
    let o = run(home.cmd().args(["chat", "hi"]).env("MAMBA_MODEL", "env-model")).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(body(&a, 1)["model"], "env-model");
    // Flags beat both; an alias resolves whatever set it.
    let o = run(home.cmd().args(["chat", "-m", "fast", "--temperature", "0.9", "hi"]).env("MAMBA_MODEL", "env-model"))
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!((body(&a, 2)["model"].clone(), body(&a, 2)["temperature"].clone()), (json!("llama3.2:3b"), json!(0.9)));
    // A server named by the environment replaces the default endpoint, headers and all.
    let o = run(home.cmd().args(["chat", "hi"]).env("MAMBA_BASE_URL", b.base_url())).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(a.chat_requests().len(), 3);
    assert_eq!(b.chat_requests()[0].header("x-team"), None);
    assert_eq!(body(&b, 0)["model"], "mock-model", "asked the server, not the default endpoint");
    // -e is a flag: above the environment.
    let o = run(home.cmd().args(["chat", "-e", "b", "hi"]).env("MAMBA_BASE_URL", a.base_url())).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(body(&b, 1)["model"], "b-model");
    assert_eq!(a.chat_requests().len(), 3);
    // MAMBA_ENDPOINT is the environment: below -e, above the config's default.
    let o = run(home.cmd().args(["chat", "hi"]).env("MAMBA_ENDPOINT", "b")).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(b.chat_requests().len(), 3);
    let o = run(home.cmd().args(["chat", "-e", "a", "hi"]).env("MAMBA_ENDPOINT", "b")).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(a.chat_requests().len(), 4);
    // Every command that connects takes -e.
    let o = home.run(&["models", "-e", "b", "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("mock-model"));
    // An unknown endpoint: a usage error naming the known ones.
    let o = home.run(&["chat", "-e", "nope", "hi"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown endpoint \"nope\"; known endpoints: a, b"), "{}", stderr(&o));
    // `config path` and `config show`.
    let o = home.run(&["config", "path"]).await;
    assert_eq!(stdout(&o).trim(), home.config().to_str().unwrap());
    let o = home.run(&["config", "show"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("[endpoints.a]") && stdout(&o).contains("fast = \"llama3.2:3b\""), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_file_is_one_error_with_its_place() {
    let home = Home::new("badconfig");
    home.write_config("default_endpoint = \"a\"\n[endpoints.a]\nbase_url = \"http://x\"\ntimeout = \"slow\"\n");
    let o = home.run(&["chat", "hi"]).await;
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    let place = format!("{}:4:11:", home.config().display());
    assert!(err.starts_with("mamba-llm: usage error: ") && err.contains(&place), "{err}");
    home.write_config("[endpoints.a\n");
    let o = home.run(&["config", "show"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&format!("{}:1:", home.config().display())), "{}", stderr(&o));
    // No config file at all is fine: the tests in cli.rs run that way.
    std::fs::remove_file(home.config()).unwrap();
    let server = MockServer::start().await.unwrap();
    let o = home.run(&["chat", "--base-url", &server.base_url(), "hi"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_saved_owner_only_and_never_leak() {
    let server = MockServer::builder().api_key(KEY).start().await.unwrap();
    // A server that quotes the key back in its error, as OpenAI does.
    let quoting = MockServer::start_with(Script::new().always(Reply::status(401).body(
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error"}}),
    )))
    .await
    .unwrap();
    let home = Home::new("keys");
    home.write_config(&format!(
        "default_endpoint = \"work\"\n[endpoints.work]\nbase_url = \"{}\"\nkey = \"work\"\nmodel = \"gpt-4o-mini\"\n[endpoints.quoting]\nbase_url = \"{}\"\nkey = \"work\"\n[endpoints.missing]\nbase_url = \"{}\"\nkey = \"nokey\"\n",
        server.base_url(),
        quoting.base_url(),
        server.base_url()
    ));
    let mut outputs = Vec::new();
    let o = home.run_with_input(&["keys", "set", "work"], format!("{KEY}\n").as_bytes()).await;
    assert!(o.status.success(), "{}", stderr(&o));
    outputs.push(o);
    let keys_file = home.data().join("keys.json");
    #[cfg(unix)]
    assert_eq!(std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777, 0o600);
    let o = home.run_with_input(&["keys", "set", "other"], b"sk-other\n").await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = home.run(&["keys", "list"]).await;
    assert_eq!(stdout(&o), "other\nwork\n");
    outputs.push(o);
    let o = home.run(&["keys", "remove", "other"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&home.run(&["keys", "list"]).await), "work\n");

    // The key is sent, and nothing prints or stores it.
    for args in [
        &["chat", "hello"][..],
        &["chat", "--no-stream", "--json", "hello"],
        &["chat", "-c", "again"],
        &["chat", "-e", "quoting", "hello"],
        &["chat", "-e", "quoting", "--json", "hello"],
        &["chat", "-e", "missing", "hello"],
        &["health", "-e", "work"],
        &["health", "-e", "work", "--json"],
        &["models", "-e", "work"],
        &["config", "show"],
        &["keys", "list"],
        &["logs", "-n", "0"],
        &["logs", "-n", "0", "--json"],
        &["logs", "-q", "sk"],
    ] {
        outputs.push(home.run(args).await);
    }
    assert_eq!(server.chat_requests()[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert!(outputs[2].status.success(), "{}", stderr(&outputs[2]));
    assert_eq!(stdout(&outputs[2]), "hello\n");
    assert_eq!(outputs[5].status.code(), Some(1), "the quoting server's 401");
    assert!(stderr(&outputs[5]).contains("Incorrect API key provided"), "{}", stderr(&outputs[5]));
    assert!(stderr(&outputs[7]).contains("no key named \"nokey\""), "{}", stderr(&outputs[7]));
    // A keys file others can read is refused, with what to do (unix permissions only).
    #[cfg(unix)]
    {
        std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = home.run(&["chat", "hello"]).await;
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
        outputs.push(o);
        outputs.push(home.run(&["keys", "list"]).await);
        std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    for o in &outputs {
        assert!(!stdout(o).contains(KEY) && !stderr(o).contains(KEY), "leaked:\n{}\n{}", stdout(o), stderr(o));
    }
    let rows = home.rows().await;
    assert!(rows.len() >= 5, "{rows:?}");
    assert!(!Value::Array(rows).to_string().contains(KEY));
    for entry in std::fs::read_dir(home.data()).unwrap() {
        let path = entry.unwrap().path();
        if path != keys_file {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(KEY), "{} holds the key", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_rows_for_streamed_whole_tool_calls_and_failures() {
    let script = Script::new()
        .on(Match::contains("weather"), Reply::tool_call("get_weather", json!({"city": "Paris"})).usage(20, 5))
        .on(Match::contains("break"), Reply::status(500))
        .always(Reply::text("Paris is the capital.").reasoning("France...").usage(12, 4));
    let server = MockServer::start_with(script).await.unwrap();
    let home = Home::new("rows");
    let url = server.base_url();
    let chat = |extra: &'static [&'static str]| {
        let mut args = vec!["chat", "--base-url", url.as_str(), "--retries", "0", "-m", "gpt-4o-mini"];
        args.extend_from_slice(extra);
        args
    };
    let o = home.run(&chat(&["-s", "Be brief.", "capital of France?"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Paris is the capital.\n");
    let o = home.run(&chat(&["--no-stream", "capital again?"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = home.run(&chat(&["what is the weather?"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = home.run(&chat(&["--no-stream", "break it"])).await;
    assert_eq!(o.status.code(), Some(1));
    // --no-log and the config switch write nothing.
    let o = home.run(&chat(&["--no-log", "not logged"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    home.write_config("log = false\n");
    let o = home.run(&chat(&["not logged either"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(home.config()).unwrap();

    let rows = home.rows().await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let [streamed, whole, tools, failed] = &rows[..] else { unreachable!() };
    assert_eq!(streamed["prompt"], "capital of France?");
    assert_eq!(streamed["system"], "Be brief.");
    assert_eq!(streamed["answer"], "Paris is the capital.");
    assert_eq!(streamed["reasoning"], "France...");
    assert_eq!(streamed["streamed"], true);
    assert_eq!((streamed["input_tokens"].clone(), streamed["output_tokens"].clone()), (json!(12), json!(4)));
    assert_eq!(streamed["model"], "gpt-4o-mini");
    assert_eq!(streamed["endpoint"], url.as_str());
    // gpt-4o-mini: $0.15 and $0.60 per million tokens.
    let cost = streamed["cost_usd"].as_f64().unwrap();
    assert!((cost - (12.0 * 0.15 + 4.0 * 0.60) / 1e6).abs() < 1e-12, "{cost}");
    assert!(streamed["latency_ms"].is_u64() && streamed["time"].as_str().unwrap().ends_with('Z'));
    assert!(streamed["error"].is_null());
    assert_eq!(whole["streamed"], false);
    assert_eq!(whole["answer"], "Paris is the capital.");
    assert_ne!(whole["conversation_id"], streamed["conversation_id"], "each run is a new conversation");
    assert_eq!(tools["tool_calls"][0]["name"], "get_weather");
    assert_eq!(tools["tool_calls"][0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(failed["prompt"], "break it");
    assert!(failed["answer"].is_null());
    assert!(failed["error"].as_str().unwrap().contains("\"status\":500"), "{failed}");

    // Search, count and conversation filters; text output.
    let o = home.run(&["logs", "-q", "weather", "--json"]).await;
    let found: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    let o = home.run(&["logs", "-n", "2", "--json"]).await;
    let last: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(last[1]["prompt"], "break it");
    let o = home.run(&["logs", "--cid", streamed["conversation_id"].as_str().unwrap()]).await;
    let text = stdout(&o);
    assert!(
        text.contains("> capital of France?") && text.contains("Paris is the capital.") && !text.contains("weather"),
        "{text}"
    );
    let o = home.run(&["logs", "-q", "weather"]).await;
    assert!(stdout(&o).contains("[tool call call_1] get_weather({\"city\":\"Paris\"})"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn continue_sends_the_whole_history() {
    let server = MockServer::start().await.unwrap();
    let home = Home::new("continue");
    home.write_config(&format!("default_endpoint = \"m\"\n[endpoints.m]\nbase_url = \"{}\"\n", server.base_url()));
    let o = home.run(&["chat", "-s", "Be brief.", "one"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = home.run(&["chat", "-c", "two"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        body(&server, 1)["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "two"},
        ])
    );
    // Another conversation in between; --cid picks the first one again.
    let o = home.run(&["chat", "other"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let first = home.rows().await[0]["conversation_id"].as_str().unwrap().to_owned();
    let o = home.run(&["chat", "--cid", &first, "--no-stream", "three"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let messages = body(&server, 3)["messages"].clone();
    let texts: Vec<&str> = messages.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Be brief.", "one", "one", "two", "two", "three"]);
    // -c now continues that one; a new -s replaces the system message.
    let o = home.run(&["chat", "-c", "-s", "Be long.", "four"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let messages = body(&server, 4)["messages"].clone();
    assert_eq!(messages[0], json!({"role": "system", "content": "Be long."}));
    assert_eq!(messages.as_array().unwrap().len(), 8);
    let rows = home.rows().await;
    assert_eq!(rows.iter().filter(|r| r["conversation_id"] == first.as_str()).count(), 4);
    // Unknown id, and -c on an empty log.
    let o = home.run(&["chat", "--cid", "nope", "x"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no conversation \"nope\""), "{}", stderr(&o));
    let empty = Home::new("continue-empty");
    let o = empty.run(&["chat", "--base-url", &server.base_url(), "-c", "x"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nothing to continue"), "{}", stderr(&o));
    assert_eq!(server.chat_requests().len(), 5);
}

/// The first schema, as its version wrote it.
const SCHEMA_V1: &str = "CREATE TABLE exchanges (
        id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, time TEXT NOT NULL, model TEXT, endpoint TEXT,
        system TEXT, prompt TEXT NOT NULL, answer TEXT, reasoning TEXT, tool_calls TEXT, input_tokens INTEGER,
        output_tokens INTEGER, latency_ms INTEGER);
    CREATE INDEX exchanges_conversation ON exchanges (conversation_id, id);
    PRAGMA user_version = 1;";

#[tokio::test(flavor = "multi_thread")]
async fn migrates_a_log_of_the_first_schema() {
    let home = Home::new("migrate");
    std::fs::create_dir_all(home.data()).unwrap();
    {
        let db = rusqlite::Connection::open(home.db()).unwrap();
        db.execute_batch(SCHEMA_V1).unwrap();
        db.execute(
            "INSERT INTO exchanges (conversation_id, time, model, endpoint, system, prompt, answer, input_tokens, output_tokens, latency_ms)
             VALUES ('old1', '2026-01-01T00:00:00Z', 'm', 'http://x/v1', 'Old system.', 'zebra question', 'zebra answer', 3, 2, 50)",
            [],
        )
        .unwrap();
    }
    let o = home.run(&["logs", "-q", "zebra", "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "the old row is searchable");
    assert_eq!(rows[0]["answer"], "zebra answer");
    assert!(rows[0]["cost_usd"].is_null() && rows[0]["error"].is_null());
    let db = rusqlite::Connection::open(home.db()).unwrap();
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 3);
    drop(db);
    // The old conversation continues, and new rows are searchable too.
    let server = MockServer::start().await.unwrap();
    let o = home.run(&["chat", "--base-url", &server.base_url(), "--cid", "old1", "giraffe"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let texts: Vec<String> = body(&server, 0)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["Old system.", "zebra question", "zebra answer", "giraffe"]);
    let o = home.run(&["logs", "-q", "giraffe", "--json"]).await;
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows[0]["conversation_id"], "old1");
    // A newer schema than this build knows is refused.
    rusqlite::Connection::open(home.db()).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    let o = home.run(&["logs"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("schema version 99 is newer"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_or_damaged_log_still_prints_the_answer() {
    let server = MockServer::start_with(Script::new().always(Reply::text("The answer."))).await.unwrap();
    let home = Home::new("locked");
    let chat = ["chat", "--base-url", &server.base_url(), "question"];
    let o = home.run(&chat).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let db = rusqlite::Connection::open(home.db()).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let o = home.run(&chat).await;
    db.execute_batch("COMMIT").unwrap();
    drop(db);
    assert_eq!(stdout(&o), "The answer.\n");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("locked") && err.contains("not saved") && err.contains("--no-log"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // --json: the answer, then the error object.
    std::fs::write(home.db(), vec![7u8; 8192]).unwrap();
    let o = home.run(&["chat", "--base-url", &server.base_url(), "--json", "question"]).await;
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(serde_json::from_str::<Value>(lines.next().unwrap()).unwrap()["content"], "The answer.");
    let error: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(error["error"]["kind"], "log");
    assert!(error["error"]["message"].as_str().unwrap().contains("damaged"), "{error}");
    let o = home.run(&chat).await;
    assert_eq!(stdout(&o), "The answer.\n");
    assert!(stderr(&o).contains("damaged"), "{}", stderr(&o));
    let o = home.run(&["chat", "--base-url", &server.base_url(), "--no-log", "question"]).await;
    assert!(o.status.success(), "--no-log skips the damaged log: {}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_with_parameters() {
    let server = MockServer::start().await.unwrap();
    let home = Home::new("templates");
    home.file(
        ".config/mamba/templates/translate.toml",
        b"system = \"You translate into $lang.\"\nprompt = \"Translate to $lang, ${tone}ly: $input\"\nmodel = \"tmpl-model\"\ntemperature = 0.1\nextra = { top_k = 3 }\n[defaults]\nlang = \"German\"\ntone = \"formal\"\n",
    );
    let url = server.base_url();
    let o = home.run(&["chat", "--base-url", &url, "-t", "translate", "-p", "lang", "French", "good morning"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v = body(&server, 0);
    assert_eq!(
        v["messages"],
        json!([
            {"role": "system", "content": "You translate into French."},
            {"role": "user", "content": "Translate to French, formally: good morning"}
        ])
    );
    assert_eq!(
        (v["model"].clone(), v["temperature"].clone(), v["top_k"].clone()),
        (json!("tmpl-model"), json!(0.1), json!(3))
    );
    // Input on stdin; flags beat the template.
    let o = home
        .run_with_input(
            &["chat", "--base-url", &url, "-t", "translate", "-m", "mine", "--temperature", "0.5", "-s", "S."],
            b"hello\n",
        )
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v = body(&server, 1);
    assert_eq!(v["messages"][0]["content"], "S.");
    assert_eq!(v["messages"][1]["content"], "Translate to German, formally: hello");
    assert_eq!((v["model"].clone(), v["temperature"].clone()), (json!("mine"), json!(0.5)));
    // A file path works as a template; a template without $input needs no prompt.
    let file = home.file("joke.toml", b"prompt = \"Tell a joke about $topic.\"\n");
    let o = home.run(&["chat", "--base-url", &url, "-t", file.to_str().unwrap(), "-p", "topic", "cats"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(body(&server, 2)["messages"], json!([{"role": "user", "content": "Tell a joke about cats."}]));
    // A missing parameter or template: usage errors, no request.
    let o = home.run(&["chat", "--base-url", &url, "-t", file.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-p topic VALUE"), "{}", stderr(&o));
    let o = home.run(&["chat", "--base-url", &url, "-t", "nope", "x"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("templates edit nope"), "{}", stderr(&o));
    assert_eq!(server.chat_requests().len(), 3);
    // list, show, edit (with an editor that appends a line: a shell script, so unix only).
    assert_eq!(stdout(&home.run(&["templates", "list"]).await), "translate\n");
    assert!(stdout(&home.run(&["templates", "show", "translate"]).await).contains("${tone}ly"));
    #[cfg(unix)]
    {
        let editor = home.file("editor.sh", b"#!/bin/sh\necho 'model = \"edited\"' >> \"$1\"\n");
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
        let o = run(home.cmd().args(["templates", "edit", "fresh"]).env("EDITOR", &editor)).await;
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&home.run(&["templates", "list"]).await), "fresh\ntranslate\n");
        assert!(stdout(&home.run(&["templates", "show", "fresh"]).await).contains("model = \"edited\""));
    }
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xff\xd9";

#[tokio::test(flavor = "multi_thread")]
async fn attachments_images_text_limits_and_vision() {
    let server = MockServer::start_with(Script::new().always(Reply::text("Seen."))).await.unwrap();
    let home = Home::new("attach");
    let png = home.file("pic.png.bin", PNG);
    let jpeg = home.file("photo", JPEG);
    let text = home.file("notes.txt", b"line one\nline two\n");
    let url = server.base_url();
    let o = home
        .run(&[
            "chat",
            "--base-url",
            &url,
            "-m",
            "gpt-4o-mini",
            "-a",
            png.to_str().unwrap(),
            "-a",
            jpeg.to_str().unwrap(),
            "-a",
            text.to_str().unwrap(),
            "-a",
            "https://example.com/cat.webp",
            "What is this?",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    assert_eq!(
        body(&server, 0)["messages"][0]["content"],
        json!([
            {"type": "text", "text": "File: notes.txt\n```\nline one\nline two\n```\n\nWhat is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(PNG))}},
            {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{}", b64(JPEG))}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
        ])
    );
    let rows = home.rows().await;
    assert_eq!(rows[0]["attachments"], json!(["pic.png.bin", "photo", "notes.txt", "https://example.com/cat.webp"]));
    // Text alone needs no vision: plain text content.
    let o =
        home.run(&["chat", "--base-url", &url, "-m", "gpt-3.5-turbo", "-a", text.to_str().unwrap(), "sum up"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(body(&server, 1)["messages"][0]["content"], "File: notes.txt\n```\nline one\nline two\n```\n\nsum up");
    // A model whose profile has no vision: refused before any request.
    let o = home.run(&["chat", "--base-url", &url, "-m", "gpt-3.5-turbo", "-a", png.to_str().unwrap(), "what?"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("gpt-3.5-turbo cannot read images"), "{}", stderr(&o));
    // Over the limit (set in the config), and neither image nor text.
    home.write_config("max_attachment_bytes = 16\n");
    let o = home.run(&["chat", "--base-url", &url, "-a", png.to_str().unwrap(), "what?"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("over the attachment limit of 16 bytes"), "{}", stderr(&o));
    std::fs::remove_file(home.config()).unwrap();
    let binary = home.file("blob.bin", &[0, 159, 146, 150, 0, 1]);
    let o = home.run(&["chat", "--base-url", &url, "-a", binary.to_str().unwrap(), "what?"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("neither an image"), "{}", stderr(&o));
    assert_eq!(server.chat_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_and_man_page() {
    let home = Home::new("shell");
    for (shell, marker, endpoint) in [
        ("bash", "complete -F", "--endpoint"),
        ("zsh", "#compdef mamba-llm", "--endpoint"),
        ("fish", "complete -c mamba-llm", "-l endpoint"),
    ] {
        let o = home.run(&["completions", shell]).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(marker) && text.contains(endpoint) && text.contains("templates"), "{shell}");
    }
    let o = home.run(&["completions", "tcsh"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = home.run(&["man"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.starts_with(".ie") || page.contains(".TH mamba-llm"), "{}", &page[..200.min(page.len())]);
    assert!(page.contains("completions"));
}
