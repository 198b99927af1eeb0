//! Rust futures as asyncio futures, with no GIL taken on the runtime's threads.
//!
//! Each asyncio event loop gets one [`LoopWaker`]: a queue of finished work and a socket pair
//! whose read end the loop watches (`loop.add_reader`). A runtime task that finishes pushes
//! its outcome on the queue and, if no wake-up is pending, writes one byte. The loop then
//! calls [`LoopWaker::drain`] on its own thread, where the GIL is held anyway, and that turns
//! every queued outcome into Python objects and resolves its future. So:
//!
//! * no runtime thread ever waits for the GIL (the usual bridge takes it on a blocking-pool
//!   thread per result, which under load grows the pool to dozens of threads fighting the
//!   event loop for the GIL);
//! * results that finish together are delivered in one wake-up of the loop;
//! * it works with any loop that has `add_reader` (asyncio's selector loops, uvloop), and with
//!   several loops in several threads, each with its own waker.
//!
//! Cancellation: [`spawn`] returns a [`Task`]; the Python side calls `abort()` when the
//! awaiting coroutine is cancelled, which drops the Rust future (and with it the request and
//! its connection) at once. An outcome for a future that is already done is dropped.

use std::any::Any;
use std::future::Future;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use tokio::task::AbortHandle;

use crate::errors::build_py_err;
use crate::runtime;

/// Finished work, turned into a Python value on the loop's thread.
type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Queue {
    done: Mutex<Vec<(Py<PyAny>, Outcome)>>,
    /// A byte is in the socket (or about to be): no need to write another.
    signaled: AtomicBool,
    tx: UnixStream,
}

impl Queue {
    /// Puts `items` back in front of the queue and asks for another wake-up.
    fn requeue(&self, items: Vec<(Py<PyAny>, Outcome)>) {
        if items.is_empty() {
            return;
        }
        {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            let later = std::mem::replace(&mut *done, items);
            done.extend(later);
        }
        self.wake();
    }

    fn push(&self, future: Py<PyAny>, outcome: Outcome) {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).push((future, outcome));
        self.wake();
    }

    /// Writes the wake-up byte unless one is already pending.
    fn wake(&self) {
        if !self.signaled.swap(true, Ordering::AcqRel) {
            // Non-blocking: a full socket buffer already holds a pending wake-up.
            let _ = (&self.tx).write(&[1]);
        }
    }
}

/// The wake-up channel of one event loop (created by the Python half, one per loop).
#[pyclass(frozen, module = "mamba_backends._native")]
pub(crate) struct LoopWaker {
    queue: Arc<Queue>,
    rx: UnixStream,
}

#[pymethods]
impl LoopWaker {
    #[new]
    fn new() -> PyResult<LoopWaker> {
        runtime::check()?;
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(LoopWaker {
            queue: Arc::new(Queue { done: Mutex::new(Vec::new()), signaled: AtomicBool::new(false), tx }),
            rx,
        })
    }

    /// The file descriptor the loop watches.
    fn fileno(&self) -> i32 {
        self.rx.as_raw_fd()
    }

    /// Resolves every future whose work finished (the loop's reader callback).
    fn drain(&self, py: Python<'_>) -> PyResult<()> {
        let mut buf = [0u8; 256];
        loop {
            match (&self.rx).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        // Cleared before the queue is taken: work pushed after this writes a new byte.
        self.queue.signaled.store(false, Ordering::Release);
        let items = std::mem::take(&mut *self.queue.done.lock().unwrap_or_else(|e| e.into_inner()));
        let mut items = items.into_iter();
        while let Some((future, outcome)) = items.next() {
            let Err(error) = resolve(py, future.bind(py), outcome) else {
                continue;
            };
            if error.is_instance_of::<PyException>(py) {
                // One future's failure to resolve must not leave the others pending.
                error.write_unraisable(py, Some(future.bind(py)));
            } else {
                // KeyboardInterrupt or SystemExit (a signal handler ran inside a callback):
                // it propagates, and the rest waits for the next wake-up.
                self.queue.requeue(items.collect());
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Sets the outcome on `future`, unless it is already done (cancelled while the work ran).
fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: Outcome) -> PyResult<()> {
    if future.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match outcome(py) {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,))?,
        Err(error) => future.call_method1(pyo3::intern!(py, "set_exception"), (error.into_value(py),))?,
    };
    Ok(())
}

/// The Rust work behind one asyncio future.
#[pyclass(frozen, module = "mamba_backends._native")]
pub(crate) struct Task {
    pub(crate) abort: AbortHandle,
}

#[pymethods]
impl Task {
    /// Drops the work now (its request and connection with it). Harmless once it finished.
    fn abort(&self) {
        self.abort.abort();
    }
}

/// Runs `work` on the shared runtime; its value (or error, as the exception of its kind,
/// naming `model`) resolves `future` through `waker`.
pub(crate) fn spawn<F, T>(waker: &LoopWaker, future: Py<PyAny>, model: String, work: F) -> PyResult<Task>
where
    F: Future<Output = Result<T, mamba_backends::Error>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    runtime::check()?;
    let queue = Arc::clone(&waker.queue);
    let handle = runtime::handle()?.spawn(async move {
        // A panic becomes a Python exception, never a future left pending forever.
        let result = AssertUnwindSafe(work).catch_unwind().await;
        let outcome: Outcome = Box::new(move |py| match result {
            Ok(Ok(value)) => value.into_py_any(py),
            Ok(Err(error)) => Err(build_py_err(py, &error, &model)),
            Err(panic) => Err(PyRuntimeError::new_err(format!(
                "internal error in mamba_backends (a Rust panic: {}); please report it",
                panic_message(panic.as_ref())
            ))),
        });
        queue.push(future, outcome);
    });
    Ok(Task { abort: handle.abort_handle() })
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "no message"
    }
}
