//! The response wire format, read leniently and without copies.
//!
//! Every leaf is one of the lenient types below: a field that is missing, `null`, or of an
//! unexpected type reads as "absent" instead of failing the whole answer (SGLang sends explicit
//! nulls everywhere, LiteLLM sends `"param": "None"`, old TGI sends arguments as an object).
//! Strings borrow from the received buffer when they contain no escapes.
//!
//! The structs have no `Default` on purpose: the direct reader (`scan.rs`) and every other
//! place that builds one by hand names every field, so a field added here does not compile
//! until each of them says how it reads it. `PartialEq` is for the tests that compare the
//! direct reader with serde.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, value::MapAccessDeserializer, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;
use crate::types::Usage;

/// How a lenient type reads each JSON shape. Every shape a type does not override reads as
/// "absent" (its `Default`), after the input is skipped; null and a missing field do too.
/// One visitor ([`LenientVisitor`]) serves every lenient type.
trait LenientRead<'de>: Default {
    /// What the type reads, for serde's messages.
    const EXPECTING: &'static str;

    fn from_str(_text: Cow<'de, str>) -> Self {
        Self::default()
    }
    fn from_u64(_n: u64) -> Self {
        Self::default()
    }
    fn from_i64(_n: i64) -> Self {
        Self::default()
    }
    fn from_f64(_n: f64) -> Self {
        Self::default()
    }
    fn from_bool(_b: bool) -> Self {
        Self::default()
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: LenientRead<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok(T::from_str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from_str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        Ok(T::from_str(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::from_u64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::from_i64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(T::from_f64(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(T::from_bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }
}

/// `Deserialize` for lenient types, through [`LenientVisitor`].
macro_rules! deserialize_leniently {
    (impl<$($gen:tt),*> for $ty:ty $(where $($bound:tt)*)?) => {
        impl<$($gen),*> Deserialize<'de> for $ty $(where $($bound)*)? {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(LenientVisitor(PhantomData))
            }
        }
    };
}

/// A string; `None` for null, objects and arrays. Numbers and booleans become text.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LenientStr<'a>(pub(crate) Option<Cow<'a, str>>);

impl LenientStr<'_> {
    /// The text when present and not empty.
    pub(crate) fn non_empty(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> LenientRead<'de> for LenientStr<'a> {
    const EXPECTING: &'static str = "a string";
    fn from_str(text: Cow<'de, str>) -> Self {
        LenientStr(Some(text))
    }
    fn from_u64(n: u64) -> Self {
        LenientStr(Some(Cow::Owned(n.to_string())))
    }
    fn from_i64(n: i64) -> Self {
        LenientStr(Some(Cow::Owned(n.to_string())))
    }
    fn from_f64(n: f64) -> Self {
        LenientStr(Some(Cow::Owned(n.to_string())))
    }
    fn from_bool(b: bool) -> Self {
        LenientStr(Some(Cow::Owned(b.to_string())))
    }
}
deserialize_leniently!(impl<'de, 'a> for LenientStr<'a> where 'de: 'a);

/// A non-negative count; floats are truncated, numeric strings parsed, anything else absent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LenientCount(pub(crate) Option<u64>);

impl LenientRead<'_> for LenientCount {
    const EXPECTING: &'static str = "a number";
    fn from_str(text: Cow<'_, str>) -> Self {
        LenientCount(text.trim().parse().ok())
    }
    fn from_u64(n: u64) -> Self {
        LenientCount(Some(n))
    }
    fn from_i64(n: i64) -> Self {
        LenientCount(Some(n.max(0) as u64))
    }
    fn from_f64(n: f64) -> Self {
        LenientCount((n.is_finite() && n >= 0.0).then_some(n as u64))
    }
}
deserialize_leniently!(impl<'de> for LenientCount);

/// An object of type `T`, or absent for null and any non-object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LenientObject<T>(pub(crate) Option<T>);

impl<T> Default for LenientObject<T> {
    fn default() -> Self {
        LenientObject(None)
    }
}

impl<'de, T: Deserialize<'de>> LenientRead<'de> for LenientObject<T> {
    const EXPECTING: &'static str = "an object";
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| LenientObject(Some(t)))
    }
}
deserialize_leniently!(impl<'de, T> for LenientObject<T> where T: Deserialize<'de>);

/// A list of `T`; empty for null and any non-array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LenientList<T>(pub(crate) Vec<T>);

impl<T> Default for LenientList<T> {
    fn default() -> Self {
        LenientList(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> LenientRead<'de> for LenientList<T> {
    const EXPECTING: &'static str = "an array";
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(LenientList(out))
    }
}
deserialize_leniently!(impl<'de, T> for LenientList<T> where T: Deserialize<'de>);

/// Tool-call arguments: JSON text, or an object / array (Ollama native, old TGI) turned into
/// text.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LenientArguments<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'de: 'a, 'a> LenientRead<'de> for LenientArguments<'a> {
    const EXPECTING: &'static str = "JSON arguments";
    fn from_str(text: Cow<'de, str>) -> Self {
        LenientArguments(Some(text))
    }
    fn from_u64(n: u64) -> Self {
        LenientArguments(Some(Cow::Owned(n.to_string())))
    }
    fn from_i64(n: i64) -> Self {
        LenientArguments(Some(Cow::Owned(n.to_string())))
    }
    fn from_f64(n: f64) -> Self {
        LenientArguments(Some(Cow::Owned(n.to_string())))
    }
    fn from_bool(b: bool) -> Self {
        LenientArguments(Some(Cow::Owned(b.to_string())))
    }
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let value = Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(LenientArguments(Some(Cow::Owned(value.to_string()))))
    }
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let value = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(LenientArguments(Some(Cow::Owned(value.to_string()))))
    }
}
deserialize_leniently!(impl<'de, 'a> for LenientArguments<'a> where 'de: 'a);

/// Message content: a string, or a list of parts. Text parts join into `text`; Mistral's
/// `thinking` parts go to `thinking`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LenientContent<'a> {
    pub(crate) text: Option<Cow<'a, str>>,
    pub(crate) thinking: Option<String>,
}

impl<'de: 'a, 'a> LenientRead<'de> for LenientContent<'a> {
    const EXPECTING: &'static str = "message content";
    fn from_str(text: Cow<'de, str>) -> Self {
        LenientContent { text: Some(text), thinking: None }
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let (mut text, mut thinking) = (String::new(), String::new());
        while let Some(part) = seq.next_element::<Value>()? {
            collect_part(&part, &mut text, &mut thinking);
        }
        Ok(LenientContent { text: Some(Cow::Owned(text)), thinking: (!thinking.is_empty()).then_some(thinking) })
    }
}
deserialize_leniently!(impl<'de, 'a> for LenientContent<'a> where 'de: 'a);

fn collect_part(part: &Value, text: &mut String, thinking: &mut String) {
    match part.get("type").and_then(Value::as_str) {
        Some("text" | "output_text") | None => {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                text.push_str(t);
            } else if let Some(t) = part.as_str() {
                text.push_str(t);
            }
        }
        Some("thinking" | "reasoning") => match part.get("thinking").or_else(|| part.get("text")) {
            Some(Value::String(t)) => thinking.push_str(t),
            Some(Value::Array(inner)) => {
                let mut ignored = String::new();
                for p in inner {
                    collect_part(p, thinking, &mut ignored);
                }
            }
            _ => {}
        },
        Some(_) => {}
    }
}

/// A function name and its arguments.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct WireFunction<'a> {
    #[serde(borrow, default)]
    pub(crate) name: LenientStr<'a>,
    #[serde(borrow, default)]
    pub(crate) arguments: LenientArguments<'a>,
}

/// A tool call, whole (`message`) or a fragment (`delta`).
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct WireToolCall<'a> {
    #[serde(default)]
    pub(crate) index: LenientCount,
    #[serde(borrow, default)]
    pub(crate) id: LenientStr<'a>,
    #[serde(borrow, default)]
    pub(crate) function: LenientObject<WireFunction<'a>>,
}

/// A `message` or a `delta`.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct WireMessage<'a> {
    #[serde(borrow, default)]
    pub(crate) content: LenientContent<'a>,
    #[serde(borrow, default)]
    pub(crate) reasoning_content: LenientStr<'a>,
    #[serde(borrow, default)]
    pub(crate) reasoning: LenientStr<'a>,
    #[serde(borrow, default)]
    pub(crate) tool_calls: LenientList<WireToolCall<'a>>,
    #[serde(borrow, default)]
    pub(crate) function_call: LenientObject<WireFunction<'a>>,
    #[serde(borrow, default)]
    pub(crate) refusal: LenientStr<'a>,
}

impl WireMessage<'_> {
    /// A message with nothing in it: what a choice without one reads as.
    pub(crate) fn empty() -> WireMessage<'static> {
        WireMessage {
            content: LenientContent { text: None, thinking: None },
            reasoning_content: LenientStr(None),
            reasoning: LenientStr(None),
            tool_calls: LenientList(Vec::new()),
            function_call: LenientObject(None),
            refusal: LenientStr(None),
        }
    }

    /// The reasoning text of the message: `reasoning_content` (DeepSeek, llama.cpp, SGLang, LM
    /// Studio, LiteLLM, older vLLM) else `reasoning` (vLLM, Ollama, OpenRouter, Groq, LocalAI).
    /// Servers in transition send both with the same text; it is taken once.
    pub(crate) fn reasoning_text(&self) -> Option<&str> {
        self.reasoning_content.non_empty().or_else(|| self.reasoning.non_empty())
    }
}

/// One choice.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct WireChoice<'a> {
    #[serde(default)]
    pub(crate) index: LenientCount,
    #[serde(borrow, default)]
    pub(crate) message: LenientObject<WireMessage<'a>>,
    #[serde(borrow, default)]
    pub(crate) delta: LenientObject<WireMessage<'a>>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: LenientStr<'a>,
    /// The answer of a legacy text completion (`/v1/completions`), in place of a message.
    #[serde(borrow, default)]
    pub(crate) text: LenientStr<'a>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct WireDetails {
    #[serde(default)]
    pub(crate) cached_tokens: LenientCount,
    #[serde(default)]
    pub(crate) reasoning_tokens: LenientCount,
}

/// Token usage in its OpenAI names, with the aliases some servers use.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) prompt_tokens: LenientCount,
    #[serde(default)]
    pub(crate) completion_tokens: LenientCount,
    #[serde(default)]
    pub(crate) total_tokens: LenientCount,
    #[serde(default)]
    pub(crate) input_tokens: LenientCount,
    #[serde(default)]
    pub(crate) output_tokens: LenientCount,
    #[serde(default)]
    pub(crate) prompt_tokens_details: LenientObject<WireDetails>,
    #[serde(default)]
    pub(crate) completion_tokens_details: LenientObject<WireDetails>,
    /// DeepSeek's name for cached prompt tokens.
    #[serde(default)]
    pub(crate) prompt_cache_hit_tokens: LenientCount,
}

impl WireUsage {
    /// The usage, or `None` when the object names no count at all.
    pub(crate) fn to_usage(&self) -> Option<Usage> {
        let input = self.prompt_tokens.0.or(self.input_tokens.0);
        let output = self.completion_tokens.0.or(self.output_tokens.0);
        if input.is_none() && output.is_none() && self.total_tokens.0.is_none() {
            return None;
        }
        let (input, output) = (input.unwrap_or(0), output.unwrap_or(0));
        Some(Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: self.total_tokens.0.unwrap_or(input.saturating_add(output)),
            reasoning_tokens: self.completion_tokens_details.0.as_ref().and_then(|d| d.reasoning_tokens.0),
            cached_input_tokens: self
                .prompt_tokens_details
                .0
                .as_ref()
                .and_then(|d| d.cached_tokens.0)
                .or(self.prompt_cache_hit_tokens.0),
        })
    }
}

/// A whole response or one stream chunk: the same top-level shape.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct WireResponse<'a> {
    #[serde(borrow, default)]
    pub(crate) id: LenientStr<'a>,
    #[serde(borrow, default)]
    pub(crate) model: LenientStr<'a>,
    #[serde(borrow, default)]
    pub(crate) choices: LenientList<WireChoice<'a>>,
    #[serde(default)]
    pub(crate) usage: LenientObject<WireUsage>,
    /// A top-level `error` (stream error frames, and 200 answers that carry an error).
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

impl<'a> WireResponse<'a> {
    /// The choice with index 0, else the first one.
    pub(crate) fn first_choice(&self) -> Option<&WireChoice<'a>> {
        self.choices.0.iter().find(|c| c.index.0.unwrap_or(0) == 0).or_else(|| self.choices.0.first())
    }
}

/// The error for a body or event that is not JSON: what it was, serde's message and where the
/// body starts, with the body (up to 64 KiB) kept for the caller.
pub(crate) fn decode_error(what: &str, body: &[u8], e: serde_json::Error) -> Error {
    let snippet: String = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    Error::decode(format!("{what} is not valid JSON ({e}); it starts with {snippet:?}"))
        .with_body(String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]))
        .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> WireResponse<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn nulls_and_wrong_types_read_as_absent() {
        let r = parse(
            r#"{"id":null,"model":123,"choices":[{"index":"0","message":{"content":null,"tool_calls":null,"role":null,"reasoning_content":{"x":1}},"finish_reason":null}],"usage":"n/a"}"#,
        );
        assert_eq!(r.id.0, None);
        assert_eq!(r.model.non_empty(), Some("123"));
        let msg = r.first_choice().unwrap().message.0.as_ref().unwrap();
        assert_eq!(msg.content.text, None);
        assert!(msg.tool_calls.0.is_empty());
        assert_eq!(msg.reasoning_text(), None);
        assert!(r.usage.0.is_none());
    }

    #[test]
    fn strings_borrow_when_unescaped() {
        let r = parse(r#"{"model":"gpt-4o","choices":[{"message":{"content":"plain"}}]}"#);
        assert!(matches!(r.model.0, Some(Cow::Borrowed(_))));
        let r = parse(r#"{"model":"a\"b","choices":[]}"#);
        assert_eq!(r.model.non_empty(), Some("a\"b"));
    }

    #[test]
    fn arguments_as_string_or_object() {
        let r = parse(
            r#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":{"a":[1,2]}}},{"function":{"name":"g","arguments":"{\"b\":1}"}}]}}]}"#,
        );
        let calls = &r.first_choice().unwrap().message.0.as_ref().unwrap().tool_calls.0;
        assert_eq!(calls[0].function.0.as_ref().unwrap().arguments.0.as_deref(), Some(r#"{"a":[1,2]}"#));
        assert_eq!(calls[1].function.0.as_ref().unwrap().arguments.0.as_deref(), Some(r#"{"b":1}"#));
    }

    #[test]
    fn content_parts_and_thinking() {
        let r = parse(
            r#"{"choices":[{"message":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]},{"type":"text","text":"Hi"},{"type":"text","text":"!"}]}}]}"#,
        );
        let c = &r.first_choice().unwrap().message.0.as_ref().unwrap().content;
        assert_eq!(c.text.as_deref(), Some("Hi!"));
        assert_eq!(c.thinking.as_deref(), Some("hmm"));
    }

    #[test]
    fn usage_aliases_and_details() {
        let r = parse(
            r#"{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
        );
        let u = r.usage.0.unwrap().to_usage().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.total_tokens, u.cached_input_tokens, u.reasoning_tokens),
            (10, 5, 15, Some(4), Some(2))
        );
        let r = parse(r#"{"usage":{"input_tokens":3,"output_tokens":4}}"#);
        assert_eq!(r.usage.0.unwrap().to_usage().unwrap().total_tokens, 7);
        let r = parse(r#"{"usage":{}}"#);
        assert!(r.usage.0.unwrap().to_usage().is_none());
        let r = parse(
            r#"{"usage":{"prompt_tokens":1.0,"completion_tokens":-1,"prompt_tokens_details":null,"prompt_cache_hit_tokens":1}}"#,
        );
        let u = r.usage.0.unwrap().to_usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.cached_input_tokens), (1, 0, Some(1)));
    }

    #[test]
    fn choice_zero_is_preferred() {
        let r = parse(r#"{"choices":[{"index":1,"message":{"content":"b"}},{"index":0,"message":{"content":"a"}}]}"#);
        assert_eq!(r.first_choice().unwrap().message.0.as_ref().unwrap().content.text.as_deref(), Some("a"));
    }
}
