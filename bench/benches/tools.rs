//! Tool-call assembly: two parallel calls streamed in fragments, through the pipeline and the
//! accumulator, as `collect` does it.

use criterion::{black_box, Criterion, Throughput};
use mamba_backends::bench_api::decode_stream;
use mamba_backends::StreamAccumulator;

use crate::data;

pub fn define(c: &mut Criterion) {
    let mut g = c.benchmark_group("tools");
    for pieces in [10, 200] {
        let stream = data::tool_stream(pieces);
        g.throughput(Throughput::Elements((2 * pieces) as u64));
        g.bench_function(format!("assemble_two_calls/{pieces}_fragments_each"), |b| {
            b.iter(|| {
                let mut acc = StreamAccumulator::new();
                decode_stream(black_box(&stream), 16 * 1024, |chunk| acc.push(chunk)).unwrap();
                let answer = acc.finish();
                assert_eq!(answer.tool_calls.len(), 2);
                answer
            })
        });
    }
    g.finish();
}
