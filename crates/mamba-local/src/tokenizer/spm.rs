//! SentencePiece-style BPE (`tokenizer.ggml.model = "llama"`: Llama 2, TinyLlama, Gemma), as
//! llama.cpp runs it.
//!
//! Spaces become `▁` (and a text starting the prompt or following a special token gets one in
//! front when the file asks for `add_space_prefix`); the text is cut into characters, then the
//! adjacent pair whose concatenation is the token with the highest score is merged, leftmost
//! first on a tie, until no pair forms a token. A piece that is not a token falls back to its
//! bytes, as `<0xNN>` tokens.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

/// SentencePiece's space mark.
pub(super) const SPACE: &str = "\u{2581}";

/// The SentencePiece tables.
#[derive(Debug)]
pub(super) struct Spm {
    scores: Vec<f32>,
    /// The token of each byte: `<0xNN>`, or the byte's own one-character token.
    byte_token: [Option<u32>; 256],
    /// `tokenizer.ggml.add_space_prefix` (true unless the file says otherwise).
    pub(super) add_space_prefix: bool,
}

/// A score ordered totally, so that it can key a heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

const NONE: u32 = u32::MAX;

/// Buffers reused across the fragments of one call.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    text: String,
    symbols: Vec<Symbol>,
    /// (score, leftmost first, right, merged length in bytes): highest score first.
    queue: BinaryHeap<(Score, Reverse<u32>, u32, u32)>,
}

impl Spm {
    /// Builds the tables from the vocabulary and its scores.
    pub(super) fn new(ids: &FxHashMap<String, u32>, scores: Vec<f32>, add_space_prefix: bool) -> Spm {
        let mut byte_token = [None; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            let b = b as u8;
            *slot = ids.get(&format!("<0x{b:02X}>")).copied().or_else(|| {
                b.is_ascii().then(|| ids.get(char::from(b).encode_utf8(&mut [0; 4]) as &str).copied()).flatten()
            });
        }
        Spm { scores, byte_token, add_space_prefix }
    }

    /// Encodes a text fragment (no special tokens in it) into `out`; `space_prefix` puts a space
    /// in front first.
    pub(super) fn encode(
        &self,
        fragment: &str,
        space_prefix: bool,
        ids: &FxHashMap<String, u32>,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) {
        let text = &mut scratch.text;
        text.clear();
        if space_prefix {
            text.push_str(SPACE);
        }
        for (i, part) in fragment.split(' ').enumerate() {
            if i > 0 {
                text.push_str(SPACE);
            }
            text.push_str(part);
        }
        if text.is_empty() {
            return;
        }
        let symbols = &mut scratch.symbols;
        symbols.clear();
        let count = text.chars().count() as u32;
        symbols.extend(text.char_indices().enumerate().map(|(i, (at, c))| {
            let i = i as u32;
            Symbol {
                start: at as u32,
                len: c.len_utf8() as u32,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == count { NONE } else { i + 1 },
            }
        }));
        let queue = &mut scratch.queue;
        queue.clear();
        for i in 1..count {
            self.push_pair(text, symbols, ids, queue, i - 1, i);
        }
        while let Some((_, Reverse(left), right, size)) = queue.pop() {
            let (l, r) = (left as usize, right as usize);
            if symbols[l].len == 0 || symbols[r].len == 0 || symbols[l].len + symbols[r].len != size {
                continue;
            }
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            let after = symbols[r].next;
            symbols[l].next = after;
            if after != NONE {
                symbols[after as usize].prev = left;
            }
            let before = symbols[l].prev;
            if before != NONE {
                self.push_pair(text, symbols, ids, queue, before, left);
            }
            if after != NONE {
                self.push_pair(text, symbols, ids, queue, left, after);
            }
        }
        let mut i = 0;
        while i != NONE {
            let s = symbols[i as usize];
            let piece = &text[s.start as usize..(s.start + s.len) as usize];
            match ids.get(piece) {
                Some(&id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_token[usize::from(b)])),
            }
            i = s.next;
        }
    }

    fn push_pair(
        &self,
        text: &str,
        symbols: &[Symbol],
        ids: &FxHashMap<String, u32>,
        queue: &mut BinaryHeap<(Score, Reverse<u32>, u32, u32)>,
        left: u32,
        right: u32,
    ) {
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        let size = l.len + r.len;
        let Some(pair) = text.get(l.start as usize..(l.start + size) as usize) else { return };
        let Some(&id) = ids.get(pair) else { return };
        let Some(&score) = self.scores.get(id as usize) else { return };
        queue.push((Score(score), Reverse(left), right, size));
    }
}
