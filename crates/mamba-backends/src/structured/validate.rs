//! Validation of a value against the original JSON Schema (the `jsonschema` crate), with
//! error lines short enough to send back to the model.

use serde_json::Value;

use crate::error::Error;

/// Violations reported at most (the rest are counted).
const MAX_ERRORS: usize = 8;
/// Characters of one violation's line at most.
const MAX_LINE: usize = 200;

/// A compiled JSON Schema: the original one, so keywords a server ignores are still enforced.
///
/// ```
/// use mamba_backends::structured::Validator;
/// use serde_json::json;
///
/// let v = Validator::new(&json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}})).unwrap();
/// assert!(v.validate(&json!({"n": 2})).is_ok());
/// assert_eq!(v.validate(&json!({"n": 0})).unwrap_err(), ["/n: 0 is less than the minimum of 1"]);
/// ```
pub struct Validator {
    inner: jsonschema::Validator,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator").finish_non_exhaustive()
    }
}

impl Validator {
    /// Compiles `schema` (checked against its draft's meta-schema); a schema that is not valid
    /// JSON Schema is an [`ErrorKind::Config`](crate::ErrorKind::Config) error.
    pub fn new(schema: &Value) -> Result<Validator, Error> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err(Error::config("the schema is not valid JSON Schema: it must be an object; fix the schema"));
        }
        let inner = jsonschema::validator_for(schema).map_err(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { String::new() } else { format!(" at {at}") };
            Error::config(format!(
                "the schema is not valid JSON Schema{at}: {}; fix the schema",
                bounded(&e.to_string())
            ))
        })?;
        Ok(Validator { inner })
    }

    /// `Ok` when `value` is valid, else one line per violation, `path: what` (`/` is the root),
    /// at most 8 lines of at most 200 characters (then a line counting the rest).
    pub fn validate(&self, value: &Value) -> Result<(), Vec<String>> {
        let mut lines = Vec::new();
        let mut more = 0usize;
        for e in self.inner.iter_errors(value) {
            if lines.len() == MAX_ERRORS {
                more += 1;
                continue;
            }
            let path = e.instance_path().to_string();
            let path = if path.is_empty() { "/".to_owned() } else { path };
            // The whole line is bounded: a long instance path (a huge key) counts too.
            lines.push(bounded(&format!("{path}: {e}")));
        }
        if more > 0 {
            lines.push(format!("... and {more} more"));
        }
        if lines.is_empty() {
            Ok(())
        } else {
            Err(lines)
        }
    }

    /// Whether `value` is valid.
    pub fn is_valid(&self, value: &Value) -> bool {
        self.inner.is_valid(value)
    }
}

/// `text` cut to [`MAX_LINE`] characters (with `…`), on one line.
fn bounded(text: &str) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= MAX_LINE {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_LINE - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    /// serde_json's features are the workspace's choice, not a dependency's: maps keep
    /// insertion order (`preserve_order`, which llguidance also needs), and floats are parsed
    /// without `float_roundtrip` (a validator version that turns it on would slow every float
    /// parse and make an f32 beyond its range an error instead of infinity).
    #[test]
    fn serde_json_features_are_the_workspaces() {
        let map: serde_json::Map<String, Value> = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["b", "a"]);
        let far: f32 = serde_json::from_str("-3.402823669209385e+38").unwrap();
        assert_eq!(far, f32::NEG_INFINITY);
    }

    #[test]
    fn errors_name_the_instance_path() {
        let v = Validator::new(&json!({
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}, "uniqueItems": true}},
            "required": ["tags", "name"]
        }))
        .unwrap();
        let errors = v.validate(&json!({"tags": ["ok", "NO", "ok"]})).unwrap_err();
        assert!(errors.iter().any(|e| e.starts_with("/: ") && e.contains("\"name\"")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("/tags/1: ")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("/tags: ") && e.contains("unique")), "{errors:?}");
        assert!(v.is_valid(&json!({"tags": ["a"], "name": 1})));
    }

    #[test]
    fn errors_are_bounded() {
        let v = Validator::new(&json!({"type": "array", "items": {"type": "integer"}})).unwrap();
        let long = "x".repeat(1000);
        let items: Vec<Value> = (0..20).map(|_| json!(long)).collect();
        let errors = v.validate(&Value::Array(items)).unwrap_err();
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert_eq!(errors.last().unwrap(), "... and 12 more");
        assert!(errors.iter().all(|e| e.chars().count() <= MAX_LINE + 12), "{errors:?}");
    }

    #[test]
    fn a_long_instance_path_is_bounded_too() {
        let v = Validator::new(&json!({"type": "object", "additionalProperties": {"type": "integer"}})).unwrap();
        let key = "k".repeat(5000);
        let errors = v.validate(&json!({ key: "x" })).unwrap_err();
        assert!(errors.iter().all(|e| e.chars().count() <= MAX_LINE), "{errors:?}");
    }

    #[test]
    fn a_schema_that_is_not_json_schema_is_a_config_error() {
        for bad in [json!({"type": 5}), json!({"properties": []}), json!(42), json!({"minimum": "zero"})] {
            let e = Validator::new(&bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
            assert!(e.to_string().contains("not valid JSON Schema"), "{e}");
        }
    }
}
