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
use crate::think::ThinkSplitter;
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
    /// The grammar the answer must follow (`response_format`, or forced tool calls); `None`:
    /// free text, no mask work.
    pub(crate) constraint: Option<Box<Constraint>>,
    /// A grammar that starts each time the answer's text reaches a trigger (a tool call's
    /// opening tag) and ends with its grammar: the rest of that call is constrained, the text
    /// around it free. Only while `constraint` is `None`.
    pub(crate) triggered: Option<Triggered>,
    /// Control tokens whose text is part of the answer here (a tool-call marker such as
    /// Mistral's `[TOOL_CALLS]`, which the parser reads); other control tokens add nothing.
    pub(crate) shown: Vec<u32>,
}

/// A grammar applied from a trigger text on (see [`Generation::triggered`]).
#[derive(Debug, Clone)]
pub(crate) struct Triggered {
    pub(crate) trigger: String,
    pub(crate) grammar: Box<Constraint>,
    /// For a thinking model: the trigger counts in the answer's content only, not in its
    /// reasoning (a model may think about the call it will make).
    pub(crate) think: Option<ThinkSplitter>,
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
    // With a triggered grammar, `constraint` is set only while it runs (from a trigger to the
    // end of its call), and `tail` keeps the end of the answer's text, as long as the trigger.
    let mut triggered = if constraint.is_none() { generation.triggered } else { None };
    let mut tail = String::new();
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
        let bytes = if generation.shown.contains(&id) {
            tokenizer.token_text(id).unwrap_or_default().as_bytes()
        } else {
            tokenizer.piece(id)
        };
        let piece = decoder.push(bytes);
        if let Some(t) = triggered.as_mut() {
            if constraint.is_some() {
                if complete {
                    // The call is whole: free text again.
                    constraint = None;
                    complete = false;
                }
            } else {
                match t.think.as_mut() {
                    Some(think) => tail.push_str(&think.push(&piece).content),
                    None => tail.push_str(&piece),
                }
                if tail.ends_with(&t.trigger) {
                    constraint = Some(t.grammar.clone());
                    tail.clear();
                } else if tail.len() > t.trigger.len() {
                    let mut cut = tail.len() - t.trigger.len();
                    while !tail.is_char_boundary(cut) {
                        cut += 1;
                    }
                    tail.drain(..cut);
                }
            }
        }
        let (text, stopped) = stops.push(&piece);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::KvState;
    use crate::tools::{ToolParser, ToolPlan, ToolSyntax};
    use mamba_backends::ToolDefinition;

    /// A model that wants to write `script` (by answer position) and then to stop: its logits
    /// favour the script's token, then the end token, and otherwise fall with the token id, so
    /// that under a grammar the lowest allowed id wins.
    struct Scripted {
        script: Vec<u32>,
        eos: u32,
        vocab: usize,
        prompt: usize,
    }

    impl Architecture for Scripted {
        fn forward(&mut self, tokens: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
            let at = pos + tokens.len() - self.prompt;
            let mut logits: Vec<f32> = (0..self.vocab).map(|id| -(id as f32) * 1e-3).collect();
            let want = self.script.get(at).copied().unwrap_or(self.eos);
            logits[want as usize] = 10.0;
            Ok(logits)
        }
        fn reset(&mut self) {}
        fn save(&self, _len: usize) -> candle_core::Result<KvState> {
            Ok(KvState { len: 0, layers: Vec::new() })
        }
        fn restore(&mut self, _state: &KvState) -> candle_core::Result<()> {
            Ok(())
        }
    }

    fn qwen2_vocab() -> Arc<Tokenizer> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizers/vocab-qwen2.gguf");
        let (_, content) = crate::gguf::open(&path).unwrap();
        Arc::new(Tokenizer::from_meta(crate::gguf::Meta(&content.metadata)).unwrap())
    }

    /// A greedy generation of `prompt`, up to `max_tokens`, with nothing else set.
    fn greedy(prompt: Vec<u32>, max_tokens: usize, triggered: Option<Triggered>) -> Generation {
        Generation {
            prompt,
            max_tokens,
            stop: Vec::new(),
            sampler: SamplerConfig {
                temperature: 0.0,
                top_p: 1.0,
                seed: 0,
                frequency_penalty: 0.0,
                presence_penalty: 0.0,
            },
            ignore_eos: false,
            constraint: None,
            triggered,
            shown: Vec::new(),
        }
    }

    /// Runs a generation on `model` and returns its text and finish reason.
    fn answer(model: &mut Scripted, tokenizer: &Tokenizer, generation: Generation) -> (String, FinishReason) {
        let (events, mut receiver) = unbounded_channel();
        let mut cache = PromptCache::new(CacheLimits::default());
        let mut fed = Vec::new();
        generate(model, &mut cache, tokenizer, &AtomicU64::new(0), generation, &events, &mut fed).unwrap();
        let mut text = String::new();
        while let Ok(event) = receiver.try_recv() {
            match event {
                Event::Text(t) => text.push_str(&t),
                Event::Done { finish, .. } => return (text, finish),
                Event::Failed(e) => panic!("{e}"),
            }
        }
        panic!("no Done event after {text:?}")
    }

    /// A control token adds nothing to the answer, unless the request shows it (a tool-call
    /// marker that is a control token in the vocabulary, such as Mistral's `[TOOL_CALLS]`).
    #[test]
    fn a_shown_control_token_comes_out_as_its_text() {
        let tokenizer = qwen2_vocab();
        let control = (0..tokenizer.vocab_size() as u32)
            .find(|&id| tokenizer.is_control(id) && !tokenizer.is_eog(id))
            .expect("the fixture has a control token that does not end the answer");
        let text = tokenizer.token_text(control).unwrap().to_owned();
        assert_eq!(tokenizer.control_id(&text), Some(control));
        assert_eq!(tokenizer.control_id("Hi"), None);
        let mut script = tokenizer.encode("Sure.", false);
        script.push(control);
        script.extend(tokenizer.encode(" [1]", false));
        let prompt = tokenizer.encode("Hi", false);
        let eos = tokenizer.eog_ids()[0];
        let mut model = Scripted { script, eos, vocab: tokenizer.vocab_size(), prompt: prompt.len() };
        let generation = |shown: Vec<u32>| Generation { shown, ..greedy(prompt.clone(), 50, None) };
        assert_eq!(answer(&mut model, &tokenizer, generation(Vec::new())).0, "Sure. [1]");
        assert_eq!(answer(&mut model, &tokenizer, generation(vec![control])).0, format!("Sure.{text} [1]"));
    }

    /// The model opens a call block and then wants to call a function that does not exist with
    /// bad arguments: from the opening tag on, the tools' grammar holds it to a valid call; after
    /// the closing tag it writes freely again (and stops).
    #[test]
    fn a_call_block_the_model_opens_is_held_to_the_tools_grammar() {
        let tokenizer = qwen2_vocab();
        let grammars = crate::constrain::Grammars::new(tokenizer.clone()).unwrap();
        let tools = vec![ToolDefinition::function(
            "search",
            "Search",
            serde_json::json!({"type": "object", "properties": {"q": {"type": "integer", "minimum": 0}}, "required": ["q"]}),
        )];
        let plan = ToolPlan::new(ToolSyntax::Tagged, &tools, None).unwrap();
        let grammar = grammars.compile_lark(plan.grammar().unwrap(), "the tools").unwrap();
        let script = tokenizer.encode("Let me look.\n<tool_call>\n{\"name\": \"rm\", \"arguments\": \"all\"}", true);
        let eos = tokenizer.eog_ids()[0];
        let prompt = tokenizer.encode("Hi", false);
        let mut model = Scripted { script, eos, vocab: tokenizer.vocab_size(), prompt: prompt.len() };
        let generation = |triggered| greedy(prompt.clone(), 200, triggered);
        let triggered =
            Triggered { trigger: "<tool_call>".to_owned(), grammar: Box::new(grammar.clone()), think: None };
        let (text, finish) = answer(&mut model, &tokenizer, generation(Some(triggered.clone())));
        assert_eq!(finish, FinishReason::Stop);
        assert_eq!(text, "Let me look.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": 0}}\n</tool_call>");
        let mut parser = ToolParser::new(ToolSyntax::Tagged, vec!["search".to_owned()]);
        let mut parsed = parser.push(&text);
        parsed.calls.extend(parser.finish().calls);
        assert_eq!(parsed.content, "Let me look.");
        assert_eq!((parsed.calls[0].name.as_str(), parsed.calls[0].arguments.as_str()), ("search", r#"{"q":0}"#));
        // Without the grammar, the model writes what it wanted.
        let (text, _) = answer(&mut model, &tokenizer, generation(None));
        assert!(text.ends_with("{\"name\": \"rm\", \"arguments\": \"all\"}"), "{text}");

        // A thinking model's reasoning may name the tag: only its content triggers the grammar.
        let thinking = "<think>I will write <tool_call> next.</think>\n\n<tool_call>\n{\"name\": \"rm\"}";
        model.script = tokenizer.encode(thinking, true);
        let think = Triggered { think: Some(ThinkSplitter::new("<|im_start|>assistant\n")), ..triggered };
        let (text, _) = answer(&mut model, &tokenizer, generation(Some(think)));
        assert_eq!(
            text,
            "<think>I will write <tool_call> next.</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": 0}}\n</tool_call>"
        );
    }
}
