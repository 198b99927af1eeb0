//! Weight matrices applied to activations: our own kernels for Q8_0, Q4_0 and Q4_1, candle's
//! `QMatMul` for every other format.
//!
//! candle's CPU path for those formats is slow for the models people run locally: its Q8_0 dot
//! product has one accumulator and converts both f16 scales through a runtime-dispatched call per
//! block, its Q4_1 one is scalar, and its repacked x86 kernels need the input width to be a
//! multiple of 256, which small models miss (SmolLM2's 576, Gemma 3 270M's 640). The kernels here
//! read the blocks where candle loaded them (no copy, no conversion: the weights stay as compact
//! as in the file, which is what generation's speed depends on), compute four output rows per
//! pass with independent accumulators, and run on AVX2 through `pulp` (safe code: the workspace
//! forbids `unsafe`) with a portable loop elsewhere.
//!
//! The activations are quantized as llama.cpp does (Q8_0, plus the scaled sum of Q8_1 for Q4_1),
//! so every block's integer sum is the same as llama.cpp's and only the order of the float
//! additions differs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use half::f16;

/// Values per block in every format here.
const BLOCK: usize = 32;
/// Activation rows computed against one group of four weight rows while those stay in L1.
const ROW_TILE: usize = 8;

/// A matrix in the form its kernel wants.
#[derive(Debug, Clone)]
pub(crate) enum Linear {
    /// Q8_0, Q4_0 or Q4_1 weights through [`QuantMatrix`].
    Quant(Arc<QuantMatrix>),
    /// Everything else through candle.
    Candle(QMatMul),
}

impl Linear {
    /// The kernel for a matrix as loaded: ours for the formats it knows, candle's for the rest.
    pub(crate) fn new(t: Arc<QTensor>) -> candle_core::Result<Linear> {
        match QuantMatrix::new(&t) {
            Some(m) => Ok(Linear::Quant(Arc::new(m))),
            None => Ok(Linear::Candle(QMatMul::from_arc(t)?)),
        }
    }

    /// `(…, in)` to `(…, out)`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(m) => m.forward(x),
            Linear::Quant(m) => {
                let dims = x.dims();
                let k = dims.last().copied().unwrap_or(0);
                if k != m.cols {
                    return Err(candle_core::Error::Msg(format!(
                        "a matrix of {} columns applied to rows of {k}",
                        m.cols
                    )));
                }
                let input = x.flatten_all()?.to_vec1::<f32>()?;
                let out = m.matmul(&input, input.len() / k.max(1))?;
                let mut shape = dims.to_vec();
                if let Some(last) = shape.last_mut() {
                    *last = m.rows;
                }
                Tensor::from_vec(out, shape, &Device::Cpu)
            }
        }
    }
}

/// The block formats with a kernel here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// An f16 scale and 32 signed bytes.
    Q8_0,
    /// An f16 scale and 32 nibbles, value `d * (q - 8)`.
    Q4_0,
    /// An f16 scale, an f16 minimum and 32 nibbles, value `d * q + m`.
    Q4_1,
    /// An f16 scale, 32 high bits and 32 nibbles, value `d * (q - 16)`.
    Q5_0,
    /// An f16 scale, an f16 minimum, 32 high bits and 32 nibbles, value `d * q + m`.
    Q5_1,
}

/// Where a 4- or 5-bit block keeps its parts (the scale is always its first two bytes).
#[derive(Clone, Copy)]
struct Packed {
    /// The f16 minimum's offset (Q4_1, Q5_1).
    min_at: Option<usize>,
    /// The 32 fifth bits' offset (Q5_0, Q5_1).
    high_at: Option<usize>,
    /// The 16 bytes of nibbles' offset.
    qs_at: usize,
    /// Subtracted from every level when there is no minimum (8 or 16).
    offset: u8,
}

impl Packed {
    /// The layout of a block with a minimum (`min`: Q4_1, Q5_1) and with fifth bits (`high`:
    /// Q5_0, Q5_1): after the f16 scale, the minimum, then the fifth bits, then the nibbles.
    /// `const` so that the kernels' per-format instances fold it away.
    const fn layout(min: bool, high: bool) -> Packed {
        let min_at = if min { Some(2) } else { None };
        let high_start = if min { 4 } else { 2 };
        let high_at = if high { Some(high_start) } else { None };
        let qs_at = high_start + if high { 4 } else { 0 };
        let offset = if min {
            0
        } else if high {
            16
        } else {
            8
        };
        Packed { min_at, high_at, qs_at, offset }
    }

    /// Bytes of one block.
    const fn size(self) -> usize {
        self.qs_at + BLOCK / 2
    }

    /// The block's 32 unsigned levels (0..16 or 0..32): low nibbles, then high ones, each with
    /// its fifth bit (bit `i` of the high bits belongs to value `i`).
    #[inline(always)]
    fn levels(self, block: &[u8]) -> [u8; BLOCK] {
        let mut out = [0u8; BLOCK];
        for (j, &q) in block[self.qs_at..self.qs_at + BLOCK / 2].iter().enumerate() {
            out[j] = q & 15;
            out[j + BLOCK / 2] = q >> 4;
        }
        if let Some(at) = self.high_at {
            let high = u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
            for (i, o) in out.iter_mut().enumerate() {
                *o |= (((high >> i) & 1) as u8) << 4;
            }
        }
        out
    }
}

impl Format {
    fn of(dtype: GgmlDType) -> Option<Format> {
        match dtype {
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            GgmlDType::Q4_0 => Some(Format::Q4_0),
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            GgmlDType::Q5_0 => Some(Format::Q5_0),
            GgmlDType::Q5_1 => Some(Format::Q5_1),
            _ => None,
        }
    }

    /// Bytes of one block.
    fn bytes(self) -> usize {
        self.packed().map_or(2 + BLOCK, Packed::size)
    }

    /// The layout of a 4- or 5-bit format (`None` for Q8_0).
    fn packed(self) -> Option<Packed> {
        match self {
            Format::Q8_0 => None,
            Format::Q4_0 => Some(Packed::layout(false, false)),
            Format::Q4_1 => Some(Packed::layout(true, false)),
            Format::Q5_0 => Some(Packed::layout(false, true)),
            Format::Q5_1 => Some(Packed::layout(true, true)),
        }
    }
}

/// A matrix of `rows` outputs of `cols` inputs in one of the [`Format`]s, in GGUF's block layout
/// (row after row, `cols / 32` blocks each), read straight from the file: candle's reader copies
/// each tensor once more after reading it, which doubled the peak memory of a large embedding.
pub(crate) struct QuantMatrix {
    bytes: Vec<u8>,
    format: Format,
    rows: usize,
    cols: usize,
    blocks: usize,
}

/// Activations quantized to Q8_0 (with Q8_1's scaled sums): per row, `blocks` blocks.
struct Activations {
    qs: Vec<[i8; BLOCK]>,
    /// The scale, at f16 precision.
    scales: Vec<f32>,
    /// The scale times the sum of the block's values: with a minimum (Q4_1, Q5_1) at f16
    /// precision (Q8_1's `s`), else the f16 scale times the integer sum (for the exact offset).
    sums: Vec<f32>,
}

/// One activation row of [`Activations`]: its blocks, scales and scaled sums.
#[derive(Clone, Copy)]
struct ActRow<'a> {
    qs: &'a [[i8; BLOCK]],
    scales: &'a [f32],
    sums: &'a [f32],
}

impl Activations {
    /// Row `r` of rows of `blocks` blocks.
    fn row(&self, r: usize, blocks: usize) -> ActRow<'_> {
        let range = r * blocks..(r + 1) * blocks;
        ActRow { qs: &self.qs[range.clone()], scales: &self.scales[range.clone()], sums: &self.sums[range] }
    }
}

/// One 4- or 5-bit block unpacked for reuse across a tile of activation rows: one unsigned
/// byte per level, the scale, and what multiplies the activations' block sum (the minimum, or
/// the scale times minus the offset).
#[derive(Clone, Copy, Default)]
struct Unpacked {
    levels: [u8; BLOCK],
    d: f32,
    c: f32,
}

/// f16 to f32 for every bit pattern: ggml's table, so that a kernel converts a block's scale
/// with one load instead of a runtime-dispatched call (F16C is not part of pulp's AVX2 level).
pub(crate) fn f16_table() -> &'static [f32; 65536] {
    static TABLE: OnceLock<Box<[f32; 65536]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([0f32; 65536]);
        for (bits, v) in table.iter_mut().enumerate() {
            *v = f16::from_bits(bits as u16).to_f32();
        }
        table
    })
}

impl std::fmt::Debug for QuantMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantMatrix")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl QuantMatrix {
    /// True when matrices of `dtype` have a kernel here.
    pub(crate) fn handles(dtype: GgmlDType) -> bool {
        Format::of(dtype).is_some()
    }

    /// The matrix of `rows × cols` values stored as `bytes` in `dtype` (`None` when the format
    /// has no kernel here or the sizes do not match).
    pub(crate) fn from_bytes(dtype: GgmlDType, rows: usize, cols: usize, bytes: Vec<u8>) -> Option<QuantMatrix> {
        let format = Format::of(dtype)?;
        if cols % BLOCK != 0 || rows == 0 {
            return None;
        }
        let blocks = cols / BLOCK;
        (bytes.len() == rows * blocks * format.bytes()).then_some(QuantMatrix { bytes, format, rows, cols, blocks })
    }

    /// The matrix of a two-dimensional candle tensor in a known format (a copy of its bytes).
    fn new(tensor: &QTensor) -> Option<QuantMatrix> {
        Format::of(tensor.dtype())?;
        let (rows, cols) = tensor.shape().dims2().ok()?;
        QuantMatrix::from_bytes(tensor.dtype(), rows, cols, tensor.data().ok()?.into_owned())
    }

    /// Rows `ids` of the matrix as f32, a `(ids.len(), cols)` tensor (an embedding lookup).
    pub(crate) fn embedding(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let data = &self.bytes;
        let table = f16_table();
        let row_bytes = self.blocks * self.format.bytes();
        let mut out = Vec::with_capacity(ids.len() * self.cols);
        for &id in ids {
            let id = id as usize;
            if id >= self.rows {
                return Err(candle_core::Error::Msg(format!("token {id} is outside the vocabulary of {}", self.rows)));
            }
            for block in data[id * row_bytes..(id + 1) * row_bytes].chunks_exact(self.format.bytes()) {
                let d = table[usize::from(u16::from_le_bytes([block[0], block[1]]))];
                match self.format.packed() {
                    None => out.extend(block[2..].iter().map(|&q| f32::from(q as i8) * d)),
                    Some(p) => {
                        let m = p
                            .min_at
                            .map_or(0.0, |at| table[usize::from(u16::from_le_bytes([block[at], block[at + 1]]))]);
                        let offset = i16::from(p.offset);
                        out.extend(p.levels(block).iter().map(|&q| f32::from(i16::from(q) - offset) * d + m));
                    }
                }
            }
        }
        Tensor::from_vec(out, (ids.len(), self.cols), &Device::Cpu)
    }

    /// `m` rows of `cols` inputs (row-major) to `m` rows of `rows` outputs.
    fn matmul(&self, input: &[f32], m: usize) -> candle_core::Result<Vec<f32>> {
        let data = &self.bytes;
        let act = quantize(input, self.blocks, self.format);
        let out: Vec<AtomicU32> = (0..m * self.rows).map(|_| AtomicU32::new(0)).collect();
        let groups = self.rows.div_ceil(4);
        let tiles = m.div_ceil(ROW_TILE);
        let kernel = Kernel { simd: Simd::detect(), table: f16_table(), format: self.format };
        let row_bytes = self.blocks * self.format.bytes();
        let weights = |row: usize| &data[row * row_bytes..(row + 1) * row_bytes];
        let store = |r: usize, first: usize, count: usize, dots: [f32; 4]| {
            for (j, d) in dots.iter().take(count).enumerate() {
                out[r * self.rows + first + j].store(d.to_bits(), Ordering::Relaxed);
            }
        };
        let group_rows = |group: usize| {
            let first = group * 4;
            let count = (self.rows - first).min(4);
            let rows: [&[u8]; 4] = std::array::from_fn(|j| if j < count { weights(first + j) } else { &[] });
            (first, count, rows)
        };
        let pool = candle_core::utils::barrier_pool();
        if m == 1 {
            // Generation streams the weights once: each thread takes one contiguous share of the
            // rows, which the hardware prefetcher follows better than interleaved chunks.
            let threads = pool.n_workers() + 1;
            let share = groups.div_ceil(threads);
            pool.execute(|thread| {
                for group in thread * share..groups.min((thread + 1) * share) {
                    let (first, count, rows) = group_rows(group);
                    store(0, first, count, kernel.dot4(rows, count, act.row(0, self.blocks)));
                }
            });
        } else {
            // Work items are (activation tile, group of four weight rows), tile-major: a worker
            // walking a range keeps one tile of activations in L1 and reads each weight group
            // once per tile. 4- and 5-bit groups are unpacked to one byte per value once per
            // tile rather than once per activation row. Each output element is written by
            // exactly one item.
            let packed = self.format.packed().is_some();
            pool.execute_chunked(tiles * groups, |items| {
                let mut unpacked: [Vec<Unpacked>; 4] = Default::default();
                for item in items {
                    let (tile, group) = (item / groups, item % groups);
                    let (first, count, rows) = group_rows(group);
                    if packed {
                        for (buf, w) in unpacked.iter_mut().zip(rows).take(count) {
                            kernel.unpack(w, self.blocks, buf);
                        }
                    }
                    for r in tile * ROW_TILE..m.min((tile + 1) * ROW_TILE) {
                        let a = act.row(r, self.blocks);
                        let dots = if packed {
                            kernel.dot4_unpacked(&unpacked, count, a)
                        } else {
                            kernel.dot4(rows, count, a)
                        };
                        store(r, first, count, dots);
                    }
                }
            });
        }
        Ok(out.into_iter().map(|v| f32::from_bits(v.into_inner())).collect())
    }
}

/// Quantizes rows of `blocks * 32` values as llama.cpp's `quantize_row_q8_0` / `_q8_1` do: the
/// scale is the largest magnitude over 127, kept at f16 precision, and so is Q8_1's scaled sum.
fn quantize(input: &[f32], blocks: usize, format: Format) -> Activations {
    let n = input.len() / BLOCK;
    debug_assert_eq!(n % blocks.max(1), 0);
    let mut act = Activations { qs: Vec::with_capacity(n), scales: Vec::with_capacity(n), sums: Vec::with_capacity(n) };
    for chunk in input.chunks_exact(BLOCK) {
        let amax = chunk.iter().fold(0f32, |a, &x| a.max(x.abs()));
        let d = amax / 127.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut q = [0i8; BLOCK];
        let mut sum = 0i32;
        for (q, &x) in q.iter_mut().zip(chunk) {
            *q = (x * inverse).round() as i8;
            sum += i32::from(*q);
        }
        act.qs.push(q);
        let scale = f16::from_f32(d).to_f32();
        act.scales.push(scale);
        act.sums.push(match format {
            Format::Q4_1 | Format::Q5_1 => f16::from_f32(sum as f32 * d).to_f32(),
            Format::Q4_0 | Format::Q5_0 | Format::Q8_0 => sum as f32 * scale,
        });
    }
    act
}

/// The instruction set the dot products run on.
#[derive(Clone, Copy)]
enum Simd {
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
    Portable,
}

impl Simd {
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            return Simd::Avx2(simd);
        }
        Simd::Portable
    }
}

/// What one matmul's dot products need.
#[derive(Clone, Copy)]
struct Kernel {
    simd: Simd,
    table: &'static [f32; 65536],
    format: Format,
}

impl Kernel {
    /// Unpacks one 4- or 5-bit weight row (`blocks` blocks) into `out`.
    fn unpack(self, w: &[u8], blocks: usize, out: &mut Vec<Unpacked>) {
        out.clear();
        out.resize(blocks, Unpacked::default());
        let Some(p) = self.format.packed() else { return };
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(simd) => simd.vectorize(avx2::Unpack { simd, table: self.table, format: self.format, w, out }),
            _ => {
                for (u, block) in out.iter_mut().zip(w.chunks_exact(self.format.bytes())) {
                    *u = portable::unpack(self.table, p, block);
                }
            }
        }
    }

    /// [`dot4`](Self::dot4) over unpacked rows.
    fn dot4_unpacked(self, rows: &[Vec<Unpacked>; 4], count: usize, a: ActRow<'_>) -> [f32; 4] {
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(simd) if count == 4 => simd.vectorize(avx2::DotUnpacked { simd, rows, a }),
            _ => {
                let mut out = [0f32; 4];
                for (o, w) in out.iter_mut().zip(rows).take(count) {
                    *o = portable::dot_unpacked(w, a);
                }
                out
            }
        }
    }

    /// The dot products of up to four weight rows (the bytes of their blocks; `count` of them)
    /// with one quantized activation row; entries past `count` are zero.
    fn dot4(self, rows: [&[u8]; 4], count: usize, a: ActRow<'_>) -> [f32; 4] {
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(simd) if count == 4 => {
                // A struct rather than a closure: `vectorize` only compiles for AVX2 what is
                // inlined into it, and a closure's call shim was not always inlined.
                simd.vectorize(avx2::Dot4 { simd, table: self.table, format: self.format, rows, a })
            }
            _ => {
                let mut out = [0f32; 4];
                for (o, w) in out.iter_mut().zip(rows).take(count) {
                    *o = portable::dot(self.table, self.format, w, a);
                }
                out
            }
        }
    }
}

mod portable {
    use super::{ActRow, Format, Packed, Unpacked};

    /// One block unpacked.
    pub(super) fn unpack(table: &[f32; 65536], p: Packed, block: &[u8]) -> Unpacked {
        let d = table[usize::from(u16::from_le_bytes([block[0], block[1]]))];
        let c = match p.min_at {
            Some(at) => table[usize::from(u16::from_le_bytes([block[at], block[at + 1]]))],
            None => -f32::from(p.offset) * d,
        };
        Unpacked { levels: p.levels(block), d, c }
    }

    /// One dot product over an unpacked row.
    pub(super) fn dot_unpacked(w: &[Unpacked], a: ActRow<'_>) -> f32 {
        let ActRow { qs: a, scales: ad, sums: asum } = a;
        let mut total = 0f32;
        for (((u, ab), &da), &sa) in w.iter().zip(a).zip(ad).zip(asum) {
            let int: i32 = u.levels.iter().zip(ab).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
            total += int as f32 * (u.d * da) + u.c * sa;
        }
        total
    }

    /// One dot product in plain Rust: the same integer sums per block as the SIMD kernels.
    pub(super) fn dot(table: &[f32; 65536], format: Format, w: &[u8], a: ActRow<'_>) -> f32 {
        let ActRow { qs: a, scales: ad, sums: asum } = a;
        let mut total = 0f32;
        for (((block, ab), &da), &sa) in w.chunks_exact(format.bytes()).zip(a).zip(ad).zip(asum) {
            let d = table[usize::from(u16::from_le_bytes([block[0], block[1]]))];
            total += match format.packed() {
                None => {
                    let int: i32 = block[2..].iter().zip(ab).map(|(&x, &y)| i32::from(x as i8) * i32::from(y)).sum();
                    int as f32 * (d * da)
                }
                Some(p) => {
                    let int: i32 = p.levels(block).iter().zip(ab).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
                    let correction = match p.min_at {
                        Some(at) => table[usize::from(u16::from_le_bytes([block[at], block[at + 1]]))] * sa,
                        None => -f32::from(p.offset) * d * sa,
                    };
                    int as f32 * (d * da) + correction
                }
            };
        }
        total
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ActRow, Format, Packed, Unpacked};
    use pulp::x86::V3;
    use std::arch::x86_64::{__m128i, __m256, __m256i};

    /// Four rows against one activation row, run by [`V3::vectorize`].
    pub(super) struct Dot4<'a> {
        pub(super) simd: V3,
        pub(super) table: &'static [f32; 65536],
        pub(super) format: Format,
        pub(super) rows: [&'a [u8]; 4],
        pub(super) a: ActRow<'a>,
    }

    impl pulp::NullaryFnOnce for Dot4<'_> {
        type Output = [f32; 4];

        #[inline(always)]
        fn call(self) -> [f32; 4] {
            let Dot4 { simd, table, format, rows, a } = self;
            match format {
                Format::Q8_0 => q8_0(simd, table, rows, a),
                Format::Q4_0 => packed::<false, false>(simd, table, rows, a),
                Format::Q4_1 => packed::<true, false>(simd, table, rows, a),
                Format::Q5_0 => packed::<false, true>(simd, table, rows, a),
                Format::Q5_1 => packed::<true, true>(simd, table, rows, a),
            }
        }
    }

    fn hsum(v: __m256) -> f32 {
        let l: [f32; 8] = pulp::cast(v);
        ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
    }

    /// Each row's lanes summed, plus its scalar part (offsets, minimums).
    #[inline(always)]
    fn finish(acc: [__m256; 4], extra: [f32; 4]) -> [f32; 4] {
        let mut out = acc.map(hsum);
        for (o, e) in out.iter_mut().zip(extra) {
            *o += e;
        }
        out
    }

    #[inline(always)]
    fn scale(table: &[f32; 65536], lo: u8, hi: u8) -> f32 {
        table[usize::from(u16::from_le_bytes([lo, hi]))]
    }

    /// Q8_0 rows: per block, the sign trick turns signed-by-signed byte products into
    /// `maddubs`' unsigned-by-signed ones (|w| · a·sign(w)); pairs are summed to i32, converted
    /// and scaled into one accumulator per row.
    #[inline(always)]
    pub(super) fn q8_0(simd: V3, table: &[f32; 65536], rows: [&[u8]; 4], a: ActRow<'_>) -> [f32; 4] {
        let ActRow { qs: a, scales: ad, .. } = a;
        let ones = simd.avx._mm256_set1_epi16(1);
        let mut acc = [simd.avx._mm256_setzero_ps(); 4];
        let blocks = rows.map(|r| r.chunks_exact(34));
        let [b0, b1, b2, b3] = blocks;
        for ((((ab, &da), w0), w1), (w2, w3)) in a.iter().zip(ad).zip(b0).zip(b1).zip(b2.zip(b3)) {
            let av: __m256i = pulp::cast(*ab);
            for (acc, w) in acc.iter_mut().zip([w0, w1, w2, w3]) {
                let [d0, d1, qs @ ..] = <[u8; 34]>::try_from(w).unwrap_or([0; 34]);
                let wv: __m256i = pulp::cast(qs);
                let unsigned = simd.avx2._mm256_sign_epi8(wv, wv);
                let signed = simd.avx2._mm256_sign_epi8(av, wv);
                let pairs = simd.avx2._mm256_maddubs_epi16(unsigned, signed);
                let sums = simd.avx._mm256_cvtepi32_ps(simd.avx2._mm256_madd_epi16(pairs, ones));
                *acc = simd.fma._mm256_fmadd_ps(sums, simd.avx._mm256_set1_ps(scale(table, d0, d1) * da), *acc);
            }
        }
        acc.map(hsum)
    }

    /// One weight row unpacked, run by [`V3::vectorize`].
    pub(super) struct Unpack<'a> {
        pub(super) simd: V3,
        pub(super) table: &'static [f32; 65536],
        pub(super) format: Format,
        pub(super) w: &'a [u8],
        pub(super) out: &'a mut [Unpacked],
    }

    impl pulp::NullaryFnOnce for Unpack<'_> {
        type Output = ();

        #[inline(always)]
        fn call(self) {
            let Unpack { simd, table, format, w, out } = self;
            match format {
                Format::Q8_0 => {}
                Format::Q4_0 => unpack::<false, false>(simd, table, w, out),
                Format::Q4_1 => unpack::<true, false>(simd, table, w, out),
                Format::Q5_0 => unpack::<false, true>(simd, table, w, out),
                Format::Q5_1 => unpack::<true, true>(simd, table, w, out),
            }
        }
    }

    /// The levels of one block as 32 bytes (low nibbles, then high ones, with fifth bits).
    #[inline(always)]
    fn levels<const MIN: bool, const HIGH: bool>(simd: V3, w: &[u8]) -> __m256i {
        let p = const { Packed::layout(MIN, HIGH) };
        let qs = <[u8; 16]>::try_from(&w[p.qs_at..p.size()]).unwrap_or([0; 16]);
        let lo: __m128i = pulp::cast(qs);
        let hi = simd.sse2._mm_srli_epi16::<4>(lo);
        let wv = simd.avx2._mm256_and_si256(simd.avx._mm256_set_m128i(hi, lo), simd.avx._mm256_set1_epi8(15));
        match p.high_at {
            Some(at) => {
                let bits = u32::from_le_bytes([w[at], w[at + 1], w[at + 2], w[at + 3]]);
                simd.avx2._mm256_or_si256(wv, fifth_bits(simd, bits))
            }
            None => wv,
        }
    }

    #[inline(always)]
    fn unpack<const MIN: bool, const HIGH: bool>(simd: V3, table: &[f32; 65536], w: &[u8], out: &mut [Unpacked]) {
        let p = const { Packed::layout(MIN, HIGH) };
        let offset = -f32::from(p.offset);
        for (u, block) in out.iter_mut().zip(w.chunks_exact(p.size())) {
            let d = scale(table, block[0], block[1]);
            let c = match p.min_at {
                Some(at) => scale(table, block[at], block[at + 1]),
                None => offset * d,
            };
            *u = Unpacked { levels: pulp::cast(levels::<MIN, HIGH>(simd, block)), d, c };
        }
    }

    /// Four unpacked rows against one activation row, run by [`V3::vectorize`].
    pub(super) struct DotUnpacked<'a> {
        pub(super) simd: V3,
        pub(super) rows: &'a [Vec<Unpacked>; 4],
        pub(super) a: ActRow<'a>,
    }

    impl pulp::NullaryFnOnce for DotUnpacked<'_> {
        type Output = [f32; 4];

        #[inline(always)]
        fn call(self) -> [f32; 4] {
            let DotUnpacked { simd, rows, a } = self;
            let ActRow { qs: a, scales: ad, sums: asum } = a;
            let ones = simd.avx._mm256_set1_epi16(1);
            let mut acc = [simd.avx._mm256_setzero_ps(); 4];
            let mut extra = [0f32; 4];
            let [r0, r1, r2, r3] = rows;
            for (((((ab, &da), &sa), u0), u1), (u2, u3)) in
                a.iter().zip(ad).zip(asum).zip(r0).zip(r1).zip(r2.iter().zip(r3))
            {
                let av: __m256i = pulp::cast(*ab);
                for ((acc, extra), u) in acc.iter_mut().zip(extra.iter_mut()).zip([u0, u1, u2, u3]) {
                    let wv: __m256i = pulp::cast(u.levels);
                    let pairs = simd.avx2._mm256_maddubs_epi16(wv, av);
                    let sums = simd.avx._mm256_cvtepi32_ps(simd.avx2._mm256_madd_epi16(pairs, ones));
                    *acc = simd.fma._mm256_fmadd_ps(sums, simd.avx._mm256_set1_ps(u.d * da), *acc);
                    *extra += u.c * sa;
                }
            }
            finish(acc, extra)
        }
    }

    /// Byte `i` set to 16 where bit `i` of `bits` is set, else 0 (llama.cpp's
    /// `bytes_from_bits_32`: each byte picks its source byte, ORs in all bits but its own, and
    /// compares with all ones).
    #[inline(always)]
    fn fifth_bits(simd: V3, bits: u32) -> __m256i {
        let select: __m256i = pulp::cast([0u64, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303]);
        let spread = simd.avx2._mm256_shuffle_epi8(simd.avx._mm256_set1_epi32(bits as i32), select);
        let others = simd.avx._mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
        let set = simd.avx2._mm256_cmpeq_epi8(simd.avx2._mm256_or_si256(spread, others), simd.avx._mm256_set1_epi8(-1));
        simd.avx2._mm256_and_si256(set, simd.avx._mm256_set1_epi8(16))
    }

    /// 4- and 5-bit rows (`MIN`: the block has a minimum; `HIGH`: it has fifth bits): the levels
    /// are unsigned, so `maddubs` takes them as they are; the offset (8 or 16) or the minimum
    /// comes in through the activations' block sums. The layout is constant per instance, so
    /// the offsets below fold away.
    #[inline(always)]
    pub(super) fn packed<const MIN: bool, const HIGH: bool>(
        simd: V3,
        table: &[f32; 65536],
        rows: [&[u8]; 4],
        a: ActRow<'_>,
    ) -> [f32; 4] {
        let ActRow { qs: a, scales: ad, sums: asum } = a;
        let p = const { Packed::layout(MIN, HIGH) };
        let offset = -f32::from(p.offset);
        let ones = simd.avx._mm256_set1_epi16(1);
        let mut acc = [simd.avx._mm256_setzero_ps(); 4];
        let mut extra = [0f32; 4];
        let [b0, b1, b2, b3] = rows.map(|r| r.chunks_exact(p.size()));
        for (((((ab, &da), &sa), w0), w1), (w2, w3)) in a.iter().zip(ad).zip(asum).zip(b0).zip(b1).zip(b2.zip(b3)) {
            let av: __m256i = pulp::cast(*ab);
            for ((acc, extra), w) in acc.iter_mut().zip(extra.iter_mut()).zip([w0, w1, w2, w3]) {
                let d = scale(table, w[0], w[1]);
                *extra += match p.min_at {
                    Some(at) => scale(table, w[at], w[at + 1]) * sa,
                    None => offset * d * sa,
                };
                let wv = levels::<MIN, HIGH>(simd, w);
                let pairs = simd.avx2._mm256_maddubs_epi16(wv, av);
                let sums = simd.avx._mm256_cvtepi32_ps(simd.avx2._mm256_madd_epi16(pairs, ones));
                *acc = simd.fma._mm256_fmadd_ps(sums, simd.avx._mm256_set1_ps(d * da), *acc);
            }
        }
        finish(acc, extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream (no `rand` in this crate).
    fn values(seed: u32, n: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 20_001) as f32 / 10_000.0 - 1.0
            })
            .collect()
    }

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize, seed: u32) -> Arc<QTensor> {
        let dense = Tensor::from_vec(values(seed, rows * cols), (rows, cols), &Device::Cpu).unwrap();
        Arc::new(QTensor::quantize(&dense, dtype).unwrap())
    }

    const FORMATS: [GgmlDType; 5] =
        [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];

    /// The exact result for quantized activations: each block's integer sum in i64, scaled in f64.
    fn exact(m: &QuantMatrix, input: &[f32], rows: usize) -> Vec<f64> {
        let act = quantize(input, m.blocks, m.format);
        let data = &m.bytes;
        let table = f16_table();
        let bytes = m.format.bytes();
        let mut out = Vec::new();
        for r in 0..rows {
            for o in 0..m.rows {
                let mut total = 0f64;
                for b in 0..m.blocks {
                    let block = &data[(o * m.blocks + b) * bytes..(o * m.blocks + b + 1) * bytes];
                    let d = f64::from(table[usize::from(u16::from_le_bytes([block[0], block[1]]))]);
                    let (i, da, sa) = (
                        r * m.blocks + b,
                        f64::from(act.scales[r * m.blocks + b]),
                        f64::from(act.sums[r * m.blocks + b]),
                    );
                    let a = act.qs[i];
                    let dot = |w: &[i64]| -> i64 { w.iter().zip(a).map(|(&x, y)| x * i64::from(y)).sum() };
                    total += match m.format.packed() {
                        None => {
                            dot(&block[2..].iter().map(|&x| i64::from(x as i8)).collect::<Vec<_>>()) as f64 * d * da
                        }
                        Some(p) => {
                            let levels = p.levels(block).map(i64::from);
                            match p.min_at {
                                Some(at) => {
                                    let mn =
                                        f64::from(table[usize::from(u16::from_le_bytes([block[at], block[at + 1]]))]);
                                    dot(&levels) as f64 * d * da + mn * sa
                                }
                                None => dot(&levels.map(|x| x - i64::from(p.offset))) as f64 * d * da,
                            }
                        }
                    };
                }
                out.push(total);
            }
        }
        out
    }

    /// Every format, for one row (generation) and many (prompts), row counts not a multiple of
    /// four, widths not a multiple of 256: the kernels give the exact block sums (up to float
    /// addition order), and candle's own dequantized matmul agrees to quantization error.
    #[test]
    fn kernels_give_the_exact_block_sums() {
        for dtype in FORMATS {
            for (rows, cols, m) in [(64, 576, 1), (67, 640, 1), (48, 96, 13), (130, 576, 9), (3, 32, 2)] {
                let q = quantized(dtype, rows, cols, rows as u32 + cols as u32);
                let Linear::Quant(ours) = Linear::new(q.clone()).unwrap() else { panic!("{dtype:?} not ours") };
                let input = values(7, m * cols);
                let got = Linear::Quant(ours.clone())
                    .forward(&Tensor::from_vec(input.clone(), (1, m, cols), &Device::Cpu).unwrap())
                    .unwrap();
                assert_eq!(got.dims(), &[1, m, rows]);
                let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let want = exact(&ours, &input, m);
                for (x, y) in got.iter().zip(&want) {
                    assert!(
                        (f64::from(*x) - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "{dtype:?} {rows}x{cols} m={m}: {x} vs {y}"
                    );
                }
                // Against candle's f32 matmul of the dequantized weights: only the activations'
                // quantization differs.
                let dense = q.dequantize(&Device::Cpu).unwrap();
                let x = Tensor::from_vec(input, (m, cols), &Device::Cpu).unwrap();
                let reference = x.matmul(&dense.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (x, y) in got.iter().zip(&reference) {
                    assert!((x - y).abs() <= 0.02 * scale, "{dtype:?} {rows}x{cols}: {x} vs {y} (of {scale})");
                }
            }
        }
    }

    #[test]
    fn the_portable_kernel_equals_the_simd_one() {
        for dtype in FORMATS {
            let q = quantized(dtype, 8, 320, 3);
            let Linear::Quant(m) = Linear::new(q).unwrap() else { panic!("{dtype:?} not ours") };
            let act = quantize(&values(11, 320), m.blocks, m.format);
            let data = &m.bytes;
            let row = m.blocks * m.format.bytes();
            let rows: [&[u8]; 4] = std::array::from_fn(|j| &data[(4 + j) * row..(5 + j) * row]);
            let table = f16_table();
            let simd = Kernel { simd: Simd::detect(), table, format: m.format }.dot4(rows, 4, act.row(0, m.blocks));
            let plain = Kernel { simd: Simd::Portable, table, format: m.format }.dot4(rows, 4, act.row(0, m.blocks));
            for (a, b) in simd.iter().zip(&plain) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{dtype:?}: {a} vs {b}");
            }
            // The prompt path: rows unpacked once, by either kernel, then the same dot products.
            if m.format.packed().is_some() {
                for kernel in [
                    Kernel { simd: Simd::detect(), table, format: m.format },
                    Kernel { simd: Simd::Portable, table, format: m.format },
                ] {
                    let mut unpacked: [Vec<Unpacked>; 4] = Default::default();
                    for (buf, w) in unpacked.iter_mut().zip(rows) {
                        kernel.unpack(w, m.blocks, buf);
                    }
                    for k in [Kernel { simd: Simd::detect(), ..kernel }, Kernel { simd: Simd::Portable, ..kernel }] {
                        let dots = k.dot4_unpacked(&unpacked, 4, act.row(0, m.blocks));
                        for (a, b) in dots.iter().zip(&plain) {
                            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{dtype:?} unpacked: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_embedding_row_is_the_dequantized_row() {
        for dtype in FORMATS {
            let q = quantized(dtype, 5, 64, 9);
            let dense = q.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
            let Linear::Quant(m) = Linear::new(q).unwrap() else { panic!("{dtype:?} not ours") };
            let rows = m.embedding(&[4, 0]).unwrap().to_vec2::<f32>().unwrap();
            for (got, want) in rows.iter().zip([&dense[4], &dense[0]]) {
                for (a, b) in got.iter().zip(want) {
                    assert!((a - b).abs() <= 1e-6, "{dtype:?}: {a} vs {b}");
                }
            }
            assert!(m.embedding(&[5]).is_err());
        }
    }

    #[test]
    fn other_formats_and_shapes_stay_with_candle() {
        assert!(matches!(Linear::new(quantized(GgmlDType::Q4K, 4, 256, 1)).unwrap(), Linear::Candle(_)));
        assert!(matches!(Linear::new(quantized(GgmlDType::Q8_1, 4, 64, 1)).unwrap(), Linear::Candle(_)));
        let vector = Tensor::from_vec(values(2, 64), 64, &Device::Cpu).unwrap();
        assert!(QuantMatrix::new(&QTensor::quantize(&vector, GgmlDType::Q8_0).unwrap()).is_none());
    }
}
