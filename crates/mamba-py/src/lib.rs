//! `mamba_backends._native`: the Rust half of the Python package `mamba_backends`.
//!
//! The Python half (`python/mamba_backends/`) holds what Python users touch by name and type:
//! the reference's dataclasses (`ModelResponse`, `StreamChunk`, `ModelProfile`), the abstract
//! `ModelBackend`, the exception hierarchy, the factories. This module holds the work: one
//! [`NativeBackend`](backend::NativeBackend) over any `mamba_backends::ModelBackend` (a server,
//! a pool, the built-in model), streams handed to Python a batch per wake-up, and the
//! conversions between Python objects and the library's types. The Python half registers its
//! classes here once at import ([`types::init_types`]), so results are built as the classes
//! users compare against, with no second pass in Python.
//!
//! Every entry point checks that it runs in the process that started the runtime
//! ([`runtime`]): after `fork`, a child gets a clear error instead of a hang.

use pyo3::prelude::*;

mod backend;
mod convert;
mod errors;
mod local;
mod profiles;
mod runtime;
mod stream;
mod types;

/// The module `mamba_backends._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(types::init_types, m)?)?;
    m.add_function(wrap_pyfunction!(profiles::profile_fields, m)?)?;
    m.add_function(wrap_pyfunction!(profiles::register_profile_fields, m)?)?;
    m.add_function(wrap_pyfunction!(profiles::profile_names, m)?)?;
    m.add_function(wrap_pyfunction!(profiles::preset_names, m)?)?;
    m.add_function(wrap_pyfunction!(local::load_local, m)?)?;
    m.add_function(wrap_pyfunction!(local::default_model_file, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::drain, m)?)?;
    m.add_class::<backend::NativeBackend>()?;
    m.add_class::<stream::NativeStream>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
