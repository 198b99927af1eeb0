//! Speed of the built-in engine, in the same shape as `scripts/local/llamacpp-bench.py` measures
//! llama.cpp: warm load time, time to first token, prompt and generation tokens per second, peak
//! RSS. One JSON line on stdout; `scripts/local/bench.sh` runs both and prints the table.
//!
//! Usage: `cargo run --release -p mamba-local --example local-bench -- MODEL.gguf THREADS CACHE_DIR`
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use futures_util::StreamExt;
use mamba_backends::{Message, ModelBackend, RequestOptions};
use mamba_local::{LocalBackend, LocalOptions};

/// 64 generated tokens, greedy, past the natural end.
const GENERATE: u32 = 64;

fn short_prompt() -> Vec<Message> {
    vec![Message::system("You are a helpful AI assistant."), Message::user("What is the capital of France?")]
}

fn long_prompt() -> Vec<Message> {
    let filler = "The quick brown fox jumps over the lazy dog while the sun sets slowly behind the distant hills. ";
    vec![
        Message::system("You are a helpful AI assistant."),
        Message::user(format!("{}What is the capital of France?", filler.repeat(16))),
    ]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn run(backend: &LocalBackend, messages: &[Message]) -> (usize, f64, f64) {
    let options = RequestOptions::new().temperature(0.0).max_tokens(GENERATE).extra("ignore_eos", true.into());
    let prompt = backend.prompt_tokens(messages).unwrap().len();
    let start = Instant::now();
    let mut stream = backend.stream(messages, &options).await.unwrap();
    let mut first = None;
    let mut generated = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if first.is_none() && !chunk.content.is_empty() {
            first = Some(start.elapsed().as_secs_f64());
        }
        if let Some(usage) = chunk.usage {
            generated = usage.output_tokens;
        }
    }
    let total = start.elapsed().as_secs_f64();
    let ttft = first.unwrap_or(total);
    let gen_rate = (generated.saturating_sub(1)) as f64 / (total - ttft);
    (prompt, ttft, gen_rate)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).expect("usage: local-bench MODEL.gguf THREADS CACHE_DIR");
    let threads: usize = args.get(2).map_or(0, |t| t.parse().unwrap());
    let mut options = LocalOptions::new().threads(threads);
    if let Some(dir) = args.get(3) {
        options = options.cache_dir(dir);
    }
    let started = Instant::now();
    let backend = LocalBackend::load(model, options).unwrap();
    let load = started.elapsed().as_secs_f64();
    // One warm-up answer, as llama.cpp gets in its run.
    let _ = run(&backend, &short_prompt()).await;
    let (short_tokens, short_ttft, short_gen) = run(&backend, &short_prompt()).await;
    let (long_tokens, long_ttft, long_gen) = run(&backend, &long_prompt()).await;
    let answer =
        backend.complete(&short_prompt(), &RequestOptions::new().temperature(0.0).max_tokens(32)).await.unwrap();
    println!(
        "{}",
        serde_json::json!({
            "engine": "mamba-local",
            "threads": backend.threads(),
            "load_s": load,
            "short_prompt_tokens": short_tokens,
            "short_ttft_s": short_ttft,
            "short_pp_tps": short_tokens as f64 / short_ttft,
            "short_gen_tps": short_gen,
            "long_prompt_tokens": long_tokens,
            "long_ttft_s": long_ttft,
            "long_pp_tps": long_tokens as f64 / long_ttft,
            "long_gen_tps": long_gen,
            "peak_rss_mib": peak_rss_mib(),
            "answer": answer.content,
        })
    );
}
