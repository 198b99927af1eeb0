//! `mamba-bench-driver`: the project's driver for the client-overhead harness
//! (`shared/bench/README.md`, "Driver contract"), written against the public API of
//! `mamba_backends` as a user would write it, with default settings.
//!
//! ```text
//! mamba-bench-driver --base-url URL --workload w1|w2|w3|w4 --mode complete|stream
//!                    --requests N --concurrency C --warmup W [--chunks K] [--chunk-interval-ms MS]
//!                    [--api chat|responses]
//! ```
//!
//! `--api responses` sends the same requests over the Responses API (`/v1/responses`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use futures_util::StreamExt;
use mamba_backends::{preset::WireApi, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions};

const MODEL: &str = "gpt-4o-mini";
const SYSTEM_PROMPT: &str = "You are a helpful assistant that answers concisely.";
const USER_PROMPT: &str = "Explain Rust's ownership model in one paragraph.";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Complete,
    Stream,
}

struct Args {
    base_url: String,
    workload: String,
    mode: Mode,
    requests: u64,
    concurrency: u64,
    warmup: u64,
    chunks: Option<u64>,
    api: WireApi,
}

fn usage() -> ! {
    eprintln!(
        "usage: mamba-bench-driver --base-url URL --mode complete|stream --requests N --concurrency C \
         [--warmup W] [--workload NAME] [--chunks K] [--chunk-interval-ms MS] [--api chat|responses]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let (mut base_url, mut mode, mut requests) = (None, None, None);
    let mut args = Args {
        base_url: String::new(),
        workload: "adhoc".into(),
        mode: Mode::Complete,
        requests: 0,
        concurrency: 1,
        warmup: 0,
        chunks: None,
        api: WireApi::ChatCompletions,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        let number = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--base-url" => base_url = Some(value().trim_end_matches('/').to_owned()),
            "--workload" => args.workload = value(),
            "--mode" => {
                mode = Some(match value().as_str() {
                    "complete" => Mode::Complete,
                    "stream" => Mode::Stream,
                    _ => usage(),
                })
            }
            "--requests" => requests = Some(number(value())),
            "--concurrency" => args.concurrency = number(value()).max(1),
            "--warmup" => args.warmup = number(value()),
            "--chunks" => args.chunks = Some(number(value())),
            "--api" => args.api = WireApi::parse(&value()).unwrap_or_else(|| usage()),
            "--chunk-interval-ms" => {
                value(); // informational: the server paces
            }
            _ => usage(),
        }
    }
    let (Some(base_url), Some(mode), Some(requests)) = (base_url, mode, requests) else { usage() };
    Args { base_url, mode, requests, ..args }
}

struct Cpu {
    user: f64,
    sys: f64,
    max_rss_kb: i64,
}

fn rusage() -> Cpu {
    // SAFETY: getrusage writes into the zeroed struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Cpu { user: secs(ru.ru_utime), sys: secs(ru.ru_stime), max_rss_kb: ru.ru_maxrss }
}

fn current_rss_kb() -> i64 {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as i64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<i64>().ok()))
        .map_or(-1, |pages| pages * page / 1024)
}

struct Client {
    backend: OpenAICompatibleBackend,
    messages: Vec<Message>,
    options: RequestOptions,
}

impl Client {
    async fn complete(&self) -> Result<u64, String> {
        let answer = self.backend.complete(&self.messages, &self.options).await.map_err(|e| e.to_string())?;
        if answer.content.is_empty() {
            return Err("no content".into());
        }
        Ok(0)
    }

    /// Chunks delivered with a choice. The library ends every stream with one extra chunk
    /// (`is_final`, carrying usage) that stands for no server event; it is not counted.
    async fn stream(&self) -> Result<u64, String> {
        let mut stream = self.backend.stream(&self.messages, &self.options).await.map_err(|e| e.to_string())?;
        let mut n = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if !chunk.is_final {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[derive(Default)]
struct Tally {
    ok: Cell<u64>,
    errors: Cell<u64>,
    chunks: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

async fn phase(client: Rc<Client>, args: &Args, total: u64) -> Rc<Tally> {
    let next = Rc::new(Cell::new(0u64));
    let tally = Rc::new(Tally::default());
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.min(total.max(1)) {
        let (client, next, tally, mode, want) = (client.clone(), next.clone(), tally.clone(), args.mode, args.chunks);
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let k = next.get();
                if k >= total {
                    break;
                }
                next.set(k + 1);
                let result = match mode {
                    Mode::Complete => client.complete().await,
                    Mode::Stream => client.stream().await.and_then(|n| match want {
                        Some(w) if w != n => Err(format!("stream delivered {n} chunks, expected {w}")),
                        _ => Ok(n),
                    }),
                };
                match result {
                    Ok(n) => {
                        tally.ok.set(tally.ok.get() + 1);
                        tally.chunks.set(tally.chunks.get() + n);
                    }
                    Err(e) => {
                        tally.errors.set(tally.errors.get() + 1);
                        tally.first_error.borrow_mut().get_or_insert(e);
                    }
                }
            }
        }));
    }
    for worker in workers {
        if worker.await.is_err() {
            tally.errors.set(tally.errors.get() + 1);
        }
    }
    tally
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let code = local.block_on(&runtime, async {
        // A user's code: one backend, default settings, the bench's key.
        let backend = OpenAICompatibleBackend::builder(MODEL)
            .base_url(&args.base_url)
            .api_key("sk-bench")
            .wire_api(args.api)
            .build()
            .expect("backend");
        let client = Rc::new(Client {
            backend,
            messages: vec![Message::system(SYSTEM_PROMPT), Message::user(USER_PROMPT)],
            options: RequestOptions::new(),
        });
        if args.warmup > 0 {
            let w = phase(client.clone(), &args, args.warmup).await;
            if w.errors.get() > 0 {
                eprintln!("mamba: warm-up error: {}", w.first_error.borrow().as_deref().unwrap_or("?"));
            }
        }
        let rss_start_kb = current_rss_kb();
        let c0 = rusage();
        let t0 = Instant::now();
        // Sample the RSS while streams are open (w4 holds 1000 at once).
        let peak = Rc::new(Cell::new(rss_start_kb));
        let sampler = {
            let peak = peak.clone();
            tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    peak.set(peak.get().max(current_rss_kb()));
                }
            })
        };
        let tally = phase(client.clone(), &args, args.requests).await;
        let secs = t0.elapsed().as_secs_f64();
        sampler.abort();
        let c1 = rusage();
        let (user, sys) = (c1.user - c0.user, c1.sys - c0.sys);
        let (ok, chunks) = (tally.ok.get(), tally.chunks.get());
        let line = serde_json::json!({
            "driver": "mamba",
            "workload": args.workload,
            "mode": if args.mode == Mode::Complete { "complete" } else { "stream" },
            "requests": ok,
            "errors": tally.errors.get(),
            "concurrency": args.concurrency,
            "seconds": secs,
            "req_per_s": ok as f64 / secs,
            "chunks": chunks,
            "chunks_per_s": chunks as f64 / secs,
            "cpu_user_s": user,
            "cpu_sys_s": sys,
            "cpu_s": user + sys,
            "max_rss_kb": c1.max_rss_kb.max(peak.get()),
            "rss_start_kb": rss_start_kb,
            "note": "mamba-backends defaults: streams ask for usage (stream_options.include_usage), so the server sends one more chunk (choices: []), which the library folds into the final chunk",
        });
        if let Some(e) = tally.first_error.borrow().as_deref() {
            eprintln!("mamba: {} errors, first: {e}", tally.errors.get());
        }
        println!("{line}");
        i32::from(tally.errors.get() > 0)
    });
    std::process::exit(code)
}
