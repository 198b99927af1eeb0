//! From per-request records to the run's metrics, with vLLM's definitions
//! (`calculate_metrics` in `vllm/benchmarks/serve.py`):
//!
//! - TTFT: from sending the request to the first stream event that carries a choice (the
//!   role-only event counts, as in vLLM).
//! - ITL: the gaps between successive such events: one gap per event, so a chunk carrying
//!   several tokens is one gap (vLLM does not split them either).
//! - E2EL: from sending the request to the last such event (the usage trailer and `[DONE]`
//!   do not count).
//! - TPOT: `(E2EL − TTFT) / (output tokens − 1)` for requests with more than one output token;
//!   goodput counts the others with TPOT 0.
//! - Output tokens: the server's `completion_tokens`; when a server sends no usage, the number
//!   of chunks that carried text or reasoning (vLLM would count with the tokenizer, or 1).
//! - mean/median/std/percentiles as numpy does them (population std, linear interpolation);
//!   0 for an empty set.

use std::fmt;
use std::str::FromStr;

/// What one request measured. Times in seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestRecord {
    /// The stream ended normally.
    pub success: bool,
    /// Prompt tokens: the server's count when it reported usage, else the dataset's estimate.
    pub prompt_len: u64,
    /// `completion_tokens` from the server's usage, when it sent one.
    pub usage_output_tokens: Option<u64>,
    /// Chunks that carried text, reasoning or a tool call.
    pub content_chunks: u64,
    /// Time to the first event with a choice (vLLM's TTFT).
    pub ttft: f64,
    /// Time to the first event with text, reasoning or a tool call (not in vLLM).
    pub ttfc: Option<f64>,
    /// Gaps between successive events with a choice.
    pub itl: Vec<f64>,
    /// Time to the last event with a choice (vLLM's latency, E2EL).
    pub latency: f64,
    /// When the request was sent, from the start of the run.
    pub start_time: f64,
    /// Time spent waiting for a free slot under `--max-concurrency`.
    pub queue_time: f64,
    /// How late the request was released compared with its scheduled arrival.
    pub schedule_lag: f64,
    /// The answer's text.
    pub generated_text: String,
    /// Why it failed (empty on success).
    pub error: String,
}

impl RequestRecord {
    /// Output tokens as counted in the metrics: usage, else chunks with content; 0 on failure.
    pub fn output_len(&self) -> u64 {
        if !self.success {
            return 0;
        }
        match self.usage_output_tokens {
            Some(n) if n > 0 => n,
            _ => self.content_chunks,
        }
    }

    /// TPOT in seconds (0 with fewer than two output tokens, as vLLM's goodput takes it).
    pub fn tpot(&self) -> f64 {
        let n = self.output_len();
        if n > 1 {
            (self.latency - self.ttft) / (n - 1) as f64
        } else {
            0.0
        }
    }
}

/// Service-level targets for goodput, in milliseconds (`--goodput ttft:MS tpot:MS e2el:MS`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Goodput {
    /// Largest acceptable TTFT.
    pub ttft_ms: Option<f64>,
    /// Largest acceptable TPOT.
    pub tpot_ms: Option<f64>,
    /// Largest acceptable end-to-end latency.
    pub e2el_ms: Option<f64>,
}

impl Goodput {
    /// True when no target is set.
    pub fn is_empty(&self) -> bool {
        self.ttft_ms.is_none() && self.tpot_ms.is_none() && self.e2el_ms.is_none()
    }

    /// Adds one `NAME:MS` target (`ttft`, `tpot` or `e2el`).
    pub fn add(&mut self, pair: &str) -> Result<(), String> {
        let (name, value) = pair
            .split_once(':')
            .ok_or_else(|| format!("a goodput target is NAME:MS (ttft, tpot, e2el), not {pair:?}"))?;
        let ms: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("goodput {name}: {value:?} is not a number of milliseconds"))?;
        match name.trim() {
            "ttft" => self.ttft_ms = Some(ms),
            "tpot" => self.tpot_ms = Some(ms),
            "e2el" => self.e2el_ms = Some(ms),
            other => return Err(format!("unknown goodput metric {other:?}: use ttft, tpot or e2el")),
        }
        Ok(())
    }

    /// True when the request meets every set target.
    pub fn is_good(&self, r: &RequestRecord) -> bool {
        let meets = |target: Option<f64>, value_s: f64| target.is_none_or(|ms| ms / 1000.0 >= value_s);
        meets(self.ttft_ms, r.ttft) && meets(self.tpot_ms, r.tpot()) && meets(self.e2el_ms, r.latency)
    }
}

impl FromStr for Goodput {
    type Err = String;

    /// Space- or comma-separated `NAME:MS` pairs.
    fn from_str(s: &str) -> Result<Goodput, String> {
        let mut g = Goodput::default();
        for pair in s.split([' ', ',']).filter(|p| !p.is_empty()) {
            g.add(pair)?;
        }
        Ok(g)
    }
}

impl fmt::Display for Goodput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [("ttft", self.ttft_ms), ("tpot", self.tpot_ms), ("e2el", self.e2el_ms)]
            .iter()
            .filter_map(|(n, v)| v.map(|v| format!("{n}:{v}")))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

/// Mean, median, standard deviation and percentiles of one metric, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Population standard deviation.
    pub std: f64,
    /// `(percentile, value)` for each asked percentile.
    pub percentiles: Vec<(f64, f64)>,
}

impl Stats {
    /// Stats of `values_s` (seconds), reported in milliseconds.
    pub fn of(values_s: &[f64], percentiles: &[f64]) -> Stats {
        let mut sorted: Vec<f64> = values_s.iter().map(|v| v * 1000.0).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Stats { percentiles: percentiles.iter().map(|p| (*p, 0.0)).collect(), ..Stats::default() };
        }
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let std = (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        Stats {
            mean,
            median: percentile(&sorted, 50.0),
            std,
            percentiles: percentiles.iter().map(|p| (*p, percentile(&sorted, *p))).collect(),
        }
    }
}

/// numpy's default percentile (linear interpolation) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let rank = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// The run's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Successful requests.
    pub completed: u64,
    /// Failed requests.
    pub failed: u64,
    /// Prompt tokens of the successful requests.
    pub total_input: u64,
    /// Output tokens of the successful requests.
    pub total_output: u64,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Requests per second that met every goodput target (`None` without targets).
    pub request_goodput: Option<f64>,
    /// Output tokens per second.
    pub output_throughput: f64,
    /// Input and output tokens per second.
    pub total_token_throughput: f64,
    /// Time to first token (first event with a choice).
    pub ttft: Stats,
    /// Time to first content: text, reasoning or a tool call (our addition).
    pub ttfc: Stats,
    /// Time per output token after the first.
    pub tpot: Stats,
    /// Inter-token latency.
    pub itl: Stats,
    /// End-to-end latency.
    pub e2el: Stats,
    /// The most output events in one second of the run (vLLM's peak output throughput).
    pub max_output_tokens_per_s: f64,
    /// The most requests in flight at once.
    pub max_concurrent_requests: u64,
    /// Successful requests whose server sent no usage (their output is counted in chunks).
    pub requests_without_usage: u64,
}

/// Computes the metrics of `records` over a run of `duration_s` seconds.
pub fn calculate(records: &[RequestRecord], duration_s: f64, percentiles: &[f64], goodput: &Goodput) -> Metrics {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.success).collect();
    let dur = if duration_s > 0.0 { duration_s } else { f64::MIN_POSITIVE };
    let total_input: u64 = ok.iter().map(|r| r.prompt_len).sum();
    let total_output: u64 = ok.iter().map(|r| r.output_len()).sum();
    let ttfts: Vec<f64> = ok.iter().map(|r| r.ttft).collect();
    let ttfcs: Vec<f64> = ok.iter().filter_map(|r| r.ttfc).collect();
    let tpots: Vec<f64> = ok.iter().filter(|r| r.output_len() > 1).map(|r| r.tpot()).collect();
    let itls: Vec<f64> = ok.iter().flat_map(|r| r.itl.iter().copied()).collect();
    let e2els: Vec<f64> = ok.iter().map(|r| r.latency).collect();
    let good = ok.iter().filter(|r| goodput.is_good(r)).count();
    let (max_output_tokens_per_s, max_concurrent_requests) = peaks(&ok);
    Metrics {
        completed: ok.len() as u64,
        failed: (records.len() - ok.len()) as u64,
        total_input,
        total_output,
        request_throughput: ok.len() as f64 / dur,
        request_goodput: (!goodput.is_empty()).then(|| good as f64 / dur),
        output_throughput: total_output as f64 / dur,
        total_token_throughput: (total_input + total_output) as f64 / dur,
        ttft: Stats::of(&ttfts, percentiles),
        ttfc: Stats::of(&ttfcs, percentiles),
        tpot: Stats::of(&tpots, percentiles),
        itl: Stats::of(&itls, percentiles),
        e2el: Stats::of(&e2els, percentiles),
        max_output_tokens_per_s,
        max_concurrent_requests,
        requests_without_usage: ok.iter().filter(|r| r.usage_output_tokens.is_none()).count() as u64,
    }
}

/// vLLM's peak output events per one-second bucket, and the peak number of requests in
/// flight (a sweep over half-open intervals `[start, start + latency)`).
fn peaks(ok: &[&RequestRecord]) -> (f64, u64) {
    if ok.is_empty() {
        return (0.0, 0);
    }
    let start = ok.iter().map(|r| r.start_time).fold(f64::INFINITY, f64::min);
    let end = ok.iter().map(|r| r.start_time + r.latency).fold(f64::NEG_INFINITY, f64::max);
    let buckets = (end - start).max(0.0).ceil() as usize + 1;
    let mut per_second = vec![0u64; buckets];
    for r in ok {
        let mut t = r.start_time + r.ttft;
        let mut add = |t: f64| {
            let b = (t - start).max(0.0) as usize;
            if let Some(slot) = per_second.get_mut(b) {
                *slot += 1;
            }
        };
        add(t);
        for gap in &r.itl {
            t += gap;
            add(t);
        }
    }
    let mut events: Vec<(f64, i64)> = Vec::with_capacity(ok.len() * 2);
    for r in ok {
        events.push((r.start_time, 1));
        events.push((r.start_time + r.latency, -1));
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        now += d;
        peak = peak.max(now);
    }
    (per_second.into_iter().max().unwrap_or(0) as f64, peak as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rec(ttft: f64, itl: &[f64], tokens: Option<u64>) -> RequestRecord {
        RequestRecord {
            success: true,
            prompt_len: 10,
            usage_output_tokens: tokens,
            content_chunks: itl.len() as u64,
            ttft,
            ttfc: Some(ttft),
            itl: itl.to_vec(),
            latency: ttft + itl.iter().sum::<f64>(),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn percentiles_are_numpys() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert!((percentile(&v, 99.0) - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let s = Stats::of(&[0.001, 0.003], &[50.0, 90.0]);
        assert!((s.mean - 2.0).abs() < 1e-12 && (s.std - 1.0).abs() < 1e-12 && (s.median - 2.0).abs() < 1e-12);
        assert!((s.percentiles[1].1 - 2.8).abs() < 1e-12);
        assert_eq!(Stats::of(&[], &[99.0]).percentiles, vec![(99.0, 0.0)]);
    }

    #[test]
    fn tpot_excludes_the_first_token_and_falls_back_to_chunks() {
        let r = rec(0.1, &[0.01, 0.01, 0.01], Some(4));
        assert!((r.tpot() - 0.01).abs() < 1e-12);
        let r = rec(0.1, &[0.02, 0.02], None);
        assert_eq!(r.output_len(), 2);
        assert!((r.tpot() - 0.04).abs() < 1e-12);
        assert_eq!(rec(0.1, &[], Some(1)).tpot(), 0.0);
        let failed = RequestRecord { success: false, ..rec(0.1, &[0.1], Some(3)) };
        assert_eq!(failed.output_len(), 0);
    }

    #[test]
    fn totals_throughputs_and_goodput() {
        let records = vec![
            rec(0.05, &[0.01; 9], Some(10)),
            rec(0.30, &[0.01; 9], Some(10)),
            RequestRecord { error: "boom".into(), ..RequestRecord::default() },
        ];
        let goodput: Goodput = "ttft:100 tpot:20".parse().unwrap();
        let m = calculate(&records, 2.0, &[99.0], &goodput);
        assert_eq!((m.completed, m.failed, m.total_input, m.total_output), (2, 1, 20, 20));
        assert_eq!(m.request_throughput, 1.0);
        assert_eq!(m.request_goodput, Some(0.5));
        assert_eq!(m.output_throughput, 10.0);
        assert_eq!(m.total_token_throughput, 20.0);
        assert_eq!(m.itl.percentiles.len(), 1);
        assert!((m.ttft.mean - 175.0).abs() < 1e-9);
        assert!((m.itl.mean - 10.0).abs() < 1e-9);
        assert_eq!(calculate(&records, 2.0, &[99.0], &Goodput::default()).request_goodput, None);
        assert_eq!(m.max_concurrent_requests, 2);
        assert_eq!(m.max_output_tokens_per_s, 20.0);
    }

    #[test]
    fn goodput_targets_parse() {
        let g: Goodput = "ttft:500,e2el:2000".parse().unwrap();
        assert_eq!(g, Goodput { ttft_ms: Some(500.0), tpot_ms: None, e2el_ms: Some(2000.0) });
        assert_eq!(g.to_string(), "ttft:500 e2el:2000");
        assert!("ttft".parse::<Goodput>().is_err());
        assert!("foo:1".parse::<Goodput>().is_err());
        assert!("ttft:-1".parse::<Goodput>().is_err());
    }
}
