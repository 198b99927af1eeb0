//! `ballista scheduler` and `ballista executor`: a Ballista cluster that runs `mamba-llm sql
//! --ballista` queries. The scheduler plans and needs no server settings; each executor
//! answers rows over the server of its own flags, environment and config file (`[defaults.sql]`),
//! so no endpoint or key travels in a plan.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::ConnArgs;
use crate::error::CliError;
use crate::settings::{Section, Server};

#[derive(Debug, Args)]
pub(crate) struct BallistaArgs {
    #[command(subcommand)]
    pub(crate) role: Role,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Role {
    /// The cluster's scheduler: plans `sql --ballista` queries and hands their tasks to the
    /// executors. It holds no server settings and sends no request.
    Scheduler(SchedulerArgs),
    /// An executor: runs tasks, answering llm(), llm_json() and embed() over the server of its
    /// own flags, environment and config file. Stops on Ctrl-C or SIGTERM once its tasks end.
    Executor(Box<ExecutorArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// Listen on ADDR:PORT (0.0.0.0:50050 to accept executors and clients of other machines).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:50050")]
    pub(crate) bind: String,
    /// The name executors and clients reach the scheduler by (default: the bound address,
    /// or this machine's name when it is 0.0.0.0).
    #[arg(long, value_name = "HOST")]
    pub(crate) external_host: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExecutorArgs {
    /// The scheduler to serve.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    pub(crate) scheduler: String,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Listen on this address (0.0.0.0 in a container).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub(crate) bind: String,
    /// The name the scheduler, other executors and clients reach this one by (default: the
    /// address its registration comes from).
    #[arg(long, value_name = "HOST")]
    pub(crate) external_host: Option<String>,
    /// Arrow Flight port: results and shuffle data are fetched here.
    #[arg(long, value_name = "PORT", default_value_t = 50051)]
    pub(crate) flight_port: u16,
    /// The port the scheduler sends tasks to.
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    pub(crate) grpc_port: u16,
    /// Tasks run at once (default: one per CPU).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) vcores: usize,
    /// Where shuffle data is written (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// Requests in flight at most, over every task of this executor.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,
    /// Keep answers in this file and answer from it: a retried task or a re-run query pays only
    /// for rows not answered before.
    #[arg(long, value_name = "FILE")]
    pub(crate) cache: Option<PathBuf>,
    /// Stop sending once this executor's answers cost this many USD (model profiles' prices).
    #[arg(long, value_name = "USD")]
    pub(crate) max_cost: Option<f64>,
}

/// What `ballista` does.
#[derive(Debug)]
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) enum Cluster {
    Scheduler { bind: String, external_host: Option<String> },
    Executor(Box<Executor>),
}

/// `ballista executor`'s settings.
#[derive(Debug)]
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) struct Executor {
    pub(crate) scheduler: String,
    pub(crate) server: Server,
    pub(crate) bind: String,
    pub(crate) external_host: Option<String>,
    pub(crate) flight_port: u16,
    pub(crate) grpc_port: u16,
    pub(crate) vcores: usize,
    pub(crate) work_dir: Option<PathBuf>,
    pub(crate) concurrency: usize,
    pub(crate) cache: Option<PathBuf>,
    pub(crate) max_cost: Option<f64>,
}

impl Cluster {
    pub(crate) fn from_flags(args: BallistaArgs) -> Cluster {
        match args.role {
            Role::Scheduler(a) => Cluster::Scheduler { bind: a.bind, external_host: a.external_host },
            Role::Executor(a) => Cluster::Executor(Box::new(Executor {
                scheduler: a.scheduler,
                server: Server::from_flags(a.conn, Section::Sql),
                bind: a.bind,
                external_host: a.external_host,
                flight_port: a.flight_port,
                grpc_port: a.grpc_port,
                vcores: a.vcores,
                work_dir: a.work_dir,
                concurrency: a.concurrency as usize,
                cache: a.cache,
                max_cost: a.max_cost,
            })),
        }
    }
}

/// `ballista`, or (a build without the `ballista` feature) how to get it.
pub(crate) async fn run(cluster: Cluster) -> Result<(), CliError> {
    #[cfg(feature = "ballista")]
    return match cluster {
        Cluster::Scheduler { bind, external_host } => imp::scheduler(&bind, external_host).await,
        Cluster::Executor(settings) => imp::executor(*settings).await,
    };
    #[cfg(not(feature = "ballista"))]
    {
        let _ = cluster;
        Err(unsupported())
    }
}

/// What a build without Ballista says.
#[cfg(not(feature = "ballista"))]
pub(crate) fn unsupported() -> CliError {
    CliError::Unsupported(
        "this mamba-llm was built without Ballista; build it with: cargo build --release -p mamba-cli --features ballista"
            .into(),
    )
}

#[cfg(feature = "ballista")]
mod imp {
    use std::sync::Arc;
    use std::time::Duration;

    use mamba_backends::ModelBackend;
    use mamba_ballista::{run_executor, serve_scheduler, ExecutorOptions};
    use mamba_datafusion::LlmFunctions;

    use super::Executor;
    use crate::connect::connect;
    use crate::error::CliError;
    use crate::print::note;
    use crate::settings::check_max_cost;
    use crate::sql::{build_functions, open_cache, summary};

    /// Ballista's own log lines (tasks, stages, executors coming and going) on stderr.
    fn log_to_stderr() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .with_target(false)
            .try_init();
    }

    pub(super) async fn scheduler(bind: &str, external_host: Option<String>) -> Result<(), CliError> {
        log_to_stderr();
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| CliError::Io(format!("cannot listen on {bind}: {e}")))?;
        let addr = listener.local_addr()?;
        let host = external_host.unwrap_or_else(|| {
            if addr.ip().is_unspecified() {
                std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into())
            } else {
                addr.ip().to_string()
            }
        });
        let port = addr.port();
        note(&format!(
            "mamba-llm: Ballista scheduler on {addr}. Executors: mamba-llm ballista executor --scheduler {host}:{port}; \
             queries: mamba-llm sql --ballista df://{host}:{port} \"SELECT ...\""
        ));
        tokio::select! {
            served = serve_scheduler(listener, &host) => served.map_err(|e| CliError::Unavailable(format!("the scheduler stopped: {e}"))),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    }

    pub(super) async fn executor(args: Executor) -> Result<(), CliError> {
        check_max_cost(args.max_cost)?;
        log_to_stderr();
        let cache = open_cache(args.cache.as_deref())?;
        let conn = connect(&args.server).await?;
        conn.note_if_found();
        let answering =
            format!("{} (model {})", mamba_backends::redact::redact_url(conn.backend.base_url()), conn.backend.model());
        let functions =
            build_functions(LlmFunctions::builder(Arc::new(conn.backend)), args.concurrency, cache, args.max_cost)
                .build();
        let mut options = ExecutorOptions::new(&args.scheduler)
            .bind_host(&args.bind)
            .flight_port(args.flight_port)
            .grpc_port(args.grpc_port)
            .vcores(args.vcores);
        if let Some(host) = &args.external_host {
            options = options.external_host(host);
        }
        if let Some(dir) = &args.work_dir {
            options = options.work_dir(dir);
        }
        note(&format!(
            "mamba-llm: Ballista executor of {} on {}:{} (tasks on port {}), answering over {answering}",
            args.scheduler, args.bind, args.flight_port, args.grpc_port
        ));
        // What this executor has done, every 10 s while it changes.
        let watched = functions.clone();
        let progress = tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let s = watched.stats();
                if s.done != last {
                    last = s.done;
                    note(&format!("mamba-llm: {} rows answered; {}", s.done, summary(&s)));
                }
            }
        });
        let ran = run_executor(&options, &functions).await;
        progress.abort();
        let s = functions.stats();
        note(&format!("mamba-llm: executor stopped after {} rows; {}", s.done, summary(&s)));
        ran.map_err(|e| CliError::Unavailable(format!("the executor stopped: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::{Cli, Command};

    /// The command lines of the Kubernetes manifest are ones this CLI accepts.
    #[test]
    fn the_kubernetes_manifest_runs_commands_that_parse() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/kubernetes/mamba-ballista.yaml");
        let manifest = std::fs::read_to_string(path).unwrap();
        let mut roles = Vec::new();
        for line in manifest.lines().map(str::trim).filter(|l| l.starts_with("args: [")) {
            let args: Vec<String> = serde_json::from_str(&line["args: ".len()..]).unwrap();
            let cli = Cli::try_parse_from(std::iter::once("mamba-llm".to_owned()).chain(args))
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            let Command::Ballista(b) = cli.command else { panic!("{line}: not a ballista command") };
            roles.push(format!("{:?}", b.role).split('(').next().unwrap_or_default().to_owned());
        }
        assert_eq!(roles, ["Scheduler", "Executor"]);
    }
}
