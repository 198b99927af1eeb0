//! `mamba-llm batch`: run an OpenAI Batch JSONL file against any server (the engine is the
//! `mamba-batch` crate; this module parses, connects, draws progress and prints the summary).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mamba_backends::{BackendPool, ModelBackend, RetryPolicy};
use mamba_batch::{Batch, BatchError, BatchOptions, Input, Plan, Progress, Shard, Stop, Summary};

use crate::connect::connect_tuned;
use crate::error::CliError;
use crate::print::{line, note};
use crate::settings::{check_max_cost, seconds, Server};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct BatchArgs {
    /// A batch on the server's Batch API (see --remote).
    #[command(subcommand)]
    pub(crate) command: Option<crate::batch_remote::BatchCommand>,
    /// The requests: OpenAI Batch JSONL (`custom_id`, `method`, `url`, `body` a line), plain
    /// or gzip; `-` reads stdin. (A file named `status` or `cancel`: write `./status`.)
    #[arg(required = true)]
    pub(crate) input: Option<String>,
    /// The output JSONL (OpenAI's Batch output format). An existing one is resumed: lines
    /// answered with 200 are skipped, failed ones sent again, repeated custom_ids kept once,
    /// lines that are not records moved to FILE.invalid. One run at a time writes it (a lock
    /// on FILE.lock); it must not be the input.
    #[arg(short, long, value_name = "FILE", required = true)]
    pub(crate) output: Option<PathBuf>,
    /// Hand the file to the server's own Batch API (upload, create, poll, download into -o)
    /// instead of sending the requests; the batch id is kept in OUT.remote.json, so running
    /// the same command again resumes polling. Only for servers with a Batch API (see
    /// `mamba-llm presets`) or a plain --base-url.
    #[arg(long)]
    pub(crate) remote: bool,
    /// With --remote: the first wait between polls in seconds (waits grow to 30 s while
    /// nothing changes).
    #[arg(long, value_name = "SECS", requires = "remote")]
    pub(crate) poll_interval: Option<f64>,
    /// With --remote: metadata for the batch (repeatable).
    #[arg(long, value_name = "KEY=VALUE", requires = "remote")]
    pub(crate) metadata: Vec<String>,
    /// The model for lines whose body names none (never replaces a model a line names).
    #[arg(short, long)]
    pub(crate) model: Option<String>,
    /// Server kind: its default URL, auth and quirks (see `mamba-llm presets`).
    #[arg(long, value_name = "NAME", global = true)]
    pub(crate) preset: Option<String>,
    /// API base URL; repeat it for replicas of one server, which share the load (a pool with
    /// failover) [env: MAMBA_BASE_URL, OPENAI_BASE_URL].
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) base_url: Vec<String>,
    /// Read the API key from this environment variable (default: MAMBA_API_KEY, then
    /// OPENAI_API_KEY).
    #[arg(long, value_name = "VAR", global = true)]
    pub(crate) api_key_env: Option<String>,
    /// Connect and idle timeout in seconds.
    #[arg(long, value_name = "SECS", global = true)]
    pub(crate) timeout: Option<f64>,
    /// Requests in flight at once [default: 16].
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,
    /// At most N requests a minute.
    #[arg(long, value_name = "N")]
    pub(crate) rpm: Option<u32>,
    /// At most N tokens a minute: prompt tokens estimated at 4 characters a token plus 4 a
    /// message, plus the body's max_tokens; corrected by the reported usage.
    #[arg(long, value_name = "N")]
    pub(crate) tpm: Option<u64>,
    /// Stop sending once the cost (model profiles' prices, earlier runs of this output
    /// included) plus the requests in flight would pass this many USD; exit 3.
    #[arg(long, value_name = "USD")]
    pub(crate) max_cost: Option<f64>,
    /// Check the input and print the request count, estimated tokens and cost; send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Write the output in input order (a reorder window of --concurrency lines).
    #[arg(long)]
    pub(crate) ordered: bool,
    /// Only the lines whose custom_id's FNV-1a 64 hash modulo N is K (K from 0).
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<String>,
    /// Retries of a failed request (rate limits, overload, 5xx, connection errors).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) retries: u32,
    /// Keep the failed lines of an existing output instead of sending them again.
    #[arg(long)]
    pub(crate) no_retry_failed: bool,
    /// The summary (or the dry run's plan) as one JSON object on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// No progress and no summary on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// What `batch` does with the server's Batch API instead of running a file.
#[derive(Debug)]
pub(crate) enum Action {
    /// `batch status ID`.
    Status(String),
    /// `batch cancel ID`.
    Cancel(String),
}

/// `batch`'s settings, from its flags (the same names; see [`BatchArgs`] for each), checked
/// and parsed by [`BatchSettings::from_flags`].
#[derive(Debug)]
pub(crate) struct BatchSettings {
    pub(crate) action: Option<Action>,
    pub(crate) input: Option<String>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) remote: bool,
    /// `--poll-interval` (checked: above 0).
    pub(crate) poll_interval: Option<Duration>,
    /// `--metadata KEY=VALUE` pairs.
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) model: Option<String>,
    pub(crate) preset: Option<String>,
    pub(crate) base_url: Vec<String>,
    pub(crate) api_key_env: Option<String>,
    pub(crate) timeout: Option<f64>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) rpm: Option<u32>,
    pub(crate) tpm: Option<u64>,
    pub(crate) max_cost: Option<f64>,
    pub(crate) dry_run: bool,
    pub(crate) ordered: bool,
    pub(crate) shard: Option<Shard>,
    pub(crate) retries: u32,
    pub(crate) no_retry_failed: bool,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
}

impl BatchSettings {
    /// `batch`'s flags as settings: `--shard`, `--max-cost`, `--timeout` and (with `--remote`)
    /// the remote flags are checked here, in the order the run always checked them.
    pub(crate) fn from_flags(args: BatchArgs) -> Result<BatchSettings, CliError> {
        use crate::batch_remote::BatchCommand;
        let mut settings = BatchSettings {
            action: args.command.map(|c| match c {
                BatchCommand::Status(a) => Action::Status(a.id),
                BatchCommand::Cancel(a) => Action::Cancel(a.id),
            }),
            input: args.input,
            output: args.output,
            remote: args.remote,
            poll_interval: None,
            metadata: BTreeMap::new(),
            model: args.model,
            preset: args.preset,
            base_url: args.base_url,
            api_key_env: args.api_key_env,
            timeout: args.timeout,
            concurrency: args.concurrency,
            rpm: args.rpm,
            tpm: args.tpm,
            max_cost: args.max_cost,
            dry_run: args.dry_run,
            ordered: args.ordered,
            shard: None,
            retries: args.retries,
            no_retry_failed: args.no_retry_failed,
            json: args.json,
            quiet: args.quiet,
        };
        // `status` and `cancel` take none of these flags (clap refuses them).
        if settings.action.is_some() {
            return Ok(settings);
        }
        if settings.remote {
            let (poll_interval, metadata) =
                crate::batch_remote::check_flags(&settings, args.poll_interval, &args.metadata)?;
            settings.poll_interval = poll_interval;
            settings.metadata = metadata;
        }
        settings.shard = args.shard.as_deref().map(str::parse::<Shard>).transpose().map_err(CliError::Usage)?;
        check_max_cost(settings.max_cost)?;
        if let Some(t) = settings.timeout {
            seconds("--timeout", t)?;
        }
        Ok(settings)
    }
}

fn no_retries(
    builder: mamba_backends::backend::OpenAICompatibleBackendBuilder,
) -> mamba_backends::backend::OpenAICompatibleBackendBuilder {
    builder.retry_policy(RetryPolicy::none())
}

/// The server settings of a batch command, for one server (`url`, else the preset's); no
/// `[defaults.NAME]` section applies.
pub(crate) fn server(args: &BatchSettings, url: Option<&String>) -> Server {
    Server {
        model: Some(args.model.clone().unwrap_or_else(|| "batch".into())),
        preset: args.preset.clone(),
        base_url: url.cloned(),
        api_key_env: args.api_key_env.clone(),
        timeout: args.timeout,
        ..Server::default()
    }
}

/// One backend, or a pool of the `--base-url` replicas. Retries are the run's own.
async fn backend(args: &BatchSettings) -> Result<Arc<dyn ModelBackend>, CliError> {
    let conn = |url: Option<&String>| server(args, url);
    if args.base_url.len() <= 1 {
        let c = connect_tuned(&conn(args.base_url.first()), no_retries).await?;
        return Ok(Arc::new(c.backend));
    }
    let mut pool = BackendPool::builder();
    for url in &args.base_url {
        let c = connect_tuned(&conn(Some(url)), no_retries).await?;
        pool = pool.endpoint(Arc::new(c.backend));
    }
    Ok(Arc::new(pool.build()?))
}

/// The input and output (clap requires both unless a subcommand is given).
pub(crate) fn files(args: &BatchSettings) -> Result<(&str, &PathBuf), CliError> {
    match (&args.input, &args.output) {
        (Some(input), Some(output)) => Ok((input, output)),
        _ => Err(CliError::Usage("batch needs INPUT and -o OUTPUT".into())),
    }
}

pub(crate) fn options(args: &BatchSettings) -> Result<BatchOptions, CliError> {
    let (input, output) = files(args)?;
    Ok(BatchOptions::new(Input::parse(input), output)
        .default_model(args.model.clone())
        .concurrency(args.concurrency.unwrap_or(16))
        .rpm(args.rpm)
        .tpm(args.tpm)
        .max_cost(args.max_cost)
        .ordered(args.ordered)
        .shard(args.shard)
        .retry(RetryPolicy::default().max_retries(args.retries))
        .retry_failed(!args.no_retry_failed)
        .dry_run(args.dry_run))
}

/// `mamba-llm batch`.
pub(crate) async fn run(args: BatchSettings) -> Result<(), CliError> {
    if let Some(action) = &args.action {
        return crate::batch_remote::command(action, &args).await;
    }
    if args.remote {
        return crate::batch_remote::run(&args).await;
    }
    let batch = match Batch::open(options(&args)?) {
        Ok(batch) => batch,
        Err(BatchError::Invalid { errors, count }) => return Err(invalid(&args, &errors, count, "sent")),
        Err(e @ (BatchError::Refused(_) | BatchError::Locked { .. })) => return Err(CliError::Usage(e.to_string())),
        Err(e) => return Err(CliError::Io(e.to_string())),
    };
    report_repairs(batch.plan(), files(&args)?.1, args.dry_run);
    if args.dry_run {
        return print_plan(batch.plan(), args.json);
    }
    if args.max_cost.is_some() {
        for m in batch.plan().models.iter().filter(|m| m.estimated_cost_usd.is_none()) {
            note(&format!("mamba-llm: note: no price known for model {:?}; --max-cost counts it as free", m.model));
        }
    }
    let backend = backend(&args).await?;
    let progress = Arc::new(Progress::new());
    let total = batch.plan().to_send;
    let finished = Arc::new(AtomicBool::new(false));
    // A bar on a terminal; otherwise a line every 10 s.
    let drawer = tokio::spawn(draw(
        Arc::clone(&progress),
        args.quiet,
        Arc::clone(&finished),
        "[{bar:30}] {pos}/{len} {msg} ETA {eta}",
        Duration::from_secs(10),
        move |progress, elapsed| {
            let s = progress.snapshot();
            let secs = elapsed.as_secs_f64().max(1e-3);
            let message = format!(
                "{:.1} req/s, {:.0} tok/s, {} failed",
                s.done() as f64 / secs,
                (s.input_tokens + s.output_tokens) as f64 / secs,
                s.failed
            );
            Reading { done: s.done(), total, message, changed: false }
        },
    ));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        note(
            "mamba-llm: stopping: waiting for the requests in flight (Ctrl-C again aborts; the output stays resumable)",
        );
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
    };
    let result = batch.run(backend, progress, shutdown).await;
    finished.store(true, Ordering::Relaxed);
    let _ = drawer.await;
    let summary = result.map_err(|e| CliError::Io(e.to_string()))?;
    if summary.capped_waits > 0 {
        // Said even with --quiet: the server's rate-limit signals are not to be trusted.
        note(&format!(
            "mamba-llm: batch: warning: the server's rate limits asked for waits longer than 300 s ({} times); each was cut to 300 s. Check its x-ratelimit-* and Retry-After headers, or pace the run yourself with --rpm/--tpm.",
            summary.capped_waits
        ));
    }
    if args.json {
        line(&serde_json::to_string(&summary).unwrap_or_default())?;
    } else if !args.quiet {
        note(&summary_line(&summary));
    }
    match summary.exit_code() {
        0 => Ok(()),
        code => Err(CliError::Exit(code)),
    }
}

/// Says on stderr what resuming changed in (or, in a dry run, would change in) an existing
/// output: repeated custom_ids removed, lines that are not records moved aside, a torn last
/// line cut off. Said even with --quiet: it is about the user's data.
fn report_repairs(plan: &Plan, output: &std::path::Path, dry_run: bool) {
    let out = output.display();
    let (were, moved, cut) = if dry_run { ("would be", "would move", "would cut") } else { ("were", "moved", "cut") };
    if plan.duplicates_removed > 0 {
        let ids: Vec<String> = plan.duplicate_ids.iter().map(|id| format!("{id:?}")).collect();
        // The plan names at most 5 ids.
        let more = if plan.duplicate_ids.len() >= 5 { ", …" } else { "" };
        note(&format!(
            "mamba-llm: note: {out}: {} line{} repeated the custom_id of an earlier line (ids {}{more}); the first line of each id is kept, the repeats {were} removed",
            plan.duplicates_removed,
            if plan.duplicates_removed == 1 { "" } else { "s" },
            ids.join(", ")
        ));
    }
    if let Some(file) = plan.invalid_lines_file.as_ref().filter(|_| plan.invalid_output_lines > 0) {
        let numbers: Vec<String> = plan.invalid_output_line_numbers.iter().map(u64::to_string).collect();
        let more =
            if plan.invalid_output_line_numbers.len() as u64 == plan.invalid_output_lines { "" } else { ", …" };
        note(&format!(
            "mamba-llm: note: {out}: {} line{} not a batch output record (line{} {}{more}); {moved} them to {}",
            plan.invalid_output_lines,
            if plan.invalid_output_lines == 1 { " is" } else { "s are" },
            if numbers.len() == 1 { "" } else { "s" },
            numbers.join(", "),
            file.display()
        ));
    }
    if plan.repaired_torn_line {
        note(&format!(
            "mamba-llm: note: {out}: {cut} off a torn last line (left by an interrupted write); its request is sent again"
        ));
    }
}

/// Reports invalid input lines (`what` was not done: sent, uploaded); exit 2.
pub(crate) fn invalid(args: &BatchSettings, errors: &[mamba_batch::LineError], count: u64, what: &str) -> CliError {
    let message = format!(
        "{count} invalid line{} in {}; nothing was {what}",
        if count == 1 { "" } else { "s" },
        args.input.as_deref().unwrap_or("the input")
    );
    let report = || -> Result<(), CliError> {
        if args.json {
            let lines: Vec<serde_json::Value> =
                errors.iter().map(|e| serde_json::json!({"line": e.line, "reason": e.reason})).collect();
            line(
                &serde_json::json!({"error": {"kind": "invalid_input", "message": message, "lines": lines}})
                    .to_string(),
            )?;
        } else {
            for e in errors {
                note(&format!("mamba-llm: line {}: {}", e.line, e.reason));
            }
            note(&format!("mamba-llm: usage error: {message}"));
        }
        Ok(())
    };
    match report() {
        Ok(()) => CliError::Exit(2),
        Err(e) => e,
    }
}

fn summary_line(s: &Summary) -> String {
    let stopped = match s.stopped {
        Some(Stop::CostCap) => {
            format!(" Stopped at the --max-cost cap; {} not sent (run again with a higher cap to go on).", s.not_sent)
        }
        Some(Stop::Interrupted) => format!(" Interrupted; {} not sent (run again to resume).", s.not_sent),
        _ => String::new(),
    };
    format!(
        "mamba-llm: batch: {} lines: {} succeeded, {} failed, {} skipped (already done); {} input + {} output tokens; ${:.4} (${:.4} in all); {:.1} s, {:.1} requests/s.{stopped}",
        s.total,
        s.succeeded,
        s.failed,
        s.skipped,
        s.input_tokens,
        s.output_tokens,
        s.cost_usd,
        s.total_cost_usd,
        s.elapsed_s,
        s.requests_per_s,
    )
}

pub(crate) fn print_plan(plan: &Plan, json: bool) -> Result<(), CliError> {
    if json {
        return line(&serde_json::to_string(plan).unwrap_or_default());
    }
    line(&format!(
        "{} requests to send ({} lines, {} in this shard, {} already done); estimated {} prompt tokens + up to {} output tokens; estimated cost ${:.4}",
        plan.to_send, plan.lines, plan.in_shard, plan.already_done, plan.prompt_tokens, plan.max_output_tokens, plan.estimated_cost_usd
    ))?;
    for m in &plan.models {
        let cost = m.estimated_cost_usd.map_or("no price known".to_owned(), |c| format!("${c:.4}"));
        line(&format!(
            "  {}: {} requests, {} prompt tokens, up to {} output tokens, {cost}",
            m.model, m.requests, m.prompt_tokens, m.max_output_tokens
        ))?;
    }
    Ok(())
}

/// What a progress display shows at one tick.
pub(crate) struct Reading {
    /// Requests done.
    pub(crate) done: u64,
    /// Requests in all.
    pub(crate) total: u64,
    /// After the counts: rates, failures, the server's status.
    pub(crate) message: String,
    /// Something worth a line without a terminal changed (the remote batch's status).
    pub(crate) changed: bool,
}

/// Shows a batch's progress until `finished`, reading it every 200 ms with `read` (given the
/// time since the start): a bar drawn with `template` on a terminal; otherwise a line
/// `mamba-llm: batch: DONE/TOTAL done, MESSAGE` when the reading says something changed and
/// every `every`. Nothing with `quiet`.
pub(crate) async fn draw(
    progress: Arc<Progress>,
    quiet: bool,
    finished: Arc<AtomicBool>,
    template: &str,
    every: Duration,
    mut read: impl FnMut(&Progress, Duration) -> Reading,
) {
    if quiet {
        return;
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let start = tokio::time::Instant::now();
    let mut last_line = start;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        if finished.load(Ordering::Relaxed) {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return;
        }
        let r = read(&progress, start.elapsed());
        match &bar {
            Some(bar) => {
                bar.set_length(r.total);
                bar.set_position(r.done);
                bar.set_message(r.message);
            }
            None if r.changed || last_line.elapsed() >= every => {
                last_line = tokio::time::Instant::now();
                note(&format!("mamba-llm: batch: {}/{} done, {}", r.done, r.total, r.message));
            }
            None => {}
        }
    }
}
