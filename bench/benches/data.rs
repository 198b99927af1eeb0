//! Realistic payloads: the harness's answer and stream shapes, an OpenAI tool-call stream.

use serde_json::json;

/// The non-streaming answer of the harness's mock server (about 1.1 KB, 600 characters of
/// content, usage with details).
pub fn completion() -> Vec<u8> {
    let content = "Rust's ownership model ensures memory safety without a garbage collector: every value has a single owner, and when the owner goes out of scope the value is dropped. Ownership can be moved to another variable, after which the original can no longer be used, or borrowed through references. The borrow checker enforces that at any time there is either one mutable reference or any number of immutable references, and that references never outlive the data they point to. Together these rules prevent data races, dangling pointers and double frees at compile time, while keeping runtime costs as low as in C or C++.";
    serde_json::to_vec(&json!({
        "id": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz123",
        "object": "chat.completion",
        "created": 1_732_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 27, "completion_tokens": 120, "total_tokens": 147,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0123456789"
    }))
    .unwrap()
}

/// A text stream as the harness's mock (and OpenAI) sends it: a role chunk, one word per
/// chunk, a finish chunk, a usage trailer and `[DONE]`.
pub fn text_stream(words: usize) -> Vec<u8> {
    let mut out = String::new();
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz123", "object": "chat.completion.chunk", "created": 1_732_000_000,
               "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0123456789",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null})
    };
    out.push_str(&format!("data: {}\n\n", chunk(json!({"role": "assistant", "content": ""}), None)));
    for i in 0..words {
        out.push_str(&format!("data: {}\n\n", chunk(json!({"content": format!(" word{i}")}), None)));
    }
    out.push_str(&format!("data: {}\n\n", chunk(json!({}), Some("stop"))));
    out.push_str("data: {\"id\":\"chatcmpl-AbC\",\"object\":\"chat.completion.chunk\",\"created\":1732000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":27,\"completion_tokens\":120,\"total_tokens\":147}}\n\n");
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// The same text as [`text_stream`] in the Responses API's events, as OpenAI sends them
/// (`event:` lines, item ids, sequence numbers, empty logprobs), ending in `response.completed`
/// with usage.
pub fn responses_text_stream(words: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut seq = 0;
    let mut event = |out: &mut String, name: &str, mut data: serde_json::Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    let id = "resp_68c1f0a0b2c481a0b7f1f3d2c5e6a7b80a1b2c3d4e5f6a7b";
    let item = "msg_68c1f0a1c2d381a0a1b2c3d4e5f6a7b80a1b2c3d4e5f6a7b";
    let response = |status: &str, output: serde_json::Value, usage: serde_json::Value| {
        json!({"id": id, "object": "response", "created_at": 1_732_000_000, "status": status, "model": "gpt-4o-mini-2024-07-18",
               "output": output, "usage": usage, "store": false, "error": null, "incomplete_details": null})
    };
    event(&mut out, "response.created", json!({"response": response("in_progress", json!([]), json!(null))}));
    event(&mut out, "response.in_progress", json!({"response": response("in_progress", json!([]), json!(null))}));
    event(
        &mut out,
        "response.output_item.added",
        json!({"output_index": 0, "item": {"id": item, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}}),
    );
    event(
        &mut out,
        "response.content_part.added",
        json!({"item_id": item, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}),
    );
    let mut text = String::new();
    for i in 0..words {
        let delta = format!(" word{i}");
        text.push_str(&delta);
        event(
            &mut out,
            "response.output_text.delta",
            json!({"item_id": item, "output_index": 0, "content_index": 0, "delta": delta, "logprobs": []}),
        );
    }
    event(
        &mut out,
        "response.output_text.done",
        json!({"item_id": item, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
    );
    let message = json!({"id": item, "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]});
    event(&mut out, "response.output_item.done", json!({"output_index": 0, "item": message}));
    let usage = json!({"input_tokens": 27, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 120, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 147});
    event(&mut out, "response.completed", json!({"response": response("completed", json!([message]), usage)}));
    out.into_bytes()
}

/// An OpenAI-style tool-call stream: the call's id and name first, then its arguments in
/// `pieces` fragments split mid-token; two calls in parallel.
pub fn tool_stream(pieces: usize) -> Vec<u8> {
    let mut out = String::new();
    let args = format!("{{\"query\": \"{}\", \"limit\": 10}}", "rust ownership and borrowing ".repeat(8));
    let chunk = |calls: serde_json::Value| {
        json!({"id": "chatcmpl-T", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "delta": {"tool_calls": calls}, "logprobs": null, "finish_reason": null}], "usage": null})
    };
    out.push_str("data: {\"id\":\"chatcmpl-T\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null}]}\n\n");
    for index in 0..2 {
        out.push_str(&format!(
            "data: {}\n\n",
            chunk(json!([{"index": index, "id": format!("call_{index}AbCdEfGhIjKlMnOpQrSt"), "type": "function", "function": {"name": "search_docs", "arguments": ""}}]))
        ));
    }
    let size = args.len().div_ceil(pieces);
    for piece in args.as_bytes().chunks(size) {
        let piece = std::str::from_utf8(piece).unwrap();
        for index in 0..2 {
            out.push_str(&format!("data: {}\n\n", chunk(json!([{"index": index, "function": {"arguments": piece}}]))));
        }
    }
    out.push_str("data: {\"id\":\"chatcmpl-T\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n");
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}
