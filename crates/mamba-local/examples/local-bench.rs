//! Speed of the built-in engine, in the same shape as `scripts/local/llamacpp-bench.py` measures
//! llama.cpp: warm load time, time to first token, prompt and generation tokens per second, peak
//! RSS. One JSON line on stdout; `scripts/local/bench.sh` runs both and prints the table.
//!
//! The prompt cache is off for those (llama.cpp's side resets its cache before each prompt).
//! With a fourth argument `conversation`, it measures the prompt cache instead: a 5-turn
//! conversation played with the cache and without it, the last turn's time to first token.
//!
//! Usage: `cargo run --release -p mamba-local --example local-bench -- MODEL.gguf THREADS CACHE_DIR [conversation]`
//! (`MAMBA_KV_F16=1` measures the f16 key/value cache).
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

/// Plays a 5-turn conversation (a long system prompt, 32-token answers); the last turn's
/// prompt tokens, cached tokens and time to first token.
async fn conversation(backend: &LocalBackend) -> (u64, u64, f64) {
    let filler = "The quick brown fox jumps over the lazy dog while the sun sets slowly behind the distant hills. ";
    let mut messages = vec![Message::system(format!("You are a helpful AI assistant. {}", filler.repeat(12)))];
    let options = RequestOptions::new().temperature(0.0).max_tokens(32).extra("ignore_eos", true.into());
    let mut last = (0, 0, 0.0);
    for q in ["What is the capital of France?", "And of Italy?", "Which is older?", "Why?", "Summarise."] {
        messages.push(Message::user(q));
        let start = Instant::now();
        let mut stream = backend.stream(&messages, &options).await.unwrap();
        let (mut first, mut text, mut usage) = (None, String::new(), None);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            if first.is_none() && !chunk.content.is_empty() {
                first = Some(start.elapsed().as_secs_f64());
            }
            text.push_str(&chunk.content);
            usage = chunk.usage.or(usage);
        }
        let usage = usage.unwrap();
        last = (usage.input_tokens, usage.cached_input_tokens.unwrap_or(0), first.unwrap_or_default());
        messages.push(Message::assistant(text));
    }
    last
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).expect("usage: local-bench MODEL.gguf THREADS CACHE_DIR [conversation]");
    let threads: usize = args.get(2).map_or(0, |t| t.parse().unwrap());
    // `MAMBA_KV_F16=1`: the key/value cache in f16 (`LocalOptions::kv_cache_f16`).
    let f16 = std::env::var("MAMBA_KV_F16").is_ok_and(|v| v == "1");
    let mut options = LocalOptions::new().threads(threads).kv_cache_f16(f16);
    if let Some(dir) = args.get(3) {
        options = options.cache_dir(dir);
    }
    if args.get(4).map(String::as_str) == Some("conversation") {
        let mut row = serde_json::Map::new();
        for (label, on) in [("with_cache", true), ("without_cache", false)] {
            let backend = LocalBackend::load(model, options.clone().prompt_cache(on)).unwrap();
            let (prompt, cached, ttft) = conversation(&backend).await;
            row.insert(
                label.to_owned(),
                serde_json::json!({"last_prompt_tokens": prompt, "cached_tokens": cached, "last_ttft_s": ttft}),
            );
        }
        println!("{}", serde_json::Value::Object(row));
        return;
    }
    let options = options.prompt_cache(false);
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
