//! The board's index: `index_len` entries of `symbol[16] | slot: u32 |
//! ready: u32`, FNV-1a 64 of the symbol masked by `index_len - 1`, linear
//! probing; a `ready` of 0 ends a probe. Entries are never removed.

use std::sync::atomic::Ordering;

use mdbus_types::InstrumentId;

use crate::layout::Layout;
use crate::words::Words;

/// Offset of `symbol` in an index entry.
const ENTRY_SYMBOL: usize = 0;
/// Offset of `slot` in an index entry.
const ENTRY_SLOT: usize = 16;
/// Offset of `ready` in an index entry.
const ENTRY_READY: usize = 20;

/// FNV-1a 64 of the 16 symbol bytes: the index hash.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Where a probe for an instrument ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// On the board, in this slot (as the entry says: not yet checked
    /// against the capacity).
    Found(u32),
    /// Not on the board; this index entry is where it would go.
    Vacant(usize),
    /// Not on the board, and every index entry is taken.
    Full,
}

/// Whether index entry `entry` (an offset) is complete.
fn is_ready(words: &Words, entry: usize) -> bool {
    // SYNC: pairs with the Release store of `ready` in `publish_entry`: a
    // ready entry's symbol and slot are complete.
    words.u32(entry + ENTRY_READY).load(Ordering::Acquire) != 0
}

fn symbol(words: &Words, entry: usize) -> InstrumentId {
    InstrumentId(words.read_bytes(entry + ENTRY_SYMBOL))
}

fn slot(words: &Words, entry: usize) -> u32 {
    words.u32(entry + ENTRY_SLOT).load(Ordering::Relaxed)
}

/// Looks `id` up in the index.
pub(crate) fn probe(words: &Words, layout: &Layout, id: &InstrumentId) -> Probe {
    let mask = layout.index_len - 1;
    let mut i = fnv1a64(id.as_bytes()) as usize & mask;
    for _ in 0..layout.index_len {
        let entry = layout.entry(i);
        if !is_ready(words, entry) {
            return Probe::Vacant(i);
        }
        if symbol(words, entry) == *id {
            return Probe::Found(slot(words, entry));
        }
        i = (i + 1) & mask;
    }
    Probe::Full
}

/// Every complete index entry, in index order: `(instrument, slot)`.
pub(crate) fn entries<'a>(words: &'a Words, layout: &'a Layout) -> impl Iterator<Item = (InstrumentId, u32)> + 'a {
    (0..layout.index_len)
        .map(|i| layout.entry(i))
        .filter(|&entry| is_ready(words, entry))
        .map(|entry| (symbol(words, entry), slot(words, entry)))
}

/// Writes index entry `i` (a vacant one, found by [`probe`]): `id` in
/// `slot`, made visible to readers last. The one writer only.
pub(crate) fn publish_entry(words: &Words, layout: &Layout, i: usize, id: &InstrumentId, slot: u32) {
    let entry = layout.entry(i);
    words.write_bytes(entry + ENTRY_SYMBOL, id.as_bytes());
    words.u32(entry + ENTRY_SLOT).store(slot, Ordering::Relaxed);
    // SYNC: pairs with the Acquire load of `ready` in `is_ready`: symbol
    // and slot are visible before the entry is.
    words.u32(entry + ENTRY_READY).store(1, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn probe_finds_vacant_found_and_full() {
        let layout = Layout::new(1); // index_len 2
        assert_eq!(layout.index_len, 2);
        let mut backing = vec![0u64; layout.file_len / 8];
        // SAFETY: a local, 8-aligned buffer of the layout's size, used only here.
        let words = unsafe { Words::new(backing.as_mut_ptr().cast::<u8>(), layout.file_len) };
        let (a, b, c) = (
            InstrumentId::new("A").unwrap(),
            InstrumentId::new("B").unwrap(),
            InstrumentId::new("C").unwrap(),
        );
        let Probe::Vacant(i) = probe(&words, &layout, &a) else {
            panic!("empty index")
        };
        assert_eq!(i, fnv1a64(a.as_bytes()) as usize & 1);
        publish_entry(&words, &layout, i, &a, 0);
        assert_eq!(probe(&words, &layout, &a), Probe::Found(0));
        let Probe::Vacant(j) = probe(&words, &layout, &b) else {
            panic!("one entry free")
        };
        assert_eq!(j, 1 - i, "linear probing takes the other entry");
        publish_entry(&words, &layout, j, &b, 7);
        assert_eq!(probe(&words, &layout, &b), Probe::Found(7));
        assert_eq!(probe(&words, &layout, &c), Probe::Full);
        let mut all: Vec<_> = entries(&words, &layout).collect();
        all.sort();
        assert_eq!(all, vec![(a, 0), (b, 7)]);
    }
}
