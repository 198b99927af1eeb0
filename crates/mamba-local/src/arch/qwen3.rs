//! The `qwen3` family: dense Qwen3 models.
//!
//! NEOX rope, no Q/K/V biases, a per-head RMS norm of Q and K before rope (`attn_q_norm`,
//! `attn_k_norm`), and a head size (`attention.key_length`) that need not be width / heads.

use super::decoder::{Activation, Fusion, RopeStyle, Spec, Traits};
use crate::gguf::Meta;

const TRAITS: Traits = Traits {
    family: "qwen3",
    rope_style: RopeStyle::Neox,
    activation: Activation::Silu,
    qkv: Fusion::Separate,
    gate_up: Fusion::Separate,
    qkv_bias: false,
    qk_norm: true,
    post_norms: false,
    freq_factors: None,
};

/// Reads a qwen3 model's shape from its metadata.
pub(super) fn spec(meta: Meta<'_>, arch: &str) -> Result<Spec, String> {
    Spec::read(meta, arch, TRAITS)
}
