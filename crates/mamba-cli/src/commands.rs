//! `health`, `models`, `profiles`, `presets` and `mock`.

use mamba_backends::{
    get_profile, get_profiles_by_provider, list_profiles, preset::Probe, ModelBackend, ModelProfile, Preset,
};
use mamba_mock::{MockServer, Script};
use serde_json::json;

use crate::args::{ConnArgs, MockArgs, ModelsArgs, ProfilesArgs};
use crate::connect::connect;
use crate::output::{line, note, CliError};

pub(crate) async fn health(conn: ConnArgs) -> Result<(), CliError> {
    let connection = connect(&conn).await?;
    let backend = &connection.backend;
    let report = backend.health().await;
    // The URL as shown: a key in its query (`?api_key=`) or a user:password never reaches the terminal.
    let shown_url = mamba_backends::redact::redact_url(backend.base_url());
    if conn.json {
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
        Err(CliError::Failed(
            "unavailable",
            format!(
                "{} is not healthy{}",
                shown_url,
                report.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ))
    }
}

pub(crate) async fn models(args: ModelsArgs) -> Result<(), CliError> {
    if args.local {
        return crate::local::list(args.conn.json);
    }
    let connection = connect(&args.conn).await?;
    let models = connection.backend.list_models().await?;
    if args.conn.json {
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

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn fmt_price(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.5}").trim_end_matches('0').trim_end_matches('.').to_owned())
}

pub(crate) fn table(rows: &[Vec<String>]) -> Result<(), CliError> {
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        line(cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn profile_rows(profiles: &[ModelProfile]) -> Vec<Vec<String>> {
    let yes = |b: bool| if b { "yes" } else { "-" }.to_owned();
    let mut rows =
        vec![["NAME", "PROVIDER", "CONTEXT", "MAX OUT", "TOOLS", "VISION", "REASONING", "$IN/1K", "$OUT/1K"]
            .map(str::to_owned)
            .to_vec()];
    for p in profiles {
        rows.push(vec![
            p.name.clone(),
            p.provider.clone(),
            fmt_opt(p.context_window),
            fmt_opt(p.max_output_tokens),
            yes(p.supports_tools),
            yes(p.supports_vision),
            if p.thinking_tags { "<think>".to_owned() } else { yes(p.reasoning) },
            fmt_price(p.cost_per_1k_input),
            fmt_price(p.cost_per_1k_output),
        ]);
    }
    rows
}

pub(crate) fn profiles(args: ProfilesArgs) -> Result<(), CliError> {
    let profiles = match (&args.model, &args.provider) {
        (Some(model), _) => {
            let p = get_profile(model);
            if !args.json {
                if p.is_unknown() {
                    note(&format!("mamba-llm: no profile matches {model:?}; it gets the permissive `default` profile"));
                } else {
                    note(&format!("mamba-llm: {model:?} uses the profile {:?}", p.name));
                }
            }
            vec![p]
        }
        (None, Some(provider)) => get_profiles_by_provider(provider),
        (None, None) => list_profiles(),
    };
    if args.json {
        return line(&serde_json::to_string(&profiles).unwrap_or_default());
    }
    if profiles.is_empty() {
        note("mamba-llm: no profiles match");
        return Ok(());
    }
    table(&profile_rows(&profiles))
}

pub(crate) fn presets() -> Result<(), CliError> {
    let mut rows =
        vec![["NAME", "SERVER", "DEFAULT BASE URL", "KEY", "READINESS PROBE", "BATCH API"].map(str::to_owned).to_vec()];
    for preset in Preset::ALL {
        let spec = preset.spec();
        let probe = match spec.probe {
            Probe::Root(path) => format!("GET {path}"),
            Probe::Base(path) => format!("GET {{base}}{path}"),
            _ => "-".to_owned(),
        };
        rows.push(vec![
            spec.name.to_owned(),
            spec.display_name.to_owned(),
            spec.base_url.to_owned(),
            if spec.requires_key { "required" } else { "optional" }.to_owned(),
            probe,
            // `batch --remote` works where this says yes (and is tried on a plain URL).
            if spec.batch_api { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table(&rows)
}

pub(crate) async fn mock(args: MockArgs) -> Result<(), CliError> {
    let script = match &args.script {
        Some(path) => Script::from_file(path).map_err(|e| CliError::Usage(e.to_string()))?,
        None => Script::new(),
    };
    let mut builder = MockServer::builder().port(args.port).script(script).keep_requests(args.keep_requests);
    if args.keep_all_requests {
        builder = builder.keep_all_requests();
    }
    if let Some(key) = &args.api_key {
        builder = builder.api_key(key);
    }
    let server = builder
        .start()
        .await
        .map_err(|e| CliError::Failed("io", format!("cannot listen on 127.0.0.1:{}: {e}", args.port)))?;
    line(&format!("mamba-mock listening on {}", server.base_url()))?;
    note("mamba-llm: press Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    note(&format!("mamba-llm: mock stopped after {} requests", server.request_count()));
    Ok(())
}
