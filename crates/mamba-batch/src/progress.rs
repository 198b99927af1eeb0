//! Counters of a run, shared with whoever draws progress, and the final summary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Live counters of a run (read them with [`snapshot`](Progress::snapshot) from another task
/// to draw a progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    pub(crate) to_send: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) input_tokens: AtomicU64,
    pub(crate) output_tokens: AtomicU64,
    /// USD × 10⁹ spent in this run.
    pub(crate) cost_nano: AtomicU64,
    /// USD × 10⁹ estimated for the requests in flight.
    pub(crate) in_flight_cost_nano: AtomicU64,
    /// What a remote batch is doing (`uploading`, then the server's status).
    status: Mutex<String>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Requests this run has to send (the shard's lines not already done).
    pub to_send: u64,
    /// Lines skipped: already answered in the output.
    pub skipped: u64,
    /// Answered with a 2xx.
    pub succeeded: u64,
    /// Failed after retries (an HTTP error, or no answer).
    pub failed: u64,
    /// Sent and not answered yet.
    pub in_flight: u64,
    /// Tokens the server reported.
    pub input_tokens: u64,
    /// Tokens the server reported.
    pub output_tokens: u64,
    /// USD spent in this run, from the model profiles' prices.
    pub cost_usd: f64,
}

impl Snapshot {
    /// Requests finished either way.
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed
    }
}

pub(crate) fn to_nano(usd: f64) -> u64 {
    (usd.max(0.0) * 1e9).round() as u64
}

impl Progress {
    /// New counters.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            to_send: get(&self.to_send),
            skipped: get(&self.skipped),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            in_flight: get(&self.in_flight),
            input_tokens: get(&self.input_tokens),
            output_tokens: get(&self.output_tokens),
            cost_usd: get(&self.cost_nano) as f64 / 1e9,
        }
    }

    /// What a remote batch is doing: `uploading`, `creating`, the server's status
    /// (`validating`, `in_progress`, …), `downloading`; empty for a local run.
    pub fn status(&self) -> String {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn set_status(&self, status: &str) {
        if let Ok(mut s) = self.status.lock() {
            status.clone_into(&mut s);
        }
    }

    pub(crate) fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(a: &AtomicU64, n: u64) {
        a.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Why a run stopped before every line was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stop {
    /// `--max-cost` would have been passed.
    CostCap,
    /// Interrupted (Ctrl-C).
    Interrupted,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Lines of the input in this shard (blank lines not counted).
    pub total: u64,
    /// Answered with a 2xx in this run.
    pub succeeded: u64,
    /// Failed in this run after retries.
    pub failed: u64,
    /// Already done in the output, not sent again.
    pub skipped: u64,
    /// Not sent: the run stopped first.
    pub not_sent: u64,
    /// Tokens the server reported in this run.
    pub input_tokens: u64,
    /// Tokens the server reported in this run.
    pub output_tokens: u64,
    /// USD spent in this run (models without prices count 0).
    pub cost_usd: f64,
    /// USD spent by the lines of the output, earlier runs included.
    pub total_cost_usd: f64,
    /// Seconds.
    pub elapsed_s: f64,
    /// Requests finished per second.
    pub requests_per_s: f64,
    /// Times the run was paused by the server's rate-limit signals.
    pub rate_limit_pauses: u64,
    /// Waits for the server's rate limits cut to 300 s: the server announced a limit, a reset
    /// or a `Retry-After` that asked for longer (worth a warning: it may be broken or hostile).
    pub capped_waits: u64,
    /// Why it stopped early, if it did.
    pub stopped: Option<Stop>,
}

impl Summary {
    /// The exit code the contract gives: 3 when the cost cap stopped the run, 130 when it was
    /// interrupted, 1 when some request failed, else 0.
    pub fn exit_code(&self) -> u8 {
        match self.stopped {
            Some(Stop::CostCap) => 3,
            Some(Stop::Interrupted) => 130,
            None if self.failed > 0 => 1,
            None => 0,
        }
    }

    pub(crate) fn elapsed(mut self, d: Duration) -> Summary {
        self.elapsed_s = d.as_secs_f64();
        let done = (self.succeeded + self.failed) as f64;
        self.requests_per_s = if self.elapsed_s > 0.0 { done / self.elapsed_s } else { 0.0 };
        self
    }
}
