//! Loading everything a GGUF file holds: tokenizer, chat template and weights.

use mamba_backends::Error;
use std::path::Path;

use crate::arch::{self, Architecture, LoadConfig};
use crate::gguf::{self, GgufInfo, Meta};
use crate::options::{LocalOptions, DEFAULT_CONTEXT};
use crate::template::ChatTemplate;
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

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

/// Earlier versions kept a Q8_0 copy of files with Q4_1, Q5_0 or Q5_1 weights in the cache
/// directory (`converted/STEM-SIZE-MTIME[.v2].q8_0.gguf`). Those formats now run as stored, so a
/// load removes the copies made for its file: they would never be read again.
fn remove_old_copies(cache_dir: &Path, path: &Path) {
    let Some(copy) = (|| {
        let stat = std::fs::metadata(path).ok()?;
        let modified = stat.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        let stem = path.file_stem()?.to_string_lossy();
        Some(cache_dir.join("converted").join(format!("{stem}-{}-{modified}", stat.len())))
    })() else {
        return;
    };
    for suffix in [".q8_0.gguf", ".v2.q8_0.gguf"] {
        let old = copy.with_file_name(format!("{}{suffix}", copy.file_name().unwrap_or_default().to_string_lossy()));
        if old.is_file() && std::fs::remove_file(&old).is_ok() {
            tracing::debug!(path = %old.display(), "removed a converted copy of the weights made by an older version");
        }
    }
}

pub(crate) fn load(path: &Path, options: &LocalOptions) -> Result<Loaded, Error> {
    if let Some(dir) = options.cache_dir.as_deref() {
        remove_old_copies(dir, path);
    }
    let (mut reader, content) = gguf::open(path)?;
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

    #[test]
    fn old_converted_copies_of_the_file_are_removed_and_no_other() {
        let dir = std::env::temp_dir().join(format!("mamba-local-loader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cache/converted")).unwrap();
        let path = dir.join("model.gguf");
        std::fs::write(&path, b"not read").unwrap();
        let stat = std::fs::metadata(&path).unwrap();
        let modified = stat.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let name = |suffix: &str| dir.join(format!("cache/converted/model-{}-{modified}{suffix}", stat.len()));
        let other = dir.join("cache/converted/other-1-2.q8_0.gguf");
        for f in [name(".q8_0.gguf"), name(".v2.q8_0.gguf"), other.clone()] {
            std::fs::write(f, b"a copy").unwrap();
        }
        remove_old_copies(&dir.join("cache"), &path);
        assert!(!name(".q8_0.gguf").exists() && !name(".v2.q8_0.gguf").exists());
        assert!(other.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
