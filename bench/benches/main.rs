//! Criterion benchmarks of the pure parts of mamba-backends: request building, response
//! parsing, the SSE decoder, tool-call assembly, and the proxy lookup of each request. Each area is one module with a `define`.
//! Run with `cargo bench -p mamba-bench` (or `-- sse` for one area).

use criterion::{criterion_group, criterion_main, Criterion};

mod data;
mod proxy;
mod request;
mod response;
mod sse;
mod tools;

fn all(c: &mut Criterion) {
    proxy::define(c);
    request::define(c);
    response::define(c);
    sse::define(c);
    tools::define(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
