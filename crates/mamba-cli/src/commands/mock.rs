//! `mamba-llm mock`: the scriptable mock server (the `mamba-mock` crate) until interrupted.

use std::path::Path;

use mamba_mock::{MockServer, Script};

use crate::error::CliError;
use crate::print::{line, note};

/// `mamba-llm mock`: the mock on 127.0.0.1:`port` (0: a free one) until Ctrl-C; `keep`
/// newest requests kept in memory (`None`: all).
pub(crate) async fn run(
    port: u16,
    script: Option<&Path>,
    api_key: Option<&str>,
    keep: Option<usize>,
) -> Result<(), CliError> {
    let script = match script {
        Some(path) => Script::from_file(path).map_err(|e| CliError::Usage(e.to_string()))?,
        None => Script::new(),
    };
    let mut builder = MockServer::builder().port(port).script(script);
    builder = match keep {
        Some(n) => builder.keep_requests(n),
        None => builder.keep_all_requests(),
    };
    if let Some(key) = api_key {
        builder = builder.api_key(key);
    }
    let server = builder.start().await.map_err(|e| CliError::Io(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    line(&format!("mamba-mock listening on {}", server.base_url()))?;
    note("mamba-llm: press Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    note(&format!("mamba-llm: mock stopped after {} requests", server.request_count()));
    Ok(())
}
