//! Answers a batch's distinct inputs: the cache first, then the server, concurrently up to the
//! registration's limit (shared by every partition and every query), in input order out.
//! Pure of DataFusion: `udf.rs` turns arrays into [`Job`]s and answers back into arrays.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use futures_util::stream::StreamExt;
use mamba_backends::embeddings::{EmbeddingInput, EmbeddingOptions};
use mamba_backends::structured::{Extract, ExtractOptions};
use mamba_backends::{Message, ModelBackend, ModelProfile, RequestOptions, Usage};
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

use crate::cache::{bytes_vector, vector_bytes, Entry, Key, ResponseCache};
use crate::options::{excerpt, CallOptions, Kind, OnError};
use crate::stats::Counters;

/// Answers are written to the cache this many at a time (and at the end of each batch), so a
/// query killed part way loses at most this many paid answers.
const FLUSH_EVERY: usize = 64;

/// One distinct input of a batch.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) input: String,
    pub(crate) opts: Arc<CallOptions>,
    /// `llm_json()`: the schema.
    pub(crate) schema: Option<Arc<Value>>,
    pub(crate) key: Key,
}

/// An answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    Text(String),
    Vector(Vec<f32>),
}

/// A job's answer, or (with `on_error: "null"`) its error message.
pub(crate) type Outcome = Result<Answer, String>;

/// What the functions of one registration share.
pub(crate) struct Engine {
    pub(crate) backend: Arc<dyn ModelBackend>,
    permits: Semaphore,
    concurrency: usize,
    pub(crate) cache: Option<Arc<ResponseCache>>,
    pub(crate) counters: Counters,
    pub(crate) on_error: OnError,
    max_cost: Option<f64>,
    embed_chunk: usize,
    /// The models the server lists (`None`: it lists none, or listing failed: not checked).
    served: OnceCell<Option<BTreeSet<String>>>,
    /// The profiles of the models answered so far, for their prices.
    profiles: Mutex<HashMap<String, ModelProfile>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.backend.name())
            .field("model", &self.backend.model())
            .field("concurrency", &self.concurrency)
            .field("cache", &self.cache.as_ref().map(|c| c.path().to_path_buf()))
            .field("on_error", &self.on_error)
            .field("max_cost", &self.max_cost)
            .finish_non_exhaustive()
    }
}

/// How one request ended.
enum Sent {
    /// Not sent: the batch had already failed.
    Skipped,
    /// Not sent: the cost cap was reached.
    CostCap,
    /// Answers for the group's jobs, in order, and the usage of the request.
    Done(Vec<Answer>, Option<Usage>),
    Failed(String),
}

impl Engine {
    pub(crate) fn new(
        backend: Arc<dyn ModelBackend>,
        concurrency: usize,
        cache: Option<Arc<ResponseCache>>,
        on_error: OnError,
        max_cost: Option<f64>,
        embed_chunk: usize,
    ) -> Engine {
        Engine {
            backend,
            permits: Semaphore::new(concurrency.max(1)),
            concurrency: concurrency.max(1),
            cache,
            counters: Counters::default(),
            on_error,
            max_cost,
            embed_chunk: embed_chunk.max(1),
            served: OnceCell::new(),
            profiles: Mutex::new(HashMap::new()),
        }
    }

    /// The model a job asks.
    pub(crate) fn model_of<'a>(&'a self, opts: &'a CallOptions) -> &'a str {
        opts.model.as_deref().unwrap_or_else(|| self.backend.model())
    }

    /// The outcome of every job, in order. `Err` fails the query: a job failed (with
    /// `on_error: "fail"`), the cost cap was reached, a model is unknown, or the cache broke.
    pub(crate) async fn run(&self, kind: Kind, jobs: &[Job], on_error: OnError) -> Result<Vec<Outcome>, String> {
        let mut out: Vec<Option<Outcome>> = (0..jobs.len()).map(|_| None).collect();
        if let Some(cache) = &self.cache {
            let keys: Vec<Key> = jobs.iter().map(|j| j.key).collect();
            let cache = Arc::clone(cache);
            let hits = tokio::task::spawn_blocking(move || cache.get_many(&keys))
                .await
                .map_err(|e| format!("the response cache failed: {e}"))?
                .map_err(|e| e.to_string())?;
            for (slot, hit) in out.iter_mut().zip(hits) {
                let answer = hit.and_then(|e| match kind {
                    Kind::Embed => bytes_vector(&e.value).map(Answer::Vector),
                    Kind::Llm | Kind::Json => String::from_utf8(e.value).ok().map(Answer::Text),
                });
                if let Some(answer) = answer {
                    Counters::add(&self.counters.cache_hits, 1);
                    *slot = Some(Ok(answer));
                }
            }
        }
        let todo: Vec<usize> = (0..jobs.len()).filter(|&i| out[i].is_none()).collect();
        if todo.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        self.check_models(kind, todo.iter().map(|&i| &jobs[i])).await?;

        let groups = match kind {
            Kind::Embed => self.embedding_groups(jobs, &todo),
            Kind::Llm | Kind::Json => todo.iter().map(|&i| vec![i]).collect(),
        };
        let stop = AtomicBool::new(false);
        // At most `concurrency` requests of this batch exist at once (each waits for a permit of
        // the registration's limit): a batch of 8,192 rows does not hold 8,192 futures.
        let limit = self.concurrency;
        let mut running = futures_util::stream::iter(groups.into_iter().map(|group| {
            let stop = &stop;
            async move {
                let sent = self.send(kind, jobs, &group, stop).await;
                (group, sent)
            }
        }))
        .buffer_unordered(limit);
        let mut failure: Option<String> = None;
        let mut pending: Vec<(Key, Entry)> = Vec::new();
        while let Some((group, sent)) = running.next().await {
            match sent {
                Sent::Skipped => {}
                Sent::CostCap => {
                    stop.store(true, Relaxed);
                    failure.get_or_insert_with(|| {
                        format!(
                            "{}(): stopped at the cost cap of ${:.4} (spent ${:.4}); the answers so far are cached{}",
                            kind.name(),
                            self.max_cost.unwrap_or(0.0),
                            self.counters.cost_usd(),
                            if self.cache.is_some() { "" } else { " only with a response cache" }
                        )
                    });
                }
                Sent::Done(answers, usage) => {
                    let model = self.model_of(&jobs[group[0]].opts);
                    let usage = usage.unwrap_or_default();
                    let (input, output) = (usage.input_tokens, usage.output_tokens);
                    self.account(model, &usage);
                    Counters::add(&self.counters.answered, group.len() as u64);
                    // A request's tokens are spread over its inputs for the cache (embeddings).
                    let n = group.len() as u64;
                    for (k, (&i, answer)) in group.iter().zip(answers).enumerate() {
                        if self.cache.is_some() {
                            let value = match &answer {
                                Answer::Text(t) => t.as_bytes().to_vec(),
                                Answer::Vector(v) => vector_bytes(v),
                            };
                            let share = |t: u64| t / n + u64::from((k as u64) < t % n);
                            pending.push((
                                jobs[i].key,
                                Entry { value, input_tokens: share(input), output_tokens: share(output) },
                            ));
                        }
                        out[i] = Some(Ok(answer));
                    }
                }
                Sent::Failed(message) => {
                    Counters::add(&self.counters.failed, group.len() as u64);
                    match on_error {
                        OnError::Fail => {
                            stop.store(true, Relaxed);
                            failure.get_or_insert_with(|| {
                                let first = excerpt(&jobs[group[0]].input);
                                match group.len() {
                                    1 => format!("{}(): the row with input {first} failed: {message}", kind.name()),
                                    n => format!(
                                        "{}(): a request for {n} rows (the first with input {first}) failed: {message}",
                                        kind.name()
                                    ),
                                }
                            });
                        }
                        OnError::Null => {
                            for &i in &group {
                                out[i] = Some(Err(message.clone()));
                            }
                        }
                    }
                }
            }
            if pending.len() >= FLUSH_EVERY {
                self.flush(&mut pending).await?;
            }
        }
        self.flush(&mut pending).await?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        Ok(out.into_iter().map(|o| o.unwrap_or_else(|| Err("not sent".into()))).collect())
    }

    /// Embedding inputs in requests of at most `embed_chunk`, never mixing options.
    fn embedding_groups(&self, jobs: &[Job], todo: &[usize]) -> Vec<Vec<usize>> {
        let mut by_options: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for &i in todo {
            let canonical = jobs[i].opts.canonical.as_str();
            by_options
                .entry(canonical)
                .or_insert_with(|| {
                    order.push(canonical);
                    Vec::new()
                })
                .push(i);
        }
        order
            .into_iter()
            .flat_map(|c| {
                by_options
                    .remove(c)
                    .unwrap_or_default()
                    .chunks(self.embed_chunk)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// One request for `group` (one job, or the inputs of one embedding request).
    async fn send(&self, kind: Kind, jobs: &[Job], group: &[usize], stop: &AtomicBool) -> Sent {
        let Ok(_permit) = self.permits.acquire().await else { return Sent::Skipped };
        if stop.load(Relaxed) {
            return Sent::Skipped;
        }
        if self.max_cost.is_some_and(|cap| self.counters.cost_usd() >= cap) {
            return Sent::CostCap;
        }
        Counters::add(&self.counters.requests, 1);
        let job = &jobs[group[0]];
        let model = self.model_of(&job.opts);
        let other_model = (model != self.backend.model()).then(|| Value::String(model.to_owned()));
        match kind {
            Kind::Llm | Kind::Json => {
                let mut messages = Vec::with_capacity(2);
                if let Some(system) = &job.opts.system {
                    messages.push(Message::system(system.as_str()));
                }
                messages.push(Message::user(job.input.as_str()));
                let mut request: RequestOptions = job.opts.request.clone();
                if let Some(m) = other_model {
                    request = request.extra("model", m);
                }
                if let (Kind::Json, Some(schema)) = (kind, &job.schema) {
                    let mut options = ExtractOptions::new().request(request);
                    if let Some(n) = job.opts.attempts {
                        options = options.attempts(n);
                    }
                    match self.backend.extract_value(schema, &messages, &options).await {
                        Ok(x) => Sent::Done(vec![Answer::Text(x.value.to_string())], Some(x.usage)),
                        Err(e) => Sent::Failed(e.to_string()),
                    }
                } else {
                    match self.backend.complete(&messages, &request).await {
                        Ok(r) => Sent::Done(vec![Answer::Text(r.content)], r.usage),
                        Err(e) => Sent::Failed(e.to_string()),
                    }
                }
            }
            Kind::Embed => {
                let Some(embedder) = self.backend.as_embedder() else {
                    return Sent::Failed(format!("the backend {} does not serve embeddings", self.backend.name()));
                };
                let inputs = EmbeddingInput::texts(group.iter().map(|&i| jobs[i].input.as_str()));
                let mut options = EmbeddingOptions::new();
                if let Some(d) = job.opts.dimensions {
                    options = options.dimensions(d);
                }
                if let Some(m) = other_model {
                    options = options.extra("model", m);
                }
                match embedder.embed(&inputs, &options).await {
                    Ok(e) if e.vectors.len() == group.len() => {
                        Sent::Done(e.vectors.into_iter().map(Answer::Vector).collect(), e.usage)
                    }
                    Ok(e) => Sent::Failed(format!(
                        "the server answered {} vectors for {} inputs",
                        e.vectors.len(),
                        group.len()
                    )),
                    Err(e) => Sent::Failed(e.to_string()),
                }
            }
        }
    }

    /// Adds a paid answer's tokens and cost (the model profile's prices, looked up once per
    /// model).
    fn account(&self, model: &str, usage: &Usage) {
        Counters::add(&self.counters.input_tokens, usage.input_tokens);
        Counters::add(&self.counters.output_tokens, usage.output_tokens);
        let cost = {
            let mut profiles = self.profiles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !profiles.contains_key(model) {
                profiles.insert(model.to_owned(), mamba_backends::get_profile(model));
            }
            profiles.get(model).and_then(|p| p.cost(usage))
        };
        match cost {
            Some(usd) => self.counters.add_cost(usd),
            None => Counters::add(&self.counters.unpriced, 1),
        }
    }

    /// Fails when a job names a model the server does not list (servers that list none, or
    /// whose listing fails, are not checked). Runs once per registration, before any request.
    async fn check_models<'a>(&self, kind: Kind, jobs: impl Iterator<Item = &'a Job>) -> Result<(), String> {
        let own = self.backend.model();
        let named: BTreeSet<&str> = jobs.filter_map(|j| j.opts.model.as_deref()).filter(|m| *m != own).collect();
        if named.is_empty() {
            return Ok(());
        }
        let served = self
            .served
            .get_or_init(|| async {
                match self.backend.list_models().await {
                    Ok(list) if !list.is_empty() => Some(list.into_iter().map(|m| m.id).collect()),
                    _ => None,
                }
            })
            .await;
        let Some(served) = served else { return Ok(()) };
        match named.into_iter().find(|m| !served.contains(*m)) {
            None => Ok(()),
            Some(unknown) => {
                let mut list: Vec<&str> = served.iter().map(String::as_str).take(12).collect();
                if served.len() > list.len() {
                    list.push("…");
                }
                Err(format!("{}(): unknown model {unknown:?}; the server serves {}", kind.name(), list.join(", ")))
            }
        }
    }

    async fn flush(&self, pending: &mut Vec<(Key, Entry)>) -> Result<(), String> {
        let Some(cache) = &self.cache else { return Ok(()) };
        if pending.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(pending);
        let cache = Arc::clone(cache);
        tokio::task::spawn_blocking(move || cache.put_many(&entries))
            .await
            .map_err(|e| format!("the response cache failed: {e}"))?
            .map_err(|e| e.to_string())
    }
}
