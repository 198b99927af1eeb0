//! `mamba-llm serve` against a hostile but fair user: a replica down at start, bodies that
//! stall, requests a web page could send, clients that hang up, a shutdown that cuts a
//! stream. (A module of the `serve` test binary.)

use std::time::{Duration, Instant};

use mamba_backends::{Message, ModelBackend, RequestOptions};
use mamba_mock::{MockServer, Reply, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{cmd, curl, serve};

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches("/v1").to_owned()
}

/// curl's status code and headers (`-i`), whatever the status.
async fn curl_status(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl is needed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Waits (up to 20 s) until the upstream got `n` chat requests.
async fn wait_for_upstream(mock: &MockServer, n: usize) {
    for _ in 0..2000 {
        if mock.chat_requests().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream got {} chat requests, not {n}", mock.chat_requests().len());
}

#[tokio::test]
async fn upstream_credentials_are_not_printed() {
    // Port 9 (discard): nothing listens there, and no other test's server can take it.
    let port = 9;
    let dead = format!("http://user:pa55word@127.0.0.1:{port}/v1?api_key=sk-in-the-url");
    let s = serve(&["--upstream", &dead, "--model-name", "m"], &[]).await;
    let (ok, log) = s.stop().await;
    assert!(ok, "{log:#?}");
    assert!(log.iter().any(|l| l.contains("did not answer at start")), "{log:#?}");
    assert!(log.iter().any(|l| l.contains(&format!("127.0.0.1:{port}"))), "{log:#?}");
    for secret in ["pa55word", "sk-in-the-url"] {
        assert!(!log.iter().any(|l| l.contains(secret)), "{secret} printed: {log:#?}");
    }
}

/// `serve` under a shell's `ulimit` (the soft and hard open-files limits given).
async fn serve_with_ulimit(soft: u32, hard: u32, extra: &str) -> tokio::process::Child {
    let script = format!("ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" serve --port 0 {extra}");
    let mut c = tokio::process::Command::new("bash");
    c.args(["-c", &script, super::BIN]);
    c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
    c.stderr(std::process::Stdio::piped()).kill_on_drop(true);
    c.spawn().unwrap()
}

async fn lines_until_listening(child: &mut tokio::process::Child) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("on http://");
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("serve exited: {seen:#?}");
    })
    .await
    .expect("serve did not start");
    seen
}

#[tokio::test]
async fn serve_raises_the_open_files_limit_and_fits_its_connections_in_it() {
    let mock = MockServer::start().await.unwrap();
    let upstream = format!("--upstream {},model=mock-model", mock.base_url());
    // A soft limit under a higher hard one: raised to the hard one, no note.
    let mut child = serve_with_ulimit(256, 1024, &format!("{upstream} --max-connections 100")).await;
    let seen = lines_until_listening(&mut child).await;
    let pid = child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
    assert_eq!(files.split_whitespace().nth(3), Some("1024"), "{files}");
    assert!(!seen.iter().any(|l| l.contains("lowered")), "{seen:#?}");
    child.kill().await.unwrap();

    // A hard limit of 256: the 4,096 connections by default do not fit; it says so.
    let mut child = serve_with_ulimit(256, 256, &upstream).await;
    let seen = lines_until_listening(&mut child).await;
    assert!(seen.iter().any(|l| l.contains("--max-connections 4096 lowered to 96")), "{seen:#?}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_replica_down_at_start_is_served_and_picked_up_when_it_returns() {
    let port = free_port();
    let dead = format!("http://127.0.0.1:{port}/v1");
    let live = MockServer::start_with(Script::new().always(Reply::text("from the live one"))).await.unwrap();
    // No model named anywhere: the live replica lists mock-model.
    let s = serve(&["--upstream", &dead, "--upstream", &live.base_url()], &[]).await;
    let client = s.client("mock-model");
    for _ in 0..2 {
        let answer = client.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
        assert_eq!(answer.content, "from the live one");
    }
    let health = curl(&[&format!("http://{}/health", addr_of(&s.url))]).await;
    assert!(health.contains("\"degraded\""), "{health}");

    let revived = MockServer::builder()
        .port(port)
        .script(Script::new().always(Reply::text("from the revived one")))
        .start()
        .await
        .unwrap();
    let mut from_revived = 0;
    for _ in 0..6 {
        let answer = client.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
        from_revived += usize::from(answer.content == "from the revived one");
    }
    assert!(from_revived >= 1, "the replica that came back got no requests");
    assert_eq!(revived.chat_requests().len(), from_revived);
    let (ok, log) = s.stop().await;
    assert!(ok, "{log:#?}");
}

#[tokio::test]
async fn every_replica_down_at_start_needs_a_model_name() {
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let out = tokio::time::timeout(Duration::from_secs(30), cmd().args(["serve", "--upstream", &dead]).output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the model"));
    // Named, it starts.
    let s = serve(&["--upstream", &dead, "--model-name", "m"], &[]).await;
    let health = curl(&[&format!("http://{}/health", addr_of(&s.url))]).await;
    assert!(health.contains("\"unavailable\""), "{health}");
    s.stop().await;
}

#[tokio::test]
async fn what_a_web_page_or_a_slow_client_sends_is_refused() {
    let mock = MockServer::start_with(Script::new().always(Reply::text("hi"))).await.unwrap();
    let upstream = format!("{},model=mock-model", mock.base_url());
    let s = serve(
        &[
            "--upstream",
            &upstream,
            "--api-key-env",
            "SERVE_KEY",
            "--public-page",
            "--cors-origin",
            "http://localhost:3000",
            "--body-timeout",
            "0.5",
        ],
        &[("SERVE_KEY", "sk-h")],
    )
    .await;
    let base = format!("http://{}", addr_of(&s.url));
    let chat = format!("{base}/v1/chat/completions");
    let body = r#"{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}"#;
    let key = "authorization: Bearer sk-h";

    // curl -d sends a form type; a page's text/plain likewise: 415. With JSON: 200.
    let (status, text) = curl_status(&[&chat, "-H", key, "-d", body]).await;
    assert_eq!(status, 415, "{text}");
    let (status, _) = curl_status(&[&chat, "-H", key, "-H", "content-type: text/plain", "-d", body]).await;
    assert_eq!(status, 415);
    let (status, text) = curl_status(&[&chat, "-H", key, "-H", "content-type: application/json", "-d", body]).await;
    assert_eq!(status, 200, "{text}");

    // A rebound DNS name, a foreign origin's preflight, HEAD, and the key on /metrics.
    let (status, _) = curl_status(&[&format!("{base}/health"), "-H", "host: evil.example"]).await;
    assert_eq!(status, 403);
    let preflight = ["-X", "OPTIONS", "-H", "access-control-request-method: POST"];
    let (status, text) =
        curl_status(&[&[chat.as_str(), "-H", "origin: http://evil.example"][..], &preflight].concat()).await;
    assert_eq!(status, 403);
    assert!(!text.to_ascii_lowercase().contains("access-control-allow-origin"), "{text}");
    let (status, text) =
        curl_status(&[&[chat.as_str(), "-H", "origin: http://localhost:3000"][..], &preflight].concat()).await;
    assert_eq!(status, 204);
    assert!(text.to_ascii_lowercase().contains("access-control-allow-origin: http://localhost:3000"), "{text}");
    let (status, text) = curl_status(&["-I", &format!("{base}/health")]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(curl_status(&[&format!("{base}/metrics")]).await.0, 401);
    assert_eq!(curl_status(&[&format!("{base}/metrics"), "-H", key]).await.0, 200);
    assert_eq!(curl_status(&[&format!("{base}/")]).await.0, 200);

    // A body that stalls: 408 within --body-timeout.
    let started = Instant::now();
    let mut conn = TcpStream::connect(addr_of(&s.url)).await.unwrap();
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n{key}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{{");
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut raw)).await.unwrap().unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let (ok, log) = s.stop().await;
    assert!(ok);
    assert!(!log.iter().any(|l| l.contains("sk-h")), "the key is in the log: {log:#?}");
}

#[tokio::test]
async fn a_hung_up_request_and_a_stream_cut_at_shutdown_are_logged() {
    let script = Script::new()
        .on(mamba_mock::Match::contains("hang"), Reply::hang())
        .always(Reply::text("w ".repeat(500)).chunk_delay(Duration::from_millis(20)));
    let mock = MockServer::start_with(script).await.unwrap();
    let upstream = format!("{},model=mock-model", mock.base_url());
    let s = serve(&["--upstream", &upstream, "--grace", "0.5"], &[]).await;
    let chat = format!("{}/chat/completions", s.url);

    // A whole answer whose client hangs up.
    let hang = r#"{"messages":[{"role":"user","content":"hang"}]}"#;
    let mut conn = TcpStream::connect(addr_of(&s.url)).await.unwrap();
    let request = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{hang}", hang.len());
    conn.write_all(request.as_bytes()).await.unwrap();
    wait_for_upstream(&mock, 1).await;
    drop(conn);

    // A stream still running when the grace period ends.
    let body = r#"{"stream":true,"messages":[{"role":"user","content":"long"}]}"#;
    let stream =
        tokio::spawn(async move { curl(&["-N", &chat, "-H", "content-type: application/json", "-d", body]).await });
    wait_for_upstream(&mock, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (ok, log) = s.stop().await;
    assert!(ok, "{log:#?}");
    let sse = stream.await.unwrap();
    let last = sse.trim_end().lines().last().unwrap_or_default();
    assert!(last.contains("server_shutdown"), "the cut stream did not end with an error event: {last}");
    assert!(!sse.contains("[DONE]"));
    assert!(
        log.iter().any(|l| l.contains("status=499") && l.contains("cancelled=true")),
        "the hung-up request is not in the log: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("stream=true") && l.contains("shutdown")),
        "the cut stream is not in the log: {log:#?}"
    );
}

#[tokio::test]
async fn bad_limits_are_usage_errors() {
    for args in [
        vec!["--body-timeout", "0"],
        vec!["--max-connections", "0"],
        vec!["--max-connections", "4611686018427387904"],
        vec!["--max-concurrent", "18446744073709551615"],
    ] {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            cmd().args(["serve", "--upstream", "http://127.0.0.1:9/v1,model=m"]).args(&args).output(),
        )
        .await
        .unwrap()
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}
