//! The stream handed to callers: reads the body into an [`EventDecoder`] and enforces the idle
//! timeout and the total deadline. What it needs from the backend that opened it is the
//! [`StreamOwner`] trait, implemented in `mod.rs`, so that this file does not import the
//! backend's module (which imports this one).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use super::event_decoder::{EventDecoder, Step};
use crate::error::Error;
use crate::http::{fmt_duration, Body};
use crate::stream::StreamChunk;
use crate::types::ModelResponse;

/// What a stream needs from the backend that opened it.
pub(crate) trait StreamOwner: Send + Sync {
    /// Adds what every error leaving the backend carries, and removes the key.
    fn finish_error(&self, error: Error) -> Error;
    /// Whether the answer's text goes on the tracing span.
    fn trace_content(&self) -> bool;
    /// Records how the request ended on its span.
    fn record_outcome(&self, span: &tracing::Span, outcome: Result<&ModelResponse, &Error>);
}

pub(crate) struct SseStream {
    body: Body,
    decoder: EventDecoder,
    finished: bool,
    body_done: bool,
    /// The answer is whole but the body's end has not been read: see `Drop`.
    drain_on_drop: bool,
    idle: Duration,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
    /// When the armed timer fires. Checked against the clock too: a server that keeps the
    /// socket busy exhausts Tokio's cooperative budget, and a budget-starved `Sleep` never
    /// reports that it expired.
    timer_at: Instant,
    shared: Arc<dyn StreamOwner>,
    span: tracing::Span,
    first: Option<StreamChunk>,
    acc: Option<crate::stream::StreamAccumulator>,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").field("finished", &self.finished).finish_non_exhaustive()
    }
}

impl SseStream {
    pub(crate) fn new(
        body: Body,
        decoder: EventDecoder,
        idle: Duration,
        deadline: Option<Instant>,
        shared: Arc<impl StreamOwner + 'static>,
        span: tracing::Span,
    ) -> SseStream {
        // Usage and finish reason are recorded on the span at the end; that needs the chunks'
        // totals only when someone listens.
        let acc = (!span.is_disabled()).then(crate::stream::StreamAccumulator::new);
        SseStream {
            body,
            decoder,
            finished: false,
            body_done: false,
            drain_on_drop: false,
            idle,
            deadline,
            timer: None,
            timer_armed: false,
            timer_at: Instant::now(),
            shared,
            span,
            first: None,
            acc,
        }
    }

    /// Puts a chunk back to be yielded first (the one read while the request could still be
    /// retried).
    pub(crate) fn push_front(&mut self, chunk: StreamChunk) {
        self.first = Some(chunk);
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<StreamChunk, Error>>> {
        self.finished = true;
        let error = self.shared.finish_error(error);
        self.shared.record_outcome(&self.span, Err(&error));
        Poll::Ready(Some(Err(error)))
    }

    fn finish_ok(&mut self, chunk: StreamChunk, cx: &mut Context<'_>) -> Poll<Option<Result<StreamChunk, Error>>> {
        self.finished = true;
        // Read the end of the body if it is already here, so the connection goes back to the
        // pool even when the caller drops the stream right after the final chunk.
        if !self.body_done {
            let mut rest = Vec::new();
            loop {
                match self.body.poll_read(cx, &mut rest) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        self.body_done = true;
                        break;
                    }
                    Poll::Ready(Ok(_)) => rest.clear(),
                    // The end of the body (a chunked body's last chunk) is not here yet: when
                    // the stream is dropped, a background task waits a little for it.
                    Poll::Pending => break,
                }
            }
            self.drain_on_drop = !self.body_done;
        }
        if let Some(mut acc) = self.acc.take() {
            acc.push(&chunk);
            let answer = acc.finish();
            self.shared.record_outcome(&self.span, Ok(&answer));
            if self.shared.trace_content() {
                self.span.in_scope(|| tracing::debug!(gen_ai.completion = %answer.content, "completion"));
            }
        }
        Poll::Ready(Some(Ok(chunk)))
    }

    /// Waits with the idle timer armed. `Ready` means it fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.timer_armed {
            let mut at = Instant::now() + self.idle;
            if let Some(deadline) = self.deadline {
                at = at.min(deadline);
            }
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.timer_armed = true;
            self.timer_at = at;
        }
        if Instant::now() >= self.timer_at {
            return Poll::Ready(());
        }
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// How long a dropped stream whose answer was complete waits for the end of its body (the
/// few bytes that end a chunked body, usually a moment behind `[DONE]`), so that its connection
/// goes back to the pool instead of being closed; and how much it reads at most meanwhile.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
const DRAIN_MAX_BYTES: usize = 64 * 1024;

impl Drop for SseStream {
    fn drop(&mut self) {
        if !self.drain_on_drop || !self.body.is_native() {
            return;
        }
        // The answer was whole; only the body's end is missing. Without a runtime, the
        // connection just closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut body = std::mem::replace(&mut self.body, Body::empty());
        runtime.spawn(async move {
            let mut sink = Vec::new();
            let drain = std::future::poll_fn(|cx| loop {
                match body.poll_read(cx, &mut sink) {
                    Poll::Ready(Ok(n)) if n > 0 && sink.len() <= DRAIN_MAX_BYTES => {}
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            });
            // Read to its end, the body puts the connection back in the pool; else it closes.
            let _ = tokio::time::timeout(DRAIN_WAIT, drain).await;
        });
    }
}

impl Stream for SseStream {
    type Item = Result<StreamChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            match this.decoder.next() {
                Step::Chunk(chunk) => {
                    if let Some(acc) = &mut this.acc {
                        acc.push(&chunk);
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Step::Final(chunk) => return this.finish_ok(chunk, cx),
                Step::Failed(error) => return this.fail(error),
                Step::NeedMore => {}
            }
            if this.deadline.is_some_and(|d| Instant::now() >= d) {
                return this.fail(Error::timeout("the total deadline passed while streaming"));
            }
            let (decoder, body) = (&mut this.decoder, &mut this.body);
            match decoder.fill(|buf| body.poll_read(cx, buf)) {
                Poll::Ready(Ok(0)) => {
                    this.body_done = true;
                    this.decoder.end_input();
                }
                Poll::Ready(Ok(_)) => this.timer_armed = false,
                Poll::Ready(Err(e)) => {
                    this.body_done = true;
                    if this.decoder.saw_finish() {
                        // The answer was complete; only a trailer (usage) may be missing.
                        tracing::debug!(error = %e, "stream connection broke after the finish reason");
                        let chunk = this.decoder.finish();
                        return this.finish_ok(chunk, cx);
                    }
                    return this.fail(e);
                }
                Poll::Pending => {
                    return match this.poll_timer(cx) {
                        // Silence after the finish reason: the answer is whole.
                        Poll::Ready(()) if this.decoder.saw_finish() => {
                            let chunk = this.decoder.finish();
                            this.finish_ok(chunk, cx)
                        }
                        Poll::Ready(()) => {
                            let message = if this.deadline.is_some_and(|d| Instant::now() >= d) {
                                "the total deadline passed while streaming".to_owned()
                            } else {
                                format!("no data from the server for {} in the stream", fmt_duration(this.idle))
                            };
                            this.fail(Error::timeout(message))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}
