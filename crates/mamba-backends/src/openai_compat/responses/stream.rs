//! The Responses API's typed stream events to [`StreamChunk`]s: the same contract as chat
//! streams. Pure.
//!
//! Text and reasoning deltas become chunks as they come; a function call becomes tool-call
//! pieces under one stable index (its id and name from `response.output_item.added`, its
//! arguments from the deltas, or whole from `.done` when no delta came); reasoning items are
//! kept from `response.output_item.done` for the final chunk. `response.completed` and
//! `response.incomplete` end the stream with its one final chunk (usage, finish reason);
//! `response.failed` and `error` are errors; unknown events are skipped.

use serde::Deserialize;
use serde_json::Value;

use super::response::{read_finish, read_function_call, read_reasoning_item, read_usage, response_error};
use crate::classify;
use crate::error::Error;
use crate::openai_compat::parsed_event::Parsed;
use crate::openai_compat::wire::{decode_error, LenientCount, LenientStr};
use crate::stream::{StreamChunk, ToolCallDelta};
use crate::think::ThinkSplitter;
use crate::types::{infer_finish_reason, FinishReason, ReasoningItem, Usage};

/// One event's data, the fields any event type uses; the rest is skipped unread.
#[derive(Debug, Default, Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow, default)]
    r#type: LenientStr<'a>,
    #[serde(borrow, default)]
    delta: LenientStr<'a>,
    #[serde(default)]
    output_index: LenientCount,
    #[serde(borrow, default)]
    item_id: LenientStr<'a>,
    #[serde(borrow, default)]
    arguments: LenientStr<'a>,
    #[serde(default)]
    item: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// A function call being streamed.
#[derive(Debug)]
struct Call {
    output_index: Option<u64>,
    item_id: String,
    /// Argument bytes already handed out.
    sent: String,
}

/// The state of one Responses stream.
#[derive(Debug)]
pub(crate) struct ResponsesParser {
    think: ThinkSplitter,
    calls: Vec<Call>,
    reasoning_items: Vec<ReasoningItem>,
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
    /// `response.completed` or `response.incomplete` came.
    done: bool,
    model_sent: bool,
    id_sent: bool,
    late_model: Option<String>,
    late_id: Option<String>,
    events: u64,
}

impl ResponsesParser {
    pub(crate) fn new(think_tags: bool) -> ResponsesParser {
        ResponsesParser {
            think: ThinkSplitter::new(think_tags),
            calls: Vec::new(),
            reasoning_items: Vec::new(),
            usage: None,
            finish_reason: None,
            done: false,
            model_sent: false,
            id_sent: false,
            late_model: None,
            late_id: None,
            events: 0,
        }
    }

    /// True once the response completed (or ended incomplete).
    pub(crate) fn saw_finish(&self) -> bool {
        self.done
    }

    /// Number of events seen.
    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// The call an event is about: by output index, else by item id; the last one when the
    /// event names neither.
    fn call_index(&self, output_index: Option<u64>, item_id: Option<&str>) -> Option<usize> {
        if let Some(o) = output_index {
            if let Some(i) = self.calls.iter().position(|c| c.output_index == Some(o)) {
                return Some(i);
            }
        }
        if let Some(id) = item_id {
            if let Some(i) = self.calls.iter().position(|c| c.item_id == id) {
                return Some(i);
            }
        }
        if output_index.is_some() || item_id.is_some() {
            return None;
        }
        self.calls.len().checked_sub(1)
    }

    fn new_call(&mut self, output_index: Option<u64>, item_id: &str) -> usize {
        self.calls.push(Call { output_index, item_id: item_id.to_owned(), sent: String::new() });
        self.calls.len() - 1
    }

    /// Names the model and id on the first chunk that can carry them.
    fn identify(&mut self, response: &Value, chunk: &mut StreamChunk) {
        if !self.model_sent {
            if let Some(model) = response.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                chunk.model = Some(model.to_owned());
                self.model_sent = true;
            }
        }
        if !self.id_sent {
            if let Some(id) = response.get("id").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                chunk.id = Some(id.to_owned());
                self.id_sent = true;
            }
        }
    }

    /// Parses one event's data.
    pub(crate) fn parse(&mut self, data: &[u8]) -> Result<Parsed, Error> {
        self.events += 1;
        let trimmed = data.trim_ascii();
        if trimmed.is_empty() {
            return Ok(Parsed::Nothing);
        }
        if trimmed == b"[DONE]" {
            if self.done {
                return Ok(Parsed::Done);
            }
            return Err(Error::stream("the stream ended with [DONE] before response.completed"));
        }
        let event: WireEvent<'_> =
            serde_json::from_slice(trimmed).map_err(|e| decode_error("a stream event", trimmed, e))?;
        let kind = event.r#type.non_empty().unwrap_or("");
        let mut chunk = StreamChunk::default();
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(text) = event.delta.non_empty() {
                    self.think.feed(text, &mut chunk.content, &mut chunk.reasoning);
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                chunk.reasoning.push_str(event.delta.non_empty().unwrap_or(""));
            }
            "response.output_item.added" => {
                let Some(item) =
                    event.item.as_ref().filter(|i| i.get("type").and_then(Value::as_str) == Some("function_call"))
                else {
                    return Ok(Parsed::Nothing);
                };
                let call = read_function_call(item);
                let item_id = item.get("id").and_then(Value::as_str).unwrap_or("");
                let index = self.new_call(event.output_index.0, item_id);
                let slot = &mut self.calls[index];
                slot.sent.push_str(&call.arguments);
                chunk.tool_calls.push(ToolCallDelta {
                    index,
                    id: (!call.id.is_empty()).then_some(call.id),
                    name: (!call.name.is_empty()).then_some(call.name),
                    arguments: call.arguments,
                });
            }
            "response.function_call_arguments.delta" => {
                let delta = event.delta.non_empty().unwrap_or("");
                let index = match self.call_index(event.output_index.0, event.item_id.non_empty()) {
                    Some(i) => i,
                    None => self.new_call(event.output_index.0, event.item_id.non_empty().unwrap_or("")),
                };
                self.calls[index].sent.push_str(delta);
                chunk.tool_calls.push(ToolCallDelta::new(index, delta));
            }
            "response.function_call_arguments.done" | "response.output_item.done" => {
                let item = event.item.as_ref();
                let item_type = item.and_then(|i| i.get("type")).and_then(Value::as_str);
                if kind == "response.output_item.done" && item_type == Some("reasoning") {
                    if let Some(r) = item.and_then(|i| read_reasoning_item(i, &mut String::new())) {
                        self.reasoning_items.retain(|old| old.id != r.id);
                        self.reasoning_items.push(r);
                    }
                    return Ok(Parsed::Nothing);
                }
                if kind == "response.output_item.done" && item_type != Some("function_call") {
                    return Ok(Parsed::Nothing);
                }
                // The whole arguments: hand out what the deltas did not.
                let whole = match item {
                    Some(item) => read_function_call(item).arguments,
                    None => event.arguments.non_empty().unwrap_or("").to_owned(),
                };
                let item_id =
                    event.item_id.non_empty().or_else(|| item.and_then(|i| i.get("id")).and_then(Value::as_str));
                let index = match self.call_index(event.output_index.0, item_id) {
                    Some(i) => i,
                    None => {
                        // A call seen only at its end: announce it whole.
                        let Some(item) = item else { return Ok(Parsed::Nothing) };
                        let call = read_function_call(item);
                        let index = self.new_call(event.output_index.0, item_id.unwrap_or(""));
                        self.calls[index].sent.push_str(&call.arguments);
                        chunk.tool_calls.push(ToolCallDelta {
                            index,
                            id: (!call.id.is_empty()).then_some(call.id),
                            name: (!call.name.is_empty()).then_some(call.name),
                            arguments: call.arguments,
                        });
                        return Ok(Parsed::Chunk(chunk));
                    }
                };
                let slot = &mut self.calls[index];
                match whole.strip_prefix(slot.sent.as_str()) {
                    Some(rest) if !rest.is_empty() => {
                        let rest = rest.to_owned();
                        slot.sent.push_str(&rest);
                        chunk.tool_calls.push(ToolCallDelta::new(index, rest));
                    }
                    _ => return Ok(Parsed::Nothing),
                }
            }
            "response.created" | "response.in_progress" => {
                let Some(response) = event.response.as_ref() else { return Ok(Parsed::Nothing) };
                self.identify(response, &mut chunk);
                if chunk.model.is_none() && chunk.id.is_none() {
                    return Ok(Parsed::Nothing);
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = event.response.unwrap_or(Value::Null);
                self.identify(&response, &mut chunk);
                self.usage = read_usage(response.get("usage")).or(self.usage);
                let finish = read_finish(&response).unwrap_or(if kind == "response.incomplete" {
                    FinishReason::Length
                } else {
                    FinishReason::Stop
                });
                self.finish_reason = Some(finish);
                // Reasoning items a server announced only in the final response.
                if self.reasoning_items.is_empty() {
                    for item in response.get("output").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
                        if item.get("type").and_then(Value::as_str) == Some("reasoning") {
                            if let Some(r) = read_reasoning_item(item, &mut String::new()) {
                                self.reasoning_items.push(r);
                            }
                        }
                    }
                }
                self.done = true;
                // A model or id not named before goes on the final chunk.
                self.late_model = chunk.model;
                self.late_id = chunk.id;
                return Ok(Parsed::Done);
            }
            "response.failed" => {
                let response = event.response.unwrap_or(Value::Null);
                return Err(response_error(&response).unwrap_or_else(|| {
                    Error::new(crate::ErrorKind::Server, "the server reports that the response failed")
                }));
            }
            "error" => {
                let value: Value = serde_json::from_slice(trimmed).unwrap_or(Value::Null);
                let value = match value.get("error") {
                    Some(e) if !e.is_null() => value,
                    _ => serde_json::json!({ "error": value }),
                };
                return Err(classify::from_stream_frame(&value));
            }
            "" => {
                // No type: a chat-style error frame (`{"error": …}`) from a proxy.
                if let Some(error) = event.error.filter(|e| !e.is_null()) {
                    return Err(classify::from_stream_frame(&serde_json::json!({ "error": error })));
                }
                return Ok(Parsed::Nothing);
            }
            _ => return Ok(Parsed::Nothing),
        }
        if chunk.is_empty() && chunk.model.is_none() && chunk.id.is_none() {
            return Ok(Parsed::Nothing);
        }
        Ok(Parsed::Chunk(chunk))
    }

    /// The final chunk: what the think splitter held back, the finish reason, the usage and
    /// the reasoning items.
    pub(crate) fn finish(&mut self) -> StreamChunk {
        let mut chunk = StreamChunk::final_chunk(
            infer_finish_reason(self.finish_reason.clone(), !self.calls.is_empty()),
            self.usage,
        );
        self.think.finish(&mut chunk.content, &mut chunk.reasoning);
        chunk.reasoning_items = std::mem::take(&mut self.reasoning_items);
        chunk.model = self.late_model.take();
        chunk.id = self.late_id.take();
        chunk
    }
}
