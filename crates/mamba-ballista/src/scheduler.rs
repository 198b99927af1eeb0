//! The scheduler: Ballista's own, with sessions that know `llm()`, `llm_json()` and `embed()`
//! (planning only: a scheduler answers no rows and holds no server settings).

use std::sync::Arc;

use ballista_core::error::BallistaError;
use ballista_core::utils::default_session_builder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::SessionBuilder;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use mamba_datafusion::datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use mamba_datafusion::LlmFunctions;
use tokio::net::TcpListener;

use crate::aggregate_schema::AsyncAggregateSchema;

/// Serves a scheduler on `listener` until the process ends. `external_host` is the name
/// executors and clients reach it by.
pub async fn serve_scheduler(listener: TcpListener, external_host: &str) -> Result<(), BallistaError> {
    let port = listener.local_addr()?.port();
    let config = SchedulerConfig::default()
        .with_hostname(external_host)
        .with_port(port)
        // One task per executor in turn, not one executor's slots filled first: each executor
        // has its own server and request limit, so spreading tasks spreads the requests.
        .with_task_distribution(TaskDistributionPolicy::RoundRobin)
        .with_override_config_producer(Arc::new(crate::session_config))
        .with_override_session_builder(session_builder());
    config.validate()?;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config)).await?;
    start_grpc_service_with_listener(listener, scheduler).await
}

/// Ballista's default sessions, plus the functions for planning and the rule that keeps their
/// aggregates decodable on the executors.
fn session_builder() -> SessionBuilder {
    let udfs: Vec<_> = LlmFunctions::for_planning().udfs().into_iter().map(Arc::new).collect();
    Arc::new(move |config| {
        let state = default_session_builder(config)?;
        let mut state = SessionStateBuilder::new_from_existing(state)
            .with_physical_optimizer_rule(Arc::new(AsyncAggregateSchema))
            .build();
        for udf in &udfs {
            state.register_udf(Arc::clone(udf))?;
        }
        Ok(state)
    })
}
