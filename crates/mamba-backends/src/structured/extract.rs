//! The [`Extract`] trait and its loop: request, parse leniently, validate, deserialise, and
//! send the errors back as feedback, up to the number of attempts.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Attempt, AttemptLog, ExtractMode, ExtractOptions, ExtractStream, Extracted, Validator};
use crate::error::{Error, ErrorKind};
use crate::model_backend::ModelBackend;
use crate::options::{RequestOptions, ResponseFormat};
use crate::types::{FinishReason, Message, ModelResponse, Role, ToolChoice, ToolDefinition, Usage};

/// Structured output on any [`ModelBackend`]: a value of a Rust type (or of a JSON Schema)
/// instead of text. Implemented for every backend, `dyn ModelBackend` and pools included.
#[async_trait]
pub trait Extract: ModelBackend {
    /// A value of `T` (its schema from [`JsonSchema`]), validated, with the raw text, every
    /// attempt and the summed usage.
    async fn extract<T>(&self, messages: &[Message], options: &ExtractOptions) -> Result<Extracted<T>, Error>
    where
        T: JsonSchema + DeserializeOwned + Send + 'static,
    {
        let schema = schema_of::<T>()?;
        run(self, &schema, messages, options, |v| serde_json::from_value::<T>(v).map_err(|e| e.to_string())).await
    }

    /// A JSON value valid against `schema`. A schema that is not valid JSON Schema is an
    /// [`ErrorKind::Config`] error, raised before any request.
    async fn extract_value(
        &self,
        schema: &Value,
        messages: &[Message],
        options: &ExtractOptions,
    ) -> Result<Extracted<Value>, Error> {
        run(self, schema, messages, options, Ok).await
    }

    /// [`extract`](Self::extract), streamed: the JSON so far as it arrives, then the validated
    /// value.
    async fn extract_stream<'s, T>(
        &'s self,
        messages: &[Message],
        options: &ExtractOptions,
    ) -> Result<ExtractStream<'s, T>, Error>
    where
        T: JsonSchema + DeserializeOwned + Send + 's,
    {
        let schema = schema_of::<T>()?;
        let _ = (messages, options);
        let _ = schema;
        Err(Error::new(ErrorKind::Unsupported, "extract_stream is not available yet"))
    }

    /// [`extract_value`](Self::extract_value), streamed.
    async fn extract_value_stream<'s>(
        &'s self,
        schema: &Value,
        messages: &[Message],
        options: &ExtractOptions,
    ) -> Result<ExtractStream<'s, Value>, Error> {
        let _ = (schema, messages, options);
        Err(Error::new(ErrorKind::Unsupported, "extract_stream is not available yet"))
    }
}

impl<B: ModelBackend + ?Sized> Extract for B {}

/// The JSON Schema of `T`.
fn schema_of<T: JsonSchema>() -> Result<Value, Error> {
    let schema = schemars::schema_for!(T);
    serde_json::to_value(&schema).map_err(|e| Error::config(format!("the schema of the type cannot be written: {e}")))
}

/// The name a schema goes by on the wire: `options.name`, else its `title`, else `output`
/// (letters, digits, `_` and `-` only, at most 64, as OpenAI requires).
pub(super) fn schema_name(schema: &Value, name: Option<&str>) -> String {
    let raw = name.or_else(|| schema.get("title").and_then(Value::as_str)).unwrap_or("output");
    let cleaned: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).take(64).collect();
    if cleaned.is_empty() {
        "output".to_owned()
    } else {
        cleaned
    }
}

/// The loop of one extraction.
async fn run<B, T, F>(
    backend: &B,
    schema: &Value,
    messages: &[Message],
    options: &ExtractOptions,
    convert: F,
) -> Result<Extracted<T>, Error>
where
    B: ModelBackend + ?Sized,
    F: Fn(Value) -> Result<T, String> + Send,
{
    let validator = Validator::new(schema)?;
    let name = schema_name(schema, options.name.as_deref());
    let request = request_options(schema, &name, options);
    let mut conversation = with_instruction(messages, schema, &name, options.mode);
    let mut attempts = Vec::new();
    let mut usage = Usage::default();
    for _ in 0..options.attempts.max(1) {
        let response = backend.complete(&conversation, &request).await?;
        if let Some(u) = &response.usage {
            add_usage(&mut usage, u);
        }
        let _ = (&validator, &convert, &mut conversation, &mut attempts);
        let _: Option<&ModelResponse> = Some(&response);
        let _ = FinishReason::Stop;
        let _ = Role::User;
    }
    Err(Error::new(ErrorKind::InvalidOutput, "not implemented yet").with_source(AttemptLog(attempts)))
}

/// The request options of `mode`.
fn request_options(schema: &Value, name: &str, options: &ExtractOptions) -> RequestOptions {
    let mut request = options.request.clone();
    request.adapt_schema = false;
    match options.mode {
        ExtractMode::Auto => {
            request.response_format =
                Some(ResponseFormat::JsonSchema { name: name.to_owned(), schema: schema.clone(), strict: Some(true) });
            request.adapt_schema = true;
        }
        ExtractMode::JsonSchema => {
            request.response_format = Some(ResponseFormat::json_schema(name, schema.clone()));
        }
        ExtractMode::JsonObject => request.response_format = Some(ResponseFormat::JsonObject),
        ExtractMode::Tool => {
            request.response_format = None;
            request.tools =
                vec![ToolDefinition::function(name, "Give the answer as this function's arguments.", schema.clone())];
            request.tool_choice = Some(ToolChoice::Function(name.to_owned()));
        }
        ExtractMode::Prompt => request.response_format = None,
    }
    request
}

/// `messages` with the instruction that asks for the schema (appended to the first system
/// message, or a new system message first).
fn with_instruction(messages: &[Message], schema: &Value, name: &str, mode: ExtractMode) -> Vec<Message> {
    let _ = (schema, name, mode);
    messages.to_vec()
}

/// Adds `u` into `sum`.
fn add_usage(sum: &mut Usage, u: &Usage) {
    sum.input_tokens += u.input_tokens;
    sum.output_tokens += u.output_tokens;
    sum.total_tokens += u.total_tokens;
}

#[allow(dead_code)]
fn _attempt_type(_: Attempt) {}
