//! [`RequestOptions`]: everything about one request besides the messages.

use serde::ser::Serializer;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::types::{ToolChoice, ToolDefinition};

/// Options of one request. Every field is optional; nothing unset is sent.
///
/// ```
/// use mamba_backends::{RequestOptions, ToolDefinition, ToolChoice};
/// use serde_json::json;
///
/// let options = RequestOptions::new()
///     .temperature(0.2)
///     .max_tokens(256)
///     .tools(vec![ToolDefinition::function(
///         "get_weather",
///         "Current weather for a city",
///         json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
///     )])
///     .tool_choice(ToolChoice::Auto)
///     .extra("top_k", json!(40)); // any other field, merged into the body last
/// assert_eq!(options.max_tokens, Some(256));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Sampling temperature. Unset: the profile's default if it has one, else the server's.
    pub temperature: Option<f64>,
    /// Longest answer in tokens (sent as `max_tokens` or `max_completion_tokens`, whichever
    /// the target needs).
    pub max_tokens: Option<u32>,
    /// Functions the model may call.
    pub tools: Vec<ToolDefinition>,
    /// Whether and which tool must be called.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools at once.
    pub parallel_tool_calls: Option<bool>,
    /// The answer's required shape.
    pub response_format: Option<ResponseFormat>,
    /// Stop sequences (always sent as an array, which every server accepts).
    pub stop: Vec<String>,
    /// Seed for reproducible sampling.
    pub seed: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Any other body fields, merged in last: they override fields set above (the seed's
    /// `**kwargs`).
    pub extra: Map<String, Value>,
}

impl RequestOptions {
    /// No options.
    pub fn new() -> RequestOptions {
        RequestOptions::default()
    }

    /// Sets the temperature.
    #[must_use]
    pub fn temperature(mut self, temperature: f64) -> RequestOptions {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the output token limit.
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u32) -> RequestOptions {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the tools.
    #[must_use]
    pub fn tools(mut self, tools: Vec<ToolDefinition>) -> RequestOptions {
        self.tools = tools;
        self
    }

    /// Adds one tool.
    #[must_use]
    pub fn tool(mut self, tool: ToolDefinition) -> RequestOptions {
        self.tools.push(tool);
        self
    }

    /// Sets the tool choice.
    #[must_use]
    pub fn tool_choice(mut self, choice: ToolChoice) -> RequestOptions {
        self.tool_choice = Some(choice);
        self
    }

    /// Allows or forbids parallel tool calls.
    #[must_use]
    pub fn parallel_tool_calls(mut self, yes: bool) -> RequestOptions {
        self.parallel_tool_calls = Some(yes);
        self
    }

    /// Sets the response format.
    #[must_use]
    pub fn response_format(mut self, format: ResponseFormat) -> RequestOptions {
        self.response_format = Some(format);
        self
    }

    /// Sets the stop sequences.
    #[must_use]
    pub fn stop<I, S>(mut self, stop: I) -> RequestOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn seed(mut self, seed: i64) -> RequestOptions {
        self.seed = Some(seed);
        self
    }

    /// Sets top-p.
    #[must_use]
    pub fn top_p(mut self, top_p: f64) -> RequestOptions {
        self.top_p = Some(top_p);
        self
    }

    /// Sets the frequency penalty.
    #[must_use]
    pub fn frequency_penalty(mut self, penalty: f64) -> RequestOptions {
        self.frequency_penalty = Some(penalty);
        self
    }

    /// Sets the presence penalty.
    #[must_use]
    pub fn presence_penalty(mut self, penalty: f64) -> RequestOptions {
        self.presence_penalty = Some(penalty);
        self
    }

    /// Adds a body field, merged in last (it overrides a field of the same name).
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> RequestOptions {
        self.extra.insert(key.into(), value);
        self
    }
}

/// The shape the answer must have.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any valid JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// A name for the schema (OpenAI requires one).
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// OpenAI's strict mode; omitted when `None`.
        strict: Option<bool>,
    },
}

impl ResponseFormat {
    /// A JSON Schema format.
    pub fn json_schema(name: impl Into<String>, schema: Value) -> ResponseFormat {
        ResponseFormat::JsonSchema { name: name.into(), schema, strict: None }
    }
}

impl Serialize for ResponseFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResponseFormat::Text => serde_json::json!({"type": "text"}).serialize(serializer),
            ResponseFormat::JsonObject => serde_json::json!({"type": "json_object"}).serialize(serializer),
            ResponseFormat::JsonSchema { name, schema, strict } => {
                let mut inner = serde_json::Map::new();
                inner.insert("name".into(), Value::String(name.clone()));
                inner.insert("schema".into(), schema.clone());
                if let Some(strict) = strict {
                    inner.insert("strict".into(), Value::Bool(*strict));
                }
                serde_json::json!({"type": "json_schema", "json_schema": inner}).serialize(serializer)
            }
        }
    }
}
