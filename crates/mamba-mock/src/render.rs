//! Turning a [`Reply`] into the bytes of an OpenAI-compatible answer.

use serde_json::{json, Map, Value};

use crate::script::Reply;

/// What the server read from a chat request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChatRequest {
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) last_role: String,
    pub(crate) last_text: String,
    pub(crate) last_user_text: String,
    pub(crate) prompt_words: u64,
    /// A legacy text-completions request (`prompt`, answered with `text` choices).
    pub(crate) text_completion: bool,
    /// `chat`, `responses`, `completions` or `embeddings`.
    pub(crate) api: &'static str,
    /// Responses API: `include` asks for `reasoning.encrypted_content`.
    pub(crate) encrypted_reasoning: bool,
}

impl ChatRequest {
    pub(crate) fn parse(body: &Value) -> Result<ChatRequest, String> {
        let Some(object) = body.as_object() else { return Err("the body must be a JSON object".into()) };
        let messages = match object.get("messages") {
            Some(Value::Array(messages)) => messages,
            Some(_) => return Err("'messages' must be an array".into()),
            None => return Err("'messages' is required".into()),
        };
        let text_of = |m: &Value| -> String {
            match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
                }
                _ => String::new(),
            }
        };
        let last = messages.last();
        let last_user = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
        Ok(ChatRequest {
            model: object.get("model").and_then(Value::as_str).unwrap_or("mock-model").to_owned(),
            stream: object.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: object
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            last_role: last.and_then(|m| m.get("role")).and_then(Value::as_str).unwrap_or("").to_owned(),
            last_text: last.map(text_of).unwrap_or_default(),
            last_user_text: last_user.map(text_of).unwrap_or_default(),
            prompt_words: messages.iter().map(|m| words(&text_of(m))).sum::<u64>() + 3 * messages.len() as u64,
            text_completion: false,
            api: "chat",
            encrypted_reasoning: false,
        })
    }

    /// A Responses API request (`input` as a string or items, `instructions`) read as the
    /// same conversation: `function_call_output` items count as `tool` messages.
    pub(crate) fn parse_responses(body: &Value) -> Result<ChatRequest, String> {
        let Some(object) = body.as_object() else { return Err("the body must be a JSON object".into()) };
        let text_of = |content: Option<&Value>| -> String {
            match content {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
                }
                _ => String::new(),
            }
        };
        // (role, text) of every item that is a message or a tool result.
        let items: Vec<(String, String)> = match object.get("input") {
            Some(Value::String(text)) => vec![("user".to_owned(), text.clone())],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| match item.get("type").and_then(Value::as_str).unwrap_or("message") {
                    "message" => Some((
                        item.get("role").and_then(Value::as_str).unwrap_or("user").to_owned(),
                        text_of(item.get("content")),
                    )),
                    "function_call_output" => Some(("tool".to_owned(), text_of(item.get("output")))),
                    "function_call" => Some(("assistant".to_owned(), String::new())),
                    _ => None,
                })
                .collect(),
            Some(_) => return Err("'input' must be a string or an array".into()),
            None if object.contains_key("previous_response_id") => Vec::new(),
            None => return Err("'input' is required".into()),
        };
        let instructions = object.get("instructions").and_then(Value::as_str).unwrap_or("");
        let last = items.last();
        let last_user = items.iter().rev().find(|(role, _)| role == "user");
        Ok(ChatRequest {
            model: object.get("model").and_then(Value::as_str).unwrap_or("mock-model").to_owned(),
            stream: object.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: true,
            last_role: last.map(|(r, _)| r.clone()).unwrap_or_default(),
            last_text: last.map(|(_, t)| t.clone()).unwrap_or_default(),
            last_user_text: last_user.map(|(_, t)| t.clone()).unwrap_or_default(),
            prompt_words: words(instructions)
                + items.iter().map(|(_, t)| words(t)).sum::<u64>()
                + 3 * items.len() as u64,
            text_completion: false,
            api: "responses",
            encrypted_reasoning: object
                .get("include")
                .and_then(Value::as_array)
                .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content")),
        })
    }

    /// Reads a legacy text-completions request: `prompt` a string or an array of strings.
    pub(crate) fn parse_text(body: &Value) -> Result<ChatRequest, String> {
        let Some(object) = body.as_object() else { return Err("the body must be a JSON object".into()) };
        let prompt = match object.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
            Some(_) => return Err("'prompt' must be a string or an array of strings".into()),
            None => return Err("'prompt' is required".into()),
        };
        let mut request = ChatRequest::parse(&json!({"messages": []}))?;
        request.model = object.get("model").and_then(Value::as_str).unwrap_or("mock-model").to_owned();
        request.stream = object.get("stream").and_then(Value::as_bool).unwrap_or(false);
        request.include_usage =
            object.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
        request.last_role = "user".into();
        request.prompt_words = words(&prompt);
        request.last_text.clone_from(&prompt);
        request.last_user_text = prompt;
        request.text_completion = true;
        request.api = "completions";
        Ok(request)
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The content of an answer, whatever its framing.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) text: String,
    pub(crate) reasoning: Option<String>,
    pub(crate) reasoning_field: String,
    pub(crate) tool_calls: Vec<(String, String, String)>,
    pub(crate) finish_reason: String,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    /// Written as a legacy text completion.
    pub(crate) text_completion: bool,
}

impl Answer {
    pub(crate) fn new(reply: &Reply, request: &ChatRequest, id: u64) -> Answer {
        let tool_calls: Vec<(String, String, String)> = reply
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let arguments = match &c.arguments {
                    Value::String(s) => s.clone(),
                    Value::Null => "{}".to_owned(),
                    other => other.to_string(),
                };
                (c.id.clone().unwrap_or_else(|| format!("call_{}", i + 1)), c.name.clone(), arguments)
            })
            .collect();
        let text = match &reply.text {
            Some(text) => text.clone(),
            None if !tool_calls.is_empty() => String::new(),
            None if request.last_user_text.is_empty() => "Hello from mamba-mock!".to_owned(),
            None => request.last_user_text.clone(),
        };
        let finish_reason = reply.finish_reason.clone().unwrap_or_else(|| {
            if tool_calls.is_empty() {
                "stop".into()
            } else {
                "tool_calls".into()
            }
        });
        let completion = words(&text) + words(reply.reasoning.as_deref().unwrap_or("")) + 8 * tool_calls.len() as u64;
        Answer {
            id: format!("chatcmpl-mock-{id}"),
            model: reply.model.clone().unwrap_or_else(|| request.model.clone()),
            reasoning: reply.reasoning.clone(),
            reasoning_field: reply.reasoning_field.clone().unwrap_or_else(|| "reasoning_content".into()),
            finish_reason,
            prompt_tokens: reply.usage.map_or(request.prompt_words, |u| u.prompt_tokens),
            completion_tokens: reply.usage.map_or(completion.max(1), |u| u.completion_tokens),
            text,
            tool_calls,
            text_completion: request.text_completion,
        }
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    /// The non-streaming body.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        if self.text_completion {
            let body = json!({
                "id": self.id.replace("chatcmpl", "cmpl"),
                "object": "text_completion",
                "created": 0,
                "model": self.model,
                "choices": [{"index": 0, "text": self.text, "logprobs": null, "finish_reason": self.finish_reason}],
                "usage": self.usage(),
            });
            return serde_json::to_vec(&body).unwrap_or_default();
        }
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert(
            "content".into(),
            if self.text.is_empty() && !self.tool_calls.is_empty() { Value::Null } else { json!(self.text) },
        );
        if let Some(reasoning) = &self.reasoning {
            message.insert(self.reasoning_field.clone(), json!(reasoning));
        }
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.finish_reason}],
            "usage": self.usage(),
            "system_fingerprint": "fp_mamba_mock",
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        if self.text_completion {
            // A text completion's event carries the delta's text (the role-only and
            // tool-call deltas become empty text).
            let text = delta.get("content").and_then(Value::as_str).unwrap_or("");
            let body = json!({
                "id": self.id.replace("chatcmpl", "cmpl"),
                "object": "text_completion",
                "created": 0,
                "model": self.model,
                "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason}],
            });
            return body.to_string();
        }
        let body = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        body.to_string()
    }

    /// The payloads of the stream's events, `[DONE]` included, faults applied.
    pub(crate) fn events(&self, reply: &Reply, include_usage: bool) -> Vec<String> {
        let mut events = vec![self.chunk(json!({"role": "assistant", "content": ""}), None)];
        if let Some(reasoning) = &self.reasoning {
            for piece in pieces(reasoning, reply.chunk_chars) {
                events.push(self.chunk(json!({ self.reasoning_field.as_str(): piece }), None));
            }
        }
        for piece in pieces(&self.text, reply.chunk_chars) {
            events.push(self.chunk(json!({ "content": piece }), None));
        }
        for (index, (id, name, args)) in self.tool_calls.iter().enumerate() {
            events.push(self.chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
            for piece in pieces(args, Some(reply.chunk_chars.unwrap_or(12))) {
                events.push(
                    self.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), None),
                );
            }
        }
        events.push(self.chunk(json!({}), Some(&self.finish_reason)));
        if include_usage {
            let object = if self.text_completion { "text_completion" } else { "chat.completion.chunk" };
            let usage = json!({
                "id": self.id, "object": object, "created": 0, "model": self.model,
                "choices": [], "usage": self.usage(),
            });
            events.push(usage.to_string());
        }
        if let Some(n) = reply.malformed_frame_at {
            if n < events.len() {
                events[n] = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"this frame is cut".to_owned();
            }
        }
        if let Some(n) = reply.error_frame_at {
            events.truncate(n);
            let payload = reply
                .error_frame
                .clone()
                .unwrap_or_else(|| json!({"error": {"message": "mock error mid-stream", "type": "server_error"}}));
            events.push(payload.to_string());
        }
        if !reply.no_done {
            events.push("[DONE]".to_owned());
        }
        events
    }
}

/// The Responses API shapes of an answer.
impl Answer {
    fn response_id(&self) -> String {
        self.id.replacen("chatcmpl-", "resp_", 1)
    }

    fn response_usage(&self) -> Value {
        json!({
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning.as_deref().map_or(0, words)},
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    fn reasoning_item(&self, encrypted: bool) -> Option<Value> {
        let reasoning = self.reasoning.as_ref()?;
        let mut item = json!({
            "id": format!("rs_{}", self.response_id()),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": reasoning}],
        });
        if encrypted {
            // Not encryption: a marker the tests can find in the next request.
            item["encrypted_content"] = json!(format!("enc:{}", reasoning.len()));
        }
        Some(item)
    }

    fn message_item(&self) -> Value {
        json!({
            "id": format!("msg_{}", self.response_id()),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": self.text, "annotations": []}],
        })
    }

    fn call_item(&self, index: usize) -> Value {
        let (id, name, args) = &self.tool_calls[index];
        json!({"id": format!("fc_{index}_{}", self.response_id()), "type": "function_call", "status": "completed",
               "call_id": id, "name": name, "arguments": args})
    }

    /// `status` and `incomplete_details` for the finish reason.
    fn status(&self) -> (&'static str, Value) {
        match self.finish_reason.as_str() {
            "length" => ("incomplete", json!({"reason": "max_output_tokens"})),
            "content_filter" => ("incomplete", json!({"reason": "content_filter"})),
            _ => ("completed", Value::Null),
        }
    }

    fn output(&self, encrypted: bool) -> Vec<Value> {
        let mut output: Vec<Value> = self.reasoning_item(encrypted).into_iter().collect();
        if !self.text.is_empty() || self.tool_calls.is_empty() {
            output.push(self.message_item());
        }
        output.extend((0..self.tool_calls.len()).map(|i| self.call_item(i)));
        output
    }

    fn response_object(&self, status: &str, incomplete: Value, output: Vec<Value>, usage: Value) -> Value {
        json!({
            "id": self.response_id(),
            "object": "response",
            "created_at": 0,
            "status": status,
            "incomplete_details": incomplete,
            "error": null,
            "model": self.model,
            "output": output,
            "usage": usage,
            "store": false,
        })
    }

    /// The non-streaming body of `POST /responses`.
    pub(crate) fn to_response_json(&self, request: &ChatRequest) -> Vec<u8> {
        let (status, incomplete) = self.status();
        let body =
            self.response_object(status, incomplete, self.output(request.encrypted_reasoning), self.response_usage());
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The typed events of a Responses stream as (event name, data), faults applied:
    /// `error_frame_at` ends in an `error` event, `no_done` leaves out `response.completed`.
    pub(crate) fn response_events(&self, reply: &Reply, request: &ChatRequest) -> Vec<(String, String)> {
        let mut events: Vec<Value> = Vec::new();
        let created = self.response_object("in_progress", Value::Null, Vec::new(), Value::Null);
        events.push(json!({"type": "response.created", "response": created}));
        let mut index = 0;
        if let Some(item) = self.reasoning_item(request.encrypted_reasoning) {
            let id = item["id"].clone();
            events.push(json!({"type": "response.output_item.added", "output_index": index,
                               "item": {"id": id, "type": "reasoning", "summary": []}}));
            for piece in pieces(self.reasoning.as_deref().unwrap_or(""), reply.chunk_chars) {
                events.push(json!({"type": "response.reasoning_summary_text.delta", "item_id": id,
                                   "output_index": index, "summary_index": 0, "delta": piece}));
            }
            events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
            index += 1;
        }
        if !self.text.is_empty() || self.tool_calls.is_empty() {
            let item = self.message_item();
            let id = item["id"].clone();
            events.push(json!({"type": "response.output_item.added", "output_index": index,
                               "item": {"id": id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}}));
            for piece in pieces(&self.text, reply.chunk_chars) {
                events.push(json!({"type": "response.output_text.delta", "item_id": id, "output_index": index,
                                   "content_index": 0, "delta": piece, "logprobs": []}));
            }
            events.push(json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
                               "content_index": 0, "text": self.text}));
            events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
            index += 1;
        }
        for call in 0..self.tool_calls.len() {
            let item = self.call_item(call);
            let id = item["id"].clone();
            let mut added = item.clone();
            added["arguments"] = json!("");
            added["status"] = json!("in_progress");
            events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
            for piece in pieces(&self.tool_calls[call].2, Some(reply.chunk_chars.unwrap_or(12))) {
                events.push(json!({"type": "response.function_call_arguments.delta", "item_id": id,
                                   "output_index": index, "delta": piece}));
            }
            events.push(json!({"type": "response.function_call_arguments.done", "item_id": id,
                               "output_index": index, "arguments": self.tool_calls[call].2}));
            events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
            index += 1;
        }
        let (status, incomplete) = self.status();
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        let done =
            self.response_object(status, incomplete, self.output(request.encrypted_reasoning), self.response_usage());
        if !reply.no_done {
            events.push(json!({"type": kind, "response": done}));
        }
        let mut out: Vec<(String, String)> = events
            .into_iter()
            .enumerate()
            .map(|(n, mut e)| {
                e["sequence_number"] = json!(n);
                (e["type"].as_str().unwrap_or("").to_owned(), e.to_string())
            })
            .collect();
        if let Some(n) = reply.malformed_frame_at {
            if n < out.len() {
                out[n].1 = "{\"type\":\"response.output_text.delta\",\"delta\":\"this frame is cut".to_owned();
            }
        }
        if let Some(n) = reply.error_frame_at {
            out.truncate(n);
            let payload = reply.error_frame.clone().unwrap_or_else(
                || json!({"type": "error", "code": "server_error", "message": "mock error mid-stream", "param": null}),
            );
            out.push(("error".to_owned(), payload.to_string()));
        }
        out
    }
}

/// Splits text word by word (spaces kept with the following word), or every `n` characters.
fn pieces(text: &str, chars: Option<usize>) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    match chars {
        Some(n) => {
            let all: Vec<char> = text.chars().collect();
            all.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
        }
        None => {
            let mut out = Vec::new();
            let mut current = String::new();
            for (i, word) in text.split(' ').enumerate() {
                if i > 0 {
                    out.push(std::mem::take(&mut current));
                    current.push(' ');
                }
                current.push_str(word);
            }
            out.push(current);
            out.retain(|p| !p.is_empty());
            out
        }
    }
}

/// The OpenAI error type a status stands for.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        503 => "unavailable_error",
        _ => "server_error",
    }
}

pub(crate) fn error_body(status: u16, message: &str) -> Vec<u8> {
    json!({"error": {"message": message, "type": error_type(status), "param": null, "code": null}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_keep_spaces() {
        assert_eq!(pieces("Hello big world", None), vec!["Hello", " big", " world"]);
        assert_eq!(pieces("a  b", None), vec!["a", " ", " b"]);
        assert_eq!(pieces("héllo", Some(2)), vec!["hé", "ll", "o"]);
        assert!(pieces("", None).is_empty());
        assert_eq!(pieces("Hello big world", None).concat(), "Hello big world");
    }

    #[test]
    fn echo_and_tool_answers() {
        let req = ChatRequest::parse(&json!({"model":"m","messages":[{"role":"user","content":"ping me"}]})).unwrap();
        let a = Answer::new(&Reply::default(), &req, 1);
        assert_eq!((a.text.as_str(), a.finish_reason.as_str()), ("ping me", "stop"));
        let a = Answer::new(&Reply::tool_call("f", json!({"x": 1})), &req, 2);
        assert_eq!(a.text, "");
        assert_eq!(a.tool_calls, vec![("call_1".to_owned(), "f".to_owned(), "{\"x\":1}".to_owned())]);
        let body: Value = serde_json::from_slice(&a.to_json()).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn stream_events_and_faults() {
        let req = ChatRequest::parse(&json!({"messages":[{"role":"user","content":"a b"}],"stream":true})).unwrap();
        let reply = Reply::default();
        let a = Answer::new(&reply, &req, 1);
        let events = a.events(&reply, true);
        // role, "a", " b", finish, usage, [DONE]
        assert_eq!(events.len(), 6);
        assert_eq!(events.last().unwrap(), "[DONE]");
        let events = a.events(&Reply::default().error_frame_at(2).no_done(), false);
        assert_eq!(events.len(), 3);
        assert!(events[2].contains("mock error mid-stream"));
        let events = a.events(&Reply::default().malformed_frame_at(1), false);
        assert!(serde_json::from_str::<Value>(&events[1]).is_err());
    }

    #[test]
    fn bad_requests() {
        assert!(ChatRequest::parse(&json!([])).is_err());
        assert!(ChatRequest::parse(&json!({})).is_err());
        assert!(ChatRequest::parse(&json!({"messages": "x"})).is_err());
        let r = ChatRequest::parse(
            &json!({"messages": [{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url"}]}]}),
        )
        .unwrap();
        assert_eq!(r.last_user_text, "hi");
    }
}
