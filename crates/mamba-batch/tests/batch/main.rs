//! The batch engine's integration suite: the library's API ([`mamba_batch::Batch`],
//! [`mamba_batch::RemoteBatch`]) driven directly against `mamba-mock` on 127.0.0.1, its
//! faults scripted, its request log counted. Each module is one promise of the crate docs:
//!
//! * [`ordering`]: output in input order with `ordered`, and only a window ahead;
//! * [`resume`]: an interrupted run resumes (a torn line cut off, repeated ids and junk moved
//!   aside, failed lines retried or kept);
//! * [`shards`]: the shards of a file cover each line once;
//! * [`retries`]: 429 pauses the whole run, 5xx is retried, what survives is recorded;
//! * [`cancel`]: shutdown stops sending and waits for the requests in flight;
//! * [`limits`]: the cost cap stops a run, a higher cap resumes it;
//! * [`guard`]: the input is never the output, one run per output (the lock);
//! * [`remote`]: the server's Files and Batch APIs, and following the same batch again.
//!
//! The CLI's suite (`crates/mamba-cli/tests/cli`) runs the same through `mamba-llm batch`,
//! for what only the binary does: flags, exit codes, messages, Ctrl-C.

#![allow(clippy::unwrap_used)]

mod support;

mod cancel;
mod guard;
mod limits;
mod ordering;
mod remote;
mod resume;
mod retries;
mod shards;
