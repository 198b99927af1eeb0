//! Built without the `local` feature: no built-in model; its commands say so.

use super::Why;
use crate::error::CliError;
use crate::settings::LocalModel;

const MISSING: &str = "this mamba-llm was built without the built-in model (cargo feature `local`)";

pub(crate) async fn open(
    _model: &LocalModel,
    why: Why,
) -> Result<(Box<dyn mamba_backends::ModelBackend>, String), CliError> {
    Err(CliError::Unsupported(match why {
        Why::Asked => format!("{MISSING}; configure a server with --base-url URL"),
        Why::NoServer(searched) => format!(
            "no server configured (--base-url, MAMBA_BASE_URL, --preset) and none found on localhost ({searched}); {MISSING}"
        ),
    }))
}

pub(crate) async fn pull(_model: Option<&str>, _source: Option<&str>) -> Result<(), CliError> {
    Err(CliError::Unsupported(MISSING.to_owned()))
}

pub(crate) fn list(_json: bool) -> Result<(), CliError> {
    Err(CliError::Unsupported(MISSING.to_owned()))
}
