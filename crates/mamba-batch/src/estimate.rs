//! Token estimates before sending, and prices.
//!
//! Prompt tokens are estimated without a tokenizer: one token per 4 characters of every text
//! the request carries (message contents and text parts, tool definitions' JSON, embedding
//! and response inputs), rounded up, plus 4 tokens per message for the chat template. That is
//! OpenAI's rule of thumb for English; code and other languages use more tokens per
//! character. Output tokens are the body's own limit (`max_tokens`, `max_completion_tokens`
//! or `max_output_tokens`), 0 when it sets none. The rate limiter and the cost cap use these
//! estimates before a request goes out and replace them with the server's reported usage
//! when its answer arrives.

use serde_json::{Map, Value};

/// Estimated prompt tokens of a request body.
pub(crate) fn prompt_tokens(body: &Map<String, Value>) -> u64 {
    let mut chars = 0u64;
    let mut messages = 0u64;
    if let Some(Value::Array(list)) = body.get("messages") {
        messages = list.len() as u64;
        for m in list {
            if let Some(content) = m.get("content") {
                chars += text_chars(content);
            }
            if let Some(calls) = m.get("tool_calls") {
                chars += json_chars(calls);
            }
        }
    }
    for key in ["input", "instructions", "prompt"] {
        if let Some(v) = body.get(key) {
            chars += text_chars(v);
        }
    }
    if let Some(tools) = body.get("tools") {
        chars += json_chars(tools);
    }
    chars.div_ceil(4) + 4 * messages
}

/// The characters of the texts in a content value: a string, or parts with `text`, or lists
/// of those (embedding inputs).
fn text_chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(map) => map.get("text").or_else(|| map.get("content")).map_or(0, text_chars),
        // Token ids (embedding input as numbers): about one token each, as 4 characters.
        Value::Number(_) => 4,
        _ => 0,
    }
}

fn json_chars(v: &Value) -> u64 {
    serde_json::to_string(v).map_or(0, |s| s.len() as u64)
}

/// The output limit the body asks for, 0 when none.
pub(crate) fn max_output_tokens(body: &Map<String, Value>) -> u64 {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// USD per 1000 input and output tokens, when the model's profile has both.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Prices {
    pub(crate) input: f64,
    pub(crate) output: f64,
    pub(crate) known: bool,
}

impl Prices {
    pub(crate) fn of(model: &str) -> Prices {
        let p = mamba_backends::get_profile(model);
        match (p.cost_per_1k_input, p.cost_per_1k_output) {
            (Some(input), Some(output)) => Prices { input, output, known: true },
            _ => Prices::default(),
        }
    }

    pub(crate) fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input + output_tokens as f64 * self.output) / 1000.0
    }
}

/// Reads an answer body in one pass: `None` when it is not JSON, else the usage the server
/// reported: `prompt_tokens`/`completion_tokens` (chat, embeddings) or
/// `input_tokens`/`output_tokens` (responses).
pub(crate) fn answer_of(body: &[u8]) -> Option<Option<(u64, u64)>> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        usage: Option<Value>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    Some(probe.usage.as_ref().and_then(usage_of_value))
}

#[cfg(test)]
fn usage_of(body: &[u8]) -> Option<(u64, u64)> {
    answer_of(body).flatten()
}

/// Input and output tokens of a `usage` object.
pub(crate) fn usage_of_value(usage: &Value) -> Option<(u64, u64)> {
    let get = |keys: &[&str]| keys.iter().find_map(|k| usage.get(*k).and_then(Value::as_u64));
    let input = get(&["prompt_tokens", "input_tokens"]);
    let output = get(&["completion_tokens", "output_tokens"]);
    if input.is_none() && output.is_none() {
        return None;
    }
    Some((input.unwrap_or(0), output.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn four_characters_a_token_plus_four_a_message() {
        let b = body(serde_json::json!({
            "messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}],
            "max_tokens": 10
        }));
        assert_eq!(prompt_tokens(&b), 3 + 8);
        assert_eq!(max_output_tokens(&b), 10);
        assert_eq!(prompt_tokens(&body(serde_json::json!({"input": ["abcd", "abcde"]}))), 3);
    }

    #[test]
    fn usage_in_both_shapes() {
        assert_eq!(usage_of(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#), Some((3, 4)));
        assert_eq!(usage_of(br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#), Some((3, 4)));
        assert_eq!(usage_of(br#"{"usage":{"prompt_tokens":3,"total_tokens":3}}"#), Some((3, 0)));
        assert_eq!(usage_of(br#"{"x":1}"#), None);
        assert_eq!(usage_of(b"not json"), None);
    }

    #[test]
    fn prices_from_profiles() {
        let p = Prices::of("gpt-4o-mini");
        assert!(p.known);
        assert!((p.cost(1000, 1000) - (p.input + p.output)).abs() < 1e-12);
        assert!(!Prices::of("some-local-model-xyz").known);
    }
}
