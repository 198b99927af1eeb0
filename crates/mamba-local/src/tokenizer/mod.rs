//! The tokenizer, built from a GGUF file's metadata so that it gives llama.cpp's token ids.
//!
//! Special tokens are cut out of the text first (control tokens when asked, user-defined ones
//! always, longest first, as llama.cpp does); the rest goes to the file's tokenizer model:
//! - byte-level BPE (`tokenizer.ggml.model = "gpt2"`: SmolLM2, Llama 3, Qwen2…, [`bpe`]), after
//!   the pre-tokenizer named by `tokenizer.ggml.pre` cut it into words ([`pretokenize`]);
//! - SentencePiece-style BPE (`"llama"`: Llama 2, TinyLlama, Gemma…, [`spm`]) with scores,
//!   `▁` for spaces and byte fallback.
//!
//! Other models are refused with a clear error.

mod bpe;
mod bytes;
pub(crate) mod decode;
pub(crate) mod pretokenize;
mod spm;

use aho_corasick::AhoCorasick;
use mamba_backends::{Error, ErrorKind};
use memchr::memmem::Finder;
use rustc_hash::FxHashMap;

use crate::gguf::Meta;

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TYPE_NORMAL: i32 = 1;
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

/// Token texts llama.cpp treats as control tokens ending generation, whatever their stored type.
const EOG_TEXTS: &[&str] =
    &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|end_of_text|>"];

/// The tokenizer model of a file.
#[derive(Debug)]
enum Model {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
}

/// A tokenizer read from GGUF metadata.
#[derive(Debug)]
pub(crate) struct Tokenizer {
    /// Token text as stored (GPT-2 byte characters for byte-level BPE, `▁` for SentencePiece).
    tokens: Vec<String>,
    types: Vec<i32>,
    ids: FxHashMap<String, u32>,
    model: Model,
    /// Special tokens (control, user-defined, unknown), longest text first, with a searcher each.
    specials: Vec<(Finder<'static>, u32)>,
    /// All of them at once: which ones a text holds, in one pass (files have thousands).
    special_set: Option<AhoCorasick>,
    /// Bytes each token stands for in generated text (empty for control tokens).
    pieces: Vec<Vec<u8>>,
    eog: Vec<u32>,
    bos: Option<u32>,
    add_bos: bool,
    /// Special tokens after which the text's whitespace is dropped (llama.cpp's `RSTRIP`),
    /// sorted.
    rstrip: Vec<u32>,
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub(crate) fn from_meta(meta: Meta<'_>) -> Result<Tokenizer, Error> {
        let model = meta.require("tokenizer.ggml.model", meta.str("tokenizer.ggml.model"))?;
        let spm = match model {
            "gpt2" => false,
            "llama" => true,
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "tokenizer model `{other}` is not supported yet (byte-level BPE `gpt2` and SentencePiece `llama` are)"
                    ),
                ))
            }
        };
        let tokens: Vec<String> = meta
            .require("tokenizer.ggml.tokens", meta.array("tokenizer.ggml.tokens"))?
            .iter()
            .map(|v| v.to_string().cloned().unwrap_or_default())
            .collect();
        let mut types: Vec<i32> = match meta.array("tokenizer.ggml.token_type") {
            Some(values) => values.iter().map(|v| v.to_i32().unwrap_or(TYPE_NORMAL)).collect(),
            None => vec![TYPE_NORMAL; tokens.len()],
        };
        types.resize(tokens.len(), TYPE_NORMAL);
        let mut ids: FxHashMap<String, u32> = FxHashMap::default();
        ids.reserve(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            ids.entry(t.clone()).or_insert(i as u32);
        }
        // llama.cpp makes these control tokens when a converter left them normal.
        for text in EOG_TEXTS {
            if let Some(&id) = ids.get(*text) {
                if types[id as usize] == TYPE_NORMAL {
                    types[id as usize] = TYPE_CONTROL;
                }
            }
        }

        let pre = meta.str("tokenizer.ggml.pre").unwrap_or("default");
        let (model, default_bos, default_add_bos) = if spm {
            let mut scores: Vec<f32> = match meta.array("tokenizer.ggml.scores") {
                Some(values) => values.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
                None => Vec::new(),
            };
            scores.resize(tokens.len(), 0.0);
            let add_space_prefix = meta.bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);
            (Model::Spm(spm::Spm::new(&ids, scores, add_space_prefix)), Some(1), true)
        } else {
            let stages = pretokenize::rules_for(pre).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("pre-tokenizer `{pre}` is not supported yet; add its split rules to pretokenize.rs"),
                )
            })?;
            let llama3 = stages == [pretokenize::Stage::Llama3];
            let merges = meta.require("tokenizer.ggml.merges", meta.array("tokenizer.ggml.merges"))?;
            let merges = merges.iter().filter_map(|m| m.to_string().ok().map(String::as_str));
            (Model::Bpe(bpe::Bpe::new(tokens.len(), &ids, merges, stages, llama3)), Some(11), llama3)
        };

        let type_of = |i: usize| types.get(i).copied().unwrap_or(TYPE_NORMAL);
        let mut special_ids: Vec<u32> = (0..tokens.len())
            .filter(|&i| matches!(type_of(i), TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNKNOWN))
            .filter(|&i| !tokens[i].is_empty())
            .map(|i| i as u32)
            .collect();
        special_ids.sort_by(|&a, &b| tokens[b as usize].len().cmp(&tokens[a as usize].len()).then(a.cmp(&b)));
        let special_set = AhoCorasick::new(special_ids.iter().map(|&id| tokens[id as usize].as_bytes())).ok();
        let rstrip = rstrip_tokens(meta, &special_ids, &ids);
        let specials =
            special_ids.into_iter().map(|id| (Finder::new(tokens[id as usize].as_bytes()).into_owned(), id)).collect();
        let pieces = (0..tokens.len())
            .map(|i| match (type_of(i), &model) {
                (TYPE_NORMAL, Model::Bpe(_)) | (TYPE_BYTE, Model::Bpe(_)) => bytes::decode(&tokens[i]),
                (TYPE_NORMAL, Model::Spm(_)) => tokens[i].replace(spm::SPACE, " ").into_bytes(),
                (TYPE_BYTE, Model::Spm(_)) => spm_byte(&tokens[i]).map(|b| vec![b]).unwrap_or_default(),
                (TYPE_USER_DEFINED, _) => tokens[i].as_bytes().to_vec(),
                _ => Vec::new(),
            })
            .collect();

        let mut eog = Vec::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            eog.extend(meta.u32(key));
        }
        // llama.cpp also ends generation on these well-known control tokens when the vocabulary has them.
        for text in EOG_TEXTS {
            if let Some(&id) = ids.get(*text) {
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();
        let bos = meta.u32("tokenizer.ggml.bos_token_id").or(default_bos).filter(|&id| (id as usize) < tokens.len());
        Ok(Tokenizer {
            bos,
            add_bos: meta.bool("tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos),
            tokens,
            types,
            ids,
            model,
            specials,
            special_set,
            pieces,
            eog,
            rstrip,
        })
    }

    /// True for end-of-generation tokens.
    pub(crate) fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// Tokens in the vocabulary.
    pub(crate) fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The end-of-generation tokens, sorted.
    pub(crate) fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// True for control (and unknown) tokens: markup such as `<|im_start|>`, never answer text.
    pub(crate) fn is_control(&self, id: u32) -> bool {
        matches!(self.types.get(id as usize).copied(), Some(TYPE_CONTROL | TYPE_UNKNOWN))
    }

    /// The control token whose text is exactly `text`, if the vocabulary has one.
    pub(crate) fn control_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied().filter(|&id| self.is_control(id))
    }

    /// The text of a token as stored in the vocabulary.
    pub(crate) fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The bytes a generated token adds to the answer (nothing for control tokens).
    pub(crate) fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The BOS token to put before a prompt, when the model asks for one.
    pub(crate) fn prompt_prefix(&self) -> Option<u32> {
        self.bos.filter(|_| self.add_bos)
    }

    /// Encodes `text`. With `parse_special`, the text of control tokens (`<|im_start|>`) becomes
    /// those tokens; user-defined tokens are always recognised (as llama.cpp does).
    pub(crate) fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let fragments = self.partition(text, parse_special);
        match &self.model {
            Model::Bpe(bpe) => {
                let mut scratch = bpe::Scratch::default();
                for fragment in fragments {
                    match fragment {
                        Fragment::Special(id) => out.push(id),
                        Fragment::Text(raw) => bpe.encode(raw, &self.ids, &mut scratch, &mut out),
                    }
                }
            }
            Model::Spm(spm) => {
                let mut scratch = spm::Scratch::default();
                // llama.cpp puts the space prefix before the first text and after every special token.
                let mut after_special = true;
                for fragment in fragments {
                    match fragment {
                        Fragment::Special(id) => {
                            out.push(id);
                            after_special = true;
                        }
                        Fragment::Text(raw) => {
                            let prefix = spm.add_space_prefix && after_special;
                            spm.encode(raw, prefix, &self.ids, &mut scratch, &mut out);
                            after_special = false;
                        }
                    }
                }
            }
        }
        out
    }

    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        // An empty text has no fragment (so SentencePiece adds no space prefix to it).
        let mut fragments = if text.is_empty() { Vec::new() } else { vec![Fragment::Text(text)] };
        // The special tokens found anywhere in the text (a superset of those left to cut out).
        let present: Option<Vec<bool>> = self.special_set.as_ref().map(|set| {
            let mut present = vec![false; self.specials.len()];
            for found in set.find_overlapping_iter(text) {
                present[found.pattern().as_usize()] = true;
            }
            present
        });
        for (index, (finder, id)) in self.specials.iter().enumerate() {
            if present.as_ref().is_some_and(|p| !p[index]) {
                continue;
            }
            let ty = self.types.get(*id as usize).copied().unwrap_or(TYPE_NORMAL);
            if !parse_special && ty != TYPE_USER_DEFINED {
                continue;
            }
            let len = finder.needle().len();
            // Most special tokens are in no fragment: look before rebuilding the list.
            if !fragments.iter().any(|f| matches!(f, Fragment::Text(raw) if finder.find(raw.as_bytes()).is_some())) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(raw) = fragment else {
                    next.push(fragment);
                    continue;
                };
                let mut rest = raw;
                while let Some(at) = finder.find(rest.as_bytes()) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Special(*id));
                    // The match is a whole token text, so it ends on a character boundary.
                    rest = rest.get(at + len..).unwrap_or_default();
                    if self.rstrip.binary_search(id).is_ok() {
                        // C's isspace: ASCII whitespace and the vertical tab.
                        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\u{b}');
                    }
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }
}

/// The special tokens whose following whitespace llama.cpp drops: for a model *named* Phi-3
/// (`general.name` holding `phi-3` or `phi3`, whatever the case), every special token and
/// `</s>`, but `<unk>`, `<s>` and `<|endoftext|>`. Nothing in a Phi-3 vocabulary itself tells
/// it apart from another SentencePiece one; llama.cpp keys on the name, and so must we to read
/// a chat prompt into the same tokens.
fn rstrip_tokens(meta: Meta<'_>, special_ids: &[u32], ids: &FxHashMap<String, u32>) -> Vec<u32> {
    let name = meta.str("general.name").unwrap_or("").to_lowercase();
    if !(name.contains("phi-3") || name.contains("phi3")) {
        return Vec::new();
    }
    let mut out: Vec<u32> = special_ids.to_vec();
    out.extend(ids.get("</s>"));
    let kept: Vec<u32> = ["<unk>", "<s>", "<|endoftext|>"].iter().filter_map(|t| ids.get(*t).copied()).collect();
    out.retain(|id| !kept.contains(id));
    out.sort_unstable();
    out.dedup();
    out
}

/// The byte of a SentencePiece byte token (`<0x0A>`).
fn spm_byte(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

#[derive(Debug, Clone, Copy)]
enum Fragment<'t> {
    Text(&'t str),
    Special(u32),
}

#[cfg(test)]
mod tests;
