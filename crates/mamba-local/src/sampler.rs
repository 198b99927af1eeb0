//! Choosing the next token from the logits: greedy, or temperature + top-p with a seeded RNG,
//! with OpenAI's frequency and presence penalties.

use std::collections::HashMap;

/// Sampling settings of one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SamplerConfig {
    /// 0 (or less) is greedy.
    pub(crate) temperature: f32,
    /// Nucleus mass kept, in (0, 1]; 1 keeps every token.
    pub(crate) top_p: f32,
    pub(crate) seed: u64,
    pub(crate) frequency_penalty: f32,
    pub(crate) presence_penalty: f32,
}

/// SplitMix64: small, fast and fully determined by its seed, which is all sampling needs.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Per-request sampler state.
#[derive(Debug)]
pub(crate) struct Sampler {
    config: SamplerConfig,
    rng: Rng,
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub(crate) fn new(config: SamplerConfig) -> Sampler {
        let rng = Rng(config.seed);
        Sampler { config, rng, counts: HashMap::new() }
    }

    /// Picks the next token and remembers it for the penalties.
    pub(crate) fn sample(&mut self, logits: &mut [f32]) -> u32 {
        if self.config.frequency_penalty != 0.0 || self.config.presence_penalty != 0.0 {
            for (&id, &count) in &self.counts {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= count as f32 * self.config.frequency_penalty + self.config.presence_penalty;
                }
            }
        }
        let id = if self.config.temperature <= 0.0 { argmax(logits) } else { self.sample_random(logits) };
        *self.counts.entry(id).or_insert(0) += 1;
        id
    }

    fn sample_random(&mut self, logits: &[f32]) -> u32 {
        let t = self.config.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, f64::from((l - max) / t).exp()))
            .filter(|(_, p)| *p > 0.0 && p.is_finite())
            .collect();
        if probs.is_empty() {
            return argmax(logits);
        }
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total: f64 = probs.iter().map(|p| p.1).sum();
        if self.config.top_p < 1.0 {
            let keep_mass = f64::from(self.config.top_p.max(0.0)) * total;
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, (_, p)) in probs.iter().enumerate() {
                acc += p;
                if acc >= keep_mass {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let mut target = self.rng.next_f64() * total;
        for (id, p) in &probs {
            if target < *p {
                return *id;
            }
            target -= p;
        }
        probs.last().map_or(0, |p| p.0)
    }
}

/// Index of the largest logit (the first one on ties, as llama.cpp's greedy sampler).
pub(crate) fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(temperature: f32, top_p: f32, seed: u64) -> SamplerConfig {
        SamplerConfig { temperature, top_p, seed, frequency_penalty: 0.0, presence_penalty: 0.0 }
    }

    #[test]
    fn greedy_takes_the_first_largest() {
        let mut s = Sampler::new(config(0.0, 1.0, 1));
        assert_eq!(s.sample(&mut [0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = Sampler::new(config(1.0, 1.0, seed));
            (0..40).map(|_| s.sample(&mut logits.clone())).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let mut s = Sampler::new(config(1.0, 0.5, 3));
        for _ in 0..200 {
            assert_eq!(s.sample(&mut [10.0, 0.0, 0.0, 0.0]), 0);
        }
    }

    #[test]
    fn penalties_push_repeated_tokens_down() {
        let mut s = Sampler::new(SamplerConfig { frequency_penalty: 2.0, ..config(0.0, 1.0, 0) });
        assert_eq!(s.sample(&mut [1.0, 0.5]), 0);
        assert_eq!(s.sample(&mut [1.0, 0.5]), 1);
    }
}
