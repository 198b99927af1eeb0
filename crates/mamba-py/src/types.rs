//! The Python classes results are built as: registered once by the Python half at import.
//!
//! `ModelResponse` and `StreamChunk` are the reference's dataclasses (with our extra fields
//! after its own), and errors are instances of the Python exception classes, so what Rust
//! hands back is exactly what users compare against and catch.

use std::collections::HashMap;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// The registered classes.
pub(crate) struct Types {
    pub(crate) model_response: Py<PyAny>,
    pub(crate) stream_chunk: Py<PyAny>,
    /// The exception class per error kind name (`ErrorKind::as_str`).
    pub(crate) errors: HashMap<String, Py<PyAny>>,
    /// `ModelBackendError`, for a kind with no class of its own.
    pub(crate) base_error: Py<PyAny>,
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

/// Registers the classes (called once by `mamba_backends/__init__.py`).
#[pyfunction]
pub(crate) fn init_types(
    py: Python<'_>,
    model_response: Py<PyAny>,
    stream_chunk: Py<PyAny>,
    errors: &Bound<'_, PyDict>,
    base_error: Py<PyAny>,
) -> PyResult<()> {
    let mut by_kind = HashMap::new();
    for (kind, class) in errors.iter() {
        by_kind.insert(kind.extract::<String>()?, class.unbind());
    }
    // A second import (importlib.reload) keeps the first registration.
    let _ = TYPES.set(py, Types { model_response, stream_chunk, errors: by_kind, base_error });
    Ok(())
}

/// The registered classes, or an error when the module was imported without its Python half.
pub(crate) fn types(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get(py).ok_or_else(|| {
        PyRuntimeError::new_err("mamba_backends._native was imported on its own: import mamba_backends instead")
    })
}
