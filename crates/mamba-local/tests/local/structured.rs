//! Constrained decoding: with a `response_format` the built-in model's answer always parses and
//! validates against the schema on the first attempt, complete and streamed.

use futures_util::StreamExt;
use mamba_backends::{ErrorKind, FinishReason, Message, ModelBackend, RequestOptions, ResponseFormat};
use serde_json::{json, Value};

use crate::support::{backend, cold_backend};

/// The schemas of the suite: (name, schema, two prompts). `None` is `json_object`.
fn cases() -> Vec<(&'static str, Option<Value>, [&'static str; 2])> {
    vec![
        (
            "nested_objects",
            Some(json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 40},
                    "address": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"type": "string", "maxLength": 30}},
                        "required": ["city", "country"],
                        "additionalProperties": false
                    }
                },
                "required": ["name", "address"],
                "additionalProperties": false
            })),
            ["Ada Lovelace lived in London, England.", "Give a person and where they live."],
        ),
        (
            "enum",
            Some(json!({
                "type": "object",
                "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
                "required": ["sentiment"],
                "additionalProperties": false
            })),
            ["Classify the sentiment: I love this phone!", "Classify the sentiment: the service was terrible."],
        ),
        (
            "array_bounds",
            Some(json!({
                "type": "object",
                "properties": {
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 15}, "minItems": 2, "maxItems": 3}
                },
                "required": ["tags"],
                "additionalProperties": false
            })),
            ["Give tags for a blog post about baking bread.", "Tag this: a cat sleeping in the sun."],
        ),
        (
            "optional_and_null",
            Some(json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 40},
                    "subtitle": {"type": ["string", "null"], "maxLength": 40},
                    "year": {"type": ["integer", "null"], "minimum": 1000, "maximum": 2100}
                },
                "required": ["title", "subtitle"],
                "additionalProperties": false
            })),
            ["Describe a book you like.", "The movie Alien came out in 1979."],
        ),
        (
            "integer_bounds",
            Some(json!({
                "type": "object",
                "properties": {"age": {"type": "integer", "minimum": 18, "maximum": 99}, "children": {"type": "integer", "minimum": 0, "maximum": 12}},
                "required": ["age", "children"],
                "additionalProperties": false
            })),
            ["Tom is 7 years old.", "Describe a grandmother."],
        ),
        (
            "number_bounds",
            Some(json!({
                "type": "object",
                "properties": {
                    "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 500},
                    "discount": {"type": "number", "minimum": 0, "maximum": 1}
                },
                "required": ["price", "discount"],
                "additionalProperties": false
            })),
            ["A coffee costs 3.50 dollars with 10% off.", "The car costs 20000 dollars."],
        ),
        (
            "string_pattern_and_length",
            Some(json!({
                "type": "object",
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
                    "label": {"type": "string", "minLength": 3, "maxLength": 12}
                },
                "required": ["code", "label"],
                "additionalProperties": false
            })),
            ["Make a product code for a red chair.", "Name a flight code."],
        ),
        (
            "schemars_defs_ref",
            // As schemars 1.x writes `struct Order { items: Vec<Item>, status: Status, note: Option<String> }`.
            Some(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "Order",
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 3},
                    "status": {"$ref": "#/$defs/Status"},
                    "note": {"type": ["string", "null"], "maxLength": 30}
                },
                "required": ["items", "status"],
                "$defs": {
                    "Item": {
                        "type": "object",
                        "properties": {
                            "sku": {"type": "string", "maxLength": 10},
                            "quantity": {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 100}
                        },
                        "required": ["sku", "quantity"]
                    },
                    "Status": {"type": "string", "enum": ["pending", "shipped", "delivered"]}
                }
            })),
            ["Two apples and a pear, shipped yesterday.", "An order of 3 books, still pending."],
        ),
        (
            "schemars_tagged_enum_one_of",
            // schemars writes `oneOf` for an enum with data: `enum Shape { Circle { r: f64 }, Square { side: f64 } }`.
            Some(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "Shape",
                "oneOf": [
                    {"type": "object", "properties": {"Circle": {"type": "object", "properties": {"r": {"type": "number", "minimum": 0, "maximum": 100}}, "required": ["r"], "additionalProperties": false}}, "required": ["Circle"], "additionalProperties": false},
                    {"type": "object", "properties": {"Square": {"type": "object", "properties": {"side": {"type": "number", "minimum": 0, "maximum": 100}}, "required": ["side"], "additionalProperties": false}}, "required": ["Square"], "additionalProperties": false}
                ]
            })),
            ["A circle of radius 2.", "A square with side 5."],
        ),
        (
            "top_level_array",
            Some(
                json!({"type": "array", "items": {"type": "integer", "minimum": -10, "maximum": 10}, "minItems": 2, "maxItems": 5}),
            ),
            ["List some small numbers.", "The scores were 3, 7 and 9."],
        ),
        (
            "booleans_const_any_of",
            Some(json!({
                "type": "object",
                "properties": {
                    "version": {"const": 2},
                    "valid": {"type": "boolean"},
                    "value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "string", "maxLength": 10}]}
                },
                "required": ["version", "valid", "value"],
                "additionalProperties": false
            })),
            ["Is 2 + 2 = 4?", "Check the answer: blue."],
        ),
        (
            "strict_many_fields",
            Some(json!({
                "type": "object",
                "properties": {
                    "first": {"type": "string", "maxLength": 20},
                    "last": {"type": "string", "maxLength": 20},
                    "email": {"type": "string", "pattern": "^[a-z]{1,10}@[a-z]{1,10}\\.com$"},
                    "score": {"type": "number", "minimum": 0, "maximum": 10},
                    "active": {"type": "boolean"}
                },
                "required": ["first", "last", "email", "score", "active"],
                "additionalProperties": false
            })),
            ["Extract: John Smith, john@example.com, score 8, active.", "Make up a user."],
        ),
        ("json_object", None, ["Give me a JSON object describing a dog.", "Return the weather in Paris as JSON."]),
    ]
}

fn messages(prompt: &str) -> Vec<Message> {
    vec![Message::system("You are a helpful AI assistant. Answer in JSON."), Message::user(prompt)]
}

fn format_of(name: &str, schema: &Option<Value>) -> ResponseFormat {
    match schema {
        Some(schema) => ResponseFormat::json_schema(name, schema.clone()),
        None => ResponseFormat::JsonObject,
    }
}

/// Parses `text` and validates it against `schema` (any object for `json_object`).
fn check(name: &str, schema: &Option<Value>, text: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("{name}: not JSON ({e}): {text:?}"))?;
    let schema = schema.clone().unwrap_or_else(|| json!({"type": "object"}));
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("{name}: bad test schema: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {text} does not validate: {}", errors.join("; ")))
    }
}

/// Every schema × two prompts, greedy and sampled: the complete answer parses and validates on
/// the first attempt, ends with `stop`, and the stream gives the same text.
#[tokio::test]
async fn every_answer_parses_and_validates_complete_and_streamed() {
    // The stream must give the complete answer's very text: no prompt cache between the two.
    let Some(backend) = cold_backend() else { return };
    let mut failures = Vec::new();
    let mut answers = 0;
    for (name, schema, prompts) in cases() {
        for (i, prompt) in prompts.iter().enumerate() {
            // The first prompt greedy, the second sampled (seeded) at temperature 0.8.
            let options = RequestOptions::new().response_format(format_of(name, &schema)).max_tokens(160);
            let options = if i == 0 { options.temperature(0.0) } else { options.temperature(0.8).seed(7) };
            let answer = backend.complete(&messages(prompt), &options).await.unwrap();
            answers += 1;
            if answer.finish_reason != Some(FinishReason::Stop) {
                failures.push(format!("{name}: finish {:?}: {:?}", answer.finish_reason, answer.content));
            }
            if let Err(e) = check(name, &schema, &answer.content) {
                failures.push(e);
            }
            assert!(!answer.content.contains('\n'), "compact JSON: {:?}", answer.content);
            let mut stream = backend.stream(&messages(prompt), &options).await.unwrap();
            let mut text = String::new();
            let mut finish = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                text.push_str(&chunk.content);
                finish = finish.or(chunk.finish_reason);
            }
            if text != answer.content || finish != Some(FinishReason::Stop) {
                failures.push(format!("{name}: the stream gave {text:?} ({finish:?}), complete {:?}", answer.content));
            }
            eprintln!("{name} [{i}]: {}", answer.content);
        }
    }
    assert!(answers >= 24);
    assert!(failures.is_empty(), "{} of {answers} answers failed:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn stop_sequences_do_not_cut_the_json() {
    let Some(backend) = backend() else { return };
    let (name, schema, prompts) = cases().swap_remove(0);
    let options = RequestOptions::new().response_format(format_of(name, &schema)).temperature(0.0).max_tokens(160);
    let whole = backend.complete(&messages(prompts[0]), &options).await.unwrap();
    let with_stop = backend.complete(&messages(prompts[0]), &options.clone().stop(["\"", ","])).await.unwrap();
    assert_eq!(with_stop.content, whole.content);
    check(name, &schema, &with_stop.content).unwrap();
}

#[tokio::test]
async fn too_few_max_tokens_end_with_length() {
    let Some(backend) = backend() else { return };
    let (name, schema, prompts) = cases().swap_remove(0);
    let options = RequestOptions::new().response_format(format_of(name, &schema)).temperature(0.0).max_tokens(4);
    let answer = backend.complete(&messages(prompts[0]), &options).await.unwrap();
    assert_eq!(answer.finish_reason, Some(FinishReason::Length));
    assert_eq!(answer.usage.unwrap().output_tokens, 4);
    assert!(serde_json::from_str::<Value>(&answer.content).is_err(), "{:?}", answer.content);
    let mut stream = backend.stream(&messages(prompts[0]), &options).await.unwrap();
    let mut finish = None;
    while let Some(chunk) = stream.next().await {
        finish = finish.or(chunk.unwrap().finish_reason);
    }
    assert_eq!(finish, Some(FinishReason::Length));
}

#[tokio::test]
async fn a_schema_the_grammar_cannot_take_is_unsupported_before_any_work() {
    let Some(backend) = backend() else { return };
    let before = backend.sampled_tokens();
    let bad = [
        // No value can satisfy it.
        json!({"type": "string", "minLength": 5, "maxLength": 2}),
        // Not a schema the grammar can read at all.
        json!({"type": "object", "properties": {"a": {"type": 7}}}),
    ];
    for schema in bad {
        let options = RequestOptions::new().response_format(ResponseFormat::json_schema("bad", schema.clone()));
        let err = backend.complete(&messages("Anything."), &options).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("JSON Schema"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        let err = backend.stream(&messages("Anything."), &options).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    }
    assert_eq!(backend.sampled_tokens(), before, "nothing was generated");
}

/// Keywords and formats the grammar engine does not implement (`uniqueItems`, schemars'
/// `format: "double"` for an `f64`) are left out of the grammar instead of refused: the answer
/// still has the schema's shape, and whoever asked (Extract) checks the rest.
#[tokio::test]
async fn keywords_the_grammar_lacks_are_left_to_validation() {
    let Some(backend) = backend() else { return };
    let schema = json!({"type": "object", "properties": {
        "ids": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true, "maxItems": 3},
        "price": {"type": "number", "format": "double"}
    }, "required": ["ids", "price"]});
    let options = RequestOptions::new()
        .response_format(ResponseFormat::json_schema("lenient", schema))
        .max_tokens(60)
        .temperature(0.0);
    let r = backend.complete(&messages("Three ids and a price."), &options).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.content).unwrap_or_else(|e| panic!("{e}: {}", r.content));
    assert!(v["ids"].is_array() && v["price"].is_number(), "{v}");
}

/// Without a response_format nothing changes: the same greedy answer as a plain request with
/// `response_format: text`.
#[tokio::test]
async fn plain_text_requests_are_unchanged() {
    let Some(backend) = backend() else { return };
    let msgs = messages("What is the capital of France?");
    let plain = backend.complete(&msgs, &RequestOptions::new().temperature(0.0).max_tokens(24)).await.unwrap();
    let text = RequestOptions::new().temperature(0.0).max_tokens(24).response_format(ResponseFormat::Text);
    assert_eq!(backend.complete(&msgs, &text).await.unwrap().content, plain.content);
}
