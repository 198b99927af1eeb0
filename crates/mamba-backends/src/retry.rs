//! [`RetryPolicy`]: which failures are sent again, and how long to wait in between.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Error;

/// When and how failed requests are retried.
///
/// Retried: connection failures, timeouts before any output, HTTP 408, 409, 429 (but not
/// `insufficient_quota`), 500, 502, 503 (a loading model included), 504, 529, and streams that
/// broke before their first chunk reached the caller. Never retried: 400, 401, 403, 404, 422,
/// context overflows, and anything after a stream delivered its first chunk.
///
/// A connection that breaks after the request was sent but before any answer is retried too,
/// as the official SDKs do: the server may have started on it (and bill it twice). Use
/// [`RetryPolicy::none`] where that matters more than the failure. A request that was sent
/// whole and then got no answer within the response timeout is different: the server is most
/// likely still generating it, and a resend would be billed again and time out again. It is
/// not retried unless [`resend_unanswered`](RetryPolicy::resend_unanswered) says so.
///
/// The wait is exponential backoff with full jitter (a random time up to
/// `initial_backoff × 2^attempt`, capped at `max_backoff`), unless the server said how long to
/// wait (`Retry-After` in seconds or as a date, `retry-after-ms`): that wait is used as given,
/// up to `max_retry_after`; a longer one returns the error at once, with its
/// [`retry_after`](Error::retry_after), so the caller can decide. The backend's total timeout,
/// when set, bounds the whole sequence of attempts.
///
/// ```
/// use std::time::Duration;
/// use mamba_backends::RetryPolicy;
///
/// let patient = RetryPolicy::default().max_retries(6).max_backoff(Duration::from_secs(30));
/// let never = RetryPolicy::none();
/// # let _ = (patient, never);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    jitter: bool,
    resend_unanswered: bool,
}

impl Default for RetryPolicy {
    /// 3 retries (the seed's `max_retries`), backoff from 0.5 s capped at 8 s with full
    /// jitter, server waits honoured up to 60 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            jitter: true,
            resend_unanswered: false,
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_retries: 0, ..RetryPolicy::default() }
    }

    /// Retries after the first attempt. Default 3.
    pub fn max_retries(mut self, n: u32) -> RetryPolicy {
        self.max_retries = n;
        self
    }

    /// The first backoff's upper bound. Default 0.5 s.
    pub fn initial_backoff(mut self, d: Duration) -> RetryPolicy {
        self.initial_backoff = d;
        self
    }

    /// The largest backoff. Default 8 s.
    pub fn max_backoff(mut self, d: Duration) -> RetryPolicy {
        self.max_backoff = d;
        self
    }

    /// The longest server-requested wait that is honoured; longer ones return the error.
    /// Default 60 s.
    pub fn max_retry_after(mut self, d: Duration) -> RetryPolicy {
        self.max_retry_after = d;
        self
    }

    /// Whether backoffs are randomised (full jitter). Default on; off waits exactly the cap.
    pub fn jitter(mut self, yes: bool) -> RetryPolicy {
        self.jitter = yes;
        self
    }

    /// Whether a request that was sent whole and then timed out waiting for its answer
    /// ([`Error::is_unanswered`]) is sent again. Default off: the server may still be
    /// generating (and billing) the first one.
    pub fn resend_unanswered(mut self, yes: bool) -> RetryPolicy {
        self.resend_unanswered = yes;
        self
    }

    /// The number of retries.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry number `attempt` (from 0) after `error`, or `None` to give up.
    pub fn delay(&self, attempt: u32, error: &Error) -> Option<Duration> {
        let retryable = error.is_retryable() || (self.resend_unanswered && error.is_unanswered());
        if attempt >= self.max_retries || !retryable {
            return None;
        }
        if let Some(wait) = error.retry_after() {
            return (wait <= self.max_retry_after).then_some(wait);
        }
        let cap = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        if !self.jitter {
            return Some(cap);
        }
        Some(cap.mul_f64(random_unit()))
    }
}

/// A number in [0, 1) from a shared xorshift generator; quality is irrelevant for jitter.
fn random_unit() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn retries_only_retryable_errors() {
        let p = RetryPolicy::default();
        assert!(p.delay(0, &Error::new(ErrorKind::Server, "x").with_status(500)).is_some());
        assert!(p.delay(0, &Error::new(ErrorKind::Connect, "x")).is_some());
        assert!(p.delay(0, &Error::new(ErrorKind::InvalidRequest, "x").with_status(400)).is_none());
        assert!(p.delay(0, &Error::new(ErrorKind::Authentication, "x").with_status(401)).is_none());
        assert!(p.delay(0, &Error::new(ErrorKind::QuotaExceeded, "x").with_status(429)).is_none());
        assert!(p.delay(0, &Error::new(ErrorKind::ContextOverflow, "x").with_status(400)).is_none());
        assert!(p.delay(3, &Error::new(ErrorKind::Server, "x")).is_none());
        assert!(RetryPolicy::none().delay(0, &Error::new(ErrorKind::Server, "x")).is_none());
    }

    #[test]
    fn unanswered_requests_only_on_request() {
        let e = Error::new(ErrorKind::Timeout, "no answer").with_unanswered();
        assert!(!e.is_retryable());
        assert_eq!(RetryPolicy::default().delay(0, &e), None);
        assert!(RetryPolicy::default().resend_unanswered(true).delay(0, &e).is_some());
        // Other timeouts (connect, before sending) stay retryable.
        assert!(RetryPolicy::default().delay(0, &Error::new(ErrorKind::Timeout, "connect")).is_some());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default().jitter(false).max_retries(10);
        let e = Error::new(ErrorKind::Unavailable, "x");
        let waits: Vec<u64> = (0..6).map(|a| p.delay(a, &e).unwrap().as_millis() as u64).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 4000, 8000, 8000]);
        let jittered = RetryPolicy::default().max_retries(10);
        for a in 0..40 {
            assert!(jittered.delay(a.min(9), &e).unwrap() <= Duration::from_secs(8));
        }
    }

    #[test]
    fn server_waits_are_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        let e = Error::new(ErrorKind::RateLimited, "x").with_retry_after(Some(Duration::from_secs(7)));
        assert_eq!(p.delay(0, &e), Some(Duration::from_secs(7)));
        let long = Error::new(ErrorKind::RateLimited, "x").with_retry_after(Some(Duration::from_secs(3600)));
        assert_eq!(p.delay(0, &long), None);
    }

    #[test]
    fn random_is_in_range() {
        for _ in 0..1000 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
