//! The seqcount latch of a board cell (as in the Linux kernel's
//! `write_seqcount_latch`): a `seq` word, then two copies of the record.
//!
//! The writer makes `seq` odd, writes copy 0, makes `seq` even, writes
//! copy 1; a reader copies `copy[seq & 1]` (the one not being written) and
//! retries only if `seq` moved meanwhile. A reader never waits for the
//! writer.

use std::sync::atomic::{Ordering, fence};

use bytemuck::Pod;

use crate::words::Words;

impl Words {
    /// Writer side of the latch at `cell` holding records of `W` words.
    pub(crate) fn latch_write<R: Pod>(&self, cell: usize, record: &R) {
        let seq = self.u64(cell);
        let copy_len = size_of::<R>();
        let s = seq.load(Ordering::Relaxed);
        debug_assert!(s.is_multiple_of(2), "a cell is even between updates (fixed on open)");
        // SYNC: the previous update's copy-1 stores happen before `seq`
        // turns odd; pairs with the Acquire load of `seq` in `latch_read`
        // (a reader that sees the odd `seq` reads a complete copy 1).
        fence(Ordering::Release);
        seq.store(s + 1, Ordering::Relaxed);
        // SYNC: this fence orders the odd `seq` before the copy-0 stores;
        // pairs with the Acquire fence in `latch_read` (a reader that saw
        // any copy-0 word of this update then sees `seq` moved).
        fence(Ordering::Release);
        self.write_record(cell + 8, record);
        // SYNC: copy 0 is complete before `seq` turns even; pairs with the
        // Acquire load of `seq` in `latch_read`.
        fence(Ordering::Release);
        seq.store(s + 2, Ordering::Relaxed);
        // SYNC: the even `seq` before the copy-1 stores; pairs with the
        // Acquire fence in `latch_read`.
        fence(Ordering::Release);
        self.write_record(cell + 8 + copy_len, record);
    }

    /// Reader side of the latch: the copy not being written; never waits.
    pub(crate) fn latch_read<R: Pod, const W: usize>(&self, cell: usize) -> R {
        let seq = self.u64(cell);
        let copy_len = size_of::<R>();
        loop {
            // SYNC: pairs with the Release fences before each `seq` store in
            // `latch_write`: the copy we pick was completed before.
            let s = seq.load(Ordering::Acquire);
            let copy = if s & 1 == 0 { cell + 8 } else { cell + 8 + copy_len };
            let record = self.read_record::<R, W>(copy);
            // SYNC: pairs with the Release fences after each `seq` store in
            // `latch_write`: if any word above came from a newer update, the
            // reload below sees `seq` moved.
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s {
                return record;
            }
        }
    }

    /// After a writer died mid-update, make both copies the last complete
    /// value: with `seq` odd it died writing copy 0 (copy 1 is complete);
    /// with `seq` even it may have died writing copy 1 (copy 0 is
    /// complete). Readers are never exposed to the copy being repaired.
    /// Returns whether a copy was rewritten.
    pub(crate) fn latch_repair<R: Pod, const W: usize>(&self, cell: usize) -> bool {
        let seq = self.u64(cell);
        let s = seq.load(Ordering::Relaxed);
        let copy_len = size_of::<R>();
        let (copy0, copy1) = (cell + 8, cell + 8 + copy_len);
        if s.is_multiple_of(2) {
            // Readers read copy 0 while `seq` is even: copy 1 may be fixed.
            let complete: R = self.read_record::<R, W>(copy0);
            let other: R = self.read_record::<R, W>(copy1);
            if bytemuck::bytes_of(&complete) == bytemuck::bytes_of(&other) {
                return false;
            }
            self.write_record(copy1, &complete);
            return true;
        }
        let complete: R = self.read_record::<R, W>(copy1);
        self.write_record(copy0, &complete);
        // SYNC: copy 0 repaired before `seq` turns even; pairs with the
        // Acquire load of `seq` in `latch_read`.
        fence(Ordering::Release);
        seq.store(s + 1, Ordering::Relaxed);
        true
    }
}
