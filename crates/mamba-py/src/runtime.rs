//! The one Tokio runtime every backend of the process shares, and the fork check.
//!
//! The runtime is pyo3-async-runtimes' global one, built on first use with
//! `MAMBA_PY_WORKER_THREADS` worker threads (default: the CPUs this process may run on, at
//! most 4: the client's work is parsing, which one thread does at a few hundred MB/s).
//!
//! A forked child inherits the runtime's memory but none of its threads, so a request made
//! there would wait forever. Every entry point calls [`check`], which compares the process id
//! with the one that started the runtime and raises a `RuntimeError` that says what to do.
//!
//! Results reach Python through [`future_into_py`]: pyo3-async-runtimes' bridge on a
//! [`Runtime`] that counts the runtime threads delivering a result to Python (they take the
//! GIL, and `call_soon_threadsafe` lets it go and takes it back while it wakes the loop). A
//! program whose last `await` was ours can reach interpreter shutdown in that gap; CPython
//! then stops the delivering thread with `pthread_exit` inside Rust frames, and the process
//! crashes (SIGSEGV, seen at exit about one run in six on a loaded machine). The Python half
//! registers [`drain`] with `atexit`, which runs before finalization: it waits, without the
//! GIL, until no delivery is in progress.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use pyo3_async_runtimes::TaskLocals;

static STARTED_IN: OnceLock<u32> = OnceLock::new();

/// Starts the runtime if this is the first call; fails in a process forked after it started.
pub(crate) fn check() -> PyResult<()> {
    let pid = std::process::id();
    let started = *STARTED_IN.get_or_init(|| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().worker_threads(worker_threads()).thread_name("mamba-backends");
        pyo3_async_runtimes::tokio::init(builder);
        pid
    });
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

/// The runtime, for work started outside a Python future (closing a backend).
pub(crate) fn handle() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runtime threads delivering a result to Python (holding or waiting for the GIL).
static DELIVERING: AtomicUsize = AtomicUsize::new(0);

/// Counts one delivery while it lives.
pub(crate) struct Delivering;

impl Delivering {
    pub(crate) fn start() -> Delivering {
        DELIVERING.fetch_add(1, Ordering::SeqCst);
        Delivering
    }
}

impl Drop for Delivering {
    fn drop(&mut self) {
        DELIVERING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// pyo3-async-runtimes' Tokio bridge on the shared runtime, with its deliveries counted.
pub(crate) struct Runtime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for Runtime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        handle().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        // The bridge only runs blocking work to hand a result to Python under the GIL.
        let delivering = Delivering::start();
        handle().spawn_blocking(move || {
            let _delivering = delivering;
            f();
        })
    }
}

impl ContextExt for Runtime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS.try_with(|c| c.get().cloned()).unwrap_or_default()
    }
}

/// `fut` as an asyncio future of the running loop, completed on the shared runtime.
pub(crate) fn future_into_py<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    pyo3_async_runtimes::generic::future_into_py::<Runtime, F, T>(py, fut)
}

/// Waits, with the GIL released, until no runtime thread is delivering a result to Python,
/// for at most `timeout` seconds; returns whether none is. Registered with `atexit` by
/// `mamba_backends/__init__.py` (see the module docs).
#[pyfunction]
pub(crate) fn drain(py: Python<'_>, timeout: f64) -> bool {
    if STARTED_IN.get().is_none_or(|pid| *pid != std::process::id()) {
        return true; // no runtime in this process: nothing can be delivering
    }
    let wait = if timeout.is_finite() { Duration::from_secs_f64(timeout.clamp(0.0, 60.0)) } else { Duration::ZERO };
    let deadline = Instant::now() + wait;
    py.detach(|| loop {
        if DELIVERING.load(Ordering::SeqCst) == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    })
}
