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

use std::borrow::Cow;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::input::BodyProbe;

/// Estimated prompt tokens of a request body.
pub(crate) fn prompt_tokens(body: &BodyProbe<'_>) -> u64 {
    #[derive(Deserialize)]
    struct MessageProbe<'a> {
        #[serde(borrow, default)]
        content: Option<&'a RawValue>,
        #[serde(borrow, default)]
        tool_calls: Option<&'a RawValue>,
    }
    let mut chars = 0u64;
    let mut messages = 0u64;
    if let Some(raw) = body.messages {
        if let Ok(list) = serde_json::from_str::<Vec<MessageProbe<'_>>>(raw.get()) {
            messages = list.len() as u64;
            for m in &list {
                chars += m.content.map_or(0, text_chars);
                chars += m.tool_calls.map_or(0, json_chars);
            }
        }
    }
    for v in [body.input, body.instructions, body.prompt].into_iter().flatten() {
        chars += text_chars(v);
    }
    chars += body.tools.map_or(0, json_chars);
    chars.div_ceil(4) + 4 * messages
}

/// The characters of the texts in a content value: a string, or parts with `text`, or lists
/// of those (embedding inputs). Strings, the common case, are read without copying.
fn text_chars(raw: &RawValue) -> u64 {
    if raw.get().starts_with('"') {
        return serde_json::from_str::<Cow<'_, str>>(raw.get()).map_or(0, |s| s.chars().count() as u64);
    }
    serde_json::from_str::<Value>(raw.get()).map_or(0, |v| value_chars(&v))
}

fn value_chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(items) => items.iter().map(value_chars).sum(),
        Value::Object(map) => map.get("text").or_else(|| map.get("content")).map_or(0, value_chars),
        // Token ids (embedding input as numbers): about one token each, as 4 characters.
        Value::Number(_) => 4,
        _ => 0,
    }
}

/// The length of a value's JSON text (tool definitions and calls count as written).
fn json_chars(raw: &RawValue) -> u64 {
    raw.get().len() as u64
}

/// The output limit the body asks for, 0 when none.
pub(crate) fn max_output_tokens(body: &BodyProbe<'_>) -> u64 {
    [body.max_completion_tokens, body.max_tokens, body.max_output_tokens]
        .into_iter()
        .flatten()
        .find_map(|raw| raw.get().parse::<u64>().ok())
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
/// `input_tokens`/`output_tokens` (responses). Only `usage` is read; the rest is skipped.
pub(crate) fn answer_of(body: &[u8]) -> Option<Option<(u64, u64)>> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        usage: Option<UsageProbe>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    Some(probe.usage.and_then(UsageProbe::tokens))
}

/// A `usage` object, any shape: fields that are not counts are ignored, not errors.
#[derive(Deserialize, Default)]
#[serde(default)]
struct UsageProbe {
    prompt_tokens: Count,
    input_tokens: Count,
    completion_tokens: Count,
    output_tokens: Count,
}

impl UsageProbe {
    fn tokens(self) -> Option<(u64, u64)> {
        let input = self.prompt_tokens.0.or(self.input_tokens.0);
        let output = self.completion_tokens.0.or(self.output_tokens.0);
        if input.is_none() && output.is_none() {
            return None;
        }
        Some((input.unwrap_or(0), output.unwrap_or(0)))
    }
}

/// A token count: a non-negative integer, anything else (null, text, fractions) is none.
#[derive(Default)]
struct Count(Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
                Count::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
fn usage_of(body: &[u8]) -> Option<(u64, u64)> {
    answer_of(body).flatten()
}

/// Input and output tokens of a `usage` object.
pub(crate) fn usage_of_value(usage: &Value) -> Option<(u64, u64)> {
    UsageProbe::deserialize(usage).ok().and_then(UsageProbe::tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(json: &str) -> (u64, u64) {
        let probe: BodyProbe<'_> = serde_json::from_str(json).unwrap();
        (prompt_tokens(&probe), max_output_tokens(&probe))
    }

    #[test]
    fn four_characters_a_token_plus_four_a_message() {
        let b = r#"{"messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}],
            "max_tokens": 10}"#;
        assert_eq!(tokens(b), (3 + 8, 10));
        assert_eq!(tokens(r#"{"input": ["abcd", "abcde"]}"#), (3, 0));
        // Escapes count as the characters they stand for; tools as their JSON text.
        assert_eq!(tokens(r#"{"prompt": "ab\u00e9d", "max_completion_tokens": 3, "max_tokens": 9}"#), (1, 3));
        assert_eq!(tokens(r#"{"tools": [{"a":1234}], "max_tokens": "many"}"#), (3, 0));
    }

    #[test]
    fn usage_in_both_shapes() {
        assert_eq!(usage_of(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#), Some((3, 4)));
        assert_eq!(usage_of(br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#), Some((3, 4)));
        assert_eq!(usage_of(br#"{"usage":{"prompt_tokens":3,"total_tokens":3}}"#), Some((3, 0)));
        assert_eq!(usage_of(br#"{"x":1}"#), None);
        assert_eq!(usage_of(b"not json"), None);
        assert_eq!(usage_of(br#"{"usage":{"prompt_tokens":null,"completion_tokens":2.5,"x":[1]}}"#), None);
        assert_eq!(usage_of(br#"{"usage":null,"choices":[{"usage":{"prompt_tokens":1}}]}"#), None);
        assert_eq!(answer_of(br#"{"usage":"none"}"#), None, "a usage that is not an object is not this shape");
        assert_eq!(usage_of_value(&serde_json::json!({"input_tokens": 5})), Some((5, 0)));
    }

    #[test]
    fn prices_from_profiles() {
        let p = Prices::of("gpt-4o-mini");
        assert!(p.known);
        assert!((p.cost(1000, 1000) - (p.input + p.output)).abs() < 1e-12);
        assert!(!Prices::of("some-local-model-xyz").known);
    }
}
