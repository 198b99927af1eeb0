//! `mamba-llm`: chat with any OpenAI-compatible server.
//!
//! `main` parses the command line, turns the command's flags into its settings
//! ([`settings`]) in one match over the command, runs it, and reports its failure.

#![allow(clippy::print_stderr)]

mod args;
mod attach;
mod batch;
mod batch_remote;
mod bench;
mod chat;
mod cluster;
mod commands;
mod config;
mod config_cmd;
mod connect;
mod editor;
mod embed;
mod error;
mod fdlimit;
mod input;
mod json;
mod keys;
mod local;
mod logs;
mod print;
mod prompt_template;
mod resolve;
mod serve;
mod settings;
mod shell;
#[cfg(feature = "sql")]
mod sql;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliError;
use crate::print::report;
use crate::settings::{Section, Server};

/// A command, ready to run: how it reports a failure, which runtime it needs, and its work.
struct Job {
    /// `--json`: a failure is a JSON object on stdout.
    json: bool,
    /// The gateway serves many clients at once on every core; every other command is one
    /// client and runs on one thread.
    multi_thread: bool,
    run: Pin<Box<dyn Future<Output = Result<(), CliError>>>>,
}

impl Job {
    fn new(json: bool, run: impl Future<Output = Result<(), CliError>> + 'static) -> Job {
        Job { json, multi_thread: false, run: Box::pin(run) }
    }

    fn sync(json: bool, run: impl FnOnce() -> Result<(), CliError> + 'static) -> Job {
        Job::new(json, async move { run() })
    }
}

/// `sql`, or (a build without the `sql` feature) how to get it.
async fn sql(settings: settings::Sql) -> Result<(), CliError> {
    #[cfg(feature = "sql")]
    return sql::run(settings).await;
    #[cfg(not(feature = "sql"))]
    {
        let _ = settings;
        Err(CliError::Unsupported(
            "this mamba-llm was built without SQL; build it with: cargo build --release -p mamba-cli --features sql"
                .into(),
        ))
    }
}

/// The one match over the command: its settings from its flags, and the function that runs it.
fn job(command: Command) -> Job {
    match command {
        Command::Chat(args) => {
            Job::new(args.conn.json, async move { chat::run(settings::Chat::from_flags(args)).await })
        }
        Command::Health(conn) => {
            let json = conn.json;
            Job::new(json, commands::health::run(Server::from_flags(conn, Section::Health), json))
        }
        Command::Models(args) => {
            let json = args.conn.json;
            let server = Server::from_flags(args.conn, Section::Models);
            Job::new(json, commands::models::run(server, json, args.local))
        }
        Command::Embed(args) => Job::new(args.conn.json, embed::run(settings::Embed::from_flags(args))),
        Command::Extract(args) => Job::new(args.conn.json, commands::extract::run(settings::Extract::from_flags(args))),
        Command::Profiles(args) => Job::sync(args.json, move || {
            commands::profiles::run(args.model.as_deref(), args.provider.as_deref(), args.json)
        }),
        Command::Presets => Job::sync(false, commands::presets::run),
        Command::Mock(args) => Job::new(false, async move {
            let keep = (!args.keep_all_requests).then_some(args.keep_requests);
            commands::mock::run(args.port, args.script.as_deref(), args.api_key.as_deref(), keep).await
        }),
        Command::Bench(args) => {
            Job::new(args.conn.json, async move { bench::run(bench::Bench::from_flags(args)?).await })
        }
        Command::Batch(args) => {
            Job::new(args.json, async move { batch::run(batch::BatchSettings::from_flags(args)?).await })
        }
        Command::Pull(args) => {
            Job::new(false, async move { local::pull(args.model.as_deref(), args.source.as_deref()).await })
        }
        Command::Config(args) => {
            let what = config_cmd::ConfigDo::from_flags(args);
            Job::sync(false, move || config_cmd::run(what))
        }
        Command::Keys(args) => {
            let what = keys::KeysDo::from_flags(args);
            Job::sync(false, move || keys::run(what))
        }
        Command::Logs(args) => {
            let json = args.json;
            let what = logs::LogsDo::from_flags(args);
            Job::sync(json, move || logs::run(what))
        }
        Command::Templates(args) => {
            let what = prompt_template::TemplatesDo::from_flags(args);
            Job::sync(false, move || prompt_template::run(what))
        }
        Command::Completions(args) => Job::sync(false, move || shell::completions(args.shell)),
        Command::Man => Job::sync(false, shell::man),
        Command::Sql(args) => {
            let json = args.conn.json;
            let settings = settings::Sql::from_flags(args);
            Job::new(json, sql(settings))
        }
        Command::Ballista(args) => {
            let cluster = cluster::Cluster::from_flags(args);
            Job { multi_thread: true, ..Job::new(false, cluster::run(cluster)) }
        }
        Command::Serve(args) => Job {
            multi_thread: true,
            ..Job::new(false, async move { serve::run(serve::Serve::from_flags(args)?).await })
        },
    }
}

fn main() -> ExitCode {
    // No Rust panic message or backtrace reaches the user: one line, as for any failure.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        eprintln!("mamba-llm: internal error: {message}");
    }));
    let job = job(Cli::parse().command);
    let mut builder = if job.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mamba-llm: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(job.run);
    // Pending connections of the in-process mock must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, job.json);
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_of(line: &[&str]) -> Job {
        job(Cli::try_parse_from(line).expect("parses").command)
    }

    /// Which commands report failures as JSON with `--json`, and which runs on every core:
    /// what `main` needs before the command runs (making a job runs nothing).
    #[test]
    fn one_match_gives_each_command_its_output_and_runtime() {
        for line in [
            &["mamba-llm", "chat", "--json", "hi"][..],
            &["mamba-llm", "health", "--json"],
            &["mamba-llm", "models", "--json"],
            &["mamba-llm", "embed", "--json", "x"],
            &["mamba-llm", "extract", "--schema", "s.json", "--json", "x"],
            &["mamba-llm", "profiles", "--json"],
            &["mamba-llm", "bench", "--json"],
            &["mamba-llm", "batch", "in.jsonl", "-o", "out.jsonl", "--json"],
            &["mamba-llm", "logs", "--json"],
        ] {
            let job = job_of(line);
            assert!(job.json && !job.multi_thread, "{line:?}");
        }
        assert!(!job_of(&["mamba-llm", "chat", "hi"]).json);
        assert!(!job_of(&["mamba-llm", "presets"]).json);
        let serve = job_of(&["mamba-llm", "serve"]);
        assert!(serve.multi_thread && !serve.json);
    }
}
