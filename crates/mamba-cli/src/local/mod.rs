//! The built-in model (the `mamba-local` crate, cargo feature `local`): `chat --local`, the
//! answer when no server is found, `serve` without upstreams, `pull` and `models --local`.
//! [`builtin`] holds them; built without the feature, [`disabled`] has the same functions,
//! each failing with a message that says so.

#[cfg(feature = "local")]
mod builtin;
#[cfg(not(feature = "local"))]
mod disabled;

#[cfg(feature = "local")]
pub(crate) use builtin::{list, open, pull};
#[cfg(not(feature = "local"))]
pub(crate) use disabled::{list, open, pull};

/// Why the built-in model answers.
#[derive(Debug)]
pub(crate) enum Why {
    /// `--local` or `--model-file`.
    Asked,
    /// Nothing configured and no server found on these local ports.
    NoServer(String),
}
