//! Built without the `local` feature: no built-in model; its commands say so.

use crate::args::{ChatArgs, PullArgs};
use crate::output::CliError;

/// Why the built-in model would answer.
pub(crate) enum Why {
    /// `--local` or `--model-file`.
    Asked,
    /// Nothing configured and no server found on these local ports.
    NoServer(String),
}

const MISSING: &str = "this mamba-llm was built without the built-in model (cargo feature `local`)";

pub(crate) async fn open(
    _args: &ChatArgs,
    why: Why,
) -> Result<(Box<dyn mamba_backends::ModelBackend>, String), CliError> {
    Err(CliError::Failed("unsupported", match why {
        Why::Asked => format!("{MISSING}; configure a server with --base-url URL"),
        Why::NoServer(searched) => format!(
            "no server configured (--base-url, MAMBA_BASE_URL, --preset) and none found on localhost ({searched}); {MISSING}"
        ),
    }))
}

pub(crate) async fn pull(_args: PullArgs) -> Result<(), CliError> {
    Err(CliError::Failed("unsupported", MISSING.to_owned()))
}

pub(crate) fn list(_json: bool) -> Result<(), CliError> {
    Err(CliError::Failed("unsupported", MISSING.to_owned()))
}
