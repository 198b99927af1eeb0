//! `extract-suite`: the structured-output suite of issue 26. Runs every task of [`tasks`]
//! through `mamba_backends`' [`Extract::extract_value`] against one target, and reports per
//! mode (and, on the malformed mock, per malformation): valid rate, valid-and-correct rate,
//! first-attempt valid rate, attempts per success, requests, and the client CPU of the pure
//! steps (translate + lenient parse + validator build + validation) per call against the whole
//! call's client CPU.
//!
//! ```text
//! extract-suite (--base-url URL [--preset NAME] [--api-key-env VAR] | --local [--model-file PATH] | --malformed-mock)
//!               [--model M] [--mode auto,json-object,...|all] [--attempts N] [--max-tokens N]
//!               [--tasks SUBSTRING] [--reps N] [--json FILE]
//! ```
//!
//! CPU: the client runs on this thread (a current-thread runtime); the mock, when there is
//! one, on a runtime of its own on another thread. "Call CPU" is this thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) across one `extract_value` (request building, HTTP, JSON,
//! the extraction loop). "Steps CPU" is the same clock around the pure steps of that call
//! (one `translate` for the target's form, one `Validator::new`, and `parse_lenient` +
//! `validate` of each attempt's text), re-run `--reps` times on the call's own texts and
//! averaged, since one run is below the clock's resolution. With `--local` the model runs in
//! process, so the call CPU includes whatever inference runs on this thread.

mod malform;
mod tasks;

use std::time::{Duration, Instant};

use mamba_backends::preset::StructuredOutput;
use mamba_backends::structured::{attempts_of, parse_lenient, translate, Validator};
use mamba_backends::{
    ErrorKind, Extract, ExtractMode, ExtractOptions, Message, ModelBackend, OpenAICompatibleBackend, Preset,
    RequestOptions, RetryPolicy,
};
use mamba_mock::{MockServer, Reply, Script};
use serde_json::{json, Value};

use crate::malform::Malformation;
use crate::tasks::Task;

fn usage() -> ! {
    eprintln!(
        "usage: extract-suite (--base-url URL [--preset NAME] [--api-key-env VAR] | --local [--model-file PATH] | --malformed-mock)\n\
         \x20                    [--model M] [--mode auto,json-schema,json-object,tool,prompt|all] [--attempts N]\n\
         \x20                    [--max-tokens N] [--tasks SUBSTRING] [--reps N] [--json FILE]"
    );
    std::process::exit(2)
}

fn fail(message: &str) -> ! {
    eprintln!("extract-suite: {message}");
    std::process::exit(2)
}

/// What the suite runs against.
enum Target {
    Server { base_url: String, preset: Option<Preset>, key_env: Option<String> },
    Local { model_file: Option<String> },
    MalformedMock,
}

struct Args {
    target: Target,
    model: Option<String>,
    modes: Vec<ExtractMode>,
    attempts: u32,
    max_tokens: u32,
    filter: Option<String>,
    reps: u32,
    json: Option<String>,
}

fn parse_mode(name: &str) -> ExtractMode {
    ExtractMode::parse(&name.replace('-', "_")).unwrap_or_else(|| fail(&format!("--mode {name}: unknown mode")))
}

fn parse_args() -> Args {
    let (mut base_url, mut preset, mut key_env, mut local, mut model_file, mut mock) =
        (None, None, None, false, None, false);
    let mut args = Args {
        target: Target::MalformedMock,
        model: None,
        modes: vec![ExtractMode::Auto],
        attempts: 3,
        max_tokens: 256,
        filter: None,
        reps: 200,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        let number = |v: String| v.parse::<u32>().ok().filter(|n| *n > 0).unwrap_or_else(|| usage());
        match flag.as_str() {
            "--base-url" => base_url = Some(value()),
            "--preset" => {
                let name = value();
                preset = Some(Preset::from_name(&name).unwrap_or_else(|| fail(&format!("unknown preset {name}"))));
            }
            "--api-key-env" => key_env = Some(value()),
            "--local" => local = true,
            "--model-file" => model_file = Some(value()),
            "--malformed-mock" => mock = true,
            "--model" | "-m" => args.model = Some(value()),
            "--mode" => {
                let v = value();
                args.modes = if v == "all" {
                    ["auto", "json_schema", "json_object", "tool", "prompt"].into_iter().map(parse_mode).collect()
                } else {
                    v.split(',').map(str::trim).map(parse_mode).collect()
                };
            }
            "--attempts" => args.attempts = number(value()),
            "--max-tokens" => args.max_tokens = number(value()),
            "--tasks" => args.filter = Some(value()),
            "--reps" => args.reps = number(value()),
            "--json" => args.json = Some(value()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    args.target = match (base_url, local, mock) {
        (Some(base_url), false, false) => Target::Server { base_url, preset, key_env },
        (None, true, false) => Target::Local { model_file },
        (None, false, true) => Target::MalformedMock,
        _ => fail("give exactly one target: --base-url URL, --local or --malformed-mock"),
    };
    args
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes into the zeroed struct it is given and nothing else.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One call's outcome.
#[derive(Debug, Clone)]
struct CallResult {
    task: &'static str,
    group: &'static str,
    mode: &'static str,
    malformation: Option<&'static str>,
    valid: bool,
    correct: bool,
    /// Attempts made (requests the extraction sent).
    attempts: usize,
    /// Requests the server saw (the mock's count; else the attempts).
    requests: usize,
    repairs: Vec<&'static str>,
    /// The error kind when it failed.
    error: Option<String>,
    call_cpu_us: f64,
    steps_cpu_us: f64,
    wall_ms: f64,
    /// The malformed mock's verdict: repaired (or, truncated, reported as such) with one request.
    as_expected: Option<bool>,
}

/// The structured-output form the pure steps are timed with: the preset's, else generic.
fn form_of(target: &Target) -> (StructuredOutput, &'static str) {
    match target {
        Target::Server { preset: Some(p), .. } => (p.spec().structured_output, p.name()),
        _ => (Preset::Generic.spec().structured_output, "generic"),
    }
}

/// CPU of the pure steps of one call, averaged over `reps` runs, in µs.
fn steps_cpu(schema: &Value, texts: &[String], form: StructuredOutput, target: &str, reps: u32) -> f64 {
    let start = thread_cpu();
    for _ in 0..reps {
        let translated = translate(schema, form, target);
        std::hint::black_box(&translated);
        if let Ok(validator) = Validator::new(schema) {
            for text in texts {
                if let Ok(repaired) = parse_lenient(text, Some(schema)) {
                    std::hint::black_box(validator.validate(&repaired.value).is_ok());
                }
            }
        }
    }
    (thread_cpu() - start).as_secs_f64() * 1e6 / f64::from(reps)
}

struct Runner<'a> {
    backend: &'a dyn ModelBackend,
    args: &'a Args,
    form: (StructuredOutput, &'static str),
    mock: Option<&'a MockServer>,
}

impl Runner<'_> {
    async fn call(&self, task: &Task, mode: ExtractMode, malformation: Option<Malformation>) -> CallResult {
        let request = RequestOptions::new().temperature(0.0).max_tokens(self.args.max_tokens);
        let options = ExtractOptions::new().attempts(self.args.attempts).mode(mode).name(task.id).request(request);
        let messages = [Message::user(task.prompt)];
        let before = self.mock.map(|m| m.chat_requests().len());
        let wall = Instant::now();
        let cpu = thread_cpu();
        let outcome = self.backend.extract_value(&task.schema, &messages, &options).await;
        let call_cpu_us = (thread_cpu() - cpu).as_secs_f64() * 1e6;
        let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
        let (valid, correct, texts, repairs, error) = match &outcome {
            Ok(out) => (
                true,
                tasks::correct(&out.value, &task.expected),
                out.attempts.iter().map(|a| a.text.clone()).collect::<Vec<_>>(),
                out.attempts.iter().flat_map(|a| a.repairs.iter().map(|r| r.as_str())).collect(),
                None,
            ),
            Err(e) => {
                let texts = attempts_of(e).unwrap_or_default().iter().map(|a| a.text.clone()).collect();
                (false, false, texts, Vec::new(), Some(e.kind().as_str().to_owned()))
            }
        };
        let attempts = match &outcome {
            Ok(out) => out.attempts.len(),
            Err(e) => attempts_of(e).map_or(1, <[_]>::len),
        };
        let requests = match (self.mock, before) {
            (Some(m), Some(n)) => m.chat_requests().len() - n,
            _ => attempts,
        };
        let as_expected = malformation.map(|m| match m {
            Malformation::Truncated => requests == 1 && matches!(&outcome, Err(e) if e.kind() == ErrorKind::Truncated),
            _ => requests == 1 && valid && correct,
        });
        let steps_cpu_us = steps_cpu(&task.schema, &texts, self.form.0, self.form.1, self.args.reps);
        CallResult {
            task: task.id,
            group: task.group,
            mode: mode.as_str(),
            malformation: malformation.map(Malformation::name),
            valid,
            correct,
            attempts,
            requests,
            repairs,
            error,
            call_cpu_us,
            steps_cpu_us,
            wall_ms,
            as_expected,
        }
    }
}

/// The mock's answer to `task` damaged by `m`, in `mode`.
fn mock_reply(task: &Task, m: Malformation, mode: ExtractMode) -> Reply {
    let text = m.apply(&task.expected);
    let reply =
        if mode == ExtractMode::Tool { Reply::tool_call(task.id, Value::String(text)) } else { Reply::text(text) };
    if m == Malformation::Truncated {
        reply.finish_reason("length")
    } else {
        reply
    }
}

/// One row of the table: the results of one mode (and malformation).
fn summary(label: &str, results: &[&CallResult]) -> Value {
    let n = results.len();
    let count = |f: &dyn Fn(&CallResult) -> bool| results.iter().filter(|r| f(r)).count();
    let valid = count(&|r| r.valid);
    let correct = count(&|r| r.correct);
    let first = count(&|r| r.valid && r.attempts == 1);
    let success_attempts: usize = results.iter().filter(|r| r.valid).map(|r| r.attempts).sum();
    let requests: usize = results.iter().map(|r| r.requests).sum();
    let mean = |f: &dyn Fn(&CallResult) -> f64| {
        if n == 0 {
            0.0
        } else {
            results.iter().map(|r| f(r)).sum::<f64>() / n as f64
        }
    };
    let steps = mean(&|r| r.steps_cpu_us);
    let call = mean(&|r| r.call_cpu_us);
    let expected = results.iter().filter_map(|r| r.as_expected).collect::<Vec<_>>();
    json!({
        "label": label,
        "calls": n,
        "valid": valid,
        "valid_rate": valid as f64 / n.max(1) as f64,
        "correct": correct,
        "correct_rate": correct as f64 / n.max(1) as f64,
        "first_attempt_valid_rate": first as f64 / n.max(1) as f64,
        "attempts_per_success": if valid == 0 { Value::Null } else { json!(success_attempts as f64 / valid as f64) },
        "requests": requests,
        "steps_cpu_us_per_call": steps,
        "call_cpu_us_per_call": call,
        "steps_share_of_call_cpu": if call > 0.0 { json!(steps / call) } else { Value::Null },
        "wall_ms_per_call": mean(&|r| r.wall_ms),
        "as_expected": if expected.is_empty() { Value::Null } else { json!(expected.iter().filter(|x| **x).count()) },
    })
}

fn print_table(rows: &[Value]) {
    println!(
        "{:<28} {:>5} {:>7} {:>9} {:>7} {:>9} {:>5} {:>10} {:>10} {:>7} {:>8}",
        "mode / malformation",
        "calls",
        "valid",
        "v+correct",
        "1st ok",
        "att/succ",
        "reqs",
        "steps µs",
        "call µs",
        "steps%",
        "expected"
    );
    let pct = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{:.1}%", x * 100.0));
    for r in rows {
        println!(
            "{:<28} {:>5} {:>7} {:>9} {:>7} {:>9} {:>5} {:>10.1} {:>10.1} {:>7} {:>8}",
            r["label"].as_str().unwrap_or(""),
            r["calls"],
            pct(&r["valid_rate"]),
            pct(&r["correct_rate"]),
            pct(&r["first_attempt_valid_rate"]),
            r["attempts_per_success"].as_f64().map_or("-".to_owned(), |x| format!("{x:.2}")),
            r["requests"],
            r["steps_cpu_us_per_call"].as_f64().unwrap_or(0.0),
            r["call_cpu_us_per_call"].as_f64().unwrap_or(0.0),
            pct(&r["steps_share_of_call_cpu"]),
            match (&r["as_expected"], r["calls"].as_u64()) {
                (Value::Number(k), Some(n)) => format!("{k}/{n}"),
                _ => "-".to_owned(),
            },
        );
    }
}

fn server_backend(
    base_url: &str,
    preset: Option<Preset>,
    key_env: Option<&str>,
    model: &str,
) -> OpenAICompatibleBackend {
    let mut builder = OpenAICompatibleBackend::builder(model).base_url(base_url).retry_policy(RetryPolicy::none());
    if let Some(p) = preset {
        builder = builder.preset(p);
    }
    if let Some(var) = key_env {
        match std::env::var(var) {
            Ok(key) if !key.is_empty() => builder = builder.api_key(key),
            _ => fail(&format!("--api-key-env {var}: the variable is not set")),
        }
    }
    builder.timeout(Duration::from_secs(120)).build().unwrap_or_else(|e| fail(&e.to_string()))
}

#[cfg(not(feature = "local"))]
async fn local_backend(_file: Option<&str>) -> Box<dyn ModelBackend> {
    fail("this extract-suite was built without the built-in model: cargo build -p mamba-bench --features local")
}

#[cfg(feature = "local")]
async fn local_backend(file: Option<&str>) -> Box<dyn ModelBackend> {
    use mamba_local::fetch::{ModelSpec, ModelStore};
    let path =
        match file.map(str::to_owned).or_else(|| std::env::var("MAMBA_MODEL_FILE").ok().filter(|v| !v.is_empty())) {
            Some(path) => std::path::PathBuf::from(path),
            None => {
                let store = ModelStore::from_env().unwrap_or_else(|e| fail(e.message()));
                store.cached(&ModelSpec::default_model()).unwrap_or_else(|| {
                    fail("the built-in model is not in the cache: run `mamba-llm pull` or pass --model-file PATH")
                })
            }
        };
    let backend = mamba_local::LocalBackend::load_async(&path, mamba_local::LocalOptions::new())
        .await
        .unwrap_or_else(|e| fail(&format!("{}: {}", path.display(), e.message())));
    Box::new(backend)
}

async fn run(args: &Args, mock: Option<&MockServer>) -> Vec<CallResult> {
    let all_tasks: Vec<Task> = tasks::all()
        .into_iter()
        .filter(|t| args.filter.as_deref().is_none_or(|f| t.id.contains(f) || t.group == f))
        .collect();
    if all_tasks.is_empty() {
        fail("--tasks matches no task");
    }
    let backend: Box<dyn ModelBackend> = match (&args.target, mock) {
        (Target::Server { base_url, preset, key_env }, _) => {
            let model = args.model.clone().unwrap_or_else(|| "default".to_owned());
            Box::new(server_backend(base_url, *preset, key_env.as_deref(), &model))
        }
        (Target::Local { model_file }, _) => local_backend(model_file.as_deref()).await,
        (Target::MalformedMock, Some(m)) => {
            Box::new(server_backend(&m.base_url(), None, None, args.model.as_deref().unwrap_or("mock-model")))
        }
        (Target::MalformedMock, None) => fail("the mock did not start"),
    };
    let runner = Runner { backend: backend.as_ref(), args, form: form_of(&args.target), mock };
    let mut results = Vec::new();
    for &mode in &args.modes {
        for task in &all_tasks {
            match mock {
                Some(server) => {
                    for m in Malformation::ALL.into_iter().filter(|m| m.applies(&task.expected)) {
                        server.set_script(Script::new().always(mock_reply(task, m, mode)));
                        results.push(runner.call(task, mode, Some(m)).await);
                    }
                }
                None => {
                    let r = runner.call(task, mode, None).await;
                    eprintln!(
                        "extract-suite: {} {}: {}{}",
                        mode.as_str(),
                        task.id,
                        if r.correct {
                            "correct"
                        } else if r.valid {
                            "valid"
                        } else {
                            "failed"
                        },
                        r.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                    );
                    results.push(r);
                }
            }
        }
    }
    results
}

fn main() {
    let args = parse_args();
    // The mock on a runtime and thread of its own, so this thread's CPU is the client's.
    let mock_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let mock = match args.target {
        Target::MalformedMock => {
            Some(mock_runtime.block_on(MockServer::start()).unwrap_or_else(|e| fail(&format!("mock: {e}"))))
        }
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let started = Instant::now();
    let results = runtime.block_on(run(&args, mock.as_ref()));

    let mut rows = Vec::new();
    for &mode in &args.modes {
        let of_mode: Vec<&CallResult> = results.iter().filter(|r| r.mode == mode.as_str()).collect();
        rows.push(summary(mode.as_str(), &of_mode));
        if mock.is_some() {
            for m in Malformation::ALL {
                let of: Vec<&CallResult> =
                    of_mode.iter().copied().filter(|r| r.malformation == Some(m.name())).collect();
                if !of.is_empty() {
                    rows.push(summary(&format!("  {}", m.name()), &of));
                }
            }
        }
    }
    print_table(&rows);
    let (target, model) = match &args.target {
        Target::Server { base_url, preset, .. } => {
            (format!("{} ({})", base_url, preset.map_or("no preset", Preset::name)), args.model.clone())
        }
        Target::Local { .. } => ("built-in model".to_owned(), None),
        Target::MalformedMock => ("malformed mock".to_owned(), None),
    };
    if let Some(path) = &args.json {
        let detail: Vec<Value> = results
            .iter()
            .map(|r| {
                json!({"task": r.task, "group": r.group, "mode": r.mode, "malformation": r.malformation,
                       "valid": r.valid, "correct": r.correct, "attempts": r.attempts, "requests": r.requests,
                       "repairs": r.repairs, "error": r.error, "call_cpu_us": r.call_cpu_us,
                       "steps_cpu_us": r.steps_cpu_us, "wall_ms": r.wall_ms, "as_expected": r.as_expected})
            })
            .collect();
        let doc = json!({
            "suite": "extract-suite",
            "target": target,
            "model": model,
            "attempts": args.attempts,
            "tasks": tasks::all().len(),
            "seconds": started.elapsed().as_secs_f64(),
            "summary": rows,
            "calls": detail,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            fail(&format!("--json {path}: {e}"));
        }
    }
    drop(mock);
    mock_runtime.shutdown_background();
}
