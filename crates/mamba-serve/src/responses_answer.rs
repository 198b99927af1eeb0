//! Writing answers in the Responses API's shapes: the whole `response` object and the typed
//! stream events (`response.created` … `response.completed`), each with its `type` and
//! `sequence_number`. Pure: the library's types in, JSON out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mamba_backends::{message::ReasoningItem, FinishReason, ModelResponse, StreamChunk, Usage};
use serde_json::{json, Value};

use crate::chat_answer::now_secs;
use crate::error::ApiError;
use crate::responses_request::Echo;

/// A fresh id with this prefix (`resp`, `msg`, `fc`, `rs`, `call`), unique within the process.
pub(crate) fn new_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{:x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens.unwrap_or(0), "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens.unwrap_or(0)},
        "total_tokens": usage.total_tokens,
    })
}

/// `status` and `incomplete_details` for a finish reason.
fn status_of(finish: Option<&FinishReason>) -> (&'static str, Value) {
    match finish {
        Some(FinishReason::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(FinishReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The response object around `output`.
#[allow(clippy::too_many_arguments)]
fn envelope(
    id: &str,
    model: &str,
    created: u64,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Option<&Usage>,
    echo: &Echo,
) -> Value {
    let mut out = json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls.unwrap_or(true),
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": echo.temperature.unwrap_or(1.0),
        "text": echo.text.clone().filter(Value::is_object).unwrap_or_else(|| json!({"format": {"type": "text"}})),
        "tool_choice": echo.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        "tools": echo.tools,
        "top_p": echo.top_p.unwrap_or(1.0),
        "truncation": "disabled",
        "metadata": echo.metadata.clone().unwrap_or_else(|| json!({})),
    });
    // The spec has no null usage: it is left out until known.
    if let Some(usage) = usage {
        out["usage"] = usage_json(usage);
    }
    out
}

fn reasoning_item(item: &ReasoningItem) -> Value {
    let summary: Vec<Value> = item.summary.iter().map(|t| json!({"type": "summary_text", "text": t})).collect();
    let mut out = json!({"type": "reasoning", "id": item.id, "summary": summary});
    if let Some(e) = &item.encrypted_content {
        out["encrypted_content"] = json!(e);
    }
    out
}

fn reasoning_text_item(id: &str, text: &str, status: &str) -> Value {
    let content = if text.is_empty() { json!([]) } else { json!([{"type": "reasoning_text", "text": text}]) };
    json!({"type": "reasoning", "id": id, "summary": [], "content": content, "status": status})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: &str, text: Option<&str>, status: &str) -> Value {
    let content: Vec<Value> = text.map(text_part).into_iter().collect();
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status})
}

/// A whole answer as a `response` object.
pub(crate) fn response_object(answer: &ModelResponse, id: &str, model: &str, created: u64, echo: &Echo) -> Value {
    let mut output = Vec::new();
    let text = answer.reasoning.as_deref().filter(|r| !r.is_empty());
    for (i, item) in answer.reasoning_items.iter().enumerate() {
        let mut item = reasoning_item(item);
        // The reasoning text goes with the first item, as its content.
        if let (0, Some(text)) = (i, text) {
            item["content"] = json!([{"type": "reasoning_text", "text": text}]);
        }
        output.push(item);
    }
    if answer.reasoning_items.is_empty() {
        if let Some(text) = text {
            output.push(reasoning_text_item(&new_id("rs"), text, "completed"));
        }
    }
    if !answer.content.is_empty() || !answer.has_tool_calls() {
        output.push(message_item(&new_id("msg"), Some(&answer.content), "completed"));
    }
    for call in &answer.tool_calls {
        let call_id = if call.id.is_empty() { new_id("call") } else { call.id.clone() };
        output.push(call_item(&new_id("fc"), &call_id, &call.name, &call.arguments, "completed"));
    }
    let (status, incomplete) = status_of(answer.finish_reason.as_ref());
    envelope(
        id,
        answer.model.as_deref().unwrap_or(model),
        created,
        status,
        incomplete,
        output,
        answer.usage.as_ref(),
        echo,
    )
}

/// The `error` of a failed response: the spec's codes only.
fn failure(e: &ApiError) -> Value {
    let code = match e.status {
        429 => "rate_limit_exceeded",
        400 => "invalid_prompt",
        _ => "server_error",
    };
    json!({"code": code, "message": &*e.message})
}

/// The item being written.
#[derive(Debug)]
enum Open {
    Reasoning { index: usize, id: String, text: String },
    Message { index: usize, id: String, text: String },
}

/// A function call being written, by the backend's tool-call index.
#[derive(Debug)]
struct Call {
    delta_index: usize,
    output_index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// Turns a backend's chunks into the Responses API's typed events.
#[derive(Debug)]
pub(crate) struct ResponsesWriter {
    id: String,
    model: String,
    created: u64,
    echo: Echo,
    seq: u64,
    started: bool,
    open: Option<Open>,
    calls: Vec<Call>,
    /// Finished output items, by output index (`Null` while open).
    output: Vec<Value>,
    /// The output indices of the reasoning items streamed as text.
    reasoning_indices: Vec<usize>,
}

impl ResponsesWriter {
    pub(crate) fn new(model: String, echo: Echo) -> ResponsesWriter {
        ResponsesWriter {
            id: new_id("resp"),
            model,
            created: now_secs(),
            echo,
            seq: 0,
            started: false,
            open: None,
            calls: Vec::new(),
            output: Vec::new(),
            reasoning_indices: Vec::new(),
        }
    }

    fn push(&mut self, out: &mut Vec<Value>, mut event: Value) {
        event["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push(event);
    }

    fn snapshot(&self, status: &str, incomplete: Value, usage: Option<&Usage>) -> Value {
        let output = self.output.iter().filter(|v| !v.is_null()).cloned().collect();
        envelope(&self.id, &self.model, self.created, status, incomplete, output, usage, &self.echo)
    }

    /// `response.created` and `response.in_progress`: written before the first chunk.
    pub(crate) fn start(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            let r = self.snapshot("in_progress", Value::Null, None);
            self.push(&mut out, json!({"type": "response.created", "response": r}));
            let r = self.snapshot("in_progress", Value::Null, None);
            self.push(&mut out, json!({"type": "response.in_progress", "response": r}));
        }
        out
    }

    fn close_open(&mut self, out: &mut Vec<Value>) {
        match self.open.take() {
            None => {}
            Some(Open::Message { index, id, text }) => {
                let base = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut e = base.clone();
                e["type"] = json!("response.output_text.done");
                e["text"] = json!(text);
                e["logprobs"] = json!([]);
                self.push(out, e);
                let mut e = base;
                e["type"] = json!("response.content_part.done");
                e["part"] = text_part(&text);
                self.push(out, e);
                let item = message_item(&id, Some(&text), "completed");
                self.output[index] = item.clone();
                self.push(out, json!({"type": "response.output_item.done", "output_index": index, "item": item}));
            }
            Some(Open::Reasoning { index, id, text }) => {
                self.push(
                    out,
                    json!({"type": "response.reasoning_text.done", "item_id": id, "output_index": index, "content_index": 0, "text": text}),
                );
                let item = reasoning_text_item(&id, &text, "completed");
                self.output[index] = item.clone();
                self.push(out, json!({"type": "response.output_item.done", "output_index": index, "item": item}));
            }
        }
    }

    fn close_calls(&mut self, out: &mut Vec<Value>) {
        for call in std::mem::take(&mut self.calls) {
            self.push(
                out,
                json!({"type": "response.function_call_arguments.done", "item_id": call.id, "output_index": call.output_index,
                       "name": call.name, "arguments": call.arguments}),
            );
            let item = call_item(&call.id, &call.call_id, &call.name, &call.arguments, "completed");
            self.output[call.output_index] = item.clone();
            self.push(
                out,
                json!({"type": "response.output_item.done", "output_index": call.output_index, "item": item}),
            );
        }
    }

    /// The events for one chunk of the backend.
    pub(crate) fn events(&mut self, chunk: &StreamChunk) -> Vec<Value> {
        let mut out = self.start();
        if let Some(model) = chunk.model.as_ref().filter(|m| !m.is_empty()) {
            if self.output.is_empty() {
                self.model.clone_from(model);
            }
        }
        if !chunk.reasoning.is_empty() {
            if !matches!(self.open, Some(Open::Reasoning { .. })) {
                self.close_open(&mut out);
                let (index, id) = (self.output.len(), new_id("rs"));
                self.output.push(Value::Null);
                self.reasoning_indices.push(index);
                let item = reasoning_text_item(&id, "", "in_progress");
                self.push(&mut out, json!({"type": "response.output_item.added", "output_index": index, "item": item}));
                self.open = Some(Open::Reasoning { index, id, text: String::new() });
            }
            if let Some(Open::Reasoning { index, id, text }) = &mut self.open {
                text.push_str(&chunk.reasoning);
                let e = json!({"type": "response.reasoning_text.delta", "item_id": id, "output_index": index,
                               "content_index": 0, "delta": chunk.reasoning});
                self.push(&mut out, e);
            }
        }
        if !chunk.content.is_empty() {
            if !matches!(self.open, Some(Open::Message { .. })) {
                self.close_open(&mut out);
                let (index, id) = (self.output.len(), new_id("msg"));
                self.output.push(Value::Null);
                let item = message_item(&id, None, "in_progress");
                self.push(&mut out, json!({"type": "response.output_item.added", "output_index": index, "item": item}));
                self.push(
                    &mut out,
                    json!({"type": "response.content_part.added", "item_id": id, "output_index": index, "content_index": 0,
                           "part": text_part("")}),
                );
                self.open = Some(Open::Message { index, id, text: String::new() });
            }
            if let Some(Open::Message { index, id, text }) = &mut self.open {
                text.push_str(&chunk.content);
                let e = json!({"type": "response.output_text.delta", "item_id": id, "output_index": index,
                               "content_index": 0, "delta": chunk.content, "logprobs": []});
                self.push(&mut out, e);
            }
        }
        for d in &chunk.tool_calls {
            let pos = match self.calls.iter().position(|c| c.delta_index == d.index) {
                Some(pos) => pos,
                None => {
                    self.close_open(&mut out);
                    let call = Call {
                        delta_index: d.index,
                        output_index: self.output.len(),
                        id: new_id("fc"),
                        call_id: d.id.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| new_id("call")),
                        name: d.name.clone().unwrap_or_default(),
                        arguments: String::new(),
                    };
                    self.output.push(Value::Null);
                    let item = call_item(&call.id, &call.call_id, &call.name, "", "in_progress");
                    let e =
                        json!({"type": "response.output_item.added", "output_index": call.output_index, "item": item});
                    self.push(&mut out, e);
                    self.calls.push(call);
                    self.calls.len() - 1
                }
            };
            if d.arguments.is_empty() {
                continue;
            }
            let call = &mut self.calls[pos];
            call.arguments.push_str(&d.arguments);
            let e = json!({"type": "response.function_call_arguments.delta", "item_id": call.id,
                           "output_index": call.output_index, "delta": d.arguments});
            self.push(&mut out, e);
        }
        if chunk.is_final {
            self.close_open(&mut out);
            self.close_calls(&mut out);
            // Reasoning items the backend named only at the end (ids, summaries, encrypted
            // content): the final response has them in place of the items streamed as text
            // (keeping that text); any more become items of their own.
            for (k, item) in chunk.reasoning_items.iter().enumerate() {
                if let Some(&index) = self.reasoning_indices.get(k) {
                    let mut merged = reasoning_item(item);
                    merged["content"] = self.output[index]["content"].clone();
                    self.output[index] = merged;
                    continue;
                }
                let index = self.output.len();
                let item = reasoning_item(item);
                self.output.push(item.clone());
                self.push(&mut out, json!({"type": "response.output_item.added", "output_index": index, "item": item}));
                self.push(&mut out, json!({"type": "response.output_item.done", "output_index": index, "item": item}));
            }
            let (status, incomplete) = status_of(chunk.finish_reason.as_ref());
            let r = self.snapshot(status, incomplete, Some(&chunk.usage.unwrap_or_else(|| Usage::new(0, 0))));
            let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
            self.push(&mut out, json!({"type": kind, "response": r}));
        }
        out
    }

    /// `response.failed` for an error after the stream began.
    pub(crate) fn failed(&mut self, e: &ApiError) -> Vec<Value> {
        let mut out = self.start();
        let mut r = self.snapshot("failed", Value::Null, None);
        r["error"] = failure(e);
        self.push(&mut out, json!({"type": "response.failed", "response": r}));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mamba_backends::{stream::ToolCallDelta, ToolCall};

    #[test]
    fn a_whole_response() {
        let r = ModelResponse::new("Paris.").with_usage(Usage::new(3, 2)).with_reasoning("hmm");
        let v = response_object(&r, "resp_1", "m", 7, &Echo::default());
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["output"][0]["type"], "reasoning");
        assert_eq!(v["output"][0]["content"][0]["text"], "hmm");
        assert_eq!(
            v["output"][1]["content"][0],
            json!({"type": "output_text", "text": "Paris.", "annotations": [], "logprobs": []})
        );
        assert_eq!(v["usage"]["total_tokens"], 5);
        let r = ModelResponse::new("")
            .with_tool_calls(vec![ToolCall::new("c1", "f", "{}")])
            .with_finish_reason(FinishReason::Length);
        let v = response_object(&r, "resp_1", "m", 7, &Echo::default());
        assert_eq!(v["output"].as_array().unwrap().len(), 1);
        assert_eq!(v["output"][0]["call_id"], "c1");
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn stream_events_in_order() {
        let mut w = ResponsesWriter::new("m".into(), Echo::default());
        let mut all = w.start();
        all.extend(w.events(&StreamChunk::reasoning_text("think")));
        all.extend(w.events(&StreamChunk::text("Hel")));
        all.extend(w.events(&StreamChunk::text("lo")));
        all.extend(
            w.events(&StreamChunk::tool_call_deltas(vec![ToolCallDelta::new(0, "{\"a\"").with_id("c").with_name("f")])),
        );
        all.extend(w.events(&StreamChunk::tool_call_deltas(vec![ToolCallDelta::new(0, ":1}")])));
        all.extend(w.events(&StreamChunk::final_chunk(Some(FinishReason::ToolCalls), Some(Usage::new(4, 5)))));
        assert_eq!(
            types(&all),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e["sequence_number"], i);
        }
        let done = &all.last().unwrap()["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][2]["arguments"], "{\"a\":1}");
        assert_eq!(done["output"][2]["call_id"], "c");
        assert_eq!(done["usage"]["output_tokens"], 5);
        let text_done = all.iter().find(|e| e["type"] == "response.output_text.done").unwrap();
        assert_eq!(text_done["text"], "Hello");
    }

    #[test]
    fn cut_short_and_failed() {
        let mut w = ResponsesWriter::new("m".into(), Echo::default());
        let events = w.events(&StreamChunk::final_chunk(Some(FinishReason::Length), None));
        assert_eq!(types(&events).last(), Some(&"response.incomplete"));
        let mut w = ResponsesWriter::new("m".into(), Echo::default());
        let _ = w.events(&StreamChunk::text("a"));
        let e = ApiError::new(503, "server_error", "down");
        let events = w.failed(&e);
        assert_eq!(events[0]["type"], "response.failed");
        assert_eq!(events[0]["response"]["error"], json!({"code": "server_error", "message": "down"}));
    }
}
