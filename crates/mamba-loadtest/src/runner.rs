//! Sending the requests on schedule and timing their streams.
//!
//! The schedule is kept on the caller's runtime, by the same task that drives every request
//! (a `FuturesUnordered`, so the run costs one future per request and no task spawn): each
//! time it wakes it releases every arrival that is due, and between arrivals it sleeps on a
//! `timerfd` on Linux (precise to microseconds; tokio's own timer rounds to a millisecond),
//! elsewhere on tokio's timer. At high rates the task is awake for the streams anyway and most
//! arrivals are released without a timer firing; there is no thread to wake and no context
//! switch per arrival.
//!
//! Timing follows vLLM's `async_request_openai_chat_completions`
//! (`vllm/benchmarks/lib/endpoint_request_func.py`): the clock starts just before the request
//! is sent (after any wait for a concurrency slot), each stream event with a choice is stamped
//! when the client gets it, the first one is TTFT, the gaps between them are ITL, and the last
//! one ends E2EL. The library gives one [`StreamChunk`](mamba_backends::StreamChunk) per such
//! event (the role-only first event and the finish event included) and folds the usage trailer
//! and `[DONE]` into its final chunk, which is therefore not timed. `stream()` returns once the
//! first event has been read, so the first chunk is stamped when `stream()` returns: the time
//! of the first byte is not available through the public API, and the first event is what
//! vLLM times anyway.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use mamba_backends::{ModelBackend, RequestOptions};

use crate::dataset::Sample;
use crate::metrics::RequestRecord;
use crate::schedule::Arrivals;

/// How requests are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunConfig {
    /// When they arrive.
    pub arrivals: Arrivals,
    /// At most this many in flight; later arrivals wait for a slot (default: no limit).
    pub max_concurrency: Option<usize>,
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOutput {
    /// One record per sample, in the samples' order.
    pub records: Vec<RequestRecord>,
    /// From the first arrival's schedule start to the end of the last request, in seconds.
    pub duration_s: f64,
    /// CPU time of this process (all threads) during the run, in seconds; `None` where the
    /// platform cannot say.
    pub client_cpu_s: Option<f64>,
}

fn cpu_now() -> Option<Duration> {
    cpu_time::ProcessTime::try_now().ok().map(|t| t.as_duration())
}

/// Sends `samples` to `backend` as `config` says and times every stream. `progress` is called
/// with the number of finished requests after each one.
///
/// Call it inside a tokio runtime with timers enabled; a current-thread runtime measures the
/// client on one core.
pub async fn run(
    backend: &dyn ModelBackend,
    samples: &[Sample],
    config: &RunConfig,
    progress: Option<&(dyn Fn(usize) + Send + Sync)>,
) -> RunOutput {
    let n = samples.len();
    if n == 0 {
        return RunOutput::default();
    }
    let options: Vec<RequestOptions> = samples.iter().map(Sample::options).collect();
    let cap = cap(config.max_concurrency);

    let cpu_start = cpu_now();
    let origin = Instant::now();
    let mut arrivals = Dispatcher::new(config.arrivals.offsets(n), origin);

    let mut records: Vec<Option<RequestRecord>> = vec![None; n];
    let mut waiting: VecDeque<(usize, Instant)> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut done = 0usize;
    while done < n {
        arrivals.release(Instant::now(), &mut waiting);
        while in_flight.len() < cap {
            let Some((i, arrived)) = waiting.pop_front() else { break };
            let queue_time = arrived.elapsed().as_secs_f64();
            let scheduled = arrivals.due(i);
            in_flight.push(timed_request(backend, &samples[i], &options[i], i, origin, scheduled, queue_time));
        }
        tokio::select! {
            biased;
            () = arrivals.wait(), if arrivals.pending() => {}
            Some((i, record)) = in_flight.next(), if !in_flight.is_empty() => {
                records[i] = Some(record);
                done += 1;
                if let Some(progress) = progress {
                    progress(done);
                }
            }
            else => break,
        }
    }
    let duration_s = origin.elapsed().as_secs_f64();
    let client_cpu_s = match (cpu_start, cpu_now()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let records = records
        .into_iter()
        .map(|r| r.unwrap_or_else(|| RequestRecord { error: "not sent".into(), ..RequestRecord::default() }))
        .collect();
    RunOutput { records, duration_s, client_cpu_s }
}

/// Sends `n` requests (the samples in turn) at once, at most `max_concurrency` in flight, and
/// reads every answer to its end, untimed: the connections they open stay in the backend's
/// pool, so that a measured run starts warm (vLLM's `--num-warmups`). Returns how many failed.
pub async fn warm_up(
    backend: &dyn ModelBackend,
    samples: &[Sample],
    n: usize,
    max_concurrency: Option<usize>,
) -> usize {
    if samples.is_empty() {
        return 0;
    }
    let cap = cap(max_concurrency);
    let one = |i: usize| async move {
        let sample = &samples[i % samples.len()];
        match backend.stream(&sample.messages, &sample.options()).await {
            Ok(stream) => mamba_backends::collect(stream).await.is_err(),
            Err(_) => true,
        }
    };
    let mut in_flight = FuturesUnordered::new();
    let (mut sent, mut failed) = (0, 0);
    loop {
        while sent < n && in_flight.len() < cap {
            in_flight.push(one(sent));
            sent += 1;
        }
        match in_flight.next().await {
            Some(bad) => failed += usize::from(bad),
            None => return failed,
        }
    }
}

/// How many requests may be in flight: the cap, or no limit for none (or 0).
fn cap(max_concurrency: Option<usize>) -> usize {
    max_concurrency.filter(|c| *c > 0).unwrap_or(usize::MAX)
}

/// Releases request `i` at `origin + offsets[i]`.
struct Dispatcher {
    offsets: Vec<Duration>,
    origin: Instant,
    next: usize,
    alarm: Alarm,
    /// The deadline the alarm is set for, `None` when it must be set again.
    armed: Option<Instant>,
}

impl Dispatcher {
    fn new(offsets: Vec<Duration>, origin: Instant) -> Dispatcher {
        Dispatcher { offsets, origin, next: 0, alarm: Alarm::new(), armed: None }
    }

    /// Moves every arrival due at `now` to `waiting`, stamped `now`.
    fn release(&mut self, now: Instant, waiting: &mut VecDeque<(usize, Instant)>) {
        while self.next < self.offsets.len() && self.due(self.next) <= now {
            waiting.push_back((self.next, now));
            self.next += 1;
        }
    }

    /// When request `i` is due.
    fn due(&self, i: usize) -> Instant {
        self.origin + self.offsets[i]
    }

    /// Whether arrivals are left to release.
    fn pending(&self) -> bool {
        self.next < self.offsets.len()
    }

    /// Returns at the next arrival's time (or a little earlier: the caller releases what is
    /// due and calls again).
    async fn wait(&mut self) {
        let Some(offset) = self.offsets.get(self.next) else { return };
        let due = self.origin + *offset + TIMER_SLACK;
        if self.armed != Some(due) {
            self.alarm.set(due);
            self.armed = Some(due);
        }
        self.alarm.ring().await;
        self.armed = None;
    }
}

/// How late the dispatcher may wake for an arrival (as Linux's own timer slack): arrivals
/// due within this much of each other are released on one wake-up and sent back to back. At
/// 15,000 requests/s this takes the client's CPU per request from 59 to 49 µs (fewer wake-ups
/// of the client, and of the server, whose socket gets the requests together), and it adds at
/// most this much to the schedule lag, which the results report.
const TIMER_SLACK: Duration = Duration::from_micros(100);

/// A one-shot timer that can be set again: a `timerfd` on Linux when one can be made, else
/// tokio's timer (millisecond steps).
enum Alarm {
    #[cfg(target_os = "linux")]
    Fd(tokio_timerfd::Delay),
    Tokio(std::pin::Pin<Box<tokio::time::Sleep>>),
}

impl Alarm {
    fn new() -> Alarm {
        #[cfg(target_os = "linux")]
        if let Ok(delay) = tokio_timerfd::Delay::new(Instant::now()) {
            return Alarm::Fd(delay);
        }
        Alarm::Tokio(Box::pin(tokio::time::sleep(Duration::ZERO)))
    }

    fn set(&mut self, at: Instant) {
        match self {
            #[cfg(target_os = "linux")]
            Alarm::Fd(delay) => delay.reset(at),
            Alarm::Tokio(sleep) => sleep.as_mut().reset(at.into()),
        }
    }

    async fn ring(&mut self) {
        match self {
            #[cfg(target_os = "linux")]
            Alarm::Fd(delay) => {
                if (&mut *delay).await.is_err() {
                    // The timer cannot be read: fall back to tokio's for the rest of the run.
                    let at = delay.deadline();
                    *self = Alarm::Tokio(Box::pin(tokio::time::sleep_until(at.into())));
                }
            }
            Alarm::Tokio(sleep) => sleep.as_mut().await,
        }
    }
}

async fn timed_request(
    backend: &dyn ModelBackend,
    sample: &Sample,
    options: &RequestOptions,
    index: usize,
    origin: Instant,
    scheduled: Instant,
    queue_time: f64,
) -> (usize, RequestRecord) {
    let st = Instant::now();
    let mut r = RequestRecord {
        prompt_len: sample.prompt_len,
        start_time: (st - origin).as_secs_f64(),
        queue_time,
        schedule_lag: (st.saturating_duration_since(scheduled).as_secs_f64() - queue_time).max(0.0),
        ..RequestRecord::default()
    };
    let mut stream = match backend.stream(&sample.messages, options).await {
        Ok(stream) => stream,
        Err(e) => {
            r.error = e.to_string();
            return (index, r);
        }
    };
    // Room for the expected answer, so that the timing loop does not grow these as it goes.
    if let Some(len) = sample.output_len {
        let len = (len as usize).min(4096);
        r.itl.reserve(len + 2);
        r.generated_text.reserve(len * 6);
    }
    let mut last = st;
    let mut first = true;
    let mut finished = false;
    while let Some(item) = stream.next().await {
        let now = Instant::now();
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                r.error = e.to_string();
                return (index, r);
            }
        };
        r.generated_text.push_str(&chunk.content);
        if chunk.is_final {
            if let Some(usage) = chunk.usage {
                r.usage_output_tokens = Some(usage.output_tokens);
                if usage.input_tokens > 0 {
                    r.prompt_len = usage.input_tokens;
                }
            }
            finished = true;
            break;
        }
        if first {
            r.ttft = (now - st).as_secs_f64();
            first = false;
        } else {
            r.itl.push((now - last).as_secs_f64());
        }
        last = now;
        if !chunk.content.is_empty() || !chunk.reasoning.is_empty() || !chunk.tool_calls.is_empty() {
            r.content_chunks += 1;
            if r.ttfc.is_none() {
                r.ttfc = Some((now - st).as_secs_f64());
            }
        }
    }
    if first || !finished {
        r.error = "the stream ended before the answer was complete".into();
        return (index, r);
    }
    r.latency = (last - st).as_secs_f64();
    r.success = true;
    (index, r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::schedule::Rate;

    /// At 2000 requests/s, arrivals are released within a millisecond of their schedule (nine
    /// in ten of them, and at the end of the run: no drift), by the dispatcher alone on a
    /// current-thread runtime.
    #[test]
    fn the_dispatcher_keeps_the_schedule_at_2000_per_second() {
        let offsets = Arrivals { rate: Rate::PerSecond(2000.0), burstiness: 1.0, seed: 11 }.offsets(1000);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let lags = rt.block_on(async {
            let origin = Instant::now() + Duration::from_millis(5);
            let mut dispatcher = Dispatcher::new(offsets.clone(), origin);
            let mut waiting = VecDeque::new();
            let mut lags = Vec::new();
            while dispatcher.pending() {
                dispatcher.wait().await;
                dispatcher.release(Instant::now(), &mut waiting);
                for (i, at) in waiting.drain(..) {
                    lags.push(at.saturating_duration_since(origin + offsets[i]).as_secs_f64());
                }
            }
            lags
        });
        assert_eq!(lags.len(), 1000);
        let mut sorted = lags.clone();
        sorted.sort_by(f64::total_cmp);
        // Percentiles rather than the mean: the other tests of this binary run beside this one,
        // and one stall of the machine (tens of ms) would move the mean without any drift.
        assert!(sorted[500] < 0.001, "median lag {}", sorted[500]);
        assert!(sorted[900] < 0.001, "p90 lag {}", sorted[900]);
        assert!(lags[999] < 0.001 || sorted[990] < 0.001, "last arrival late by {}", lags[999]);
    }

    /// Nothing is released early, and arrivals all due at once are released together.
    #[test]
    fn release_takes_what_is_due() {
        let origin = Instant::now();
        let ms = Duration::from_millis;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut d = Dispatcher::new(vec![ms(0), ms(0), ms(50), ms(60)], origin);
            let mut waiting = VecDeque::new();
            d.release(origin, &mut waiting);
            assert_eq!(waiting.iter().map(|w| w.0).collect::<Vec<_>>(), vec![0, 1]);
            d.release(origin + ms(49), &mut waiting);
            assert_eq!(waiting.len(), 2);
            d.wait().await;
            assert!(Instant::now() >= origin + ms(50));
            d.release(origin + ms(60), &mut waiting);
            assert_eq!(waiting.len(), 4);
            assert!(!d.pending());
        });
    }
}
