//! Loading everything a GGUF file holds: tokenizer, chat template and weights.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;

use mamba_backends::Error;

use crate::arch::{self, Architecture, LoadConfig};
use crate::gguf::{self, GgufInfo, Meta};
use crate::options::{LocalOptions, DEFAULT_CONTEXT};
use crate::template::ChatTemplate;
use crate::tokenizer::Tokenizer;
use crate::weights::{self, Weights};

/// The template for models whose GGUF has none (pretrained models such as Gemma 3 270M):
/// ChatML, llama.cpp's server default.
const CHATML: &str =
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n\
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// A model ready to start.
pub(crate) struct Loaded {
    pub(crate) info: GgufInfo,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) template: ChatTemplate,
    pub(crate) model: Box<dyn Architecture>,
}

/// Which formats a converted copy converts: part of its name, so that a copy made under other
/// rules is never used (v1 converted Q4_1 too, which now has a kernel of its own).
const CONVERSION_RULES: &str = "v2";

/// Where the converted copy of `path` is kept: named after the file, its size, its modification
/// time and the [`CONVERSION_RULES`], so a changed file never uses a stale copy.
fn converted_path(cache_dir: &Path, path: &Path) -> Option<PathBuf> {
    let stat = std::fs::metadata(path).ok()?;
    let modified = stat.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let stem = path.file_stem()?.to_string_lossy();
    Some(cache_dir.join("converted").join(format!("{stem}-{}-{modified}.{CONVERSION_RULES}.q8_0.gguf", stat.len())))
}

/// Opens the file to load weights from: the converted copy when there is one (made now if
/// needed and a cache directory is set), else the file itself.
fn open_weights(path: &Path, options: &LocalOptions) -> Result<(BufReader<File>, Content), Error> {
    let opened = gguf::open(path)?;
    let Some(cached) = options.cache_dir.as_deref().and_then(|dir| converted_path(dir, path)) else {
        return Ok(opened);
    };
    // A copy made under the v1 rules (unversioned name) is never read again: free its space.
    if let Some(name) = cached.file_name().and_then(|n| n.to_str()) {
        let legacy = cached.with_file_name(name.replace(&format!(".{CONVERSION_RULES}."), "."));
        if legacy.is_file() && std::fs::remove_file(&legacy).is_ok() {
            tracing::debug!(path = %legacy.display(), "removed a converted copy made under older rules");
        }
    }
    if !weights::needs_conversion(&opened.1) {
        return Ok(opened);
    }
    if cached.is_file() {
        match gguf::open(&cached) {
            Ok(copy) => return Ok(copy),
            Err(e) => tracing::warn!(path = %cached.display(), error = %e, "ignoring an unreadable converted copy"),
        }
    }
    let (mut reader, content) = opened;
    match weights::write_converted(&content, &mut reader, &cached) {
        Ok(()) => gguf::open(&cached),
        Err(e) => {
            tracing::warn!(path = %cached.display(), error = %e, "cannot keep a converted copy of the weights");
            Ok((reader, content))
        }
    }
}

pub(crate) fn load(path: &Path, options: &LocalOptions) -> Result<Loaded, Error> {
    let (mut reader, content) = open_weights(path, options)?;
    let meta = Meta(&content.metadata);
    let info = GgufInfo::from_meta(meta, path);
    let tokenizer = Tokenizer::from_meta(meta)?;
    let source = options.chat_template.as_deref().or_else(|| meta.str("tokenizer.chat_template")).unwrap_or_else(|| {
        tracing::warn!(path = %path.display(), "the model has no chat template; using ChatML, as llama.cpp's server does");
        CHATML
    });
    let token = |key: &str| meta.u32(key).and_then(|id| tokenizer.token_text(id)).unwrap_or("").to_owned();
    let template =
        ChatTemplate::new(source, &token("tokenizer.ggml.bos_token_id"), &token("tokenizer.ggml.eos_token_id"))?;
    let trained = info.context_length.unwrap_or(DEFAULT_CONTEXT);
    let context = options.context.unwrap_or(DEFAULT_CONTEXT.min(trained)).min(trained).max(1) as usize;
    let mut weights = Weights::new(&content, &mut reader);
    let model =
        arch::load(&mut weights, &info.architecture, path, LoadConfig { context, kv: options.kv_cache_dtype() })?;
    Ok(Loaded { info, tokenizer, template, model })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::{self, Value};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// A GGUF of one 8×64 matrix in `dtype` (no model: enough for the weights' cache).
    fn write(path: &Path, dtype: GgmlDType) {
        let values: Vec<f32> = (0..8 * 64).map(|i| (i as f32 * 0.1).sin()).collect();
        let t = QTensor::quantize(&Tensor::from_vec(values, (8, 64), &Device::Cpu).unwrap(), dtype).unwrap();
        let arch = Value::String("llama".to_owned());
        let mut out = File::create(path).unwrap();
        gguf_file::write(&mut out, &[("general.architecture", &arch)], &[("w", &t)]).unwrap();
    }

    #[test]
    fn only_files_in_slow_formats_get_a_converted_copy_and_old_copies_go() {
        let dir = std::env::temp_dir().join(format!("mamba-local-loader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let options = LocalOptions::new().cache_dir(dir.join("cache"));
        for (dtype, converted) in [(GgmlDType::Q4_1, false), (GgmlDType::Q5_0, true)] {
            let path = dir.join(format!("{dtype:?}.gguf"));
            write(&path, dtype);
            let copy = converted_path(&dir.join("cache"), &path).unwrap();
            let name = copy.file_name().unwrap().to_str().unwrap().replace(&format!(".{CONVERSION_RULES}."), ".");
            let legacy = copy.with_file_name(name);
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::write(&legacy, b"a copy made by an older version").unwrap();

            let (_, content) = open_weights(&path, &options).unwrap();
            let want = if converted { GgmlDType::Q8_0 } else { dtype };
            assert_eq!(content.tensor_infos["w"].ggml_dtype, want, "{dtype:?}");
            assert_eq!(copy.is_file(), converted, "{dtype:?}");
            assert!(!legacy.exists(), "{dtype:?}");
            // The second load reads the copy.
            let (_, again) = open_weights(&path, &options).unwrap();
            assert_eq!(again.tensor_infos["w"].ggml_dtype, want);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
