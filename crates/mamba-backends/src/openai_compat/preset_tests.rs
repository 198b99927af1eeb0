//! Request translation per preset: each server gets only what it accepts, in its own form.

use serde_json::{json, Value};

use super::request::{to_body, ChatRequest};
use super::OpenAICompatibleBackend;
use crate::error::ErrorKind;
use crate::options::{RequestOptions, ResponseFormat};
use crate::preset::Preset;
use crate::types::{Message, ToolCall, ToolChoice};

fn backend(preset: Preset, drop_unsupported: bool) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("m")
        .preset(preset)
        .base_url("http://127.0.0.1:1/v1")
        .drop_unsupported(drop_unsupported)
        .build()
        .unwrap()
}

/// The body sent, or the error raised before sending.
fn wire(
    preset: Preset,
    drop: bool,
    messages: &[Message],
    options: &RequestOptions,
    stream: bool,
) -> Result<Value, ErrorKind> {
    let b = backend(preset, drop);
    let config = &b.shared.wire;
    let body = to_body(&ChatRequest { model: "m", messages, options, stream, config }).map_err(|e| e.kind())?;
    Ok(serde_json::from_slice(&body).unwrap())
}

fn hi() -> Vec<Message> {
    vec![Message::user("hi")]
}

#[test]
fn mistral_renames_seed_remaps_ids_and_rejects_n() {
    let history = vec![
        Message::user("weather?"),
        Message::assistant_with_tool_calls("", vec![ToolCall::new("call_7kE4IjtnwXcGbX6hDM7xFu8T", "w", "{}")]),
        Message::tool("call_7kE4IjtnwXcGbX6hDM7xFu8T", "sunny"),
    ];
    let v = wire(Preset::Mistral, false, &history, &RequestOptions::new().seed(3), true).unwrap();
    assert_eq!(v["random_seed"], 3);
    assert!(v.get("seed").is_none());
    let id = v["messages"][1]["tool_calls"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 9);
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(v["messages"][2]["tool_call_id"], json!(id));
    assert!(v.get("stream_options").is_none(), "Mistral gets no stream_options");
    let n = RequestOptions::new().extra("n", json!(2));
    assert_eq!(wire(Preset::Mistral, false, &hi(), &n, false), Err(ErrorKind::Unsupported));
    let v = wire(Preset::Mistral, true, &hi(), &n, false).unwrap();
    assert!(v.get("n").is_none());
}

#[test]
fn groq_rejects_n_logprobs_logit_bias_and_drops_names() {
    for field in ["n", "logprobs", "logit_bias", "top_logprobs"] {
        let options = RequestOptions::new().extra(field, json!(1));
        assert_eq!(wire(Preset::Groq, false, &hi(), &options, false), Err(ErrorKind::Unsupported), "{field}");
        let v = wire(Preset::Groq, true, &hi(), &options, false).unwrap();
        assert!(v.get(field).is_none(), "{field}");
    }
    let named = vec![Message::user("hi").with_name("alice")];
    let v = wire(Preset::Groq, false, &named, &RequestOptions::new(), false).unwrap();
    assert!(v["messages"][0].get("name").is_none());
    let v = wire(Preset::OpenAI, false, &named, &RequestOptions::new(), false).unwrap();
    assert_eq!(v["messages"][0]["name"], "alice");
}

#[test]
fn ollama_drops_ignored_fields_without_failing() {
    let options = RequestOptions::new().tool_choice(ToolChoice::Required).parallel_tool_calls(false).max_tokens(5);
    let v = wire(Preset::Ollama, false, &hi(), &options, false).unwrap();
    assert!(v.get("tool_choice").is_none());
    assert!(v.get("parallel_tool_calls").is_none());
    assert_eq!(v["max_tokens"], 5);
}

#[test]
fn openai_and_azure_use_max_completion_tokens() {
    for preset in [Preset::OpenAI, Preset::Azure, Preset::AzureLegacy] {
        let v = wire(preset, false, &hi(), &RequestOptions::new().max_tokens(7), false).unwrap();
        assert_eq!(v["max_completion_tokens"], 7);
        assert!(v.get("max_tokens").is_none());
    }
    let v = wire(Preset::Vllm, false, &hi(), &RequestOptions::new().max_tokens(7), false).unwrap();
    assert_eq!(v["max_tokens"], 7);
}

#[test]
fn structured_output_per_server() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let js = RequestOptions::new().response_format(ResponseFormat::json_schema("answer", schema.clone()));
    let jo = RequestOptions::new().response_format(ResponseFormat::JsonObject);
    // Native.
    let v = wire(Preset::OpenAI, false, &hi(), &js, false).unwrap();
    assert_eq!(v["response_format"]["json_schema"]["schema"], schema);
    // llama.cpp: json_object with a schema.
    let v = wire(Preset::LlamaCpp, false, &hi(), &js, false).unwrap();
    assert_eq!(v["response_format"], json!({"type": "json_object", "schema": schema}));
    // TGI: its own form.
    let v = wire(Preset::Tgi, false, &hi(), &js, false).unwrap();
    assert_eq!(v["response_format"], json!({"type": "json", "value": schema}));
    // LM Studio: json_object as an open schema.
    let v = wire(Preset::LmStudio, false, &hi(), &jo, false).unwrap();
    assert_eq!(v["response_format"]["type"], "json_schema");
    // DeepSeek: no schemas; an error, or json_object when dropping is allowed.
    assert_eq!(wire(Preset::DeepSeek, false, &hi(), &js, false), Err(ErrorKind::Unsupported));
    let v = wire(Preset::DeepSeek, true, &hi(), &js, false).unwrap();
    assert_eq!(v["response_format"], json!({"type": "json_object"}));
    let v = wire(Preset::DeepSeek, false, &hi(), &jo, false).unwrap();
    assert_eq!(v["response_format"], json!({"type": "json_object"}));
}

#[test]
fn deepseek_gets_reasoning_back_on_tool_turns_only() {
    let mut call_turn = Message::assistant_with_tool_calls("", vec![ToolCall::new("call_1", "f", "{}")]);
    call_turn.reasoning = Some("I should call f".into());
    let mut text_turn = Message::assistant("done");
    text_turn.reasoning = Some("thinking".into());
    let history = vec![Message::user("q"), call_turn, Message::tool("call_1", "r"), text_turn, Message::user("next")];
    let v = wire(Preset::DeepSeek, false, &history, &RequestOptions::new(), false).unwrap();
    assert_eq!(v["messages"][1]["reasoning_content"], "I should call f");
    assert!(v["messages"][3].get("reasoning_content").is_none());
    // Mistral and the others never get it.
    let v = wire(Preset::Mistral, false, &history, &RequestOptions::new(), false).unwrap();
    assert!(v["messages"][1].get("reasoning_content").is_none());
}

#[test]
fn stop_is_always_an_array() {
    for &preset in Preset::ALL {
        let v = wire(preset, false, &hi(), &RequestOptions::new().stop(["END"]), false).unwrap();
        assert_eq!(v["stop"], json!(["END"]), "{preset}");
    }
}

#[test]
fn include_usage_per_preset() {
    for &preset in Preset::ALL {
        let v = wire(preset, false, &hi(), &RequestOptions::new(), true).unwrap();
        let asked = v.get("stream_options").is_some();
        assert_eq!(asked, preset.spec().include_usage, "{preset}");
    }
}
