//! LLM calls inside SQL: `llm()`, `llm_json()` and `embed()` for [Apache DataFusion], over any
//! [`ModelBackend`] (a [`BackendPool`](mamba_backends::BackendPool) brings failover, retries and
//! rate limits; every preset works).
//!
//! | Function | Returns |
//! |---|---|
//! | `llm(prompt)`, `llm(prompt, options)` | the answer's text |
//! | `llm_json(prompt, schema)`, `llm_json(prompt, schema, options)` | JSON valid against `schema` (structured output where the server has it, validated, retried) |
//! | `embed(text)`, `embed(text, options)` | `List<Float32>` |
//!
//! `options` is a JSON object: `model`, `system`, `temperature`, `max_tokens`, `top_p`,
//! `seed`, `stop`, `response_format` (`llm`), `attempts` (`llm_json`), `dimensions` (`embed`)
//! and `on_error`. A literal options string or schema is checked when the query is planned, so
//! a typo fails before any request is sent.
//!
//! Per batch of rows: NULL in gives NULL out and sends nothing; rows with the same input and
//! options are sent once; requests run concurrently up to [`LlmFunctionsBuilder::concurrency`]
//! (shared by every partition and query of the registration) and come back in row order. A
//! row whose request fails (after the backend's retries) fails the query with the row's input
//! and the error; with `on_error: "null"` the function returns a struct `{value, error}`
//! instead (`SELECT r.value, r.error FROM (SELECT llm(p, '{"on_error":"null"}') AS r ...)`).
//! Tokens and cost are summed in [`LlmFunctions::stats`]; with a [`ResponseCache`], answers
//! are kept on disk and a re-run pays only for rows not answered before.
//!
//! DataFusion 55 evaluates these functions in projections, filters and aggregate arguments
//! (`count(llm(x))`), not as `GROUP BY` keys: group by a subquery's column instead
//! (`SELECT topic, count(*) FROM (SELECT llm(p) AS topic FROM t) GROUP BY topic`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use datafusion::prelude::SessionContext;
//! use mamba_backends::create_ollama_backend;
//!
//! let ctx = SessionContext::new();
//! let functions = mamba_datafusion::register(&ctx, Arc::new(create_ollama_backend("llama3.2")));
//! ctx.sql("CREATE TABLE reviews (text VARCHAR) AS VALUES ('Great phone'), ('Broke in a week')").await?;
//! let df = ctx
//!     .sql("SELECT text, llm('Positive or negative? One word: ' || text, '{\"temperature\": 0}') AS mood FROM reviews")
//!     .await?;
//! df.show().await?;
//! println!("{} requests, ${:.4}", functions.stats().requests, functions.stats().cost_usd);
//! # Ok(())
//! # }
//! ```
//!
//! [Apache DataFusion]: https://datafusion.apache.org

mod cache;
mod options;
mod planning;
mod run;
mod stats;
mod udf;

use std::sync::Arc;

use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use mamba_backends::ModelBackend;

/// The DataFusion this crate is built with, so users name the same version.
pub use datafusion;

pub use cache::{CacheError, ResponseCache};
pub use options::OnError;
pub use stats::Stats;

use options::Kind;
use run::Engine;
use udf::LlmUdf;

/// Concurrent requests by default (as `mamba-llm batch`).
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Inputs per embedding request by default (the backend splits further by the server's
/// limits).
pub const DEFAULT_EMBED_BATCH: usize = 256;

/// Registers `llm`, `llm_json` and `embed` in `ctx` over `backend`, with the defaults; see
/// [`LlmFunctions::builder`] for concurrency, a response cache, `on_error` and a cost cap.
pub fn register(ctx: &SessionContext, backend: Arc<dyn ModelBackend>) -> LlmFunctions {
    let functions = LlmFunctions::builder(backend).build();
    functions.register(ctx);
    functions
}

/// The functions of one registration: they share a concurrency limit, a cache and counters.
#[derive(Clone, Debug)]
pub struct LlmFunctions {
    engine: Arc<Engine>,
}

impl LlmFunctions {
    /// Settings for functions over `backend`.
    pub fn builder(backend: Arc<dyn ModelBackend>) -> LlmFunctionsBuilder {
        LlmFunctionsBuilder {
            backend,
            concurrency: DEFAULT_CONCURRENCY,
            cache: None,
            on_error: OnError::Fail,
            max_cost: None,
            embed_batch: DEFAULT_EMBED_BATCH,
        }
    }

    /// Functions that plan but answer nothing: the same names, signatures and return types,
    /// for a process that only plans queries whose rows are answered elsewhere (a Ballista
    /// client or scheduler). Running one fails, saying that rows are answered on the
    /// executors. No server and no key is needed.
    pub fn for_planning() -> LlmFunctions {
        LlmFunctions::builder(Arc::new(planning::PlanOnly::new())).build()
    }

    /// Adds the functions to `ctx`.
    pub fn register(&self, ctx: &SessionContext) {
        for udf in self.udfs() {
            ctx.register_udf(udf);
        }
    }

    /// The functions, to register elsewhere (a `SessionStateBuilder`, a cluster executor's
    /// function registry).
    pub fn udfs(&self) -> Vec<ScalarUDF> {
        [Kind::Llm, Kind::Json, Kind::Embed]
            .into_iter()
            .map(|kind| AsyncScalarUDF::new(Arc::new(LlmUdf::new(kind, Arc::clone(&self.engine)))).into_scalar_udf())
            .collect()
    }

    /// What the functions have done so far (readable while a query runs).
    pub fn stats(&self) -> Stats {
        self.engine.counters.snapshot()
    }

    /// The response cache, when there is one.
    pub fn cache(&self) -> Option<&ResponseCache> {
        self.engine.cache.as_deref()
    }
}

/// Settings of [`LlmFunctions`].
#[must_use]
pub struct LlmFunctionsBuilder {
    backend: Arc<dyn ModelBackend>,
    concurrency: usize,
    cache: Option<Arc<ResponseCache>>,
    on_error: OnError,
    max_cost: Option<f64>,
    embed_batch: usize,
}

impl std::fmt::Debug for LlmFunctionsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmFunctionsBuilder")
            .field("backend", &self.backend.name())
            .field("concurrency", &self.concurrency)
            .field("on_error", &self.on_error)
            .field("max_cost", &self.max_cost)
            .field("embed_batch", &self.embed_batch)
            .finish_non_exhaustive()
    }
}

impl LlmFunctionsBuilder {
    /// Requests in flight at most, over every partition and query (default 16).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Keeps answers in `cache` and answers from it.
    pub fn cache(mut self, cache: Arc<ResponseCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// What a failed row gives when its options do not say (default [`OnError::Fail`]). With
    /// [`OnError::Null`] every function returns `{value, error}` structs.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Sends nothing more once the answers so far cost `usd` (model profiles' prices; models
    /// with no price count as free); the query then fails saying so. Requests already in
    /// flight finish, so the total may pass the cap by up to `concurrency` answers.
    pub fn max_cost(mut self, usd: f64) -> Self {
        self.max_cost = Some(usd);
        self
    }

    /// Inputs per embedding request (default 256; the backend splits further when the
    /// server's limits are lower).
    pub fn embed_batch(mut self, n: usize) -> Self {
        self.embed_batch = n.max(1);
        self
    }

    /// The functions.
    pub fn build(self) -> LlmFunctions {
        let engine =
            Engine::new(self.backend, self.concurrency, self.cache, self.on_error, self.max_cost, self.embed_batch);
        LlmFunctions { engine: Arc::new(engine) }
    }
}
