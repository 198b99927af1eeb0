//! Structured output (`Extract`) against mamba-mock: what each server form puts on the wire,
//! local repairs without a second request, retries with the validation errors as feedback,
//! and the outcomes that end the loop at once (refusal, an answer cut by the token limit).

use std::sync::Arc;

use mamba_backends::preset::WireApi;
// The derive names `schemars::…`: the crate's re-export in scope is enough.
use mamba_backends::schemars::{self, JsonSchema};
use mamba_backends::structured::{attempts_of, Partial, Repair};
use mamba_backends::{
    BackendPool, ErrorKind, Extract, ExtractMode, ExtractOptions, Message, ModelBackend, OpenAICompatibleBackend,
    Preset,
};
use mamba_mock::{Match, MockServer, Reply, Rule, Script};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::builder;

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
struct Person {
    name: String,
    age: u32,
    email: Option<String>,
}

fn ask() -> Vec<Message> {
    vec![Message::user("Ada Lovelace, 36.")]
}

/// A mock answering each chat request in turn with `replies`, the last one again after that.
async fn mock(replies: Vec<Reply>) -> MockServer {
    let mut script = Script::new();
    let last = replies.last().cloned().unwrap_or_else(|| Reply::text("{}"));
    for (i, reply) in replies.into_iter().enumerate() {
        script = script.rule(Rule::new(Match::call(i + 1), reply));
    }
    MockServer::start_with(script.always(last)).await.unwrap()
}

fn backend_for(server: &MockServer, preset: Preset) -> OpenAICompatibleBackend {
    builder(&server.base_url())
        .preset(preset)
        .api_key("sk-test-key")
        .wire_api(WireApi::ChatCompletions)
        .build()
        .unwrap()
}

fn bodies(server: &MockServer) -> Vec<Value> {
    server.chat_requests().into_iter().map(|r| r.json.expect("a JSON body")).collect()
}

/// A derived type, extracted on the first attempt; the schema (field order kept) and the
/// instruction are on the wire.
#[tokio::test]
async fn a_typed_struct_is_extracted_on_the_first_attempt() {
    let server = mock(vec![Reply::text(r#"{"name": "Ada", "age": 36, "email": null}"#).usage(20, 10)]).await;
    let b = backend_for(&server, Preset::Vllm);
    let out = b.extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap();
    assert_eq!(out.value, Person { name: "Ada".into(), age: 36, email: None });
    assert_eq!(out.attempts.len(), 1);
    assert!(out.attempts[0].repairs.is_empty());
    assert_eq!(out.usage.total_tokens, 30);
    let body = &bodies(&server)[0];
    let format = &body["response_format"];
    assert_eq!(format["type"], json!("json_schema"));
    assert_eq!(format["json_schema"]["name"], json!("Person"));
    let props: Vec<&String> = format["json_schema"]["schema"]["properties"].as_object().unwrap().keys().collect();
    assert_eq!(props, ["name", "age", "email"], "field order is kept");
    assert_eq!(body["messages"][0]["role"], json!("system"));
    assert!(body["messages"][0]["content"].as_str().unwrap().contains("JSON Schema"));
}

/// Each malformation is repaired locally: one request, the repair counted.
#[tokio::test]
async fn each_malformation_is_repaired_without_a_second_request() {
    let cases: &[(&str, Repair)] = &[
        ("```json\n{\"name\": \"Ada\", \"age\": 36, \"email\": null}\n```", Repair::Fence),
        ("Here it is: {\"name\": \"Ada\", \"age\": 36, \"email\": null} Anything else?", Repair::Prose),
        ("{\"name\": \"Ada\", \"age\": 36, \"email\": null,}", Repair::TrailingComma),
        ("{'name': 'Ada', 'age': 36, 'email': null}", Repair::SingleQuotes),
        ("{name: \"Ada\", age: 36, email: null}", Repair::UnquotedKey),
        ("{\"name\": \"Ada\", // the name\n \"age\": 36, \"email\": null}", Repair::Comment),
        ("{\"name\": \"Ada\", \"age\": 36, \"email\": None}", Repair::PythonLiteral),
    ];
    for (text, repair) in cases {
        let server = mock(vec![Reply::text(*text)]).await;
        let out =
            backend_for(&server, Preset::Generic).extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap();
        assert_eq!(out.value.name, "Ada", "{text}");
        assert!(out.attempts[0].repairs.contains(repair), "{text}: {:?}", out.attempts[0].repairs);
        assert_eq!(server.chat_requests().len(), 1, "{text}");
    }
    // A single object where an array of one was asked.
    let server = mock(vec![Reply::text(r#"{"name": "Ada", "age": 36, "email": null}"#)]).await;
    let out =
        backend_for(&server, Preset::Generic).extract::<Vec<Person>>(&ask(), &ExtractOptions::new()).await.unwrap();
    assert_eq!(out.value.len(), 1);
    assert_eq!(out.attempts[0].repairs, [Repair::WrappedInArray]);
    assert_eq!(server.chat_requests().len(), 1);
}

/// An invalid answer, then a valid one: two attempts, and the second request carries the
/// rejected answer and the validation error.
#[tokio::test]
async fn an_invalid_answer_is_sent_back_with_its_errors() {
    let server = mock(vec![
        Reply::text(r#"{"name": "Ada", "age": -1, "email": null}"#).usage(10, 5),
        Reply::text(r#"{"name": "Ada", "age": 36, "email": null}"#).usage(30, 5),
    ])
    .await;
    let out = backend_for(&server, Preset::Generic).extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap();
    assert_eq!(out.value.age, 36);
    assert_eq!(out.attempts.len(), 2);
    assert!(out.attempts[0].error.as_deref().unwrap().contains("/age"), "{:?}", out.attempts[0].error);
    assert_eq!(out.attempts[1].error, None);
    assert_eq!(out.usage.total_tokens, 50);
    let second = &bodies(&server)[1];
    let messages = second["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], json!("assistant"));
    assert!(messages[n - 2]["content"].as_str().unwrap().contains("-1"));
    assert_eq!(messages[n - 1]["role"], json!("user"));
    let feedback = messages[n - 1]["content"].as_str().unwrap();
    assert!(feedback.contains("/age: -1 is less than the minimum of 0"), "{feedback}");
}

/// Three invalid answers: InvalidOutput, every attempt's text and error on it.
#[tokio::test]
async fn three_invalid_answers_are_invalid_output() {
    let server = mock(vec![Reply::text(r#"{"name": 1}"#), Reply::text("no idea"), Reply::text(r#"{"age": 3}"#)]).await;
    let e = backend_for(&server, Preset::Generic).extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidOutput);
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("after 3 attempt"), "{e}");
    let attempts = attempts_of(&e).expect("the attempts");
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[1].text, "no idea");
    assert!(attempts.iter().all(|a| a.error.is_some()));
    assert_eq!(server.chat_requests().len(), 3);
    // Fewer attempts when asked.
    let server = mock(vec![Reply::text("no idea")]).await;
    let e = backend_for(&server, Preset::Generic)
        .extract::<Person>(&ask(), &ExtractOptions::new().attempts(1))
        .await
        .unwrap_err();
    assert_eq!(attempts_of(&e).map(<[_]>::len), Some(1));
    assert_eq!(server.chat_requests().len(), 1);
}

/// An answer cut by the token limit inside its JSON is Truncated after one request.
#[tokio::test]
async fn a_length_cut_answer_is_truncated_at_once() {
    let server = mock(vec![Reply::text(r#"{"name": "Ada", "ag"#).finish_reason("length")]).await;
    let e = backend_for(&server, Preset::Generic).extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
    assert!(e.to_string().contains("max_tokens"), "{e}");
    assert_eq!(server.chat_requests().len(), 1);
}

/// A refusal (OpenAI's `refusal` field) is Refusal after one request.
#[tokio::test]
async fn a_refusal_is_its_own_outcome() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]
    });
    let server = mock(vec![Reply::status(200).body(body)]).await;
    let e = backend_for(&server, Preset::OpenAI).extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refusal, "{e}");
    assert!(e.to_string().contains("I can't help with that."), "{e}");
    assert_eq!(server.chat_requests().len(), 1);
}

/// Tool mode: a forced call, its arguments are the answer.
#[tokio::test]
async fn tool_mode_reads_the_call_arguments() {
    let server =
        mock(vec![Reply::tool_call("Person", json!({"name": "Ada", "age": 36, "email": "ada@example.org"}))]).await;
    let out = backend_for(&server, Preset::Vllm)
        .extract::<Person>(&ask(), &ExtractOptions::new().mode(ExtractMode::Tool))
        .await
        .unwrap();
    assert_eq!(out.value.email.as_deref(), Some("ada@example.org"));
    let body = &bodies(&server)[0];
    assert_eq!(body["tool_choice"], json!({"type": "function", "function": {"name": "Person"}}));
    assert_eq!(body["tools"][0]["function"]["name"], json!("Person"));
    assert!(body.get("response_format").is_none());
}

/// The request body of each preset's form, checked at the mock.
#[tokio::test]
async fn each_preset_writes_its_own_form() {
    let valid = r#"{"name": "Ada", "age": 36, "email": null}"#;
    let mut formats = Vec::new();
    for preset in [Preset::OpenAI, Preset::Ollama, Preset::LlamaCpp, Preset::DeepSeek, Preset::Tgi] {
        let server = mock(vec![Reply::text(valid)]).await;
        backend_for(&server, preset).extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap();
        formats.push(bodies(&server)[0]["response_format"].clone());
    }
    let [openai, ollama, llama, deepseek, tgi] = <[Value; 5]>::try_from(formats).unwrap();
    // OpenAI: strict, all required, closed, the optional field a null union.
    assert_eq!(openai["json_schema"]["strict"], json!(true));
    let schema = &openai["json_schema"]["schema"];
    assert_eq!(schema["required"], json!(["name", "age", "email"]));
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(schema["properties"]["email"]["type"], json!(["string", "null"]));
    // Strict mode takes `minimum`, not schemars' `format: uint32` (moved into the description).
    assert_eq!(schema["properties"]["age"]["minimum"], json!(0));
    assert!(schema["properties"]["age"].get("format").is_none());
    assert!(schema["properties"]["age"]["description"].as_str().unwrap().contains("uint32"));
    // Ollama: no type arrays.
    assert_eq!(
        ollama["json_schema"]["schema"]["properties"]["email"]["anyOf"],
        json!([{"type": "string"}, {"type": "null"}])
    );
    assert!(!ollama.to_string().contains(r#""type":["#));
    // llama.cpp: json_object with the schema (integers keep their bounds).
    assert_eq!(llama["type"], json!("json_object"));
    assert_eq!(llama["schema"]["properties"]["age"]["minimum"], json!(0));
    // DeepSeek: json_object only; the schema is in the prompt.
    assert_eq!(deepseek, json!({"type": "json_object"}));
    // TGI: its own form.
    assert_eq!(tgi["type"], json!("json"));
}

/// llama.cpp: keywords its grammar converter ignores go into the description; validation
/// still enforces them (a retry).
#[tokio::test]
async fn llama_cpp_gets_moved_keywords_and_we_still_enforce_them() {
    let schema = json!({"type": "object", "properties": {"price": {"type": "number", "minimum": 1}, "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}}, "required": ["price", "tags"]});
    let server =
        mock(vec![Reply::text(r#"{"price": 0.5, "tags": ["a"]}"#), Reply::text(r#"{"price": 2, "tags": ["a", "b"]}"#)])
            .await;
    let out =
        backend_for(&server, Preset::LlamaCpp).extract_value(&schema, &ask(), &ExtractOptions::new()).await.unwrap();
    assert_eq!(out.value, json!({"price": 2, "tags": ["a", "b"]}));
    assert_eq!(out.attempts.len(), 2);
    let sent = &bodies(&server)[0]["response_format"]["schema"];
    assert_eq!(sent["properties"]["price"], json!({"type": "number", "description": "(minimum: 1)"}));
    assert_eq!(sent["properties"]["tags"]["description"], json!("(uniqueItems: true)"));
}

/// A pool adapts per endpoint: the first (OpenAI) fails over to the second (Ollama), and each
/// got the schema in its own form.
#[tokio::test]
async fn a_pool_writes_each_endpoints_own_form() {
    let openai = mock(vec![Reply::status(503)]).await;
    let ollama = mock(vec![Reply::text(r#"{"name": "Ada", "age": 36, "email": null}"#)]).await;
    let pool = BackendPool::builder()
        .endpoint(Arc::new(backend_for(&openai, Preset::OpenAI)) as Arc<dyn ModelBackend>)
        .endpoint(Arc::new(backend_for(&ollama, Preset::Ollama)) as Arc<dyn ModelBackend>)
        .build()
        .unwrap();
    let out = pool.extract::<Person>(&ask(), &ExtractOptions::new()).await.unwrap();
    assert_eq!(out.value.age, 36);
    let a = &bodies(&openai)[0]["response_format"];
    let b = &bodies(&ollama)[0]["response_format"];
    assert_eq!(a["json_schema"]["strict"], json!(true));
    assert_eq!(a["json_schema"]["schema"]["properties"]["email"]["type"], json!(["string", "null"]));
    assert!(b["json_schema"].get("strict").is_none());
    assert_eq!(
        b["json_schema"]["schema"]["properties"]["email"]["anyOf"],
        json!([{"type": "string"}, {"type": "null"}])
    );
}

/// extract_stream yields growing partial values, then the validated value.
#[tokio::test]
async fn extract_stream_yields_partials_then_done() {
    use futures_util::StreamExt;
    // Long enough for several partials: they are computed again only when the text has grown
    // by max(32, len/16) bytes (and at the end).
    const NAME: &str = "Augusta Ada King, Countess of Lovelace, born Byron, of London";
    let answer = format!(r#"{{"name": "{NAME}", "age": 36, "email": null}}"#);
    let server = mock(vec![Reply::text(&answer).chunk_chars(4)]).await;
    let b = backend_for(&server, Preset::Generic);
    let mut stream = b.extract_stream::<Person>(&ask(), &ExtractOptions::new()).await.unwrap();
    let mut partials = Vec::new();
    let mut done = None;
    while let Some(item) = stream.next().await {
        match item.unwrap() {
            Partial::Value { attempt, value } => {
                assert_eq!(attempt, 1);
                partials.push(value);
            }
            Partial::Done(out) => done = Some(out),
            _ => unreachable!(),
        }
    }
    assert!(partials.len() >= 3, "{partials:?}");
    assert!(
        partials.iter().any(|p| p.get("name").and_then(Value::as_str).is_some_and(|n| n.len() < NAME.len())),
        "{partials:?}"
    );
    // Each partial holds at least the keys of the one before.
    for pair in partials.windows(2) {
        let before = pair[0].as_object().unwrap().len();
        assert!(pair[1].as_object().unwrap().len() >= before, "{pair:?}");
    }
    let done = done.expect("a Done item");
    assert_eq!(done.value, Person { name: NAME.into(), age: 36, email: None });
    assert_eq!(bodies(&server)[0]["stream"], json!(true));
}

/// extract_stream retries too: an invalid streamed answer, then a valid one.
#[tokio::test]
async fn extract_stream_retries_with_feedback() {
    use futures_util::StreamExt;
    let server =
        mock(vec![Reply::text(r#"{"name": 5}"#), Reply::text(r#"{"name": "Ada", "age": 1, "email": null}"#)]).await;
    let b = backend_for(&server, Preset::Generic);
    let items: Vec<_> = b.extract_stream::<Person>(&ask(), &ExtractOptions::new()).await.unwrap().collect().await;
    let Some(Ok(Partial::Done(out))) = items.last() else { panic!("{items:?}") };
    assert_eq!(out.attempts.len(), 2);
    assert!(items.iter().any(|i| matches!(i, Ok(Partial::Value { attempt: 2, .. }))));
    assert_eq!(server.chat_requests().len(), 2);
}

/// A schema the server cannot take fails before any request, naming keyword and server.
#[tokio::test]
async fn an_untranslatable_schema_fails_before_any_request() {
    let server = mock(vec![Reply::text("{}")]).await;
    let schema = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    let e =
        backend_for(&server, Preset::OpenAI).extract_value(&schema, &ask(), &ExtractOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("additionalProperties") && e.to_string().contains("openai"), "{e}");
    // Recursion on TGI.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Node {
        children: Vec<Node>,
    }
    let e = backend_for(&server, Preset::Tgi).extract::<Node>(&ask(), &ExtractOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("recursive") && e.to_string().contains("tgi"), "{e}");
    assert_eq!(server.request_count(), 0);
}

/// A schema that is not JSON Schema is a Config error, before any request.
#[tokio::test]
async fn a_non_schema_is_a_config_error() {
    let server = mock(vec![Reply::text("{}")]).await;
    let b = backend_for(&server, Preset::Generic);
    for bad in [json!({"type": "objekt"}), json!("a string"), json!({"required": "name"})] {
        let e = b.extract_value(&bad, &ask(), &ExtractOptions::new()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{bad}: {e}");
    }
    assert_eq!(server.request_count(), 0);
}

/// Strict mode sends an optional field as `[T, "null"]`; the `null` the model then writes for
/// it is dropped (the original schema only allows leaving it out), on the first attempt.
#[tokio::test]
async fn strict_mode_optional_nulls_are_dropped_without_a_second_request() {
    #[derive(Debug, PartialEq, Deserialize, JsonSchema)]
    struct Tagged {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
    }
    let server = mock(vec![Reply::text(r#"{"name": "Ada", "tags": null}"#)]).await;
    let out = backend_for(&server, Preset::OpenAI).extract::<Tagged>(&ask(), &ExtractOptions::new()).await.unwrap();
    assert_eq!(out.value, Tagged { name: "Ada".into(), tags: vec![] });
    assert_eq!(out.attempts.len(), 1);
    assert_eq!(out.attempts[0].repairs, vec![Repair::DroppedNull]);
    let sent = &bodies(&server)[0]["response_format"]["json_schema"]["schema"];
    assert_eq!(sent["required"], json!(["name", "tags"]));
    assert_eq!(sent["properties"]["tags"]["type"], json!(["array", "null"]));
}
