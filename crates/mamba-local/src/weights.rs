//! Reading weight tensors out of a GGUF file, into the form each matrix's kernel wants.
//!
//! Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 run on our own kernels ([`crate::linear`]), read straight
//! from the file; k-quants and float formats run on candle's. Nothing is converted at load any
//! more: earlier versions requantized Q4_1, Q5_0 and Q5_1 to Q8_0 (candle's kernels for them are
//! scalar), which cost memory, load time and exactness against llama.cpp.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};

use crate::linear::{Linear, QuantMatrix};
use candle_core::{Device, Tensor};

/// Tensor reader over one open GGUF file.
#[derive(Debug)]
pub(crate) struct Weights<'a> {
    pub(crate) content: &'a Content,
    reader: &'a mut BufReader<File>,
    /// Names of the tensors read so far, to find the ones a model does not use.
    used: HashSet<String>,
}

/// Several matrices with the same input applied together: stacked into one matmul when their
/// formats allow it, else kept apart (a Q4_K_M file mixes Q4_K and Q6_K: requantizing both to
/// one format would cost speed or exactness).
#[derive(Debug)]
pub(crate) enum Group {
    /// One matrix whose output rows are the parts, of these widths, one after the other.
    Stacked(Linear, Vec<usize>),
    /// One matrix per part.
    Apart(Vec<Linear>),
}

impl Group {
    /// The output of each part for input `x` (`(…, in)` to `(…, width)` each).
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        match self {
            Group::Stacked(m, widths) => {
                let out = m.forward(x)?;
                let mut start = 0;
                let mut parts = Vec::with_capacity(widths.len());
                for &width in widths {
                    parts.push(out.narrow(candle_core::D::Minus1, start, width)?);
                    start += width;
                }
                Ok(parts)
            }
            Group::Apart(ms) => ms.iter().map(|m| m.forward(x)).collect(),
        }
    }
}

impl<'a> Weights<'a> {
    pub(crate) fn new(content: &'a Content, reader: &'a mut BufReader<File>) -> Weights<'a> {
        Weights { content, reader, used: HashSet::new() }
    }

    /// The file's tensors not read so far, sorted.
    pub(crate) fn unused(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.content.tensor_infos.keys().map(String::as_str).filter(|n| !self.used.contains(*n)).collect();
        names.sort_unstable();
        names
    }

    /// True when the file has a tensor of that name.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// A tensor as stored.
    pub(crate) fn raw(&mut self, name: &str) -> candle_core::Result<QTensor> {
        if !self.has(name) {
            return Err(candle_core::Error::Msg(format!("the file has no `{name}` tensor")));
        }
        self.used.insert(name.to_owned());
        self.content.tensor(self.reader, name, &Device::Cpu)
    }

    /// Where and what a tensor is in the file.
    fn info(&self, name: &str) -> candle_core::Result<&'a TensorInfo> {
        let content: &'a Content = self.content;
        content
            .tensor_infos
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("the file has no `{name}` tensor")))
    }

    /// The stored bytes of a tensor, read straight from the file into one buffer (candle's
    /// reader copies them a second time).
    fn bytes(&mut self, name: &str) -> candle_core::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let info = self.info(name)?;
        let (elements, block) = (info.shape.elem_count(), info.ggml_dtype.block_size());
        if elements % block != 0 {
            return Err(candle_core::Error::Msg(format!(
                "`{name}` has {elements} values, not a whole number of {:?} blocks",
                info.ggml_dtype
            )));
        }
        let size = elements / block * info.ggml_dtype.type_size();
        let start = self.content.tensor_data_offset.saturating_add(info.offset);
        let file_size = self.reader.seek(SeekFrom::End(0))?;
        if (size as u64) > file_size.saturating_sub(start) {
            return Err(candle_core::Error::Msg(format!(
                "`{name}` needs {size} bytes at offset {start}, past the end of the file ({file_size} bytes): truncated?"
            )));
        }
        let mut bytes = vec![0u8; size];
        self.reader.seek(SeekFrom::Start(start))?;
        self.reader.read_exact(&mut bytes)?;
        self.used.insert(name.to_owned());
        Ok(bytes)
    }

    /// The shape (rows, cols) and format of a matrix.
    fn matrix_info(&self, name: &str) -> candle_core::Result<((usize, usize), GgmlDType)> {
        let info = self.info(name)?;
        Ok((info.shape.dims2()?, info.ggml_dtype))
    }

    /// A matrix in a format of our own kernels, read straight from the file (`None`, with
    /// nothing read, for any other format).
    pub(crate) fn quant(&mut self, name: &str) -> candle_core::Result<Option<Arc<QuantMatrix>>> {
        let ((rows, cols), dtype) = self.matrix_info(name)?;
        if !QuantMatrix::handles(dtype) {
            return Ok(None);
        }
        let bytes = self.bytes(name)?;
        QuantMatrix::from_bytes(dtype, rows, cols, bytes).map(|m| Some(Arc::new(m))).ok_or_else(|| {
            candle_core::Error::Msg(format!("`{name}` ({rows}×{cols} {dtype:?}) has a shape no kernel takes"))
        })
    }

    /// A matrix ready to apply: our kernels' formats read straight from the file, the others
    /// through candle.
    pub(crate) fn linear(&mut self, name: &str) -> candle_core::Result<Linear> {
        match self.quant(name)? {
            Some(m) => Ok(Linear::Quant(m)),
            None => Linear::new(self.matrix(name)?),
        }
    }

    /// A small tensor (norm weights) as f32.
    pub(crate) fn f32(&mut self, name: &str) -> candle_core::Result<Tensor> {
        self.raw(name)?.dequantize(&Device::Cpu)
    }

    /// A small tensor (a bias) as a flat f32 vector.
    pub(crate) fn vector(&mut self, name: &str) -> candle_core::Result<Tensor> {
        self.f32(name)?.flatten_all()
    }

    /// Matrices applied to the same input: [`stacked`](Self::stacked) when they share a format,
    /// else apart (a Q4_K_M file mixes Q4_K and Q6_K).
    pub(crate) fn group(&mut self, names: &[&str]) -> candle_core::Result<Group> {
        let infos = names.iter().map(|n| self.info(n)).collect::<candle_core::Result<Vec<_>>>()?;
        let dtype = infos[0].ggml_dtype;
        // Shapes read from GGUF are (rows, cols): a part's output width is its row count.
        let widths: Vec<usize> = infos.iter().map(|i| i.shape.dims().first().copied().unwrap_or(0)).collect();
        if infos.iter().all(|i| i.ggml_dtype == dtype) {
            return Ok(Group::Stacked(self.stacked(names)?, widths));
        }
        let parts = names.iter().map(|n| self.linear(n)).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Group::Apart(parts))
    }

    /// One matrix whose output rows are several parts (phi3's fused Q/K/V and gate/up).
    pub(crate) fn split(&mut self, name: &str, widths: &[usize]) -> candle_core::Result<Group> {
        let ((rows, _), _) = self.matrix_info(name)?;
        if rows != widths.iter().sum::<usize>() {
            return Err(candle_core::Error::Msg(format!(
                "`{name}` has {rows} rows where the metadata gives {}",
                widths.iter().sum::<usize>()
            )));
        }
        Ok(Group::Stacked(self.linear(name)?, widths.to_vec()))
    }

    /// A matrix as candle holds it.
    pub(crate) fn matrix(&mut self, name: &str) -> candle_core::Result<Arc<QTensor>> {
        Ok(Arc::new(self.raw(name)?))
    }

    /// Several matrices of one format with the same input size stacked by rows into one, so
    /// that one matmul computes them all (Q, K and V; gate and up).
    pub(crate) fn stacked(&mut self, names: &[&str]) -> candle_core::Result<Linear> {
        let infos = names.iter().map(|n| self.matrix_info(n)).collect::<candle_core::Result<Vec<_>>>()?;
        let ((_, cols), dtype) = infos[0];
        if !infos.iter().all(|&((_, c), d)| c == cols && d == dtype) {
            return Err(candle_core::Error::Msg(format!("{names:?} differ in format or width: they do not stack")));
        }
        let rows = infos.iter().map(|((r, _), _)| r).sum();
        if matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16) {
            let dense = names.iter().map(|n| self.f32(n)).collect::<candle_core::Result<Vec<_>>>()?;
            return Ok(Linear::Candle(QMatMul::Tensor(Tensor::cat(&dense, 0)?)));
        }
        // Rows are whole blocks: the parts' bytes one after the other are the stacked matrix.
        let mut bytes = Vec::new();
        for n in names {
            bytes.extend(self.bytes(n)?);
        }
        if QuantMatrix::handles(dtype) {
            return QuantMatrix::from_bytes(dtype, rows, cols, bytes)
                .map(|m| Linear::Quant(Arc::new(m)))
                .ok_or_else(|| candle_core::Error::Msg(format!("{names:?} do not stack")));
        }
        let stacked = QTensor::new(QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype)?, (rows, cols))?;
        Linear::new(Arc::new(stacked))
    }
}
