//! Model architectures. Each one is a module implementing [`Architecture`]; [`load`] picks it
//! from `general.architecture` through a table, so a new family (qwen2, gemma, phi3) is a new
//! module plus one table row.

mod llama;

use mamba_backends::{Error, ErrorKind};

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
}

type Loader = fn(&mut Weights<'_>, &str, LoadConfig) -> candle_core::Result<Box<dyn Architecture>>;

const ARCHITECTURES: &[(&str, Loader)] = &[("llama", llama::load)];

/// Loads the architecture named by `general.architecture`.
pub(crate) fn load(weights: &mut Weights<'_>, arch: &str, config: LoadConfig) -> Result<Box<dyn Architecture>, Error> {
    let Some((_, loader)) = ARCHITECTURES.iter().find(|(name, _)| *name == arch) else {
        let known: Vec<&str> = ARCHITECTURES.iter().map(|(n, _)| *n).collect();
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "model architecture `{arch}` is not supported by the built-in engine (supported: {})",
                known.join(", ")
            ),
        ));
    };
    loader(weights, arch, config)
        .map_err(|e| Error::new(ErrorKind::Unsupported, format!("cannot load the `{arch}` model: {e}")).with_source(e))
}
