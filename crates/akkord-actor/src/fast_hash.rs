//! A multiply-and-rotate hasher for maps on hot paths whose keys the process chooses itself:
//! actor ids, type ids, names registered at start.
//!
//! Use it only where outside input can look keys up but never insert them. SipHash, the
//! standard library's default, resists flooding by crafted keys, and such maps gain nothing
//! from that while paying for it on every lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Odd constant with well-mixed bits (the golden ratio's fraction, as in Fibonacci hashing).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Hasher that folds each word into its state with a rotate, an xor and a multiply.
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    state: u64,
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(26) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // hashbrown picks buckets from the low bits and tags from the high ones, and a
        // multiply leaves the low bits weakest, so fold the high half down.
        self.state ^ (self.state >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        // The length first, so inputs that differ only in trailing zeros differ.
        self.add(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word: [u8; 8] = chunk.try_into().expect("chunks_exact yields 8 bytes");
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash_of<T: std::hash::Hash>(value: &T) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(value)
    }

    #[test]
    fn fast_hash_spreads_sequential_ids() {
        // Sequential actor ids must not crowd into a few buckets of a 1024-bucket table.
        let mut buckets = std::collections::HashSet::new();
        for id in 0u64..1024 {
            buckets.insert(hash_of(&id) & 1023);
        }
        assert!(
            buckets.len() > 600,
            "{} of 1024 buckets used",
            buckets.len()
        );
    }

    #[test]
    fn fast_hash_tells_strings_apart() {
        assert_ne!(hash_of(&"bench.Ping"), hash_of(&"bench.Pong"));
        assert_ne!(hash_of(&"a"), hash_of(&"a\0"));
        assert_eq!(hash_of(&"bench.Ping"), hash_of(&String::from("bench.Ping")));
    }

    #[test]
    fn fast_map_finds_what_was_inserted() {
        let mut map: FastMap<u64, u64> = FastMap::default();
        for id in 0..10_000 {
            map.insert(id * 7, id);
        }
        assert!((0..10_000).all(|id| map.get(&(id * 7)) == Some(&id)));
        assert_eq!(map.get(&1), None);
    }
}
