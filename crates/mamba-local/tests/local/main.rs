//! Tests of the built-in model against the real SmolLM2-135M-Instruct GGUF.
//!
//! The model file is found through `MAMBA_MODEL_FILE`, else the test peers' cache
//! (`~/.cache/mamba-peers/models/`), else the mamba cache (`$MAMBA_CACHE_DIR`,
//! `$XDG_CACHE_HOME/mamba`, `~/.cache/mamba`, under `models/`). A missing model fails the tests
//! unless `MAMBA_SKIP_LOCAL_MODEL=1` says to skip them.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod engine;
mod families;
mod gemma3;
mod golden;
mod prompt_cache;
mod structured;
mod support;
mod tools;
