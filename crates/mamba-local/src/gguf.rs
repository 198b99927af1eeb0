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
}

impl GgufInfo {
    pub(crate) fn from_meta(meta: Meta<'_>, path: &Path) -> GgufInfo {
        let architecture = meta.str("general.architecture").unwrap_or("unknown").to_owned();
        let name = meta.str("general.name").filter(|n| !n.trim().is_empty()).map(str::to_owned).unwrap_or_else(|| {
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "local".to_owned())
        });
        let context_length = meta.u32(&format!("{architecture}.context_length"));
        GgufInfo { name, architecture, context_length }
    }
}

/// Opens a GGUF file and reads its header.
pub(crate) fn open(path: &Path) -> Result<(BufReader<File>, Content), Error> {
    let file = File::open(path).map_err(|e| {
        Error::new(ErrorKind::Config, format!("cannot open the model file {}: {e}", path.display())).with_source(e)
    })?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| {
        Error::new(ErrorKind::Config, format!("{} is not a readable GGUF model file: {e}", path.display()))
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
