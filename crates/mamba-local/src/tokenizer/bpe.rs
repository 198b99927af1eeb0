//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`), as llama.cpp runs it.
//!
//! Each pre-tokenized word is cut into its bytes (GPT-2's byte characters), then the adjacent
//! pair with the lowest merge rank is merged, leftmost first on a tie, until no pair has a rank.
//! Strings are interned once at load: every vocabulary token keeps its id as its symbol, and
//! merge parts or results missing from the vocabulary get symbols past the end. A merge is then
//! a lookup of two integers, and a word costs no allocation but its symbol list.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::bytes;
use super::pretokenize::{self, Stage};

/// The BPE tables.
#[derive(Debug)]
pub(super) struct Bpe {
    stages: &'static [Stage],
    /// Merge of two symbols: its rank and the merged symbol.
    merges: FxHashMap<(u32, u32), (u32, u32)>,
    /// The symbol of each byte's character, if the tables know it.
    byte_symbol: [Option<u32>; 256],
    vocab_size: u32,
    /// Llama 3: a word that is a token is that token, whatever the merges say.
    ignore_merges: bool,
}

/// A symbol of the word being merged: the bytes `start..start + len` of the word.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: Option<u32>,
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

const NONE: u32 = u32::MAX;

/// A queued pair: (rank, left, right, left length, right length, merged symbol); the heap pops
/// the lowest rank, then the leftmost.
type Queue = BinaryHeap<Reverse<(u32, u32, u32, u32, u32, u32)>>;

/// Buffers reused across the words of one call.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    symbols: Vec<Symbol>,
    queue: Queue,
}

impl Bpe {
    /// Builds the tables from the vocabulary (`ids`: token text to id) and the merges.
    pub(super) fn new<'m>(
        vocab_size: usize,
        ids: &FxHashMap<String, u32>,
        merges: impl Iterator<Item = &'m str>,
        stages: &'static [Stage],
        ignore_merges: bool,
    ) -> Bpe {
        let mut extra: FxHashMap<String, u32> = FxHashMap::default();
        let mut next = vocab_size as u32;
        let mut intern = |text: &str| -> u32 {
            if let Some(&id) = ids.get(text).or_else(|| extra.get(text)) {
                return id;
            }
            extra.insert(text.to_owned(), next);
            next += 1;
            next - 1
        };
        let mut table = FxHashMap::default();
        for (rank, merge) in merges.enumerate() {
            // llama.cpp splits at the first space after the first byte.
            let Some(at) = merge.bytes().skip(1).position(|b| b == b' ').map(|i| i + 1) else { continue };
            let (left, right) = (&merge[..at], &merge[at + 1..]);
            let pair = (intern(left), intern(right));
            let merged = intern(&format!("{left}{right}"));
            table.entry(pair).or_insert((rank as u32, merged));
        }
        let mut byte_symbol = [None; 256];
        for (b, slot) in byte_symbol.iter_mut().enumerate() {
            let text = bytes::encode(&[b as u8]);
            *slot = ids.get(&text).or_else(|| extra.get(&text)).copied();
        }
        Bpe { stages, merges: table, byte_symbol, vocab_size: vocab_size as u32, ignore_merges }
    }

    /// Encodes a text fragment (no special tokens in it) into `out`.
    pub(super) fn encode(&self, text: &str, ids: &FxHashMap<String, u32>, scratch: &mut Scratch, out: &mut Vec<u32>) {
        for word in pretokenize::split(text, self.stages) {
            self.encode_word(word.as_bytes(), ids, scratch, out);
        }
    }

    fn encode_word(&self, word: &[u8], ids: &FxHashMap<String, u32>, scratch: &mut Scratch, out: &mut Vec<u32>) {
        if self.ignore_merges && word.len() > 1 {
            if let Some(&id) = ids.get(&bytes::encode(word)) {
                out.push(id);
                return;
            }
        }
        let symbols = &mut scratch.symbols;
        symbols.clear();
        let n = word.len() as u32;
        symbols.extend(word.iter().enumerate().map(|(i, &b)| {
            let i = i as u32;
            Symbol {
                id: self.byte_symbol[usize::from(b)],
                start: i,
                len: 1,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
            }
        }));
        let queue = &mut scratch.queue;
        queue.clear();
        for i in 1..n {
            self.push_pair(symbols, queue, i - 1, i);
        }
        while let Some(Reverse((_, left, right, left_len, right_len, merged))) = queue.pop() {
            let (l, r) = (left as usize, right as usize);
            // Stale: one side changed since the pair was queued.
            if symbols[l].len != left_len || symbols[r].len != right_len {
                continue;
            }
            symbols[l].len += symbols[r].len;
            symbols[l].id = Some(merged);
            symbols[r].len = 0;
            let after = symbols[r].next;
            symbols[l].next = after;
            if after != NONE {
                symbols[after as usize].prev = left;
            }
            let before = symbols[l].prev;
            if before != NONE {
                self.push_pair(symbols, queue, before, left);
            }
            if after != NONE {
                self.push_pair(symbols, queue, left, after);
            }
        }
        let mut i = 0;
        while i != NONE && (i as usize) < symbols.len() {
            let s = symbols[i as usize];
            match s.id {
                Some(id) if id < self.vocab_size => out.push(id),
                // Not a token: llama.cpp looks up each byte of the symbol's text alone, which
                // finds only the printable ASCII ones.
                _ => {
                    for &b in &word[s.start as usize..(s.start + s.len) as usize] {
                        if (b'!'..=b'~').contains(&b) {
                            if let Some(id) = self.byte_symbol[usize::from(b)].filter(|&id| id < self.vocab_size) {
                                out.push(id);
                            }
                        }
                    }
                }
            }
            i = s.next;
        }
    }

    fn push_pair(&self, symbols: &[Symbol], queue: &mut Queue, left: u32, right: u32) {
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        let (Some(a), Some(b)) = (l.id, r.id) else { return };
        if let Some(&(rank, merged)) = self.merges.get(&(a, b)) {
            queue.push(Reverse((rank, left, right, l.len, r.len, merged)));
        }
    }
}
