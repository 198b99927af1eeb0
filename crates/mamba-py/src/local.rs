//! The built-in model (`mamba_backends.local()`): a GGUF file run in process by mamba-local.
//!
//! The file is the one given, else `MAMBA_MODEL_FILE`, else the default model from the cache
//! the CLI shares (`~/.cache/mamba`), downloaded there once when missing. Loading reads the
//! weights on the runtime's blocking pool, never on the event loop's thread.

use std::path::PathBuf;
use std::sync::Arc;

use mamba_local::fetch::{ModelSpec, ModelStore, Progress};
use mamba_local::{LocalBackend, LocalOptions};
use pyo3::prelude::*;

use crate::backend::NativeBackend;
use crate::errors::to_py_err;
use crate::runtime;

/// Download notes on stderr, one line each (the CLI draws a bar; a library should not).
struct Notes;

impl Progress for Notes {
    fn begin(&self, label: &str, total: Option<u64>, _done: u64) {
        let size = total.map(mamba_local::fetch::format_size).unwrap_or_default();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("mamba_backends: {label} {size}");
        }
    }

    fn note(&self, message: &str) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("mamba_backends: {message}");
        }
    }
}

/// `MAMBA_MODEL_FILE`, else the default model's file when it is in the cache.
#[pyfunction]
pub(crate) fn default_model_file() -> Option<String> {
    if let Some(file) = std::env::var_os("MAMBA_MODEL_FILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file).to_string_lossy().into_owned());
    }
    let store = ModelStore::from_env().ok()?;
    store.cached(&ModelSpec::default_model()).map(|p| p.to_string_lossy().into_owned())
}

/// Awaitable `NativeBackend` over the built-in model.
#[pyfunction]
#[pyo3(signature = (model_file=None, *, threads=None, context=None))]
pub(crate) fn load_local(
    py: Python<'_>,
    model_file: Option<PathBuf>,
    threads: Option<usize>,
    context: Option<u32>,
) -> PyResult<Bound<'_, PyAny>> {
    runtime::check()?;
    let given =
        model_file.or_else(|| std::env::var_os("MAMBA_MODEL_FILE").filter(|f| !f.is_empty()).map(PathBuf::from));
    runtime::future_into_py(py, async move {
        let name = "local";
        let store = ModelStore::from_env().map_err(|e| to_py_err(&e, name))?;
        let location = store
            .locate(given.as_deref(), &ModelSpec::default_model(), &Notes)
            .await
            .map_err(|e| to_py_err(&e, name))?;
        let mut options = LocalOptions::new();
        if let Some(n) = threads {
            options = options.threads(n);
        }
        if let Some(n) = context {
            options = options.context(n);
        }
        let backend = LocalBackend::load_async(&location.path, options).await.map_err(|e| to_py_err(&e, name))?;
        let target = location.path.to_string_lossy().into_owned();
        Ok(NativeBackend::wrap(Arc::new(backend), target))
    })
}
