//! The small commands, one module each: `health`, `models`, `profiles`, `presets`, `mock` and
//! `extract`.
//! (The larger ones, `chat`, `embed`, `bench`, `batch`, `serve`, have their own modules at
//! the crate's top.)

pub(crate) mod extract;
pub(crate) mod health;
pub(crate) mod mock;
pub(crate) mod models;
pub(crate) mod presets;
pub(crate) mod profiles;
