//! Request building: messages and options to the JSON body.

use criterion::{black_box, Criterion, Throughput};
use mamba_backends::bench_api::request_body;
use mamba_backends::{Message, RequestOptions, ToolCall, ToolChoice, ToolDefinition};
use serde_json::json;

pub fn define(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    // The harness's conversation.
    let short = vec![
        Message::system("You are a helpful assistant that answers concisely."),
        Message::user("Explain Rust's ownership model in one paragraph."),
    ];
    let options = RequestOptions::new();
    g.throughput(Throughput::Elements(1));
    g.bench_function("short_conversation", |b| {
        b.iter(|| request_body(black_box("gpt-4o-mini"), black_box(&short), &options, false))
    });
    // The same with serde_json::Value, as the floor client builds it.
    let value = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are a helpful assistant that answers concisely."},
        {"role": "user", "content": "Explain Rust's ownership model in one paragraph."}]});
    g.bench_function("short_conversation_value_baseline", |b| {
        b.iter(|| serde_json::to_vec(black_box(&value)).unwrap())
    });

    // An agent's tool loop: 40 messages, 5 tools, options set.
    let tools: Vec<ToolDefinition> = (0..5)
        .map(|i| {
            ToolDefinition::function(
                format!("tool_{i}"),
                "Looks something up in the knowledge base and returns the matching passages.",
                json!({"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["query"]}),
            )
        })
        .collect();
    let mut history = vec![Message::system("You are an agent with tools.")];
    for i in 0..13 {
        history.push(Message::user(format!("Step {i}: find what the docs say about borrowing rule {i}.")));
        history.push(Message::assistant_with_tool_calls(
            "",
            vec![ToolCall::new(format!("call_{i}"), "tool_1", format!("{{\"query\":\"rule {i}\",\"limit\":3}}"))],
        ));
        history.push(Message::tool(
            format!("call_{i}"),
            "A reference must never outlive the value it borrows; the borrow checker proves it at compile time."
                .repeat(3),
        ));
    }
    let options = RequestOptions::new().tools(tools).tool_choice(ToolChoice::Auto).temperature(0.2).max_tokens(512);
    let size = request_body("gpt-4o", &history, &options, true).expect("the body is written").len();
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("tool_loop_40_messages", |b| {
        b.iter(|| request_body(black_box("gpt-4o"), black_box(&history), &options, true))
    });
    g.finish();
}
