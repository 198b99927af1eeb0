//! How the built-in engine is set up.

use std::path::PathBuf;

use crate::prompt_cache::CacheLimits;

/// Settings for [`LocalBackend::load`](crate::LocalBackend::load).
///
/// ```
/// let options = mamba_local::LocalOptions::new().threads(2).context(1024);
/// assert_eq!(options.get_threads(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct LocalOptions {
    pub(crate) threads: Option<usize>,
    pub(crate) context: Option<u32>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) default_temperature: f64,
    pub(crate) default_system_prompt: Option<String>,
    pub(crate) prompt_cache: CacheLimits,
    pub(crate) chat_template: Option<String>,
    pub(crate) kv_f16: bool,
}

/// The context used when neither the options nor a smaller model limit it.
pub(crate) const DEFAULT_CONTEXT: u32 = 2048;

impl LocalOptions {
    /// The defaults: all available cores, a 2048-token context (or the model's, if smaller),
    /// no weight cache, greedy decoding when a request sets no temperature.
    pub fn new() -> LocalOptions {
        LocalOptions::default()
    }

    /// Compute threads of this model's own pool (attention over a prompt, the other tensor
    /// operations). Default: `std::thread::available_parallelism()`. 0 means the default.
    ///
    /// The weight-matrix kernels, where most of the time goes, run on candle's process-wide
    /// pool instead, which spins between calls (a thread per call would cost more than a
    /// small model's matrix product): its size is set once per process by the
    /// `CANDLE_NUM_THREADS` environment variable (default: the physical cores).
    pub fn threads(mut self, threads: usize) -> LocalOptions {
        self.threads = (threads > 0).then_some(threads);
        self
    }

    /// Context window in tokens (prompt plus answer). Default: 2048, or the model's trained
    /// context when it is smaller; never more than the model's.
    pub fn context(mut self, tokens: u32) -> LocalOptions {
        self.context = (tokens > 0).then_some(tokens);
        self
    }

    /// The engine's cache directory. Every supported format now runs as stored, so nothing is
    /// written there; a load removes the converted (Q8_0) copies of its file that earlier
    /// versions kept there. Default: none.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> LocalOptions {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Temperature for requests that set none. Default: 0 (greedy: the same prompt always gives
    /// the same answer, which suits a model used in tests).
    pub fn default_temperature(mut self, temperature: f64) -> LocalOptions {
        self.default_temperature = temperature.max(0.0);
        self
    }

    /// A system message put before conversations that start without one (a system or
    /// developer message). Default: none. Small models answer far better with one: SmolLM2-135M
    /// rambles in French on "What is the capital of France?" without it (llama.cpp too), and
    /// answers "The capital of France is Paris." with "You are a helpful AI assistant.".
    pub fn default_system_prompt(mut self, prompt: Option<String>) -> LocalOptions {
        self.default_system_prompt = prompt.filter(|p| !p.is_empty());
        self
    }

    /// Reuse the keys and values of earlier prompts (default: on). Off, every request reads its
    /// whole prompt, as the engine did before it had a prompt cache: for measuring the cache.
    pub fn prompt_cache(mut self, on: bool) -> LocalOptions {
        self.prompt_cache.enabled = on;
        self
    }

    /// Sequences the prompt cache keeps besides the one in use (default: 4): conversations
    /// taking turns through `serve` each find their own. 0 keeps only the one in use.
    pub fn prompt_cache_slots(mut self, slots: usize) -> LocalOptions {
        self.prompt_cache.slots = slots;
        self
    }

    /// Bytes the prompt cache's saved sequences may hold together (default: 512 MiB; SmolLM2
    /// 135M needs about 46 KB a token in f32).
    pub fn prompt_cache_memory(mut self, bytes: usize) -> LocalOptions {
        self.prompt_cache.memory = bytes;
        self
    }

    /// A Jinja chat template used instead of the one in the GGUF file (as llama.cpp server's
    /// `--chat-template-file`): for a file without one (ChatML is used then), or with a
    /// template that lacks tools or renders wrongly. Default: the file's.
    pub fn chat_template(mut self, source: impl Into<String>) -> LocalOptions {
        self.chat_template = Some(source.into()).filter(|s| !s.is_empty());
        self
    }

    /// Keep the key/value cache in f16, as llama.cpp does by default: half the memory (a longer
    /// context, twice the prompt cache's sequences in its budget), attention's matrix products
    /// in f16. Default: off, since on this CPU engine it is slower: measured on SmolLM2-135M,
    /// 2 threads, generation 5 % slower after a 28-token prompt and 17 % after a 332-token one
    /// (the prompt's speed is the same); its answers agree with llama.cpp as closely as f32's.
    pub fn kv_cache_f16(mut self, on: bool) -> LocalOptions {
        self.kv_f16 = on;
        self
    }

    /// The key/value cache's element type.
    pub(crate) fn kv_cache_dtype(&self) -> candle_core::DType {
        if self.kv_f16 {
            candle_core::DType::F16
        } else {
            candle_core::DType::F32
        }
    }

    /// The thread count that will be used.
    pub fn get_threads(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}
