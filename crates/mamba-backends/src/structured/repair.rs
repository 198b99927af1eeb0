//! Lenient parsing: an answer's JSON read with local repairs, each counted and named.

use std::fmt;

use serde_json::Value;

/// One local repair [`parse_lenient`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Repair {
    /// A markdown code fence around the JSON was removed.
    Fence,
    /// Prose before or after the JSON was removed.
    Prose,
    /// A comma before `}` or `]` was removed.
    TrailingComma,
    /// A single-quoted string was requoted.
    SingleQuotes,
    /// An unquoted object key was quoted.
    UnquotedKey,
    /// A `//` or `/* */` comment was removed.
    Comment,
    /// A Python literal (`True`, `False`, `None`) was written as JSON.
    PythonLiteral,
    /// A single object was wrapped in an array, since the schema asks for an array.
    WrappedInArray,
    /// `null` written for optional properties (what strict mode's `[T, "null"]` invites) was
    /// dropped, since the original schema does not take `null` there.
    DroppedNull,
}

impl Repair {
    /// The repair's name (`"fence"`, `"trailing_comma"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Repair::Fence => "fence",
            Repair::Prose => "prose",
            Repair::TrailingComma => "trailing_comma",
            Repair::SingleQuotes => "single_quotes",
            Repair::UnquotedKey => "unquoted_key",
            Repair::Comment => "comment",
            Repair::PythonLiteral => "python_literal",
            Repair::WrappedInArray => "wrapped_in_array",
            Repair::DroppedNull => "dropped_null",
        }
    }
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value [`parse_lenient`] read, with the repairs it needed (one entry per repair made).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Repaired {
    /// The value.
    pub value: Value,
    /// The repairs, in the order made.
    pub repairs: Vec<Repair>,
}

/// Why [`parse_lenient`] found no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseError {
    /// What is wrong, one line.
    pub message: String,
    /// True when the text ends inside the JSON (a cut answer): no repair closes it.
    pub incomplete: bool,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// How many candidate starts (`{` or `[`) are tried in prose before giving up.
const MAX_CANDIDATES: usize = 8;

/// Reads the JSON value in a model's answer, repairing what can be repaired locally. `schema`
/// (the original schema) lets a single object stand for an array of one. A text cut inside
/// the JSON is never completed: it fails with [`ParseError::incomplete`] set.
///
/// ```
/// use mamba_backends::structured::{parse_lenient, Repair};
///
/// let r = parse_lenient("Sure!\n```json\n{'name': 'Ada', tags: ['x',],}\n```", None).unwrap();
/// assert_eq!(r.value, serde_json::json!({"name": "Ada", "tags": ["x"]}));
/// assert!(r.repairs.contains(&Repair::Fence) && r.repairs.contains(&Repair::TrailingComma));
/// ```
pub fn parse_lenient(text: &str, schema: Option<&Value>) -> Result<Repaired, ParseError> {
    let mut repairs = Vec::new();
    let trimmed = text.trim();
    let value = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => value,
        Err(strict) => {
            let body = match unfence(trimmed) {
                Some((inner, prose)) => {
                    repairs.push(Repair::Fence);
                    if prose {
                        repairs.push(Repair::Prose);
                    }
                    inner
                }
                None => trimmed,
            };
            match serde_json::from_str::<Value>(body) {
                Ok(value) => value,
                Err(_) => match find_value(body, &mut repairs) {
                    Ok(value) => value,
                    Err(mut e) => {
                        if e.message.is_empty() {
                            e.message = format!("the answer is not JSON: {strict}");
                        }
                        return Err(e);
                    }
                },
            }
        }
    };
    let value = match (value, schema) {
        (Value::Object(object), Some(schema)) if wants_array(schema) => {
            repairs.push(Repair::WrappedInArray);
            Value::Array(vec![Value::Object(object)])
        }
        (value, _) => value,
    };
    Ok(Repaired { value, repairs })
}

/// The text inside the first markdown code fence, and whether prose is outside it. An unclosed
/// fence (a cut answer) yields everything after its opening line.
fn unfence(text: &str) -> Option<(&str, bool)> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    // The info string (`json`) runs to the end of the line.
    let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
    let body = &after[body_start..];
    let (inner, rest) = match body.find("```") {
        Some(end) => (&body[..end], &body[end + 3..]),
        None => (body, ""),
    };
    let prose = !text[..start].trim().is_empty() || !rest.trim().is_empty();
    Some((inner.trim(), prose))
}

/// The first candidate value in `text` (from a `{` or `[`) that reads after repairs. A candidate
/// inside an earlier one is never taken (it would make part of a broken value look whole), and
/// a candidate that runs to the end of the text makes the answer incomplete.
fn find_value(text: &str, repairs: &mut Vec<Repair>) -> Result<Value, ParseError> {
    let mut first_error: Option<ParseError> = None;
    let mut next_from = 0;
    let mut tried = 0;
    for (start, c) in text.char_indices() {
        if start < next_from || (c != '{' && c != '[') {
            continue;
        }
        if tried == MAX_CANDIDATES {
            break;
        }
        tried += 1;
        let mut local = Vec::new();
        // A cut here (the text ends inside it) ends the search: everything after this start
        // is inside it, so no later candidate is whole. Another failure (an unbalanced
        // closer) only rules out this candidate.
        let (json, end) = match normalise(&text[start..], &mut local) {
            Ok(found) => found,
            Err(e) if e.incomplete => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        next_from = start + end;
        match serde_json::from_str::<Value>(&json) {
            Ok(value) => {
                repairs.extend(local);
                if !text[..start].trim().is_empty() || !text[start + end..].trim().is_empty() {
                    repairs.push(Repair::Prose);
                }
                return Ok(value);
            }
            Err(e) => {
                first_error.get_or_insert(ParseError {
                    message: format!("the answer's JSON does not parse: {e}"),
                    incomplete: false,
                });
            }
        }
    }
    // No bracket at all: a scalar answer in prose is not guessed at.
    Err(first_error.unwrap_or(ParseError { message: String::new(), incomplete: false }))
}

/// Rewrites the value at the start of `text` (a `{` or `[`) as strict JSON: comments removed,
/// single-quoted strings and bare keys quoted, trailing commas dropped, Python literals
/// written as JSON. Returns it and the byte length it spans in `text`. A text that ends
/// before the value closes is an incomplete error.
fn normalise(text: &str, repairs: &mut Vec<Repair>) -> Result<(String, usize), ParseError> {
    let cut = || ParseError { message: "the answer ends inside its JSON (cut off)".to_owned(), incomplete: true };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 8);
    let mut depth: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'{' | b'[' => {
                depth.push(c);
                out.push(c as char);
                i += 1;
            }
            b'}' | b']' => {
                let open = if c == b'}' { b'{' } else { b'[' };
                if depth.pop() != Some(open) {
                    return Err(ParseError {
                        message: format!("unbalanced `{}` in the answer's JSON", c as char),
                        incomplete: false,
                    });
                }
                // A trailing comma before the closer (after a value: `[,]` stays broken).
                let trimmed_len = out.trim_end().len();
                let after_value = out[..trimmed_len]
                    .strip_suffix(',')
                    .is_some_and(|before| !before.trim_end().ends_with(['[', '{', ',', ':']));
                if after_value {
                    out.truncate(trimmed_len - 1);
                    repairs.push(Repair::TrailingComma);
                }
                out.push(c as char);
                i += 1;
                if depth.is_empty() {
                    return Ok((out, i));
                }
            }
            b'"' | b'\'' => {
                let (end, single) = copy_string(text, i, &mut out).ok_or_else(cut)?;
                if single {
                    repairs.push(Repair::SingleQuotes);
                }
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                repairs.push(Repair::Comment);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").ok_or_else(cut)?;
                repairs.push(Repair::Comment);
                i = i + 2 + end + 2;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let len =
                    bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'$').count();
                let word = &text[i..i + len];
                let next = text[i + len..].trim_start();
                if next.is_empty() && !depth.is_empty() {
                    return Err(cut());
                }
                if next.starts_with(':') && depth.last() == Some(&b'{') {
                    out.push('"');
                    out.push_str(word);
                    out.push('"');
                    repairs.push(Repair::UnquotedKey);
                } else {
                    match word {
                        "True" => {
                            out.push_str("true");
                            repairs.push(Repair::PythonLiteral);
                        }
                        "False" => {
                            out.push_str("false");
                            repairs.push(Repair::PythonLiteral);
                        }
                        "None" => {
                            out.push_str("null");
                            repairs.push(Repair::PythonLiteral);
                        }
                        _ => out.push_str(word),
                    }
                }
                i += len;
            }
            _ => {
                // Anything else (digits, punctuation, whitespace, non-ASCII) is copied whole.
                let len = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[i..i + len]);
                i += len;
            }
        }
    }
    Err(cut())
}

/// Copies the string literal at byte `start` of `text` (quoted with `"` or `'`) to `out` as a
/// JSON string. Returns the byte after it and whether it was single-quoted; `None` when the
/// text ends inside it.
fn copy_string(text: &str, start: usize, out: &mut String) -> Option<(usize, bool)> {
    let quote = text[start..].chars().next()?;
    let single = quote == '\'';
    out.push('"');
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, escaped) = chars.next()?;
                if single && escaped == '\'' {
                    out.push('\'');
                } else {
                    out.push('\\');
                    out.push(escaped);
                }
            }
            c if c == quote => {
                out.push('"');
                return Some((start + 1 + offset + c.len_utf8(), single));
            }
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    None
}

/// How deep [`drop_optional_nulls`] follows the schema (and its `$ref`s).
const MAX_NULL_DEPTH: usize = 64;

/// Removes, in place, the `null`-valued properties of `value` that `schema` (the original
/// schema, `root` its document for local `$ref`s) does not list in `required`, through
/// `properties`, `items`, `anyOf`/`oneOf`/`allOf` and local `$ref`s. Returns whether it
/// removed any. Strict mode sends optional properties as `[T, "null"]`, so a model writes
/// `null` for them where the original schema only allows leaving them out.
pub(crate) fn drop_optional_nulls(value: &mut Value, schema: &Value, root: &Value) -> bool {
    drop_nulls_at(value, schema, root, 0)
}

fn drop_nulls_at(value: &mut Value, schema: &Value, root: &Value, depth: usize) -> bool {
    if depth > MAX_NULL_DEPTH {
        return false;
    }
    let Value::Object(node) = schema else { return false };
    let mut changed = false;
    if let Some(Value::String(r)) = node.get("$ref") {
        if let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p)) {
            changed |= drop_nulls_at(value, target, root, depth + 1);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = node.get(key) {
            for branch in branches {
                changed |= drop_nulls_at(value, branch, root, depth + 1);
            }
        }
    }
    match value {
        Value::Object(object) => {
            if let Some(Value::Object(props)) = node.get("properties") {
                let required: Vec<&str> = match node.get("required") {
                    Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let before = object.len();
                object.retain(|k, v| !(v.is_null() && props.contains_key(k) && !required.contains(&k.as_str())));
                changed |= object.len() != before;
                for (k, v) in object.iter_mut() {
                    if let Some(sub) = props.get(k) {
                        changed |= drop_nulls_at(v, sub, root, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub @ Value::Object(_)) = node.get("items") {
                for item in items.iter_mut() {
                    changed |= drop_nulls_at(item, sub, root, depth + 1);
                }
            }
        }
        _ => {}
    }
    changed
}

/// Whether `schema` asks for an array at its root (and not for an object).
fn wants_array(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "array",
        Some(Value::Array(types)) => types.iter().any(|t| t == "array") && !types.iter().any(|t| t == "object"),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(text: &str) -> Repaired {
        parse_lenient(text, None).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn strict_json_needs_no_repair() {
        let r = parse(" {\"a\": [1, 2.5, \"x\"], \"b\": null} ");
        assert_eq!(r.value, json!({"a": [1, 2.5, "x"], "b": null}));
        assert!(r.repairs.is_empty());
    }

    #[test]
    fn each_malformation_is_repaired_and_named() {
        let cases: &[(&str, Value, &[Repair])] = &[
            ("```json\n{\"a\": 1}\n```", json!({"a": 1}), &[Repair::Fence]),
            ("```\n[1]\n```", json!([1]), &[Repair::Fence]),
            ("Here you go:\n```json\n{\"a\": 1}\n```\nEnjoy.", json!({"a": 1}), &[Repair::Fence, Repair::Prose]),
            ("The answer is {\"a\": 1}. Hope it helps!", json!({"a": 1}), &[Repair::Prose]),
            ("{\"a\": [1, 2,], }", json!({"a": [1, 2]}), &[Repair::TrailingComma, Repair::TrailingComma]),
            ("{'a': 'it\\'s \"x\"'}", json!({"a": "it's \"x\""}), &[Repair::SingleQuotes, Repair::SingleQuotes]),
            ("{a: 1, b_2: 2}", json!({"a": 1, "b_2": 2}), &[Repair::UnquotedKey, Repair::UnquotedKey]),
            ("{\"a\": 1, // one\n /* two */ \"b\": 2}", json!({"a": 1, "b": 2}), &[Repair::Comment, Repair::Comment]),
            (
                "{\"a\": True, \"b\": False, \"c\": None}",
                json!({"a": true, "b": false, "c": null}),
                &[Repair::PythonLiteral, Repair::PythonLiteral, Repair::PythonLiteral],
            ),
        ];
        for (text, want, repairs) in cases {
            let r = parse(text);
            assert_eq!(&r.value, want, "{text:?}");
            assert_eq!(r.repairs, repairs.to_vec(), "{text:?}");
        }
    }

    #[test]
    fn strings_are_left_alone() {
        let r = parse("{'k': 'True // not a comment, None'}");
        assert_eq!(r.value, json!({"k": "True // not a comment, None"}));
        assert_eq!(r.repairs, vec![Repair::SingleQuotes, Repair::SingleQuotes]);
    }

    #[test]
    fn a_single_object_for_an_array_of_one_needs_the_schema() {
        let schema = json!({"type": "array", "items": {"type": "object"}});
        let r = parse_lenient("{\"a\": 1}", Some(&schema)).unwrap();
        assert_eq!(r.value, json!([{"a": 1}]));
        assert_eq!(r.repairs, vec![Repair::WrappedInArray]);
        assert_eq!(parse_lenient("{\"a\": 1}", None).unwrap().value, json!({"a": 1}));
        let object = json!({"type": "object"});
        assert_eq!(parse_lenient("{\"a\": 1}", Some(&object)).unwrap().value, json!({"a": 1}));
    }

    #[test]
    fn a_cut_answer_is_never_made_valid() {
        for text in [
            "{\"a\": 1, \"b\": [1, 2",
            "```json\n{\"a\": \"hel",
            "Sure: {\"a\": {\"b\": 1}",
            "{\"a\": tru",
            "[{'a': 1}, {'b'",
            "{\"a\": 1 /* note",
        ] {
            let e = parse_lenient(text, None).unwrap_err();
            assert!(e.incomplete, "{text:?}: {e}");
        }
    }

    #[test]
    fn garbage_fails_without_being_incomplete() {
        for text in ["I cannot help with that.", "{\"a\" 1}", "", "}", "[1}"] {
            let e = parse_lenient(text, None).unwrap_err();
            assert!(!e.incomplete, "{text:?}");
            assert!(!e.message.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn an_unbalanced_candidate_does_not_end_the_search() {
        // The first candidate closes with the wrong bracket; the next one is whole.
        let r = parse("Note: {a] then {\"a\": 1}");
        assert_eq!(r.value, json!({"a": 1}));
        assert!(r.repairs.contains(&Repair::Prose));
    }

    #[test]
    fn a_comma_with_no_value_before_it_is_not_a_trailing_comma() {
        for text in ["[,]", "{,}", "{\"a\": [,]}", "[1,,]"] {
            assert!(parse_lenient(text, None).is_err(), "{text:?}");
        }
        assert_eq!(parse("[1, ]").value, json!([1]));
    }

    #[test]
    fn optional_nulls_are_dropped_through_refs_and_items() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "count": {"type": "integer", "default": 0},
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                "must": {"type": ["string", "null"]}
            },
            "required": ["name", "must"],
            "$defs": {"Item": {"type": "object", "properties": {"tag": {"type": "string"}}}}
        });
        let mut value = json!({"name": "a", "count": null, "must": null, "items": [{"tag": null}, {"tag": "x"}]});
        assert!(drop_optional_nulls(&mut value, &schema, &schema));
        assert_eq!(value, json!({"name": "a", "must": null, "items": [{}, {"tag": "x"}]}));
        assert!(!drop_optional_nulls(&mut value, &schema, &schema));
        assert_eq!(Repair::DroppedNull.as_str(), "dropped_null");
    }

    #[test]
    fn prose_with_braces_before_the_value() {
        let r = parse("Use {curly} braces: {\"a\": 1}");
        assert_eq!(r.value, json!({"a": 1}));
        assert_eq!(r.repairs, vec![Repair::Prose]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics(text in ".{0,80}") {
            let _ = parse_lenient(&text, None);
            let _ = parse_lenient(&text, Some(&json!({"type": "array"})));
        }

        #[test]
        fn never_panics_on_json_like_text(text in r#"[\{\}\[\]"',:/*a-zTFN0-9 \\\n`]{0,60}"#) {
            let _ = parse_lenient(&text, None);
        }

        #[test]
        fn valid_json_reads_back_unchanged(value in json_value()) {
            let text = serde_json::to_string_pretty(&value).unwrap();
            let r = parse_lenient(&format!("Result:\n```json\n{text}\n```"), None).unwrap();
            // What serde_json itself reads from the text (without `float_roundtrip` a float's
            // last digit may differ from the generated value).
            let plain: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(r.value, plain);
        }

        #[test]
        fn any_cut_of_a_container_fails(value in json_value(), cut in 0usize..1000) {
            let text = serde_json::to_string(&serde_json::json!({"v": value})).unwrap();
            let cut = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
            prop_assume!(cut > 0);
            prop_assert!(parse_lenient(&text[..cut], None).is_err());
        }
    }

    /// Arbitrary JSON values, a few levels deep.
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
            "[a-z \"'\\\\{}\\[\\],:é]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z_]{1,6}", inner), 0..4)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }
}
