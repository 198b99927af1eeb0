//! `--shard K/N`: which lines one of N machines takes.
//!
//! A line belongs to shard `fnv1a64(custom_id) % N`, where `fnv1a64` is the 64-bit FNV-1a hash
//! of the custom_id's UTF-8 bytes (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`)
//! and shards are numbered from 0. It depends on nothing but the custom_id, so every machine
//! given the same input (in any order) takes a disjoint part and together they take every line
//! once. In Python: `h = 0xcbf29ce484222325; for b in cid.encode(): h = ((h ^ b) *
//! 0x100000001b3) % 2**64`.

use std::fmt;
use std::str::FromStr;

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Shard `index` of `count` (`index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// Shard `index` of `count`; `None` unless `index < count`.
    pub fn new(index: u64, count: u64) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// Whether the line with this custom_id is this shard's.
    pub fn takes(&self, custom_id: &str) -> bool {
        fnv1a64(custom_id.as_bytes()) % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, e.g. `0/4` … `3/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard takes K/N with 0 <= K < N (shards are numbered from 0), not {s:?}");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u64 = k.trim().parse().map_err(|_| bad())?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n).ok_or_else(bad)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn every_id_in_exactly_one_shard() {
        for n in 1..=7u64 {
            let shards: Vec<Shard> = (0..n).map(|k| Shard::new(k, n).unwrap()).collect();
            for i in 0..2000 {
                let id = format!("request-{i}");
                assert_eq!(shards.iter().filter(|s| s.takes(&id)).count(), 1);
            }
        }
    }

    #[test]
    fn parsing() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard::new(1, 4).unwrap());
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}
