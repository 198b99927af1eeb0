//! `mamba-llm bench`: load-test a server with vLLM-compatible numbers and plots (the engine is
//! the `mamba-loadtest` crate; this module parses, wires and prints).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mamba_backends::{collect, ModelBackend, RetryPolicy};
use mamba_loadtest::{
    bench, sweep, BenchResult, BenchSpec, DatasetSpec, Goodput, Lengths, Rate, Sweep, TextCompletions,
};

use crate::args::ConnArgs;
use crate::connect::connect_tuned;
use crate::error::CliError;
use crate::print::{line, note};
use crate::settings::{Api, Section, Server};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Requests to send (per sweep point).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) num_prompts: usize,
    /// Average requests per second (Poisson arrivals), or `inf` for all at once; the run's
    /// schedule (--num-prompts / rate seconds) may last at most 365 days.
    #[arg(long, value_name = "R|inf", default_value = "inf")]
    pub(crate) request_rate: String,
    /// Gamma shape of the gaps between arrivals: 1 is Poisson, below 1 burstier, above 1 more
    /// even.
    #[arg(long, value_name = "B", default_value_t = 1.0)]
    pub(crate) burstiness: f64,
    /// At most this many requests in flight; later arrivals wait.
    #[arg(long, value_name = "C")]
    pub(crate) max_concurrency: Option<usize>,
    /// Untimed requests sent all at once before the run (at most --max-concurrency in
    /// flight): the connections they open are reused, so the run starts warm.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) num_warmups: usize,
    /// random, sharegpt:FILE, batch:FILE (OpenAI batch JSONL) or prompts:FILE (one per line).
    #[arg(long, value_name = "SPEC", default_value = "random")]
    pub(crate) dataset: String,
    /// Prompt length in tokens for the random dataset (approximated with one-token words).
    #[arg(long, value_name = "L", default_value_t = 1024)]
    pub(crate) input_len: u32,
    /// Answer length in tokens (max_tokens); default 128 for random, the file's otherwise.
    #[arg(long, value_name = "L")]
    pub(crate) output_len: Option<u32>,
    /// Draw random lengths uniformly within ± this fraction.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub(crate) range_ratio: f64,
    /// Seed for the prompts and the arrivals.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub(crate) seed: u64,
    /// Goodput targets in milliseconds: ttft:MS tpot:MS e2el:MS.
    #[arg(long, value_name = "NAME:MS", num_args = 1..)]
    pub(crate) goodput: Vec<String>,
    /// Percentiles to report, comma-separated.
    #[arg(long, value_name = "P,P", default_value = "99")]
    pub(crate) percentiles: String,
    /// Several runs: rate:1,2,4,inf or concurrency:1,8,64.
    #[arg(long, value_name = "SPEC")]
    pub(crate) sweep: Option<String>,
    /// Write the result as JSON (vLLM's keys); a sweep writes an array, one per point.
    #[arg(long, value_name = "FILE.json")]
    pub(crate) save_result: Option<PathBuf>,
    /// Draw latency CDFs (a sweep: latency against throughput) as SVG or PNG.
    #[arg(long, value_name = "FILE.svg|png")]
    pub(crate) plot: Option<PathBuf>,
}

/// `bench`'s settings, from its flags.
pub(crate) struct Bench {
    plan: Plan,
    server: Server,
    json: bool,
    num_prompts: usize,
    num_warmups: usize,
    save_result: Option<PathBuf>,
    plot: Option<PathBuf>,
}

impl Bench {
    /// Checks `bench`'s flags and makes its settings.
    pub(crate) fn from_flags(args: BenchArgs) -> Result<Bench, CliError> {
        let plan = plan(&args)?;
        Ok(Bench {
            plan,
            json: args.conn.json,
            server: Server::from_flags(args.conn, Section::Bench),
            num_prompts: args.num_prompts,
            num_warmups: args.num_warmups,
            save_result: args.save_result,
            plot: args.plot,
        })
    }
}

struct Plan {
    spec: BenchSpec,
    sweep: Option<Sweep>,
    dataset: DatasetSpec,
    lengths: Lengths,
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

fn plan(args: &BenchArgs) -> Result<Plan, CliError> {
    if args.num_prompts == 0 {
        return Err(usage("--num-prompts must be at least 1".into()));
    }
    let rate: Rate = args.request_rate.parse().map_err(|e| usage(format!("--request-rate: {e}")))?;
    if args.burstiness.is_nan() || args.burstiness <= 0.0 {
        return Err(usage(format!("--burstiness must be above 0, not {}", args.burstiness)));
    }
    if args.max_concurrency == Some(0) {
        return Err(usage("--max-concurrency must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&args.range_ratio) {
        return Err(usage(format!("--range-ratio must be between 0 and 1, not {}", args.range_ratio)));
    }
    let dataset: DatasetSpec = args.dataset.parse().map_err(|e| usage(format!("--dataset: {e}")))?;
    let mut goodput = Goodput::default();
    for pair in &args.goodput {
        goodput.add(pair).map_err(|e| usage(format!("--goodput: {e}")))?;
    }
    let percentiles = args
        .percentiles
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<f64>().ok().filter(|v| (0.0..=100.0).contains(v)))
        .collect::<Option<Vec<f64>>>()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            usage(format!("--percentiles: {:?} is not a list of numbers from 0 to 100", args.percentiles))
        })?;
    let sweep =
        args.sweep.as_deref().map(str::parse::<Sweep>).transpose().map_err(|e| usage(format!("--sweep: {e}")))?;
    if let Some(path) = &args.plot {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("svg" | "png")) {
            return Err(usage(format!("--plot {}: the file must end in .svg or .png", path.display())));
        }
    }
    let mut spec = BenchSpec::new("", "").rate(rate).max_concurrency(args.max_concurrency);
    spec.arrivals.burstiness = args.burstiness;
    spec.arrivals.seed = args.seed;
    spec.percentiles = percentiles;
    spec.goodput = goodput;
    spec.dataset = dataset.name().to_owned();
    // The schedule must fit (`--request-rate 1e-20` asked for 1e23 s), for every sweep point.
    spec.validate(args.num_prompts).map_err(|e| usage(format!("--request-rate {}: {e}", args.request_rate)))?;
    if let Some(s) = &sweep {
        for (label, point) in s.points(&spec) {
            point.validate(args.num_prompts).map_err(|e| usage(format!("--sweep {label}: {e}")))?;
        }
    }
    let lengths = Lengths {
        input_len: args.input_len,
        output_len: args.output_len,
        range_ratio: args.range_ratio,
        seed: args.seed,
    };
    Ok(Plan { spec, sweep, dataset, lengths })
}

/// Benchmarks ask for usage in streams (the token counts come from the server) and do not
/// retry (a retried request would hide the failure and distort its latency); `--retries`
/// still turns retries on.
fn tune(
    builder: mamba_backends::backend::OpenAICompatibleBackendBuilder,
) -> mamba_backends::backend::OpenAICompatibleBackendBuilder {
    builder.include_usage(true).retry_policy(RetryPolicy::none())
}

fn progress_bar(total: usize, label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} requests, {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_owned());
    bar
}

/// `mamba-llm bench`.
pub(crate) async fn run(args: Bench) -> Result<(), CliError> {
    let Plan { mut spec, sweep: sweep_spec, dataset, lengths } = args.plan;
    let (json, server) = (args.json, args.server);
    let connection = connect_tuned(&server, tune).await?;
    spec.model = connection.backend.model().to_owned();
    // The URL as recorded in results: the backend's base URL carries no `user:password@`
    // (the builder takes it out), and credentials in its query are redacted.
    spec.base_url = mamba_backends::redact::redact_url(connection.backend.base_url());
    // `--api` (the shared connection flag) picks the endpoint; vLLM's names go in the result.
    let text = (server.api == Some(Api::Completions)).then(|| TextCompletions(connection.backend.clone()));
    let backend: &dyn ModelBackend = match &text {
        Some(text) => {
            spec.endpoint_type = "openai".into();
            text
        }
        None => {
            if connection.backend.wire_api() == mamba_backends::preset::WireApi::Responses {
                spec.endpoint_type = "openai-responses".into();
            }
            &connection.backend
        }
    };
    let samples = dataset.load(args.num_prompts, &lengths).map_err(|e| CliError::Io(format!("--dataset: {e}")))?;
    // An open-loop run past the server's capacity holds one connection per request in flight:
    // allow as many open files as the system lets this user have (the soft limit is often 1,024
    // while the hard limit is far higher), so that overload shows as latency, not as
    // "too many open files".
    let _ = crate::fdlimit::raise();

    // As vLLM does: one request first, so a wrong URL, model or key is one clear error rather
    // than a thousand failed requests. It also opens the first connection.
    note(&format!("mamba-llm: bench {} at {}: test request…", spec.model, spec.base_url));
    let first = &samples[0];
    collect(backend.stream(&first.messages, &first.options()).await?).await?;
    if args.num_warmups > 0 {
        note(&format!("mamba-llm: warming up with {} requests…", args.num_warmups));
        let failed = mamba_loadtest::warm_up(backend, &samples, args.num_warmups, spec.max_concurrency).await;
        if failed > 0 {
            note(&format!("mamba-llm: {failed} of {} warm-up requests failed", args.num_warmups));
        }
    }

    let distribution = if spec.arrivals.burstiness == 1.0 { "Poisson process" } else { "gamma distribution" };
    let results: Vec<(String, BenchResult)> = match &sweep_spec {
        None => {
            note(&format!(
                "mamba-llm: {} requests, rate {} ({distribution}, burstiness {}), max concurrency {}",
                samples.len(),
                spec.arrivals.rate,
                spec.arrivals.burstiness,
                spec.max_concurrency.map_or("none".to_owned(), |c| c.to_string())
            ));
            let bar = progress_bar(samples.len(), "bench");
            let tick = |done: usize| bar.set_position(done as u64);
            let result = bench(backend, &samples, &spec, Some(&tick)).await;
            bar.finish_and_clear();
            vec![(String::new(), result)]
        }
        Some(s) => {
            let points = s.points(&spec);
            note(&format!("mamba-llm: sweep {s}: {} points of {} requests", points.len(), samples.len()));
            let bars: Vec<ProgressBar> = points.iter().map(|(label, _)| progress_bar(samples.len(), label)).collect();
            let tick = |point: usize, done: usize| {
                if let Some(bar) = bars.get(point) {
                    bar.set_position(done as u64);
                    if done == samples.len() {
                        bar.finish_and_clear();
                    }
                }
            };
            sweep(backend, &samples, &spec, s, Some(&tick)).await
        }
    };

    // Close every connection before writing: an overloaded server can leave thousands open,
    // up to the limit of open files, and the result file needs one more.
    drop(text);
    drop(connection);

    let jsons: Vec<serde_json::Value> = results
        .iter()
        .map(|(label, r)| {
            let mut v = r.to_json();
            if !label.is_empty() {
                v["sweep_point"] = serde_json::json!(label);
            }
            v
        })
        .collect();
    let document = if sweep_spec.is_some() { serde_json::Value::Array(jsons) } else { jsons[0].clone() };
    if let Some(path) = &args.save_result {
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        std::fs::write(path, text + "\n")
            .map_err(|e| CliError::Io(format!("--save-result {}: cannot write: {e}", path.display())))?;
    }
    if let Some(path) = &args.plot {
        let drawn = match &sweep_spec {
            None => mamba_loadtest::plot::plot_run(&results[0].1, path),
            Some(_) => mamba_loadtest::plot::plot_sweep(&results, path),
        };
        drawn.map_err(|e| CliError::Io(format!("--plot {}: {e}", path.display())))?;
    }
    if json {
        line(&serde_json::to_string(&document).unwrap_or_default())?;
    } else {
        for (label, result) in &results {
            if !label.is_empty() {
                line(&format!("{label}:"))?;
            }
            line(result.summary().trim_end())?;
        }
        if let Some(path) = &args.save_result {
            line(&format!("result: {}", path.display()))?;
        }
        if let Some(path) = &args.plot {
            line(&format!("plot: {}", path.display()))?;
        }
    }
    Ok(())
}
