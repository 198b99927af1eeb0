//! The decoder every family runs, over candle's quantized matmuls, driven by a [`Spec`]: the
//! data a family module reads from its GGUF metadata (widths, rope style and bases, sliding
//! windows, biases, norms, activation). No family is named here.
//!
//! Compared with candle-transformers' `quantized_llama`: Q, K and V are one matmul, gate and up
//! are one matmul (when their formats stack), the key/value cache is allocated once for the
//! whole context instead of being concatenated at every token, grouped-query attention reads
//! the shared K/V heads without copying them, and the token embedding stays quantized and
//! doubles as the output layer when the model ties them. Sliding-window layers keep a
//! full-length cache too (the window is a mask), so a [`KvState`] is uniform across layers.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use candle_nn::ops::{rms_norm, softmax_last_dim};
use candle_nn::rotary_emb::{rope, rope_i};

use super::{attention, Architecture, KvState, LoadConfig};
use crate::gguf::Meta;
use crate::linear::{Linear, QuantMatrix};
use crate::weights::{Group, Weights};

/// How rotary embeddings pair the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RopeStyle {
    /// Adjacent pairs `(2i, 2i + 1)`: llama.cpp's normal rope (the `llama` family).
    Normal,
    /// Halves `(i, i + d/2)`: llama.cpp's NEOX rope (qwen2, qwen3, gemma3, phi3).
    Neox,
}

/// The gated feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activation {
    /// SiLU(gate) · up.
    Silu,
    /// GELU with the tanh approximation (gate) · up, as ggml's `gelu`.
    GeluTanh,
}

/// Where Q/K/V (or gate/up) come from: separate tensors or one fused tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fusion {
    /// `attn_q`, `attn_k`, `attn_v` (`ffn_gate`, `ffn_up`).
    Separate,
    /// `attn_qkv` (`ffn_up` holding gate then up), when the file has it.
    Fused,
}

/// One rotary frequency table: angle = position · `scale` · base^(−2i/d) / factor(i).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RopeFreqs {
    pub(super) base: f32,
    /// Linear position scaling (`1 / rope.scaling.factor`), 1 without scaling.
    pub(super) scale: f32,
    /// Tensor of per-frequency divisors (Llama 3.1's `rope_freqs.weight`) read when present.
    pub(super) factors: Option<&'static str>,
}

/// Per-layer attention kind: which rope table, and the sliding window if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LayerKind {
    pub(super) rope: usize,
    pub(super) window: Option<usize>,
}

/// Everything the decoder needs to know about a model: one family's reading of its metadata.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spec {
    /// The family's name, for errors.
    pub(super) family: &'static str,
    pub(super) dim: usize,
    pub(super) heads: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
    pub(super) ffn: usize,
    pub(super) eps: f32,
    pub(super) rope_style: RopeStyle,
    /// Leading dimensions of each head that rope rotates (`rope.dimension_count`); the others
    /// pass through (Phi-4-mini rotates 96 of 128).
    pub(super) rope_dims: usize,
    /// Rope tables; [`LayerKind::rope`] indexes them.
    pub(super) ropes: Vec<RopeFreqs>,
    /// One entry per layer.
    pub(super) layers: Vec<LayerKind>,
    /// Multiplies Q·Kᵀ.
    pub(super) attention_scale: f64,
    /// Multiplies the token embeddings (Gemma: √dim).
    pub(super) embedding_scale: Option<f64>,
    pub(super) activation: Activation,
    pub(super) qkv: Fusion,
    pub(super) gate_up: Fusion,
    /// `attn_{q,k,v}.bias` (Qwen2).
    pub(super) qkv_bias: bool,
    /// Per-head RMS norms of Q and K before rope (`attn_q_norm`, `attn_k_norm`).
    pub(super) qk_norm: bool,
    /// RMS norms of the attention and FFN outputs before their residual adds (Gemma).
    pub(super) post_norms: bool,
    /// Multiplies rope's cosines and sines (`rope.scaling.attn_factor`, LongRoPE's magnitude
    /// correction; llama.cpp's `attn_factor`), 1 without it.
    pub(super) rope_attn_factor: f32,
    /// The context the model was first trained for (`rope.scaling.original_context_length`):
    /// LongRoPE's long factors apply past it, its short ones up to it.
    pub(super) original_context: Option<usize>,
}

fn bail(message: String) -> candle_core::Error {
    candle_core::Error::Msg(message)
}

impl Spec {
    /// Reads the metadata every family shares under its `arch` prefix; the family's own traits
    /// come from `base` (whose widths are ignored). One layer kind with rope table 0 and no window.
    pub(super) fn read(meta: Meta<'_>, arch: &str, base: Traits) -> Result<Spec, String> {
        let key = |k: &str| format!("{arch}.{k}");
        let need =
            |k: &str| meta.u32(&key(k)).map(|v| v as usize).ok_or_else(|| format!("no usable `{}` metadata", key(k)));
        let dim = need("embedding_length")?;
        let blocks = need("block_count")?;
        let heads = need("attention.head_count")?;
        let kv_heads = meta.u32(&key("attention.head_count_kv")).map_or(heads, |v| v as usize);
        let ffn = need("feed_forward_length")?;
        if meta.u32(&key("expert_count")).is_some_and(|n| n > 0) {
            return Err("mixture-of-experts models are not supported".to_owned());
        }
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || blocks == 0 {
            return Err(format!("inconsistent head counts: {heads} heads, {kv_heads} key/value heads"));
        }
        let head_dim = match meta.u32(&key("attention.key_length")) {
            Some(k) => k as usize,
            None if dim % heads == 0 => dim / heads,
            None => return Err(format!("width {dim} is not a multiple of {heads} heads and no key_length is given")),
        };
        let value_dim = meta.u32(&key("attention.value_length")).map_or(head_dim, |v| v as usize);
        if value_dim != head_dim || head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!("key length {head_dim} and value length {value_dim} are not supported"));
        }
        let rope_dim = meta.u32(&key("rope.dimension_count")).map_or(head_dim, |v| v as usize);
        if rope_dim == 0 || rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(format!("rotary embeddings over {rope_dim} of {head_dim} dimensions are not supported"));
        }
        let eps = meta.f32(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5);
        let base_freq = meta.f32(&key("rope.freq_base")).unwrap_or(10_000.0);
        // As llama.cpp: a scaling factor without a type is linear.
        let factor =
            meta.f32(&key("rope.scaling.factor")).or_else(|| meta.f32(&key("rope.scale_linear"))).filter(|f| *f != 0.0);
        let scale = match meta.str(&key("rope.scaling.type")) {
            None | Some("linear") => factor.map_or(1.0, |f| 1.0 / f),
            Some("none") => 1.0,
            Some(other) => return Err(format!("`{other}` rope scaling is not supported")),
        };
        Ok(Spec {
            family: base.family,
            dim,
            heads,
            kv_heads,
            head_dim,
            ffn,
            eps,
            rope_style: base.rope_style,
            rope_dims: rope_dim,
            ropes: vec![RopeFreqs { base: base_freq, scale, factors: base.freq_factors }],
            layers: vec![LayerKind { rope: 0, window: None }; blocks],
            attention_scale: 1.0 / (head_dim as f64).sqrt(),
            embedding_scale: None,
            activation: base.activation,
            qkv: base.qkv,
            gate_up: base.gate_up,
            qkv_bias: base.qkv_bias,
            qk_norm: base.qk_norm,
            post_norms: base.post_norms,
            rope_attn_factor: meta
                .f32(&key("rope.scaling.attn_factor"))
                .filter(|f| f.is_finite() && *f > 0.0)
                .unwrap_or(1.0),
            original_context: meta.u32(&key("rope.scaling.original_context_length")).map(|v| v as usize),
        })
    }
}

/// A family's fixed traits: its row of data beside the metadata.
#[derive(Debug, Clone, Copy)]
pub(super) struct Traits {
    pub(super) family: &'static str,
    pub(super) rope_style: RopeStyle,
    pub(super) activation: Activation,
    pub(super) qkv: Fusion,
    pub(super) gate_up: Fusion,
    pub(super) qkv_bias: bool,
    pub(super) qk_norm: bool,
    pub(super) post_norms: bool,
    pub(super) freq_factors: Option<&'static str>,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    qkv: Group,
    /// Biases of Q, K and V.
    qkv_bias: Option<[Tensor; 3]>,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    out: Linear,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    gate_up: Group,
    down: Linear,
    post_ffn_norm: Option<Tensor>,
    kind: LayerKind,
    /// `(1, kv_heads, context, head_dim)`, filled up to the current position.
    k_cache: Tensor,
    v_cache: Tensor,
}

/// The token embedding table.
#[derive(Debug)]
enum Embedding {
    /// A format of our kernels (shared with the output layer when the model ties them).
    Quant(Arc<QuantMatrix>),
    /// Any other format, as candle holds it.
    Quantized(Arc<QTensor>),
}

impl Embedding {
    fn lookup(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        match self {
            Embedding::Quant(m) => m.embedding(ids),
            Embedding::Quantized(t) => t.embedding(&Tensor::new(ids, &Device::Cpu)?),
        }
    }
}

#[derive(Debug)]
struct Decoder {
    embedding: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    /// `(cos, sin)` per rope table, `(context, head_dim / 2)` each.
    ropes: Vec<(Tensor, Tensor)>,
    spec: Spec,
    context: usize,
}

/// The rotary angles `(context, dim / 2)` of one table.
fn rope_angles(freqs: &RopeFreqs, factors: Option<&[f32]>, dim: usize, context: usize) -> Vec<f32> {
    let half = dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| {
            let f = 1.0 / freqs.base.powf(2.0 * i as f32 / dim as f32);
            let f = if freqs.scale == 1.0 { f } else { f * freqs.scale };
            match factors.and_then(|d| d.get(i)) {
                Some(d) => f / d,
                None => f,
            }
        })
        .collect();
    let mut angles = Vec::with_capacity(context * half);
    for p in 0..context {
        angles.extend(inv_freq.iter().map(|f| p as f32 * f));
    }
    angles
}

/// LongRoPE's factor tensors: long, then short.
const LONGROPE: [&str; 2] = ["rope_factors_long.weight", "rope_factors_short.weight"];

/// Builds the model a [`Spec`] describes from the file's tensors.
pub(super) fn load(w: &mut Weights<'_>, spec: Spec, config: LoadConfig) -> candle_core::Result<Box<dyn Architecture>> {
    let (heads, kv_heads, hd) = (spec.heads, spec.kv_heads, spec.head_dim);
    let context = config.context;
    let embedding = match w.quant("token_embd.weight")? {
        Some(m) => Embedding::Quant(m),
        None => Embedding::Quantized(w.matrix("token_embd.weight")?),
    };
    // Without an output matrix the model ties it to the embedding: the same weights.
    let output = match &embedding {
        _ if w.has("output.weight") => w.linear("output.weight")?,
        Embedding::Quant(m) => Linear::Quant(m.clone()),
        Embedding::Quantized(t) => Linear::new(t.clone())?,
    };
    let norm = w.f32("output_norm.weight")?;
    let mut ropes = Vec::with_capacity(spec.ropes.len());
    // LongRoPE (Phi-3 128k, Phi-3.5): two factor tensors, the long ones for a context past the
    // original one, as llama.cpp picks them; the other is read and set aside.
    let longrope = match (w.has(LONGROPE[0]), w.has(LONGROPE[1])) {
        (true, true) => {
            let long = context > spec.original_context.unwrap_or(usize::MAX);
            let (used, unused) = if long { (LONGROPE[0], LONGROPE[1]) } else { (LONGROPE[1], LONGROPE[0]) };
            w.raw(unused)?;
            Some(used)
        }
        (false, false) => None,
        _ => return Err(bail(format!("the file has only one of `{}` and `{}`", LONGROPE[0], LONGROPE[1]))),
    };
    for freqs in &spec.ropes {
        let name = freqs.factors.filter(|n| w.has(n)).or(longrope);
        let factors = match name {
            Some(name) => {
                let f = w.vector(name)?.to_vec1::<f32>()?;
                if f.len() != spec.rope_dims / 2 {
                    return Err(bail(format!(
                        "`{name}` has {} factors for {} rotated dimensions",
                        f.len(),
                        spec.rope_dims
                    )));
                }
                Some(f)
            }
            None => None,
        };
        let angles = rope_angles(freqs, factors.as_deref(), spec.rope_dims, context);
        let angles = Tensor::from_vec(angles, (context, spec.rope_dims / 2), &Device::Cpu)?;
        let m = f64::from(spec.rope_attn_factor);
        ropes.push(((angles.cos()? * m)?, (angles.sin()? * m)?));
    }
    let (q_width, kv_width) = (heads * hd, kv_heads * hd);
    let mut layers = Vec::with_capacity(spec.layers.len());
    for (i, kind) in spec.layers.iter().enumerate() {
        let p = |name: &str| format!("blk.{i}.{name}.weight");
        let b = |name: &str| format!("blk.{i}.{name}.bias");
        let qkv = if spec.qkv == Fusion::Fused && w.has(&p("attn_qkv")) {
            w.split(&p("attn_qkv"), &[q_width, kv_width, kv_width])?
        } else {
            w.group(&[&p("attn_q"), &p("attn_k"), &p("attn_v")])?
        };
        let qkv_bias = if spec.qkv_bias {
            Some([w.vector(&b("attn_q"))?, w.vector(&b("attn_k"))?, w.vector(&b("attn_v"))?])
        } else {
            None
        };
        let gate_up = match spec.gate_up {
            Fusion::Fused => w.split(&p("ffn_up"), &[spec.ffn, spec.ffn])?,
            Fusion::Separate => w.group(&[&p("ffn_gate"), &p("ffn_up")])?,
        };
        let optional = |w: &mut Weights<'_>, on: bool, name: &str| on.then(|| w.f32(&p(name))).transpose();
        layers.push(Layer {
            attn_norm: w.f32(&p("attn_norm"))?,
            qkv,
            qkv_bias,
            q_norm: optional(w, spec.qk_norm, "attn_q_norm")?,
            k_norm: optional(w, spec.qk_norm, "attn_k_norm")?,
            out: w.linear(&p("attn_output"))?,
            post_attn_norm: optional(w, spec.post_norms, "post_attention_norm")?,
            ffn_norm: w.f32(&p("ffn_norm"))?,
            gate_up,
            down: w.linear(&p("ffn_down"))?,
            post_ffn_norm: optional(w, spec.post_norms, "post_ffw_norm")?,
            kind: *kind,
            k_cache: Tensor::zeros((1, kv_heads, context, hd), config.kv, &Device::Cpu)?,
            v_cache: Tensor::zeros((1, kv_heads, context, hd), config.kv, &Device::Cpu)?,
        });
    }
    // A vision tower and its projector (`v.*`, `mm.*`: Ollama ships Gemma 3 with them in the
    // same file) do not change the text model: left unread.
    let unused: Vec<&str> = w.unused().into_iter().filter(|n| !n.starts_with("v.") && !n.starts_with("mm.")).collect();
    if !unused.is_empty() {
        let shown: Vec<&str> = unused.iter().take(4).copied().collect();
        let hint = "a variant the built-in engine does not support";
        return Err(bail(format!(
            "the file has tensors the built-in `{}` decoder does not use ({}{}): {hint}",
            spec.family,
            shown.join(", "),
            if unused.len() > shown.len() { ", …" } else { "" }
        )));
    }
    Ok(Box::new(Decoder { embedding, layers, norm, output, ropes, spec, context }))
}

/// The first cached position a query at `pos` (the first of a batch) can see through `window`.
fn window_start(pos: usize, window: Option<usize>) -> usize {
    window.map_or(0, |w| (pos + 1).saturating_sub(w))
}

/// Additive mask for `seq` new positions after `pos` cached ones over the keys `start..pos + seq`
/// (causal, and within `window` positions when set), repeated for the `rep` query heads that
/// share each key/value head: `(rep * seq, pos + seq - start)`.
fn mask(seq: usize, pos: usize, start: usize, window: Option<usize>, rep: usize) -> candle_core::Result<Tensor> {
    let len = pos + seq;
    let mut values = Vec::with_capacity(rep * seq * (len - start));
    for _ in 0..rep {
        for s in 0..seq {
            let q = pos + s;
            values.extend((start..len).map(|j| {
                let hidden = j > q || window.is_some_and(|w| q - j >= w);
                if hidden {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            }));
        }
    }
    Tensor::from_vec(values, (rep * seq, len - start), &Device::Cpu)
}

impl Architecture for Decoder {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
        let seq = tokens.len();
        if seq == 0 || pos + seq > self.context {
            return Err(bail(format!("positions {pos}..{} are outside the context of {}", pos + seq, self.context)));
        }
        let spec = &self.spec;
        let (heads, kv_heads, hd) = (spec.heads, spec.kv_heads, spec.head_dim);
        let rep = heads / kv_heads;
        let q_width = heads * hd;
        let mut x = self.embedding.lookup(tokens)?.unsqueeze(0)?;
        if let Some(s) = spec.embedding_scale {
            x = (x * s)?;
        }
        let ropes = self
            .ropes
            .iter()
            .map(|(cos, sin)| Ok((cos.narrow(0, pos, seq)?, sin.narrow(0, pos, seq)?)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let style = match spec.rope_style {
            RopeStyle::Normal => rope_i,
            RopeStyle::Neox => rope,
        };
        let (rd, pass) = (spec.rope_dims, hd - spec.rope_dims);
        let rotate = |t: &Tensor, cos: &Tensor, sin: &Tensor| {
            if pass == 0 {
                style(t, cos, sin)
            } else {
                let turned = style(&t.narrow(3, 0, rd)?.contiguous()?, cos, sin)?;
                Tensor::cat(&[&turned, &t.narrow(3, rd, pass)?], 3)?.contiguous()
            }
        };
        // One mask per window size in use, made on first need.
        let mut masks: Vec<(Option<usize>, Tensor)> = Vec::new();
        let scale = spec.attention_scale;
        let len = pos + seq;
        for layer in &mut self.layers {
            let h = rms_norm(&x, &layer.attn_norm, spec.eps)?;
            let parts = layer.qkv.forward(&h)?;
            let [q, k, v] = <[Tensor; 3]>::try_from(parts).map_err(|_| bail("Q/K/V of unexpected shape".to_owned()))?;
            let shape = |t: Tensor, bias: Option<&Tensor>, norm: Option<&Tensor>, n: usize| {
                let t = match bias {
                    Some(b) => t.broadcast_add(b)?,
                    None => t,
                };
                let t = t.reshape((1, seq, n, hd))?;
                let t = match norm {
                    Some(w) => rms_norm(&t, w, spec.eps)?,
                    None => t,
                };
                t.transpose(1, 2)?.contiguous()
            };
            let bias = layer.qkv_bias.as_ref();
            let (cos, sin) =
                ropes.get(layer.kind.rope).ok_or_else(|| bail("a layer names no rope table".to_owned()))?;
            let q = rotate(&shape(q, bias.map(|b| &b[0]), layer.q_norm.as_ref(), heads)?, cos, sin)?;
            let k = rotate(&shape(k, bias.map(|b| &b[1]), layer.k_norm.as_ref(), kv_heads)?, cos, sin)?;
            let v = shape(v, bias.map(|b| &b[2]), None, kv_heads)?;
            let kv = layer.k_cache.dtype();
            layer.k_cache.slice_set(&k.to_dtype(kv)?, 2, pos)?;
            layer.v_cache.slice_set(&v.to_dtype(kv)?, 2, pos)?;
            let window = layer.kind.window;
            let start = window_start(pos, window);
            let attn = if seq == 1 {
                let heads = attention::Heads { heads, kv_heads, context: self.context, head_dim: hd };
                attention::one_position(&q, &layer.k_cache, &layer.v_cache, &heads, start..len, scale as f32)?
            } else {
                let k = layer.k_cache.narrow(2, start, len - start)?;
                let v = layer.v_cache.narrow(2, start, len - start)?;
                // The `rep` query heads of a group attend to the same key/value head: view them as
                // one taller query matrix per group instead of copying K and V `rep` times.
                let q = q.reshape((1, kv_heads, rep * seq, hd))?;
                let scores = (q.to_dtype(kv)?.matmul(&k.t()?)?.to_dtype(DType::F32)? * scale)?;
                let m = match masks.iter().find(|(w, _)| *w == window) {
                    Some((_, m)) => m.clone(),
                    None => {
                        let m = mask(seq, pos, start, window, rep)?;
                        masks.push((window, m.clone()));
                        m
                    }
                };
                let scores = scores.broadcast_add(&m)?;
                let attn = softmax_last_dim(&scores)?.to_dtype(kv)?.matmul(&v)?.to_dtype(DType::F32)?;
                attn.reshape((1, heads, seq, hd))?.transpose(1, 2)?.reshape((1, seq, q_width))?
            };
            let attn = layer.out.forward(&attn)?;
            let attn = match &layer.post_attn_norm {
                Some(n) => rms_norm(&attn, n, spec.eps)?,
                None => attn,
            };
            x = (attn + &x)?;
            let h = rms_norm(&x, &layer.ffn_norm, spec.eps)?;
            let [gate, up] = <[Tensor; 2]>::try_from(layer.gate_up.forward(&h)?)
                .map_err(|_| bail("gate/up of unexpected shape".to_owned()))?;
            let gate = match spec.activation {
                Activation::Silu => gate.silu()?,
                Activation::GeluTanh => gate.gelu()?,
            };
            let ffn = layer.down.forward(&(gate * up)?)?;
            let ffn = match &layer.post_ffn_norm {
                Some(n) => rms_norm(&ffn, n, spec.eps)?,
                None => ffn,
            };
            x = (ffn + &x)?;
        }
        let last = x.narrow(1, seq - 1, 1)?;
        let last = rms_norm(&last, &self.norm, spec.eps)?;
        self.output.forward(&last)?.flatten_all()?.to_vec1::<f32>()
    }

    fn reset(&mut self) {
        // Positions past the current one are never read, so the buffers need no clearing.
    }

    fn save(&self, len: usize) -> candle_core::Result<KvState> {
        if len > self.context {
            return Err(bail(format!("cannot save {len} positions of a context of {}", self.context)));
        }
        let layers = self
            .layers
            .iter()
            // A compact copy: `copy` would clone the whole context-long buffer under a narrowed
            // layout (which `slice_set` then refuses on restore).
            .map(|l| {
                Ok((l.k_cache.narrow(2, 0, len)?.force_contiguous()?, l.v_cache.narrow(2, 0, len)?.force_contiguous()?))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(KvState { len, layers })
    }

    fn restore(&mut self, state: &KvState) -> candle_core::Result<()> {
        if state.layers.len() != self.layers.len() || state.len > self.context {
            return Err(bail("a saved key/value state of another model".to_owned()));
        }
        for (layer, (k, v)) in self.layers.iter_mut().zip(&state.layers) {
            if state.len > 0 {
                layer.k_cache.slice_set(k, 2, 0)?;
                layer.v_cache.slice_set(v, 2, 0)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_mask_hides_keys_too_far_back_and_in_the_future() {
        // Two new positions (3, 4) after three cached ones, a window of 2: keys from 2 on.
        let start = window_start(3, Some(2));
        assert_eq!(start, 2);
        let m = mask(2, 3, start, Some(2), 1).unwrap().to_vec2::<f32>().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![vec![0.0, 0.0, inf], vec![inf, 0.0, 0.0]]);
        // Without a window: plain causal over every key, repeated per shared head.
        let m = mask(2, 1, 0, None, 2).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], vec![0.0, 0.0, inf]);
        assert_eq!(m[3], vec![0.0, 0.0, 0.0]);
        assert_eq!(window_start(0, Some(4)), 0);
        assert_eq!(window_start(10, None), 0);
    }

    #[test]
    fn rope_angles_apply_the_base_the_linear_scale_and_the_factors() {
        let plain = RopeFreqs { base: 10_000.0, scale: 1.0, factors: None };
        let a = rope_angles(&plain, None, 4, 3);
        assert_eq!(a.len(), 6);
        assert_eq!(&a[..2], &[0.0, 0.0]);
        assert!((a[2] - 1.0).abs() < 1e-6 && (a[3] - 0.01).abs() < 1e-6);
        let scaled = RopeFreqs { scale: 0.125, ..plain.clone() };
        let b = rope_angles(&scaled, Some(&[1.0, 4.0]), 4, 3);
        assert!((b[4] - 2.0 * 0.125).abs() < 1e-6);
        assert!((b[5] - 2.0 * 0.01 * 0.125 / 4.0).abs() < 1e-7);
    }
}
