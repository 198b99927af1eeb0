//! The SSE decoder alone, and the whole stream pipeline (SSE, chunk parsing, `<think>`
//! splitting), on a 1000-chunk text stream received in 16 KiB reads and in 300-byte reads.

use criterion::{black_box, Criterion, Throughput};
use mamba_backends::bench_api::{decode_responses_stream, decode_stream, sse_events};

use crate::data;

pub fn define(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse");
    let stream = data::text_stream(998);
    g.throughput(Throughput::Elements(1000));
    for piece in [16 * 1024, 300] {
        g.bench_function(format!("decoder_only/reads_of_{piece}"), |b| {
            b.iter(|| sse_events(black_box(&stream), piece))
        });
        g.bench_function(format!("pipeline/reads_of_{piece}"), |b| {
            b.iter(|| {
                decode_stream(black_box(&stream), piece, |c| {
                    black_box(c);
                })
                .unwrap()
            })
        });
    }
    // The harness's W3 shape (1000 chunks of text, one stream) over both APIs, in one run:
    // the same text as chat chunks and as Responses API events.
    let responses = data::responses_text_stream(998);
    g.bench_function("w3_chat/pipeline", |b| {
        b.iter(|| {
            decode_stream(black_box(&stream), 16 * 1024, |c| {
                black_box(c);
            })
            .unwrap()
        })
    });
    g.bench_function("w3_responses/pipeline", |b| {
        b.iter(|| {
            decode_responses_stream(black_box(&responses), 16 * 1024, |c| {
                black_box(c);
            })
            .unwrap()
        })
    });
    // What the floor client does: split lines, parse each data payload into a Value.
    g.bench_function("value_baseline/reads_of_16384", |b| {
        b.iter(|| {
            let mut n = 0;
            for line in black_box(&stream).split(|b| *b == b'\n') {
                if let Some(payload) = line.strip_prefix(b"data: ") {
                    if payload != b"[DONE]" {
                        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
                        n += usize::from(v["choices"].as_array().is_some_and(|c| !c.is_empty()));
                    }
                }
            }
            n
        })
    });
    g.finish();
}
