//! Answers: [`ModelResponse`], its [`Usage`] and [`FinishReason`].

use std::fmt;

use bytes::Bytes;
use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::{Content, Message, Role};
use super::tool::ToolCall;

/// Token counts of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens (`prompt_tokens` on the wire).
    pub input_tokens: u64,
    /// Generated tokens (`completion_tokens`).
    pub output_tokens: u64,
    /// Both (`total_tokens`, or the sum when the server sent none).
    pub total_tokens: u64,
    /// Of the output, tokens spent reasoning, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Of the input, tokens served from the prompt cache, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
}

impl Usage {
    /// Counts of `input` prompt and `output` generated tokens; the total is their sum.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            reasoning_tokens: None,
            cached_input_tokens: None,
        }
    }
}

/// Why the model stopped, normalised across servers (provider-quirks 3.12).
///
/// `eos` (Together) and `stop_sequence` (TGI) are [`Stop`](FinishReason::Stop);
/// `model_length` (Mistral) is [`Length`](FinishReason::Length); `abort` (vLLM, SGLang),
/// `error` (OpenRouter, Mistral) and `insufficient_system_resource` (DeepSeek) are
/// [`Error`](FinishReason::Error); `function_call` is [`ToolCalls`](FinishReason::ToolCalls).
/// An answer with tool calls whose server said `stop` (TGI, vLLM with a named tool choice,
/// older Ollama) reports `ToolCalls`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The content filter stopped the answer.
    ContentFilter,
    /// The server aborted the generation.
    Error,
    /// A value this crate does not know, verbatim.
    Other(String),
}

impl FinishReason {
    /// Normalises a server's value; `None` for an empty string.
    pub fn parse(value: &str) -> Option<FinishReason> {
        Some(match value {
            "" => return None,
            "stop" | "eos" | "stop_sequence" | "end_turn" | "eos_token" => FinishReason::Stop,
            "length" | "model_length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            "error" | "abort" | "insufficient_system_resource" => FinishReason::Error,
            other => FinishReason::Other(other.to_owned()),
        })
    }

    /// The normalised value as text (`"stop"`, `"length"`, `"tool_calls"`, …).
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Error => "error",
            FinishReason::Other(other) => other,
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(FinishReason::parse(&s).unwrap_or(FinishReason::Other(s)))
    }
}

/// Applies the rule "tool calls present and the server said stop (or nothing) means
/// `ToolCalls`".
pub(crate) fn infer_finish_reason(finish: Option<FinishReason>, has_tool_calls: bool) -> Option<FinishReason> {
    match finish {
        Some(FinishReason::Stop) | None if has_tool_calls => Some(FinishReason::ToolCalls),
        other => other,
    }
}

/// A finished answer.
///
/// Serialises to the JSON the CLI prints with `--json`:
/// `{"content", "reasoning", "tool_calls", "usage", "model", "finish_reason"}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelResponse {
    /// The text; `""` when there is none (tool calls only).
    pub content: String,
    /// The model's reasoning, from `reasoning_content`, `reasoning`, or a leading
    /// `<think>…</think>` in the content.
    pub reasoning: Option<String>,
    /// The tool calls, complete.
    pub tool_calls: Vec<ToolCall>,
    /// Token counts, when the server sent them.
    pub usage: Option<Usage>,
    /// The model that answered, as the server names it.
    pub model: Option<String>,
    /// Why it stopped.
    pub finish_reason: Option<FinishReason>,
    /// The server's response id (`chatcmpl-…`, `resp_…`), when it sent a non-empty one.
    #[serde(skip)]
    pub id: Option<String>,
    /// The reasoning items of a Responses API answer (id, summary, encrypted content), which
    /// [`to_message`](ModelResponse::to_message) keeps so the next turn sends them back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasoning_items: Vec<super::ReasoningItem>,
    #[serde(skip)]
    pub(crate) raw: Option<Bytes>,
}

impl ModelResponse {
    /// The answer as an assistant message, to append to the history of a tool loop.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: Content::Text(self.content.clone()),
            name: None,
            tool_calls: self.tool_calls.clone(),
            tool_call_id: None,
            reasoning: self.reasoning.clone(),
            reasoning_items: self.reasoning_items.clone(),
            extra: serde_json::Map::new(),
        }
    }

    /// An answer with this text and nothing else; add the rest with the `with_*` methods.
    ///
    /// ```
    /// use mamba_backends::{FinishReason, ModelResponse, Usage};
    /// let answer = ModelResponse::new("Paris.")
    ///     .with_finish_reason(FinishReason::Stop)
    ///     .with_usage(Usage::new(12, 3))
    ///     .with_model("smollm2");
    /// assert_eq!(answer.usage.map(|u| u.total_tokens), Some(15));
    /// ```
    pub fn new(content: impl Into<String>) -> ModelResponse {
        ModelResponse { content: content.into(), ..ModelResponse::default() }
    }

    /// The same answer with reasoning text.
    #[must_use]
    pub fn with_reasoning(mut self, reasoning: impl Into<String>) -> ModelResponse {
        self.reasoning = Some(reasoning.into());
        self
    }

    /// The same answer with tool calls.
    #[must_use]
    pub fn with_tool_calls(mut self, tool_calls: Vec<ToolCall>) -> ModelResponse {
        self.tool_calls = tool_calls;
        self
    }

    /// The same answer with token counts.
    #[must_use]
    pub fn with_usage(mut self, usage: Usage) -> ModelResponse {
        self.usage = Some(usage);
        self
    }

    /// The same answer naming the model that gave it.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> ModelResponse {
        self.model = Some(model.into());
        self
    }

    /// The same answer with why it stopped.
    #[must_use]
    pub fn with_finish_reason(mut self, finish_reason: FinishReason) -> ModelResponse {
        self.finish_reason = Some(finish_reason);
        self
    }

    /// The same answer with a response id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> ModelResponse {
        self.id = Some(id.into());
        self
    }

    /// The same answer with Responses API reasoning items.
    #[must_use]
    pub fn with_reasoning_items(mut self, items: Vec<super::ReasoningItem>) -> ModelResponse {
        self.reasoning_items = items;
        self
    }

    pub(crate) fn with_raw(mut self, raw: Bytes) -> ModelResponse {
        self.raw = Some(raw);
        self
    }

    /// True when the model asked for tool calls.
    pub fn has_tool_calls(&self) -> bool {
        !self.tool_calls.is_empty()
    }

    /// The response body exactly as the server sent it (non-streaming answers only), for
    /// provider fields this crate does not model.
    pub fn raw_body(&self) -> Option<&[u8]> {
        self.raw.as_deref()
    }

    /// The response body parsed as JSON (non-streaming answers only).
    pub fn raw_json(&self) -> Option<Value> {
        self.raw.as_deref().and_then(|raw| serde_json::from_slice(raw.trim_ascii_start()).ok())
    }
}
