//! The prompt cache: turn N of a conversation, and every request that shares a system prompt,
//! costs only its new tokens.
//!
//! The model's key/value cache always holds one sequence, the *live* one (what the last request
//! fed it). A new prompt first reuses the longest common token prefix with the live sequence:
//! positions past it are simply overwritten, nothing is copied. When another request would
//! overwrite a long live sequence (two conversations taking turns through `serve`), that
//! sequence is first saved to a *slot* (a copy of its keys and values), and a later prompt that
//! shares more with a slot than with the live sequence restores the slot. Slots are bounded in
//! number and in bytes; the least recently used goes first.
//!
//! What to reuse is decided here and nowhere else; the engine only reports what it fed.

use crate::arch::{Architecture, KvState};

/// A sequence is saved to a slot only when at least this many of its tokens would be lost
/// (copying keys and values costs far less than reading even a few tokens again).
const MIN_SAVED_TOKENS: usize = 8;

/// How the cache is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheLimits {
    /// Reuse anything at all (off: every request reads its prompt from the start).
    pub(crate) enabled: bool,
    /// Saved sequences kept besides the live one.
    pub(crate) slots: usize,
    /// Bytes the saved sequences may hold together.
    pub(crate) memory: usize,
}

impl Default for CacheLimits {
    fn default() -> CacheLimits {
        CacheLimits { enabled: true, slots: 4, memory: 512 << 20 }
    }
}

#[derive(Debug)]
struct Slot {
    tokens: Vec<u32>,
    state: KvState,
    used: u64,
}

/// What the cache did for one prompt (reported as the usage's cached input tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Reuse {
    /// Leading prompt tokens already in the model's cache: reading starts after them.
    pub(crate) tokens: usize,
    /// They came from a saved slot (restored), not from the live sequence.
    pub(crate) restored: bool,
}

/// The live sequence and the saved slots.
#[derive(Debug)]
pub(crate) struct PromptCache {
    limits: CacheLimits,
    /// Tokens whose keys and values are in the model at positions `0..live.len()`.
    live: Vec<u32>,
    slots: Vec<Slot>,
    clock: u64,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PromptCache {
    pub(crate) fn new(limits: CacheLimits) -> PromptCache {
        PromptCache { limits, live: Vec::new(), slots: Vec::new(), clock: 0 }
    }

    /// Gets the model ready to read `prompt`: returns how many of its leading tokens are
    /// already cached (at most `prompt.len() - 1`: the last one is always read, for its logits).
    /// The caller feeds `prompt[reuse.tokens..]` from that position, then reports with
    /// [`fed`](Self::fed).
    pub(crate) fn prepare(&mut self, model: &mut dyn Architecture, prompt: &[u32]) -> candle_core::Result<Reuse> {
        let most = prompt.len().saturating_sub(1);
        if !self.limits.enabled {
            self.live.clear();
            model.reset();
            return Ok(Reuse::default());
        }
        let live = common_prefix(&self.live, prompt).min(most);
        self.clock += 1;
        // The best slot counts as used now, so that saving the live sequence never evicts it.
        if let Some(i) = self.best_slot(prompt, most).map(|(i, _)| i) {
            self.slots[i].used = self.clock;
        }
        // Whatever happens next overwrites the live sequence after `live`: keep it if that loses much.
        if self.live.len().saturating_sub(live) >= MIN_SAVED_TOKENS {
            self.save_live(model)?;
        }
        match self.best_slot(prompt, most) {
            Some((i, n)) if n > live => {
                let slot = &mut self.slots[i];
                slot.used = self.clock;
                model.restore(&slot.state)?;
                self.live = slot.tokens[..n].to_vec();
                Ok(Reuse { tokens: n, restored: true })
            }
            _ => {
                self.live.truncate(live);
                if live == 0 {
                    model.reset();
                }
                Ok(Reuse { tokens: live, restored: false })
            }
        }
    }

    /// Reports that the model now holds `tokens` (the reused prefix, then everything fed after
    /// it: prompt and generated tokens). After a failure the caller reports what it knows was
    /// fed, or [`forget`](Self::forget)s.
    pub(crate) fn fed(&mut self, tokens: Vec<u32>) {
        if self.limits.enabled {
            self.live = tokens;
        }
    }

    /// The model's cache is in an unknown state (a failed forward pass, teacher forcing).
    pub(crate) fn forget(&mut self) {
        self.live.clear();
    }

    /// Saved slots and the bytes they hold.
    #[cfg(test)]
    fn saved(&self) -> (usize, usize) {
        (self.slots.len(), self.slots.iter().map(|s| s.state.bytes()).sum())
    }

    /// The slot sharing the longest prefix with `prompt` (the first one on a tie), if any shares one.
    fn best_slot(&self, prompt: &[u32], most: usize) -> Option<(usize, usize)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, common_prefix(&s.tokens, prompt).min(most)))
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
    }

    /// Copies the live sequence into a slot, unless a slot already holds it (or more of it).
    fn save_live(&mut self, model: &dyn Architecture) -> candle_core::Result<()> {
        if self.limits.slots == 0 || self.slots.iter().any(|s| s.tokens.starts_with(&self.live)) {
            return Ok(());
        }
        let state = model.save(self.live.len())?;
        let bytes = state.bytes();
        if bytes > self.limits.memory {
            return Ok(());
        }
        // A slot the live sequence extends is superseded by it.
        self.slots.retain(|s| !self.live.starts_with(&s.tokens));
        while self.slots.len() >= self.limits.slots
            || self.slots.iter().map(|s| s.state.bytes()).sum::<usize>() + bytes > self.limits.memory
        {
            let Some(oldest) = self.slots.iter().enumerate().min_by_key(|(_, s)| s.used).map(|(i, _)| i) else {
                break;
            };
            self.slots.swap_remove(oldest);
        }
        self.slots.push(Slot { tokens: self.live.clone(), state, used: self.clock });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// A model whose "keys" are the token ids it was fed, per position: what a cache holds is
    /// then visible, and a wrong reuse shows as a wrong token.
    #[derive(Default)]
    struct Fake {
        cache: Vec<u32>,
        resets: usize,
        restores: usize,
    }

    impl Architecture for Fake {
        fn forward(&mut self, tokens: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
            assert!(pos <= self.cache.len(), "a gap in the cache: {pos} > {}", self.cache.len());
            self.cache.truncate(pos);
            self.cache.extend_from_slice(tokens);
            Ok(vec![0.0])
        }
        fn reset(&mut self) {
            self.resets += 1;
            self.cache.clear();
        }
        fn save(&self, len: usize) -> candle_core::Result<KvState> {
            let ids: Vec<f32> = self.cache[..len].iter().map(|&t| t as f32).collect();
            let t = Tensor::from_vec(ids, (1, 1, len, 1), &Device::Cpu)?;
            Ok(KvState { len, layers: vec![(t.clone(), t)] })
        }
        fn restore(&mut self, state: &KvState) -> candle_core::Result<()> {
            self.restores += 1;
            let ids = state.layers[0].0.flatten_all()?.to_vec1::<f32>()?;
            self.cache = ids.into_iter().map(|x| x as u32).collect();
            Ok(())
        }
    }

    /// Runs one request through the cache as the engine does: prepare, feed the rest of the
    /// prompt, generate `answer`, report. Returns the reused count.
    fn turn(cache: &mut PromptCache, model: &mut Fake, prompt: &[u32], answer: &[u32]) -> Reuse {
        let reuse = cache.prepare(model, prompt).unwrap();
        model.forward(&prompt[reuse.tokens..], reuse.tokens).unwrap();
        // The model's cache must now hold exactly the prompt.
        assert_eq!(model.cache, prompt, "after reusing {reuse:?}");
        let mut fed = prompt.to_vec();
        for &t in answer.iter().take(answer.len().saturating_sub(1)) {
            model.forward(&[t], fed.len()).unwrap();
            fed.push(t);
        }
        cache.fed(fed);
        reuse
    }

    fn seq(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn a_conversation_reads_only_its_new_tokens() {
        let mut cache = PromptCache::new(CacheLimits::default());
        let mut model = Fake::default();
        let mut prompt = seq(0..100);
        assert_eq!(turn(&mut cache, &mut model, &prompt, &[500, 501, 502]).tokens, 0);
        // Turn 2: the template re-renders turn 1 (its answer tokens as fed) plus a new question.
        prompt.extend([500, 501, 502, 7, 8, 9]);
        let reuse = turn(&mut cache, &mut model, &prompt, &[600]);
        assert_eq!(reuse, Reuse { tokens: 102, restored: false });
        // The same prompt again: everything but the last token.
        assert_eq!(turn(&mut cache, &mut model, &prompt, &[600]).tokens, prompt.len() - 1);
    }

    #[test]
    fn two_conversations_taking_turns_both_keep_their_prefix() {
        let mut cache = PromptCache::new(CacheLimits::default());
        let mut model = Fake::default();
        let system = seq(0..50);
        let a: Vec<u32> = system.iter().copied().chain(seq(1000..1100)).collect();
        let b: Vec<u32> = system.iter().copied().chain(seq(2000..2100)).collect();
        turn(&mut cache, &mut model, &a, &[1]);
        // B shares the system prompt with the live A, and A is saved before being overwritten.
        assert_eq!(turn(&mut cache, &mut model, &b, &[2]).tokens, 50);
        assert_eq!(cache.saved().0, 1);
        // A's next turn restores A's slot instead of re-reading 150 tokens.
        let a2: Vec<u32> = a.iter().copied().chain([1, 3, 4]).collect();
        let reuse = turn(&mut cache, &mut model, &a2, &[5]);
        assert_eq!(reuse, Reuse { tokens: a.len(), restored: true });
        // And B's too (saved when A's restore overwrote it).
        let b2: Vec<u32> = b.iter().copied().chain([2, 3]).collect();
        assert_eq!(turn(&mut cache, &mut model, &b2, &[6]), Reuse { tokens: b.len(), restored: true });
    }

    #[test]
    fn slots_are_bounded_by_count_and_bytes() {
        let limits = CacheLimits { enabled: true, slots: 2, memory: 1 << 20 };
        let mut cache = PromptCache::new(limits);
        let mut model = Fake::default();
        for k in 0..6u32 {
            turn(&mut cache, &mut model, &seq(k * 1000..k * 1000 + 64), &[1]);
        }
        assert_eq!(cache.saved().0, 2, "the oldest slots go first");
        // The two most recent saved ones are there: 4000.. (saved when 5000.. came) and 3000..
        assert_eq!(turn(&mut cache, &mut model, &seq(3000..3070), &[1]).tokens, 64);
        // A budget smaller than one sequence saves nothing, and still reuses the live one.
        let mut tiny = PromptCache::new(CacheLimits { enabled: true, slots: 4, memory: 16 });
        let mut model = Fake::default();
        turn(&mut tiny, &mut model, &seq(0..64), &[1]);
        turn(&mut tiny, &mut model, &seq(100..164), &[1]);
        assert_eq!(tiny.saved(), (0, 0));
        assert_eq!(turn(&mut tiny, &mut model, &seq(100..170), &[1]).tokens, 64);
    }

    #[test]
    fn off_reads_every_prompt_from_the_start_and_a_forgotten_cache_is_never_trusted() {
        let mut cache = PromptCache::new(CacheLimits { enabled: false, ..CacheLimits::default() });
        let mut model = Fake::default();
        turn(&mut cache, &mut model, &seq(0..10), &[1]);
        assert_eq!(turn(&mut cache, &mut model, &seq(0..12), &[1]).tokens, 0);
        let mut cache = PromptCache::new(CacheLimits::default());
        turn(&mut cache, &mut model, &seq(0..10), &[1]);
        cache.forget();
        assert_eq!(turn(&mut cache, &mut model, &seq(0..12), &[1]).tokens, 0);
    }
}
