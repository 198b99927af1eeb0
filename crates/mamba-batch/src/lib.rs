//! Runs OpenAI Batch JSONL files against any OpenAI-compatible server, through a
//! [`ModelBackend`](mamba_backends::ModelBackend) (one server, or a
//! [`BackendPool`](mamba_backends::BackendPool) of replicas).
//!
//! * **Input**: one request a line, `{"custom_id", "method": "POST", "url":
//!   "/v1/chat/completions" | "/v1/embeddings", "body": {…}}`, from a file or stdin, plain or
//!   gzip, streamed. Every line is checked before the first request is sent
//!   ([`Batch::open`]); blank lines are skipped.
//! * **Output**: one line per request in OpenAI's Batch output format, `{"id", "custom_id",
//!   "response": {"status_code", "request_id", "body"}, "error"}`, written and flushed as each
//!   request ends (or in input order with [`BatchOptions::ordered`]). The body is the server's
//!   JSON as it sent it (line ends inside it, which JSON allows only as whitespace, become
//!   spaces). An HTTP error that survives the retries keeps its status and body; a failure
//!   with no HTTP answer has `"response": null` and `"error": {"code", "message"}`.
//! * **Resume**: run again with the same output; see [`resume`](crate#resume).
//! * **Rate limits**, **cost cap**, **shards**: [`BatchOptions`].
//!
//! Requests go through the backend's raw requests
//! ([`PostJson::post_json`](mamba_backends::raw::PostJson::post_json), reached with
//! [`ModelBackend::as_post_json`](mamba_backends::ModelBackend::as_post_json)), which send
//! the body as given with the backend's key, headers and timeouts and return the server's own
//! bytes. The run retries with its own [`RetryPolicy`] (the backends should have none) so
//! that every 429 is seen here and pauses the whole run.
//!
//! # Resume
//! Lines of the output answered with status 200 are skipped; failed lines are removed and
//! sent again (kept with [`BatchOptions::retry_failed`]`(false)`); a torn last line from a
//! crash is cut off. Lines repeating an earlier line's custom_id are removed (the first is
//! kept) and lines that are not output records are moved to `OUT.invalid`
//! ([`invalid_lines_path`]); the [`Plan`] counts both and names a few. Running until the
//! summary shows no failure is the way to finish a large job. The set of done custom_ids is
//! held as 64-bit hashes (8 bytes a line).
//!
//! # One run per output
//! The output must not be the input (compared through links: same device and inode on unix,
//! else the same canonical path), nor one of the files written next to it; that is
//! [`BatchError::Refused`]. A run (local or remote, dry runs excepted) holds an advisory lock
//! on `OUT.lock` ([`lock_path`]) from [`Batch::open`] to the end of its run; a second run on
//! the same output fails at once with [`BatchError::Locked`]. The lock dies with the process;
//! the (empty) lock file stays. An input with no request at all is [`BatchError::Refused`]
//! ("nothing to do"); an input whose requests are all done runs and sends nothing.
//!
//! # Remote
//! [`RemoteBatch`] hands the file to the server's own Batch API instead of sending the
//! requests from here (`mamba-llm batch --remote`):
//!
//! 1. The input is checked exactly as for a local run ([`BatchError::Invalid`]: nothing is
//!    uploaded); every line of the shard must name the same url, since one batch has one
//!    endpoint (mixed urls are [`BatchError::Refused`]: split the input by url).
//! 2. The shard's lines are uploaded to `POST /files` (multipart, purpose `batch` or the
//!    server's own, [`RemoteBatch::file_purpose`]), bodies naming no model with the default
//!    model filled in. The file is built in memory once (the request body is built around it).
//! 3. `POST /batches` creates the batch; `GET /batches/{id}` polls it, after 1 s and then
//!    half as long again each time nothing changed, up to 30 s
//!    ([`RemoteOptions::poll_interval`]); status and request counts go to the [`Progress`]
//!    counters ([`Progress::status`]).
//! 4. Once it ends, its output file and then its error file are streamed into the output,
//!    each line as the server wrote it (written to `OUT.remote.part`, renamed at the end).
//!    A batch that ended `failed`, `expired` or `cancelled` gets what output exists.
//!
//! The input file id and then the batch id are written to `OUT.remote.json`
//! ([`state_path`]) as soon as they exist: running again follows the same batch (or creates
//! it from the uploaded file) and never uploads twice; interrupting while polling leaves the
//! batch running on the server. A completed batch run again is downloaded again. Remove the
//! state file to start a new batch. An existing output without a state file is refused
//! rather than overwritten.
//!
//! `--shard K/N` applies: each shard is its own batch, with its own output and state file.
//! Rate limits, concurrency and ordering are the server's business; a cost cap is checked
//! against the estimate before uploading.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mamba_backends::OpenAICompatibleBackend;
//! use mamba_batch::{BatchOptions, Input, Progress, RemoteBatch, RemoteOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = OpenAICompatibleBackend::builder("gpt-4o-mini").api_key("sk-...").build()?;
//! let options = BatchOptions::new(Input::parse("requests.jsonl"), "answers.jsonl");
//! let batch = RemoteBatch::open(options, RemoteOptions::new())?;
//! let summary = batch.run(&backend, Arc::new(Progress::new()), std::future::pending()).await?;
//! println!("{} {}: {} succeeded, {} failed", summary.batch_id, summary.status, summary.succeeded, summary.failed);
//! # Ok(()) }
//! ```
//!
//! # Memory
//! The input is read twice as a stream (checked, then sent) and never held whole; stdin is
//! copied to an unnamed temporary file. What grows with the input: 16 bytes a line while the
//! custom_ids are checked for duplicates (freed before sending) and 8 bytes per done line.

#![deny(missing_docs)]

mod engine;
mod estimate;
mod guard;
mod input;
mod pacing;
mod progress;
mod remote;
mod resume;
mod shard;

use std::path::PathBuf;

use mamba_backends::RetryPolicy;

pub use engine::{Batch, BatchError, LineError, ModelPlan, Plan};
pub use guard::{invalid_lines_path, lock_path};
pub use input::{supported_urls, Input};
pub use progress::{Progress, Snapshot, Stop, Summary};
pub use remote::{state_path, RemoteBatch, RemoteOptions, RemoteState, RemoteSummary};
pub use shard::{fnv1a64, Shard};

/// How to run a batch.
#[derive(Debug, Clone)]
#[must_use]
pub struct BatchOptions {
    pub(crate) input: Input,
    pub(crate) output: PathBuf,
    pub(crate) default_model: Option<String>,
    pub(crate) concurrency: usize,
    pub(crate) rpm: Option<u32>,
    pub(crate) tpm: Option<u64>,
    pub(crate) max_cost: Option<f64>,
    pub(crate) ordered: bool,
    pub(crate) shard: Option<Shard>,
    pub(crate) retry: RetryPolicy,
    pub(crate) retry_failed: bool,
    pub(crate) dry_run: bool,
}

impl BatchOptions {
    /// Reads `input`, writes (and resumes) `output`. Defaults: 16 requests at once, no rate
    /// limit but the server's, no cost cap, output in completion order, every line, the
    /// default [`RetryPolicy`], failed lines retried on resume.
    pub fn new(input: Input, output: impl Into<PathBuf>) -> BatchOptions {
        BatchOptions {
            input,
            output: output.into(),
            default_model: None,
            concurrency: 16,
            rpm: None,
            tpm: None,
            max_cost: None,
            ordered: false,
            shard: None,
            retry: RetryPolicy::default(),
            retry_failed: true,
            dry_run: false,
        }
    }

    /// The model for lines whose body names none (never replaces a model a line names).
    pub fn default_model(mut self, model: Option<String>) -> Self {
        self.default_model = model;
        self
    }

    /// Requests in flight at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// At most this many requests a minute.
    pub fn rpm(mut self, rpm: Option<u32>) -> Self {
        self.rpm = rpm.filter(|r| *r > 0);
        self
    }

    /// At most this many tokens a minute (estimated before sending, corrected by the reported
    /// usage; see the estimate's rules in the crate's `estimate` module docs).
    pub fn tpm(mut self, tpm: Option<u64>) -> Self {
        self.tpm = tpm.filter(|t| *t > 0);
        self
    }

    /// Stop sending once what the output's lines cost (earlier runs included) plus the
    /// estimates of the requests in flight and the next one would pass `usd`.
    pub fn max_cost(mut self, usd: Option<f64>) -> Self {
        self.max_cost = usd;
        self
    }

    /// Write output lines in input order; finished lines wait for earlier ones, and a line is
    /// sent only while it is fewer than `concurrency` lines ahead of the next one to write.
    pub fn ordered(mut self, yes: bool) -> Self {
        self.ordered = yes;
        self
    }

    /// Only this shard's lines.
    pub fn shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Retries of one request.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Whether failed lines of the output are sent again (default yes).
    pub fn retry_failed(mut self, yes: bool) -> Self {
        self.retry_failed = yes;
        self
    }

    /// Check and estimate only: the output is neither repaired nor written.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }
}
