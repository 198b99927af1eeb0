//! `mamba-llm health`: is a server reachable, authenticated, ready, and is the model listed.

use mamba_backends::ModelBackend;

use crate::connect::connect;
use crate::error::CliError;
use crate::print::line;
use crate::settings::Server;

/// `mamba-llm health`: the report, then exit 0 when healthy, else an `unavailable` error.
pub(crate) async fn run(server: Server, json: bool) -> Result<(), CliError> {
    let connection = connect(&server).await?;
    let backend = &connection.backend;
    let report = backend.health().await;
    // The URL as shown: a key in its query (`?api_key=`) or a user:password never reaches the terminal.
    let shown_url = mamba_backends::redact::redact_url(backend.base_url());
    if json {
        line(&serde_json::to_string(&report).unwrap_or_default())?;
    } else {
        let yes_no = |v: Option<bool>, yes: &str, no: &str| match v {
            Some(true) => yes.to_owned(),
            Some(false) => no.to_owned(),
            None => "unknown".to_owned(),
        };
        line(&format!("{:<10} {}", if report.is_healthy() { "healthy" } else { "unhealthy" }, shown_url))?;
        if let Some(kind) = report.server_kind {
            line(&format!("{:<10} {} (preset {})", "server", kind.spec().display_name, kind.name()))?;
        }
        let reach = match (report.reachable, report.status, report.latency) {
            (true, Some(status), Some(latency)) => format!("yes, HTTP {status} in {} ms", latency.as_millis()),
            (true, _, _) => "yes".to_owned(),
            (false, _, _) => format!("no: {}", report.error.as_deref().unwrap_or("no answer")),
        };
        line(&format!("{:<10} {reach}", "reachable"))?;
        if report.reachable {
            line(&format!("{:<10} {}", "auth", yes_no(report.authenticated, "ok", "rejected (check the API key)")))?;
            if let Some(ready) = report.ready {
                line(&format!("{:<10} {}", "ready", if ready { "yes" } else { "no (loading or starting)" }))?;
            }
            let model = match report.model_listed {
                _ if report.authenticated == Some(false) => {
                    format!("{} (unknown: listing models needs a valid key)", backend.model())
                }
                Some(true) => {
                    let n = report.models.len();
                    format!("{} is listed ({n} model{})", backend.model(), if n == 1 { "" } else { "s" })
                }
                Some(false) => {
                    format!("{} is NOT listed; the server has: {}", backend.model(), report.models.join(", "))
                }
                None => format!("{} (the server does not list models)", backend.model()),
            };
            line(&format!("{:<10} {model}", "model"))?;
        }
    }
    if report.is_healthy() {
        Ok(())
    } else {
        Err(CliError::Unavailable(format!(
            "{} is not healthy{}",
            shown_url,
            report.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        )))
    }
}
