//! The Files and Batch APIs (`/files`, `/batches`): the [`Batches`] handle an
//! [`OpenAICompatibleBackend`](crate::OpenAICompatibleBackend) lends with
//! [`batches()`](crate::OpenAICompatibleBackend::batches), and the objects it returns.
//!
//! Upload a JSONL file of requests, run it as a batch on the server, follow it, download its
//! output. Running a batch file from here instead (one request at a time, through any
//! backend) is the `mamba-batch` crate's job.

pub use crate::openai_compat::batches::{Batches, FileDownload};
pub use crate::types::batch::{BatchJob, BatchJobError, BatchList, BatchStatus, FileObject, RequestCounts};
