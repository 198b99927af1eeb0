//! Pacing the whole run: `--rpm` and `--tpm` token buckets, and the server's own signals
//! (`x-ratelimit-*` headers, 429 `Retry-After`), which pause every request, not only the one
//! that was answered so.
//!
//! Each bucket holds at most one second of its rate (at least one request, or the request's
//! own tokens), refills continuously, and may go into debt: a request takes its tokens once
//! the bucket is not in debt, so a request larger than the bucket still goes, and the next
//! ones wait until the debt is repaid. After an answer the token bucket is corrected by the
//! difference between the server's reported usage and the estimate.
//!
//! Without `--rpm`/`--tpm`, a server that announces `x-ratelimit-limit-requests` or
//! `x-ratelimit-limit-tokens` gets buckets at those rates; `x-ratelimit-remaining-*: 0` pauses
//! the run until the matching `x-ratelimit-reset-*`, and a 429 pauses it for its `Retry-After`
//! (1 s when it gives none).
//!
//! No wait is longer than [`MAX_WAIT`] (300 s): a request that has waited that long for its
//! bucket goes anyway (a hostile or broken server announcing a limit of `1e-300` a minute, or
//! reporting absurd usage, would otherwise stall the run for ever), and every pause is cut to
//! it. The run counts the waits it cut ([`Summary::capped_waits`](crate::Summary::capped_waits)) so the CLI can warn.

use std::sync::Mutex;
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

/// The longest a request waits for the pacer, and the longest a pause lasts.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Bucket {
    /// Per second.
    rate: f64,
    capacity: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    fn per_minute(per_minute: f64, now: Instant) -> Bucket {
        let rate = per_minute / 60.0;
        let capacity = rate.max(1.0);
        Bucket { rate, capacity, level: capacity, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Time until the bucket can give `n`, or zero.
    fn wait_for(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        let need = n.min(self.capacity);
        if self.level >= need || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            // A server's tiny announced limit can ask for longer than a `Duration` holds.
            Duration::try_from_secs_f64((need - self.level) / self.rate).unwrap_or(Duration::MAX)
        }
    }
}

#[derive(Debug)]
struct State {
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
    /// Whether the buckets came from flags (the server's limits then do not replace them).
    rpm_given: bool,
    tpm_given: bool,
    paused_until: Option<Instant>,
    pauses: u64,
    /// Waits cut to [`MAX_WAIT`].
    capped: u64,
}

/// The run's pacer, shared by every request.
#[derive(Debug)]
pub(crate) struct Pacer {
    state: Mutex<State>,
}

impl Pacer {
    pub(crate) fn new(rpm: Option<u32>, tpm: Option<u64>) -> Pacer {
        let now = Instant::now();
        Pacer {
            state: Mutex::new(State {
                rpm: rpm.map(|r| Bucket::per_minute(f64::from(r), now)),
                tpm: tpm.map(|t| Bucket::per_minute(t as f64, now)),
                rpm_given: rpm.is_some(),
                tpm_given: tpm.is_some(),
                paused_until: None,
                pauses: 0,
                capped: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a request of `tokens` estimated tokens may go, and takes them; at most
    /// [`MAX_WAIT`]: then it goes anyway, the buckets' debt is forgiven and the cut is counted.
    pub(crate) async fn acquire(&self, tokens: u64) {
        let started = Instant::now();
        loop {
            let wait = {
                let mut s = self.state();
                let now = Instant::now();
                let pause = s.paused_until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
                let r = s.rpm.as_mut().map_or(Duration::ZERO, |b| b.wait_for(1.0, now));
                let t = s.tpm.as_mut().map_or(Duration::ZERO, |b| b.wait_for(tokens as f64, now));
                let wait = pause.max(r).max(t);
                let left = MAX_WAIT.saturating_sub(now.saturating_duration_since(started));
                let cut = !wait.is_zero() && left.is_zero();
                if wait.is_zero() || cut {
                    if cut {
                        s.capped += 1;
                        s.paused_until = None;
                    }
                    if let Some(b) = s.rpm.as_mut() {
                        if cut {
                            b.level = b.level.max(0.0);
                        }
                        b.level -= 1.0;
                    }
                    if let Some(b) = s.tpm.as_mut() {
                        if cut {
                            b.level = b.level.max(0.0);
                        }
                        b.level -= tokens as f64;
                    }
                    return;
                }
                wait.min(left)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// How many waits were cut to [`MAX_WAIT`].
    pub(crate) fn capped_waits(&self) -> u64 {
        self.state().capped
    }

    /// Waits out a pause of the whole run (before a retry).
    pub(crate) async fn wait_pause(&self) {
        loop {
            let until = self.state().paused_until;
            match until {
                Some(u) if u > Instant::now() => tokio::time::sleep_until(u).await,
                _ => return,
            }
        }
    }

    /// Corrects the token bucket once the real usage is known.
    pub(crate) fn correct(&self, estimated: u64, actual: u64) {
        if let Some(b) = self.state().tpm.as_mut() {
            b.level -= actual as f64 - estimated as f64;
        }
    }

    /// Pauses the whole run for `d` from now, at most [`MAX_WAIT`] (a later pause wins).
    pub(crate) fn pause(&self, d: Duration) {
        let mut s = self.state();
        if d > MAX_WAIT {
            s.capped += 1;
        }
        let now = Instant::now();
        let until = now.checked_add(d.min(MAX_WAIT)).unwrap_or(now);
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
            s.pauses += 1;
        }
    }

    /// How many times the run was paused.
    pub(crate) fn pauses(&self) -> u64 {
        self.state().pauses
    }

    /// Reads the server's `x-ratelimit-*` headers.
    pub(crate) fn observe(&self, headers: &HeaderMap) {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| get(name).and_then(|v| v.trim().parse::<f64>().ok());
        {
            let mut s = self.state();
            let now = Instant::now();
            if !s.rpm_given {
                if let Some(limit) = number("x-ratelimit-limit-requests").filter(|l| *l > 0.0) {
                    if s.rpm.as_ref().is_none_or(|b| (b.rate * 60.0 - limit).abs() > 0.5) {
                        s.rpm = Some(Bucket::per_minute(limit, now));
                    }
                }
            }
            if !s.tpm_given {
                if let Some(limit) = number("x-ratelimit-limit-tokens").filter(|l| *l > 0.0) {
                    if s.tpm.as_ref().is_none_or(|b| (b.rate * 60.0 - limit).abs() > 0.5) {
                        s.tpm = Some(Bucket::per_minute(limit, now));
                    }
                }
            }
        }
        for kind in ["requests", "tokens"] {
            if number(&format!("x-ratelimit-remaining-{kind}")).is_some_and(|r| r <= 0.0) {
                let reset =
                    get(&format!("x-ratelimit-reset-{kind}")).and_then(parse_reset).unwrap_or(Duration::from_secs(1));
                self.pause(reset);
            }
        }
    }
}

/// A reset time as servers write it: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, or bare seconds. One
/// longer than a `Duration` holds is `Duration::MAX` (the caller caps it).
pub(crate) fn parse_reset(text: &str) -> Option<Duration> {
    let text = text.trim();
    let duration = |secs: f64| (secs >= 0.0).then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    if let Ok(secs) = text.parse::<f64>() {
        return duration(secs);
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    duration(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_formats() {
        assert_eq!(parse_reset("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_reset("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_reset("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_reset("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_reset("soon"), None);
        // A hostile server's numbers are no panic.
        assert_eq!(parse_reset("1e300"), Some(Duration::MAX));
        assert_eq!(parse_reset("99999999999999999999h"), Some(Duration::MAX));
        assert_eq!(parse_reset("inf"), Some(Duration::MAX));
        assert_eq!(parse_reset("-1"), None);
        assert_eq!(parse_reset("NaN"), None);
    }

    /// A server announcing a limit of 1e-300 requests a minute asks for a wait no `Duration`
    /// holds: no panic, and no request waits longer than 300 s; the cut waits are counted.
    #[tokio::test(start_paused = true)]
    async fn a_tiny_announced_limit_waits_at_most_the_cap() {
        let pacer = Pacer::new(None, None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit-requests", "1e-300".parse().unwrap());
        h.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-requests", "1e300".parse().unwrap());
        pacer.observe(&h);
        assert_eq!(pacer.capped_waits(), 1, "the reset of 1e300 s is cut");
        let start = Instant::now();
        pacer.acquire(0).await;
        assert_eq!(start.elapsed(), MAX_WAIT, "the pause, cut to 300 s");
        for _ in 0..3 {
            let start = Instant::now();
            let next = tokio::time::timeout(Duration::from_secs(301), pacer.acquire(0)).await;
            assert!(next.is_ok(), "a request waits at most 300 s");
            assert_eq!(start.elapsed(), MAX_WAIT);
        }
        assert_eq!(pacer.capped_waits(), 4);
        // A 429 with an absurd Retry-After pauses 300 s, not for ever.
        pacer.pause(Duration::MAX);
        let start = Instant::now();
        pacer.wait_pause().await;
        assert_eq!(start.elapsed(), MAX_WAIT);
    }

    /// Absurd reported usage (a debt of 1e18 tokens) delays the next request 300 s at most.
    #[tokio::test(start_paused = true)]
    async fn absurd_usage_waits_at_most_the_cap() {
        let pacer = Pacer::new(None, Some(6000));
        pacer.acquire(10).await;
        pacer.correct(10, 1_000_000_000_000_000_000);
        let start = Instant::now();
        pacer.acquire(10).await;
        assert_eq!(start.elapsed(), MAX_WAIT);
        assert_eq!(pacer.capped_waits(), 1);
        let start = Instant::now();
        pacer.acquire(10).await;
        assert!(start.elapsed() < Duration::from_secs(1), "the debt was forgiven");
    }

    /// 120 requests at --rpm 60 take about two minutes of the (paused) clock.
    #[tokio::test(start_paused = true)]
    async fn rpm_spaces_requests() {
        let pacer = Pacer::new(Some(60), None);
        let start = Instant::now();
        for _ in 0..120 {
            pacer.acquire(0).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(118) && took <= Duration::from_secs(120), "{took:?}");
    }

    /// --tpm 6000 is 100 tokens a second: ten requests of 100 tokens take about 9 s; a request
    /// larger than the bucket still goes, and its debt delays the next one.
    #[tokio::test(start_paused = true)]
    async fn tpm_counts_tokens_and_corrections() {
        let pacer = Pacer::new(None, Some(6000));
        let start = Instant::now();
        for _ in 0..10 {
            pacer.acquire(100).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(10), "{took:?}");
        let start = Instant::now();
        pacer.acquire(1000).await;
        pacer.correct(1000, 1500);
        pacer.acquire(1).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(15), "{took:?}");
    }

    /// A 429's pause and an exhausted x-ratelimit budget hold back every request.
    #[tokio::test(start_paused = true)]
    async fn server_signals_pause_the_run() {
        let pacer = Pacer::new(None, None);
        pacer.pause(Duration::from_secs(7));
        let start = Instant::now();
        pacer.acquire(10).await;
        assert_eq!(start.elapsed().as_secs(), 7);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-requests", "2s".parse().unwrap());
        pacer.observe(&h);
        let start = Instant::now();
        pacer.wait_pause().await;
        assert_eq!(start.elapsed().as_secs(), 2);
        assert_eq!(pacer.pauses(), 2);
        // The announced limit becomes a bucket: 120 a minute, 2 a second.
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit-requests", "120".parse().unwrap());
        pacer.observe(&h);
        let start = Instant::now();
        for _ in 0..10 {
            pacer.acquire(0).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(4) && took <= Duration::from_secs(5), "{took:?}");
    }
}
