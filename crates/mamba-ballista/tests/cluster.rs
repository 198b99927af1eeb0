//! A Ballista cluster on loopback: a scheduler and two executors in this process, each
//! executor over its own mamba-mock, answering a query over a four-file Parquet table. The
//! result must equal the single-process run's, and both executors must have answered rows.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mamba_backends::{ModelBackend, OpenAICompatibleBackend, RetryPolicy};
use mamba_ballista::{connect, run_executor, serve_scheduler, ExecutorOptions};
use mamba_datafusion::datafusion::arrow::array::RecordBatch;
use mamba_datafusion::datafusion::arrow::util::pretty::pretty_format_batches;
use mamba_datafusion::datafusion::prelude::SessionContext;
use mamba_datafusion::{register, LlmFunctions};
use mamba_mock::MockServer;

/// A projection, a struct-valued call, and aggregates over calls (which need the scheduler's
/// plan fix to reach the executors).
const QUERIES: [&str; 3] = [
    "SELECT id, text, llm('Summarise: ' || text) AS summary, \
     llm(text, '{\"on_error\": \"null\", \"max_tokens\": 20}')['value'] AS echo \
     FROM reviews ORDER BY id",
    "SELECT count(*) AS n, count(llm(text)) AS answered FROM reviews",
    "SELECT topic, count(*) AS n FROM (SELECT llm('Topic: ' || text) AS topic FROM reviews) \
     GROUP BY topic ORDER BY n DESC, topic LIMIT 10",
];

fn backend(server: &MockServer) -> Arc<dyn ModelBackend> {
    Arc::new(
        OpenAICompatibleBackend::builder("m")
            .base_url(server.base_url())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`.
async fn listening(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_executors_answer_a_query_as_one_process_does() {
    // Four Parquet files of 30 rows: repeats across files, and NULLs.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reviews");
    std::fs::create_dir(&data).unwrap();
    let local = SessionContext::new();
    for part in 0..4 {
        let (from, to) = (part * 30, part * 30 + 29);
        let sql = format!(
            "COPY (SELECT v AS id, CASE WHEN v % 11 = 0 THEN NULL ELSE 'review ' || CAST(v % 45 AS VARCHAR) END AS text \
             FROM generate_series({from}, {to}) AS s(v)) TO '{}' STORED AS PARQUET",
            data.join(format!("part-{part}.parquet")).display()
        );
        run(&local, &sql).await.unwrap();
    }
    let path = format!("{}/", data.display());

    // One process.
    let alone = MockServer::start().await.unwrap();
    register(&local, backend(&alone));
    local.register_parquet("reviews", &path, Default::default()).await.unwrap();
    let mut want = Vec::new();
    for q in QUERIES {
        want.push(table(&run(&local, q).await.unwrap()));
    }
    assert_eq!(want[1].lines().nth(3).map(str::trim), Some("| 120 | 109      |"), "{}", want[1]);

    // A scheduler and two executors of one task slot each, each over its own server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheduler = listener.local_addr().unwrap().port();
    tokio::spawn(serve_scheduler(listener, "127.0.0.1"));
    let servers = [MockServer::start().await.unwrap(), MockServer::start().await.unwrap()];
    for (i, server) in servers.iter().enumerate() {
        let flight = free_port();
        let options = ExecutorOptions::new(format!("127.0.0.1:{scheduler}"))
            .external_host("127.0.0.1")
            .flight_port(flight)
            .grpc_port(free_port())
            .vcores(1)
            .work_dir(dir.path().join(format!("executor-{i}")));
        std::fs::create_dir(dir.path().join(format!("executor-{i}"))).unwrap();
        let functions = LlmFunctions::builder(backend(server)).build();
        tokio::spawn(async move { run_executor(&options, &functions).await });
        // The Flight service starts once the executor has registered.
        listening(flight).await;
    }

    let ctx = connect(&format!("df://127.0.0.1:{scheduler}")).await.unwrap();
    run(&ctx, "SET datafusion.execution.target_partitions = 4").await.unwrap();
    ctx.register_parquet("reviews", &path, Default::default()).await.unwrap();
    for (q, want) in QUERIES.iter().zip(&want) {
        let got = run(&ctx, q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(&table(&got), want, "{q}");
    }

    let sent: Vec<usize> = servers.iter().map(|s| s.chat_requests().len()).collect();
    assert!(sent.iter().all(|&n| n > 0), "both executors answer rows: {sent:?}");
    // Repeats are merged within a batch; a prompt in two files may be sent by both executors,
    // never more often than the single process sends it per file.
    let alone_sent = alone.chat_requests().len();
    assert!(sent.iter().sum::<usize>() >= alone_sent, "{sent:?} vs {alone_sent}");

    // A bad call fails at the client's planning, before anything reaches an executor.
    let err = run(&ctx, "SELECT llm(text, '{\"modle\": \"x\"}') FROM reviews").await.unwrap_err();
    assert!(err.contains("modle"), "{err}");
    assert_eq!(servers.iter().map(|s| s.chat_requests().len()).collect::<Vec<_>>(), sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_for_planning_refuse_to_answer() {
    let ctx = SessionContext::new();
    LlmFunctions::for_planning().register(&ctx);
    let err = run(&ctx, "SELECT llm('hi')").await.unwrap_err();
    assert!(err.contains("run on the cluster's executors"), "{err}");
    let err = run(&ctx, "SELECT embed('hi')").await.unwrap_err();
    assert!(err.contains("run on the cluster's executors"), "{err}");
}
