//! Reading a GGUF file's header: typed access to its metadata.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use mamba_backends::{Error, ErrorKind};

/// Typed look-ups in a GGUF file's metadata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a>(pub(crate) &'a HashMap<String, Value>);

impl<'a> Meta<'a> {
    pub(crate) fn str(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).and_then(|v| v.to_string().ok()).map(String::as_str)
    }

    pub(crate) fn u32(&self, key: &str) -> Option<u32> {
        let value = self.0.get(key)?;
        value
            .to_u32()
            .ok()
            .or_else(|| value.to_i32().ok().and_then(|v| u32::try_from(v).ok()))
            .or_else(|| value.to_u64().ok().and_then(|v| u32::try_from(v).ok()))
    }

    pub(crate) fn f32(&self, key: &str) -> Option<f32> {
        let value = self.0.get(key)?;
        value.to_f32().ok().or_else(|| value.to_f64().ok().map(|v| v as f32))
    }

    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        self.0.get(key).and_then(|v| v.to_bool().ok())
    }

    pub(crate) fn array(&self, key: &str) -> Option<&'a Vec<Value>> {
        self.0.get(key).and_then(|v| v.to_vec().ok())
    }

    /// A required key, or an `Unsupported` error naming it.
    pub(crate) fn require<T>(&self, key: &str, value: Option<T>) -> Result<T, Error> {
        value.ok_or_else(|| Error::new(ErrorKind::Unsupported, format!("the GGUF file has no usable `{key}` metadata")))
    }
}

/// What the header of a GGUF file says about the model (cheap: the tensors are not read).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GgufInfo {
    /// `general.name`, else the file stem.
    pub name: String,
    /// `general.architecture` (`llama`, `qwen2`, …).
    pub architecture: String,
    /// `<arch>.context_length`, the context the model was trained for.
    pub context_length: Option<u32>,
    /// The quantisation as llama.cpp names it (`Q4_K_M`, `F16`, …) from `general.file_type`.
    pub file_type: Option<String>,
}

/// llama.cpp's names of `general.file_type` values (its `llama_ftype`); the gaps are retired
/// types.
const FILE_TYPES: &[(u32, &str)] = &[
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (7, "Q8_0"),
    (8, "Q5_0"),
    (9, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K_S"),
    (12, "Q3_K_M"),
    (13, "Q3_K_L"),
    (14, "Q4_K_S"),
    (15, "Q4_K_M"),
    (16, "Q5_K_S"),
    (17, "Q5_K_M"),
    (18, "Q6_K"),
    (19, "IQ2_XXS"),
    (20, "IQ2_XS"),
    (21, "Q2_K_S"),
    (22, "IQ3_XS"),
    (23, "IQ3_XXS"),
    (24, "IQ1_S"),
    (25, "IQ4_NL"),
    (26, "IQ3_S"),
    (27, "IQ3_M"),
    (28, "IQ2_S"),
    (29, "IQ2_M"),
    (30, "IQ4_XS"),
    (31, "IQ1_M"),
    (32, "BF16"),
    (36, "TQ1_0"),
    (37, "TQ2_0"),
    (38, "MXFP4_MOE"),
];

/// The name of a `general.file_type` value (`type-N` for one this table does not know).
pub(crate) fn file_type_name(value: u32) -> String {
    FILE_TYPES.iter().find(|(v, _)| *v == value).map_or_else(|| format!("type-{value}"), |(_, n)| (*n).to_owned())
}

impl GgufInfo {
    pub(crate) fn from_meta(meta: Meta<'_>, path: &Path) -> GgufInfo {
        let architecture = meta.str("general.architecture").unwrap_or("unknown").to_owned();
        let name = meta.str("general.name").filter(|n| !n.trim().is_empty()).map(str::to_owned).unwrap_or_else(|| {
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "local".to_owned())
        });
        let context_length = meta.u32(&format!("{architecture}.context_length"));
        // llama.cpp marks a type chosen by guessing with 1024 added; the name is the same.
        let file_type = meta.u32("general.file_type").map(|t| file_type_name(t & !1024));
        GgufInfo { name, architecture, context_length, file_type }
    }
}

/// Opens a GGUF file and reads its header.
pub(crate) fn open(path: &Path) -> Result<(BufReader<File>, Content), Error> {
    let file = File::open(path).map_err(|e| {
        Error::new(ErrorKind::Config, format!("cannot open the model file {}: {e}", path.display())).with_source(e)
    })?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("{} is not a readable GGUF model file: {}", path.display(), crate::one_line(&e)),
        )
        .with_source(e)
    })?;
    Ok((reader, content))
}

/// Reads the header of the GGUF file at `path`: the model's name, architecture and context length.
///
/// # Errors
/// `ErrorKind::Config` when the file cannot be opened or is not GGUF.
pub fn gguf_metadata(path: impl AsRef<Path>) -> Result<GgufInfo, Error> {
    let path = path.as_ref();
    let (_, content) = open(path)?;
    Ok(GgufInfo::from_meta(Meta(&content.metadata), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_are_named_as_llama_cpp_names_them() {
        assert_eq!(file_type_name(15), "Q4_K_M");
        assert_eq!(file_type_name(2), "Q4_0");
        assert_eq!(file_type_name(32), "BF16");
        assert_eq!(file_type_name(4), "type-4");
    }
}
