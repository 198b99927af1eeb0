//! The malformations the mock answers with (PLAN26.md, "Repairs"): each turns the expected
//! value into the text a sloppy server would send. All but [`Malformation::Truncated`] must be
//! repaired by the lenient parser without a second request; a truncated answer (cut by
//! `length`) must be reported as truncated, also without a second request.

use serde_json::Value;

/// A way an answer is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformation {
    /// Clean JSON (the baseline).
    None,
    /// In a markdown fence.
    Fence,
    /// With prose before and after.
    Prose,
    /// A comma after the last item of every object and array.
    TrailingCommas,
    /// Strings and keys in single quotes.
    SingleQuotes,
    /// Keys without quotes.
    UnquotedKeys,
    /// `//` and `/* */` comments.
    Comments,
    /// The single item where an array of one was asked (only for tasks whose answer is an
    /// array of one).
    SingleObject,
    /// Prose, a fence, trailing commas and a comment at once.
    Mixed,
    /// Cut in the middle, `finish_reason: length`: not repairable, must be `truncated`.
    Truncated,
}

impl Malformation {
    /// Every malformation.
    pub(crate) const ALL: [Malformation; 10] = [
        Malformation::None,
        Malformation::Fence,
        Malformation::Prose,
        Malformation::TrailingCommas,
        Malformation::SingleQuotes,
        Malformation::UnquotedKeys,
        Malformation::Comments,
        Malformation::SingleObject,
        Malformation::Mixed,
        Malformation::Truncated,
    ];

    /// Its name in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Malformation::None => "none",
            Malformation::Fence => "fence",
            Malformation::Prose => "prose",
            Malformation::TrailingCommas => "trailing_commas",
            Malformation::SingleQuotes => "single_quotes",
            Malformation::UnquotedKeys => "unquoted_keys",
            Malformation::Comments => "comments",
            Malformation::SingleObject => "single_object",
            Malformation::Mixed => "mixed",
            Malformation::Truncated => "truncated",
        }
    }

    /// Whether it applies to an answer `expected`.
    pub(crate) fn applies(self, expected: &Value) -> bool {
        match self {
            Malformation::SingleObject => expected.as_array().is_some_and(|a| a.len() == 1),
            Malformation::SingleQuotes => text_of(expected).contains('"'),
            Malformation::Truncated => text_of(expected).len() > 2,
            _ => true,
        }
    }

    /// The text the mock answers with.
    pub(crate) fn apply(self, expected: &Value) -> String {
        let plain = || serde_json::to_string_pretty(expected).unwrap_or_default();
        match self {
            Malformation::None => serde_json::to_string(expected).unwrap_or_default(),
            Malformation::Fence => format!("```json\n{}\n```", plain()),
            Malformation::Prose => {
                format!("Sure! Here is the JSON you asked for:\n{}\nLet me know if you need anything else.", plain())
            }
            Malformation::TrailingCommas => write(expected, &Style { trailing: true, ..Style::default() }),
            Malformation::SingleQuotes => write(expected, &Style { quote: '\'', ..Style::default() }),
            Malformation::UnquotedKeys => write(expected, &Style { bare_keys: true, ..Style::default() }),
            Malformation::Comments => {
                format!(
                    "// the answer\n{}\n/* end of the answer */",
                    write(expected, &Style { comments: true, ..Style::default() })
                )
            }
            Malformation::SingleObject => match expected.as_array().and_then(|a| a.first()) {
                Some(one) => serde_json::to_string(one).unwrap_or_default(),
                None => plain(),
            },
            Malformation::Mixed => format!(
                "Here you go:\n```json\n// extracted\n{}\n```\nHope this helps.",
                write(expected, &Style { trailing: true, ..Style::default() })
            ),
            Malformation::Truncated => {
                let text = text_of(expected);
                let mut cut = text.len() / 2;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text[..cut].to_owned()
            }
        }
    }
}

fn text_of(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// How [`write`] spells JSON.
struct Style {
    quote: char,
    bare_keys: bool,
    trailing: bool,
    comments: bool,
}

impl Default for Style {
    fn default() -> Style {
        Style { quote: '"', bare_keys: false, trailing: false, comments: false }
    }
}

fn string(out: &mut String, text: &str, quote: char) {
    let json = serde_json::to_string(text).unwrap_or_default();
    if quote == '"' {
        out.push_str(&json);
        return;
    }
    // The JSON escape of the text, between the other quotes: `\"` needs no escape there,
    // the other quote does.
    let inner = &json[1..json.len() - 1];
    out.push(quote);
    out.push_str(&inner.replace("\\\"", "\"").replace(quote, &format!("\\{quote}")));
    out.push(quote);
}

/// `value` as the text of `style`.
fn write(value: &Value, style: &Style) -> String {
    let mut out = String::new();
    write_into(&mut out, value, style, 0);
    out
}

fn write_into(out: &mut String, value: &Value, style: &Style, depth: usize) {
    let pad = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    match value {
        Value::String(s) => string(out, s, style.quote),
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                pad(out, depth + 1);
                write_into(out, item, style, depth + 1);
                if i + 1 < items.len() || style.trailing {
                    out.push(',');
                }
            }
            pad(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                pad(out, depth + 1);
                if style.comments && i == 0 {
                    out.push_str("/* field */ ");
                }
                if style.bare_keys && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    out.push_str(key);
                } else {
                    string(out, key, style.quote);
                }
                out.push_str(": ");
                write_into(out, item, style, depth + 1);
                if i + 1 < map.len() || style.trailing {
                    out.push(',');
                }
                if style.comments {
                    out.push_str(" // ");
                    out.push_str(key);
                }
            }
            pad(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_malformation_damages_the_text_as_named() {
        let v = json!({"name": "it's \"x\"", "tags": ["a"], "n": 1});
        assert!(serde_json::from_str::<Value>(&Malformation::None.apply(&v)).is_ok());
        for m in Malformation::ALL.into_iter().filter(|m| *m != Malformation::None && m.applies(&v)) {
            assert!(serde_json::from_str::<Value>(&m.apply(&v)).is_err(), "{}: {}", m.name(), m.apply(&v));
        }
        assert!(Malformation::TrailingCommas.apply(&v).contains("\"a\",\n"));
        assert!(
            Malformation::SingleQuotes.apply(&v).contains(r#"'it\'s "x"'"#),
            "{}",
            Malformation::SingleQuotes.apply(&v)
        );
        assert!(Malformation::UnquotedKeys.apply(&v).contains("tags: ["));
        assert!(!Malformation::SingleObject.applies(&v));
        assert_eq!(Malformation::SingleObject.apply(&json!([{"a": 1}])), r#"{"a":1}"#);
    }
}
