//! A physical optimizer rule the scheduler runs so that aggregates of `llm()` (`count(llm(x))`,
//! `GROUP BY llm(x)`) reach the executors intact.
//!
//! DataFusion 55's planner evaluates an aggregate's async function calls in an `AsyncFuncExec`
//! below it, which appends their results as columns (`__async_fn_0`), but gives the
//! `AggregateExec` the schema from *before* those columns as its `input_schema`. That only
//! matters once the plan is serialised: the aggregate's expressions are decoded against that
//! schema and the executor rejects the task ("column '__async_fn_0' at index 1, but input
//! schema only has 1 columns"). The rule gives each such aggregate the schema its expressions
//! refer to: its input's for a partial (or single) aggregate, the partial's for a final one.

use std::sync::Arc;

use mamba_datafusion::datafusion::arrow::datatypes::SchemaRef;
use mamba_datafusion::datafusion::common::config::ConfigOptions;
use mamba_datafusion::datafusion::common::tree_node::{Transformed, TreeNode};
use mamba_datafusion::datafusion::error::Result;
use mamba_datafusion::datafusion::physical_optimizer::PhysicalOptimizerRule;
use mamba_datafusion::datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use mamba_datafusion::datafusion::physical_plan::ExecutionPlan;

#[derive(Debug, Default)]
pub(crate) struct AsyncAggregateSchema;

/// `wider` is `narrow` with columns appended (what an `AsyncFuncExec` does).
fn extends(wider: &SchemaRef, narrow: &SchemaRef) -> bool {
    wider.fields().len() > narrow.fields().len()
        && narrow.fields().iter().zip(wider.fields().iter()).all(|(a, b)| a.name() == b.name())
}

/// The input schema of the nearest aggregate at or below `plan` (a final aggregate's partial).
fn partial_input_schema(plan: &Arc<dyn ExecutionPlan>) -> Option<SchemaRef> {
    if let Some(agg) = plan.downcast_ref::<AggregateExec>() {
        return Some(agg.input_schema());
    }
    match plan.children().as_slice() {
        [only] => partial_input_schema(only),
        _ => None,
    }
}

impl PhysicalOptimizerRule for AsyncAggregateSchema {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let wanted = match agg.mode() {
                AggregateMode::Final | AggregateMode::FinalPartitioned => partial_input_schema(agg.input()),
                _ => Some(agg.input().schema()),
            };
            let old = agg.input_schema();
            let Some(wanted) = wanted.filter(|w| extends(w, &old)) else {
                return Ok(Transformed::no(node));
            };
            let fixed = AggregateExec::try_new(
                *agg.mode(),
                agg.group_expr().clone(),
                agg.aggr_expr().to_vec(),
                agg.filter_expr().to_vec(),
                Arc::clone(agg.input()),
                wanted,
            )?
            .with_limit_options(agg.limit_options());
            Ok(Transformed::yes(Arc::new(fixed) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "mamba_async_aggregate_schema"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mamba_datafusion::datafusion::execution::SessionStateBuilder;
    use mamba_datafusion::datafusion::prelude::SessionContext;
    use mamba_datafusion::LlmFunctions;

    /// Every query shape with `llm()` survives the trip through the wire format once the rule
    /// has run (and aggregates did not before it).
    #[tokio::test]
    async fn aggregates_of_async_calls_survive_serialisation() {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(AsyncAggregateSchema))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let plain = SessionContext::new();
        for c in [&ctx, &plain] {
            LlmFunctions::for_planning().register(c);
            c.sql("CREATE TABLE t (k INT, text VARCHAR) AS VALUES (1, 'a'), (2, 'b')").await.unwrap();
        }
        let roundtrip = |plan: Arc<dyn ExecutionPlan>, ctx: &SessionContext| {
            let bytes = datafusion_proto::bytes::physical_plan_to_bytes(plan).unwrap();
            datafusion_proto::bytes::physical_plan_from_bytes(&bytes, &ctx.task_ctx()).map(|_| ())
        };
        for q in [
            "SELECT count(*), count(llm(text)) FROM t",
            "SELECT llm(text) AS a, count(*) FROM t GROUP BY llm(text)",
            "SELECT k, max(llm(text)) FROM t GROUP BY k",
            "SELECT text, llm(text) FROM t WHERE llm(text) <> 'x'",
        ] {
            let plan = ctx.sql(q).await.unwrap().create_physical_plan().await.unwrap();
            roundtrip(plan, &ctx).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        let plan = plain.sql("SELECT count(llm(text)) FROM t").await.unwrap().create_physical_plan().await.unwrap();
        assert!(roundtrip(plan, &plain).is_err(), "DataFusion fixed it upstream: the rule can go");
    }
}
