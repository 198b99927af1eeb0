//! Hostile use of `chat` and `config show`: URLs that do not parse exactly, keys in URLs and
//! headers, and a stdin larger than any prompt.

use std::process::Stdio;
use std::time::Duration;

use mamba_mock::MockServer;
use tokio::io::AsyncWriteExt;

use super::{run, stdout};
use crate::common::{cmd, stderr, temp_dir};

/// A port out of range (or any URL that does not parse exactly) is a config error (exit 2)
/// before any connection: before the fix `:99999` became port 80 and the key went there.
/// An HTTP proxy in the environment sees every request the CLI would send; it sees none.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_base_url_is_a_config_error_and_nothing_is_sent() {
    let key = "sk-hostile-KEY-123456";
    let proxy = MockServer::start().await.unwrap();
    let proxy_url = format!("http://{}", proxy.addr());
    for url in [
        "http://127.0.0.1:99999/v1".to_owned(),
        "http://127.0.0.1:65536/v1".to_owned(),
        "http://127.0.0.1:80abc/v1".to_owned(),
        "http://127.0.0.1 :80/v1".to_owned(),
        format!("http://user:{key}@127.0.0.1:99999/v1"),
        format!("http://127.0.0.1:99999/v1?api_key={key}"),
    ] {
        let o = run(cmd()
            .args(["chat", "--retries", "0", "--base-url", &url, "hi"])
            .env("MAMBA_API_KEY", key)
            .env("http_proxy", &proxy_url))
        .await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("invalid base URL"), "{url}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains(key) && !stdout(&o).contains(key), "{err}");
    }
    assert_eq!(proxy.connections(), 0, "a request was sent");
}

/// stdin over --max-input-bytes fails once the limit is read, naming the flag; the server
/// gets nothing. The input is endless: reading it whole would never finish.
#[tokio::test(flavor = "multi_thread")]
async fn stdin_over_the_limit_fails_fast() {
    let server = MockServer::start().await.unwrap();
    let mut child = cmd()
        .args(["chat", "--retries", "0", "--base-url", &server.base_url(), "--max-input-bytes", "65536"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = tokio::spawn(async move {
        let block = vec![b'z'; 64 * 1024];
        while stdin.write_all(&block).await.is_ok() {}
    });
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("finished").unwrap();
    feeder.abort();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("stdin is larger than 64 KiB") && err.contains("--max-input-bytes"), "{err}");
    assert_eq!(server.request_count(), 0);
    // Under the limit, the prompt goes.
    let mut child = cmd()
        .args(["chat", "--retries", "0", "--base-url", &server.base_url(), "--max-input-bytes", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ten bytes\n").await.unwrap();
    let o = child.wait_with_output().await.unwrap();
    assert_eq!(stdout(&o), "ten bytes\n", "{}", stderr(&o));
}

/// A key in the base URL's query never reaches logs.db (nor `logs`), and the log and its
/// folder are private.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_holds_no_key_and_is_private() {
    let secret = "sk-query-SECRET-98765";
    let server = MockServer::start().await.unwrap();
    let data = temp_dir("hostile-log").join("data");
    let url = format!("{}?api_key={secret}&api-version=1", server.base_url());
    let o = run(cmd().args(["chat", "--retries", "0", "--base-url", &url, "hello"]).env("MAMBA_DATA_DIR", &data)).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.chat_requests()[0].path, format!("/v1/chat/completions?api_key={secret}&api-version=1"));
    let db = data.join("logs.db");
    let bytes = std::fs::read(&db).unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the key is in logs.db");
    let o = run(cmd().args(["logs", "--json"]).env("MAMBA_DATA_DIR", &data)).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains(secret) && stdout(&o).contains("api_key=[REDACTED]"), "{}", stdout(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&data), 0o700);
    }
}

/// `config show` hides values that look like credentials whatever the header's name.
#[tokio::test(flavor = "multi_thread")]
async fn config_show_hides_secret_values_by_value() {
    let dir = temp_dir("hostile-config");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        r#"[endpoints.w]
base_url = "http://127.0.0.1:1/v1?token=tok-SECRET-1"
headers = { "X-Custom" = "Bearer sk-SECRET-custom-2", "X-Plain" = "visible" }
"#,
    )
    .unwrap();
    let o = run(cmd().args(["config", "show"]).env("MAMBA_CONFIG", &config)).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("visible") && shown.contains("X-Custom"), "{shown}");
}

/// `health` names the server it checked without the key of a `?api_key=` query or the
/// password of a `user:password@` URL, healthy or not (it printed the URL raw).
#[tokio::test(flavor = "multi_thread")]
async fn health_never_prints_a_key_in_the_url() {
    let server = MockServer::start().await.unwrap();
    let healthy = format!("{}?api_key=sk-HEALTH-SECRET-1&api-version=2024", server.base_url());
    let o = run(cmd().args(["health", "--retries", "0", "--base-url", &healthy])).await;
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("healthy") && out.contains("api-version=2024"), "{out}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
    // Unreachable: the failure line names the URL too.
    let dead = "http://bob:pw-HEALTH-SECRET-2@127.0.0.1:1/v1?key=sk-HEALTH-SECRET-3";
    let o = run(cmd().args(["health", "--retries", "0", "--timeout", "5", "--base-url", dead])).await;
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(!o.status.success(), "{out}{err}");
    assert!(err.contains("127.0.0.1:1") && out.contains("unhealthy"), "{out}{err}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
}
