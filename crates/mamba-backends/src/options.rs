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
    /// How hard a reasoning model thinks (`reasoning_effort` on chat, `reasoning.effort` on
    /// the Responses API).
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Responses API: ask for reasoning summaries (`reasoning.summary`); chat ignores it.
    pub reasoning_summary: Option<ReasoningSummary>,
    /// Responses API: ask for the encrypted reasoning (`include:
    /// ["reasoning.encrypted_content"]`), which a stateless (`store: false`) conversation needs
    /// to send reasoning back on the next turn. Reasoning models only; chat ignores it.
    pub encrypted_reasoning: bool,
    /// Responses API: continue a stored response (`previous_response_id`) instead of
    /// resending the history. An explicit opt-in: requests are stateless by default.
    pub previous_response_id: Option<String>,
    /// Responses API: whether the server stores the response (`store`). Default `false`
    /// (stateless); chat ignores it.
    pub store: Option<bool>,
    /// Any other body fields, merged in last: they override fields set above (the seed's
    /// `**kwargs`).
    pub extra: Map<String, Value>,
    /// Set by [`Extract`](crate::structured::Extract): the `response_format` is structured
    /// output to adapt to each server's form (`translate`), not a user's own format to send as
    /// given. Kept by `clone`, so a pool adapts it per endpoint.
    pub(crate) adapt_schema: bool,
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

    /// Sets the reasoning effort.
    #[must_use]
    pub fn reasoning_effort(mut self, effort: ReasoningEffort) -> RequestOptions {
        self.reasoning_effort = Some(effort);
        self
    }

    /// Asks for reasoning summaries (Responses API).
    #[must_use]
    pub fn reasoning_summary(mut self, summary: ReasoningSummary) -> RequestOptions {
        self.reasoning_summary = Some(summary);
        self
    }

    /// Asks for the encrypted reasoning (Responses API), so it can be sent back statelessly.
    #[must_use]
    pub fn encrypted_reasoning(mut self, yes: bool) -> RequestOptions {
        self.encrypted_reasoning = yes;
        self
    }

    /// Continues a stored response (Responses API; the server must have stored it).
    #[must_use]
    pub fn previous_response_id(mut self, id: impl Into<String>) -> RequestOptions {
        self.previous_response_id = Some(id.into());
        self
    }

    /// Whether the server stores the response (Responses API). Default `false`.
    #[must_use]
    pub fn store(mut self, yes: bool) -> RequestOptions {
        self.store = Some(yes);
        self
    }

    /// Adds a body field, merged in last (it overrides a field of the same name).
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> RequestOptions {
        self.extra.insert(key.into(), value);
        self
    }
}

/// How hard a reasoning model thinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReasoningEffort {
    /// No reasoning (models that can switch it off).
    None,
    /// The least.
    Minimal,
    /// Little.
    Low,
    /// The usual.
    Medium,
    /// The most.
    High,
}

impl ReasoningEffort {
    /// Parses `none`, `minimal`, `low`, `medium` or `high`.
    pub fn parse(value: &str) -> Option<ReasoningEffort> {
        Some(match value {
            "none" => ReasoningEffort::None,
            "minimal" => ReasoningEffort::Minimal,
            "low" => ReasoningEffort::Low,
            "medium" => ReasoningEffort::Medium,
            "high" => ReasoningEffort::High,
            _ => return None,
        })
    }
}

/// Which reasoning summary the Responses API returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReasoningSummary {
    /// The most detailed the model offers.
    Auto,
    /// Short.
    Concise,
    /// Long.
    Detailed,
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
