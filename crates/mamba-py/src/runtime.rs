//! The one Tokio runtime every backend of the process shares, and the fork check.
//!
//! The runtime is built on first use with
//! `MAMBA_PY_WORKER_THREADS` worker threads (default: the CPUs this process may run on, at
//! most 4: the client's work is parsing, which one thread does at a few hundred MB/s).
//!
//! A forked child inherits the runtime's memory but none of its threads, so a request made
//! there would wait forever. Every entry point calls [`check`], which compares the process id
//! with the one that started the runtime (its first request) and raises a `RuntimeError` that
//! says what to do. Backends made before a fork but not yet used work in the child.

use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::PyResult;

static STARTED_IN: OnceLock<u32> = OnceLock::new();
static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Fails in a process forked after the runtime started (see the module doc).
pub(crate) fn check() -> PyResult<()> {
    let pid = std::process::id();
    // Only a runtime that exists can have lost its threads: objects made before a fork, with no
    // request yet, work in the child.
    let Some(&started) = STARTED_IN.get() else {
        return Ok(());
    };
    if started != pid {
        return Err(PyRuntimeError::new_err(
            "mamba_backends was used before this process was forked, and its runtime's threads do not \
             exist in the child: create backends only after fork, or use the 'spawn' or 'forkserver' \
             start method of multiprocessing",
        ));
    }
    Ok(())
}

fn worker_threads() -> usize {
    let from_env = std::env::var("MAMBA_PY_WORKER_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok());
    from_env.filter(|n| *n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4))
}

/// The runtime (call [`check`] first).
pub(crate) fn handle() -> PyResult<&'static tokio::runtime::Runtime> {
    let built = RUNTIME.get_or_init(|| {
        let _ = STARTED_IN.set(std::process::id());
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().worker_threads(worker_threads()).thread_name("mamba-backends");
        builder.build().map_err(|e| format!("mamba_backends cannot start its runtime's threads: {e}"))
    });
    built.as_ref().map_err(|e| PyRuntimeError::new_err(e.clone()))
}
