//! The per-request cost of the proxy lookup (settings read from the environment once, at
//! client build): no proxy set (the common case), a proxy with a `NO_PROXY` list that
//! matches the host (direct), and one that does not (through the proxy).

use criterion::{black_box, Criterion};
use mamba_backends::bench_api::ProxyLookup;

pub fn define(c: &mut Criterion) {
    let mut g = c.benchmark_group("proxy_lookup");
    let none = ProxyLookup::from_vars(&[]);
    g.bench_function("no_proxy_set", |b| b.iter(|| none.goes_through_proxy(black_box(false), black_box("127.0.0.1"))));
    let corp = ProxyLookup::from_vars(&[
        ("HTTPS_PROXY", "http://user:pw@proxy.corp.example:3128"),
        ("HTTP_PROXY", "http://proxy.corp.example:3128"),
        ("NO_PROXY", "localhost,127.0.0.0/8,::1,.internal.example,10.0.0.0/8,gpu-box"),
    ]);
    g.bench_function("no_proxy_matches_domain", |b| {
        b.iter(|| corp.goes_through_proxy(black_box(true), black_box("vllm.internal.example")))
    });
    g.bench_function("no_proxy_matches_ip", |b| {
        b.iter(|| corp.goes_through_proxy(black_box(false), black_box("127.0.0.1")))
    });
    g.bench_function("through_proxy", |b| {
        b.iter(|| corp.goes_through_proxy(black_box(true), black_box("api.openai.com")))
    });
    g.finish();
}
