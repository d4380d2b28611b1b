//! The sparse index of a segment: every [`INDEX_STRIDE`]th frame's
//! `(seq, ts_event) -> offset`, so a seek by seq or time is a binary
//! search plus at most `INDEX_STRIDE` frame steps.

/// One index entry every this many frames.
pub const INDEX_STRIDE: u64 = 64;

/// One entry of the sparse index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The frame's seq.
    pub seq: u64,
    /// The frame's `ts_event`.
    pub ts_event: i64,
    /// Byte offset of the frame in its segment file.
    pub offset: u64,
}

/// Sparse `(seq, ts_event) -> offset` index of one segment, built while
/// scanning or appending (frames in seq order).
#[derive(Debug, Clone, Default)]
pub struct SparseIndex {
    entries: Vec<IndexEntry>,
    frames: u64,
}

impl SparseIndex {
    /// Notes one frame (in order); every `INDEX_STRIDE`th is kept.
    #[inline]
    pub fn note(&mut self, seq: u64, ts_event: i64, offset: u64) {
        self.note_with(seq, offset, || ts_event);
    }

    /// [`SparseIndex::note`], reading the frame's `ts_event` only for a
    /// frame it keeps (the writer's append takes it out of the record's
    /// bytes).
    #[inline]
    pub fn note_with(&mut self, seq: u64, offset: u64, ts_event: impl FnOnce() -> i64) {
        if self.frames.is_multiple_of(INDEX_STRIDE) {
            self.entries.push(IndexEntry {
                seq,
                ts_event: ts_event(),
                offset,
            });
        }
        self.frames += 1;
    }

    /// The entries, in seq order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The last entry with `seq <= target` (where a scan for `target`
    /// starts), `None` when `target` precedes every entry.
    pub fn floor_seq(&self, target: u64) -> Option<IndexEntry> {
        let i = self.entries.partition_point(|e| e.seq <= target);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// The last entry with `ts_event < target` (a scan for the first record
    /// at or after `target` starts there), `None` when there is none.
    /// Assumes `ts_event` does not decrease along the feed.
    pub fn floor_time(&self, target: i64) -> Option<IndexEntry> {
        let i = self.entries.partition_point(|e| e.ts_event < target);
        i.checked_sub(1).map(|i| self.entries[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_lookups() {
        let mut idx = SparseIndex::default();
        for i in 0..1000u64 {
            idx.note(i + 1, (i as i64) * 10, 128 + i * 40);
        }
        assert_eq!(idx.entries().len(), 16);
        assert_eq!(idx.floor_seq(0), None);
        assert_eq!(idx.floor_seq(1).unwrap().seq, 1);
        assert_eq!(idx.floor_seq(64).unwrap().seq, 1);
        assert_eq!(idx.floor_seq(65).unwrap().seq, 65);
        assert_eq!(idx.floor_seq(5000).unwrap().seq, 961);
        assert_eq!(idx.floor_time(0), None);
        assert_eq!(idx.floor_time(641).unwrap().seq, 65);
        assert_eq!(idx.floor_time(640).unwrap().seq, 1);
    }
}
