//! What the embeddings drivers share: the workload, the argument contract, the measuring
//! loop and the JSON result line. The project's own driver (`mamba-bench`'s `embed-driver`)
//! implements the same contract by itself.
//!
//! ```text
//! DRIVER --base-url URL --requests N [--warmup W] [--concurrency C]
//! ```
//!
//! Each request embeds [`INPUTS`] texts; the server answers 1,536-value vectors (base64 when
//! asked, else floats). A driver checks every answer has `INPUTS` vectors of `DIMS` values.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

/// Inputs per request.
pub const INPUTS: usize = 16;
/// Values per vector.
pub const DIMS: usize = 1536;
/// The model asked for.
pub const MODEL: &str = "text-embedding-3-small";

/// The texts of a request.
pub fn texts() -> Vec<String> {
    (0..INPUTS).map(|i| format!("Passage {i}: retrieval and agent memory stand on embeddings of short texts like this one.")).collect()
}

pub struct Args {
    pub base_url: String,
    pub requests: u64,
    pub warmup: u64,
    pub concurrency: u64,
}

fn usage() -> ! {
    eprintln!("usage: DRIVER --base-url URL --requests N [--warmup W] [--concurrency C]");
    std::process::exit(2)
}

pub fn parse_args() -> Args {
    let mut args = Args { base_url: String::new(), requests: 0, warmup: 0, concurrency: 1 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--base-url" => args.base_url = value.trim_end_matches('/').to_owned(),
            "--requests" => args.requests = number(),
            "--warmup" => args.warmup = number(),
            "--concurrency" => args.concurrency = number().max(1),
            _ => usage(),
        }
    }
    if args.base_url.is_empty() || args.requests == 0 {
        usage()
    }
    args
}

/// Checks an answer's shape.
pub fn check(vectors: &[Vec<f32>]) -> Result<(), String> {
    if vectors.len() != INPUTS || vectors.iter().any(|v| v.len() != DIMS) {
        return Err(format!("got {} vectors of {:?} values", vectors.len(), vectors.first().map(Vec::len)));
    }
    Ok(())
}

struct Cpu {
    secs: f64,
    max_rss_kb: i64,
}

fn rusage() -> Cpu {
    // SAFETY: getrusage writes into the zeroed struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Cpu { secs: secs(ru.ru_utime) + secs(ru.ru_stime), max_rss_kb: ru.ru_maxrss }
}

/// Runs `warmup` then `requests` calls of `call` on a current-thread runtime, `concurrency`
/// at a time, and prints the result line.
pub fn run<F, Fut>(driver: &str, args: &Args, call: F) -> i32
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let call = Rc::new(call);
    local.block_on(&runtime, async {
        let phase = |total: u64| {
            let call = call.clone();
            let concurrency = args.concurrency;
            async move {
                let next = Rc::new(Cell::new(0u64));
                let errors = Rc::new(Cell::new(0u64));
                let first = Rc::new(RefCell::new(None::<String>));
                let mut workers = Vec::new();
                for _ in 0..concurrency.min(total.max(1)) {
                    let (call, next, errors, first) = (call.clone(), next.clone(), errors.clone(), first.clone());
                    workers.push(tokio::task::spawn_local(async move {
                        while next.get() < total {
                            next.set(next.get() + 1);
                            if let Err(e) = call().await {
                                errors.set(errors.get() + 1);
                                first.borrow_mut().get_or_insert(e);
                            }
                        }
                    }));
                }
                for w in workers {
                    let _ = w.await;
                }
                let first = first.borrow().clone();
                (errors.get(), first)
            }
        };
        phase(args.warmup).await;
        let c0 = rusage();
        let t0 = Instant::now();
        let (errors, first) = phase(args.requests).await;
        let secs = t0.elapsed().as_secs_f64();
        let c1 = rusage();
        if let Some(e) = first {
            eprintln!("{driver}: {errors} errors, first: {e}");
        }
        let cpu = c1.secs - c0.secs;
        println!(
            "{}",
            serde_json::json!({
                "driver": driver,
                "requests": args.requests,
                "errors": errors,
                "inputs": INPUTS,
                "dims": DIMS,
                "seconds": secs,
                "cpu_s": cpu,
                "cpu_us_per_req": cpu / args.requests as f64 * 1e6,
                "max_rss_kb": c1.max_rss_kb,
            })
        );
        i32::from(errors > 0)
    })
}
