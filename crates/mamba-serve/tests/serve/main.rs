//! The gateway end to end: mock upstreams with scripted faults behind it, this library and a
//! raw HTTP client in front.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod hostile;
mod responses;
mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mamba_backends::{collect, BackendPool, ErrorKind, Message, ModelBackend, RequestOptions, ToolDefinition};
use mamba_mock::{Match, MockServer, Reply, Script};
use mamba_serve::{Limits, ServeConfig};
use serde_json::json;
use tokio::io::AsyncReadExt;

use support::{eventually, gateway_with, open, post_json, send, spawn_post, upstream, Gateway};

fn chat_body(stream: bool) -> serde_json::Value {
    json!({"model": "mock-model", "messages": [{"role": "user", "content": "hello there"}], "stream": stream})
}

#[tokio::test]
async fn whole_and_streamed_answers_through_this_library() {
    let script = Script::new()
        .on(Match::contains("weather"), Reply::tool_call("get_weather", json!({"city": "Paris"})).usage(9, 4))
        .always(Reply::text("one two three").reasoning("thinking").usage(5, 3));
    let (_mock, gw) = gateway_with(script, Limits::new()).await;
    let client = gw.client("mock-model");
    let messages = [Message::user("hi")];

    let whole = client.complete(&messages, &RequestOptions::new()).await.unwrap();
    assert_eq!(whole.content, "one two three");
    assert_eq!(whole.reasoning.as_deref(), Some("thinking"));
    assert_eq!(whole.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((5, 3)));

    let streamed = collect(client.stream(&messages, &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(streamed.content, "one two three");
    assert_eq!(streamed.reasoning.as_deref(), Some("thinking"));
    assert_eq!(streamed.usage.map(|u| u.output_tokens), Some(3));

    let tool = ToolDefinition::function("get_weather", "weather", json!({"type": "object"}));
    let options = RequestOptions::new().tool(tool);
    for stream in [false, true] {
        let messages = [Message::user("weather in Paris?")];
        let answer = if stream {
            collect(client.stream(&messages, &options).await.unwrap()).await.unwrap()
        } else {
            client.complete(&messages, &options).await.unwrap()
        };
        assert_eq!(answer.tool_calls.len(), 1, "stream={stream}");
        assert_eq!(answer.tool_calls[0].name, "get_weather");
        assert_eq!(answer.tool_calls[0].parse_arguments::<serde_json::Value>().unwrap(), json!({"city": "Paris"}));
    }
}

#[tokio::test]
async fn sse_is_relayed_with_done_and_the_usage_chunk() {
    let (_mock, gw) = gateway_with(Script::new().always(Reply::text("a b c").usage(2, 3)), Limits::new()).await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let answer = post_json(gw.addr, "/v1/chat/completions", &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let events = answer.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let parsed: Vec<serde_json::Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(parsed.iter().all(|e| e["object"] == "chat.completion.chunk" && e["id"] == parsed[0]["id"]));
    let text: String = parsed.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "a b c");
    let usage = parsed.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 5);
    assert_eq!(parsed[parsed.len() - 2]["choices"][0]["finish_reason"], "stop");

    // Without include_usage: no usage chunk.
    let answer = post_json(gw.addr, "/v1/chat/completions", &chat_body(true)).await;
    assert!(answer.events().iter().all(|e| !e.contains("\"usage\"")), "{}", answer.text());
}

#[tokio::test]
async fn unknown_fields_and_content_parts_reach_the_upstream() {
    let (mock, gw) = gateway_with(Script::new(), Limits::new()).await;
    let body = json!({
        "model": "mock-model",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
        ],
        "top_k": 40, "repetition_penalty": 1.1, "max_completion_tokens": 7, "user": "u-1"
    });
    let answer = post_json(gw.addr, "/v1/chat/completions", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = mock.chat_requests().pop().unwrap().json.unwrap();
    assert_eq!(sent["top_k"], 40);
    assert_eq!(sent["repetition_penalty"], 1.1);
    assert_eq!(sent["user"], "u-1");
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"][1]["image_url"]["url"], "data:image/png;base64,AAAA");
}

#[tokio::test]
async fn client_errors_have_openai_shape_and_status() {
    let mock = MockServer::start().await.unwrap();
    let config =
        ServeConfig::new(upstream(&mock, "mock-model")).api_key("sk-test").limits(Limits::new().max_body_bytes(1024));
    let gw = Gateway::start(config).await;
    let auth = [("authorization", "Bearer sk-test"), ("content-type", "application/json")];
    let body = chat_body(false).to_string();

    let no_key = send(gw.addr, "POST", "/v1/chat/completions", &[], body.as_bytes()).await;
    assert_eq!(no_key.status, 401);
    assert_eq!(no_key.json()["error"]["code"], "invalid_api_key");
    let wrong =
        send(gw.addr, "POST", "/v1/chat/completions", &[("authorization", "Bearer sk-tesT")], body.as_bytes()).await;
    assert_eq!(wrong.status, 401);
    let ok = send(gw.addr, "POST", "/v1/chat/completions", &auth, body.as_bytes()).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["object"], "chat.completion");

    let unknown = json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}).to_string();
    let e = send(gw.addr, "POST", "/v1/chat/completions", &auth, unknown.as_bytes()).await;
    assert_eq!(e.status, 404);
    assert_eq!(e.json()["error"]["code"], "model_not_found");
    assert_eq!(e.json()["error"]["type"], "invalid_request_error");

    let big = json!({"messages": [{"role": "user", "content": "x".repeat(2000)}]}).to_string();
    let e = send(gw.addr, "POST", "/v1/chat/completions", &auth, big.as_bytes()).await;
    assert_eq!(e.status, 413);

    let e = send(gw.addr, "POST", "/v1/chat/completions", &auth, b"{nope").await;
    assert_eq!(e.status, 400);
    let error = &e.json()["error"];
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "{field} missing: {error}");
    }
    let e = send(gw.addr, "POST", "/v1/chat/completions", &auth, br#"{"model":"mock-model"}"#).await;
    assert_eq!((e.status, e.json()["error"]["param"].as_str()), (400, Some("messages")));

    let e = send(gw.addr, "GET", "/v1/models", &[], b"").await;
    assert_eq!(e.status, 401);
    let models = send(gw.addr, "GET", "/v1/models", &auth, b"").await;
    assert_eq!(models.json()["data"][0]["id"], "mock-model");
    assert_eq!(send(gw.addr, "GET", "/nowhere", &[], b"").await.status, 404);
    assert_eq!(send(gw.addr, "GET", "/v1/chat/completions", &auth, b"").await.status, 405);
}

#[tokio::test]
async fn upstream_errors_keep_status_and_message() {
    let script = Script::new()
        .on(
            Match::contains("bad"),
            Reply::status(422).body(json!({"error": {"message": "temperature must be at most 2", "type": "invalid_request_error"}})),
        )
        .on(
            Match::contains("long"),
            Reply::status(400).body(json!({"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}})),
        )
        .on(Match::contains("limited"), Reply::status(429).header("retry-after", "7"))
        .on(Match::contains("broken"), Reply::status(500));
    let (_mock, gw) = gateway_with(script, Limits::new()).await;
    let ask = |text: &str, stream: bool| json!({"messages": [{"role": "user", "content": text}], "stream": stream});
    for stream in [false, true] {
        let e = post_json(gw.addr, "/v1/chat/completions", &ask("bad", stream)).await;
        assert_eq!(e.status, 422, "{}", e.text());
        assert_eq!(e.json()["error"]["message"], "temperature must be at most 2");

        let e = post_json(gw.addr, "/v1/chat/completions", &ask("too long", stream)).await;
        assert_eq!(e.status, 400);
        assert_eq!(e.json()["error"]["code"], "context_length_exceeded");
        assert!(e.json()["error"]["message"].as_str().unwrap().contains("maximum context length"));

        let e = post_json(gw.addr, "/v1/chat/completions", &ask("limited", stream)).await;
        assert_eq!(e.status, 429);
        assert_eq!(e.header("retry-after"), Some("7"));

        let e = post_json(gw.addr, "/v1/chat/completions", &ask("broken", stream)).await;
        assert_eq!(e.status, 500);
    }
    // The library, as a client, classifies them as it would the upstream's own.
    let err = gw.client("mock-model").complete(&[Message::user("too long")], &RequestOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextOverflow);
}

#[tokio::test]
async fn an_error_mid_stream_is_an_error_event() {
    let (_mock, gw) = gateway_with(Script::new().always(Reply::text("a b c d").error_frame_at(2)), Limits::new()).await;
    let answer = post_json(gw.addr, "/v1/chat/completions", &chat_body(true)).await;
    assert_eq!(answer.status, 200);
    let events = answer.events();
    assert!(events.last().unwrap().contains("\"error\""), "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    let err = collect(gw.client("mock-model").stream(&[Message::user("x")], &RequestOptions::new()).await.unwrap())
        .await
        .unwrap_err();
    assert!(err.message().contains("mock error mid-stream"), "{err}");
}

#[tokio::test]
async fn every_upstream_down_is_503_and_a_timeout_504() {
    // A port nothing listens on.
    let dead = MockServer::start().await.unwrap();
    let backend = upstream(&dead, "mock-model");
    drop(dead);
    let gw = Gateway::start(ServeConfig::new(backend)).await;
    let e = post_json(gw.addr, "/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(e.status, 503, "{}", e.text());
    assert_eq!(send(gw.addr, "GET", "/health", &[], b"").await.status, 503);

    let (_mock, gw) =
        gateway_with(Script::new().always(Reply::hang()), Limits::new().request_timeout(Duration::from_millis(300)))
            .await;
    for stream in [false, true] {
        let e = post_json(gw.addr, "/v1/chat/completions", &chat_body(stream)).await;
        assert_eq!(e.status, 504, "{}", e.text());
        assert_eq!(e.json()["error"]["type"], "timeout_error");
    }
    assert_eq!(send(gw.addr, "GET", "/health", &[], b"").await.status, 200);
}

#[tokio::test]
async fn a_pool_fails_over_and_reports_503_when_all_are_down() {
    let good = MockServer::start_with(Script::new().always(Reply::text("from the good one"))).await.unwrap();
    let bad = MockServer::start_with(Script::new().always(Reply::status(503))).await.unwrap();
    let pool = BackendPool::builder().endpoint(upstream(&bad, "m")).endpoint(upstream(&good, "m")).build().unwrap();
    let gw = Gateway::start(ServeConfig::new(Arc::new(pool))).await;
    for _ in 0..3 {
        let answer = gw.client("m").complete(&[Message::user("x")], &RequestOptions::new()).await.unwrap();
        assert_eq!(answer.content, "from the good one");
    }
    good.set_script(Script::new().always(Reply::status(503)));
    let e = post_json(gw.addr, "/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(e.status, 503, "{}", e.text());
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let script = Script::new().on(Match::contains("slow"), Reply::text("done").delay(Duration::from_millis(800)));
    let (_mock, gw) = gateway_with(script, Limits::new().max_concurrent(1).max_queue(1)).await;
    let slow = json!({"messages": [{"role": "user", "content": "slow"}]});
    let first = spawn_post(gw.addr, "/v1/chat/completions", slow.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = spawn_post(gw.addr, "/v1/chat/completions", slow.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = post_json(gw.addr, "/v1/chat/completions", &slow).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json()["error"]["type"], "rate_limit_error");
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(queued.await.unwrap().status, 200);
    let metrics = send(gw.addr, "GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("kind=\"queue_full\""), "{metrics}");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_stream() {
    let script = Script::new().always(Reply::text("w ".repeat(200)).chunk_delay(Duration::from_millis(20)));
    let (mock, gw) = gateway_with(script, Limits::new()).await;
    let mut conn = open(gw.addr, "/v1/chat/completions", &chat_body(true)).await;
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200"), "{}", String::from_utf8_lossy(&buf[..n]));
    drop(conn);
    eventually("the upstream stream is dropped", || mock.disconnects() == 1).await;
    let metrics = send(gw.addr, "GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("mamba_requests_cancelled_total{model=\"mock-model\"} 1"), "{metrics}");
    assert!(metrics.contains("mamba_open_streams 0"), "{metrics}");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_a_whole_answer_too() {
    let (mock, gw) = gateway_with(Script::new().always(Reply::hang()), Limits::new()).await;
    let conn = open(gw.addr, "/v1/chat/completions", &chat_body(false)).await;
    eventually("the upstream got the request", || mock.chat_requests().len() == 1).await;
    drop(conn);
    eventually("the upstream request is dropped", || mock.disconnects() == 1).await;
}

#[tokio::test]
async fn graceful_shutdown_lets_streams_finish() {
    let script = Script::new().always(Reply::text("a b c d e").chunk_delay(Duration::from_millis(60)));
    let (_mock, mut gw) = gateway_with(script, Limits::new().grace_period(Duration::from_secs(5))).await;
    let addr = gw.addr;
    let in_flight = spawn_post(addr, "/v1/chat/completions", chat_body(true));
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.stop();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.events().last().map(String::as_str), Some("[DONE]"), "{}", answer.text());
    tokio::time::timeout(Duration::from_secs(5), &mut gw.done).await.unwrap().unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_latency() {
    let (_mock, gw) = gateway_with(Script::new().always(Reply::text("x y").usage(11, 2)), Limits::new()).await;
    post_json(gw.addr, "/v1/chat/completions", &chat_body(false)).await;
    post_json(gw.addr, "/v1/chat/completions", &chat_body(true)).await;
    post_json(gw.addr, "/v1/chat/completions", &json!({"model": "nope", "messages": []})).await;
    let m = send(gw.addr, "GET", "/metrics", &[], b"").await;
    assert!(m.header("content-type").unwrap().contains("openmetrics-text"));
    let text = m.text();
    for line in [
        "mamba_requests_total{model=\"mock-model\",endpoint=\"chat\",status=\"200\"} 2",
        "mamba_prompt_tokens_total{model=\"mock-model\"} 22",
        "mamba_generation_tokens_total{model=\"mock-model\"} 4",
        "mamba_time_to_first_token_seconds_count{model=\"mock-model\"} 1",
        "mamba_e2e_request_latency_seconds_count{model=\"mock-model\"} 3",
        "mamba_request_errors_total{model=\"mock-model\",kind=\"invalid_request\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn embeddings_as_floats_and_base64() {
    let (_mock, gw) = gateway_with(Script::new(), Limits::new()).await;
    let floats = post_json(gw.addr, "/v1/embeddings", &json!({"model": "mock-model", "input": ["a", "b"]})).await;
    assert_eq!(floats.status, 200, "{}", floats.text());
    let v = floats.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let first: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    let b64 = post_json(gw.addr, "/v1/embeddings", &json!({"input": "a", "encoding_format": "base64"})).await.json();
    let text = b64["data"][0]["embedding"].as_str().unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
    let decoded: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(decoded, first);
    // The library reads it back.
    let vectors = mamba_backends::embeddings::Embedder::embed(
        &gw.client("mock-model"),
        &mamba_backends::embeddings::EmbeddingInput::texts(["a"]),
        &mamba_backends::embeddings::EmbeddingOptions::new()
            .encoding_format(mamba_backends::embeddings::EncodingFormat::Base64),
    )
    .await
    .unwrap();
    assert_eq!(vectors.vectors[0], first);
}

#[tokio::test]
async fn the_chat_page_and_health() {
    let (_mock, gw) = gateway_with(Script::new(), Limits::new()).await;
    let page = send(gw.addr, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.text().contains("<html"));
    let health = send(gw.addr, "GET", "/health", &[], b"").await;
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn many_streams_at_once() {
    let (_mock, gw) = gateway_with(Script::new().always(Reply::text("one two three four")), Limits::new()).await;
    let client = Arc::new(gw.client("mock-model"));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut stream = client.stream(&[Message::user("x")], &RequestOptions::new()).await.unwrap();
                let mut text = String::new();
                while let Some(chunk) = stream.next().await {
                    text.push_str(&chunk.unwrap().content);
                }
                text
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "one two three four");
    }
    let _: &dyn ModelBackend = &*client;
}
