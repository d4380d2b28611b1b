//! Atomic access to the words of a mapped board.
//!
//! Every byte other processes may change is read and written through
//! `AtomicU64`/`AtomicU32` (a racing plain `memcpy` would be undefined
//! behaviour in Rust). Each access checks its range once: a single header
//! or index field, or a whole run of words such as a latch cell (see
//! [`crate::latch`]), which is then read word by word without further
//! checks.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The words of a mapped board file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Words {
    base: *mut u8,
    len: usize,
}

// SAFETY: `Words` only hands out atomics into a mapping that its owner
// (BoardWriter / BoardReader) keeps alive; atomics are Sync.
unsafe impl Send for Words {}
// SAFETY: as above.
unsafe impl Sync for Words {}

impl Words {
    /// The words of the `len` bytes mapped at `base`.
    ///
    /// # Safety
    ///
    /// `base` is 8-aligned (a mapping is page-aligned), `base..base + len`
    /// stays mapped for as long as this `Words` (or a copy) is used, and
    /// every process accesses the shared bytes only atomically. A mapping
    /// that is read-only is only loaded from (atomic loads of read-only
    /// memory are allowed; nothing here does a read-modify-write).
    pub(crate) unsafe fn new(base: *mut u8, len: usize) -> Words {
        debug_assert!((base as usize).is_multiple_of(8));
        Words { base, len }
    }

    /// The `n` 8-byte words at byte offset `off`: the one bounds check of
    /// the range (panics if `off` is not 8-aligned or the range is not
    /// inside the mapping).
    #[inline]
    pub(crate) fn words(&self, off: usize, n: usize) -> &[AtomicU64] {
        let end = n.checked_mul(8).and_then(|bytes| off.checked_add(bytes));
        assert!(
            off.is_multiple_of(8) && end.is_some_and(|end| end <= self.len),
            "board words {off}+{n}x8 out of bounds of {} bytes",
            self.len
        );
        // SAFETY: the range is inside the mapping (checked above) and
        // 8-aligned (the map is 8-aligned, `off` too), and it stays mapped
        // while `self`'s owner is borrowed (`Words::new`'s contract).
        // `AtomicU64` has the size and alignment of `u64`, and every
        // process accesses these bytes only atomically, so a shared slice
        // of atomics over them is sound.
        unsafe { std::slice::from_raw_parts(self.base.add(off).cast::<AtomicU64>(), n) }
    }

    /// The 8-byte word at `off` (checked).
    #[inline]
    pub(crate) fn u64(&self, off: usize) -> &AtomicU64 {
        &self.words(off, 1)[0]
    }

    /// The 4-byte word at `off` (checked).
    #[inline]
    pub(crate) fn u32(&self, off: usize) -> &AtomicU32 {
        assert!(
            off.is_multiple_of(4) && off.checked_add(4).is_some_and(|end| end <= self.len),
            "board word {off} out of bounds of {} bytes",
            self.len
        );
        // SAFETY: in bounds and 4-aligned (checked, the map is
        // page-aligned); mapped and only accessed atomically as in `words`.
        unsafe { AtomicU32::from_ptr(self.base.add(off).cast::<u32>()) }
    }

    /// `N` bytes from the words at `off` (Relaxed loads).
    pub(crate) fn read_bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        for (chunk, word) in out.chunks_mut(8).zip(self.words(off, N.div_ceil(8))) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes()[..chunk.len()]);
        }
        out
    }

    /// Stores `bytes` (a multiple of 8) into the words at `off` (Relaxed).
    pub(crate) fn write_bytes(&self, off: usize, bytes: &[u8]) {
        debug_assert!(bytes.len().is_multiple_of(8));
        for (chunk, word) in bytes.chunks_exact(8).zip(self.words(off, bytes.len() / 8)) {
            word.store(
                u64::from_le_bytes(chunk.try_into().expect("8-byte chunk")),
                Ordering::Relaxed,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_once_and_bytes_round_trip() {
        let mut backing = [0u64; 4];
        // SAFETY: 32 bytes of a local array, 8-aligned, used only here.
        let words = unsafe { Words::new(backing.as_mut_ptr().cast::<u8>(), 32) };
        words.write_bytes(8, b"0123456789abcdef");
        assert_eq!(&words.read_bytes::<16>(8), b"0123456789abcdef");
        assert_eq!(&words.read_bytes::<12>(8), b"0123456789ab");
        assert_eq!(words.words(0, 4).len(), 4);
        assert_eq!(words.u32(28).load(Ordering::Relaxed), 0);
        for bad in [(0, 5), (8, 4), (4, 1), (32, 1), (usize::MAX - 7, 1), (0, usize::MAX)] {
            let result = std::panic::catch_unwind(|| words.words(bad.0, bad.1).len());
            assert!(result.is_err(), "{bad:?} accepted");
        }
        assert!(std::panic::catch_unwind(|| words.u32(30).load(Ordering::Relaxed)).is_err());
        assert!(std::panic::catch_unwind(|| words.u32(32).load(Ordering::Relaxed)).is_err());
    }
}
