//! A JSON prefix closed up to parse, for the partial values of a streamed extraction.
//!
//! The prefix is scanned once; the last point where cutting it and closing what is open gives
//! valid JSON is remembered (after a complete value, after an opening bracket, or inside a
//! value string), and the prefix is cut there, its open string closed and its open containers
//! closed in order. A dangling key, colon, comma or unfinished literal is dropped.

use serde_json::Value;

/// What the scanner expects next inside a container.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// A key or `}` (object) / a value or `]` (array).
    First,
    /// A key (after a comma).
    Key,
    /// `:` after a key.
    Colon,
    /// A value (after `:` or, in an array, a comma).
    Value,
    /// `,` or the closer.
    Next,
}

/// The value a JSON prefix stands for so far: open strings, arrays and objects closed, a
/// dangling key or separator dropped. `None` when the prefix holds no value yet (empty, or an
/// unfinished literal at the top level).
///
/// ```
/// use mamba_backends::structured::complete_partial;
/// use serde_json::json;
///
/// assert_eq!(complete_partial(r#"{"name": "Ad"#), Some(json!({"name": "Ad"})));
/// assert_eq!(complete_partial(r#"{"tags": ["a", "b"], "ag"#), Some(json!({"tags": ["a", "b"]})));
/// ```
pub fn complete_partial(prefix: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str(prefix) {
        return Some(value);
    }
    let bytes = prefix.as_bytes();
    // Open containers: the closer byte and what comes next.
    let mut stack: Vec<(u8, Expect)> = Vec::new();
    // The last good cut: byte length, whether a string is open there, and the stack depth.
    let mut good: Option<(usize, bool, usize)> = None;
    let mut top_done = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'{' | b'[' => {
                if top_done && stack.is_empty() {
                    break;
                }
                stack.push(if c == b'{' { (b'}', Expect::First) } else { (b']', Expect::First) });
                i += 1;
                good = Some((i, false, stack.len()));
            }
            b'}' | b']' => {
                match stack.pop() {
                    Some((closer, _)) if closer == c => {}
                    _ => break,
                }
                i += 1;
                value_done(&mut stack, &mut top_done);
                good = Some((i, false, stack.len()));
            }
            b':' => {
                if let Some(top) = stack.last_mut() {
                    top.1 = Expect::Value;
                }
                i += 1;
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    top.1 = if top.0 == b'}' { Expect::Key } else { Expect::Value };
                }
                i += 1;
            }
            b'"' => {
                let is_key = matches!(stack.last(), Some((b'}', Expect::First | Expect::Key)));
                let (end, closed, last_char) = scan_string(prefix, i);
                if closed {
                    i = end;
                    if is_key {
                        if let Some(top) = stack.last_mut() {
                            top.1 = Expect::Colon;
                        }
                    } else {
                        value_done(&mut stack, &mut top_done);
                        good = Some((i, false, stack.len()));
                    }
                } else {
                    if !is_key {
                        good = Some((last_char, true, stack.len()));
                    }
                    break;
                }
            }
            _ => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|b| !matches!(b, b',' | b'}' | b']' | b':' | b' ' | b'\t' | b'\n' | b'\r'))
                    .count()
                    .max(1);
                let token = &prefix.get(i..i + len)?;
                if serde_json::from_str::<Value>(token).map(|v| !v.is_object() && !v.is_array()).unwrap_or(false)
                    && (i + len < bytes.len()
                        || !token.ends_with(|c: char| c.is_ascii_digit())
                        || token.parse::<f64>().is_ok())
                {
                    i += len;
                    value_done(&mut stack, &mut top_done);
                    good = Some((i, false, stack.len()));
                } else {
                    break;
                }
            }
        }
    }
    let (cut, open_string, depth) = good?;
    let mut text = String::with_capacity(cut + depth + 1);
    text.push_str(&prefix[..cut]);
    if open_string {
        text.push('"');
    }
    // The containers open at the cut are the bottom `depth` of the stack at the end: every push
    // and pop after it moved the cut with it.
    for (closer, _) in stack.iter().take(depth).rev() {
        text.push(*closer as char);
    }
    serde_json::from_str(&text).ok()
}

/// A value ended: its container now expects a comma or its closer.
fn value_done(stack: &mut [(u8, Expect)], top_done: &mut bool) {
    match stack.last_mut() {
        Some(top) => top.1 = Expect::Next,
        None => *top_done = true,
    }
}

/// Scans the string starting at byte `start` (a `"`): returns the byte after it, whether it
/// closed, and the byte up to which its content can be cut cleanly (not inside an escape).
fn scan_string(text: &str, start: usize) -> (usize, bool, usize) {
    let mut clean = start + 1;
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        let at = start + 1 + offset;
        match c {
            '"' => return (at + 1, true, clean),
            '\\' => match chars.next() {
                Some((_, 'u')) => {
                    let hex: Vec<(usize, char)> = chars.by_ref().take(4).collect();
                    match hex.last() {
                        Some((o, h)) if hex.len() == 4 && hex.iter().all(|(_, h)| h.is_ascii_hexdigit()) => {
                            // A lone high surrogate would not parse on its own: cut before it.
                            let code = u32::from_str_radix(&text[at + 2..at + 6], 16).unwrap_or(0);
                            if !(0xD800..0xDC00).contains(&code) {
                                clean = start + 1 + o + h.len_utf8();
                            }
                        }
                        _ => return (text.len(), false, clean),
                    }
                }
                Some((o, e)) => clean = start + 1 + o + e.len_utf8(),
                None => return (text.len(), false, clean),
            },
            c => clean = at + c.len_utf8(),
        }
    }
    (text.len(), false, clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn prefixes_close_up() {
        let cases: &[(&str, Option<Value>)] = &[
            ("", None),
            ("  ", None),
            ("{", Some(json!({}))),
            ("{\"na", Some(json!({}))),
            ("{\"name\"", Some(json!({}))),
            ("{\"name\":", Some(json!({}))),
            ("{\"name\": \"A", Some(json!({"name": "A"}))),
            ("{\"name\": \"A\\", Some(json!({"name": "A"}))),
            ("{\"name\": \"A\\u00", Some(json!({"name": "A"}))),
            ("{\"name\": \"A\\u00e9", Some(json!({"name": "Aé"}))),
            ("{\"a\": 1, ", Some(json!({"a": 1}))),
            ("{\"a\": 12", Some(json!({"a": 12}))),
            ("{\"a\": 1.", Some(json!({}))),
            ("{\"a\": tr", Some(json!({}))),
            ("{\"a\": [1, {\"b\": [", Some(json!({"a": [1, {"b": []}]}))),
            ("[\"x\", \"y", Some(json!(["x", "y"]))),
            ("\"ab", Some(json!("ab"))),
            ("tr", None),
            ("-", None),
        ];
        for (prefix, want) in cases {
            assert_eq!(&complete_partial(prefix), want, "{prefix:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn every_prefix_of_a_document_parses(value in crate::structured::repair::tests::json_value(), pretty in any::<bool>()) {
            let doc = json!({"v": value, "w": [value.clone()]});
            let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { serde_json::to_string(&doc).unwrap() };
            for (i, _) in text.char_indices().skip(1) {
                prop_assert!(complete_partial(&text[..i]).is_some(), "{:?}", &text[..i]);
            }
            // What serde_json itself reads from the whole text (floats as it parses them).
            let plain: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(complete_partial(&text), Some(plain));
        }

        #[test]
        fn never_panics(text in ".{0,60}") {
            let _ = complete_partial(&text);
        }
    }
}
