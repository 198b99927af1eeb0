//! `loadgen-driver`: the load generator's path (`mamba_loadtest::run`, what `mamba-llm bench`
//! runs after its warm-up), without the CLI, so that it can be counted under callgrind.
//!
//! ```text
//! loadgen-driver --base-url URL --requests N [--rate R] [--max-concurrency C]
//! ```
//!
//! Sends N requests of the `random` dataset (16 tokens in, 16 out, as `run.sh`) at R requests per second
//! (default: all at once) on a current-thread runtime, as `mamba-llm bench` does, after one
//! untimed request, and prints how many completed. Used for the instruction counts in
//! BENCHMARKS.md ("Issue 23: what each parsing layer buys"), against the harness's
//! `mock-server --chunks 16` as `bench/loadtest/run.sh` runs it.

use mamba_backends::{ModelBackend, OpenAICompatibleBackend};
use mamba_loadtest::dataset::random;
use mamba_loadtest::{Arrivals, Lengths, Rate, RunConfig};

fn usage() -> ! {
    eprintln!("usage: loadgen-driver --base-url URL --requests N [--rate R] [--max-concurrency C]");
    std::process::exit(2)
}

fn main() {
    let (mut base_url, mut requests, mut rate, mut max_concurrency) = (None, None, Rate::Infinite, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--base-url" => base_url = Some(value),
            "--requests" => requests = Some(value.parse::<usize>().unwrap_or_else(|_| usage())),
            "--rate" => rate = Rate::PerSecond(value.parse().unwrap_or_else(|_| usage())),
            "--max-concurrency" => max_concurrency = Some(value.parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    let (Some(base_url), Some(requests)) = (base_url, requests) else { usage() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let failed = runtime.block_on(async {
        let backend = OpenAICompatibleBackend::builder("gpt-4o-mini")
            .base_url(&base_url)
            .api_key("sk-bench")
            .build()
            .expect("backend");
        // As bench/loadtest/run.sh: --input-len 16 --output-len 16 --seed 1.
        let lengths = Lengths { input_len: 16, output_len: Some(16), range_ratio: 0.0, seed: 1 };
        let samples = random(requests, &lengths);
        let first = &samples[0];
        let stream = backend.stream(&first.messages, &first.options()).await.expect("first request");
        mamba_backends::collect(stream).await.expect("first answer");
        let config = RunConfig { arrivals: Arrivals::poisson(rate), max_concurrency };
        let out = mamba_loadtest::runner::run(&backend, &samples, &config, None).await;
        out.records.iter().filter(|r| !r.error.is_empty()).count()
    });
    println!("{requests} requests, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
