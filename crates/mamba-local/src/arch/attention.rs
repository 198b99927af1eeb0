//! Attention for one new position (every generated token), read straight from the key/value
//! cache.
//!
//! Through candle this is two tiny matmuls per layer (`q · Kᵀ` and `p · V`), each of which packs
//! its operands for the `gemm` crate and asks the OS how many CPUs there are: at 1,000 cached
//! positions that was a quarter of SmolLM2's time per token. Here each query head walks its
//! key/value head's cached rows once: scores, a softmax, the weighted sum of values.

use std::sync::atomic::{AtomicU32, Ordering};

use candle_core::{CpuStorage, Device, Storage, Tensor};

use crate::linear::f16_table;

/// Lanes of the hand-unrolled sums (one AVX2 register of f32; LLVM vectorizes the lane-wise
/// loops, which it cannot do for a plain float reduction).
const LANES: usize = 8;

/// Where one layer's cache and query are.
pub(super) struct Heads {
    /// Query heads.
    pub(super) heads: usize,
    /// Key/value heads (each shared by `heads / kv_heads` query heads).
    pub(super) kv_heads: usize,
    /// Positions the cache holds.
    pub(super) context: usize,
    /// Values per head.
    pub(super) head_dim: usize,
}

/// The attention output `(1, 1, heads * head_dim)` of query `q` (`heads * head_dim` values, heads
/// in order) over cached positions `start..len` of `k_cache` and `v_cache`
/// (`(1, kv_heads, context, head_dim)`, f32 or f16), with scores multiplied by `scale`.
pub(super) fn one_position(
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    shape: &Heads,
    range: std::ops::Range<usize>,
    scale: f32,
) -> candle_core::Result<Tensor> {
    let Heads { heads, kv_heads, context, head_dim } = *shape;
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    if q.len() != heads * head_dim || range.end > context || range.is_empty() || kv_heads == 0 || heads % kv_heads != 0
    {
        return Err(candle_core::Error::Msg("attention over a cache of unexpected shape".to_owned()));
    }
    let (k_storage, k_layout) = k_cache.storage_and_layout();
    let (v_storage, v_layout) = v_cache.storage_and_layout();
    let (Storage::Cpu(k), Storage::Cpu(v)) = (&*k_storage, &*v_storage) else {
        return Err(candle_core::Error::Msg("the key/value cache is not on the CPU".to_owned()));
    };
    let expected = kv_heads * context * head_dim;
    if !k_layout.is_contiguous()
        || !v_layout.is_contiguous()
        || k_layout.start_offset() != 0
        || v_layout.start_offset() != 0
    {
        return Err(candle_core::Error::Msg("the key/value cache is not one contiguous buffer".to_owned()));
    }
    let cache = match (k, v) {
        (CpuStorage::F32(k), CpuStorage::F32(v)) if k.len() == expected && v.len() == expected => Cache::F32(k, v),
        (CpuStorage::F16(k), CpuStorage::F16(v)) if k.len() == expected && v.len() == expected => {
            Cache::F16(k, v, f16_table())
        }
        _ => {
            return Err(candle_core::Error::Msg(format!("a key/value cache of {:?} is not supported", k_cache.dtype())))
        }
    };
    let rep = heads / kv_heads;
    let out: Vec<AtomicU32> = (0..heads * head_dim).map(|_| AtomicU32::new(0)).collect();
    candle_core::utils::barrier_pool().execute_chunked(heads, |hs| {
        let mut scores = vec![0f32; range.len()];
        let mut acc = vec![0f32; head_dim];
        let mut row = vec![0f32; head_dim];
        for h in hs {
            let base = (h / rep) * context * head_dim;
            let query = &q[h * head_dim..(h + 1) * head_dim];
            let job = Head {
                cache: &cache,
                query,
                base,
                dim: head_dim,
                range: range.clone(),
                scale,
                scores: &mut scores,
                acc: &mut acc,
                row: &mut row,
            };
            // Compiled for AVX2 too, so that the lane-wise loops below use its 8-wide registers
            // (a struct, not a closure: `vectorize` compiles for AVX2 only what it inlines).
            #[cfg(target_arch = "x86_64")]
            match pulp::x86::V3::try_new() {
                Some(simd) => simd.vectorize(job),
                None => pulp::NullaryFnOnce::call(job),
            }
            #[cfg(not(target_arch = "x86_64"))]
            pulp::NullaryFnOnce::call(job);
            for (o, &a) in out[h * head_dim..(h + 1) * head_dim].iter().zip(&acc) {
                o.store(a.to_bits(), Ordering::Relaxed);
            }
        }
    });
    let out: Vec<f32> = out.into_iter().map(|v| f32::from_bits(v.into_inner())).collect();
    Tensor::from_vec(out, (1, 1, heads * head_dim), &Device::Cpu)
}

/// The cached keys and values of one layer.
enum Cache<'a> {
    F32(&'a [f32], &'a [f32]),
    F16(&'a [half::f16], &'a [half::f16], &'static [f32; 65536]),
}

impl Cache<'_> {
    /// Cached row (of `dim` values from offset `at`) of the keys, as f32 (into `buf` for f16).
    #[inline(always)]
    fn key<'b>(&'b self, at: usize, dim: usize, buf: &'b mut [f32]) -> &'b [f32] {
        match self {
            Cache::F32(k, _) => &k[at..at + dim],
            Cache::F16(k, _, table) => widen(&k[at..at + dim], table, buf),
        }
    }

    /// The same row of the values.
    #[inline(always)]
    fn value<'b>(&'b self, at: usize, dim: usize, buf: &'b mut [f32]) -> &'b [f32] {
        match self {
            Cache::F32(_, v) => &v[at..at + dim],
            Cache::F16(_, v, table) => widen(&v[at..at + dim], table, buf),
        }
    }
}

/// f16 values as f32, into `buf`.
#[inline(always)]
fn widen<'b>(row: &[half::f16], table: &[f32; 65536], buf: &'b mut [f32]) -> &'b [f32] {
    for (b, x) in buf.iter_mut().zip(row) {
        *b = table[usize::from(x.to_bits())];
    }
    buf
}

/// One query head over its key/value head's positions `range` (cache rows from `base`): the
/// softmax-weighted sum of values, into `acc`; `scores` and `row` are scratch.
struct Head<'a> {
    cache: &'a Cache<'a>,
    query: &'a [f32],
    base: usize,
    dim: usize,
    range: std::ops::Range<usize>,
    scale: f32,
    scores: &'a mut [f32],
    acc: &'a mut [f32],
    row: &'a mut [f32],
}

impl pulp::NullaryFnOnce for Head<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Head { cache, query, base, dim, range, scale, scores, acc, row } = self;
        let mut max = f32::NEG_INFINITY;
        for (s, j) in scores.iter_mut().zip(range.clone()) {
            let key = cache.key(base + j * dim, dim, row);
            *s = dot(query, key) * scale;
            max = max.max(*s);
        }
        let mut total = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        acc.fill(0.0);
        for (&p, j) in scores.iter().zip(range) {
            let value = cache.value(base + j * dim, dim, row);
            for (a, &v) in acc.iter_mut().zip(value) {
                *a += p * v;
            }
        }
        let inverse = 1.0 / total;
        for a in acc.iter_mut() {
            *a *= inverse;
        }
    }
}

/// A dot product summed in [`LANES`] partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::ops::softmax_last_dim;

    /// Against the same attention written with candle's ops, for a grouped-query cache in f32
    /// and f16, over the whole cache and over a window.
    #[test]
    fn one_position_equals_candles_attention() {
        let (heads, kv_heads, context, dim) = (6, 2, 40, 16);
        let values = |n: usize, seed: f32| (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect::<Vec<f32>>();
        let k =
            Tensor::from_vec(values(kv_heads * context * dim, 1.0), (1, kv_heads, context, dim), &Device::Cpu).unwrap();
        let v =
            Tensor::from_vec(values(kv_heads * context * dim, 2.0), (1, kv_heads, context, dim), &Device::Cpu).unwrap();
        let q = Tensor::from_vec(values(heads * dim, 3.0), (1, heads, 1, dim), &Device::Cpu).unwrap();
        let shape = Heads { heads, kv_heads, context, head_dim: dim };
        for dtype in [DType::F32, DType::F16] {
            let (k, v) = (k.to_dtype(dtype).unwrap(), v.to_dtype(dtype).unwrap());
            for range in [0..33, 20..33, 32..33] {
                let got = one_position(&q, &k, &v, &shape, range.clone(), 0.25).unwrap();
                let kk = k.narrow(2, range.start, range.len()).unwrap().to_dtype(DType::F32).unwrap();
                let vv = v.narrow(2, range.start, range.len()).unwrap().to_dtype(DType::F32).unwrap();
                let qq = q.reshape((1, kv_heads, heads / kv_heads, dim)).unwrap();
                let scores = (qq.matmul(&kk.t().unwrap()).unwrap() * 0.25).unwrap();
                let want = softmax_last_dim(&scores).unwrap().matmul(&vv).unwrap();
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(got.len(), want.len());
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{dtype:?} {range:?}: {a} vs {b}");
                }
            }
        }
        assert!(one_position(&q, &k, &v, &shape, 0..41, 1.0).is_err());
    }
}
