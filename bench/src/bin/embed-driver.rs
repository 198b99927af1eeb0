//! `embed-driver`: the embeddings workload of issue 11 through `mamba_backends`' public API,
//! as a user would write it: one backend with default settings (base64 asked for and decoded
//! straight into `f32`), `embed()` of 16 texts per request. Same contract and result line as
//! the drivers in `bench/embeddings/` (see its `src/lib.rs`).
//!
//! ```text
//! embed-driver --base-url URL --requests N [--warmup W] [--concurrency C] [--format base64|float]
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use mamba_backends::{
    embeddings::{Embedder, EmbeddingInput, EmbeddingOptions, EncodingFormat},
    OpenAICompatibleBackend,
};

const INPUTS: usize = 16;
const DIMS: usize = 1536;

fn usage() -> ! {
    eprintln!("usage: embed-driver --base-url URL --requests N [--warmup W] [--concurrency C] [--format base64|float]");
    std::process::exit(2)
}

fn cpu_and_rss() -> (f64, i64) {
    // SAFETY: getrusage writes into the zeroed struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss)
}

fn main() {
    let (mut base_url, mut requests, mut warmup, mut concurrency) = (String::new(), 0u64, 0u64, 1u64);
    let mut options = EmbeddingOptions::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--base-url" => base_url = value.trim_end_matches('/').to_owned(),
            "--requests" => requests = number(),
            "--warmup" => warmup = number(),
            "--concurrency" => concurrency = number().max(1),
            "--format" => {
                options = options.encoding_format(match value.as_str() {
                    "base64" => EncodingFormat::Base64,
                    "float" => EncodingFormat::Float,
                    _ => usage(),
                })
            }
            _ => usage(),
        }
    }
    if base_url.is_empty() || requests == 0 {
        usage()
    }
    let format = options.encoding_format.map_or("default", |f| f.as_str());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let code = local.block_on(&runtime, async move {
        let backend = OpenAICompatibleBackend::builder("text-embedding-3-small")
            .base_url(&base_url)
            .api_key("sk-bench")
            .build()
            .expect("backend");
        let inputs: Vec<EmbeddingInput> = EmbeddingInput::texts((0..INPUTS).map(|i| {
            format!("Passage {i}: retrieval and agent memory stand on embeddings of short texts like this one.")
        }));
        let shared = Rc::new((backend, inputs, options));
        let phase = |total: u64| {
            let shared = shared.clone();
            async move {
                let next = Rc::new(Cell::new(0u64));
                let errors = Rc::new(Cell::new(0u64));
                let mut workers = Vec::new();
                for _ in 0..concurrency.min(total.max(1)) {
                    let (shared, next, errors) = (shared.clone(), next.clone(), errors.clone());
                    workers.push(tokio::task::spawn_local(async move {
                        while next.get() < total {
                            next.set(next.get() + 1);
                            let (backend, inputs, options) = &*shared;
                            let ok = match backend.embed(inputs, options).await {
                                Ok(out) => out.vectors.len() == INPUTS && out.vectors.iter().all(|v| v.len() == DIMS),
                                Err(e) => {
                                    eprintln!("mamba: {e}");
                                    false
                                }
                            };
                            if !ok {
                                errors.set(errors.get() + 1);
                            }
                        }
                    }));
                }
                for w in workers {
                    let _ = w.await;
                }
                errors.get()
            }
        };
        phase(warmup).await;
        let (c0, _) = cpu_and_rss();
        let t0 = Instant::now();
        let errors = phase(requests).await;
        let secs = t0.elapsed().as_secs_f64();
        let (c1, max_rss_kb) = cpu_and_rss();
        let cpu = c1 - c0;
        println!(
            "{}",
            serde_json::json!({
                "driver": if format == "float" { "mamba-float" } else { "mamba" },
                "format": format,
                "requests": requests,
                "errors": errors,
                "inputs": INPUTS,
                "dims": DIMS,
                "seconds": secs,
                "cpu_s": cpu,
                "cpu_us_per_req": cpu / requests as f64 * 1e6,
                "max_rss_kb": max_rss_kb,
            })
        );
        i32::from(errors > 0)
    });
    std::process::exit(code)
}
