//! `POST /v1/responses`: the Responses API in front of a chat upstream, read raw and through
//! this library's Responses client.

use futures_util::StreamExt;
use mamba_backends::{
    collect, preset::WireApi, ErrorKind, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions, RetryPolicy,
    ToolDefinition,
};
use mamba_mock::{Match, Reply, Script};
use mamba_serve::Limits;
use serde_json::{json, Value};

use crate::support::{gateway_with, post_json, send, Gateway};

/// A client of the gateway that speaks the Responses API.
fn responses_client(gw: &Gateway) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("mock-model")
        .base_url(gw.url())
        .wire_api(WireApi::Responses)
        .retry_policy(RetryPolicy::none())
        .build()
        .expect("client")
}

/// The typed events of a Responses SSE body, checking that each `event:` line names the
/// event's `type` and that sequence numbers count up from 0.
fn typed_events(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let kind =
            lines.next().and_then(|l| l.strip_prefix("event: ")).unwrap_or_else(|| panic!("no event line: {block}"));
        let data = lines.next().and_then(|l| l.strip_prefix("data: ")).unwrap_or_else(|| panic!("no data: {block}"));
        let event: Value = serde_json::from_str(data).unwrap();
        assert_eq!(event["type"], kind, "{block}");
        assert_eq!(event["sequence_number"], out.len(), "{block}");
        out.push(event);
    }
    out
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_whole_response_from_a_chat_upstream() {
    let script = Script::new()
        .on(Match::contains("weather"), Reply::tool_call("get_weather", json!({"city": "Paris"})).usage(9, 4))
        .on(Match::contains("long"), Reply::text("cut").finish_reason("length"))
        .always(Reply::text("one two three").reasoning("thinking").usage(5, 3));
    let (mock, gw) = gateway_with(script, Limits::new()).await;
    let body = json!({"model": "mock-model", "input": "hi", "instructions": "be brief", "max_output_tokens": 50,
                      "temperature": 0.3, "store": false, "metadata": {"k": "v"}, "top_k": 20});
    let answer = post_json(gw.addr, "/v1/responses", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let v = answer.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "mock-model");
    assert_eq!(v["instructions"], "be brief");
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["output"][0]["type"], "reasoning");
    assert_eq!(v["output"][0]["content"][0]["text"], "thinking");
    assert_eq!(v["output"][1]["type"], "message");
    assert_eq!(v["output"][1]["role"], "assistant");
    assert_eq!(v["output"][1]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][1]["content"][0]["text"], "one two three");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 3,
                                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 8})
    );
    // What the chat upstream got: instructions first, the options in chat's names, extras kept.
    let sent = mock.chat_requests().pop().unwrap().json.unwrap();
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "be brief"}));
    assert_eq!(sent["messages"][1]["content"], "hi");
    assert_eq!(sent["max_tokens"].as_u64().or(sent["max_completion_tokens"].as_u64()), Some(50));
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["top_k"], 20);
    assert!(sent.get("metadata").is_none() && sent.get("store").is_none(), "{sent}");

    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let body = json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]}], "tools": tools,
                      "tool_choice": "required"});
    let v = post_json(gw.addr, "/v1/responses", &body).await.json();
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call", "{v}");
    assert_eq!(call["name"], "get_weather");
    assert!(!call["call_id"].as_str().unwrap().is_empty());
    assert_eq!(serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(), json!({"city": "Paris"}));
    assert_eq!(v["tools"][0]["name"], "get_weather");
    assert!(v["tools"][0]["strict"].is_null(), "{v}");
    let sent = mock.chat_requests().pop().unwrap().json.unwrap();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "required");

    let v = post_json(gw.addr, "/v1/responses", &json!({"input": "a long one"})).await.json();
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"], json!({"reason": "max_output_tokens"}));
}

#[tokio::test]
async fn a_streamed_response_as_typed_events() {
    let script = Script::new()
        .on(Match::contains("weather"), Reply::tool_call("get_weather", json!({"city": "Paris"})))
        .always(Reply::text("a b c").usage(2, 3));
    let (_mock, gw) = gateway_with(script, Limits::new()).await;
    let answer = post_json(gw.addr, "/v1/responses", &json!({"input": "hi", "stream": true})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let events = typed_events(&answer.text());
    let kinds = types(&events);
    assert_eq!(
        &kinds[..5],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta"
        ]
    );
    assert_eq!(
        &kinds[kinds.len() - 4..],
        ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    );
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "a b c");
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["id"], events[0]["response"]["id"]);
    assert_eq!(done["output"][0]["content"][0]["text"], "a b c");
    assert_eq!(done["usage"]["total_tokens"], 5);
    assert!(!answer.text().contains("[DONE]"));

    let answer = post_json(gw.addr, "/v1/responses", &json!({"input": "weather?", "stream": true})).await;
    let events = typed_events(&answer.text());
    let added = events.iter().find(|e| e["type"] == "response.output_item.added").unwrap();
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["name"], "get_weather");
    let args: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
    let args_done = events.iter().find(|e| e["type"] == "response.function_call_arguments.done").unwrap();
    assert_eq!(args_done["arguments"], args.as_str());
    assert_eq!(events.last().unwrap()["response"]["output"][0]["arguments"], args.as_str());
}

#[tokio::test]
async fn errors_before_and_during_the_stream() {
    let script = Script::new()
        .on(Match::contains("limited"), Reply::status(429).header("retry-after", "7"))
        .on(Match::contains("midway"), Reply::text("a b c d").error_frame_at(2))
        .always(Reply::text("fine"));
    let (_mock, gw) = gateway_with(script, Limits::new()).await;
    let e = post_json(gw.addr, "/v1/responses", &json!({"input": "limited"})).await;
    assert_eq!(e.status, 429, "{}", e.text());
    assert!(e.header("retry-after").is_some());
    assert!(e.json()["error"]["message"].is_string());
    let e = post_json(gw.addr, "/v1/responses", &json!({"input": [{"type": "item_reference", "id": "x"}]})).await;
    assert_eq!(e.status, 400);
    assert_eq!(e.json()["error"]["param"], "input[0]");
    let e = post_json(gw.addr, "/v1/responses", &json!({"model": "gpt-9", "input": "x"})).await;
    assert_eq!(e.status, 404);
    let e = send(gw.addr, "GET", "/v1/responses", &[], b"").await;
    assert_eq!(e.status, 405);

    let answer = post_json(gw.addr, "/v1/responses", &json!({"input": "midway", "stream": true})).await;
    assert_eq!(answer.status, 200);
    let events = typed_events(&answer.text());
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].as_str().unwrap().contains("mock error mid-stream"), "{last}");
    // This library's Responses client reads it as an error.
    let err = collect(responses_client(&gw).stream(&[Message::user("midway")], &RequestOptions::new()).await.unwrap())
        .await
        .unwrap_err();
    assert!(err.message().contains("mock error mid-stream"), "{err}");
    let err = responses_client(&gw).complete(&[Message::user("limited")], &RequestOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");

    let m = send(gw.addr, "GET", "/metrics", &[], b"").await.text();
    assert!(m.contains("endpoint=\"responses\""), "{m}");
}

#[tokio::test]
async fn this_librarys_responses_client_whole_streamed_and_a_tool_round_trip() {
    let script = Script::new()
        .on(Match::role("tool"), Reply::text("It is sunny in Paris."))
        .on(Match::contains("weather"), Reply::tool_call("get_weather", json!({"city": "Paris"})).usage(9, 4))
        .always(Reply::text("one two three").reasoning("thinking").usage(5, 3));
    let (mock, gw) = gateway_with(script, Limits::new()).await;
    let client = responses_client(&gw);
    assert_eq!(client.wire_api(), WireApi::Responses);
    let messages = [Message::system("be brief"), Message::user("hi")];

    let whole = client.complete(&messages, &RequestOptions::new().max_tokens(20)).await.unwrap();
    assert_eq!(whole.content, "one two three");
    assert_eq!(whole.reasoning.as_deref(), Some("thinking"));
    assert_eq!(whole.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((5, 3)));
    assert!(whole.id.as_deref().unwrap().starts_with("resp_"));

    let mut stream = client.stream(&messages, &RequestOptions::new()).await.unwrap();
    let mut pieces = 0;
    let mut text = String::new();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        pieces += usize::from(!chunk.content.is_empty());
        text.push_str(&chunk.content);
        last = Some(chunk);
    }
    assert!(pieces > 1, "the text came in one piece");
    assert_eq!(text, "one two three");
    let last = last.unwrap();
    assert!(last.is_final);
    assert_eq!(last.usage.map(|u| u.output_tokens), Some(3));

    let tool = ToolDefinition::function("get_weather", "weather", json!({"type": "object"}));
    let options = RequestOptions::new().tool(tool);
    for stream in [false, true] {
        let mut conversation = vec![Message::user("weather in Paris?")];
        let answer = if stream {
            collect(client.stream(&conversation, &options).await.unwrap()).await.unwrap()
        } else {
            client.complete(&conversation, &options).await.unwrap()
        };
        assert_eq!(answer.tool_calls.len(), 1, "stream={stream}");
        let call = answer.tool_calls[0].clone();
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.parse_arguments::<Value>().unwrap(), json!({"city": "Paris"}));
        conversation.push(answer.to_message());
        conversation.push(Message::tool(call.id.clone(), "sunny, 21 C"));
        let answer = client.complete(&conversation, &options).await.unwrap();
        assert_eq!(answer.content, "It is sunny in Paris.", "stream={stream}");
        // The chat upstream saw the call and its result, tied by the call id.
        let sent = mock.chat_requests().pop().unwrap().json.unwrap();
        let msgs = sent["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "{sent}");
        assert_eq!(msgs[1]["tool_calls"][0]["id"], call.id.as_str());
        assert_eq!(msgs[1]["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(msgs[2], json!({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}));
    }
}

#[tokio::test]
async fn a_responses_upstream_behind_the_gateway() {
    let script = Script::new().always(Reply::text("one two").reasoning("thinking").usage(4, 2));
    let mock = mamba_mock::MockServer::start_with(script).await.unwrap();
    let upstream = OpenAICompatibleBackend::builder("mock-model")
        .base_url(mock.base_url())
        .wire_api(WireApi::Responses)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let gw = Gateway::start(mamba_serve::ServeConfig::new(std::sync::Arc::new(upstream))).await;
    // The backend's reasoning item (its id, its summary) and the text, once, whole and streamed.
    let whole = post_json(gw.addr, "/v1/responses", &json!({"input": "hi"})).await.json();
    let answer = post_json(gw.addr, "/v1/responses", &json!({"input": "hi", "stream": true})).await;
    let events = typed_events(&answer.text());
    let streamed = &events.last().unwrap()["response"];
    for v in [&whole, streamed] {
        let output = v["output"].as_array().unwrap();
        assert_eq!(output.len(), 2, "{v:#}");
        assert_eq!(output[0]["type"], "reasoning");
        assert!(output[0]["id"].as_str().unwrap().starts_with("rs_resp_mock"), "{v:#}");
        assert_eq!(output[0]["summary"][0]["text"], "thinking");
        assert_eq!(output[0]["content"][0]["text"], "thinking");
        assert_eq!(output[1]["content"][0]["text"], "one two");
        assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 1);
    }
    assert_eq!(mock.responses_requests().len(), 2);
    let r = responses_client(&gw).complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "one two");
}
