//! `mamba-llm presets`: the server presets, their default URLs, keys, probes and Batch API.

use mamba_backends::{preset::Probe, Preset};

use crate::error::CliError;
use crate::print::table;

/// `mamba-llm presets`.
pub(crate) fn run() -> Result<(), CliError> {
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
