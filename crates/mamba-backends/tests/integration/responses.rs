//! The Responses API against the mock server: the same answers and chunks as chat, reasoning
//! items kept across a tool loop, `Auto` detection and fallback, the reverse switch, faults.

use std::time::Duration;

use mamba_backends::{
    collect, preset::WireApi, ErrorKind, FinishReason, Message, ModelBackend, OpenAICompatibleBackend, Preset,
    RequestOptions, RetryPolicy, ToolDefinition,
};
use mamba_mock::{Match, MockServer, Reply, Rule, Script};
use serde_json::{json, Value};

fn backend(server: &MockServer, api: WireApi) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("mock-model")
        .base_url(server.base_url())
        .preset(Preset::Generic)
        .wire_api(api)
        .timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition::function(
        "get_weather",
        "Current weather",
        json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
    )
}

/// The same scripted answer over both APIs gives equal answers, streamed and not.
#[tokio::test]
async fn both_apis_give_the_same_answer() {
    let reply = Reply::text("Paris is sunny today.").reasoning("Look it up.").usage(11, 7);
    let server = MockServer::start_with(Script::new().always(reply)).await.unwrap();
    let messages = [Message::system("Be brief."), Message::user("Weather?")];
    let options = RequestOptions::new();
    let mut answers = Vec::new();
    for api in [WireApi::ChatCompletions, WireApi::Responses] {
        let b = backend(&server, api);
        let whole = b.complete(&messages, &options).await.unwrap();
        let streamed = collect(b.stream(&messages, &options).await.unwrap()).await.unwrap();
        assert_eq!(whole.content, "Paris is sunny today.", "{api:?}");
        assert_eq!(whole.reasoning.as_deref(), Some("Look it up."), "{api:?}");
        assert_eq!(whole.finish_reason, Some(FinishReason::Stop), "{api:?}");
        assert_eq!(whole.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((11, 7)), "{api:?}");
        assert_eq!(
            (&streamed.content, &streamed.reasoning, &streamed.finish_reason, streamed.usage.map(|u| u.total_tokens)),
            (&whole.content, &whole.reasoning, &whole.finish_reason, whole.usage.map(|u| u.total_tokens)),
            "{api:?}"
        );
        answers.push(whole);
    }
    assert_eq!(server.chat_requests().len(), 2);
    let sent = server.responses_requests();
    assert_eq!(sent.len(), 2);
    let body = sent[0].json.clone().unwrap();
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(body["store"], false);
    assert_eq!(body["input"], json!([{"type":"message","role":"user","content":"Weather?"}]));
    assert!(answers[1].id.as_deref().unwrap().starts_with("resp_"));
}

/// A tool loop over the Responses API keeps the model's reasoning: the reasoning item (with
/// its encrypted content) comes back on the next request, before the call it led to.
#[tokio::test]
async fn reasoning_survives_a_tool_loop() {
    let script = Script::new()
        .rule(Rule::new(
            Match::role("user"),
            Reply::tool_call("get_weather", json!({"city":"Paris"})).reasoning("I should check the weather."),
        ))
        .on(Match::role("tool"), Reply::text("It is sunny in Paris."));
    let server = MockServer::start_with(script).await.unwrap();
    let b = backend(&server, WireApi::Responses);
    let options = RequestOptions::new().tool(weather_tool()).encrypted_reasoning(true);
    for streamed in [false, true] {
        server.clear_requests();
        let mut history = vec![Message::user("Weather in Paris?")];
        let first = if streamed {
            collect(b.stream(&history, &options).await.unwrap()).await.unwrap()
        } else {
            b.complete(&history, &options).await.unwrap()
        };
        assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(first.reasoning_items.len(), 1, "streamed: {streamed}");
        let call = first.tool_calls[0].clone();
        history.push(first.to_message());
        history.push(Message::tool(call.id.clone(), "sunny, 21C"));
        let second = b.complete(&history, &options).await.unwrap();
        assert_eq!(second.content, "It is sunny in Paris.");

        let sent = server.responses_requests();
        let input = sent[1].json.as_ref().unwrap()["input"].clone();
        let kinds: Vec<&str> = input.as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["message", "reasoning", "function_call", "function_call_output"], "{input}");
        let reasoning = &input[1];
        assert!(reasoning["id"].as_str().unwrap().starts_with("rs_"));
        assert_eq!(reasoning["summary"][0]["text"], "I should check the weather.");
        assert_eq!(reasoning["encrypted_content"], format!("enc:{}", "I should check the weather.".len()));
        assert_eq!(input[2]["call_id"], call.id.as_str());
        assert_eq!(input[3], json!({"type":"function_call_output","call_id":call.id,"output":"sunny, 21C"}));
        assert_eq!(sent[0].json.as_ref().unwrap()["include"], json!(["reasoning.encrypted_content"]));
    }
    // Chat ignores the items: the same history goes out without them.
    let chat = backend(&server, WireApi::ChatCompletions);
    let mut history = vec![Message::user("Weather in Paris?")];
    let first = chat.complete(&history, &RequestOptions::new().tool(weather_tool())).await.unwrap();
    let with_items = first.to_message().with_reasoning_items(vec![mamba_backends::message::ReasoningItem::new("rs_x")]);
    history.push(with_items);
    history.push(Message::tool(first.tool_calls[0].id.clone(), "sunny"));
    chat.complete(&history, &RequestOptions::new()).await.unwrap();
    let last = server.chat_requests().pop().unwrap().json.unwrap();
    assert!(!last.to_string().contains("rs_x"), "{last}");
}

/// Tool calls stream whole under one index, with their id and name.
#[tokio::test]
async fn streamed_tool_calls_are_whole() {
    let reply = Reply::tool_call("get_weather", json!({"city":"Paris","unit":"celsius"}))
        .with_tool_call("get_time", json!({"tz":"Europe/Paris"}))
        .chunk_chars(3);
    let server = MockServer::start_with(Script::new().always(reply)).await.unwrap();
    let b = backend(&server, WireApi::Responses);
    let mut stream = b.stream(&[Message::user("x")], &RequestOptions::new().tool(weather_tool())).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        chunks.push(chunk.unwrap());
    }
    assert_eq!(chunks.iter().filter(|c| c.is_final).count(), 1);
    assert!(chunks.last().unwrap().is_final && chunks.last().unwrap().usage.is_some());
    let mut acc = mamba_backends::StreamAccumulator::new();
    acc.extend(chunks);
    let a = acc.finish();
    assert_eq!(a.tool_calls.len(), 2);
    assert_eq!(a.tool_calls[0].name, "get_weather");
    assert_eq!(serde_json::from_str::<Value>(&a.tool_calls[0].arguments).unwrap()["unit"], "celsius");
    assert_eq!(a.tool_calls[1].arguments, r#"{"tz":"Europe/Paris"}"#);
    assert_eq!(a.finish_reason, Some(FinishReason::ToolCalls));
}

/// Auto on a server without `/responses` (404) falls back to chat once and remembers it.
#[tokio::test]
async fn auto_falls_back_to_chat_and_remembers() {
    let script = Script::new().on(Match::api("responses"), Reply::status(404)).always(Reply::text("chat here"));
    let server = MockServer::start_with(script).await.unwrap();
    let b = backend(&server, WireApi::Auto);
    assert_eq!(b.wire_api(), WireApi::Auto);
    let a = b.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(a.content, "chat here");
    assert_eq!(b.wire_api(), WireApi::ChatCompletions);
    let a = collect(b.stream(&[Message::user("hi")], &RequestOptions::new()).await.unwrap()).await.unwrap();
    assert_eq!(a.content, "chat here");
    assert_eq!(server.responses_requests().len(), 1, "asked once");
    assert_eq!(server.chat_requests().len(), 2);
}

/// Auto on a server with the Responses API stays on it; a later 404 (a missing model) is an
/// error, not a switch. Options the Responses API lacks go to chat for that request.
#[tokio::test]
async fn auto_stays_on_responses_once_it_answered() {
    let script = Script::new().on(Match::model("missing"), Reply::status(404)).always(Reply::text("ok"));
    let server = MockServer::start_with(script).await.unwrap();
    let b = backend(&server, WireApi::Auto);
    b.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(b.wire_api(), WireApi::Responses);
    let err =
        b.complete(&[Message::user("hi")], &RequestOptions::new().extra("model", json!("missing"))).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(b.wire_api(), WireApi::Responses);
    b.complete(&[Message::user("hi")], &RequestOptions::new().stop(["\n"])).await.unwrap();
    assert_eq!(server.chat_requests().len(), 1);
    assert_eq!(server.responses_requests().len(), 2);
}

/// A chat endpoint that says the model works only with the Responses API moves a backend on
/// its preset's default to the Responses API; an explicit chat setting stays.
#[tokio::test]
async fn responses_only_models_switch_the_backend() {
    let only = json!({"error":{"message":"This model is only supported in v1/responses and not in v1/chat/completions.","type":"invalid_request_error","param":"model","code":null}});
    let script =
        Script::new().on(Match::api("chat"), Reply::status(400).body(only)).always(Reply::text("via responses"));
    let server = MockServer::start_with(script).await.unwrap();
    let by_preset = OpenAICompatibleBackend::builder("codex-only")
        .base_url(server.base_url())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    assert_eq!(by_preset.wire_api(), WireApi::ChatCompletions);
    let a = by_preset.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(a.content, "via responses");
    assert_eq!(by_preset.wire_api(), WireApi::Responses);
    let pinned = backend(&server, WireApi::ChatCompletions);
    let err = pinned.complete(&[Message::user("hi")], &RequestOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

/// Faults over the Responses API: an error event mid-stream, a stream cut before
/// `response.completed`, a malformed event, an HTTP error, a length limit.
#[tokio::test]
async fn faults_are_errors() {
    let script = Script::new()
        .on(Match::contains("error-event"), Reply::text("a b c d").error_frame_at(3))
        .on(Match::contains("no-completed"), Reply::text("a b c").no_done())
        .on(Match::contains("malformed"), Reply::text("a b c").malformed_frame_at(2))
        .on(Match::contains("rate"), Reply::status(429).header("retry-after", "7"))
        .on(Match::contains("long"), Reply::text("cut here").finish_reason("length"));
    let server = MockServer::start_with(script).await.unwrap();
    let b = backend(&server, WireApi::Responses);
    let ask = |text: &'static str| {
        let b = b.clone();
        async move { collect(b.stream(&[Message::user(text)], &RequestOptions::new()).await?).await }
    };
    assert_eq!(ask("error-event").await.unwrap_err().kind(), ErrorKind::Server);
    assert_eq!(ask("no-completed").await.unwrap_err().kind(), ErrorKind::Stream);
    assert_eq!(ask("malformed").await.unwrap_err().kind(), ErrorKind::Decode);
    let err = ask("rate").await.unwrap_err();
    assert_eq!((err.kind(), err.retry_after()), (ErrorKind::RateLimited, Some(Duration::from_secs(7))));
    assert_eq!(ask("long").await.unwrap().finish_reason, Some(FinishReason::Length));
    let whole = b.complete(&[Message::user("long")], &RequestOptions::new()).await.unwrap();
    assert_eq!(whole.finish_reason, Some(FinishReason::Length));
    assert_eq!(whole.raw_json().unwrap()["status"], "incomplete");
}
