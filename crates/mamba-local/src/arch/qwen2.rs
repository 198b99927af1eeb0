//! The `qwen2` family: Qwen2 and Qwen2.5 (and their coder/math variants).
//!
//! Like llama with NEOX (half-split) rope and biases on Q, K and V.

use super::decoder::{Activation, Fusion, RopeStyle, Spec, Traits};
use crate::gguf::Meta;

const TRAITS: Traits = Traits {
    family: "qwen2",
    rope_style: RopeStyle::Neox,
    activation: Activation::Silu,
    qkv: Fusion::Separate,
    gate_up: Fusion::Separate,
    qkv_bias: true,
    qk_norm: false,
    post_norms: false,
    freq_factors: None,
};

/// Reads a qwen2 model's shape from its metadata.
pub(super) fn spec(meta: Meta<'_>, arch: &str) -> Result<Spec, String> {
    Spec::read(meta, arch, TRAITS)
}
