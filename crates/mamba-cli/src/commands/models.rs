//! `mamba-llm models`: the models a server lists, or (`--local`) the model files in the cache.

use serde_json::json;

use crate::connect::connect;
use crate::error::CliError;
use crate::print::{line, note};
use crate::settings::Server;

/// `mamba-llm models`: the server's models (with `local`, the model files in the cache).
pub(crate) async fn run(server: Server, json: bool, local: bool) -> Result<(), CliError> {
    if local {
        return crate::local::list(json);
    }
    let connection = connect(&server).await?;
    let models = connection.backend.list_models().await?;
    if json {
        let list: Vec<_> = models
            .iter()
            .map(|m| json!({"id": m.id, "owned_by": m.owned_by, "context_window": m.context_window}))
            .collect();
        line(&serde_json::Value::Array(list).to_string())?;
    } else {
        for m in &models {
            match m.context_window {
                Some(ctx) => line(&format!("{}\t{ctx}", m.id))?,
                None => line(&m.id)?,
            }
        }
        if models.is_empty() {
            note("mamba-llm: the server lists no models");
        }
    }
    Ok(())
}
