//! The options argument of the functions: a JSON object, parsed and checked once per distinct
//! string (at planning time when it is a literal), never per row.

use std::collections::BTreeMap;

use mamba_backends::{RequestOptions, ResponseFormat};
use serde_json::{Map, Value};

/// What a row whose request failed (after the pool's retries) gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OnError {
    /// The query fails with the row's prompt and the error (the default).
    #[default]
    Fail,
    /// The function returns a struct `{value, error}`: `value` NULL and `error` the message for
    /// a failed row, `error` NULL for the others.
    Null,
}

impl OnError {
    /// `"fail"` or `"null"`.
    pub fn parse(text: &str) -> Option<OnError> {
        match text {
            "fail" => Some(OnError::Fail),
            "null" => Some(OnError::Null),
            _ => None,
        }
    }
}

/// Which function the options belong to: they accept different keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `llm()`: text.
    Llm,
    /// `llm_json()`: JSON valid against a schema.
    Json,
    /// `embed()`: a vector.
    Embed,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Llm => "llm",
            Kind::Json => "llm_json",
            Kind::Embed => "embed",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Llm => &[
                "model",
                "system",
                "temperature",
                "max_tokens",
                "top_p",
                "seed",
                "stop",
                "response_format",
                "on_error",
            ],
            Kind::Json => &["model", "system", "temperature", "max_tokens", "top_p", "seed", "attempts", "on_error"],
            Kind::Embed => &["model", "dimensions", "on_error"],
        }
    }
}

/// One call's options, checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallOptions {
    /// The model to ask; `None`: the backend's own.
    pub(crate) model: Option<String>,
    /// A system message before the prompt.
    pub(crate) system: Option<String>,
    /// Sampling and format options of a chat request.
    pub(crate) request: RequestOptions,
    /// `embed()`: the vector size to ask for.
    pub(crate) dimensions: Option<u32>,
    /// `llm_json()`: requests per row before giving up on an invalid answer.
    pub(crate) attempts: Option<u32>,
    /// Set when the options name it; otherwise the registration's default applies.
    pub(crate) on_error: Option<OnError>,
    /// The options that shape the answer, as JSON with sorted keys (`on_error` left out: it does
    /// not change an answer): part of the cache key and of the key that merges identical rows.
    pub(crate) canonical: String,
}

/// Parses `text` as `kind`'s options. The error is one line, naming the function.
pub(crate) fn parse(kind: Kind, text: &str) -> Result<CallOptions, String> {
    let f = kind.name();
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("{f}(): the options are not JSON ({e}): {}", excerpt(text)))?;
    let Value::Object(map) = value else {
        return Err(format!("{f}(): the options must be a JSON object, like '{{\"temperature\": 0}}'"));
    };
    from_map(kind, map)
}

fn from_map(kind: Kind, map: Map<String, Value>) -> Result<CallOptions, String> {
    let f = kind.name();
    let mut out = CallOptions::default();
    let mut canonical = BTreeMap::new();
    for (key, value) in map {
        if !kind.keys().contains(&key.as_str()) {
            return Err(format!("{f}(): unknown option {key:?}; the options are {}", kind.keys().join(", ")));
        }
        let bad = |what: &str| format!("{f}(): option {key:?} must be {what}, not {value}");
        match key.as_str() {
            "model" => {
                out.model = Some(value.as_str().filter(|s| !s.is_empty()).ok_or_else(|| bad("a model name"))?.into())
            }
            "system" => out.system = Some(value.as_str().ok_or_else(|| bad("a string"))?.into()),
            "temperature" => {
                let t =
                    value.as_f64().filter(|t| (0.0..=2.0).contains(t)).ok_or_else(|| bad("a number from 0 to 2"))?;
                out.request = out.request.temperature(t);
            }
            "top_p" => {
                let p =
                    value.as_f64().filter(|p| (0.0..=1.0).contains(p)).ok_or_else(|| bad("a number from 0 to 1"))?;
                out.request = out.request.top_p(p);
            }
            "max_tokens" => {
                let n = positive_u32(&value).ok_or_else(|| bad("a positive whole number"))?;
                out.request = out.request.max_tokens(n);
            }
            "seed" => out.request = out.request.seed(value.as_i64().ok_or_else(|| bad("a whole number"))?),
            "stop" => {
                let stops: Vec<String> = match &value {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => items
                        .iter()
                        .map(|s| s.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad("a string or an array of strings"))?,
                    _ => return Err(bad("a string or an array of strings")),
                };
                out.request = out.request.stop(stops);
            }
            "response_format" => out.request = out.request.response_format(response_format(f, &value)?),
            "dimensions" => out.dimensions = Some(positive_u32(&value).ok_or_else(|| bad("a positive whole number"))?),
            "attempts" => {
                out.attempts =
                    Some(positive_u32(&value).filter(|n| *n <= 10).ok_or_else(|| bad("a whole number from 1 to 10"))?)
            }
            "on_error" => {
                let choice = value.as_str().and_then(OnError::parse).ok_or_else(|| bad("\"fail\" or \"null\""))?;
                out.on_error = Some(choice);
                continue;
            }
            _ => unreachable!("every key of Kind::keys is handled"),
        }
        canonical.insert(key, value);
    }
    out.canonical = serde_json::to_string(&canonical).unwrap_or_default();
    Ok(out)
}

fn positive_u32(value: &Value) -> Option<u32> {
    value.as_u64().filter(|n| *n > 0).and_then(|n| u32::try_from(n).ok())
}

/// `"text"`, `"json"` (or `"json_object"`), or OpenAI's object form.
fn response_format(f: &str, value: &Value) -> Result<ResponseFormat, String> {
    let kind = match value {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("type").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    match kind {
        "text" => Ok(ResponseFormat::Text),
        "json" | "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let spec = value.get("json_schema").unwrap_or(&Value::Null);
            let schema = spec.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
                format!("{f}(): response_format json_schema needs json_schema.schema (or use llm_json(prompt, schema))")
            })?;
            let name = spec.get("name").and_then(Value::as_str).unwrap_or("answer");
            let mut format = ResponseFormat::json_schema(name, schema.clone());
            if let ResponseFormat::JsonSchema { strict, .. } = &mut format {
                *strict = spec.get("strict").and_then(Value::as_bool);
            }
            Ok(format)
        }
        _ => Err(format!(
            "{f}(): response_format must be \"text\", \"json\" or {{\"type\": \"json_schema\", ...}}, not {value}"
        )),
    }
}

/// The start of a text, for an error line.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 60;
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < text.len() { "…" } else { "" };
    format!("{:?}{more}", &text[..end])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_option_reaches_the_request() {
        let o = parse(
            Kind::Llm,
            r#"{"model":"m","system":"be brief","temperature":0.5,"max_tokens":20,"top_p":0.9,"seed":7,"stop":"x","response_format":"json","on_error":"null"}"#,
        )
        .unwrap();
        assert_eq!(o.model.as_deref(), Some("m"));
        assert_eq!(o.system.as_deref(), Some("be brief"));
        assert_eq!(o.request.temperature, Some(0.5));
        assert_eq!(o.request.max_tokens, Some(20));
        assert_eq!(o.request.top_p, Some(0.9));
        assert_eq!(o.request.seed, Some(7));
        assert_eq!(o.request.stop, vec!["x".to_owned()]);
        assert_eq!(o.request.response_format, Some(ResponseFormat::JsonObject));
        assert_eq!(o.on_error, Some(OnError::Null));
    }

    #[test]
    fn the_canonical_form_ignores_key_order_and_on_error() {
        let a = parse(Kind::Llm, r#"{"temperature":0,"model":"m","on_error":"null"}"#).unwrap();
        let b = parse(Kind::Llm, r#"{"model":"m","temperature":0}"#).unwrap();
        assert_eq!(a.canonical, b.canonical);
        assert_eq!(a.canonical, r#"{"model":"m","temperature":0}"#);
        let c = parse(Kind::Llm, r#"{"model":"m","temperature":1}"#).unwrap();
        assert_ne!(a.canonical, c.canonical);
        assert_eq!(parse(Kind::Llm, "{}").unwrap().canonical, "{}");
    }

    #[test]
    fn a_json_schema_format_keeps_its_schema_and_strictness() {
        let o = parse(
            Kind::Llm,
            r#"{"response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,"schema":{"type":"object"}}}}"#,
        )
        .unwrap();
        let Some(ResponseFormat::JsonSchema { name, schema, strict }) = o.request.response_format else {
            panic!("a schema format")
        };
        assert_eq!((name.as_str(), schema["type"].as_str(), strict), ("r", Some("object"), Some(true)));
    }

    #[test]
    fn bad_options_are_one_line_errors_naming_the_function() {
        let cases = [
            (Kind::Llm, "not json", "llm(): the options are not JSON"),
            (Kind::Llm, "[1]", "llm(): the options must be a JSON object"),
            (Kind::Llm, r#"{"temprature":0}"#, "llm(): unknown option \"temprature\"; the options are model,"),
            (Kind::Llm, r#"{"temperature":"hot"}"#, "llm(): option \"temperature\" must be a number from 0 to 2"),
            (Kind::Llm, r#"{"temperature":3}"#, "must be a number from 0 to 2"),
            (Kind::Llm, r#"{"max_tokens":0}"#, "llm(): option \"max_tokens\" must be a positive whole number"),
            (Kind::Llm, r#"{"model":""}"#, "option \"model\" must be a model name"),
            (Kind::Llm, r#"{"on_error":"skip"}"#, "option \"on_error\" must be \"fail\" or \"null\""),
            (Kind::Llm, r#"{"response_format":"yaml"}"#, "llm(): response_format must be"),
            (Kind::Llm, r#"{"stop":[1]}"#, "option \"stop\" must be a string or an array of strings"),
            (Kind::Embed, r#"{"temperature":0}"#, "embed(): unknown option \"temperature\""),
            (Kind::Json, r#"{"attempts":11}"#, "llm_json(): option \"attempts\" must be a whole number from 1 to 10"),
        ];
        for (kind, text, want) in cases {
            let err = parse(kind, text).unwrap_err();
            assert!(err.starts_with(want) || err.contains(want), "{text}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn excerpts_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let e = excerpt(&long);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("short"), "\"short\"");
    }
}
