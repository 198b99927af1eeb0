//! `mamba-llm`: chat with any OpenAI-compatible server.

#![allow(clippy::print_stderr)]

mod args;
mod attach;
mod batch;
mod batch_remote;
mod bench;
mod chat;
mod commands;
mod config;
mod config_cmd;
mod connect;
mod daily;
mod editor;
mod embed;
mod fdlimit;
mod input;
mod keys;
#[cfg_attr(not(feature = "local"), path = "local_off.rs")]
mod local;
mod logs;
mod output;
mod resolve;
mod serve;
mod shell;
mod template;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::output::{report, CliError};

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
    let mut cli = Cli::parse();
    config::tag(&mut cli.command);
    let json = match &cli.command {
        Command::Chat(a) => a.conn.json,
        Command::Health(c) => c.json,
        Command::Models(a) => a.conn.json,
        Command::Embed(a) => a.conn.json,
        Command::Profiles(a) => a.json,
        Command::Bench(a) => a.conn.json,
        Command::Batch(a) => a.json,
        Command::Logs(a) => a.json,
        Command::Presets
        | Command::Mock(_)
        | Command::Pull(_)
        | Command::Config(_)
        | Command::Keys(_)
        | Command::Templates(_)
        | Command::Completions(_)
        | Command::Man
        | Command::Serve(_) => false,
    };
    // The gateway serves many clients at once on every core; every other command is one
    // client and runs on one thread.
    let mut builder = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mamba-llm: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result: Result<(), CliError> = runtime.block_on(async move {
        match cli.command {
            Command::Chat(args) => chat::run(args).await,
            Command::Health(conn) => commands::health(conn).await,
            Command::Models(args) => commands::models(args).await,
            Command::Embed(args) => embed::run(args).await,
            Command::Profiles(args) => commands::profiles(args),
            Command::Presets => commands::presets(),
            Command::Mock(args) => commands::mock(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Batch(args) => batch::run(args).await,
            Command::Pull(args) => local::pull(args).await,
            Command::Config(args) => config_cmd::run(args),
            Command::Keys(args) => keys::run(args),
            Command::Logs(args) => logs::run(args),
            Command::Templates(args) => template::run(args),
            Command::Completions(args) => shell::completions(args),
            Command::Man => shell::man(),
            Command::Serve(args) => serve::run(args).await,
        }
    });
    // Pending connections of the in-process mock must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}
