//! [`NativeStream`]: a streamed answer, handed to Python a batch per wake-up.
//!
//! The request starts on the first `next_batch()`. Each call waits for one chunk, then takes
//! every chunk already decoded without waiting (up to [`MAX_BATCH`]), so the chunks of one
//! network read reach Python in one asyncio wake-up and one GIL acquisition. An error after
//! some chunks is kept and raised by the next call, after those chunks were delivered.
//!
//! Dropping the stream (the Python object is collected, `close()` is called, or the task
//! awaiting a batch is cancelled and the object released) drops the HTTP response, which
//! closes or returns its connection: nothing keeps reading for nobody.

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use mamba_backends::backend::ChunkStream;
use mamba_backends::{Error, Message, ModelBackend, RequestOptions, StreamAccumulator};
use pyo3::prelude::*;
use tokio::sync::Mutex;
use tokio::task::AbortHandle;

use crate::bridge::{spawn, LoopWaker, Task};
use crate::convert::{Chunk, ChunkBatch};
use crate::runtime;

/// The most chunks handed over in one wake-up.
const MAX_BATCH: usize = 512;

enum State {
    /// Not sent yet.
    Pending { backend: Arc<dyn ModelBackend>, messages: Vec<Message>, options: Box<RequestOptions> },
    /// Sent; chunks arriving.
    Open { stream: ChunkStream, assembler: Box<StreamAccumulator>, failed: Option<Error> },
    /// Ended, failed or closed.
    Done,
}

/// A streamed answer (created by `NativeBackend.stream`).
#[pyclass(frozen, module = "mamba_backends._native")]
pub(crate) struct NativeStream {
    state: Arc<Mutex<State>>,
    model: String,
    /// The batch being awaited, so `close` can stop it at once.
    inflight: std::sync::Mutex<Option<AbortHandle>>,
}

impl NativeStream {
    pub(crate) fn new(
        backend: Arc<dyn ModelBackend>,
        messages: Vec<Message>,
        options: RequestOptions,
        model: String,
    ) -> NativeStream {
        NativeStream {
            state: Arc::new(Mutex::new(State::Pending { backend, messages, options: Box::new(options) })),
            model,
            inflight: std::sync::Mutex::new(None),
        }
    }
}

async fn next_batch(state: Arc<Mutex<State>>) -> Result<Vec<Chunk>, Error> {
    let mut guard = state.lock().await;
    match std::mem::replace(&mut *guard, State::Done) {
        State::Pending { backend, messages, options } => {
            let stream = backend.stream(&messages, &options).await?;
            *guard = State::Open { stream, assembler: Box::default(), failed: None };
        }
        other => *guard = other,
    }
    let State::Open { stream, assembler, failed } = &mut *guard else {
        return Ok(Vec::new());
    };
    if let Some(e) = failed.take() {
        *guard = State::Done;
        return Err(e);
    }
    let mut batch = Vec::new();
    let mut ended = false;
    let mut next = stream.next().await;
    loop {
        match next {
            Some(Ok(chunk)) => {
                assembler.push(&chunk);
                // The whole calls, assembled as `complete()` would return them, ride on the
                // chunk that says why the model stopped (code that stops at the first
                // `is_final` has them) and on the last one.
                let assembled = if chunk.is_final {
                    Some(std::mem::take(&mut **assembler).finish().tool_calls)
                } else {
                    chunk.finish_reason.is_some().then(|| StreamAccumulator::clone(assembler).finish().tool_calls)
                };
                batch.push(Chunk { chunk, assembled });
            }
            Some(Err(e)) if batch.is_empty() => {
                *guard = State::Done;
                return Err(e);
            }
            Some(Err(e)) => {
                *failed = Some(e);
                break;
            }
            None => {
                ended = true;
                break;
            }
        }
        if batch.len() >= MAX_BATCH {
            break;
        }
        match stream.next().now_or_never() {
            Some(item) => next = item,
            None => break,
        }
    }
    if ended {
        *guard = State::Done;
    }
    Ok(batch)
}

#[pymethods]
impl NativeStream {
    /// Resolves `future` with the next chunks (a list of `StreamChunk`); an empty list when the
    /// stream has ended. Fails with the backend's error when the request or the stream fails.
    fn next_batch(&self, waker: &LoopWaker, future: Py<PyAny>) -> PyResult<Task> {
        let state = Arc::clone(&self.state);
        let task = spawn(waker, future, self.model.clone(), async move { next_batch(state).await.map(ChunkBatch) })?;
        *self.inflight.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort.clone());
        Ok(task)
    }

    /// Ends the stream now: the response is dropped and its connection closed. Safe to call
    /// twice, and while a batch is awaited: that batch is aborted (its future is never
    /// resolved; the Python half cancels it).
    fn close(&self) {
        if let Some(batch) = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).take() {
            batch.abort();
        }
        match self.state.try_lock() {
            Ok(mut guard) => *guard = State::Done,
            Err(_) => {
                // A batch is being awaited: end the stream as soon as it returns.
                let state = Arc::clone(&self.state);
                if let Ok(runtime) = runtime::check().and_then(|()| runtime::handle()) {
                    runtime.spawn(async move {
                        *state.lock().await = State::Done;
                    });
                }
            }
        }
    }
}
