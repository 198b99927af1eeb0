//! The worker thread that owns the model. Requests queue on a channel and are answered one at a
//! time; each answer flows back token by token over its own channel, so the async runtime's
//! threads never run the model. A request whose receiver is gone (a dropped stream) is stopped
//! before its next token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mamba_backends::{Error, ErrorKind, FinishReason};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::arch::Architecture;
use crate::constrain::Constraint;
use crate::prompt_cache::{CacheLimits, PromptCache};
use crate::sampler::{Sampler, SamplerConfig};
use crate::stop::StopMatcher;
use crate::tokenizer::decode::Utf8Decoder;
use crate::tokenizer::Tokenizer;

/// Prompt tokens fed to the model per forward pass (bounds the attention matrices' size).
const PROMPT_BATCH: usize = 256;

/// What one request asks the engine to do.
#[derive(Debug, Clone)]
pub(crate) struct Generation {
    pub(crate) prompt: Vec<u32>,
    pub(crate) max_tokens: usize,
    pub(crate) stop: Vec<String>,
    pub(crate) sampler: SamplerConfig,
    /// Go on past end-of-generation tokens (benchmarks; llama.cpp server's `ignore_eos`).
    /// Ignored under a constraint, which decides where the answer ends.
    pub(crate) ignore_eos: bool,
    /// The grammar the answer must follow (`response_format`); `None`: free text, no mask work.
    pub(crate) constraint: Option<Box<Constraint>>,
}

/// What the engine reports while answering.
#[derive(Debug)]
pub(crate) enum Event {
    /// More answer text (never a broken character, never stop-sequence text).
    Text(String),
    /// The answer is complete. `cached_tokens` of the prompt came from the prompt cache.
    Done { finish: FinishReason, prompt_tokens: usize, cached_tokens: usize, completion_tokens: usize },
    /// The model failed.
    Failed(Error),
}

/// The work the model thread does, one job at a time.
enum Job {
    /// Answer a request, token by token.
    Generate { generation: Generation, events: UnboundedSender<Event> },
    /// Teacher forcing: the logits after a prompt and after each token of a given continuation.
    Score { prompt: Vec<u32>, continuation: Vec<u32>, reply: oneshot::Sender<Result<Vec<Vec<f32>>, Error>> },
}

/// Handle to the worker; cheap to share. The worker ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct Engine {
    jobs: UnboundedSender<Job>,
    sampled: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Generate { generation, .. } => {
                f.debug_struct("Generate").field("prompt_tokens", &generation.prompt.len()).finish_non_exhaustive()
            }
            Job::Score { prompt, continuation, .. } => f
                .debug_struct("Score")
                .field("prompt_tokens", &prompt.len())
                .field("continuation_tokens", &continuation.len())
                .finish_non_exhaustive(),
        }
    }
}

impl Engine {
    /// Starts the worker thread with its own pool of `threads` compute threads.
    pub(crate) fn start(
        model: Box<dyn Architecture>,
        tokenizer: Arc<Tokenizer>,
        threads: usize,
        cache: CacheLimits,
    ) -> Result<Engine, Error> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mamba-local-{i}"))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Config, format!("cannot start {threads} compute threads: {e}")).with_source(e)
            })?;
        let (jobs, mut queue) = unbounded_channel::<Job>();
        let sampled = Arc::new(AtomicU64::new(0));
        let counter = sampled.clone();
        std::thread::Builder::new()
            .name("mamba-local".to_owned())
            .spawn(move || {
                let mut model = model;
                let mut cache = PromptCache::new(cache);
                while let Some(job) = queue.blocking_recv() {
                    pool.install(|| match job {
                        Job::Generate { generation, events } => {
                            run(model.as_mut(), &mut cache, &tokenizer, &counter, generation, events);
                        }
                        Job::Score { prompt, continuation, reply } => {
                            // Scoring reads from a fresh cache, exactly as a first request does.
                            cache.forget();
                            model.reset();
                            let _ = reply.send(score(model.as_mut(), &prompt, &continuation));
                        }
                    });
                }
            })
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot start the model thread: {e}")).with_source(e))?;
        Ok(Engine { jobs, sampled })
    }

    /// Queues a request; its events arrive on the returned receiver.
    pub(crate) fn submit(&self, generation: Generation) -> Result<UnboundedReceiver<Event>, Error> {
        let (events, receiver) = unbounded_channel();
        self.jobs.send(Job::Generate { generation, events }).map_err(|_| stopped())?;
        Ok(receiver)
    }

    /// The logits after `prompt` and after each token of `continuation`, computed as a
    /// generation computes them: `continuation.len() + 1` rows.
    pub(crate) async fn score(&self, prompt: Vec<u32>, continuation: Vec<u32>) -> Result<Vec<Vec<f32>>, Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Score { prompt, continuation, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Tokens sampled since the start, over all requests.
    pub(crate) fn sampled_tokens(&self) -> u64 {
        self.sampled.load(Ordering::Relaxed)
    }

    /// True while the worker thread runs.
    pub(crate) fn is_alive(&self) -> bool {
        !self.jobs.is_closed()
    }
}

fn stopped() -> Error {
    Error::new(ErrorKind::Unavailable, "the built-in model's thread has stopped")
}

fn model_error(e: candle_core::Error) -> Error {
    Error::new(ErrorKind::Server, format!("the built-in model failed: {}", crate::one_line(&e))).with_source(e)
}

fn failed(e: candle_core::Error) -> Event {
    Event::Failed(model_error(e))
}

/// Reads `prompt[start..]` after the `start` cached positions, in batches of [`PROMPT_BATCH`];
/// the logits after its last token. `Ok(None)` when `go_on` says to stop early.
fn read_prompt(
    model: &mut dyn Architecture,
    prompt: &[u32],
    start: usize,
    go_on: impl Fn() -> bool,
) -> Result<Option<Vec<f32>>, candle_core::Error> {
    let mut logits = Vec::new();
    let mut pos = start;
    for batch in prompt[start..].chunks(PROMPT_BATCH) {
        if !go_on() {
            return Ok(None);
        }
        logits = model.forward(batch, pos)?;
        pos += batch.len();
    }
    Ok(Some(logits))
}

/// Teacher forcing: the prompt read as a request reads it, then the continuation's tokens fed
/// one at a time as generation feeds its own; the logits before each continuation token and
/// after the last.
fn score(model: &mut dyn Architecture, prompt: &[u32], continuation: &[u32]) -> Result<Vec<Vec<f32>>, Error> {
    if prompt.is_empty() {
        return Err(Error::new(ErrorKind::InvalidRequest, "scoring needs at least one prompt token"));
    }
    let first = read_prompt(model, prompt, 0, || true).map_err(model_error)?.unwrap_or_default();
    let mut rows = Vec::with_capacity(continuation.len() + 1);
    rows.push(first);
    for (i, &id) in continuation.iter().enumerate() {
        rows.push(model.forward(&[id], prompt.len() + i).map_err(model_error)?);
    }
    Ok(rows)
}

/// Answers one request.
/// Answers one request, reusing what the prompt cache has of its prompt, and tells the cache
/// what the model holds afterwards.
fn run(
    model: &mut dyn Architecture,
    cache: &mut PromptCache,
    tokenizer: &Tokenizer,
    sampled: &AtomicU64,
    generation: Generation,
    events: UnboundedSender<Event>,
) {
    let mut fed = Vec::with_capacity(generation.prompt.len() + generation.max_tokens.min(4096));
    match generate(model, cache, tokenizer, sampled, generation, &events, &mut fed) {
        Ok(()) => cache.fed(fed),
        Err(e) => {
            // A failed forward pass leaves the cache in an unknown state.
            cache.forget();
            let _ = events.send(failed(e));
        }
    }
}

/// The generation loop; `fed` collects the tokens whose keys and values the model holds.
fn generate(
    model: &mut dyn Architecture,
    cache: &mut PromptCache,
    tokenizer: &Tokenizer,
    sampled: &AtomicU64,
    generation: Generation,
    events: &UnboundedSender<Event>,
    fed: &mut Vec<u32>,
) -> Result<(), candle_core::Error> {
    let send = |event: Event| events.send(event).is_ok();
    let prompt = &generation.prompt;
    let cached = cache.prepare(model, prompt)?.tokens;
    fed.extend_from_slice(&prompt[..cached]);
    let Some(mut logits) = read_prompt(model, prompt, cached, || !events.is_closed())? else {
        // Stopped early: what was read is not known batch by batch; keep the reused part only.
        return Ok(());
    };
    fed.extend_from_slice(&prompt[cached..]);
    let mut pos = prompt.len();
    let mut sampler = Sampler::new(generation.sampler.clone());
    let mut decoder = Utf8Decoder::default();
    // Under a constraint the grammar decides where the answer ends: stop sequences would cut
    // the JSON, so they are not applied.
    let mut constraint = generation.constraint;
    let stop_texts: &[String] = if constraint.is_some() { &[] } else { &generation.stop };
    let mut stops = StopMatcher::new(stop_texts);
    let ignore_eos = generation.ignore_eos && constraint.is_none();
    let mut generated = 0;
    let finish = loop {
        if generated >= generation.max_tokens {
            break FinishReason::Length;
        }
        if events.is_closed() {
            return Ok(());
        }
        if let Some(c) = constraint.as_mut() {
            if let Err(e) = c.mask(&mut logits) {
                send(Event::Failed(e));
                return Ok(());
            }
        }
        let id = sampler.sample(&mut logits);
        sampled.fetch_add(1, Ordering::Relaxed);
        if tokenizer.is_eog(id) && !ignore_eos {
            break FinishReason::Stop;
        }
        generated += 1;
        let mut complete = false;
        if let Some(c) = constraint.as_mut() {
            if let Err(e) = c.consume(id) {
                send(Event::Failed(e));
                return Ok(());
            }
            complete = c.is_done();
        }
        let (text, stopped) = stops.push(&decoder.push(tokenizer.piece(id)));
        if !text.is_empty() && !send(Event::Text(text)) {
            return Ok(());
        }
        if stopped {
            let _ = send(Event::Done {
                finish: FinishReason::Stop,
                prompt_tokens: prompt.len(),
                cached_tokens: cached,
                completion_tokens: generated,
            });
            return Ok(());
        }
        if complete {
            break FinishReason::Stop;
        }
        if generated >= generation.max_tokens {
            break FinishReason::Length;
        }
        logits = model.forward(&[id], pos)?;
        fed.push(id);
        pos += 1;
    };
    let (mut text, stopped) = stops.push(&decoder.finish());
    let finish = if stopped { FinishReason::Stop } else { finish };
    if !stopped {
        text.push_str(&stops.finish());
    }
    if !text.is_empty() && !send(Event::Text(text)) {
        return Ok(());
    }
    let _ =
        send(Event::Done { finish, prompt_tokens: prompt.len(), cached_tokens: cached, completion_tokens: generated });
    Ok(())
}
