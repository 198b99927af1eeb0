//! Tool calling through a chat template with tools, on SmolLM2-135M: its own ChatML template has
//! no tools, so the test template `tests/data/chatml-tools.jinja` (Hermes-style `<tool_call>`
//! blocks, as Qwen2.5's) is given instead (`LocalOptions::chat_template`). The tools' grammar
//! makes every call it writes valid, also at temperature 1. That a call block a model opens by
//! itself is held to the grammar is tested in the engine's unit tests; the refusal, on a tiny
//! model whose template has no tools.

use futures_util::StreamExt;
use mamba_backends::{
    collect, ErrorKind, FinishReason, Message, ModelBackend, ModelResponse, RequestOptions, ToolCall, ToolChoice,
    ToolDefinition,
};
use mamba_local::{LocalBackend, LocalOptions};
use serde_json::json;

const TEMPLATE: &str = include_str!("../data/chatml-tools.jinja");
const MODEL: &str = "qwen2-Q8_0.gguf";

fn tools() -> Vec<ToolDefinition> {
    vec![
        ToolDefinition::function(
            "get_weather",
            "The weather in a city",
            json!({"type": "object", "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 20},
                "unit": {"enum": ["celsius", "fahrenheit"]}
            }, "required": ["city", "unit"]}),
        ),
        ToolDefinition::function(
            "search",
            "Search the web",
            json!({"type": "object", "properties": {
                "q": {"type": "string", "maxLength": 30},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10}
            }, "required": ["q"]}),
        ),
    ]
}

/// SmolLM2 with the test template.
async fn with_tools() -> Option<LocalBackend> {
    let path = crate::support::model_path()?;
    let options = LocalOptions::new().threads(2).chat_template(TEMPLATE).prompt_cache(false);
    Some(LocalBackend::load_async(path, options).await.unwrap())
}

/// A tiny model with its own template, which has no tools.
async fn tiny() -> Option<LocalBackend> {
    let path = crate::families::tiny_dir()?.join(MODEL);
    Some(LocalBackend::load_async(path, LocalOptions::new().threads(2)).await.unwrap())
}

fn ask() -> Vec<Message> {
    vec![Message::user("What is the weather in Paris?")]
}

/// [`assert_valid_arguments`], and the ids of this template's syntax.
fn assert_valid(calls: &[ToolCall]) {
    assert_valid_arguments(calls);
    for call in calls {
        assert!(call.id.starts_with("call_") && call.id.len() > 10, "{call:?}");
    }
}

/// Every call names a given tool and its arguments validate against that tool's schema.
fn assert_valid_arguments(calls: &[ToolCall]) {
    for call in calls {
        let tool = tools().into_iter().find(|t| t.name == call.name).unwrap_or_else(|| panic!("unknown {call:?}"));
        let arguments: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
        let validator = jsonschema::validator_for(&tool.parameters).unwrap();
        assert!(validator.is_valid(&arguments), "{call:?} against {}", tool.parameters);
    }
}

/// The calls without their (random) ids, and the content.
fn shape(response: &ModelResponse) -> (String, Vec<(String, String)>, Option<FinishReason>) {
    let calls = response.tool_calls.iter().map(|c| (c.name.clone(), c.arguments.clone())).collect();
    (response.content.clone(), calls, response.finish_reason.clone())
}

#[tokio::test]
async fn a_forced_call_is_a_valid_call_whole_and_streamed() {
    let Some(backend) = with_tools().await else { return };
    assert!(backend.profile().supports_tools);
    for seed in [1, 2] {
        let options = RequestOptions::new()
            .tools(tools())
            .tool_choice(ToolChoice::Function("get_weather".to_owned()))
            .temperature(1.0)
            .seed(seed)
            .max_tokens(200);
        let whole = backend.complete(&ask(), &options).await.unwrap();
        assert_eq!(whole.tool_calls.len(), 1, "{whole:?}");
        assert_eq!(whole.tool_calls[0].name, "get_weather");
        assert_valid(&whole.tool_calls);
        assert_eq!((whole.content.as_str(), whole.finish_reason.clone()), ("", Some(FinishReason::ToolCalls)));

        // Streamed: the call arrives as one delta with its id and name, and it is the same call.
        let mut stream = backend.stream(&ask(), &options).await.unwrap();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            chunks.push(chunk.unwrap());
        }
        let deltas: Vec<_> = chunks.iter().flat_map(|c| c.tool_calls.clone()).collect();
        assert_eq!(deltas.len(), 1, "{deltas:?}");
        assert!(deltas[0].id.is_some() && deltas[0].name.as_deref() == Some("get_weather"));
        let streamed = collect(Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))).await.unwrap();
        assert_eq!(shape(&streamed), shape(&whole), "seed {seed}");
    }
}

#[tokio::test]
async fn required_calls_and_auto_answers_only_hold_valid_calls() {
    let Some(backend) = with_tools().await else { return };
    for seed in [4, 5] {
        let options = RequestOptions::new()
            .tools(tools())
            .tool_choice(ToolChoice::Required)
            .temperature(0.8)
            .seed(seed)
            .max_tokens(300);
        let response = backend.complete(&ask(), &options).await.unwrap();
        assert!(!response.tool_calls.is_empty(), "{response:?}");
        assert_valid(&response.tool_calls);
        assert!(matches!(response.finish_reason, Some(FinishReason::ToolCalls | FinishReason::Length)), "{response:?}");
        // auto: the model may write text; any call in it is valid.
        let auto = RequestOptions::new().tools(tools()).temperature(0.8).seed(seed).max_tokens(60);
        let response = backend.complete(&ask(), &auto).await.unwrap();
        assert_valid(&response.tool_calls);
    }
}

#[tokio::test]
async fn a_conversation_with_calls_and_answers_goes_on() {
    let Some(backend) = with_tools().await else { return };
    let mut asked = Message::assistant("");
    asked.tool_calls = vec![ToolCall::new("call_1", "get_weather", r#"{"city":"Paris","unit":"celsius"}"#)];
    let messages = vec![Message::user("Weather in Paris?"), asked, Message::tool("call_1", "18 degrees, sunny")];
    let options = RequestOptions::new().tools(tools()).max_tokens(8);
    let response = backend.complete(&messages, &options).await.unwrap();
    assert_valid(&response.tool_calls);
    // The tools are in the prompt, and the earlier call with its answer.
    let with = backend.prompt_tokens(&messages).unwrap();
    assert!(!with.is_empty());
}

#[tokio::test]
async fn tool_choice_is_checked_and_none_writes_text() {
    let Some(backend) = with_tools().await else { return };
    let unknown = RequestOptions::new().tools(tools()).tool_choice(ToolChoice::Function("rm".to_owned()));
    let err = backend.complete(&ask(), &unknown).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
    assert!(err.to_string().contains("get_weather, search"), "{err}");
    let err = backend.complete(&ask(), &RequestOptions::new().tool_choice(ToolChoice::Required)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
    let none =
        RequestOptions::new().tools(tools()).tool_choice(ToolChoice::None).max_tokens(20).seed(1).temperature(1.0);
    let response = backend.complete(&ask(), &none).await.unwrap();
    assert!(response.tool_calls.is_empty());
    assert_ne!(response.finish_reason, Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn a_template_without_tools_refuses_them_naming_the_file() {
    let Some(backend) = tiny().await else { return };
    assert!(!backend.profile().supports_tools);
    let err = backend.complete(&ask(), &RequestOptions::new().tools(tools())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains(MODEL) && err.to_string().contains("has no tools"), "{err}");
    // No tools, no tool_choice that needs them: a plain answer.
    let plain = RequestOptions::new().tool_choice(ToolChoice::Auto).max_tokens(2);
    assert!(backend.complete(&ask(), &plain).await.is_ok());
}

/// SmolLM2 with a template in the style of Mistral 7B v0.3's (`[TOOL_CALLS] [...]`).
async fn with_listed_tools() -> Option<LocalBackend> {
    let path = crate::support::model_path()?;
    let template = include_str!("../data/mistral-tools.jinja");
    let options = LocalOptions::new().threads(2).chat_template(template).prompt_cache(false);
    Some(LocalBackend::load_async(path, options).await.unwrap())
}

/// Mistral's ids: 9 letters and digits (its templates refuse any other when a call is rendered).
fn assert_mistral_ids(calls: &[ToolCall]) {
    for call in calls {
        assert!(call.id.len() == 9 && call.id.chars().all(|c| c.is_ascii_alphanumeric()), "{call:?}");
    }
}

#[tokio::test]
async fn listed_calls_are_valid_whole_and_streamed_and_render_back() {
    let Some(backend) = with_listed_tools().await else { return };
    assert!(backend.profile().supports_tools);
    let forced = |seed| {
        RequestOptions::new()
            .tools(tools())
            .tool_choice(ToolChoice::Function("get_weather".to_owned()))
            .temperature(1.0)
            .seed(seed)
            .max_tokens(200)
    };
    let whole = backend.complete(&ask(), &forced(1)).await.unwrap();
    assert_eq!(whole.tool_calls.len(), 1, "{whole:?}");
    assert_eq!(whole.tool_calls[0].name, "get_weather");
    assert_valid_arguments(&whole.tool_calls);
    assert_mistral_ids(&whole.tool_calls);
    assert_eq!((whole.content.as_str(), whole.finish_reason.clone()), ("", Some(FinishReason::ToolCalls)));
    let streamed = collect(backend.stream(&ask(), &forced(1)).await.unwrap()).await.unwrap();
    assert_eq!(shape(&streamed), shape(&whole));

    // Required, then auto: any call is valid.
    let required = RequestOptions::new().tools(tools()).tool_choice(ToolChoice::Required).temperature(0.8).seed(4);
    let response = backend.complete(&ask(), &required.max_tokens(300)).await.unwrap();
    assert!(!response.tool_calls.is_empty(), "{response:?}");
    assert_valid_arguments(&response.tool_calls);
    let auto = RequestOptions::new().tools(tools()).temperature(0.8).seed(5).max_tokens(60);
    assert_valid_arguments(&backend.complete(&ask(), &auto).await.unwrap().tool_calls);

    // The call and its answer render back through the template, which checks the id.
    let mut asked = Message::assistant("");
    asked.tool_calls = whole.tool_calls.clone();
    let id = whole.tool_calls[0].id.clone();
    let messages = vec![Message::user("Weather in Paris?"), asked.clone(), Message::tool(&id, "18 degrees, sunny")];
    let text = backend.complete(&messages, &RequestOptions::new().tools(tools()).max_tokens(8)).await.unwrap();
    assert_valid_arguments(&text.tool_calls);
    asked.tool_calls[0].id = "call_1".to_owned();
    let messages = vec![Message::user("Weather in Paris?"), asked, Message::tool("call_1", "18 degrees, sunny")];
    let err = backend.complete(&messages, &RequestOptions::new().tools(tools()).max_tokens(8)).await.unwrap_err();
    assert!(err.to_string().contains("length 9"), "{err}");
}

/// Tools and a response format together, `tool_choice` auto: the whole answer is calls or the
/// format's JSON, never text outside both (each alone would drop the other); with `none`, the
/// format.
#[tokio::test]
async fn tools_with_a_response_format_answer_with_calls_or_the_format() {
    let Some(backend) = with_tools().await else { return };
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string", "maxLength": 20}}, "required": ["answer"]});
    let format = mamba_backends::ResponseFormat::json_schema("answer", schema.clone());
    let validator = jsonschema::validator_for(&schema).unwrap();
    let (mut calls, mut answers) = (0, 0);
    for seed in 1..=6 {
        let options = RequestOptions::new()
            .tools(tools())
            .response_format(format.clone())
            .temperature(1.0)
            .seed(seed)
            .max_tokens(120);
        let response = backend.complete(&ask(), &options).await.unwrap();
        if response.tool_calls.is_empty() {
            let value: serde_json::Value =
                serde_json::from_str(&response.content).unwrap_or_else(|e| panic!("{e}: {response:?}"));
            assert!(validator.is_valid(&value), "{response:?}");
            answers += 1;
        } else {
            assert_valid(&response.tool_calls);
            assert_eq!(response.content, "", "{response:?}");
            calls += 1;
        }
    }
    eprintln!("tools with a response format: {calls} answers with calls, {answers} with the format's JSON");
    let none = RequestOptions::new()
        .tools(tools())
        .tool_choice(ToolChoice::None)
        .response_format(format)
        .seed(1)
        .max_tokens(60);
    let response = backend.complete(&ask(), &none).await.unwrap();
    assert!(response.tool_calls.is_empty());
    assert!(validator.is_valid(&serde_json::from_str(&response.content).unwrap()), "{response:?}");
}
