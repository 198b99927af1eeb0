//! [`LocalBackend`]: the built-in model behind the library's `ModelBackend` trait.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_core::Stream;
use mamba_backends::{
    backend::ChunkStream,
    collect,
    health::{HealthReport, ModelInfo},
    message::Role,
    stream::ToolCallDelta,
    Error, ErrorKind, FinishReason, Message, ModelBackend, ModelProfile, ModelResponse, RequestOptions, StreamChunk,
    ToolChoice, Usage,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::constrain::Grammars;
use crate::engine::{Engine, Event, Generation, Triggered};
use crate::options::{LocalOptions, DEFAULT_CONTEXT};
use crate::sampler::SamplerConfig;
use crate::template::ChatTemplate;
use crate::think::ThinkSplitter;
use crate::tokenizer::Tokenizer;
use crate::tools::{GrammarMode, ToolParser, ToolPlan};
use mamba_backends::options::ReasoningEffort;

/// A GGUF chat model running in this process on the CPU.
///
/// Request options: `temperature` (default [`LocalOptions::default_temperature`], 0 = greedy),
/// `top_p`, `seed` (same seed, same answer), `max_tokens` (default: the rest of the context),
/// `stop`, `frequency_penalty`, `presence_penalty`, and the extra `ignore_eos: true` (as llama.cpp's
/// server: go on past end-of-generation tokens).
///
/// Tools go through the model's own chat template, when it has them (Qwen2.5 and Qwen3 write
/// `<tool_call>` blocks, Llama 3.x a JSON object): the template renders the tools, and the
/// answer comes back as [`ToolCall`](mamba_backends::ToolCall)s, whole from `complete` and one
/// delta per call from `stream` (as soon as its block closes; the text around calls streams as
/// it comes). Each `<tool_call>` block the model opens is constrained by the tools' JSON
/// Schemas, so its calls name a given function and their arguments validate; `tool_choice`
/// `required` or a named function constrains the whole answer to calls. A template without
/// tools refuses them with `ErrorKind::Unsupported`.
///
/// `response_format` is enforced token by token (constrained decoding with llguidance over the
/// model's own tokenizer): with `JsonSchema` the answer always parses and validates against the
/// schema, with `JsonObject` it is always a JSON object, in compact form. Under a format the
/// grammar decides where the answer ends (stop sequences and `ignore_eos` do not apply); an
/// answer cut by `max_tokens` first ends with `finish_reason` `length`. A schema the grammar
/// engine cannot compile is refused with `ErrorKind::Unsupported` naming the reason, before any
/// generation.
///
/// Cloning is cheap: clones share one model thread, and requests from all of them queue there.
///
/// ```no_run
/// # async fn run() -> Result<(), mamba_backends::Error> {
/// use mamba_backends::{Message, ModelBackend, RequestOptions};
/// use mamba_local::{LocalBackend, LocalOptions};
///
/// let backend = LocalBackend::load_async("SmolLM2-135M-Instruct.Q4_1.gguf", LocalOptions::new()).await?;
/// let answer = backend.complete(&[Message::user("What is the capital of France?")], &RequestOptions::new()).await?;
/// assert!(answer.content.contains("Paris"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    model: String,
    profile: ModelProfile,
    path: PathBuf,
    context: usize,
    default_temperature: f64,
    default_system_prompt: Option<String>,
    threads: usize,
    load_time: Duration,
    /// The grammar compiler, built on the first request with a `response_format`.
    grammars: OnceLock<Result<Grammars, String>>,
}

impl LocalBackend {
    /// Loads the GGUF model at `path`. This reads and converts the weights (a fraction of a
    /// second for a small model): call it where blocking is fine, or use [`load_async`](Self::load_async).
    ///
    /// # Errors
    /// `Config` when the file cannot be read; `Unsupported` for an architecture, tokenizer or
    /// chat template the engine does not handle.
    pub fn load(path: impl AsRef<Path>, options: LocalOptions) -> Result<LocalBackend, Error> {
        let started = Instant::now();
        let path = path.as_ref().to_path_buf();
        let threads = options.get_threads();
        let loaded = crate::loader::load(&path, &options).map_err(|e| naming_the_file(e, &path))?;
        let trained = loaded.info.context_length.unwrap_or(DEFAULT_CONTEXT);
        let context = options.context.unwrap_or(DEFAULT_CONTEXT.min(trained)).min(trained).max(1);
        let model = model_id(&loaded.info.name);
        let profile = ModelProfile::new(model.clone(), "local")
            .context_window(context)
            .supports_tools(loaded.template.tool_syntax().is_some())
            .supports_json_schema(true);
        let tokenizer = Arc::new(loaded.tokenizer);
        let engine = Engine::start(loaded.model, tokenizer.clone(), threads, options.prompt_cache)?;
        Ok(LocalBackend {
            inner: Arc::new(Inner {
                engine,
                tokenizer,
                template: loaded.template,
                model,
                profile,
                path,
                context: context as usize,
                default_temperature: options.default_temperature,
                default_system_prompt: options.default_system_prompt.clone(),
                threads,
                load_time: started.elapsed(),
                grammars: OnceLock::new(),
            }),
        })
    }

    /// [`load`](Self::load) on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub async fn load_async(path: impl AsRef<Path>, options: LocalOptions) -> Result<LocalBackend, Error> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || LocalBackend::load(path, options))
            .await
            .map_err(|e| Error::new(ErrorKind::Config, format!("loading the model stopped: {e}")).with_source(e))?
    }

    /// The GGUF file this backend runs.
    pub fn model_path(&self) -> &Path {
        &self.inner.path
    }

    /// The context window in tokens (prompt plus answer).
    pub fn context_window(&self) -> usize {
        self.inner.context
    }

    /// Compute threads used.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// How long [`load`](Self::load) took.
    pub fn load_time(&self) -> Duration {
        self.inner.load_time
    }

    /// The prompt tokens the model would see for `messages` (chat template applied).
    ///
    /// # Errors
    /// When the chat template cannot render the messages.
    pub fn prompt_tokens(&self, messages: &[Message]) -> Result<Vec<u32>, Error> {
        Ok(self.prompt(messages, &[], &serde_json::Map::new())?.1)
    }

    /// The prompt text and its tokens, with more template variables.
    fn prompt(
        &self,
        messages: &[Message],
        tools: &[mamba_backends::ToolDefinition],
        variables: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(String, Vec<u32>), Error> {
        let with_system;
        let messages = match &self.inner.default_system_prompt {
            Some(system) if !messages.first().is_some_and(|m| matches!(m.role, Role::System | Role::Developer)) => {
                with_system = std::iter::once(Message::system(system.clone()))
                    .chain(messages.iter().cloned())
                    .collect::<Vec<_>>();
                &with_system[..]
            }
            _ => messages,
        };
        let text = self.inner.template.render_with(messages, tools, variables)?;
        let body = self.inner.tokenizer.encode(&text, true);
        // Templates that write `bos_token` themselves (Llama 3, Gemma) get one BOS, as llama.cpp gives them.
        let mut tokens: Vec<u32> =
            self.inner.tokenizer.prompt_prefix().filter(|bos| body.first() != Some(bos)).into_iter().collect();
        tokens.extend(body);
        Ok((text, tokens))
    }

    /// Token ids of `text` as llama.cpp gives them (`special`: read control-token text as tokens).
    pub fn tokenize(&self, text: &str, special: bool) -> Vec<u32> {
        self.inner.tokenizer.encode(text, special)
    }

    /// Tokens the model has sampled since it was loaded, over all requests (end-of-generation
    /// tokens included). Shows, for instance, that a dropped stream stopped the generation.
    pub fn sampled_tokens(&self) -> u64 {
        self.inner.engine.sampled_tokens()
    }

    /// The text of generated token ids (control tokens add nothing; lossy on broken UTF-8).
    pub fn detokenize(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.inner.tokenizer.piece(id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Teacher forcing: the model's next-token logits after `prompt` and after each token of
    /// `continuation`, computed exactly as a generation computes them (the prompt read in the
    /// same batches, then one token at a time). `continuation.len() + 1` rows of vocabulary
    /// size: row `i` scores the token that follows `continuation[..i]`.
    ///
    /// Compares this engine with another implementation token by token whatever the two
    /// decided on earlier near-ties, and scores or measures the perplexity of a given text.
    ///
    /// # Errors
    /// `InvalidRequest` for an empty prompt, `ContextOverflow` when both do not fit the
    /// context window, `Server` when the model fails.
    pub async fn teacher_forced_logits(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<Vec<f32>>, Error> {
        let total = prompt.len() + continuation.len();
        if total > self.inner.context {
            return Err(Error::new(
                ErrorKind::ContextOverflow,
                format!(
                    "{} prompt and {} continuation tokens exceed the built-in model's context window of {} tokens",
                    prompt.len(),
                    continuation.len(),
                    self.inner.context
                ),
            )
            .with_model(&self.inner.model));
        }
        self.inner.engine.score(prompt.to_vec(), continuation.to_vec()).await
    }

    /// Checks the request and turns it into work for the engine, before any model work; with
    /// the splitter of its reasoning when the model thinks.
    fn prepare(
        &self,
        messages: &[Message],
        options: &RequestOptions,
    ) -> Result<(Generation, Option<ThinkSplitter>, Option<ToolParser>), Error> {
        let plan = self.tool_plan(options).map_err(|e| e.with_model(&self.inner.model))?;
        check_sampling(options).map_err(|e| e.with_model(&self.inner.model))?;
        let variables = template_variables(options).map_err(|e| e.with_model(&self.inner.model))?;
        let rendered = plan.as_ref().map_or(&[][..], |p| &p.rendered[..]);
        let (text, prompt) = self.prompt(messages, rendered, &variables)?;
        let think = self.inner.template.thinks().then(|| ThinkSplitter::new(&text));
        let context = self.inner.context;
        let room = context.saturating_sub(prompt.len());
        let max_tokens = match options.max_tokens {
            Some(n) => n as usize,
            None => room,
        };
        if prompt.len() + max_tokens.max(1) > context {
            let asked = match options.max_tokens {
                Some(n) => format!("plus max_tokens ({n})"),
                None => "leaves no room for an answer".to_owned(),
            };
            return Err(Error::new(
                ErrorKind::ContextOverflow,
                format!(
                    "the prompt ({} tokens) {asked} in the built-in model's context window of {context} tokens",
                    prompt.len()
                ),
            )
            .with_model(&self.inner.model));
        }
        let temperature = options.temperature.unwrap_or(self.inner.default_temperature);
        let seed = match options.seed {
            Some(seed) => seed as u64,
            None => crate::random_u64(),
        };
        // The JSON the response format holds the answer to, if any: alone, or beside tool calls.
        let answer = crate::constrain::answer_schema(options.response_format.as_ref());
        let mut constraint = None;
        let mut triggered = None;
        let mut parser = None;
        let mut shown = Vec::new();
        if let Some(plan) = &plan {
            let either = answer.as_ref().and_then(|answer| plan.grammar_or_answer(answer));
            let grammar = match either.or_else(|| plan.grammar()) {
                Some(lark) => Some(Box::new(
                    self.grammars()?
                        .compile_lark(lark, "these tools' parameter schemas")
                        .map_err(|e| e.with_model(&self.inner.model))?,
                )),
                None => None,
            };
            match (&plan.mode, grammar) {
                // Calls or the response format's answer (or calls only, when forced), from the
                // first token.
                (_, Some(grammar)) if answer.is_some() => constraint = Some(grammar),
                (GrammarMode::Forced, Some(grammar)) => constraint = Some(grammar),
                (GrammarMode::Triggered(trigger), Some(grammar)) => {
                    let think = think.clone();
                    triggered = Some(Triggered { trigger: trigger.clone(), grammar, think });
                }
                _ => {}
            }
            if plan.mode != GrammarMode::Off {
                // A marker that is a control token in this vocabulary comes out as its text,
                // for the parser.
                shown.extend(plan.syntax.marker().and_then(|m| self.inner.tokenizer.control_id(m)));
                parser = Some(ToolParser::new(plan.syntax, plan.names.clone()));
            }
        }
        if constraint.is_none() {
            if let Some(schema) = answer {
                let compiled = self.grammars()?.compile_schema(schema).map_err(|e| e.with_model(&self.inner.model))?;
                constraint = Some(Box::new(compiled));
            }
        }
        let generation = Generation {
            constraint,
            triggered,
            shown,
            prompt,
            max_tokens,
            stop: options.stop.clone(),
            ignore_eos: options.extra.get("ignore_eos").and_then(serde_json::Value::as_bool).unwrap_or(false),
            sampler: SamplerConfig {
                temperature: temperature as f32,
                top_p: options.top_p.map_or(1.0, |p| p as f32),
                seed,
                frequency_penalty: options.frequency_penalty.unwrap_or(0.0) as f32,
                presence_penalty: options.presence_penalty.unwrap_or(0.0) as f32,
            },
        };
        Ok((generation, think, parser))
    }

    /// What a request's `tools` and `tool_choice` ask for: `None` when no tools are involved.
    ///
    /// # Errors
    /// `Unsupported` for tools when the chat template has none; `InvalidRequest` for a
    /// `tool_choice` that no tool can satisfy.
    fn tool_plan(&self, options: &RequestOptions) -> Result<Option<ToolPlan>, Error> {
        let choice = options.tool_choice.as_ref();
        if options.tools.is_empty() && matches!(choice, None | Some(ToolChoice::Auto | ToolChoice::None)) {
            return Ok(None);
        }
        let Some(syntax) = self.inner.template.tool_syntax() else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the chat template of {} has no tools, so the built-in model cannot call them; use a model \
                     whose template has tools (Qwen2.5, Qwen3, Llama 3.x, Mistral v0.3) or an HTTP backend",
                    self.inner.path.display()
                ),
            ));
        };
        ToolPlan::new(syntax, &options.tools, choice).map(Some)
    }
}

/// The template variables a request sets: `enable_thinking: false` for `reasoning_effort:
/// none` (Qwen3's switch), and its `chat_template_kwargs` (as llama.cpp's and vLLM's servers
/// take them), which win.
fn template_variables(options: &RequestOptions) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let mut variables = serde_json::Map::new();
    if options.reasoning_effort == Some(ReasoningEffort::None) {
        variables.insert("enable_thinking".to_owned(), serde_json::Value::Bool(false));
    }
    match options.extra.get("chat_template_kwargs") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(kwargs)) => {
            variables.extend(kwargs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Some(other) => {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("chat_template_kwargs must be an object of template variables, got {other}"),
            ))
        }
    }
    Ok(variables)
}

impl LocalBackend {
    /// The model's grammar compiler, built on first use.
    fn grammars(&self) -> Result<&Grammars, Error> {
        let grammars = self
            .inner
            .grammars
            .get_or_init(|| Grammars::new(self.inner.tokenizer.clone()).map_err(|e| e.message().to_owned()));
        grammars.as_ref().map_err(|e| Error::new(ErrorKind::Unsupported, e.clone()).with_model(&self.inner.model))
    }
}

/// A load error that names the model file (some causes, found deep in the weights, do not):
/// with several models configured, the file is what the user has to look at.
fn naming_the_file(error: Error, path: &Path) -> Error {
    let shown = path.display().to_string();
    if error.message().contains(&shown) {
        return error;
    }
    Error::new(error.kind(), format!("{shown}: {}", error.message())).with_source(error)
}

/// Refuses sampling settings outside the ranges OpenAI's API accepts, and more than one choice
/// (the engine answers with one): such a request is a mistake, not something to answer anyway.
fn check_sampling(options: &RequestOptions) -> Result<(), Error> {
    let invalid = |message: String| Err(Error::new(ErrorKind::InvalidRequest, message));
    if let Some(t) = options.temperature {
        if !(0.0..=2.0).contains(&t) {
            return invalid(format!("temperature must be between 0 and 2, got {t}"));
        }
    }
    if let Some(p) = options.top_p {
        if !(0.0..=1.0).contains(&p) {
            return invalid(format!("top_p must be between 0 and 1, got {p}"));
        }
    }
    for (name, value) in
        [("frequency_penalty", options.frequency_penalty), ("presence_penalty", options.presence_penalty)]
    {
        if let Some(v) = value {
            if !(-2.0..=2.0).contains(&v) {
                return invalid(format!("{name} must be between -2 and 2, got {v}"));
            }
        }
    }
    match options.extra.get("n") {
        None | Some(serde_json::Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(n) => return invalid(format!("the built-in model answers with one choice: n must be 1, got {n}")),
    }
    Ok(())
}

/// A model id clients can send back: `general.name` ("SmolLM2 135M Instruct") lowercased, with
/// runs of anything but letters, digits, `.`, `_`, `:` and `-` made one `-`
/// ("smollm2-135m-instruct", the id llama.cpp's server is usually given for it).
pub(crate) fn model_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if c.is_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
            id.extend(c.to_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    let id = id.trim_end_matches('-');
    if id.is_empty() {
        "local".to_owned()
    } else {
        id.to_owned()
    }
}

/// The engine's events as `StreamChunk`s.
struct EventStream {
    events: UnboundedReceiver<Event>,
    model: String,
    done: bool,
    /// Splits `<think>` blocks off when the model thinks.
    think: Option<ThinkSplitter>,
    /// Parses tool calls out of the content when the request has tools.
    tools: Option<ToolParser>,
}

impl EventStream {
    /// A chunk of `text` split into reasoning and content.
    fn text_chunk(&mut self, text: &str) -> StreamChunk {
        let split = match self.think.as_mut() {
            Some(think) => think.push(text),
            None => crate::think::Split { reasoning: String::new(), content: text.to_owned() },
        };
        let mut chunk = StreamChunk::text(String::new()).with_model(self.model.clone());
        chunk.reasoning = split.reasoning;
        self.add_content(&mut chunk, &split.content, false);
        chunk
    }

    /// Adds `content` to `chunk`, tool calls parsed out of it when the request has tools;
    /// `last`: the answer ends here, so what the parser held comes out too.
    fn add_content(&mut self, chunk: &mut StreamChunk, content: &str, last: bool) {
        let Some(parser) = self.tools.as_mut() else {
            chunk.content.push_str(content);
            return;
        };
        let before = parser.calls();
        let mut parsed = parser.push(content);
        if last {
            let rest = parser.finish();
            parsed.content.push_str(&rest.content);
            parsed.calls.extend(rest.calls);
        }
        chunk.content.push_str(&parsed.content);
        for (i, call) in parsed.calls.into_iter().enumerate() {
            chunk.tool_calls.push(ToolCallDelta::new(before + i, call.arguments).with_id(call.id).with_name(call.name));
        }
    }
}

impl Stream for EventStream {
    type Item = Result<StreamChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let event = match self.events.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(event) => event,
        };
        let item = match event {
            Some(Event::Text(text)) => Ok(self.text_chunk(&text)),
            Some(Event::Done { finish, prompt_tokens, cached_tokens, completion_tokens }) => {
                self.done = true;
                let mut usage = Usage::new(prompt_tokens as u64, completion_tokens as u64);
                usage.cached_input_tokens = Some(cached_tokens as u64);
                let held = match self.think.as_mut() {
                    Some(think) => think.finish(),
                    None => crate::think::Split::default(),
                };
                let stopped = finish == FinishReason::Stop;
                let mut last = StreamChunk::final_chunk(Some(finish), Some(usage)).with_model(self.model.clone());
                last.reasoning = held.reasoning;
                self.add_content(&mut last, &held.content, true);
                if stopped && self.tools.as_ref().is_some_and(|t| t.calls() > 0) {
                    last.finish_reason = Some(FinishReason::ToolCalls);
                }
                Ok(last)
            }
            Some(Event::Failed(e)) => {
                self.done = true;
                Err(e)
            }
            None => {
                self.done = true;
                Err(Error::new(ErrorKind::Stream, "the built-in model stopped before finishing the answer"))
            }
        };
        Poll::Ready(Some(item))
    }
}

#[async_trait]
impl ModelBackend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    fn model(&self) -> &str {
        &self.inner.model
    }

    fn profile(&self) -> &ModelProfile {
        &self.inner.profile
    }

    async fn complete(&self, messages: &[Message], options: &RequestOptions) -> Result<ModelResponse, Error> {
        collect(self.stream(messages, options).await?).await
    }

    async fn stream(&self, messages: &[Message], options: &RequestOptions) -> Result<ChunkStream, Error> {
        let (generation, think, tools) = self.prepare(messages, options)?;
        let events = self.inner.engine.submit(generation)?;
        Ok(Box::pin(EventStream { events, model: self.inner.model.clone(), done: false, think, tools }))
    }

    async fn health_check(&self) -> bool {
        self.inner.engine.is_alive()
    }

    async fn health(&self) -> HealthReport {
        let alive = self.inner.engine.is_alive();
        let mut report = HealthReport::new(alive);
        report.ready = Some(alive);
        report.model_listed = Some(true);
        report.models = vec![self.inner.model.clone()];
        report
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, Error> {
        Ok(vec![ModelInfo::new(self.inner.model.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_have_no_spaces() {
        assert_eq!(model_id("SmolLM2 135M Instruct"), "smollm2-135m-instruct");
        assert_eq!(model_id("  Qwen2.5 7B  Instruct (Q4_K_M) "), "qwen2.5-7b-instruct-q4_k_m");
        assert_eq!(model_id("llama3:8b"), "llama3:8b");
        assert_eq!(model_id(" / "), "local");
    }

    #[test]
    fn reasoning_effort_none_and_chat_template_kwargs_become_template_variables() {
        assert!(template_variables(&RequestOptions::new()).unwrap().is_empty());
        let off = template_variables(&RequestOptions::new().reasoning_effort(ReasoningEffort::None)).unwrap();
        assert_eq!(off["enable_thinking"], serde_json::json!(false));
        let kwargs = RequestOptions::new()
            .reasoning_effort(ReasoningEffort::None)
            .extra("chat_template_kwargs", serde_json::json!({"enable_thinking": true, "x": 1}));
        let vars = template_variables(&kwargs).unwrap();
        assert_eq!(
            (vars["enable_thinking"].clone(), vars["x"].clone()),
            (serde_json::json!(true), serde_json::json!(1))
        );
        let bad = RequestOptions::new().extra("chat_template_kwargs", serde_json::json!("enable_thinking=false"));
        assert_eq!(template_variables(&bad).unwrap_err().kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn sampling_out_of_range_is_refused() {
        let bad = [
            RequestOptions::new().temperature(-5.0),
            RequestOptions::new().temperature(f64::NAN),
            RequestOptions::new().temperature(2.5),
            RequestOptions::new().top_p(7.0),
            RequestOptions::new().top_p(-0.1),
            RequestOptions::new().frequency_penalty(3.0),
            RequestOptions::new().extra("n", serde_json::json!(1000)),
            RequestOptions::new().extra("n", serde_json::json!(0)),
            RequestOptions::new().extra("n", serde_json::json!("2")),
        ];
        for options in bad {
            let e = check_sampling(&options).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
        }
        let good = [
            RequestOptions::new().temperature(0.0).top_p(1.0),
            RequestOptions::new().temperature(2.0).top_p(0.0),
            RequestOptions::new().extra("n", serde_json::json!(1)),
            RequestOptions::new(),
        ];
        for options in good {
            check_sampling(&options).unwrap();
        }
    }
}
