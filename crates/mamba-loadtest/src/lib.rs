//! Load benchmark for OpenAI-compatible chat servers (vLLM, SGLang, llama.cpp, Ollama, …) on
//! top of [`mamba_backends`]: the engine of `mamba-llm bench`.
//!
//! It sends a dataset's prompts on an open-loop schedule (Poisson or gamma arrivals, as
//! `vllm bench serve` does, or all at once, optionally under a concurrency cap), times every
//! streamed answer, and reports vLLM's metrics under vLLM's JSON keys (TTFT, TPOT, ITL, E2EL,
//! throughputs, goodput), plus the client's own CPU cost per request, a console summary and
//! plots (SVG or PNG).
//!
//! | module | what |
//! |---|---|
//! | [`schedule`] | arrival times, a pure function of rate, burstiness and seed |
//! | [`dataset`] | random prompts, ShareGPT, batch JSONL, prompt files |
//! | [`runner`] | sending on schedule and timing the streams |
//! | [`metrics`] | per-request records to metrics (vLLM's definitions) |
//! | [`report`] | the JSON result and the console summary |
//! | [`plot`] | latency CDFs and sweep charts |
//! | [`TextCompletions`] | the legacy `/v1/completions` API as a backend the runner drives |
//!
//! ```no_run
//! use mamba_backends::OpenAICompatibleBackend;
//! use mamba_loadtest::{bench, BenchSpec, DatasetSpec, Lengths, Rate};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = OpenAICompatibleBackend::builder("my-model")
//!     .base_url("http://localhost:8000/v1")
//!     .include_usage(true)
//!     .build()?;
//! let samples = DatasetSpec::Random.load(100, &Lengths { input_len: 256, output_len: Some(64), ..Lengths::default() })?;
//! let spec = BenchSpec::new("my-model", "http://localhost:8000/v1").rate(Rate::PerSecond(10.0));
//! let result = bench(&backend, &samples, &spec, None).await;
//! println!("{}", result.summary());
//! std::fs::write("result.json", result.to_json().to_string())?;
//! mamba_loadtest::plot::plot_run(&result, std::path::Path::new("latency.svg"))?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod dataset;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod runner;
pub mod schedule;
mod text;

use std::fmt;
use std::str::FromStr;

use mamba_backends::ModelBackend;

pub use dataset::{DatasetSpec, Lengths, Sample};
pub use metrics::{Goodput, Metrics, RequestRecord, Stats};
pub use report::{BenchResult, RunInfo};
pub use runner::{warm_up, RunConfig, RunOutput};
pub use schedule::{Arrivals, Rate, MAX_SCHEDULE};
pub use text::TextCompletions;

/// One benchmark run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchSpec {
    /// Recorded with the result: the model and the server's base URL.
    pub model: String,
    /// The server's base URL.
    pub base_url: String,
    /// The dataset's name, recorded with the result (default `random`).
    pub dataset: String,
    /// The arrival process (default: all at once, burstiness 1, seed 0).
    pub arrivals: Arrivals,
    /// The concurrency cap (default none).
    pub max_concurrency: Option<usize>,
    /// Percentiles reported (default 99, as vLLM).
    pub percentiles: Vec<f64>,
    /// Goodput targets (default none).
    pub goodput: Goodput,
    /// The API benchmarked, recorded in vLLM's names (default `openai-chat`; `openai` for
    /// text completions through [`TextCompletions`]).
    pub endpoint_type: String,
}

impl BenchSpec {
    /// Defaults: every request at once, no cap, P99, no goodput targets.
    pub fn new(model: impl Into<String>, base_url: impl Into<String>) -> BenchSpec {
        BenchSpec {
            model: model.into(),
            base_url: base_url.into(),
            dataset: "random".into(),
            arrivals: Arrivals { rate: Rate::Infinite, burstiness: 1.0, seed: 0 },
            max_concurrency: None,
            percentiles: vec![99.0],
            goodput: Goodput::default(),
            endpoint_type: "openai-chat".into(),
        }
    }

    /// Sets the request rate.
    #[must_use]
    pub fn rate(mut self, rate: Rate) -> BenchSpec {
        self.arrivals.rate = rate;
        self
    }

    /// Checks that a run of `n` requests can follow this spec's arrivals
    /// ([`Arrivals::validate`]) and that its percentiles are from 0 to 100.
    pub fn validate(&self, n: usize) -> Result<(), String> {
        self.arrivals.validate(n)?;
        if let Some(p) = self.percentiles.iter().find(|p| !(0.0..=100.0).contains(*p)) {
            return Err(format!("a percentile is a number from 0 to 100, not {p}"));
        }
        Ok(())
    }

    /// Sets the concurrency cap.
    #[must_use]
    pub fn max_concurrency(mut self, cap: Option<usize>) -> BenchSpec {
        self.max_concurrency = cap;
        self
    }
}

/// Runs one benchmark of `samples` against `backend` and computes its result. `progress` is
/// called with the number of finished requests.
pub async fn bench(
    backend: &dyn ModelBackend,
    samples: &[Sample],
    spec: &BenchSpec,
    progress: Option<&(dyn Fn(usize) + Send + Sync)>,
) -> BenchResult {
    let date = report::utc_stamp();
    let config = RunConfig { arrivals: spec.arrivals, max_concurrency: spec.max_concurrency };
    let out = runner::run(backend, samples, &config, progress).await;
    let metrics = metrics::calculate(&out.records, out.duration_s, &spec.percentiles, &spec.goodput);
    BenchResult {
        info: RunInfo {
            model: spec.model.clone(),
            base_url: spec.base_url.clone(),
            dataset: spec.dataset.clone(),
            rate: spec.arrivals.rate,
            burstiness: spec.arrivals.burstiness,
            max_concurrency: spec.max_concurrency,
            seed: spec.arrivals.seed,
            percentiles: spec.percentiles.clone(),
            goodput: spec.goodput,
            endpoint_type: spec.endpoint_type.clone(),
        },
        metrics,
        records: out.records,
        duration_s: out.duration_s,
        client_cpu_s: out.client_cpu_s,
        date,
    }
}

/// Runs every point of `sweep` in turn (same samples), one result per point with its label.
/// `progress` is called with the point's index and the number of its finished requests.
pub async fn sweep(
    backend: &dyn ModelBackend,
    samples: &[Sample],
    base: &BenchSpec,
    sweep: &Sweep,
    progress: Option<&(dyn Fn(usize, usize) + Send + Sync)>,
) -> Vec<(String, BenchResult)> {
    let mut results = Vec::new();
    for (i, (label, spec)) in sweep.points(base).into_iter().enumerate() {
        let point_progress = progress.map(|p| move |done: usize| p(i, done));
        let callback = point_progress.as_ref().map(|p| p as &(dyn Fn(usize) + Send + Sync));
        results.push((label, bench(backend, samples, &spec, callback).await));
    }
    results
}

/// Several runs that differ in one setting.
#[derive(Clone, Debug, PartialEq)]
pub enum Sweep {
    /// One run per request rate (`rate:1,2,4,inf`).
    Rate(Vec<Rate>),
    /// One run per concurrency cap (`concurrency:1,8,64`).
    Concurrency(Vec<usize>),
}

impl Sweep {
    /// The runs' settings, each with its label (`rate 4`, `concurrency 8`).
    pub fn points(&self, base: &BenchSpec) -> Vec<(String, BenchSpec)> {
        match self {
            Sweep::Rate(rates) => rates.iter().map(|r| (format!("rate {r}"), base.clone().rate(*r))).collect(),
            Sweep::Concurrency(caps) => {
                caps.iter().map(|c| (format!("concurrency {c}"), base.clone().max_concurrency(Some(*c)))).collect()
            }
        }
    }
}

impl FromStr for Sweep {
    type Err = String;

    fn from_str(s: &str) -> Result<Sweep, String> {
        let (kind, values) =
            s.split_once(':').ok_or_else(|| format!("a sweep is rate:R1,R2,… or concurrency:C1,C2,…, not {s:?}"))?;
        let values: Vec<&str> = values.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            return Err(format!("sweep {kind}: no values"));
        }
        match kind {
            "rate" => values.iter().map(|v| v.parse::<Rate>()).collect::<Result<_, _>>().map(Sweep::Rate),
            "concurrency" => values
                .iter()
                .map(|v| {
                    v.parse::<usize>()
                        .ok()
                        .filter(|c| *c > 0)
                        .ok_or_else(|| format!("sweep concurrency: {v:?} is not a positive whole number"))
                })
                .collect::<Result<_, _>>()
                .map(Sweep::Concurrency),
            _ => Err(format!("unknown sweep {kind:?}: use rate or concurrency")),
        }
    }
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sweep::Rate(r) => write!(f, "rate:{}", r.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
            Sweep::Concurrency(c) => {
                write!(f, "concurrency:{}", c.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sweeps_parse_and_expand() {
        let s: Sweep = "rate:1, 2,inf".parse().unwrap();
        assert_eq!(s, Sweep::Rate(vec![Rate::PerSecond(1.0), Rate::PerSecond(2.0), Rate::Infinite]));
        assert_eq!(s.to_string(), "rate:1,2,inf");
        let points = s.points(&BenchSpec::new("m", "u"));
        assert_eq!(points.len(), 3);
        assert_eq!(points[2].0, "rate inf");
        let c: Sweep = "concurrency:1,8".parse().unwrap();
        assert_eq!(c.points(&BenchSpec::new("m", "u"))[1].1.max_concurrency, Some(8));
        assert!("rate:".parse::<Sweep>().is_err());
        assert!("concurrency:0".parse::<Sweep>().is_err());
        assert!("speed:1".parse::<Sweep>().is_err());
    }

    /// Every point of a sweep is checked: one rate too small for the run is refused.
    #[test]
    fn specs_validate_their_schedule() {
        let base = BenchSpec::new("m", "u");
        assert!(base.validate(1000).is_ok());
        let s: Sweep = "rate:1,1e-20,inf".parse().unwrap();
        let bad: Vec<String> =
            s.points(&base).into_iter().filter(|(_, spec)| spec.validate(1000).is_err()).map(|(l, _)| l).collect();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("rate 0.0000"), "{bad:?}");
        let mut spec = base.clone();
        spec.percentiles = vec![99.0, 101.0];
        assert!(spec.validate(1).unwrap_err().contains("101"));
    }
}
