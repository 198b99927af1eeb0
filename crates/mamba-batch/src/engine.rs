//! Checking the input, then sending it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mamba_backends::{raw::RawResponse, Error, ModelBackend, RetryPolicy};
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::estimate::{answer_of, Prices};
use crate::guard::{invalid_lines_path, refuse_input_as_output, OutputLock};
use crate::input::{is_blank, parse_line, parse_line_with, Request, Source};
use crate::pacing::Pacer;
use crate::progress::{to_nano, Progress, Stop, Summary};
use crate::resume::{self, Done};
use crate::shard::fnv1a64;
use crate::BatchOptions;

/// How many invalid lines are reported.
const MAX_REPORTED: usize = 20;

/// One invalid input line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// Its number, from 1.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// Why a batch could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchError {
    /// Some lines are invalid: the first 20, and how many in all. Nothing was sent.
    Invalid {
        /// The first invalid lines.
        errors: Vec<LineError>,
        /// Invalid lines in all.
        count: u64,
    },
    /// The input or the output could not be read or written.
    Io(io::Error),
    /// The batch cannot be run as asked: nothing was sent or uploaded, the output untouched.
    /// An input with no request (empty, or blank lines only), an output that is the input (or
    /// an input that is one of the files written next to the output); for a remote batch
    /// also lines naming different urls, or an output that is not from a remote batch.
    Refused(String),
    /// Another run holds the output's lock ([`lock_path`](crate::lock_path)): nothing was
    /// sent, the output untouched.
    Locked {
        /// The output.
        output: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// The process holding it, as it wrote itself in the lock file.
        pid: Option<u32>,
    },
    /// The server's Files or Batch API failed.
    Remote(Error),
    /// Interrupted while uploading: no batch was created.
    Interrupted,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Invalid { errors, count } => {
                write!(f, "{count} invalid input line{}", if *count == 1 { "" } else { "s" })?;
                for e in errors {
                    write!(f, "; line {}: {}", e.line, e.reason)?;
                }
                Ok(())
            }
            BatchError::Io(e) => write!(f, "{e}"),
            BatchError::Refused(reason) => f.write_str(reason),
            BatchError::Locked { output, lock, pid } => {
                let by = pid.map_or(String::new(), |p| format!(" (pid {p})"));
                write!(
                    f,
                    "another batch run{by} is writing {}: it holds the lock {}; wait for it to end (or stop it), or choose another -o",
                    output.display(),
                    lock.display()
                )
            }
            BatchError::Remote(e) => write!(f, "{e}"),
            BatchError::Interrupted => f.write_str("interrupted while uploading; no batch was created"),
        }
    }
}

impl std::error::Error for BatchError {}

impl From<io::Error> for BatchError {
    fn from(e: io::Error) -> Self {
        BatchError::Io(e)
    }
}

/// The requests of one model this run will send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ModelPlan {
    /// The model.
    pub model: String,
    /// Requests.
    pub requests: u64,
    /// Estimated prompt tokens.
    pub prompt_tokens: u64,
    /// The output limits the bodies set (0 where a body sets none).
    pub max_output_tokens: u64,
    /// Estimated USD for prompt tokens and output limits; `None` when the model has no prices.
    pub estimated_cost_usd: Option<f64>,
}

/// What a run will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// Non-blank lines of the input.
    pub lines: u64,
    /// Lines of this shard.
    pub in_shard: u64,
    /// Lines of this shard already done in the output.
    pub already_done: u64,
    /// Requests to send.
    pub to_send: u64,
    /// Estimated prompt tokens of those.
    pub prompt_tokens: u64,
    /// Their output limits.
    pub max_output_tokens: u64,
    /// Estimated USD of the models with prices.
    pub estimated_cost_usd: f64,
    /// What the output's lines already cost.
    pub spent_usd: f64,
    /// Per model, by name.
    pub models: Vec<ModelPlan>,
    /// Failed lines of the output that will be sent again.
    pub retrying_failed: u64,
    /// Whether a torn last line of the output was (or, in a dry run, would be) cut off.
    pub repaired_torn_line: bool,
    /// Lines of the output that repeated a custom_id of an earlier line: removed (or, in a dry
    /// run, would be), the first line of each id kept.
    pub duplicates_removed: u64,
    /// The first few (at most 5) of those custom_ids.
    pub duplicate_ids: Vec<String>,
    /// Lines of the output that are not output records (not JSON, or no custom_id and no
    /// response): moved (or, in a dry run, would be moved) to `invalid_lines_file`.
    pub invalid_output_lines: u64,
    /// The numbers of the first few (at most 10) of those lines, from 1.
    pub invalid_output_line_numbers: Vec<u64>,
    /// Where they go ([`invalid_lines_path`](crate::invalid_lines_path)), when there are some.
    pub invalid_lines_file: Option<PathBuf>,
    /// The paths the shard's lines name, each with the first line naming it (a remote batch
    /// needs exactly one).
    #[serde(skip)]
    pub(crate) paths: Vec<(&'static str, u64)>,
}

/// A checked batch, ready to run. Unless it is a dry run, it holds the output's lock until
/// it is dropped or its run ends.
#[derive(Debug)]
pub struct Batch {
    options: BatchOptions,
    source: Source,
    done: Done,
    plan: Plan,
    _lock: Option<OutputLock>,
}

impl Batch {
    /// Refuses an output that is the input ([`BatchError::Refused`]) and, unless it is a
    /// dry run, takes the output's lock ([`BatchError::Locked`] when another run holds it).
    /// Then opens the input (copying stdin), reads what the output already holds, checks every
    /// line and estimates the run: invalid lines are [`BatchError::Invalid`], an input without
    /// a request [`BatchError::Refused`], the output untouched either way. Unless it is a dry
    /// run, the output is then repaired: a torn last line cut off, failed lines removed to be
    /// retried, lines repeating an earlier line's custom_id removed, lines that are not output
    /// records moved to [`invalid_lines_path`](crate::invalid_lines_path).
    pub fn open(options: BatchOptions) -> Result<Batch, BatchError> {
        refuse_input_as_output(&options.input, &options.output)?;
        let lock = if options.dry_run { None } else { Some(OutputLock::acquire(&options.output)?) };
        let source = Source::open(&options.input)?;
        let done = resume::scan(&options.output, options.retry_failed, true)?;
        let plan = check(&source, &options, &done)?;
        let done = if options.dry_run { done } else { resume::scan(&options.output, options.retry_failed, false)? };
        Ok(Batch { options, source, done, plan, _lock: lock })
    }

    /// What the run will do.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The input's name (a path, or `stdin`).
    pub fn input_name(&self) -> &str {
        self.source.name()
    }

    /// Sends the requests through `backend` and writes the output. `progress` is updated as
    /// it goes. When `shutdown` completes (Ctrl-C), no new request is sent and the run waits
    /// for those in flight; the output is then complete for every line written and a later
    /// run resumes. A dry run sends nothing and returns an empty summary.
    pub async fn run(
        self,
        backend: Arc<dyn ModelBackend>,
        progress: Arc<Progress>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Summary, BatchError> {
        let started = Instant::now();
        // The lock is held until the run returns.
        let Batch { options, source, done, plan, _lock } = self;
        Progress::add(&progress.to_send, plan.to_send);
        Progress::add(&progress.skipped, plan.already_done);
        let mut summary = Summary {
            total: plan.in_shard,
            succeeded: 0,
            failed: 0,
            skipped: plan.already_done,
            not_sent: plan.to_send,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            total_cost_usd: done.spent_usd,
            elapsed_s: 0.0,
            requests_per_s: 0.0,
            rate_limit_pauses: 0,
            capped_waits: 0,
            stopped: None,
        };
        if options.dry_run {
            return Ok(summary);
        }
        let file = resume::open_append(&options.output)?;
        let window = options.concurrency as u64;
        let shared = Arc::new(Shared {
            backend,
            pacer: Pacer::new(options.rpm, options.tpm),
            retry: options.retry.clone(),
            writer: Mutex::new(Writer {
                file,
                ordered: options.ordered,
                next: 0,
                pending: BTreeMap::new(),
                buf: Vec::new(),
                failed: None,
            }),
            written: Notify::new(),
            progress: Arc::clone(&progress),
            stopping: AtomicBool::new(false),
            nonce: nonce(),
            next_id: AtomicU64::new(0),
        });
        let semaphore = Arc::new(Semaphore::new(options.concurrency));
        let mut prices: HashMap<String, Prices> = HashMap::new();
        let mut lines = source.lines()?;
        let mut buf = Vec::new();
        let mut seq = 0u64;
        tokio::pin!(shutdown);
        let mut interrupted = false;
        let mut stopped = None;

        // Prompt tokens are estimated again only where they are used while sending: the token
        // bucket and the cost cap (the plan's totals came from the check).
        let estimate = options.tpm.is_some() || options.max_cost.is_some();
        'lines: while let Some(_number) = lines.next_line(&mut buf)? {
            if is_blank(&buf) {
                continue;
            }
            let Ok(request) = parse_line_with(&buf, options.default_model.as_deref(), estimate) else { continue };
            if options.shard.is_some_and(|s| !s.takes(&request.custom_id)) || done.contains(&request.custom_id) {
                continue;
            }
            let price = *prices.entry(request.model.clone()).or_insert_with(|| Prices::of(&request.model));
            let estimate = price.cost(request.prompt_tokens, request.max_output_tokens);
            if let Some(cap) = options.max_cost {
                let spent = done.spent_usd + progress.cost_nano.load(Ordering::Relaxed) as f64 / 1e9;
                let in_flight = progress.in_flight_cost_nano.load(Ordering::Relaxed) as f64 / 1e9;
                if spent + in_flight + estimate > cap {
                    stopped = Some(Stop::CostCap);
                    break;
                }
            }
            // The reorder window: at most `window` lines ahead of the next one to write.
            if options.ordered {
                loop {
                    let notified = shared.written.notified();
                    if seq < shared.writer().next + window {
                        break;
                    }
                    tokio::select! {
                        () = notified => {}
                        () = &mut shutdown => { interrupted = true; break 'lines; }
                    }
                }
            }
            let permit = tokio::select! {
                permit = Arc::clone(&semaphore).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => { interrupted = true; break; }
            };
            let tokens = request.prompt_tokens + request.max_output_tokens;
            tokio::select! {
                () = shared.pacer.acquire(tokens) => {}
                () = &mut shutdown => { interrupted = true; break; }
            }
            if shared.writer().failed.is_some() {
                break;
            }
            Progress::add(&progress.in_flight, 1);
            Progress::add(&progress.in_flight_cost_nano, to_nano(estimate));
            tokio::spawn(one(Arc::clone(&shared), request, seq, price, estimate, permit));
            seq += 1;
        }
        if interrupted {
            stopped = Some(Stop::Interrupted);
            shared.stopping.store(true, Ordering::Relaxed);
        }
        // Wait for the requests in flight; a second interruption is the caller's to handle
        // (it ends the process; the output stays resumable).
        let _all = semaphore.acquire_many(options.concurrency as u32).await;
        shared.writer().flush();
        if let Some(e) = shared.writer().failed.take() {
            return Err(BatchError::Io(e));
        }
        let snap = progress.snapshot();
        summary.succeeded = snap.succeeded;
        summary.failed = snap.failed;
        summary.not_sent = plan.to_send.saturating_sub(snap.succeeded + snap.failed);
        summary.input_tokens = snap.input_tokens;
        summary.output_tokens = snap.output_tokens;
        summary.cost_usd = snap.cost_usd;
        summary.total_cost_usd = done.spent_usd + snap.cost_usd;
        summary.rate_limit_pauses = shared.pacer.pauses();
        summary.capped_waits = shared.pacer.capped_waits();
        summary.stopped = stopped;
        Ok(summary.elapsed(started.elapsed()))
    }
}

/// Checks every line, counts what this run will send and estimates it.
pub(crate) fn check(source: &Source, options: &BatchOptions, done: &Done) -> Result<Plan, BatchError> {
    let mut lines = source.lines()?;
    let mut buf = Vec::new();
    let mut errors = Vec::new();
    let mut invalid = 0u64;
    let mut ids: Vec<(u64, u64)> = Vec::new();
    let mut models: BTreeMap<String, ModelPlan> = BTreeMap::new();
    let mut plan = Plan {
        lines: 0,
        in_shard: 0,
        already_done: 0,
        to_send: 0,
        prompt_tokens: 0,
        max_output_tokens: 0,
        estimated_cost_usd: 0.0,
        spent_usd: done.spent_usd,
        models: Vec::new(),
        retrying_failed: done.removed_failed,
        repaired_torn_line: done.repaired_torn,
        duplicates_removed: done.duplicates,
        duplicate_ids: done.duplicate_ids.clone(),
        invalid_output_lines: done.invalid_lines,
        invalid_output_line_numbers: done.invalid_line_numbers.clone(),
        invalid_lines_file: (done.invalid_lines > 0).then(|| invalid_lines_path(&options.output)),
        paths: Vec::new(),
    };
    while let Some(number) = lines.next_line(&mut buf)? {
        if is_blank(&buf) {
            continue;
        }
        plan.lines += 1;
        let request = match parse_line(&buf, options.default_model.as_deref()) {
            Ok(r) => r,
            Err(reason) => {
                invalid += 1;
                if errors.len() < MAX_REPORTED {
                    errors.push(LineError { line: number, reason });
                }
                continue;
            }
        };
        ids.push((fnv1a64(request.custom_id.as_bytes()), number));
        if options.shard.is_some_and(|s| !s.takes(&request.custom_id)) {
            continue;
        }
        plan.in_shard += 1;
        if !plan.paths.iter().any(|(p, _)| *p == request.path) {
            plan.paths.push((request.path, number));
        }
        if done.contains(&request.custom_id) {
            plan.already_done += 1;
            continue;
        }
        plan.to_send += 1;
        let m = models.entry(request.model.clone()).or_insert_with(|| ModelPlan {
            model: request.model.clone(),
            requests: 0,
            prompt_tokens: 0,
            max_output_tokens: 0,
            estimated_cost_usd: Prices::of(&request.model).known.then_some(0.0),
        });
        m.requests += 1;
        m.prompt_tokens += request.prompt_tokens;
        m.max_output_tokens += request.max_output_tokens;
    }
    invalid += duplicates(source, options, &mut ids, &mut errors)?;
    if plan.lines == 0 {
        return Err(BatchError::Refused(format!(
            "the input {} holds no request (it is empty, or blank lines only): nothing to do",
            source.name()
        )));
    }
    if invalid > 0 {
        errors.sort_by_key(|e| e.line);
        errors.truncate(MAX_REPORTED);
        return Err(BatchError::Invalid { errors, count: invalid });
    }
    for m in models.values_mut() {
        if m.estimated_cost_usd.is_some() {
            let cost = Prices::of(&m.model).cost(m.prompt_tokens, m.max_output_tokens);
            m.estimated_cost_usd = Some(cost);
            plan.estimated_cost_usd += cost;
        }
        plan.prompt_tokens += m.prompt_tokens;
        plan.max_output_tokens += m.max_output_tokens;
    }
    plan.models = models.into_values().collect();
    Ok(plan)
}

/// Finds custom_ids used twice. Hashes are compared first; lines whose hash repeats are read
/// again to compare the ids themselves, so a hash collision is never reported. Returns how
/// many lines repeat an earlier id (and reports them in `errors`).
fn duplicates(
    source: &Source,
    options: &BatchOptions,
    ids: &mut Vec<(u64, u64)>,
    errors: &mut Vec<LineError>,
) -> Result<u64, BatchError> {
    ids.sort_unstable();
    let mut suspects: Vec<u64> = ids.windows(2).filter(|w| w[0].0 == w[1].0).map(|w| w[0].0).collect();
    *ids = Vec::new();
    if suspects.is_empty() {
        return Ok(0);
    }
    suspects.dedup();
    let mut first: HashMap<String, u64> = HashMap::new();
    let mut count = 0;
    let mut lines = source.lines()?;
    let mut buf = Vec::new();
    while let Some(number) = lines.next_line(&mut buf)? {
        let Ok(request) = parse_line(&buf, options.default_model.as_deref()) else { continue };
        if suspects.binary_search(&fnv1a64(request.custom_id.as_bytes())).is_err() {
            continue;
        }
        match first.get(&request.custom_id) {
            Some(earlier) => {
                count += 1;
                errors.push(LineError {
                    line: number,
                    reason: format!("custom_id {:?} is already used on line {earlier}", request.custom_id),
                });
            }
            None => {
                first.insert(request.custom_id, number);
            }
        }
    }
    Ok(count)
}

struct Shared {
    backend: Arc<dyn ModelBackend>,
    pacer: Pacer,
    retry: RetryPolicy,
    writer: Mutex<Writer>,
    written: Notify,
    progress: Arc<Progress>,
    stopping: AtomicBool,
    nonce: u64,
    next_id: AtomicU64,
}

impl Shared {
    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The output file. Lines are gathered in `buf` and written by [`Writer::flush`], which the
/// request that ended first calls once the other tasks ready at that moment have run: lines of
/// requests that end together go out in one `write` on a file opened for appending (one
/// system call instead of one a line), and no line waits longer than one turn of the
/// scheduler. A crash leaves at most a torn last line, which resume repairs.
struct Writer {
    file: File,
    ordered: bool,
    /// With `ordered`: the sequence number of the next line to write.
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    buf: Vec<u8>,
    failed: Option<io::Error>,
}

impl Writer {
    /// Queues line `seq` (now, or once the earlier ones are queued). True when `next` moved.
    fn put(&mut self, seq: u64, line: &[u8]) -> bool {
        if !self.ordered {
            self.buf.extend_from_slice(line);
            self.next += 1;
            return true;
        }
        self.pending.insert(seq, line.to_vec());
        let mut moved = false;
        while let Some(line) = self.pending.remove(&self.next) {
            self.buf.extend_from_slice(&line);
            self.next += 1;
            moved = true;
        }
        moved
    }

    /// Writes what is queued.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.failed.is_none() {
            if let Err(e) = self.file.write_all(&self.buf) {
                self.failed = Some(io::Error::new(e.kind(), format!("cannot write the output: {e}")));
            }
        }
        self.buf.clear();
        // Do not keep a large buffer after a burst of long answers.
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
    }
}

/// A number unlikely to repeat between runs, for the output lines' ids.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}

/// Sends one request (with retries) and writes its line.
async fn one(
    shared: Arc<Shared>,
    request: Request,
    seq: u64,
    prices: Prices,
    estimate: f64,
    permit: OwnedSemaphorePermit,
) {
    let estimated_tokens = request.prompt_tokens + request.max_output_tokens;
    let outcome = send(&shared, request.path, &request.body).await;
    let progress = &shared.progress;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("batch_req_{:016x}{:08x}", shared.nonce, id);
    let line = match &outcome {
        Ok(raw) => {
            // One parse: the usage, and whether the body is JSON at all.
            let answer = answer_of(&raw.body);
            let usage = answer.flatten();
            let (input, output) = usage.unwrap_or((0, 0));
            shared.pacer.correct(estimated_tokens, if usage.is_some() { input + output } else { estimated_tokens });
            Progress::add(&progress.input_tokens, input);
            Progress::add(&progress.output_tokens, output);
            Progress::add(&progress.cost_nano, to_nano(prices.cost(input, output)));
            Progress::add(&progress.succeeded, 1);
            record_checked(&id, &request.custom_id, (raw.status, request_id(raw), &raw.body[..]), answer.is_some())
        }
        Err(e) => {
            Progress::add(&progress.failed, 1);
            match (e.status(), e.response_body()) {
                (Some(status), body) => {
                    let request_id = e.request_id().unwrap_or("").to_owned();
                    record(&id, &request.custom_id, Some((status, request_id, body.map(str::as_bytes))), None)
                }
                (None, _) => record(&id, &request.custom_id, None, Some(e)),
            }
        }
    };
    Progress::sub(&progress.in_flight_cost_nano, to_nano(estimate));
    let (moved, first) = {
        let mut writer = shared.writer();
        let first = writer.buf.is_empty();
        (writer.put(seq, &line), first)
    };
    drop(line);
    if first {
        // Let the other requests that are ready end too, then write all their lines at once.
        tokio::task::yield_now().await;
        shared.writer().flush();
    }
    Progress::sub(&progress.in_flight, 1);
    drop(permit);
    if moved {
        shared.written.notify_waiters();
    }
}

async fn send(shared: &Shared, path: &str, body: &Bytes) -> Result<RawResponse, Error> {
    let mut attempt = 0;
    loop {
        shared.pacer.wait_pause().await;
        let error = match mamba_backends::raw::post_json(&*shared.backend, path, body.clone()).await {
            Ok(raw) => {
                shared.pacer.observe(&raw.headers);
                return Ok(raw);
            }
            Err(e) => e,
        };
        if error.status() == Some(429) {
            shared.pacer.pause(error.retry_after().unwrap_or(Duration::from_secs(1)));
        }
        if shared.stopping.load(Ordering::Relaxed) {
            return Err(error);
        }
        match shared.retry.delay(attempt, &error) {
            Some(wait) => {
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
            None => return Err(error),
        }
    }
}

fn request_id(raw: &RawResponse) -> String {
    raw.header("x-request-id").or_else(|| raw.header("request-id")).unwrap_or("").to_owned()
}

/// The output line of a 2xx answer whose body is already known to be JSON (`is_json`) or not.
fn record_checked(id: &str, custom_id: &str, response: (u16, String, &[u8]), is_json: bool) -> Vec<u8> {
    if !is_json {
        return record(id, custom_id, Some((response.0, response.1, Some(response.2))), None);
    }
    let (status, request_id, body) = response;
    let mut out = Vec::with_capacity(160 + custom_id.len() + body.len());
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\",\"custom_id\":");
    push_json_string(&mut out, custom_id);
    out.extend_from_slice(format!(",\"response\":{{\"status_code\":{status},\"request_id\":").as_bytes());
    push_json_string(&mut out, &request_id);
    out.extend_from_slice(b",\"body\":");
    push_json_bytes(&mut out, body.trim_ascii());
    out.extend_from_slice(b"},\"error\":null}\n");
    out
}

/// One output line, with its line end. `response`: status, request id, body bytes.
fn record(id: &str, custom_id: &str, response: Option<(u16, String, Option<&[u8]>)>, error: Option<&Error>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + response.as_ref().and_then(|r| r.2).map_or(0, <[u8]>::len));
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\",\"custom_id\":");
    push_json_string(&mut out, custom_id);
    out.extend_from_slice(b",\"response\":");
    match response {
        Some((status, request_id, body)) => {
            out.extend_from_slice(format!("{{\"status_code\":{status},\"request_id\":").as_bytes());
            push_json_string(&mut out, &request_id);
            out.extend_from_slice(b",\"body\":");
            push_body(&mut out, body.unwrap_or(b""));
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"error\":");
    match error {
        Some(e) => {
            out.extend_from_slice(b"{\"code\":");
            push_json_string(&mut out, e.kind().as_str());
            out.extend_from_slice(b",\"message\":");
            push_json_string(&mut out, e.message());
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
    out
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The server's body as it sent it when it is JSON (its line ends, whitespace there, become
/// spaces so the record stays one line); otherwise as a JSON string.
fn push_body(out: &mut Vec<u8>, body: &[u8]) {
    let trimmed = body.trim_ascii();
    if !trimmed.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok() {
        push_json_bytes(out, trimmed);
    } else {
        push_json_string(out, &String::from_utf8_lossy(body));
    }
}

/// JSON known to be valid, its line ends (whitespace there) made spaces.
pub(crate) fn push_json_bytes(out: &mut Vec<u8>, json: &[u8]) {
    out.extend(json.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Input, RemoteBatch};
    use serde_json::Value;

    const LINE: &str = r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}"#;

    fn options(input: &std::path::Path, output: &std::path::Path) -> BatchOptions {
        BatchOptions::new(Input::Path(input.to_path_buf()), output)
    }

    /// `batch IN -o IN` would turn the requests into answers: refused, the file untouched.
    #[test]
    fn the_input_as_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, format!("{LINE}\n")).unwrap();
        for dry_run in [false, true] {
            let e = Batch::open(options(&input, &input).dry_run(dry_run)).unwrap_err();
            assert!(matches!(&e, BatchError::Refused(m) if m.contains("the same file")), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&input).unwrap(), format!("{LINE}\n"));
        assert!(!dir.path().join("in.jsonl.lock").exists(), "refused before anything is written");
    }

    /// A second run on an output another run holds is refused at once; a dry run is not.
    #[test]
    fn one_run_per_output() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, format!("{LINE}\n")).unwrap();
        let output = dir.path().join("out.jsonl");
        let first = Batch::open(options(&input, &output)).unwrap();
        let e = Batch::open(options(&input, &output)).unwrap_err();
        assert!(matches!(&e, BatchError::Locked { lock, .. } if *lock == dir.path().join("out.jsonl.lock")), "{e}");
        let e = RemoteBatch::open(options(&input, &output), crate::RemoteOptions::new()).unwrap_err();
        assert!(matches!(e, BatchError::Locked { .. }), "the remote path takes the same lock: {e}");
        Batch::open(options(&input, &output).dry_run(true)).unwrap();
        drop(first);
        Batch::open(options(&input, &output)).unwrap();
    }

    /// An input with no request says so rather than "0 lines, 0 succeeded".
    #[test]
    fn an_empty_input_is_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let output = dir.path().join("out.jsonl");
        for text in ["", "\n  \n\n"] {
            std::fs::write(&input, text).unwrap();
            for dry_run in [false, true] {
                let e = Batch::open(options(&input, &output).dry_run(dry_run)).unwrap_err();
                assert!(matches!(&e, BatchError::Refused(m) if m.contains("nothing to do")), "{e}");
            }
        }
    }

    #[test]
    fn records_in_openai_shape() {
        let line = record("batch_req_1", "a\"b", Some((200, "req-1".into(), Some(b"{\n  \"x\": \"a\\nb\"\n}"))), None);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["custom_id"], "a\"b");
        assert_eq!(v["response"]["status_code"], 200);
        assert_eq!(v["response"]["request_id"], "req-1");
        assert_eq!(v["response"]["body"]["x"], "a\nb");
        assert_eq!(v["error"], Value::Null);
        let e = Error::new(mamba_backends::ErrorKind::Connect, "refused");
        let v: Value = serde_json::from_slice(&record("i", "c", None, Some(&e))).unwrap();
        assert_eq!(v["response"], Value::Null);
        assert_eq!(v["error"]["code"], "connect");
        assert_eq!(v["error"]["message"], "refused");
        let v: Value =
            serde_json::from_slice(&record("i", "c", Some((502, String::new(), Some(b"Bad gateway"))), None)).unwrap();
        assert_eq!(v["response"]["body"], "Bad gateway");
    }
}
