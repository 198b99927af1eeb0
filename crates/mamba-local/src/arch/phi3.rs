//! The `phi3` family: Phi-3 and Phi-3.5 mini, Phi-4-mini (rope over the first
//! `rope.dimension_count` dimensions of each head only).
//!
//! NEOX rope, one fused `attn_qkv` matrix (Q rows, then K, then V) and one fused `ffn_up`
//! holding the gate then the up projection (llama.cpp's SwiGLU split). llama.cpp ignores the
//! sliding window the converter writes for phi3, and so does this. The 128k-context variants
//! (Phi-3-mini-128k, Phi-3.5-mini) carry LongRoPE factors (`rope_factors_long`/`_short`) and a
//! magnitude correction (`rope.scaling.attn_factor`), which the decoder applies as llama.cpp
//! does: the long factors for a context past `rope.scaling.original_context_length`.

use super::decoder::{Activation, Fusion, RopeStyle, Spec, Traits};
use crate::gguf::Meta;

const TRAITS: Traits = Traits {
    family: "phi3",
    rope_style: RopeStyle::Neox,
    activation: Activation::Silu,
    qkv: Fusion::Fused,
    gate_up: Fusion::Fused,
    qkv_bias: false,
    qk_norm: false,
    post_norms: false,
    freq_factors: None,
};

/// Reads a phi3 model's shape from its metadata.
pub(super) fn spec(meta: Meta<'_>, arch: &str) -> Result<Spec, String> {
    Spec::read(meta, arch, TRAITS)
}
