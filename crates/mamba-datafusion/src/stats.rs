//! What the functions did: rows, requests, cache hits, tokens and cost, summed over every
//! query of a registration. Counters are atomics, so a progress bar can read them while a
//! query runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Running totals (shared by the functions of one registration).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rows: AtomicU64,
    pub(crate) null_rows: AtomicU64,
    pub(crate) merged: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    /// Inputs answered by the server.
    pub(crate) answered: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) input_tokens: AtomicU64,
    pub(crate) output_tokens: AtomicU64,
    /// USD in billionths, so it sums in an atomic.
    pub(crate) cost_nano: AtomicU64,
    /// Answers of models with no known price (their cost counts as 0).
    pub(crate) unpriced: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn cost_usd(&self) -> f64 {
        self.cost_nano.load(Relaxed) as f64 / 1e9
    }

    pub(crate) fn add_cost(&self, usd: f64) {
        if usd.is_finite() && usd > 0.0 {
            self.cost_nano.fetch_add((usd * 1e9).round() as u64, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            rows: self.rows.load(Relaxed),
            null_rows: self.null_rows.load(Relaxed),
            merged: self.merged.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            requests: self.requests.load(Relaxed),
            done: self.null_rows.load(Relaxed)
                + self.merged.load(Relaxed)
                + self.cache_hits.load(Relaxed)
                + self.answered.load(Relaxed)
                + self.failed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            input_tokens: self.input_tokens.load(Relaxed),
            output_tokens: self.output_tokens.load(Relaxed),
            cost_usd: self.cost_usd(),
            unpriced: self.unpriced.load(Relaxed),
        }
    }
}

/// A snapshot of what the functions did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Rows the functions were called on (NULL ones included).
    pub rows: u64,
    /// Rows whose input was NULL (answered NULL, nothing sent).
    pub null_rows: u64,
    /// Rows answered by another row of the same batch with the same input and options.
    pub merged: u64,
    /// Inputs answered from the response cache.
    pub cache_hits: u64,
    /// Rows done so far, counted as answers arrive (for progress; [`rows`](Self::rows) counts
    /// whole batches).
    pub done: u64,
    /// Requests that reached the server (each embedding request carries many inputs).
    pub requests: u64,
    /// Inputs whose request failed after retries.
    pub failed: u64,
    /// Prompt tokens the server reported.
    pub input_tokens: u64,
    /// Generated tokens the server reported.
    pub output_tokens: u64,
    /// Cost in USD from the model profiles' prices (cached answers cost nothing).
    pub cost_usd: f64,
    /// Answers of models with no known price, counted as free.
    pub unpriced: u64,
}
