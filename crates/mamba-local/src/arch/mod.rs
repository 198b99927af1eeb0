//! Model architectures: one shared decoder ([`decoder`]) implementing [`Architecture`], and one
//! module per family that reads the family's GGUF metadata into the decoder's `Spec`. [`load`]
//! picks the family from `general.architecture` through [`FAMILIES`], so a new family is a
//! module plus one table row.

mod attention;
mod decoder;
mod gemma3;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;
#[cfg(test)]
mod tests;

use std::path::Path;

use mamba_backends::{Error, ErrorKind};

use crate::gguf::Meta;
use crate::weights::Weights;

/// A loaded model with its key/value cache, for one sequence at a time.
pub(crate) trait Architecture: Send {
    /// Feeds `tokens` at positions `pos..pos + tokens.len()` (after the cached ones) and returns
    /// the logits for the next token after the last of them.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> candle_core::Result<Vec<f32>>;

    /// Forgets the cached positions.
    fn reset(&mut self);

    /// A copy of the cached keys and values of positions `0..len`, for the prompt cache.
    fn save(&self, len: usize) -> candle_core::Result<KvState>;

    /// Puts a saved state back: positions `0..state.len` are then cached as when it was saved,
    /// and the next [`forward`](Architecture::forward) goes on at `state.len`.
    fn restore(&mut self, state: &KvState) -> candle_core::Result<()>;
}

/// Saved keys and values of a sequence's first `len` positions: one `(keys, values)` pair per
/// layer, each `(1, kv_heads, len, head_dim)`.
#[derive(Debug, Clone)]
pub(crate) struct KvState {
    pub(crate) len: usize,
    pub(crate) layers: Vec<(candle_core::Tensor, candle_core::Tensor)>,
}

impl KvState {
    /// Memory the state holds, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.layers.iter().map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes()).sum()
    }
}

/// Shape options common to all architectures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadConfig {
    /// Positions the key/value cache holds.
    pub(crate) context: usize,
    /// The key/value cache's element type: F32, or F16 (half the memory; attention's two matrix
    /// products then run in F16, the softmax in F32).
    pub(crate) kv: candle_core::DType,
}

/// Reads a family's metadata (under the `arch` prefix) into the decoder's description.
type SpecReader = fn(Meta<'_>, &str) -> Result<decoder::Spec, String>;

/// The families the built-in engine runs, by `general.architecture`.
const FAMILIES: &[(&str, SpecReader)] = &[
    ("llama", llama::spec),
    ("qwen2", qwen2::spec),
    ("qwen3", qwen3::spec),
    ("gemma3", gemma3::spec),
    ("phi3", phi3::spec),
];

/// Loads the model of the file at `path` (for messages) whose family is `arch`
/// (`general.architecture`); `Unsupported` naming the file, the family and the cause.
pub(crate) fn load(
    weights: &mut Weights<'_>,
    arch: &str,
    path: &Path,
    config: LoadConfig,
) -> Result<Box<dyn Architecture>, Error> {
    let unsupported = |cause: String| {
        Error::new(ErrorKind::Unsupported, format!("cannot run {} (family `{arch}`): {cause}", path.display()))
    };
    let Some((_, read)) = FAMILIES.iter().find(|(name, _)| *name == arch) else {
        let known: Vec<&str> = FAMILIES.iter().map(|(n, _)| *n).collect();
        return Err(unsupported(format!(
            "the built-in engine does not run this model family (it runs: {})",
            known.join(", ")
        )));
    };
    let spec = read(Meta(&weights.content.metadata), arch).map_err(unsupported)?;
    decoder::load(weights, spec, config).map_err(|e| unsupported(crate::one_line(&e)).with_source(e))
}
