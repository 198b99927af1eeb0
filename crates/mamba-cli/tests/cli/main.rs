//! The CLI's end-to-end suites, as one test binary: each module runs the `mamba-llm` binary
//! (built by cargo for this test) against `mamba-mock` servers on 127.0.0.1, the built-in model
//! where it is present, and the llama.cpp peer for the live runs (`MAMBA_SKIP_PEERS=1` skips
//! those). One binary links once and runs every suite in one `cargo test -p mamba-cli --test
//! cli`; filter by module (`cargo test -p mamba-cli --test cli batch::`).
//!
//! * [`chat`]: chat and the small commands beside it (health, models, pull, mock), the
//!   built-in model;
//! * [`daily`]: config file, saved keys, the conversation log, templates, completions;
//! * [`batch`], [`batch_remote`]: `batch` through the CLI (the engine's own suite is
//!   `mamba-batch`'s `tests/batch`);
//! * [`bench`], [`embed`], [`serve`]: those commands end to end.
//!
//! `common` holds what they share: the binary run sealed off from the machine, temporary
//! folders, the model-file locator.

#![allow(clippy::unwrap_used)]

mod common;

mod batch;
mod batch_remote;
mod bench;
mod chat;
mod daily;
mod embed;
mod extract;
mod serve;
mod sql;
