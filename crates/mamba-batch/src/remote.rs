//! Handing a batch to the server's own Batch API: upload, create, poll, download.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mamba_backends::{batches::BatchJob, OpenAICompatibleBackend};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::engine::{check, push_json_bytes, BatchError, Plan};
use crate::guard::{refuse_input_as_output, OutputLock};
use crate::input::{is_blank, parse_line_with, Source};
use crate::progress::Progress;
use crate::resume::Done;
use crate::BatchOptions;

/// How a remote batch is run.
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteOptions {
    pub(crate) first_poll: Duration,
    pub(crate) max_poll: Duration,
    pub(crate) completion_window: String,
    pub(crate) file_purpose: String,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions::new()
    }
}

impl RemoteOptions {
    /// Polls after 1 s, then less and less often up to every 30 s; a `24h` window; input
    /// uploaded with purpose `batch`.
    pub fn new() -> RemoteOptions {
        RemoteOptions {
            first_poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(30),
            completion_window: "24h".into(),
            file_purpose: "batch".into(),
            metadata: BTreeMap::new(),
        }
    }

    /// The first wait between polls and the longest one (waits grow by half while nothing
    /// changes, and start again from `first` when something does).
    pub fn poll_interval(mut self, first: Duration, max: Duration) -> Self {
        self.first_poll = first.max(Duration::from_millis(1));
        self.max_poll = max.max(self.first_poll);
        self
    }

    /// The completion window asked for (`24h`).
    pub fn completion_window(mut self, window: impl Into<String>) -> Self {
        self.completion_window = window.into();
        self
    }

    /// The purpose the input is uploaded with (`batch`; Together's is `batch-api`).
    pub fn file_purpose(mut self, purpose: impl Into<String>) -> Self {
        self.file_purpose = purpose.into();
        self
    }

    /// Metadata given to the batch.
    pub fn metadata(mut self, metadata: BTreeMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }
}

/// What is kept next to the output while a remote batch runs (`OUT.remote.json`), so that
/// running the same command again follows the same batch instead of uploading again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteState {
    /// The uploaded input.
    pub input_file_id: String,
    /// The batch, once created.
    pub batch_id: Option<String>,
    /// The endpoint of its lines.
    pub endpoint: String,
    /// The server's base URL.
    pub base_url: String,
    /// Requests uploaded.
    pub requests: u64,
    /// Whether its output was downloaded into the output file.
    #[serde(default)]
    pub downloaded: bool,
}

/// The path of the state file of an output: `OUT.remote.json`.
pub fn state_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".remote.json");
    output.with_file_name(name)
}

fn read_state(path: &Path) -> Result<Option<RemoteState>, BatchError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            BatchError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a remote batch state ({e}); remove it to start a new batch", path.display()),
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BatchError::Io(io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))),
    }
}

/// Written whole to a temporary file, then renamed: never torn.
fn write_state(path: &Path, state: &RemoteState) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    bytes.push(b'\n');
    fs::write(&tmp, bytes).map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// The end of a remote run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RemoteSummary {
    /// The batch.
    pub batch_id: String,
    /// Its status at the end (`completed`, `failed`, `expired`, `cancelled`; the status when
    /// polling stopped if interrupted).
    pub status: String,
    /// Requests in the batch, as the server counts them.
    pub total: u64,
    /// Requests the server answered.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Lines written to the output from the server's output file.
    pub output_lines: u64,
    /// Lines written to the output from the server's error file.
    pub error_lines: u64,
    /// Input and output tokens of the downloaded answers (their reported usage).
    pub input_tokens: u64,
    /// See `input_tokens`.
    pub output_tokens: u64,
    /// What those tokens cost at the model profiles' prices (0 for models without prices).
    pub cost_usd: f64,
    /// The uploaded input.
    pub input_file_id: String,
    /// The server's output file.
    pub output_file_id: Option<String>,
    /// The server's error file.
    pub error_file_id: Option<String>,
    /// The batch's own errors (a failed validation), as `line N: message` texts.
    pub errors: Vec<String>,
    /// Whether this run uploaded the input (false when it resumed an earlier run's batch).
    pub uploaded: bool,
    /// Seconds.
    pub elapsed_s: f64,
    /// Polling (or the download) was interrupted; the batch goes on on the server.
    pub interrupted: bool,
}

impl RemoteSummary {
    /// 0 when the batch completed with every request answered, 130 when polling was
    /// interrupted, else 1 (some requests failed, or the batch failed, expired or was
    /// cancelled).
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.status == "completed" && self.failed == 0 && self.error_lines == 0 {
            0
        } else {
            1
        }
    }
}

/// A checked input, ready to hand to the server's Batch API. Unless it is a dry run, it holds
/// the output's lock (the same as a local run's) until it is dropped or its run ends.
#[derive(Debug)]
pub struct RemoteBatch {
    _lock: Option<OutputLock>,
    options: BatchOptions,
    remote: RemoteOptions,
    source: Source,
    plan: Plan,
    endpoint: String,
    state_path: PathBuf,
    state: Option<RemoteState>,
}

impl RemoteBatch {
    /// Refuses an output that is the input and takes the output's lock as a local run does
    /// ([`BatchError::Refused`], [`BatchError::Locked`]), then opens the input and checks
    /// every line (invalid lines: [`BatchError::Invalid`], nothing uploaded). Every line must
    /// name the same url (one batch has one endpoint): otherwise [`BatchError::Refused`]. A
    /// state file of an earlier run next to the output ([`state_path`]) is read: that batch is
    /// followed again.
    pub fn open(options: BatchOptions, remote: RemoteOptions) -> Result<RemoteBatch, BatchError> {
        refuse_input_as_output(&options.input, &options.output)?;
        let lock = if options.dry_run { None } else { Some(OutputLock::acquire(&options.output)?) };
        let state_path = state_path(&options.output);
        let state = read_state(&state_path)?;
        let source = Source::open(&options.input)?;
        // A remote batch does not resume the output line by line: the server's files replace it.
        let plan = check(&source, &options, &Done::default())?;
        let endpoint = endpoint_of(&plan)?;
        if let Some(state) = state.as_ref().filter(|s| s.requests != plan.in_shard) {
            return Err(BatchError::Refused(format!(
                "{} is for a batch of {} requests, but the input has {} (in this shard); remove it to start a new batch, or give the input it was made from",
                state_path.display(),
                state.requests,
                plan.in_shard
            )));
        }
        if state.is_none() && !options.dry_run {
            if let Ok(meta) = fs::metadata(&options.output) {
                if meta.len() > 0 {
                    return Err(BatchError::Refused(format!(
                        "{} exists and is not from a remote batch (no {}); remove it or choose another -o",
                        options.output.display(),
                        state_path.display()
                    )));
                }
            }
        }
        Ok(RemoteBatch { _lock: lock, options, remote, source, plan, endpoint, state_path, state })
    }

    /// The purpose the input is uploaded with (the server's: see
    /// [`PresetSpec::batch_file_purpose`](mamba_backends::preset::PresetSpec::batch_file_purpose)).
    pub fn file_purpose(mut self, purpose: &str) -> Self {
        purpose.clone_into(&mut self.remote.file_purpose);
        self
    }

    /// What will be uploaded (the shard's lines; nothing is ever skipped as done).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The endpoint every line names (`/v1/chat/completions`), or empty for an input with no
    /// line in this shard.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The state of an earlier run being resumed.
    pub fn resuming(&self) -> Option<&RemoteState> {
        self.state.as_ref()
    }

    /// The path of the state file.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// The file to upload: the shard's lines, with `-m`'s model filled into bodies naming
    /// none.
    pub fn upload_bytes(&self) -> Result<Vec<u8>, BatchError> {
        let mut out = Vec::new();
        let mut lines = self.source.lines()?;
        let mut buf = Vec::new();
        let url = &self.endpoint;
        while lines.next_line(&mut buf)?.is_some() {
            if is_blank(&buf) {
                continue;
            }
            let Ok(request) = parse_line_with(&buf, self.options.default_model.as_deref(), false) else { continue };
            if self.options.shard.is_some_and(|s| !s.takes(&request.custom_id)) {
                continue;
            }
            out.extend_from_slice(b"{\"custom_id\":");
            serde_json::to_writer(&mut out, &request.custom_id).map_err(io::Error::other)?;
            out.extend_from_slice(b",\"method\":\"POST\",\"url\":");
            serde_json::to_writer(&mut out, url).map_err(io::Error::other)?;
            out.extend_from_slice(b",\"body\":");
            push_json_bytes(&mut out, &request.body);
            out.extend_from_slice(b"}\n");
        }
        Ok(out)
    }

    /// Uploads the input (unless an earlier run did), creates the batch (unless an earlier
    /// run did), polls it until it ends, reporting its status and counts on `progress`, and
    /// writes the server's output file, then its error file, into the output (each line as
    /// the server wrote it). When `shutdown` completes (Ctrl-C) polling stops: the batch goes
    /// on on the server, and running again resumes polling it. A dry run does nothing.
    pub async fn run(
        self,
        backend: &OpenAICompatibleBackend,
        progress: Arc<Progress>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RemoteSummary, BatchError> {
        let started = Instant::now();
        let remote_error = BatchError::Remote;
        tokio::pin!(shutdown);
        let mut uploaded = false;
        let mut state = match self.state.clone() {
            Some(state) => state,
            None => {
                if self.plan.in_shard == 0 {
                    return Err(BatchError::Refused("no request to upload (the input or this shard is empty)".into()));
                }
                progress.set_status("uploading");
                let bytes = self.upload_bytes()?;
                let name = upload_name(&self.options.output);
                // The buffer is moved into the upload: the file is held once.
                let file = tokio::select! {
                    file = backend.batches().upload_file(&self.remote.file_purpose, &name, bytes) => file.map_err(remote_error)?,
                    () = &mut shutdown => return Err(BatchError::Interrupted),
                };
                uploaded = true;
                let state = RemoteState {
                    input_file_id: file.id,
                    batch_id: None,
                    endpoint: self.endpoint.clone(),
                    base_url: backend.base_url().to_owned(),
                    requests: self.plan.in_shard,
                    downloaded: false,
                };
                write_state(&self.state_path, &state)?;
                state
            }
        };
        let mut job = match &state.batch_id {
            Some(id) => {
                progress.set_status("resuming");
                backend.batches().retrieve_batch(id).await.map_err(remote_error)?
            }
            None => {
                progress.set_status("creating");
                let metadata = (!self.remote.metadata.is_empty()).then_some(&self.remote.metadata);
                let job = backend
                    .batches()
                    .create_batch(&state.input_file_id, &state.endpoint, &self.remote.completion_window, metadata)
                    .await
                    .map_err(remote_error)?;
                state.batch_id = Some(job.id.clone());
                write_state(&self.state_path, &state)?;
                job
            }
        };
        let mut wait = self.remote.first_poll;
        let mut interrupted = false;
        loop {
            show(&progress, &job);
            if job.status.is_terminal() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => { interrupted = true; break; }
            }
            let next = tokio::select! {
                next = backend.batches().retrieve_batch(&job.id) => next.map_err(remote_error)?,
                () = &mut shutdown => { interrupted = true; break; }
            };
            let changed = next.status != job.status || next.request_counts != job.request_counts;
            wait = if changed { self.remote.first_poll } else { wait.mul_f64(1.5).min(self.remote.max_poll) };
            job = next;
        }
        let mut summary = RemoteSummary {
            batch_id: job.id.clone(),
            status: job.status.to_string(),
            total: job.request_counts.total,
            succeeded: job.request_counts.completed,
            failed: job.request_counts.failed,
            output_lines: 0,
            error_lines: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            input_file_id: state.input_file_id.clone(),
            output_file_id: job.output_file_id.clone(),
            error_file_id: job.error_file_id.clone(),
            errors: job_errors(&job),
            uploaded,
            elapsed_s: 0.0,
            interrupted,
        };
        if !interrupted {
            progress.set_status("downloading");
            let tmp = part_path(&self.options.output);
            tokio::select! {
                counts = download(backend, &job, &self.options.output, &tmp) => {
                    let (output_lines, error_lines) = counts?;
                    summary.output_lines = output_lines;
                    summary.error_lines = error_lines;
                    // The answers' usage, read back from what was written (nothing is changed).
                    let done = crate::resume::scan(&self.options.output, true, true)?;
                    summary.input_tokens = done.input_tokens;
                    summary.output_tokens = done.output_tokens;
                    summary.cost_usd = done.spent_usd;
                    state.downloaded = true;
                    write_state(&self.state_path, &state)?;
                }
                () = &mut shutdown => {
                    // The download is dropped; running again downloads it whole.
                    let _ = fs::remove_file(&tmp);
                    summary.interrupted = true;
                }
            }
        }
        summary.elapsed_s = started.elapsed().as_secs_f64();
        Ok(summary)
    }
}

/// The batch's own errors as short texts.
fn job_errors(job: &BatchJob) -> Vec<String> {
    job.errors
        .iter()
        .map(|e| {
            let message = e.message.as_deref().or(e.code.as_deref()).unwrap_or("an error");
            match e.line {
                Some(line) => format!("line {line}: {message}"),
                None => message.to_owned(),
            }
        })
        .collect()
}

/// The status and counts on the progress counters.
fn show(progress: &Progress, job: &BatchJob) {
    let c = job.request_counts;
    progress.to_send.store(c.total, Ordering::Relaxed);
    progress.succeeded.store(c.completed, Ordering::Relaxed);
    progress.failed.store(c.failed, Ordering::Relaxed);
    progress.set_status(job.status.as_str());
}

/// The name the input is uploaded under: the output's, `.input.jsonl`.
fn upload_name(output: &Path) -> String {
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "batch".into());
    format!("{stem}.input.jsonl")
}

/// The url every line of the shard names (from the check's plan); an error when they differ.
fn endpoint_of(plan: &Plan) -> Result<String, BatchError> {
    match plan.paths[..] {
        [] => Ok(String::new()),
        [(path, _)] => Ok(format!("/v1{path}")),
        [(first, line), (other, number), ..] => Err(BatchError::Refused(format!(
            "a remote batch has one endpoint, but line {line} names /v1{first} and line {number} names /v1{other}; split the input by url"
        ))),
    }
}

/// The temporary file a download goes to: `OUT.remote.part`.
fn part_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".remote.part");
    output.with_file_name(name)
}

/// Writes the output file, then the error file, into `output` (through `tmp`, renamed at the
/// end). Returns the lines of each.
async fn download(
    backend: &OpenAICompatibleBackend,
    job: &BatchJob,
    output: &Path,
    tmp: &Path,
) -> Result<(u64, u64), BatchError> {
    let mut file = File::create(tmp)
        .map_err(|e| BatchError::Io(io::Error::new(e.kind(), format!("cannot write {}: {e}", tmp.display()))))?;
    let mut counts = [0u64; 2];
    for (i, id) in [&job.output_file_id, &job.error_file_id].into_iter().enumerate() {
        let Some(id) = id else { continue };
        counts[i] = copy_file(backend, id, &mut file).await?;
    }
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, output)
        .map_err(|e| BatchError::Io(io::Error::new(e.kind(), format!("cannot write {}: {e}", output.display()))))?;
    Ok((counts[0], counts[1]))
}

/// Copies one server file into `out` as it arrives; a last line without its line end gets
/// one. Returns its non-blank lines.
async fn copy_file(backend: &OpenAICompatibleBackend, id: &str, out: &mut File) -> Result<u64, BatchError> {
    let mut download = backend.batches().file_download(id).await.map_err(BatchError::Remote)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut lines = 0u64;
    let mut last = b'\n';
    let mut line_has_text = false;
    loop {
        buf.clear();
        if download.chunk(&mut buf).await.map_err(BatchError::Remote)? == 0 {
            break;
        }
        for &b in &buf {
            if b == b'\n' {
                lines += u64::from(line_has_text);
                line_has_text = false;
            } else if !b.is_ascii_whitespace() {
                line_has_text = true;
            }
        }
        last = buf[buf.len() - 1];
        out.write_all(&buf)?;
    }
    if last != b'\n' {
        out.write_all(b"\n")?;
        lines += u64::from(line_has_text);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_sits_next_to_the_output() {
        assert_eq!(state_path(Path::new("/tmp/x/out.jsonl")), Path::new("/tmp/x/out.jsonl.remote.json"));
        assert_eq!(upload_name(Path::new("/tmp/x/out.jsonl")), "out.input.jsonl");
        assert_eq!(part_path(Path::new("/tmp/x/out.jsonl")), Path::new("/tmp/x/out.jsonl.remote.part"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.remote.json");
        assert_eq!(read_state(&path).unwrap(), None);
        let state = RemoteState {
            input_file_id: "file-1".into(),
            batch_id: Some("batch-1".into()),
            endpoint: "/v1/chat/completions".into(),
            base_url: "http://h/v1".into(),
            requests: 3,
            downloaded: false,
        };
        write_state(&path, &state).unwrap();
        assert_eq!(read_state(&path).unwrap(), Some(state));
        fs::write(&path, "{").unwrap();
        assert!(read_state(&path).unwrap_err().to_string().contains("remove it"));
    }

    #[test]
    fn exit_codes() {
        let mut s = RemoteSummary {
            batch_id: "b".into(),
            status: "completed".into(),
            total: 2,
            succeeded: 2,
            failed: 0,
            output_lines: 2,
            error_lines: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            input_file_id: "f".into(),
            output_file_id: None,
            error_file_id: None,
            errors: vec![],
            uploaded: true,
            elapsed_s: 0.0,
            interrupted: false,
        };
        assert_eq!(s.exit_code(), 0);
        s.failed = 1;
        assert_eq!(s.exit_code(), 1);
        s.failed = 0;
        s.status = "cancelled".into();
        assert_eq!(s.exit_code(), 1);
        s.interrupted = true;
        assert_eq!(s.exit_code(), 130);
    }
}
