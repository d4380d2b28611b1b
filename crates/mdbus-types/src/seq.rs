//! [`SeqRange`]: a run of sequence numbers, the one shape of a gap
//! everywhere (a subscriber's lost records, a gateway's gap event, a WAL
//! reader's skipped seqs).

use std::fmt;

/// The seqs `from..=to` (both included, `from <= to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqRange {
    /// First seq of the range.
    pub from: u64,
    /// Last seq of the range (included).
    pub to: u64,
}

impl SeqRange {
    /// `from..=to`; `None` when `to < from` (an empty range).
    pub const fn new(from: u64, to: u64) -> Option<SeqRange> {
        if to < from { None } else { Some(SeqRange { from, to }) }
    }

    /// The seqs strictly between `prev` and `next`: the hole when `next`
    /// follows `prev`, `None` when they are adjacent (or out of order).
    pub const fn between(prev: u64, next: u64) -> Option<SeqRange> {
        if next > prev.saturating_add(1) {
            Some(SeqRange {
                from: prev + 1,
                to: next - 1,
            })
        } else {
            None
        }
    }

    /// How many seqs.
    pub const fn len(&self) -> u64 {
        self.to - self.from + 1
    }

    /// Never empty (kept for the `len` convention).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Whether `seq` is in the range.
    pub const fn contains(&self, seq: u64) -> bool {
        self.from <= seq && seq <= self.to
    }
}

impl fmt::Display for SeqRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_is_the_hole_and_len_counts_both_ends() {
        assert_eq!(SeqRange::between(4, 5), None);
        assert_eq!(SeqRange::between(4, 4), None);
        let hole = SeqRange::between(4, 8).unwrap();
        assert_eq!((hole.from, hole.to, hole.len()), (5, 7, 3));
        assert!(hole.contains(5) && hole.contains(7) && !hole.contains(8));
        assert_eq!(hole.to_string(), "5..=7");
        assert_eq!(SeqRange::new(3, 2), None);
        assert_eq!(SeqRange::new(3, 3).unwrap().len(), 1);
    }
}
