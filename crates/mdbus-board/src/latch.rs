//! The seqcount latch of a board cell (as in the Linux kernel's
//! `write_seqcount_latch`): a `seq` word, then two copies of the record.
//!
//! The writer makes `seq` odd, writes copy 0, makes `seq` even, writes
//! copy 1; a reader copies `copy[seq & 1]` (the one not being written) and
//! retries only if `seq` moved meanwhile. A reader never waits for the
//! writer.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use bytemuck::Pod;

use crate::words::Words;

/// One latch cell holding records `R`, its range checked once by
/// [`Latch::at`]; its words are then read and written without checks.
pub(crate) struct Latch<'a, R> {
    seq: &'a AtomicU64,
    copies: [&'a [AtomicU64]; 2],
    record: PhantomData<fn() -> R>,
}

/// Copies a record out of `copy`'s words (Relaxed loads; the latch
/// protocol of the caller orders them).
#[inline]
fn load<R: Pod>(copy: &[AtomicU64]) -> R {
    let mut record = R::zeroed();
    let dst: &mut [u64] = bytemuck::cast_slice_mut(bytemuck::bytes_of_mut(&mut record));
    debug_assert_eq!(dst.len(), copy.len());
    for (word, shared) in dst.iter_mut().zip(copy) {
        *word = shared.load(Ordering::Relaxed);
    }
    record
}

/// Stores `record` into `copy`'s words (Relaxed stores).
#[inline]
fn store<R: Pod>(copy: &[AtomicU64], record: &R) {
    let src: &[u64] = bytemuck::cast_slice(bytemuck::bytes_of(record));
    debug_assert_eq!(src.len(), copy.len());
    for (shared, word) in copy.iter().zip(src) {
        shared.store(*word, Ordering::Relaxed);
    }
}

impl<'a, R: Pod> Latch<'a, R> {
    /// The cell at byte offset `cell`: `seq`, then two copies of `R`. The
    /// whole cell's range is checked here, once.
    #[inline]
    pub(crate) fn at(words: &'a Words, cell: usize) -> Latch<'a, R> {
        const {
            assert!(size_of::<R>().is_multiple_of(8) && align_of::<R>() >= 8);
        }
        let n = size_of::<R>() / 8;
        let (seq, copies) = words
            .words(cell, 1 + 2 * n)
            .split_first()
            .expect("a cell has a seq word");
        let (copy0, copy1) = copies.split_at(n);
        Latch {
            seq,
            copies: [copy0, copy1],
            record: PhantomData,
        }
    }

    /// The cell's `seq` word (tests simulate a writer's death with it).
    #[cfg(test)]
    pub(crate) fn seq(&self) -> &'a AtomicU64 {
        self.seq
    }

    /// Writer side: stores `record` in both copies, `seq` += 2. The one
    /// writer only (the cell is even between updates).
    pub(crate) fn write(&self, record: &R) {
        let s = self.seq.load(Ordering::Relaxed);
        debug_assert!(s.is_multiple_of(2), "a cell is even between updates (fixed on open)");
        // SYNC: the previous update's copy-1 stores happen before `seq`
        // turns odd; pairs with the Acquire load of `seq` in `read`
        // (a reader that sees the odd `seq` reads a complete copy 1).
        fence(Ordering::Release);
        self.seq.store(s + 1, Ordering::Relaxed);
        // SYNC: this fence orders the odd `seq` before the copy-0 stores;
        // pairs with the Acquire fence in `read` (a reader that saw any
        // copy-0 word of this update then sees `seq` moved).
        fence(Ordering::Release);
        store(self.copies[0], record);
        // SYNC: copy 0 is complete before `seq` turns even; pairs with the
        // Acquire load of `seq` in `read`.
        fence(Ordering::Release);
        self.seq.store(s + 2, Ordering::Relaxed);
        // SYNC: the even `seq` before the copy-1 stores; pairs with the
        // Acquire fence in `read`.
        fence(Ordering::Release);
        store(self.copies[1], record);
    }

    /// Reader side: the copy not being written; never waits.
    pub(crate) fn read(&self) -> R {
        loop {
            // SYNC: pairs with the Release fences before each `seq` store in
            // `write`: the copy we pick was completed before.
            let s = self.seq.load(Ordering::Acquire);
            let record = load(self.copies[(s & 1) as usize]);
            // SYNC: pairs with the Release fences after each `seq` store in
            // `write`: if any word above came from a newer update, the
            // reload below sees `seq` moved.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s {
                return record;
            }
        }
    }

    /// After a writer died mid-update, makes both copies the last complete
    /// value: with `seq` odd it died writing copy 0 (copy 1 is complete);
    /// with `seq` even it may have died writing copy 1 (copy 0 is
    /// complete). Readers are never exposed to the copy being repaired.
    /// Returns whether a copy was rewritten.
    pub(crate) fn repair(&self) -> bool {
        let s = self.seq.load(Ordering::Relaxed);
        let [copy0, copy1] = self.copies;
        if s.is_multiple_of(2) {
            // Readers read copy 0 while `seq` is even: copy 1 may be fixed.
            let complete: R = load(copy0);
            let other: R = load(copy1);
            if bytemuck::bytes_of(&complete) == bytemuck::bytes_of(&other) {
                return false;
            }
            store(copy1, &complete);
            return true;
        }
        let complete: R = load(copy1);
        store(copy0, &complete);
        // SYNC: copy 0 repaired before `seq` turns even; pairs with the
        // Acquire load of `seq` in `read`.
        fence(Ordering::Release);
        self.seq.store(s + 1, Ordering::Relaxed);
        true
    }
}
