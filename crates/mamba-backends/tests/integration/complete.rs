//! Non-streaming answers of every shape.

use mamba_backends::{FinishReason, Message, ModelBackend, RequestOptions, ToolCall, ToolDefinition};
use serde_json::json;

use crate::support::{RawServer, Reply};
use crate::{backend, builder};

fn user() -> Vec<Message> {
    vec![Message::user("hi")]
}

/// OpenAI: a plain answer; the request carries only model and messages, the key as Bearer.
#[tokio::test]
async fn openai_plain_answer_and_minimal_request() {
    let server = RawServer::fixed(Reply::json(
        200,
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"service_tier":"default","system_fingerprint":"fp_1"}"#,
    ))
    .await;
    let b = builder(&server.url()).api_key("sk-test-key").build().unwrap();
    let r = b.complete(&[Message::system("be brief"), Message::user("hi")], &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "Hello!");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    let usage = r.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (9, 3, 12));
    assert_eq!(r.raw_json().unwrap()["system_fingerprint"], "fp_1");

    let req = &server.requests()[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"model":"test-model","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]})
    );
}

/// OpenAI: a tool-call answer has `content: null`; the seed returned None, we return "".
#[tokio::test]
async fn openai_tool_call_content_null() {
    let server = RawServer::fixed(Reply::json(
        200,
        r#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_7kE4IjtnwXcGbX6hDM7xFu8T","type":"function","function":{"name":"weather","arguments":"{\"location\":\"Florence, Italy\"}"}}],"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":56,"completion_tokens":16,"total_tokens":72}}"#,
    ))
    .await;
    let tool = ToolDefinition::function(
        "weather",
        "Weather",
        json!({"type":"object","properties":{"location":{"type":"string"}}}),
    );
    let r = backend(&server.url()).complete(&user(), &RequestOptions::new().tool(tool)).await.unwrap();
    assert_eq!(r.content, "");
    assert_eq!(
        r.tool_calls,
        vec![ToolCall::new("call_7kE4IjtnwXcGbX6hDM7xFu8T", "weather", r#"{"location":"Florence, Italy"}"#)]
    );
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    // Tools are sent whatever the (unknown) model's profile: the seed dropped them.
    assert_eq!(server.requests()[0].json()["tools"][0]["function"]["name"], "weather");
}

/// TGI (and older Ollama, vLLM with a named tool_choice): tool calls with finish_reason
/// "stop", no content key, arguments as a JSON object (older TGI).
#[tokio::test]
async fn tgi_tool_call_without_content_and_object_arguments() {
    let server = RawServer::fixed(Reply::json(
        200,
        r#"{"object":"chat.completion","id":"","created":1,"model":"meta-llama/Llama-3.1-8B-Instruct","system_fingerprint":"3.0.1-native","choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"0","type":"function","function":{"description":null,"name":"get_weather","arguments":{"location":"Paris"}}}]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30}}"#,
    ))
    .await;
    let r = backend(&server.url()).complete(&user(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "");
    assert_eq!(r.tool_calls, vec![ToolCall::new("0", "get_weather", r#"{"location":"Paris"}"#)]);
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(r.id, None);
}

/// Groq: text and tool calls in the same message; extra fields (`x_groq`, `usage_breakdown`).
#[tokio::test]
async fn groq_text_and_tool_calls_together() {
    let server = RawServer::fixed(Reply::json(
        200,
        r#"{"id":"chatcmpl-g","object":"chat.completion","created":1,"model":"moonshotai/kimi-k2-instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"functions.weather:0","type":"function","function":{"name":"weather","arguments":"{\"location\":\"Florence\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"queue_time":0.1,"prompt_tokens":10,"prompt_time":0.01,"completion_tokens":5,"completion_time":0.02,"total_tokens":15,"total_time":0.03},"usage_breakdown":null,"system_fingerprint":"fp_1","x_groq":{"id":"req_01"},"service_tier":"on_demand"}"#,
    ))
    .await;
    let r = backend(&server.url()).complete(&user(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.content, "Let me check.");
    assert_eq!(r.tool_calls[0].id, "functions.weather:0");
    assert_eq!(r.raw_json().unwrap()["x_groq"]["id"], "req_01");
}

/// DeepSeek: empty lines before the JSON body while the server is busy; reasoning_content.
#[tokio::test]
async fn deepseek_blank_lines_then_reasoning_content() {
    let body = "\n\n\n\n{\"id\":\"d\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"9.9\",\"reasoning_content\":\"compare decimals\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,\"total_tokens\":14,\"prompt_cache_hit_tokens\":2,\"completion_tokens_details\":{\"reasoning_tokens\":6}}}";
    let server = RawServer::fixed(Reply::json(200, body)).await;
    let r = backend(&server.url()).complete(&user(), &RequestOptions::new()).await.unwrap();
    assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("9.9", Some("compare decimals")));
    let u = r.usage.unwrap();
    assert_eq!((u.cached_input_tokens, u.reasoning_tokens), (Some(2), Some(6)));
}

/// vLLM (since PR #27752), Ollama, OpenRouter: reasoning in `reasoning`.
#[tokio::test]
async fn vllm_reasoning_field() {
    let server = RawServer::fixed(Reply::json(
        200,
        r#"{"choices":[{"message":{"content":"4","reasoning":"2+2"},"finish_reason":"stop"}]}"#,
    ))
    .await;
    let r = backend(&server.url()).complete(&user(), &RequestOptions::new()).await.unwrap();
    assert_eq!(r.reasoning.as_deref(), Some("2+2"));
}

/// Groq `reasoning_format: raw`, llama.cpp `--reasoning-format none`, TGI: `<think>` in the
/// content is split off by default and kept when switched off.
#[tokio::test]
async fn think_tags_split_and_switchable() {
    let body = r#"{"choices":[{"message":{"content":"<think>\nThe user greets.\n</think>\n\nHello!"},"finish_reason":"stop"}]}"#;
    let server = RawServer::fixed(Reply::json(200, body)).await;
    let r = backend(&server.url()).complete(&user(), &RequestOptions::new()).await.unwrap();
    assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("Hello!", Some("\nThe user greets.\n")));
    let raw = builder(&server.url()).parse_think_tags(false).build().unwrap();
    let r = raw.complete(&user(), &RequestOptions::new()).await.unwrap();
    assert!(r.content.starts_with("<think>"));
    assert_eq!(r.reasoning, None);
}

/// Servers that send an empty or unknown finish_reason (Together `eos`, custom values).
#[tokio::test]
async fn empty_and_unknown_finish_reasons() {
    for (value, expected) in [
        ("\"\"", None),
        ("\"eos\"", Some(FinishReason::Stop)),
        ("\"model_length\"", Some(FinishReason::Length)),
        ("\"brand_new\"", Some(FinishReason::Other("brand_new".into()))),
        ("null", None),
    ] {
        let server = RawServer::fixed(Reply::json(
            200,
            &format!(r#"{{"choices":[{{"message":{{"content":"x"}},"finish_reason":{value}}}]}}"#),
        ))
        .await;
        let r = backend(&server.url()).complete(&user(), &RequestOptions::new()).await.unwrap();
        assert_eq!(r.finish_reason, expected, "{value}");
    }
}

/// The seed's `**kwargs`: extra fields merged last; temperature only when asked.
#[tokio::test]
async fn options_and_extra_fields_reach_the_body() {
    let server = RawServer::fixed(Reply::json(200, r#"{"choices":[{"message":{"content":"ok"}}]}"#)).await;
    let options = RequestOptions::new()
        .temperature(0.3)
        .max_tokens(50)
        .stop(["END"])
        .seed(1)
        .extra("top_k", json!(20))
        .extra("temperature", json!(0.9));
    backend(&server.url()).complete(&user(), &options).await.unwrap();
    let body = server.requests()[0].json();
    assert_eq!(body["temperature"], json!(0.9));
    assert_eq!(body["top_k"], json!(20));
    assert_eq!(body["max_tokens"], json!(50));
    assert_eq!(body["stop"], json!(["END"]));
}

/// For the same answer, `collect(stream())` equals `complete()` (OpenAI tool call with text,
/// reasoning and usage).
#[tokio::test]
async fn collect_equals_complete() {
    let whole = r#"{"id":"chatcmpl-9","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","reasoning_content":"need data","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
    let stream = concat!(
        "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":\"need \"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"data\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Check\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ing.\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n",
        "data: [DONE]\n\n"
    );
    let whole_server = RawServer::fixed(Reply::json(200, whole)).await;
    let stream_server = RawServer::fixed(Reply::sse(stream)).await;
    let complete = backend(&whole_server.url()).complete(&user(), &RequestOptions::new()).await.unwrap();
    let collected =
        crate::stream_answer(&backend(&stream_server.url()), &user(), &RequestOptions::new()).await.unwrap();
    // Everything but the raw body (kept for non-streaming answers only) is equal.
    assert!(complete.raw_body().is_some() && collected.raw_body().is_none());
    assert_eq!(collected.content, complete.content);
    assert_eq!(collected.reasoning, complete.reasoning);
    assert_eq!(collected.tool_calls, complete.tool_calls);
    assert_eq!(collected.usage, complete.usage);
    assert_eq!(collected.model, complete.model);
    assert_eq!(collected.finish_reason, complete.finish_reason);
    assert_eq!(collected.id, complete.id);
}

/// A history with a tool round trip is sent back in the wire shape (the seed could not).
#[tokio::test]
async fn tool_loop_history_is_sent_back() {
    let server = RawServer::start(|_, n| {
        if n == 0 {
            Reply::json(200, r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"add","arguments":"{\"a\":1,\"b\":2}"}}]},"finish_reason":"tool_calls"}]}"#)
        } else {
            Reply::json(200, r#"{"choices":[{"message":{"content":"3"},"finish_reason":"stop"}]}"#)
        }
    })
    .await;
    let b = backend(&server.url());
    let mut history = vec![Message::user("1+2?")];
    let first = b.complete(&history, &RequestOptions::new()).await.unwrap();
    history.push(first.to_message());
    for call in &first.tool_calls {
        let args: serde_json::Value = call.parse_arguments().unwrap();
        history.push(Message::tool(&call.id, (args["a"].as_i64().unwrap() + args["b"].as_i64().unwrap()).to_string()));
    }
    let second = b.complete(&history, &RequestOptions::new()).await.unwrap();
    assert_eq!(second.content, "3");
    let sent = server.requests()[1].json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role":"user","content":"1+2?"},
            {"role":"assistant","content":"","tool_calls":[{"id":"call_9","type":"function","function":{"name":"add","arguments":"{\"a\":1,\"b\":2}"}}]},
            {"role":"tool","content":"3","tool_call_id":"call_9"}
        ])
    );
}

/// `health_check` keeps the seed's meaning: 200, 401 and 403 on GET /models are reachable.
#[tokio::test]
async fn health_check_seed_semantics() {
    for (status, healthy) in [(200, true), (401, true), (403, true), (404, false), (500, false)] {
        let server = RawServer::fixed(Reply::json(status, "{}")).await;
        assert_eq!(backend(&server.url()).health_check().await, healthy, "{status}");
        assert_eq!(server.requests()[0].path, "/v1/models");
    }
    let dead = backend("http://127.0.0.1:9/v1");
    assert!(!dead.health_check().await);
}
