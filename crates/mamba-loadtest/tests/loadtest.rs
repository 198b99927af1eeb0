//! The benchmark against `mamba-mock` scripted with known timing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mamba_backends::{Message, OpenAICompatibleBackend, RetryPolicy};
use mamba_loadtest::{bench, sweep, BenchSpec, Goodput, Rate, Sample, Sweep};
use mamba_mock::{Match, MockServer, Reply, Script};

fn backend(server: &MockServer) -> OpenAICompatibleBackend {
    OpenAICompatibleBackend::builder("mock-model")
        .base_url(server.base_url())
        .include_usage(true)
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn samples(texts: &[&str]) -> Vec<Sample> {
    texts.iter().map(|t| Sample { messages: vec![Message::user(*t)], prompt_len: 3, output_len: Some(16) }).collect()
}

/// Within 1 ms or 5 %, whichever is larger.
fn close(measured_ms: f64, truth_ms: f64, what: &str) {
    let tolerance = (truth_ms * 0.05).max(1.0);
    assert!(
        (measured_ms - truth_ms).abs() <= tolerance,
        "{what}: measured {measured_ms:.3} ms, truth {truth_ms:.3} ms"
    );
}

/// First event after D, then one every I: TTFT = D, ITL = I, E2EL = D + (K + 1)·I (K words
/// and the finish event; the usage trailer and [DONE] end no clock), TPOT = (K + 1)·I / (K − 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_itl_tpot_and_e2el_match_the_scripted_timing() {
    let (d, i, k) = (200.0, 40.0, 6u64);
    let reply = Reply::text("one two three four five six")
        .first_chunk_delay(Duration::from_millis(200))
        .chunk_delay(Duration::from_millis(40))
        .usage(11, k);
    let server = MockServer::start_with(Script::new().always(reply)).await.unwrap();
    let backend = backend(&server);
    let spec = BenchSpec::new("mock-model", server.base_url()).rate(Rate::Infinite);
    let result = bench(&backend, &samples(&["a"; 6]), &spec, None).await;
    let m = &result.metrics;
    assert_eq!((m.completed, m.failed), (6, 0), "{:?}", result.records[0].error);
    assert_eq!(m.total_output, 6 * k);
    assert_eq!(m.total_input, 6 * 11);
    close(m.ttft.median, d, "TTFT");
    close(m.itl.median, i, "ITL");
    close(m.e2el.median, d + (k + 1) as f64 * i, "E2EL");
    close(m.tpot.median, (k + 1) as f64 * i / (k - 1) as f64, "TPOT");
    close(m.ttfc.median, d + i, "TTFC");
    for r in &result.records {
        assert_eq!(r.itl.len() as u64, k + 1);
        assert_eq!(r.generated_text, "one two three four five six");
    }
    let json = result.to_json();
    for key in [
        "completed",
        "failed",
        "duration",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "request_goodput",
        "mean_ttft_ms",
        "median_tpot_ms",
        "std_itl_ms",
        "p99_e2el_ms",
        "input_lens",
        "output_lens",
        "ttfts",
        "itls",
        "errors",
        "client_cpu_per_request_ms",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["itls"][0].as_array().unwrap().len() as u64, k + 1);
    assert!(json["request_goodput"].is_null());
    assert!(result.summary().contains("Serving Benchmark Result"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodput_counts_requests_within_the_targets() {
    let script = Script::new()
        .on(Match::contains("slow"), Reply::text("a b c").first_chunk_delay(Duration::from_millis(150)))
        .always(Reply::text("a b c").first_chunk_delay(Duration::from_millis(5)));
    let server = MockServer::start_with(script).await.unwrap();
    let backend = backend(&server);
    let mut spec = BenchSpec::new("mock-model", server.base_url());
    spec.goodput = "ttft:100".parse::<Goodput>().unwrap();
    let result = bench(&backend, &samples(&["fast", "slow", "fast", "fast", "slow"]), &spec, None).await;
    let good = result.metrics.request_goodput.unwrap() * result.duration_s;
    assert!((good - 3.0).abs() < 1e-9, "{good}");
    assert!((result.metrics.request_throughput * result.duration_s - 5.0).abs() < 1e-9);
    // An E2EL target every request misses.
    spec.goodput = "e2el:1".parse::<Goodput>().unwrap();
    let result = bench(&backend, &samples(&["fast", "fast"]), &spec, None).await;
    assert_eq!(result.metrics.request_goodput, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_requests_are_counted_with_their_errors() {
    let script = Script::new()
        .on(Match::contains("500"), Reply::status(500))
        .on(Match::contains("cut"), Reply::text("a b c d").error_frame_at(2))
        .on(Match::contains("hang"), Reply::text("a b").hang_after_events(1))
        .always(Reply::text("fine answer"));
    let server = MockServer::start_with(script).await.unwrap();
    // No usage asked: output tokens are counted in chunks, and the result says so.
    let backend = OpenAICompatibleBackend::builder("mock-model")
        .base_url(server.base_url())
        .include_usage(false)
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let spec = BenchSpec::new("mock-model", server.base_url());
    let result = bench(&backend, &samples(&["ok", "500", "ok", "cut", "hang"]), &spec, None).await;
    let m = &result.metrics;
    assert_eq!((m.completed, m.failed), (2, 3));
    let errors: Vec<&str> = result.records.iter().map(|r| r.error.as_str()).collect();
    assert!(errors[0].is_empty() && errors[2].is_empty(), "{errors:?}");
    assert!(errors[1].contains("500"), "{}", errors[1]);
    assert!(errors[3].contains("mock error mid-stream"), "{}", errors[3]);
    assert!(!errors[4].is_empty());
    let json = result.to_json();
    assert_eq!(json["failed"], 3);
    assert_eq!(json["errors"].as_array().unwrap().len(), 5);
    assert_eq!(json["output_lens"][1], 0);
    assert_eq!(m.requests_without_usage, 2);
    assert_eq!(m.total_output, 4, "two answers of two chunks");
    assert!(result.summary().contains("came without usage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_give_one_result_per_point() {
    let server =
        MockServer::start_with(Script::new().always(Reply::text("a b").first_chunk_delay(Duration::from_millis(30))))
            .await
            .unwrap();
    let backend = backend(&server);
    let base = BenchSpec::new("mock-model", server.base_url());
    let data = samples(&["x"; 8]);
    let points = sweep(&backend, &data, &base, &"concurrency:1,4".parse::<Sweep>().unwrap(), None).await;
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].0, "concurrency 1");
    assert_eq!(points[0].1.metrics.max_concurrent_requests, 1);
    assert!(points[1].1.metrics.max_concurrent_requests <= 4);
    assert!(points.iter().all(|(_, r)| r.metrics.completed == 8));
    // One at a time: about 8 × 30 ms; later arrivals waited for their slot.
    assert!(points[0].1.duration_s >= 0.24, "{}", points[0].1.duration_s);
    assert!(points[0].1.records.iter().any(|r| r.queue_time > 0.1));
    let rates = sweep(&backend, &data, &base, &"rate:50,inf".parse::<Sweep>().unwrap(), None).await;
    assert_eq!(rates.len(), 2);
    // At 50 requests/s the 8 arrivals are spread over 8 / 50 s.
    assert!(rates[0].1.duration_s >= 0.16, "{}", rates[0].1.duration_s);
    assert_eq!(rates[1].1.to_json()["request_rate"], "inf");
}

/// A run at 2000 requests/s completes, its arrivals spread over n / rate. (The dispatcher's
/// precision is tested alone in `runner`; here the unoptimised test build and the mock share
/// two cores, so the lag of the whole client is reported, not asserted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_at_2000_per_second_lasts_n_over_rate() {
    let server = MockServer::start_with(Script::new().always(Reply::text("a"))).await.unwrap();
    let backend = backend(&server);
    let mut spec = BenchSpec::new("mock-model", server.base_url()).rate(Rate::PerSecond(2000.0));
    spec.arrivals.seed = 5;
    let result = bench(&backend, &samples(&["x"; 400]), &spec, None).await;
    assert_eq!(result.metrics.completed, 400, "{:?}", result.records.iter().find(|r| !r.success).map(|r| &r.error));
    assert!(result.to_json()["schedule_lag_mean_ms"].as_f64().is_some());
    // The run lasts at least n / rate (the schedule is not compressed); how much longer
    // depends on how busy the two cores are, so only a loose upper bound.
    assert!(result.duration_s >= 0.2 && result.duration_s < 5.0, "{}", result.duration_s);
    let starts: Vec<f64> = result.records.iter().map(|r| r.start_time).collect();
    assert!(starts.iter().copied().fold(0.0, f64::max) >= 0.19, "the last request was sent too early");
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plots_are_valid_svg_and_png_of_their_size() {
    let server = MockServer::start_with(
        Script::new().always(Reply::text("a b c d").first_chunk_delay(Duration::from_millis(3)).usage(5, 4)),
    )
    .await
    .unwrap();
    let backend = backend(&server);
    let base = BenchSpec::new("mock-model", server.base_url());
    let data = samples(&["x"; 10]);
    let points = sweep(&backend, &data, &base, &"rate:200,inf".parse::<Sweep>().unwrap(), None).await;
    let dir = std::env::temp_dir().join(format!("mamba-loadtest-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let svg = dir.join("run.svg");
    mamba_loadtest::plot::plot_run(&points[0].1, &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{}", &text[..80]);
    assert!(text.contains(r#"width="1500""#) && text.contains(r#"height="480""#));
    assert!(text.contains("TTFT CDF") && text.contains("E2EL CDF"));

    let png = dir.join("run.png");
    mamba_loadtest::plot::plot_run(&points[0].1, &png).unwrap();
    assert_eq!(png_size(&std::fs::read(&png).unwrap()), mamba_loadtest::plot::RUN_SIZE);

    let sweep_png = dir.join("sweep.png");
    mamba_loadtest::plot::plot_sweep(&points, &sweep_png).unwrap();
    assert_eq!(png_size(&std::fs::read(&sweep_png).unwrap()), mamba_loadtest::plot::SWEEP_SIZE);
    let sweep_svg = dir.join("sweep.svg");
    mamba_loadtest::plot::plot_sweep(&points, &sweep_svg).unwrap();
    let text = std::fs::read_to_string(&sweep_svg).unwrap();
    assert!(text.contains(r#"width="1400""#) && text.contains("Latency against throughput"));

    assert!(mamba_loadtest::plot::plot_run(&points[0].1, &dir.join("x.gif")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Warm-up requests go out all at once (or `max_concurrency` at a time), are read to their
/// end, and leave their connections open: a run after them opens no new one while it needs
/// no more than that many at once. Failures are counted, not raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_opens_the_connections_a_run_reuses() {
    let script = Script::new()
        .on(Match::contains("500"), Reply::status(500))
        .always(Reply::text("a b").first_chunk_delay(Duration::from_millis(50)));
    let server = MockServer::start_with(script).await.unwrap();
    let backend = backend(&server);
    let failed = mamba_loadtest::warm_up(&backend, &samples(&["ok", "ok", "ok", "ok"]), 8, None).await;
    assert_eq!(failed, 0);
    assert_eq!(server.requests().len(), 8);
    assert_eq!(server.connections(), 8, "all at once: one connection each");
    // Eight at a time again: the pool has them.
    let spec = BenchSpec::new("mock-model", server.base_url());
    let result = bench(&backend, &samples(&["a"; 8]), &spec, None).await;
    assert_eq!(result.metrics.completed, 8);
    assert_eq!(server.connections(), 8, "the run reused the warm connections");
    // A cap bounds the connections; failures are counted.
    let server =
        MockServer::start_with(Script::new().on(Match::contains("500"), Reply::status(500)).always(Reply::text("a")))
            .await
            .unwrap();
    let backend = self::backend(&server);
    let failed = mamba_loadtest::warm_up(&backend, &samples(&["ok", "500"]), 6, Some(2)).await;
    assert_eq!(failed, 3);
    assert_eq!(server.requests().len(), 6);
    assert!(server.connections() <= 2, "{} connections", server.connections());
}
