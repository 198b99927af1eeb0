//! The `gemma3` family: Gemma 3 text models (270M, 1B, 4B, 12B, 27B).
//!
//! As llama.cpp runs them: token embeddings scaled by √width; NEOX rope; Q/K RMS norms; RMS
//! norms of the attention and FFN outputs before their residual adds; GELU(tanh)-gated FFN;
//! a head size from `attention.key_length`. Five of every six layers attend through a sliding
//! window (`attention.sliding_window` positions, the query's own included) with rope base
//! 10000 and no scaling; every sixth layer (index 5, 11, …) is global, with `rope.freq_base`
//! and the file's linear rope scaling. Q·Kᵀ is scaled by 1/√head_size, except on the 27B
//! (62 layers), scaled by 1/√(width / heads) like Google's `query_pre_attn_scalar`. The norm
//! weights already hold Gemma's `1 + w` (the converter adds the one).

use super::decoder::{Activation, Fusion, LayerKind, RopeFreqs, RopeStyle, Spec, Traits};
use crate::gguf::Meta;

const TRAITS: Traits = Traits {
    family: "gemma3",
    rope_style: RopeStyle::Neox,
    activation: Activation::GeluTanh,
    qkv: Fusion::Separate,
    gate_up: Fusion::Separate,
    qkv_bias: false,
    qk_norm: true,
    post_norms: true,
    freq_factors: None,
};

/// Every `PATTERN`-th layer is global, the others slide.
const PATTERN: usize = 6;
/// The rope base of the sliding layers.
const LOCAL_BASE: f32 = 10_000.0;

/// Reads a gemma3 model's shape from its metadata.
pub(super) fn spec(meta: Meta<'_>, arch: &str) -> Result<Spec, String> {
    let mut spec = Spec::read(meta, arch, TRAITS)?;
    let key = format!("{arch}.attention.sliding_window");
    let window =
        meta.u32(&key).map(|w| w as usize).filter(|w| *w > 0).ok_or_else(|| format!("no usable `{key}` metadata"))?;
    spec.ropes.push(RopeFreqs { base: LOCAL_BASE, scale: 1.0, factors: None });
    for (i, layer) in spec.layers.iter_mut().enumerate() {
        if i % PATTERN < PATTERN - 1 {
            *layer = LayerKind { rope: 1, window: Some(window) };
        }
    }
    spec.embedding_scale = Some((spec.dim as f32).sqrt() as f64);
    if spec.layers.len() == 62 {
        spec.attention_scale = 1.0 / ((spec.dim / spec.heads) as f64).sqrt();
    }
    Ok(spec)
}
