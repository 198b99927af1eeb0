//! Model profiles and presets: the Rust registry, read and extended from Python.
//!
//! There is one registry for the process (the library's): a profile registered from Python
//! is the one a backend built afterwards resolves, and the longest matching prefix wins (the
//! reference takes the first in insertion order, so `gpt-4o-mini-…` could get `gpt-4o`'s).
//! Profiles cross the boundary as the fields of the Python dataclass, through serde.

use mamba_backends::{ModelProfile, Preset};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A Rust profile from the dataclass's fields (`dataclasses.asdict`).
pub(crate) fn profile_from_fields(fields: &Bound<'_, PyDict>) -> PyResult<ModelProfile> {
    crate::convert::check_depth(fields, 0, "profile")?;
    pythonize::depythonize(fields).map_err(|e| PyValueError::new_err(format!("not a valid ModelProfile: {e}")))
}

/// The fields of `profile`, for the dataclass.
pub(crate) fn fields_dict<'py>(py: Python<'py>, profile: &ModelProfile) -> PyResult<Bound<'py, PyDict>> {
    let value = pythonize::pythonize(py, profile).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(value.cast_into::<PyDict>()?)
}

/// The fields of the profile `model` resolves to.
#[pyfunction]
pub(crate) fn profile_fields<'py>(py: Python<'py>, model: &str) -> PyResult<Bound<'py, PyDict>> {
    fields_dict(py, &mamba_backends::get_profile(model))
}

/// Registers (or replaces, by name) a profile given as the dataclass's fields.
#[pyfunction]
pub(crate) fn register_profile_fields(fields: &Bound<'_, PyDict>) -> PyResult<()> {
    mamba_backends::register_profile(profile_from_fields(fields)?);
    Ok(())
}

/// The fields of every registered profile, built-in ones first.
#[pyfunction]
pub(crate) fn profile_names(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    mamba_backends::list_profiles().iter().map(|p| fields_dict(py, p)).collect()
}

/// The presets: (name, default base URL, whether a key is required).
#[pyfunction]
pub(crate) fn preset_names() -> Vec<(&'static str, &'static str, bool)> {
    Preset::ALL.iter().map(|p| (p.name(), p.spec().base_url, p.spec().requires_key)).collect()
}
