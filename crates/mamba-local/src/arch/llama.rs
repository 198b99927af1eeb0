//! The llama architecture (Llama 2/3, SmolLM, TinyLlama, …) over candle's quantized matmuls.
//!
//! Compared with candle-transformers' `quantized_llama`: Q, K and V are one matmul, gate and up
//! are one matmul, the key/value cache is allocated once for the whole context instead of being
//! concatenated at every token, grouped-query attention reads the shared K/V heads without
//! copying them, and the token embedding stays quantized and doubles as the output layer when
//! the model ties them.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::ops::{rms_norm, softmax_last_dim};
use candle_nn::rotary_emb::rope_i;

use super::{Architecture, KvState, LoadConfig};
use crate::gguf::Meta;
use crate::weights::Weights;

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    qkv: QMatMul,
    out: QMatMul,
    ffn_norm: Tensor,
    gate_up: QMatMul,
    down: QMatMul,
    /// `(1, kv_heads, context, head_dim)`, filled up to the current position.
    k_cache: Tensor,
    v_cache: Tensor,
}

#[derive(Debug)]
struct Llama {
    embedding: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ffn: usize,
    eps: f32,
    context: usize,
}

fn bail(message: String) -> candle_core::Error {
    candle_core::Error::Msg(message)
}

/// Loads a llama-family model; `arch` is the metadata prefix (`llama`).
pub(super) fn load(w: &mut Weights<'_>, arch: &str, config: LoadConfig) -> candle_core::Result<Box<dyn Architecture>> {
    let meta = Meta(&w.content.metadata);
    let key = |k: &str| format!("{arch}.{k}");
    let need = |k: &str| meta.u32(&key(k)).map(|v| v as usize).ok_or_else(|| bail(format!("no `{}` metadata", key(k))));
    let dim = need("embedding_length")?;
    let blocks = need("block_count")?;
    let heads = need("attention.head_count")?;
    let kv_heads = meta.u32(&key("attention.head_count_kv")).map_or(heads, |v| v as usize);
    let ffn = need("feed_forward_length")?;
    let eps = meta.f32(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5);
    let theta = meta.f32(&key("rope.freq_base")).unwrap_or(10_000.0);
    if heads == 0 || kv_heads == 0 || dim % heads != 0 || heads % kv_heads != 0 {
        return Err(bail(format!("inconsistent head counts: {heads} heads, {kv_heads} key/value heads, width {dim}")));
    }
    let head_dim = dim / heads;
    let rope_dim = meta.u32(&key("rope.dimension_count")).map_or(head_dim, |v| v as usize);
    if rope_dim != head_dim {
        return Err(bail(format!("partial rotary embeddings ({rope_dim} of {head_dim}) are not supported")));
    }
    let context = config.context;

    let embedding = w.matrix("token_embd.weight")?;
    let output = if w.has("output.weight") {
        QMatMul::from_arc(w.matrix("output.weight")?)?
    } else {
        QMatMul::from_arc(embedding.clone())?
    };
    let norm = w.f32("output_norm.weight")?;
    let mut layers = Vec::with_capacity(blocks);
    for i in 0..blocks {
        let p = |name: &str| format!("blk.{i}.{name}.weight");
        layers.push(Layer {
            attn_norm: w.f32(&p("attn_norm"))?,
            qkv: w.stacked(&[&p("attn_q"), &p("attn_k"), &p("attn_v")])?,
            out: QMatMul::from_arc(w.matrix(&p("attn_output"))?)?,
            ffn_norm: w.f32(&p("ffn_norm"))?,
            gate_up: w.stacked(&[&p("ffn_gate"), &p("ffn_up")])?,
            down: QMatMul::from_arc(w.matrix(&p("ffn_down"))?)?,
            k_cache: Tensor::zeros((1, kv_heads, context, head_dim), DType::F32, &Device::Cpu)?,
            v_cache: Tensor::zeros((1, kv_heads, context, head_dim), DType::F32, &Device::Cpu)?,
        });
    }
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf(2.0 * i as f32 / head_dim as f32)).collect();
    let inv_freq = Tensor::from_vec(inv_freq, (1, half), &Device::Cpu)?;
    let positions = Tensor::arange(0u32, context as u32, &Device::Cpu)?.to_dtype(DType::F32)?.reshape((context, 1))?;
    let angles = positions.matmul(&inv_freq)?;
    Ok(Box::new(Llama {
        embedding,
        layers,
        norm,
        output,
        cos: angles.cos()?,
        sin: angles.sin()?,
        heads,
        kv_heads,
        head_dim,
        ffn,
        eps,
        context,
    }))
}

impl Llama {
    /// Additive causal mask for `seq` new positions after `pos` cached ones, repeated for the
    /// `rep` query heads that share each key/value head: `(rep * seq, pos + seq)`.
    fn mask(seq: usize, pos: usize, rep: usize) -> candle_core::Result<Tensor> {
        let len = pos + seq;
        let mut values = Vec::with_capacity(rep * seq * len);
        for _ in 0..rep {
            for s in 0..seq {
                values.extend((0..len).map(|j| if j > pos + s { f32::NEG_INFINITY } else { 0.0 }));
            }
        }
        Tensor::from_vec(values, (rep * seq, len), &Device::Cpu)
    }
}

impl Architecture for Llama {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
        let seq = tokens.len();
        if seq == 0 || pos + seq > self.context {
            return Err(bail(format!("positions {pos}..{} are outside the context of {}", pos + seq, self.context)));
        }
        let (heads, kv_heads, hd) = (self.heads, self.kv_heads, self.head_dim);
        let rep = heads / kv_heads;
        let (q_width, kv_width) = (heads * hd, kv_heads * hd);
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self.embedding.embedding(&ids)?.unsqueeze(0)?;
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        let mask = if seq > 1 { Some(Self::mask(seq, pos, rep)?) } else { None };
        let scale = 1.0 / (hd as f64).sqrt();
        let len = pos + seq;
        for layer in &mut self.layers {
            let h = rms_norm(&x, &layer.attn_norm, self.eps)?;
            let qkv = layer.qkv.forward(&h)?;
            let split = |start: usize, width: usize, n: usize| {
                qkv.narrow(D::Minus1, start, width)?.reshape((1, seq, n, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = rope_i(&split(0, q_width, heads)?, &cos, &sin)?;
            let k = rope_i(&split(q_width, kv_width, kv_heads)?, &cos, &sin)?;
            let v = split(q_width + kv_width, kv_width, kv_heads)?;
            layer.k_cache.slice_set(&k, 2, pos)?;
            layer.v_cache.slice_set(&v, 2, pos)?;
            let k = layer.k_cache.narrow(2, 0, len)?;
            let v = layer.v_cache.narrow(2, 0, len)?;
            // The `rep` query heads of a group attend to the same key/value head: view them as
            // one taller query matrix per group instead of copying K and V `rep` times.
            let q = q.reshape((1, kv_heads, rep * seq, hd))?;
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let scores = match &mask {
                Some(m) => scores.broadcast_add(m)?,
                None => scores,
            };
            let attn = softmax_last_dim(&scores)?.matmul(&v)?;
            let attn = attn.reshape((1, heads, seq, hd))?.transpose(1, 2)?.reshape((1, seq, q_width))?;
            x = (layer.out.forward(&attn)? + &x)?;
            let h = rms_norm(&x, &layer.ffn_norm, self.eps)?;
            let gate_up = layer.gate_up.forward(&h)?;
            let gate = gate_up.narrow(D::Minus1, 0, self.ffn)?.silu()?;
            let up = gate_up.narrow(D::Minus1, self.ffn, self.ffn)?;
            x = (layer.down.forward(&(gate * up)?)? + &x)?;
        }
        let last = x.narrow(1, seq - 1, 1)?;
        let last = rms_norm(&last, &self.norm, self.eps)?;
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
            .map(|l| {
                Ok((
                    l.k_cache.narrow(2, 0, len)?.contiguous()?.copy()?,
                    l.v_cache.narrow(2, 0, len)?.contiguous()?.copy()?,
                ))
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
