//! The result of a run: vLLM's JSON keys (`--save-result` of `vllm bench serve`) plus ours,
//! and the console summary in the shape of vLLM's "Serving Benchmark Result" block.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::metrics::{Goodput, Metrics, RequestRecord, Stats};
use crate::schedule::Rate;

/// What was asked for: recorded with the result.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// The model.
    pub model: String,
    /// The base URL of the server.
    pub base_url: String,
    /// The dataset's name (`random`, `sharegpt`, …).
    pub dataset: String,
    /// The request rate.
    pub rate: Rate,
    /// The burstiness.
    pub burstiness: f64,
    /// The concurrency cap.
    pub max_concurrency: Option<usize>,
    /// The seed.
    pub seed: u64,
    /// The percentiles reported.
    pub percentiles: Vec<f64>,
    /// The goodput targets.
    pub goodput: Goodput,
    /// The API, in vLLM's names: `openai-chat` or `openai` (text completions).
    pub endpoint_type: String,
}

/// A finished run: what was asked, what was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// What was asked.
    pub info: RunInfo,
    /// The computed metrics.
    pub metrics: Metrics,
    /// Every request, in dataset order.
    pub records: Vec<RequestRecord>,
    /// Length of the run in seconds.
    pub duration_s: f64,
    /// CPU time the client used during the run, in seconds.
    pub client_cpu_s: Option<f64>,
    /// When the run started, UTC, as `YYYYMMDD-HHMMSS` (vLLM's format).
    pub date: String,
}

/// vLLM's name for a percentile in keys: `99` or `99.9`.
fn p_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

fn put_stats(map: &mut Map<String, Value>, name: &str, stats: &Stats) {
    map.insert(format!("mean_{name}_ms"), json!(stats.mean));
    map.insert(format!("median_{name}_ms"), json!(stats.median));
    map.insert(format!("std_{name}_ms"), json!(stats.std));
    for (p, v) in &stats.percentiles {
        map.insert(format!("p{}_{name}_ms", p_word(*p)), json!(v));
    }
}

fn mean_max_ms(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut sum, mut max, mut n) = (0.0, 0.0f64, 0usize);
    for v in values {
        sum += v;
        max = max.max(v);
        n += 1;
    }
    if n == 0 {
        (0.0, 0.0)
    } else {
        (sum / n as f64 * 1000.0, max * 1000.0)
    }
}

impl BenchResult {
    /// Client CPU per request in milliseconds (over all requests sent).
    pub fn client_cpu_per_request_ms(&self) -> Option<f64> {
        let n = self.records.len();
        self.client_cpu_s.filter(|_| n > 0).map(|cpu| cpu * 1000.0 / n as f64)
    }

    /// The result as JSON: every key of `vllm bench serve --save-result` that applies to a
    /// chat benchmark, with the same meaning, plus ours (`ttfcs` and the `_ttfc_ms` stats,
    /// `client_cpu_*`, `schedule_lag_*`, `requests_without_usage`, `base_url`, `dataset`,
    /// `seed`).
    pub fn to_json(&self) -> Value {
        let m = &self.metrics;
        let r = &self.records;
        let rate = match self.info.rate {
            Rate::Infinite => json!("inf"),
            Rate::PerSecond(x) => json!(x),
        };
        let mut map = Map::new();
        let mut put = |k: &str, v: Value| {
            map.insert(k.to_owned(), v);
        };
        put("date", json!(self.date));
        put("endpoint_type", json!(self.info.endpoint_type));
        put("backend", json!("mamba-llm"));
        put("label", Value::Null);
        put("model_id", json!(self.info.model));
        put("tokenizer_id", Value::Null);
        put("num_prompts", json!(r.len()));
        put("request_rate", rate);
        put("burstiness", json!(self.info.burstiness));
        put("max_concurrency", json!(self.info.max_concurrency));
        put("duration", json!(self.duration_s));
        put("completed", json!(m.completed));
        put("failed", json!(m.failed));
        put("total_input_tokens", json!(m.total_input));
        put("total_output_tokens", json!(m.total_output));
        put("request_throughput", json!(m.request_throughput));
        put("request_goodput", json!(m.request_goodput));
        put("output_throughput", json!(m.output_throughput));
        put("total_token_throughput", json!(m.total_token_throughput));
        put("input_lens", json!(r.iter().map(|x| x.prompt_len).collect::<Vec<_>>()));
        put("output_lens", json!(r.iter().map(RequestRecord::output_len).collect::<Vec<_>>()));
        put("ttfts", json!(r.iter().map(|x| x.ttft).collect::<Vec<_>>()));
        put("itls", json!(r.iter().map(|x| &x.itl).collect::<Vec<_>>()));
        put("latencies", json!(r.iter().map(|x| x.latency).collect::<Vec<_>>()));
        put("start_times", json!(r.iter().map(|x| x.start_time).collect::<Vec<_>>()));
        put("queue_times", json!(r.iter().map(|x| x.queue_time).collect::<Vec<_>>()));
        put("generated_texts", json!(r.iter().map(|x| &x.generated_text).collect::<Vec<_>>()));
        put("errors", json!(r.iter().map(|x| &x.error).collect::<Vec<_>>()));
        put("max_output_tokens_per_s", json!(m.max_output_tokens_per_s));
        put("max_concurrent_requests", json!(m.max_concurrent_requests));
        // Ours.
        put("base_url", json!(self.info.base_url));
        put("dataset", json!(self.info.dataset));
        put("seed", json!(self.info.seed));
        put("goodput", if self.info.goodput.is_empty() { Value::Null } else { json!(self.info.goodput.to_string()) });
        put("ttfcs", json!(r.iter().map(|x| x.ttfc).collect::<Vec<_>>()));
        put("requests_without_usage", json!(m.requests_without_usage));
        put("client_cpu_s", json!(self.client_cpu_s));
        put("client_cpu_per_request_ms", json!(self.client_cpu_per_request_ms()));
        let (lag_mean, lag_max) = mean_max_ms(r.iter().map(|x| x.schedule_lag));
        put("schedule_lag_mean_ms", json!(lag_mean));
        put("schedule_lag_max_ms", json!(lag_max));
        put_stats(&mut map, "ttft", &m.ttft);
        put_stats(&mut map, "tpot", &m.tpot);
        put_stats(&mut map, "itl", &m.itl);
        put_stats(&mut map, "e2el", &m.e2el);
        put_stats(&mut map, "ttfc", &m.ttfc);
        Value::Object(map)
    }

    /// The console summary, in the layout of vLLM's "Serving Benchmark Result".
    pub fn summary(&self) -> String {
        let m = &self.metrics;
        let mut s = String::new();
        let title = |s: &mut String, t: &str, fill: char| {
            let pad = 50usize.saturating_sub(t.len());
            let left = pad / 2;
            let f = fill.to_string();
            let _ = writeln!(s, "{}{t}{}", f.repeat(left), f.repeat(pad - left));
        };
        let line = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "{k:<40} {v:<10}");
        };
        title(&mut s, " Serving Benchmark Result ", '=');
        line(&mut s, "Successful requests:", m.completed.to_string());
        line(&mut s, "Failed requests:", m.failed.to_string());
        if let Some(c) = self.info.max_concurrency {
            line(&mut s, "Maximum request concurrency:", c.to_string());
        }
        if let Rate::PerSecond(rate) = self.info.rate {
            line(&mut s, "Request rate configured (RPS):", format!("{rate:.2}"));
        }
        line(&mut s, "Benchmark duration (s):", format!("{:.2}", self.duration_s));
        line(&mut s, "Total input tokens:", m.total_input.to_string());
        line(&mut s, "Total generated tokens:", m.total_output.to_string());
        line(&mut s, "Request throughput (req/s):", format!("{:.2}", m.request_throughput));
        if let Some(g) = m.request_goodput {
            line(&mut s, "Request goodput (req/s):", format!("{g:.2}"));
        }
        line(&mut s, "Output token throughput (tok/s):", format!("{:.2}", m.output_throughput));
        line(&mut s, "Peak output token throughput (tok/s):", format!("{:.2}", m.max_output_tokens_per_s));
        line(&mut s, "Peak concurrent requests:", format!("{:.2}", m.max_concurrent_requests as f64));
        line(&mut s, "Total token throughput (tok/s):", format!("{:.2}", m.total_token_throughput));
        let block = |s: &mut String, header: &str, name: &str, st: &Stats| {
            title(s, header, '-');
            line(s, &format!("Mean {name} (ms):"), format!("{:.2}", st.mean));
            line(s, &format!("Median {name} (ms):"), format!("{:.2}", st.median));
            for (p, v) in &st.percentiles {
                line(s, &format!("P{} {name} (ms):", p_word(*p)), format!("{v:.2}"));
            }
        };
        block(&mut s, "Time to First Token", "TTFT", &m.ttft);
        block(&mut s, "Time per Output Token (excl. 1st token)", "TPOT", &m.tpot);
        block(&mut s, "Inter-token Latency", "ITL", &m.itl);
        block(&mut s, "End-to-end Latency", "E2EL", &m.e2el);
        block(&mut s, "Time to First Content (not in vLLM)", "TTFC", &m.ttfc);
        title(&mut s, "Client", '-');
        match self.client_cpu_per_request_ms() {
            Some(cpu) => {
                let busy = self.client_cpu_s.unwrap_or(0.0) / self.duration_s.max(f64::MIN_POSITIVE) * 100.0;
                line(&mut s, "Client CPU per request (ms):", format!("{cpu:.3}"));
                line(&mut s, "Client CPU busy (% of one core):", format!("{busy:.1}"));
            }
            None => line(&mut s, "Client CPU per request (ms):", "n/a".into()),
        }
        let (lag_mean, lag_max) = mean_max_ms(self.records.iter().map(|x| x.schedule_lag));
        line(&mut s, "Mean schedule lag (ms):", format!("{lag_mean:.3}"));
        line(&mut s, "Max schedule lag (ms):", format!("{lag_max:.3}"));
        let _ = writeln!(s, "{}", "=".repeat(50));
        if m.requests_without_usage > 0 {
            let _ = writeln!(
                s,
                "note: {} of {} successful requests came without usage from the server; their output tokens are counted as streamed chunks",
                m.requests_without_usage, m.completed
            );
        }
        let errors: Vec<&str> = self.records.iter().filter(|r| !r.success).map(|r| r.error.as_str()).take(3).collect();
        for e in errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }
}

/// Now, UTC, as `YYYYMMDD-HHMMSS`.
pub(crate) fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_words_match_vllm() {
        assert_eq!(p_word(99.0), "99");
        assert_eq!(p_word(99.9), "99.9");
    }

    #[test]
    fn stamp_has_the_shape() {
        let s = utc_stamp();
        assert_eq!(s.len(), 15);
        assert!(s.starts_with("20"));
        assert_eq!(&s[8..9], "-");
    }
}
