//! `/metrics` in the Prometheus text format: requests and errors by kind and model, tokens in
//! and out, time to first token and latency histograms, running and queued requests. The
//! names follow vLLM's with a `mamba_` prefix, so existing dashboards need one rename.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) model: String,
    pub(crate) endpoint: String,
    pub(crate) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub(crate) model: String,
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabels {
    pub(crate) model: String,
}

type Hist = Family<ModelLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric of the server.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) errors: Family<ErrorLabels, Counter>,
    pub(crate) prompt_tokens: Family<ModelLabels, Counter>,
    pub(crate) generation_tokens: Family<ModelLabels, Counter>,
    pub(crate) cancelled: Family<ModelLabels, Counter>,
    pub(crate) ttft: Hist,
    pub(crate) latency: Hist,
    pub(crate) running: Gauge<i64, AtomicI64>,
    pub(crate) waiting: Gauge<i64, AtomicI64>,
    pub(crate) open_streams: Gauge<i64, AtomicI64>,
    pub(crate) connections: Gauge<i64, AtomicI64>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mamba");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests answered, by model, endpoint and status", requests.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("request_errors", "Failed requests by model and error kind", errors.clone());
        let prompt_tokens = Family::<ModelLabels, Counter>::default();
        registry.register("prompt_tokens", "Prompt tokens processed", prompt_tokens.clone());
        let generation_tokens = Family::<ModelLabels, Counter>::default();
        registry.register("generation_tokens", "Tokens generated", generation_tokens.clone());
        let cancelled = Family::<ModelLabels, Counter>::default();
        registry.register(
            "requests_cancelled",
            "Requests whose client went away before the answer ended (the upstream request was dropped)",
            cancelled.clone(),
        );
        let ttft: Hist = Family::new_with_constructor(latency_histogram);
        registry.register("time_to_first_token_seconds", "Time to the first streamed token", ttft.clone());
        let latency: Hist = Family::new_with_constructor(latency_histogram);
        registry.register(
            "e2e_request_latency_seconds",
            "Time from the request to the end of its answer",
            latency.clone(),
        );
        let running = Gauge::<i64, AtomicI64>::default();
        registry.register("num_requests_running", "Requests being answered", running.clone());
        let waiting = Gauge::<i64, AtomicI64>::default();
        registry.register("num_requests_waiting", "Requests queued for a slot", waiting.clone());
        let open_streams = Gauge::<i64, AtomicI64>::default();
        registry.register("open_streams", "Streamed answers being relayed", open_streams.clone());
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register("open_connections", "Client connections open", connections.clone());
        Metrics {
            registry,
            requests,
            errors,
            prompt_tokens,
            generation_tokens,
            cancelled,
            ttft,
            latency,
            running,
            waiting,
            open_streams,
            connections,
        }
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn model(model: &str) -> ModelLabels {
        ModelLabels { model: model.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.requests.get_or_create(&RequestLabels { model: "m".into(), endpoint: "chat".into(), status: 200 }).inc();
        m.errors.get_or_create(&ErrorLabels { model: "m".into(), kind: "timeout".into() }).inc();
        m.ttft.get_or_create(&Metrics::model("m")).observe(0.02);
        let text = m.render();
        assert!(text.contains("mamba_requests_total{model=\"m\",endpoint=\"chat\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("mamba_request_errors_total{model=\"m\",kind=\"timeout\"} 1"), "{text}");
        assert!(
            text.contains("mamba_time_to_first_token_seconds_bucket{le=\"0.032\",model=\"m\"} 1")
                || text.contains("mamba_time_to_first_token_seconds_count{model=\"m\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
