//! The JSON shapes `--json` prints: a failure (`{"error": {...}}`) and an answer.

use mamba_backends::ModelResponse;

use crate::error::CliError;

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    kind: &'a str,
    status: Option<u16>,
    message: String,
    retryable: bool,
    retry_after_s: Option<f64>,
}

#[derive(serde::Serialize)]
struct ErrorJson<'a> {
    error: ErrorBody<'a>,
}

/// The failure's JSON shape: `{"error": {kind, status, message, retryable, retry_after_s}}`.
pub(crate) fn error_json(err: &CliError) -> String {
    let (status, retryable, retry_after_s) = match err {
        CliError::Backend(e) => (e.status(), e.is_retryable(), e.retry_after().map(|d| d.as_secs_f64())),
        _ => (None, false, None),
    };
    let body =
        ErrorJson { error: ErrorBody { kind: err.kind(), status, message: err.message(), retryable, retry_after_s } };
    serde_json::to_string(&body).unwrap_or_default()
}

/// The answer's JSON shape, fields in their documented order.
pub(crate) fn response_json(response: &ModelResponse) -> String {
    serde_json::to_string(response).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(err: &CliError) -> String {
        let v: serde_json::Value = serde_json::from_str(&error_json(err)).expect("JSON");
        v["error"]["kind"].as_str().expect("a kind").to_owned()
    }

    #[test]
    fn json_error_kinds() {
        let write = CliError::from(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"));
        assert_eq!(kind(&write), "output");
        assert_eq!(kind(&CliError::BrokenPipe), "broken_pipe");
        assert_eq!(kind(&CliError::Unavailable("down".into())), "unavailable");
        assert_eq!(kind(&CliError::Usage("bad".into())), "config");
    }
}
