//! Atomic access to the words of a mapped board.
//!
//! Every byte other processes may change is read and written through
//! `AtomicU64`/`AtomicU32` (a racing plain `memcpy` would be undefined
//! behaviour in Rust).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytemuck::Pod;

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

    #[inline]
    pub(crate) fn u64(&self, off: usize) -> &AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.len,
            "board word {off} out of bounds"
        );
        // SAFETY: in bounds and 8-aligned (the map is page-aligned); the map
        // outlives `self`'s owner borrow; every process accesses the shared
        // words only atomically (readers only load, which is allowed on a
        // read-only mapping).
        unsafe { AtomicU64::from_ptr(self.base.add(off).cast::<u64>()) }
    }

    #[inline]
    pub(crate) fn u32(&self, off: usize) -> &AtomicU32 {
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.len,
            "board word {off} out of bounds"
        );
        // SAFETY: as in `u64`, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.base.add(off).cast::<u32>()) }
    }

    pub(crate) fn read_bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let word = self.u64(off + 8 * i).load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    pub(crate) fn write_bytes(&self, off: usize, bytes: &[u8]) {
        debug_assert!(bytes.len().is_multiple_of(8));
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
            self.u64(off + 8 * i).store(word, Ordering::Relaxed);
        }
    }

    /// Copies a record from `words` words at `off` (Relaxed loads; the
    /// caller's latch protocol orders them).
    pub(crate) fn read_record<R: Pod, const W: usize>(&self, off: usize) -> R {
        let mut record = R::zeroed();
        let dst: &mut [u64] = bytemuck::cast_slice_mut(bytemuck::bytes_of_mut(&mut record));
        for (i, word) in dst.iter_mut().enumerate().take(W) {
            *word = self.u64(off + 8 * i).load(Ordering::Relaxed);
        }
        record
    }

    pub(crate) fn write_record<R: Pod>(&self, off: usize, record: &R) {
        let src: &[u64] = bytemuck::cast_slice(bytemuck::bytes_of(record));
        for (i, word) in src.iter().enumerate() {
            self.u64(off + 8 * i).store(*word, Ordering::Relaxed);
        }
    }
}
