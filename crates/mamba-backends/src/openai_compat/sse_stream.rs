//! The stream handed to callers: reads the body, decodes SSE, parses chunks, enforces the idle
//! timeout and tells a finished answer from a cut one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use hyper::body::{Body, Incoming};
use tokio::time::{Instant, Sleep};

use super::response::{ChunkParser, Parsed};
use crate::classify;
use crate::error::Error;
use crate::http::{body_error, fmt_duration};
use crate::sse::SseDecoder;
use crate::stream::StreamChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading events.
    Reading,
    /// The final chunk went out; the stream ends at the next poll.
    Finished,
}

/// Turns an error into what the caller sees (model name, key redaction).
pub(crate) type ErrorHook = fn(&super::Shared, Error) -> Error;

pub(crate) struct SseStream {
    body: Incoming,
    decoder: SseDecoder,
    parser: ChunkParser,
    state: State,
    body_done: bool,
    idle: Duration,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
    shared: std::sync::Arc<super::Shared>,
    on_error: ErrorHook,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("state", &self.state)
            .field("events", &self.parser.events())
            .finish_non_exhaustive()
    }
}

impl SseStream {
    pub(crate) fn new(
        body: Incoming,
        parser: ChunkParser,
        idle: Duration,
        deadline: Option<Instant>,
        shared: std::sync::Arc<super::Shared>,
        on_error: ErrorHook,
    ) -> SseStream {
        SseStream {
            body,
            decoder: SseDecoder::new(),
            parser,
            state: State::Reading,
            body_done: false,
            idle,
            deadline,
            timer: None,
            timer_armed: false,
            shared,
            on_error,
        }
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<StreamChunk, Error>>> {
        self.state = State::Finished;
        Poll::Ready(Some(Err((self.on_error)(&self.shared, error))))
    }

    fn finish_ok(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<StreamChunk, Error>>> {
        self.state = State::Finished;
        // Read the end of the body if it is already here, so the connection goes back to the
        // pool even when the caller drops the stream right after the final chunk.
        if !self.body_done {
            while let Poll::Ready(Some(Ok(_))) = Pin::new(&mut self.body).poll_frame(cx) {}
        }
        Poll::Ready(Some(Ok(self.parser.finish())))
    }

    /// Waits for the body with the idle timer armed. `Ready(true)` means the timer fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let now = Instant::now();
        let mut at = now + self.idle;
        if let Some(deadline) = self.deadline {
            at = at.min(deadline);
        }
        if !self.timer_armed {
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.timer_armed = true;
        }
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().poll(cx).map(|()| true),
            None => Poll::Pending,
        }
    }
}

use std::future::Future;

impl Stream for SseStream {
    type Item = Result<StreamChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.state == State::Finished {
            return Poll::Ready(None);
        }
        loop {
            // 1. Events already buffered.
            match this.decoder.next_event() {
                Err(_) => {
                    return this.fail(Error::decode(format!(
                        "a stream event is longer than {} bytes",
                        crate::sse::MAX_EVENT_BYTES
                    )))
                }
                Ok(Some(event)) => {
                    if event.is_error_event && !event.data.starts_with(b"{") {
                        let info = classify::parse_error_body(event.data);
                        let message = info.message.unwrap_or_else(|| "the server sent an error event".to_owned());
                        return this.fail(Error::new(crate::ErrorKind::Server, message));
                    }
                    match this.parser.parse(event.data) {
                        Ok(Parsed::Chunk(chunk)) => return Poll::Ready(Some(Ok(chunk))),
                        Ok(Parsed::Nothing) => continue,
                        Ok(Parsed::Done) => return this.finish_ok(cx),
                        Err(e) => return this.fail(e),
                    }
                }
                Ok(None) => {}
            }
            if this.body_done {
                if this.parser.saw_finish() {
                    return this.finish_ok(cx);
                }
                let message = if this.parser.events() == 0 {
                    "the server closed the stream without sending any event".to_owned()
                } else {
                    format!(
                        "the server closed the stream after {} events, before the answer finished (no finish_reason, no [DONE])",
                        this.parser.events()
                    )
                };
                return this.fail(Error::stream(message));
            }
            // 2. More bytes.
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.timer_armed = false;
                    if let Ok(data) = frame.into_data() {
                        this.decoder.push(&data);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if this.parser.saw_finish() {
                        // The answer was complete; only the trailer (usage) may be missing.
                        tracing::debug!(error = %e, "stream connection broke after the finish reason");
                        this.body_done = true;
                        return this.finish_ok(cx);
                    }
                    return this.fail(body_error(e));
                }
                Poll::Ready(None) => {
                    this.body_done = true;
                    this.decoder.finish();
                }
                Poll::Pending => {
                    return match this.poll_timer(cx) {
                        Poll::Ready(_) => {
                            let total_hit = this.deadline.is_some_and(|d| Instant::now() >= d);
                            let message = if total_hit {
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
