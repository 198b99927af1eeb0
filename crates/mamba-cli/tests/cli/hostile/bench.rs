//! `mamba-llm bench` with rates and durations no schedule or clock can hold (issue 24):
//! `--request-rate 1e-20` panicked (exit 101) turning 1e23 s into a `Duration`.

use mamba_mock::MockServer;

use crate::common::stderr;

#[tokio::test(flavor = "multi_thread")]
async fn rates_and_durations_past_any_clock_are_usage_errors() {
    let server = MockServer::start().await.unwrap();
    let url = server.base_url();
    for (args, want) in [
        (&["--request-rate", "1e-20"][..], "--request-rate 1e-20"),
        (&["--request-rate", "5e-324"], "--request-rate"),
        (&["--request-rate", "1e-5", "--num-prompts", "1000"], "fewer requests"),
        (&["--request-rate", "NaN"], "--request-rate"),
        (&["--request-rate=-inf"], "--request-rate"),
        (&["--request-rate=-2"], "--request-rate"),
        (&["--sweep", "rate:1,1e-20,inf"], "--sweep rate 0.0000"),
        (&["--burstiness", "NaN"], "--burstiness"),
        (&["--burstiness=-1"], "--burstiness"),
        (&["--timeout", "1e20"], "--timeout"),
        (&["--timeout", "inf"], "--timeout"),
        (&["--total-timeout", "1e300"], "--total-timeout"),
        (&["--timeout", "0"], "--timeout"),
    ] {
        let o = super::bench(&url, args).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("mamba-llm: usage error:") && err.contains(want), "{args:?}: want {want:?}: {err}");
    }
    assert!(server.requests().is_empty(), "nothing reached the server");
    // A rate that fits is fine.
    let o = super::bench(&url, &["--request-rate", "4", "--num-prompts", "2", "--input-len", "8"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
