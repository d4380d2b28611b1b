//! A fast hasher for [`InstrumentId`](mdbus_types::InstrumentId) keys: the
//! caches hash one 16-byte symbol per record, and SipHash (the std default)
//! cost more than the rest of a map update. The keys come from the feed's
//! own publisher, not from an adversary, so no DoS resistance is needed.

use std::hash::{BuildHasherDefault, Hasher};

/// Folded 64x64->128 multiply (wyhash's mixer).
#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;

/// Hashes the bytes written into it 8 at a time, then mixes once.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher {
    state: u64,
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.state = mix(self.state ^ word ^ K0, K1);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.state = mix(self.state ^ u64::from_le_bytes(word) ^ K0, K1);
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        // The length prefix of the symbol array: always 16, nothing to mix.
        self.state ^= n as u64;
    }

    #[inline]
    fn finish(&self) -> u64 {
        mix(self.state ^ K1, K0)
    }
}

/// `BuildHasher` of [`IdHasher`].
pub(crate) type IdBuildHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hash};

    use super::*;
    use mdbus_types::InstrumentId;

    #[test]
    fn distinct_symbols_spread() {
        let build = IdBuildHasher::default();
        let mut seen = std::collections::HashSet::new();
        let mut shards = [0u32; 16];
        for i in 0..1000 {
            let id = InstrumentId::new(&format!("IF{i:04}")).unwrap();
            let h = build.hash_one(id);
            assert!(seen.insert(h));
            shards[(h >> 60) as usize] += 1;
        }
        assert!(shards.iter().all(|&n| n > 20), "{shards:?}");
        let mut h = IdHasher::default();
        7u8.hash(&mut h);
        assert_ne!(h.finish(), IdHasher::default().finish());
    }
}
