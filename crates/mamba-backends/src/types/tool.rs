//! Tools: what the model may call ([`ToolDefinition`], [`ToolChoice`]) and what it called
//! ([`ToolCall`]).

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool call the model made: which function, with which arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// The call's id, to be echoed in the [`Message::tool`](crate::Message::tool) answer. Servers that send none get
    /// a generated `call_<index>`.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text (`"{}"` when the server sent none), even from servers that
    /// send a JSON object.
    pub arguments: String,
}

impl ToolCall {
    /// A tool call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    /// The arguments parsed as JSON.
    pub fn parse_arguments<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.arguments)
    }
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ToolDefinition {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// Its parameters as a JSON Schema object.
    pub parameters: Value,
    /// OpenAI's strict schema adherence; omitted when `None`.
    pub strict: Option<bool>,
}

impl ToolDefinition {
    /// A function tool with a JSON Schema for its parameters.
    pub fn function(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> ToolDefinition {
        let description = description.into();
        ToolDefinition {
            name: name.into(),
            description: (!description.is_empty()).then_some(description),
            parameters,
            strict: None,
        }
    }

    /// The same tool with OpenAI's strict schema adherence on or off.
    #[must_use]
    pub fn with_strict(mut self, strict: bool) -> ToolDefinition {
        self.strict = Some(strict);
        self
    }
}

impl Serialize for ToolDefinition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: &'a Option<String>,
            parameters: &'a Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            strict: &'a Option<bool>,
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry(
            "function",
            &Function {
                name: &self.name,
                description: &self.description,
                parameters: &self.parameters,
                strict: &self.strict,
            },
        )?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ToolDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Function {
            name: String,
            #[serde(default)]
            description: Option<String>,
            #[serde(default)]
            parameters: Option<Value>,
            #[serde(default)]
            strict: Option<bool>,
        }
        let value = Value::deserialize(deserializer)?;
        if let Some(kind) = value.get("type").and_then(Value::as_str) {
            if kind != "function" {
                return Err(de::Error::custom(format!(
                    "unsupported tool type {kind:?}; only \"function\" tools exist"
                )));
            }
        }
        // The wire shape {"type": "function", "function": {…}}, or the bare function object.
        let function = match value.get("function") {
            Some(f) => f.clone(),
            None => value,
        };
        let f =
            Function::deserialize(function).map_err(|e| de::Error::custom(format!("invalid tool definition: {e}")))?;
        Ok(ToolDefinition {
            name: f.name,
            description: f.description,
            parameters: f.parameters.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            strict: f.strict,
        })
    }
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This function must be called.
    Function(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Function(name) => {
                serde_json::json!({"type": "function", "function": {"name": name}}).serialize(serializer)
            }
        }
    }
}

/// Fills what a server left out of a finished tool call: an id, and `{}` for empty arguments.
pub(crate) fn normalise_tool_call(call: &mut ToolCall, index: usize) {
    if call.id.is_empty() {
        call.id = format!("call_{index}");
    }
    if call.arguments.trim().is_empty() {
        call.arguments = "{}".to_owned();
    }
}
