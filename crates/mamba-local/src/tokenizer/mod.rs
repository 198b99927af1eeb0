//! The tokenizer, built from a GGUF file's metadata so that it gives llama.cpp's token ids.
//!
//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): special tokens are cut out first, the rest is
//! pre-tokenized into words ([`pretokenize`]), each word's bytes are mapped to GPT-2's printable
//! characters and merged by rank. Other tokenizer models (SentencePiece `llama`) are refused with
//! a clear error until a module for them exists.

mod bytes;
pub(crate) mod decode;
pub(crate) mod pretokenize;

use std::collections::HashMap;

use mamba_backends::{Error, ErrorKind};

use crate::gguf::Meta;
use pretokenize::Stage;

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TYPE_NORMAL: i32 = 1;
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

/// A byte-level BPE tokenizer.
#[derive(Debug)]
pub(crate) struct Tokenizer {
    /// Token text as stored (GPT-2 byte characters for normal tokens).
    tokens: Vec<String>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    /// Merge rank of a pair, keyed by `left + " " + right`.
    ranks: HashMap<(String, String), u32>,
    stages: &'static [Stage],
    /// Special tokens (control, user-defined, unknown), longest text first.
    specials: Vec<(String, u32)>,
    /// Bytes each token stands for in generated text (empty for control tokens).
    pieces: Vec<Vec<u8>>,
    eog: Vec<u32>,
    bos: Option<u32>,
    add_bos: bool,
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub(crate) fn from_meta(meta: Meta<'_>) -> Result<Tokenizer, Error> {
        let model = meta.require("tokenizer.ggml.model", meta.str("tokenizer.ggml.model"))?;
        if model != "gpt2" {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("tokenizer model `{model}` is not supported yet (only byte-level BPE, `gpt2`)"),
            ));
        }
        let pre = meta.str("tokenizer.ggml.pre").unwrap_or("default");
        let stages = pretokenize::rules_for(pre).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("pre-tokenizer `{pre}` is not supported yet; add its split rules to pretokenize.rs"),
            )
        })?;
        let tokens: Vec<String> = meta
            .require("tokenizer.ggml.tokens", meta.array("tokenizer.ggml.tokens"))?
            .iter()
            .map(|v| v.to_string().cloned().unwrap_or_default())
            .collect();
        let types: Vec<i32> = match meta.array("tokenizer.ggml.token_type") {
            Some(values) => values.iter().map(|v| v.to_i32().unwrap_or(TYPE_NORMAL)).collect(),
            None => vec![TYPE_NORMAL; tokens.len()],
        };
        let merges = meta.require("tokenizer.ggml.merges", meta.array("tokenizer.ggml.merges"))?;
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            let Ok(merge) = merge.to_string() else { continue };
            if let Some((left, right)) = merge.split_once(' ') {
                ranks.entry((left.to_owned(), right.to_owned())).or_insert(rank as u32);
            }
        }
        let ids: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let type_of = |i: usize| types.get(i).copied().unwrap_or(TYPE_NORMAL);
        let mut specials: Vec<(String, u32)> = (0..tokens.len())
            .filter(|&i| matches!(type_of(i), TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNKNOWN))
            .filter(|&i| !tokens[i].is_empty())
            .map(|i| (tokens[i].clone(), i as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let pieces = (0..tokens.len())
            .map(|i| match type_of(i) {
                TYPE_NORMAL | TYPE_BYTE => bytes::decode(&tokens[i]),
                TYPE_USER_DEFINED => tokens[i].as_bytes().to_vec(),
                _ => Vec::new(),
            })
            .collect();

        let mut eog = Vec::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            eog.extend(meta.u32(key));
        }
        // llama.cpp also ends generation on these well-known control tokens when the vocabulary has them.
        for text in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|end_of_text|>"] {
            if let Some(&id) = ids.get(text) {
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();
        Ok(Tokenizer {
            bos: meta.u32("tokenizer.ggml.bos_token_id"),
            add_bos: meta.bool("tokenizer.ggml.add_bos_token").unwrap_or(false),
            tokens,
            types,
            ids,
            ranks,
            stages,
            specials,
            pieces,
            eog,
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
        let mut out = Vec::new();
        for fragment in self.partition(text, parse_special) {
            match fragment {
                Fragment::Special(id) => out.push(id),
                Fragment::Text(raw) => {
                    for word in pretokenize::split(raw, self.stages) {
                        self.encode_word(word, &mut out);
                    }
                }
            }
        }
        out
    }

    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut fragments = vec![Fragment::Text(text)];
        for (special, id) in &self.specials {
            let ty = self.types.get(*id as usize).copied().unwrap_or(TYPE_NORMAL);
            if !parse_special && ty != TYPE_USER_DEFINED {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len());
            for fragment in fragments {
                let Fragment::Text(raw) = fragment else {
                    next.push(fragment);
                    continue;
                };
                let mut rest = raw;
                while let Some(at) = rest.find(special.as_str()) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Special(*id));
                    rest = &rest[at + special.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        let mapped = bytes::encode(word.as_bytes());
        let mut symbols: Vec<String> = mapped.chars().map(String::from).collect();
        loop {
            let mut best: Option<(u32, usize)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                let key = (symbols[i].clone(), symbols[i + 1].clone());
                if let Some(&rank) = self.ranks.get(&key) {
                    if best.is_none_or(|(r, _)| rank < r) {
                        best = Some((rank, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            let right = symbols.remove(i + 1);
            symbols[i].push_str(&right);
        }
        for symbol in symbols {
            if let Some(&id) = self.ids.get(&symbol) {
                out.push(id);
            } else {
                // Not in the vocabulary: fall back to one token per byte character, skipping
                // any the vocabulary lacks (what llama.cpp does).
                for c in symbol.chars() {
                    if let Some(&id) = self.ids.get(c.encode_utf8(&mut [0; 4]) as &str) {
                        out.push(id);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fragment<'t> {
    Text(&'t str),
    Special(u32),
}
