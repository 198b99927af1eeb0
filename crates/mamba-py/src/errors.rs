//! `mamba_backends::Error` as the Python exception of its kind.
//!
//! Each `ErrorKind` has a Python class (registered by the Python half; `ModelBackendError` for
//! a kind it does not name), built with the reference's attributes (`model`, `status_code`,
//! `response_body`, `retryable`, `retry_after`) and ours (`kind`, `request_id`, `code`; and
//! `attempts`, every attempt's `(text, error)`, on an `invalid_output` error). The
//! message is the Rust error's text with its source chain, which never holds a key: the
//! library redacts secrets before any error is built.

use mamba_backends::Error;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::types::types;

/// The Python exception for `error`, raised by a backend of `model` (with the GIL held).
pub(crate) fn build_py_err(py: Python<'_>, error: &Error, model: &str) -> PyErr {
    build(py, error, model).unwrap_or_else(|e| e)
}

fn build(py: Python<'_>, error: &Error, model: &str) -> PyResult<PyErr> {
    let types = types(py)?;
    let kind = error.kind().as_str();
    let class = types.errors.get(kind).unwrap_or(&types.base_error).bind(py);
    let kwargs = PyDict::new(py);
    kwargs.set_item("model", error.model().unwrap_or(model))?;
    kwargs.set_item("status_code", error.status())?;
    kwargs.set_item("response_body", error.response_body())?;
    kwargs.set_item("retryable", error.is_retryable())?;
    kwargs.set_item("retry_after", error.retry_after().map(|d| d.as_secs_f64()))?;
    kwargs.set_item("kind", kind)?;
    kwargs.set_item("request_id", error.request_id())?;
    kwargs.set_item("code", error.code())?;
    // Structured output still invalid after the last attempt: every attempt's text and error,
    // as `(text, error)` pairs (`InvalidOutputError.attempts`).
    if let Some(attempts) = mamba_backends::structured::attempts_of(error) {
        let pairs: Vec<(String, Option<String>)> = attempts
            .iter()
            .map(|a| {
                (
                    mamba_backends::redact::redact_text(&a.text).into_owned(),
                    a.error.as_deref().map(|e| mamba_backends::redact::redact_text(e).into_owned()),
                )
            })
            .collect();
        kwargs.set_item("attempts", pairs)?;
    }
    // The library redacts its own message and body; the sources' texts (I/O, TLS, proxy
    // errors) are redacted here again, so nothing that looks like a key reaches Python.
    let text = mamba_backends::redact::redact_text(&describe(error)).into_owned();
    let value = class.call((text,), Some(&kwargs))?;
    Ok(PyErr::from_value(value))
}

/// The error's text followed by each source's, as `a: b: c` (without repeating a source
/// whose text the previous one already ends with).
fn describe(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
