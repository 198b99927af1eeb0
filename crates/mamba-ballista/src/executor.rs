//! An executor: Ballista's own, with `llm()`, `llm_json()` and `embed()` in its function
//! registry, answering rows over the [`LlmFunctions`] it is given.

use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::error::BallistaError;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use mamba_datafusion::LlmFunctions;

/// Where an executor listens and which scheduler it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    scheduler: String,
    bind_host: String,
    external_host: Option<String>,
    flight_port: u16,
    grpc_port: u16,
    vcores: usize,
    work_dir: Option<PathBuf>,
}

impl ExecutorOptions {
    /// An executor of the scheduler at `scheduler` (`HOST:PORT`), listening on 127.0.0.1
    /// ports 50051 (results, Arrow Flight) and 50052 (tasks), with one task slot per CPU.
    pub fn new(scheduler: impl Into<String>) -> ExecutorOptions {
        ExecutorOptions {
            scheduler: scheduler.into(),
            bind_host: "127.0.0.1".into(),
            external_host: None,
            flight_port: 50051,
            grpc_port: 50052,
            vcores: 0,
            work_dir: None,
        }
    }

    /// The address to listen on (default 127.0.0.1; `0.0.0.0` in a container).
    #[must_use]
    pub fn bind_host(mut self, host: impl Into<String>) -> Self {
        self.bind_host = host.into();
        self
    }

    /// The name the scheduler and other executors reach this one by (default: the address
    /// its registration comes from).
    #[must_use]
    pub fn external_host(mut self, host: impl Into<String>) -> Self {
        self.external_host = Some(host.into());
        self
    }

    /// The Arrow Flight port, where results and shuffle data are fetched (default 50051).
    #[must_use]
    pub fn flight_port(mut self, port: u16) -> Self {
        self.flight_port = port;
        self
    }

    /// The port the scheduler sends tasks to (default 50052).
    #[must_use]
    pub fn grpc_port(mut self, port: u16) -> Self {
        self.grpc_port = port;
        self
    }

    /// Tasks run at once (default 0: one per CPU). Requests in flight are bounded by the
    /// functions' own concurrency, whatever this is.
    #[must_use]
    pub fn vcores(mut self, n: usize) -> Self {
        self.vcores = n;
        self
    }

    /// Where shuffle data is written (default: a temporary directory).
    #[must_use]
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }

    fn process_config(&self, functions: &LlmFunctions) -> Result<ExecutorProcessConfig, BallistaError> {
        let bad = || BallistaError::Configuration(format!("{}: give the scheduler as HOST:PORT", self.scheduler));
        let (host, port) = crate::host_port(&self.scheduler).ok_or_else(bad)?;
        let mut registry = BallistaFunctionRegistry::default();
        for udf in functions.udfs() {
            registry.scalar_functions.insert(udf.name().to_owned(), Arc::new(udf));
        }
        Ok(ExecutorProcessConfig {
            bind_host: self.bind_host.clone(),
            external_host: self.external_host.clone(),
            port: self.flight_port,
            grpc_port: self.grpc_port,
            scheduler_host: host.to_owned(),
            scheduler_port: port,
            // Keeps trying until the scheduler answers (in a cluster it may start later).
            scheduler_connect_timeout_seconds: 60,
            vcores: self.vcores,
            work_dir: self.work_dir.as_ref().map(|d| d.display().to_string()),
            print_thread_info: false,
            // Shuffle files of jobs older than a day go, checked every half hour.
            job_data_ttl_seconds: 24 * 3600,
            job_data_clean_up_interval_seconds: 1800,
            override_function_registry: Some(Arc::new(registry)),
            ..ExecutorProcessConfig::default()
        })
    }
}

/// Runs an executor until the process gets Ctrl-C or SIGTERM (then it tells the scheduler,
/// finishes its running tasks and returns). Rows are answered with `functions`, so over the
/// server, key, cache and limits they were built with.
pub async fn run_executor(options: &ExecutorOptions, functions: &LlmFunctions) -> Result<(), BallistaError> {
    let mut config = options.process_config(functions)?;
    // Ballista's own default is a temporary directory it removes at once (so its cleaner
    // reports errors); this one lives as long as the executor.
    let _work_dir = match &config.work_dir {
        Some(_) => None,
        None => {
            let dir = tempfile::Builder::new().prefix("mamba-ballista-").tempdir()?;
            config.work_dir = Some(dir.path().display().to_string());
            Some(dir)
        }
    };
    start_executor_process(Arc::new(config)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_the_functions_and_the_scheduler_address_is_checked() {
        let f = LlmFunctions::for_planning();
        let config = ExecutorOptions::new("sched:7000").vcores(2).process_config(&f).unwrap();
        assert_eq!((config.scheduler_host.as_str(), config.scheduler_port, config.vcores), ("sched", 7000, 2));
        let registry = config.override_function_registry.unwrap();
        for name in ["llm", "llm_json", "embed", "upper"] {
            assert!(registry.scalar_functions.contains_key(name), "{name}");
        }
        for bad in ["sched", "sched:x", ":7000"] {
            let Err(e) = ExecutorOptions::new(bad).process_config(&f) else { panic!("{bad} accepted") };
            let e = e.to_string();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
    }
}
