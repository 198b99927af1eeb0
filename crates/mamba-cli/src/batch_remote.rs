//! `mamba-llm batch --remote` (the server's own Batch API runs the file) and `mamba-llm batch
//! status|cancel ID`. The engine is `mamba_batch::RemoteBatch`; this module checks the flags,
//! connects, draws progress and prints.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use mamba_backends::{batches::BatchJob, OpenAICompatibleBackend, Preset};
use mamba_batch::{BatchError, Progress, RemoteBatch, RemoteOptions, RemoteSummary};
use serde_json::{json, Value};

use crate::batch::{draw, files, invalid, options, print_plan, server, Action, BatchSettings, Reading};
use crate::connect::connect_tuned;
use crate::error::CliError;
use crate::print::{line, note};
use crate::settings::seconds;

/// `batch status ID`, `batch cancel ID`.
#[derive(Debug, Subcommand)]
pub(crate) enum BatchCommand {
    /// Show a batch of the server's Batch API: status, request counts, file ids, errors.
    Status(BatchIdArgs),
    /// Cancel a batch of the server's Batch API (it goes `cancelling`, then `cancelled` with
    /// the output of the requests that ran).
    Cancel(BatchIdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BatchIdArgs {
    /// The batch id (as `batch --remote` prints it, or in OUT.remote.json).
    pub(crate) id: String,
}

/// The presets with a Batch API, for messages.
fn presets_with_batch_api() -> String {
    Preset::with_batch_api().map(Preset::name).collect::<Vec<_>>().join(", ")
}

/// Refuses a named preset without a Batch API (a plain `--base-url` is tried).
fn check_preset(preset: Preset) -> Result<(), CliError> {
    if preset.spec().batch_api {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{} has no OpenAI-compatible Batch API; --remote works with {} (or a plain --base-url, tried as is); without --remote the requests are sent one by one",
        preset.spec().display_name,
        presets_with_batch_api()
    )))
}

/// Connects to the one server a remote batch goes to; its preset must have a Batch API.
async fn connect(args: &BatchSettings) -> Result<OpenAICompatibleBackend, CliError> {
    if args.base_url.len() > 1 {
        return Err(CliError::Usage(
            "--remote and batch status|cancel take one --base-url (one server runs the batch)".into(),
        ));
    }
    let backend = connect_tuned(&server(args, args.base_url.first()), |b| b).await?.backend;
    check_preset(backend.preset())?;
    Ok(backend)
}

/// The checks of `--remote`'s flags, in this order: the flags it cannot honour, the poll
/// interval, a named preset without a Batch API, the metadata. Gives the poll interval and
/// the metadata ([`BatchSettings::from_flags`] calls it before anything is read).
pub(crate) fn check_flags(
    args: &BatchSettings,
    poll_interval: Option<f64>,
    metadata: &[String],
) -> Result<(Option<Duration>, BTreeMap<String, String>), CliError> {
    let given = [
        ("--rpm", args.rpm.is_some()),
        ("--tpm", args.tpm.is_some()),
        ("--concurrency", args.concurrency.is_some()),
        ("--ordered", args.ordered),
        ("--no-retry-failed", args.no_retry_failed),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        return Err(CliError::Usage(format!(
            "{flag} does not apply to --remote: the server runs and paces the batch (leave out --remote to send the requests from here)"
        )));
    }
    let poll_interval = poll_interval.map(|p| seconds("--poll-interval", p)).transpose()?;
    // A named preset is checked before anything is read.
    if let Some(name) = &args.preset {
        if let Some(preset) = Preset::from_name(name) {
            check_preset(preset)?;
        }
    }
    Ok((poll_interval, parse_metadata(metadata)?))
}

fn parse_metadata(metadata: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    metadata
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CliError::Usage(format!("--metadata takes KEY=VALUE, not {kv:?}"))),
        })
        .collect()
}

fn failed(e: BatchError) -> CliError {
    match e {
        BatchError::Interrupted => {
            note("mamba-llm: interrupted while uploading; no batch was created (run again to upload)");
            CliError::Exit(130)
        }
        BatchError::Refused(reason) => CliError::Usage(reason),
        e @ BatchError::Locked { .. } => CliError::Usage(e.to_string()),
        BatchError::Remote(e) => CliError::Backend(e),
        other => CliError::Io(other.to_string()),
    }
}

/// `batch INPUT -o OUT --remote`.
pub(crate) async fn run(args: &BatchSettings) -> Result<(), CliError> {
    // The flags were checked by `BatchSettings::from_flags`.
    let mut remote = RemoteOptions::new().metadata(args.metadata.clone());
    if let Some(first) = args.poll_interval {
        remote = remote.poll_interval(first, Duration::from_secs(30).max(first));
    }
    let batch = match RemoteBatch::open(options(args)?, remote) {
        Ok(batch) => batch,
        Err(BatchError::Invalid { errors, count }) => return Err(invalid(args, &errors, count, "uploaded")),
        Err(e) => return Err(failed(e)),
    };
    let (_, output) = files(args)?;
    if args.dry_run {
        if args.json {
            let mut plan = serde_json::to_value(batch.plan()).unwrap_or(Value::Null);
            plan["remote"] = json!({"endpoint": batch.endpoint(), "requests": batch.plan().in_shard,
                                    "resuming_batch": batch.resuming().and_then(|s| s.batch_id.clone())});
            return line(&plan.to_string());
        }
        print_plan(batch.plan(), false)?;
        return line(&match batch.resuming().and_then(|s| s.batch_id.as_deref()) {
            Some(id) => format!("--remote: would resume polling batch {id} ({})", batch.state_path().display()),
            None => format!(
                "--remote: would upload {} requests to {} as one batch",
                batch.plan().in_shard,
                batch.endpoint()
            ),
        });
    }
    if let Some(cap) = args.max_cost {
        let estimate = batch.plan().estimated_cost_usd;
        if batch.resuming().is_none() && estimate > cap {
            note(&format!(
                "mamba-llm: the estimated cost ${estimate:.4} (prompt tokens and output limits at the profiles' prices) is above --max-cost ${cap:.4}; nothing was uploaded"
            ));
            return Err(CliError::Exit(3));
        }
    }
    let backend = connect(args).await?;
    let batch = batch.file_purpose(backend.preset().spec().batch_file_purpose);
    if let Some(state) = batch.resuming() {
        if !args.quiet && !args.json {
            match &state.batch_id {
                Some(id) => note(&format!("mamba-llm: resuming batch {id} ({})", batch.state_path().display())),
                None => note(&format!(
                    "mamba-llm: resuming with the uploaded file {} ({})",
                    state.input_file_id,
                    batch.state_path().display()
                )),
            }
        }
    }
    let progress = Arc::new(Progress::new());
    let finished = Arc::new(AtomicBool::new(false));
    // A bar on a terminal (done/total, failures, the server's status); otherwise a line when
    // the status changes, and every 30 s (nothing with --quiet or --json).
    let mut last_status = String::new();
    let drawer = tokio::spawn(draw(
        Arc::clone(&progress),
        args.quiet || args.json,
        Arc::clone(&finished),
        "[{bar:30}] {pos}/{len} {msg} {elapsed}",
        Duration::from_secs(30),
        move |progress, _| {
            let s = progress.snapshot();
            let status = progress.status();
            let changed = status != last_status;
            let message = format!("{status}, {} failed", s.failed);
            last_status = status;
            Reading { done: s.succeeded + s.failed, total: s.to_send, message, changed }
        },
    ));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let result = batch.run(&backend, progress, shutdown).await;
    finished.store(true, Ordering::Relaxed);
    let _ = drawer.await;
    let summary = result.map_err(failed)?;
    if args.json {
        let mut value = serde_json::to_value(&summary).unwrap_or(Value::Null);
        value["output"] = json!(output.display().to_string());
        line(&value.to_string())?;
    } else if !args.quiet || summary.interrupted {
        note(&summary_line(&summary, &output.display().to_string()));
    }
    match summary.exit_code() {
        0 => Ok(()),
        code => Err(CliError::Exit(code)),
    }
}

fn summary_line(s: &RemoteSummary, output: &str) -> String {
    if s.interrupted {
        return format!(
            "mamba-llm: stopped polling batch {} ({}, {}/{} done, {} failed); it goes on on the server: run the same command again to resume, or `mamba-llm batch status {}`",
            s.batch_id, s.status, s.succeeded, s.total, s.failed, s.batch_id
        );
    }
    let cost = if s.cost_usd > 0.0 { format!(", ${:.4}", s.cost_usd) } else { String::new() };
    let mut text = format!(
        "mamba-llm: batch {} {}: {} requests, {} succeeded, {} failed; {} output + {} error lines in {output}; {} input + {} output tokens{cost}; {:.1} s.",
        s.batch_id,
        s.status,
        s.total,
        s.succeeded,
        s.failed,
        s.output_lines,
        s.error_lines,
        s.input_tokens,
        s.output_tokens,
        s.elapsed_s
    );
    for e in s.errors.iter().take(5) {
        text.push_str(&format!("\nmamba-llm: batch error: {e}"));
    }
    text
}

/// `batch status ID`, `batch cancel ID`.
pub(crate) async fn command(action: &Action, args: &BatchSettings) -> Result<(), CliError> {
    let backend = connect(args).await?;
    let job = match action {
        Action::Status(id) => backend.batches().retrieve_batch(id).await,
        Action::Cancel(id) => backend.batches().cancel_batch(id).await,
    }
    .map_err(CliError::Backend)?;
    if args.json {
        return line(&job_json(&job).to_string());
    }
    for text in describe(&job) {
        line(&text)?;
    }
    Ok(())
}

fn job_json(job: &BatchJob) -> Value {
    let errors: Vec<Value> = job
        .errors
        .iter()
        .map(|e| json!({"code": e.code, "message": e.message, "param": e.param, "line": e.line}))
        .collect();
    let c = job.request_counts;
    json!({
        "id": job.id,
        "status": job.status.as_str(),
        "endpoint": job.endpoint,
        "request_counts": {"total": c.total, "completed": c.completed, "failed": c.failed},
        "input_file_id": job.input_file_id,
        "output_file_id": job.output_file_id,
        "error_file_id": job.error_file_id,
        "errors": errors,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "expires_at": job.expires_at,
    })
}

fn describe(job: &BatchJob) -> Vec<String> {
    let c = job.request_counts;
    let mut out =
        vec![format!("{}: {} ({}/{} done, {} failed)", job.id, job.status, c.completed + c.failed, c.total, c.failed)];
    let files = [
        ("endpoint", &job.endpoint),
        ("input file", &job.input_file_id),
        ("output file", &job.output_file_id),
        ("error file", &job.error_file_id),
    ];
    for (label, value) in files {
        if let Some(v) = value {
            out.push(format!("  {label}: {v}"));
        }
    }
    for e in &job.errors {
        let message = e.message.as_deref().or(e.code.as_deref()).unwrap_or("an error");
        out.push(match e.line {
            Some(n) => format!("  error: line {n}: {message}"),
            None => format!("  error: {message}"),
        });
    }
    out
}
