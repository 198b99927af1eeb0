//! Writing the Chat Completions API's answers in OpenAI's wire shapes: `chat.completion`,
//! `chat.completion.chunk` events, and the plain answers beside them (the models list,
//! embeddings). The Responses API's answers are in `responses_answer.rs`. Pure: the library's
//! types in, JSON out. Strict: only the values the OpenAI spec allows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mamba_backends::{embeddings::Embeddings, FinishReason, ModelResponse, StreamChunk, Usage};
use serde_json::{json, Map, Value};

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A fresh `chatcmpl-…` id: the time and a counter, unique within the process.
pub(crate) fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("chatcmpl-{:x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

/// The spec's finish reasons; a server's abort or an unknown value reads as `stop`.
fn finish_reason(reason: Option<&FinishReason>) -> &'static str {
    match reason {
        Some(FinishReason::Length) => "length",
        Some(FinishReason::ToolCalls) => "tool_calls",
        Some(FinishReason::ContentFilter) => "content_filter",
        _ => "stop",
    }
}

fn usage_json(usage: &Usage) -> Value {
    let mut out = json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    });
    if let Some(reasoning) = usage.reasoning_tokens {
        out["completion_tokens_details"] = json!({"reasoning_tokens": reasoning});
    }
    if let Some(cached) = usage.cached_input_tokens {
        out["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    out
}

/// A whole answer as a `chat.completion` object.
pub(crate) fn completion(response: &ModelResponse, id: &str, model: &str, created: u64) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if response.content.is_empty() && response.has_tool_calls() {
        Value::Null
    } else {
        Value::String(response.content.clone())
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if let Some(reasoning) = response.reasoning.as_ref().filter(|r| !r.is_empty()) {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    if response.has_tool_calls() {
        let calls: Vec<Value> = response
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let reason = if response.has_tool_calls() { "tool_calls" } else { finish_reason(response.finish_reason.as_ref()) };
    let mut out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": response.model.as_deref().unwrap_or(model),
        "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": null}],
    });
    if let Some(usage) = &response.usage {
        out["usage"] = usage_json(usage);
    }
    out
}

/// Turns a backend's chunks into `chat.completion.chunk` events, keeping what must be the
/// same across one stream (id, created, model) and what only the first event carries (the
/// role).
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    role_sent: bool,
    /// Per tool-call index: whether its id and its name went out. Some upstreams repeat them
    /// on every piece; clients that concatenate pieces (as OpenAI's never repeat them) would
    /// read `get_weatherget_weather`, so each goes out once.
    announced: Vec<(bool, bool)>,
}

impl ChunkWriter {
    pub(crate) fn new(id: String, model: String, include_usage: bool) -> ChunkWriter {
        ChunkWriter { id, model, created: now_secs(), include_usage, role_sent: false, announced: Vec::new() }
    }

    fn event(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut out = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            out["usage"] = usage;
        }
        out
    }

    /// The `data:` payloads for one chunk of the backend (none, one, or, for the final
    /// chunk, the finish event and the usage event).
    pub(crate) fn events(&mut self, chunk: &StreamChunk) -> Vec<Value> {
        if let Some(model) = chunk.model.as_ref().filter(|m| !m.is_empty()) {
            if !self.role_sent {
                self.model.clone_from(model);
            }
        }
        let mut out = Vec::with_capacity(2);
        if !chunk.is_empty() || (!self.role_sent && !chunk.is_final) {
            let mut delta = Map::new();
            if !self.role_sent {
                delta.insert("role".into(), json!("assistant"));
                self.role_sent = true;
            }
            if !chunk.content.is_empty() || chunk.tool_calls.is_empty() && chunk.reasoning.is_empty() {
                delta.insert("content".into(), json!(chunk.content));
            }
            if !chunk.reasoning.is_empty() {
                delta.insert("reasoning_content".into(), json!(chunk.reasoning));
            }
            if !chunk.tool_calls.is_empty() {
                let mut calls = Vec::with_capacity(chunk.tool_calls.len());
                for d in &chunk.tool_calls {
                    if self.announced.len() <= d.index {
                        self.announced.resize(d.index + 1, (false, false));
                    }
                    let (id_sent, name_sent) = &mut self.announced[d.index];
                    let mut call = Map::new();
                    call.insert("index".into(), json!(d.index));
                    if let Some(id) = d.id.as_ref().filter(|_| !*id_sent) {
                        call.insert("id".into(), json!(id));
                        call.insert("type".into(), json!("function"));
                        *id_sent = true;
                    }
                    let mut function = Map::new();
                    if let Some(name) = d.name.as_ref().filter(|_| !*name_sent) {
                        function.insert("name".into(), json!(name));
                        *name_sent = true;
                    }
                    function.insert("arguments".into(), json!(d.arguments));
                    call.insert("function".into(), Value::Object(function));
                    calls.push(Value::Object(call));
                }
                delta.insert("tool_calls".into(), Value::Array(calls));
            }
            out.push(self.event(json!([{"index": 0, "delta": delta, "finish_reason": null, "logprobs": null}]), None));
        }
        if chunk.is_final {
            let reason = finish_reason(chunk.finish_reason.as_ref());
            let mut delta = Map::new();
            if !self.role_sent {
                delta.insert("role".into(), json!("assistant"));
                self.role_sent = true;
            }
            out.push(
                self.event(json!([{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": null}]), None),
            );
            if self.include_usage {
                let usage = chunk.usage.as_ref().map_or_else(|| usage_json(&Usage::new(0, 0)), usage_json);
                out.push(self.event(json!([]), Some(usage)));
            }
        }
        out
    }
}

/// The `/v1/models` list.
pub(crate) fn models(ids: &[String], created: u64) -> Value {
    let data: Vec<Value> =
        ids.iter().map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "mamba"})).collect();
    json!({"object": "list", "data": data})
}

/// An embeddings answer; vectors as numbers, or base64 of little-endian `f32`s when asked.
pub(crate) fn embeddings(result: &Embeddings, model: &str, base64: bool) -> Value {
    use base64::Engine as _;
    let data: Vec<Value> = result
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let usage = result.usage.unwrap_or_default();
    json!({
        "object": "list",
        "data": data,
        "model": result.model.as_deref().unwrap_or(model),
        "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens.max(usage.total_tokens)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mamba_backends::{stream::ToolCallDelta, ToolCall};

    #[test]
    fn a_whole_answer() {
        let r = ModelResponse::new("Paris.").with_usage(Usage::new(3, 2)).with_finish_reason(FinishReason::Error);
        let v = completion(&r, "chatcmpl-1", "m", 7);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "m");
        assert_eq!(v["choices"][0]["message"]["content"], "Paris.");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 5);
        let r = ModelResponse::new("").with_tool_calls(vec![ToolCall::new("c", "f", "{}")]).with_reasoning("hmm");
        let v = completion(&r, "x", "m", 7);
        assert!(v["choices"][0]["message"]["content"].is_null());
        assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(v["choices"][0]["message"]["reasoning_content"], "hmm");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn stream_events() {
        let mut w = ChunkWriter::new("id".into(), "m".into(), true);
        let first = w.events(&StreamChunk::text("Hel").with_model("real-model"));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["choices"][0]["delta"], json!({"role": "assistant", "content": "Hel"}));
        assert_eq!(first[0]["model"], "real-model");
        let tool =
            w.events(&StreamChunk::tool_call_deltas(vec![ToolCallDelta::new(0, "{\"a\"").with_id("c").with_name("f")]));
        assert_eq!(tool[0]["choices"][0]["delta"]["tool_calls"][0]["type"], "function");
        assert!(tool[0]["choices"][0]["delta"].get("content").is_none());
        // An upstream that repeats the id and name on every piece: they go out once.
        let again =
            w.events(&StreamChunk::tool_call_deltas(vec![ToolCallDelta::new(0, ":1}").with_id("c").with_name("f")]));
        assert_eq!(
            again[0]["choices"][0]["delta"]["tool_calls"][0],
            json!({"index": 0, "function": {"arguments": ":1}"}})
        );
        assert!(w.events(&StreamChunk::text("")).is_empty());
        let last = w.events(&StreamChunk::final_chunk(Some(FinishReason::ToolCalls), Some(Usage::new(4, 5))));
        assert_eq!(last.len(), 2);
        assert_eq!(last[0]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(last[1]["choices"], json!([]));
        assert_eq!(last[1]["usage"]["completion_tokens"], 5);
        assert!(last.iter().all(|e| e["id"] == "id" && e["model"] == "real-model"));
    }

    #[test]
    fn embeddings_as_floats_and_base64() {
        let e = Embeddings::new(vec![vec![1.0, -2.0]]).with_usage(Usage::new(3, 0));
        let v = embeddings(&e, "e", false);
        assert_eq!(v["data"][0]["embedding"], json!([1.0, -2.0]));
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        let v = embeddings(&e, "e", true);
        assert_eq!(v["data"][0]["embedding"], "AACAPwAAAMA=");
    }
}
