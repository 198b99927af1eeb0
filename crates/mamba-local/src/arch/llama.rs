//! The `llama` family: Llama 2 and 3.x, SmolLM, TinyLlama, Mistral-style dense models.
//!
//! Normal (adjacent-pair) rope, separate Q/K/V, SiLU-gated FFN. Llama 3.1 and later carry their
//! rope scaling as a `rope_freqs.weight` tensor of frequency divisors (the converter computes
//! it from the `llama3` scaling parameters); Llama 3.2 ties the output to the token embedding
//! (no `output.weight`), which the decoder handles for every family.

use super::decoder::{Activation, Fusion, RopeStyle, Spec, Traits};
use crate::gguf::Meta;

const TRAITS: Traits = Traits {
    family: "llama",
    rope_style: RopeStyle::Normal,
    activation: Activation::Silu,
    qkv: Fusion::Separate,
    gate_up: Fusion::Separate,
    qkv_bias: false,
    qk_norm: false,
    post_norms: false,
    freq_factors: Some("rope_freqs.weight"),
};

/// Reads a llama model's shape from its metadata.
pub(super) fn spec(meta: Meta<'_>, arch: &str) -> Result<Spec, String> {
    Spec::read(meta, arch, TRAITS)
}
