//! `llm()`, `llm_json()` and `embed()` in real DataFusion queries, against mamba-mock on
//! loopback (and a counting backend where the server's view is not enough).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type};
use datafusion::prelude::SessionContext;
use mamba_backends::{
    get_profile, Error, Message, ModelBackend, ModelProfile, ModelResponse, OpenAICompatibleBackend, RequestOptions,
    RetryPolicy,
};
use mamba_datafusion::{register, LlmFunctions, OnError, ResponseCache};
use mamba_mock::{Match, MockServer, Reply, Script};
use serde_json::Value;

fn backend(server: &MockServer, model: &str) -> Arc<dyn ModelBackend> {
    Arc::new(
        OpenAICompatibleBackend::builder(model)
            .base_url(server.base_url())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap(),
    )
}

/// A context with a table `t(id, p)` of the given prompts (`None`: NULL).
async fn table(prompts: &[Option<&str>]) -> SessionContext {
    let ctx = SessionContext::new();
    let rows: Vec<String> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some(p) => format!("({i}, '{}')", p.replace('\'', "''")),
            None => format!("({i}, NULL)"),
        })
        .collect();
    ctx.sql(&format!("CREATE TABLE t (id INT, p VARCHAR) AS VALUES {}", rows.join(", ")))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    ctx
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Column `i` of every batch as text (NULL: `None`).
fn strings(batches: &[RecordBatch], i: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
        let col = col.as_string::<i32>();
        out.extend((0..col.len()).map(|r| col.is_valid(r).then(|| col.value(r).to_owned())));
    }
    out
}

fn some(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some((*s).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_come_back_in_row_order_with_nulls_and_repeats_not_sent() {
    let server = MockServer::start().await.unwrap();
    let ctx = table(&[Some("alpha"), None, Some("beta"), Some("alpha"), Some("gamma"), Some("beta")]).await;
    let f = register(&ctx, backend(&server, "m"));
    let out = query(&ctx, "SELECT id, llm(p) AS a FROM t ORDER BY id").await.unwrap();
    let want = vec![
        Some("alpha".to_owned()),
        None,
        Some("beta".to_owned()),
        Some("alpha".to_owned()),
        Some("gamma".to_owned()),
        Some("beta".to_owned()),
    ];
    assert_eq!(strings(&out, 1), want);
    assert_eq!(server.chat_requests().len(), 3, "three distinct prompts, NULL not sent");
    let s = f.stats();
    assert_eq!((s.rows, s.null_rows, s.merged, s.requests, s.done), (6, 1, 2, 3, 6));
}

#[tokio::test(flavor = "multi_thread")]
async fn options_reach_the_request_and_pick_the_model() {
    let server = MockServer::start_with(Script::new().models(["m", "other"])).await.unwrap();
    let ctx = table(&[Some("hi")]).await;
    register(&ctx, backend(&server, "m"));
    let sql =
        r#"SELECT llm(p, '{"model":"other","system":"be brief","temperature":0.2,"max_tokens":9,"seed":3}') FROM t"#;
    assert_eq!(strings(&query(&ctx, sql).await.unwrap(), 0), some(&["hi"]));
    let body = server.chat_requests()[0].json.clone().unwrap();
    assert_eq!(body["model"], "other");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][0]["content"], "be brief");
    assert_eq!(body["messages"][1]["content"], "hi");
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["seed"], 3);
    assert!(body["max_tokens"] == 9 || body["max_completion_tokens"] == 9, "{body}");
}

/// Bad arguments fail at planning, one line naming the function, before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn bad_calls_fail_before_any_request() {
    let server = MockServer::start_with(Script::new().models(["m"])).await.unwrap();
    let ctx = table(&[Some("x")]).await;
    register(&ctx, backend(&server, "m"));
    let cases = [
        ("SELECT llm(p, 'not json') FROM t", "llm(): the options are not JSON"),
        (r#"SELECT llm(p, '{"temprature": 0}') FROM t"#, "llm(): unknown option \"temprature\""),
        ("SELECT llm_json(p, '{\"type\": 7}') FROM t", "llm_json(): the schema is not a valid JSON Schema"),
        ("SELECT llm_json(p, 'nope') FROM t", "llm_json(): the schema is not JSON"),
        ("SELECT embed(p, '{\"dimensions\": -1}') FROM t", "embed(): option \"dimensions\""),
        ("SELECT llm(p) FROM missing_table", "missing_table"),
        (r#"SELECT llm(p, '{"model":"nope"}') FROM t"#, "llm(): unknown model \"nope\"; the server serves m"),
    ];
    for (sql, want) in cases {
        let err = query(&ctx, sql).await.unwrap_err();
        assert!(err.contains(want), "{sql}: {err}");
        assert!(!err.trim_end().contains('\n'), "one line: {err}");
    }
    // Wrong argument types or counts: DataFusion's planning error (several lines) names the
    // function and what it got.
    for (sql, got) in [
        ("SELECT llm(id) FROM t", "Int32"),
        ("SELECT llm() FROM t", "llm"),
        ("SELECT llm_json(p) FROM t", "llm_json"),
        ("SELECT embed(p, 3) FROM t", "Int64"),
    ] {
        let err = query(&ctx, sql).await.unwrap_err();
        assert!(
            err.contains("planning") && err.contains(sql.split('(').next().unwrap().trim_start_matches("SELECT ")),
            "{sql}: {err}"
        );
        assert!(err.contains(got), "{sql}: {err}");
    }
    assert_eq!(server.chat_requests().len(), 0, "nothing was sent");
    assert!(server.requests().iter().all(|r| !r.is_embeddings()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_row_fails_the_query_naming_its_input_and_the_error() {
    let script = Script::new().on(Match::contains("bad"), Reply::status(400));
    let server = MockServer::start_with(script).await.unwrap();
    let ctx = table(&[Some("good"), Some("bad one"), Some("fine")]).await;
    let f = register(&ctx, backend(&server, "m"));
    let err = query(&ctx, "SELECT llm(p) FROM t").await.unwrap_err();
    assert!(err.contains("llm(): the row with input \"bad one\" failed"), "{err}");
    assert!(err.contains("400"), "the server's status: {err}");
    assert_eq!(f.stats().failed, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_error_null_gives_value_and_error_columns() {
    let script = Script::new().on(Match::contains("bad"), Reply::status(400));
    let server = MockServer::start_with(script).await.unwrap();
    let ctx = table(&[Some("good"), Some("bad one"), None]).await;
    register(&ctx, backend(&server, "m"));
    let sql = r#"SELECT r.value, r.error FROM (SELECT id, llm(p, '{"on_error":"null"}') AS r FROM t) ORDER BY id"#;
    let out = query(&ctx, sql).await.unwrap();
    assert_eq!(strings(&out, 0), vec![Some("good".to_owned()), None, None]);
    let errors = strings(&out, 1);
    assert_eq!(errors[0], None);
    assert!(errors[1].as_deref().unwrap().contains("400"), "{errors:?}");
    assert_eq!(errors[2], None, "a NULL input is not an error");

    // The registration's default does the same for every call.
    let ctx = table(&[Some("bad"), Some("ok")]).await;
    LlmFunctions::builder(backend(&server, "m")).on_error(OnError::Null).build().register(&ctx);
    let out = query(&ctx, "SELECT llm(p)['value'], llm(p)['error'] IS NOT NULL FROM t ORDER BY id").await.unwrap();
    assert_eq!(strings(&out, 0), vec![None, Some("ok".to_owned())]);
    assert_eq!(strings(&out, 1), some(&["true", "false"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_answers_a_rerun_and_pays_only_for_rows_not_answered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("answers.sqlite");
    // First run: one row fails, the others are answered (and kept, though the query fails).
    let script = Script::new().on(Match::contains("late"), Reply::status(500));
    let server = MockServer::start_with(script).await.unwrap();
    let prompts = [Some("a"), Some("b"), Some("late"), Some("c")];
    let run = |server: &MockServer, cache: Arc<ResponseCache>| {
        let b = backend(server, "m");
        async move {
            let ctx = table(&prompts).await;
            let f = LlmFunctions::builder(b).cache(cache).concurrency(1).build();
            f.register(&ctx);
            (query(&ctx, "SELECT llm(p) FROM t ORDER BY id").await, f)
        }
    };
    let (first, _) = run(&server, Arc::new(ResponseCache::open(&path).unwrap())).await;
    assert!(first.is_err());
    let sent_first = server.chat_requests().len();
    assert!(sent_first >= 3, "a, b, late (and c unless it was stopped): {sent_first}");

    // The re-run, after the server recovered, sends only what was not answered.
    server.set_script(Script::new());
    server.clear_requests();
    let (second, f) = run(&server, Arc::new(ResponseCache::open(&path).unwrap())).await;
    assert_eq!(strings(&second.unwrap(), 0), some(&["a", "b", "late", "c"]));
    let resent: Vec<String> =
        server.chat_requests().iter().map(|r| r.json.as_ref().unwrap()["messages"][0]["content"].to_string()).collect();
    assert!(resent.contains(&"\"late\"".to_owned()), "{resent:?}");
    assert!(!resent.contains(&"\"a\"".to_owned()) && !resent.contains(&"\"b\"".to_owned()), "{resent:?}");
    assert_eq!(f.stats().cache_hits + f.stats().requests, 4);

    // A third run sends nothing; different options are a different answer.
    server.clear_requests();
    let cache = Arc::new(ResponseCache::open(&path).unwrap());
    let ctx = table(&prompts).await;
    LlmFunctions::builder(backend(&server, "m")).cache(Arc::clone(&cache)).build().register(&ctx);
    query(&ctx, "SELECT llm(p) FROM t").await.unwrap();
    assert_eq!(server.chat_requests().len(), 0);
    query(&ctx, r#"SELECT llm(p, '{"temperature": 0}') FROM t"#).await.unwrap();
    assert_eq!(server.chat_requests().len(), 4);
    assert_eq!(cache.len().unwrap(), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn embed_returns_vectors_in_batched_requests() {
    let server = MockServer::start().await.unwrap();
    let texts: Vec<String> = (0..10).map(|i| format!("doc {}", i % 7)).collect();
    let mut prompts: Vec<Option<&str>> = texts.iter().map(|s| Some(s.as_str())).collect();
    prompts.push(None);
    let ctx = table(&prompts).await;
    let f = LlmFunctions::builder(backend(&server, "m")).embed_batch(3).build();
    f.register(&ctx);
    let out = query(&ctx, r#"SELECT id, embed(p, '{"dimensions": 4}') FROM t ORDER BY id"#).await.unwrap();
    let mut got = Vec::new();
    for b in &out {
        let list = b.column(1).as_list::<i32>();
        for r in 0..list.len() {
            got.push(list.is_valid(r).then(|| list.value(r).as_primitive::<Float32Type>().values().to_vec()));
        }
    }
    assert_eq!(got.len(), 11);
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(got[i].as_deref(), Some(&mamba_mock::vector_for(text.as_bytes(), 4)[..]), "row {i}");
    }
    assert_eq!(got[10], None);
    let requests: Vec<_> = server.requests().into_iter().filter(|r| r.is_embeddings()).collect();
    assert_eq!(requests.len(), 3, "7 distinct texts in requests of 3");
    assert_eq!(requests[0].json.as_ref().unwrap()["dimensions"], 4);
    assert_eq!(f.stats().merged, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_json_gives_json_valid_against_the_schema() {
    let script = Script::new().always(Reply::text(r#"{"mood": "happy", "score": 0.9}"#));
    let server = MockServer::start_with(script).await.unwrap();
    let ctx = table(&[Some("I love it")]).await;
    register(&ctx, backend(&server, "m"));
    let schema = r#"{"type":"object","properties":{"mood":{"type":"string"},"score":{"type":"number"}},"required":["mood","score"]}"#;
    let out = query(&ctx, &format!("SELECT llm_json(p, '{schema}') FROM t")).await.unwrap();
    let value: Value = serde_json::from_str(strings(&out, 0)[0].as_deref().unwrap()).unwrap();
    assert_eq!(value["mood"], "happy");
    let body = server.chat_requests()[0].json.clone().unwrap();
    assert!(body.get("response_format").is_some() || body.get("tools").is_some(), "structured output asked: {body}");

    // An answer that never fits fails the row, naming the schema's complaint.
    server.set_script(Script::new().always(Reply::text(r#"{"mood": 5}"#)));
    let err = query(&ctx, &format!(r#"SELECT llm_json(p, '{schema}', '{{"attempts": 2}}') FROM t"#)).await.unwrap_err();
    assert!(err.contains("llm_json(): the row with input \"I love it\" failed"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_and_cost_are_summed_and_the_cost_cap_stops_sending() {
    let priced = "gpt-4o-mini";
    let profile = get_profile(priced);
    let (pi, po) = (profile.cost_per_1k_input.unwrap(), profile.cost_per_1k_output.unwrap());
    let script = Script::new().always(Reply::text("ok").usage(1000, 500));
    let server = MockServer::start_with(script).await.unwrap();
    let prompts: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
    let ctx = table(&prompts.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>()).await;
    let f = LlmFunctions::builder(backend(&server, priced)).build();
    f.register(&ctx);
    query(&ctx, "SELECT llm(p) FROM t").await.unwrap();
    let s = f.stats();
    assert_eq!((s.input_tokens, s.output_tokens, s.unpriced), (6000, 3000, 0));
    assert!((s.cost_usd - 6.0 * (pi + 0.5 * po)).abs() < 1e-6, "{s:?}");

    // A cap below one answer's cost: one request at a time, so exactly one is paid for.
    server.clear_requests();
    let ctx = table(&prompts.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>()).await;
    let f = LlmFunctions::builder(backend(&server, priced)).concurrency(1).max_cost((pi + 0.5 * po) / 2.0).build();
    f.register(&ctx);
    let err = query(&ctx, "SELECT llm(p) FROM t").await.unwrap_err();
    assert!(err.contains("stopped at the cost cap"), "{err}");
    assert_eq!(server.chat_requests().len(), 1);
}

/// A backend that counts requests in flight and answers after a pause.
#[derive(Debug)]
struct Counting {
    now: AtomicUsize,
    peak: AtomicUsize,
    profile: ModelProfile,
}

#[async_trait]
impl ModelBackend for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn model(&self) -> &str {
        "counting"
    }
    fn profile(&self) -> &ModelProfile {
        &self.profile
    }
    async fn complete(&self, messages: &[Message], _: &RequestOptions) -> Result<ModelResponse, Error> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        let text = messages.last().map(|m| m.text()).unwrap_or_default();
        Ok(ModelResponse::new(format!("<{text}>")))
    }
    async fn health_check(&self) -> bool {
        true
    }
}

/// The limit holds over every partition of a query: a UNION runs two scans at once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrency_is_limited_across_partitions() {
    let counting =
        Arc::new(Counting { now: AtomicUsize::new(0), peak: AtomicUsize::new(0), profile: get_profile("x") });
    let prompts: Vec<String> = (0..40).map(|i| format!("q{i}")).collect();
    let ctx = table(&prompts.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>()).await;
    let f = LlmFunctions::builder(counting.clone()).concurrency(5).build();
    f.register(&ctx);
    let sql = "SELECT llm(p) FROM t WHERE id < 20 UNION ALL SELECT llm(p || '!') FROM t WHERE id >= 20";
    let out = query(&ctx, sql).await.unwrap();
    assert_eq!(strings(&out, 0).len(), 40);
    let peak = counting.peak.load(Ordering::SeqCst);
    assert!(peak <= 5, "at most 5 in flight, saw {peak}");
    assert!(peak >= 2, "requests do overlap, saw {peak}");
    assert_eq!(f.stats().requests, 40);
}

/// Files in, files out: a Parquet input read in several batches, written back to Parquet.
#[tokio::test(flavor = "multi_thread")]
async fn parquet_in_parquet_out() {
    let server = MockServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let ctx = SessionContext::new();
    register(&ctx, backend(&server, "m"));
    let make = format!(
        "COPY (SELECT v AS id, 'row ' || CAST(v AS VARCHAR) AS p FROM generate_series(1, 300) AS s(v)) TO '{}' STORED AS PARQUET",
        input.display()
    );
    query(&ctx, &make).await.unwrap();
    ctx.register_parquet("docs", input.to_str().unwrap(), Default::default()).await.unwrap();
    let output = dir.path().join("out.parquet");
    let copy = format!("COPY (SELECT id, llm(p) AS a FROM docs) TO '{}' STORED AS PARQUET", output.display());
    query(&ctx, &copy).await.unwrap();
    ctx.register_parquet("answers", output.to_str().unwrap(), Default::default()).await.unwrap();
    let check = query(&ctx, "SELECT count(*) FROM answers WHERE a = 'row ' || CAST(id AS VARCHAR)").await.unwrap();
    assert_eq!(strings(&check, 0), some(&["300"]));
    assert_eq!(server.chat_requests().len(), 300);
}
