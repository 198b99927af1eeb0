//! `llm()`, `llm_json()` and `embed()` over an [Apache Ballista] cluster.
//!
//! A Ballista job is planned twice before a row is answered: by the client, which turns SQL
//! into a logical plan and sends it to the scheduler, and by the scheduler, which decodes it
//! and splits it into stages. Functions travel in plans by name only, so both need the
//! functions' names and types, and every executor needs the functions themselves. This crate
//! gives each side what it needs:
//!
//! - [`connect`]: a client session on a scheduler (`df://HOST:PORT`), with the functions
//!   registered for planning only;
//! - [`serve_scheduler`]: a scheduler whose sessions know the functions, also for planning
//!   only;
//! - [`run_executor`]: an executor that answers rows with the [`LlmFunctions`] it is given,
//!   so over the server, key, cache and limits of *its own* configuration.
//!
//! No endpoint and no key is in a plan: the client and the scheduler hold no server settings
//! at all, and running a function in either fails saying that rows are answered on the
//! executors.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mamba_backends::create_ollama_backend;
//! use mamba_ballista::{run_executor, serve_scheduler, ExecutorOptions};
//! use mamba_datafusion::LlmFunctions;
//!
//! // The scheduler (one per cluster).
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50050").await?;
//! tokio::spawn(serve_scheduler(listener, "127.0.0.1"));
//!
//! // An executor (one per machine), over its own server.
//! let functions = LlmFunctions::builder(Arc::new(create_ollama_backend("llama3.2"))).build();
//! tokio::spawn(async move { run_executor(&ExecutorOptions::new("127.0.0.1:50050"), &functions).await });
//!
//! // A client.
//! let ctx = mamba_ballista::connect("df://127.0.0.1:50050").await?;
//! ctx.register_parquet("reviews", "/data/reviews/", Default::default()).await?;
//! ctx.sql("SELECT id, llm('Summarise: ' || text) AS summary FROM reviews").await?.show().await?;
//! # Ok(())
//! # }
//! ```
//!
//! [Apache Ballista]: https://datafusion.apache.org/ballista/

mod aggregate_schema;
mod executor;
mod scheduler;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use mamba_datafusion::datafusion::error::DataFusionError;
use mamba_datafusion::datafusion::execution::SessionStateBuilder;
use mamba_datafusion::datafusion::prelude::{SessionConfig, SessionContext};
use mamba_datafusion::LlmFunctions;

pub use ballista_core::error::BallistaError;
pub use executor::{run_executor, ExecutorOptions};
pub use scheduler::serve_scheduler;

/// The scheduler's port when a URL names none (Ballista's own default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// A session whose queries run on the Ballista cluster of the scheduler at `url`
/// (`df://HOST[:PORT]`), with `llm()`, `llm_json()` and `embed()` known for planning. Nothing is
/// sent until a query runs.
pub async fn connect(url: &str) -> Result<SessionContext, DataFusionError> {
    scheduler_address(url)?;
    let state = SessionStateBuilder::new().with_default_features().with_config(session_config()).build();
    let ctx = SessionContext::remote_with_state(url, state).await?;
    // Connecting gives the session Ballista's own function list; ours go in after it.
    LlmFunctions::for_planning().register(&ctx);
    Ok(ctx)
}

/// Ballista's session settings, with its static planner: the adaptive one replaces the session's
/// physical optimizer rules with its own list, which leaves out the scheduler's fix for
/// aggregates of `llm()` (see `aggregate_schema.rs`). A row costs a request either way;
/// adaptive join and partition choices buy nothing next to that.
pub(crate) fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista().with_ballista_adaptive_query_planner(false)
}

/// `HOST:PORT` of a scheduler URL (`df://HOST[:PORT]`), or a one-line error saying what a URL
/// looks like.
pub fn scheduler_address(url: &str) -> Result<String, DataFusionError> {
    let bad = || DataFusionError::Configuration(format!("{url}: give the scheduler as df://HOST:PORT"));
    let rest = url.strip_prefix("df://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    let (host, port) =
        if rest.contains(':') { host_port(rest).ok_or_else(bad)? } else { (rest, DEFAULT_SCHEDULER_PORT) };
    Ok(format!("{host}:{port}"))
}

/// `HOST:PORT` split, with a host and a port number, or `None`.
pub(crate) fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    Some((host, port.parse().ok()?)).filter(|_| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls() {
        assert_eq!(scheduler_address("df://localhost:50050").ok().as_deref(), Some("localhost:50050"));
        assert_eq!(scheduler_address("df://10.0.0.5").ok().as_deref(), Some("10.0.0.5:50050"));
        assert_eq!(scheduler_address("df://sched:7000/").ok().as_deref(), Some("sched:7000"));
        for bad in ["localhost:50050", "http://x:1", "df://", "df://:50", "df://x:port", "df://x:1/path"] {
            let e = scheduler_address(bad).unwrap_err().to_string();
            assert!(e.contains("df://HOST:PORT"), "{bad}: {e}");
        }
    }
}
