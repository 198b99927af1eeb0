//! `mamba-llm profiles`: the model profiles (context window, output limit, capabilities,
//! prices), as a table or JSON.

use mamba_backends::{get_profile, get_profiles_by_provider, list_profiles, ModelProfile};

use crate::error::CliError;
use crate::print::{line, note, table};

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn fmt_price(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.5}").trim_end_matches('0').trim_end_matches('.').to_owned())
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

/// `mamba-llm profiles [MODEL] [--provider P]`.
pub(crate) fn run(model: Option<&str>, provider: Option<&str>, json: bool) -> Result<(), CliError> {
    let profiles = match (model, provider) {
        (Some(model), _) => {
            let p = get_profile(model);
            if !json {
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
    if json {
        return line(&serde_json::to_string(&profiles).unwrap_or_default());
    }
    if profiles.is_empty() {
        note("mamba-llm: no profiles match");
        return Ok(());
    }
    table(&profile_rows(&profiles))
}
