//! Parsing whole (non-streaming) answers.

use bytes::Bytes;
use criterion::{black_box, Criterion, Throughput};
use mamba_backends::bench_api::parse_response;

use crate::data;

pub fn define(c: &mut Criterion) {
    let mut g = c.benchmark_group("response");
    let body = Bytes::from(data::completion());
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("completion", |b| b.iter(|| parse_response(black_box(body.clone())).unwrap()));
    g.bench_function("completion_value_baseline", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap())
    });
    let tool = Bytes::from_static(br#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_7kE4IjtnwXcGbX6hDM7xFu8T","type":"function","function":{"name":"weather","arguments":"{\"location\":\"Florence, Italy\",\"unit\":\"celsius\"}"}}],"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":56,"completion_tokens":16,"total_tokens":72}}"#);
    g.throughput(Throughput::Bytes(tool.len() as u64));
    g.bench_function("tool_call", |b| b.iter(|| parse_response(black_box(tool.clone())).unwrap()));
    g.finish();
}
