//! The top-10 order book that publisher, subscriber and snapshot board share.
//!
//! [`Book`] applies [`BookDelta`]s under docs/spec.md's top-10 rule: `qty` 0
//! removes a level; an insert into a full side drops the level pushed past
//! 10 (or the insert itself when it is worse than all 10); a deeper level
//! that enters the top 10 after a removal arrives as its own delta. So the
//! last snapshot plus the deltas after it reproduce the publisher's view.

use crate::error::{Error, Result};
use crate::instrument::InstrumentId;
use crate::price::Price;
use crate::record::{BOOK_DEPTH, BookDelta, BookSnapshot, Kind, Level, RecordHeader, Side};

/// One side of the top-10 view, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BookSide {
    levels: [Level; BOOK_DEPTH],
    count: usize,
}

impl BookSide {
    const EMPTY: BookSide = BookSide {
        levels: [Level::EMPTY; BOOK_DEPTH],
        count: 0,
    };

    fn valid(&self) -> &[Level] {
        &self.levels[..self.count]
    }

    /// `a` is strictly better than `b` on this side.
    fn better(side: Side, a: Price, b: Price) -> bool {
        match side {
            Side::Bid => a > b,
            Side::Ask => a < b,
        }
    }

    /// Applies a level change; returns whether the side changed.
    fn apply(&mut self, side: Side, price: Price, qty: i64) -> bool {
        // The first level `price` is not worse than (`!better(side, level,
        // price)`), with the side's comparison chosen once, not per level.
        let mut valid = self.valid().iter();
        let pos = match side {
            Side::Bid => valid.position(|l| l.price <= price),
            Side::Ask => valid.position(|l| l.price >= price),
        };
        match pos {
            Some(i) if self.levels[i].price == price => {
                if qty == 0 {
                    self.levels.copy_within(i + 1..self.count, i);
                    self.count -= 1;
                    self.levels[self.count] = Level::EMPTY;
                } else if self.levels[i].qty == qty {
                    return false;
                } else {
                    self.levels[i].qty = qty;
                }
                true
            }
            // Removing a level that is not in the view: nothing to do.
            _ if qty == 0 => false,
            Some(i) => {
                // Insert before i; a full side drops its worst level.
                let end = (self.count + 1).min(BOOK_DEPTH);
                self.levels.copy_within(i..end - 1, i + 1);
                self.levels[i] = Level { price, qty };
                self.count = end;
                true
            }
            None if self.count < BOOK_DEPTH => {
                self.levels[self.count] = Level { price, qty };
                self.count += 1;
                true
            }
            // Worse than all 10: outside the top-10 view, dropped.
            None => false,
        }
    }
}

/// A top-10 order book of one instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    instrument: InstrumentId,
    bids: BookSide,
    asks: BookSide,
    /// seq / ts of the last record that changed the book.
    last: RecordHeader,
}

impl Book {
    /// An empty book of `instrument`, changed by no record yet (seq 0).
    pub fn new(instrument: InstrumentId) -> Book {
        Book {
            instrument,
            bids: BookSide::EMPTY,
            asks: BookSide::EMPTY,
            last: RecordHeader::new(Kind::BookSnapshot, 0),
        }
    }

    /// A book from a snapshot, which must keep docs/spec.md's record rules
    /// (see [`validate_snapshot`]).
    pub fn from_snapshot(snapshot: &BookSnapshot) -> Result<Book> {
        let mut book = Book::new(snapshot.instrument);
        book.apply_snapshot(snapshot)?;
        Ok(book)
    }

    /// Replaces the book with `snapshot` (which must be of this
    /// instrument and valid); the book is unchanged after an error.
    pub fn apply_snapshot(&mut self, snapshot: &BookSnapshot) -> Result<()> {
        validate_snapshot(snapshot)?;
        if snapshot.instrument != self.instrument {
            return Err(Error::Snapshot {
                instrument: snapshot.instrument.to_string(),
                seq: snapshot.header.seq,
                reason: format!("applied to the book of {}", self.instrument),
            });
        }
        self.bids = BookSide {
            levels: snapshot.bids,
            count: usize::from(snapshot.bid_count),
        };
        self.asks = BookSide {
            levels: snapshot.asks,
            count: usize::from(snapshot.ask_count),
        };
        self.set_last(&snapshot.header);
        Ok(())
    }

    /// Whether `snapshot` holds exactly this book: the kind, instrument,
    /// counts and all 10 levels of each side equal, the padding zero. If
    /// so, the snapshot is recorded as the book's last change (as
    /// [`Book::apply_snapshot`] would) without checking its levels again:
    /// they are the book's own, which every change keeps valid, so such a
    /// snapshot passes [`validate_snapshot`] (a property test holds this).
    /// The book is unchanged otherwise.
    ///
    /// A subscriber's book kept by deltas usually equals the next
    /// snapshot: this makes that case cost a comparison.
    pub fn confirm_snapshot(&mut self, snapshot: &BookSnapshot) -> bool {
        let same = snapshot.header.kind == Kind::BookSnapshot as u16
            && snapshot.instrument == self.instrument
            && snapshot._pad == [0; 4]
            && usize::from(snapshot.bid_count) == self.bids.count
            && usize::from(snapshot.ask_count) == self.asks.count
            && snapshot.bids == self.bids.levels
            && snapshot.asks == self.asks.levels;
        if same {
            self.set_last(&snapshot.header);
        }
        same
    }

    /// Applies one delta under the top-10 rule. Returns whether the view
    /// changed (an insert worse than a full side's 10th level, or removing
    /// a price not in the view, changes nothing). An invalid delta (wrong
    /// kind, side not 0/1, NULL price, negative qty, other instrument) is
    /// an error and the book is unchanged.
    pub fn apply_delta(&mut self, delta: &BookDelta) -> Result<bool> {
        let bad = |reason: String| Error::Delta {
            instrument: delta.instrument.to_string(),
            seq: delta.header.seq,
            reason,
        };
        if delta.header.kind != Kind::BookDelta as u16 {
            return Err(bad(format!("kind {} is not a book delta", delta.header.kind)));
        }
        if delta.instrument != self.instrument {
            return Err(bad(format!("applied to the book of {}", self.instrument)));
        }
        let side = Side::from_u8(delta.side)
            .ok_or_else(|| bad(format!("side {} is neither 0 (bid) nor 1 (ask)", delta.side)))?;
        if delta.price.is_null() {
            return Err(bad("price is NULL".into()));
        }
        if delta.qty < 0 {
            return Err(bad(format!("negative qty {}", delta.qty)));
        }
        let book_side = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        let changed = book_side.apply(side, delta.price, delta.qty);
        if changed {
            self.set_last(&delta.header);
        }
        Ok(changed)
    }

    fn set_last(&mut self, header: &RecordHeader) {
        self.last.seq = header.seq;
        self.last.ts_event = header.ts_event;
        self.last.ts_publish = header.ts_publish;
    }

    /// The instrument.
    pub fn instrument(&self) -> InstrumentId {
        self.instrument
    }

    /// Valid bid levels, best (highest) first.
    pub fn bids(&self) -> &[Level] {
        self.bids.valid()
    }

    /// Valid ask levels, best (lowest) first.
    pub fn asks(&self) -> &[Level] {
        self.asks.valid()
    }

    /// Best bid, if any.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids().first().copied()
    }

    /// Best ask, if any.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks().first().copied()
    }

    /// seq, `ts_event` and `ts_publish` of the last record that changed
    /// the book (seq 0 if none), in a `BookSnapshot` header with flags 0.
    pub fn last_change(&self) -> &RecordHeader {
        &self.last
    }

    /// Sum of the quantities of both sides' valid levels.
    pub fn depth_qty(&self) -> i64 {
        self.bids().iter().chain(self.asks()).map(|l| l.qty).sum()
    }

    /// The book as a `BookSnapshot` whose header carries the seq,
    /// `ts_event` and `ts_publish` of the last record that changed it,
    /// flags 0.
    pub fn to_snapshot(&self) -> BookSnapshot {
        let mut snapshot = BookSnapshot::empty(self.instrument, self.last.ts_event);
        snapshot.header.seq = self.last.seq;
        snapshot.header.ts_publish = self.last.ts_publish;
        snapshot.bid_count = self.bids.count as u16;
        snapshot.ask_count = self.asks.count as u16;
        snapshot.bids = self.bids.levels;
        snapshot.asks = self.asks.levels;
        snapshot
    }
}

/// Checks docs/spec.md's `BookSnapshot` rules: kind 2, a valid symbol, counts
/// 0..=10, levels `0..count` with `qty > 0` and strictly worsening prices
/// (bids descending, asks ascending), levels `count..10` empty, padding 0.
pub fn validate_snapshot(snapshot: &BookSnapshot) -> Result<()> {
    // Every snapshot a subscriber applies is checked: the verdict first,
    // without a branch per level; the reason only for a bad one.
    if snapshot_is_valid(snapshot) {
        return Ok(());
    }
    snapshot_error(snapshot)
}

/// [`validate_snapshot`]'s verdict: the same rules (a property test
/// compares it with `snapshot_error`), each level's checks folded into one
/// flag.
#[inline]
fn snapshot_is_valid(snapshot: &BookSnapshot) -> bool {
    snapshot.header.kind == Kind::BookSnapshot as u16
        && InstrumentId::from_bytes(snapshot.instrument.0).is_ok()
        && snapshot._pad == [0; 4]
        && side_is_valid(Side::Bid, &snapshot.bids, snapshot.bid_count)
        && side_is_valid(Side::Ask, &snapshot.asks, snapshot.ask_count)
}

/// Levels `0..count` valid and strictly worsening, the rest empty.
#[inline]
fn side_is_valid(side: Side, levels: &[Level; BOOK_DEPTH], count: u16) -> bool {
    let count = usize::from(count);
    let mut ok = count <= BOOK_DEPTH;
    for (i, level) in levels.iter().enumerate() {
        let valid = !level.price.is_null()
            & (level.qty > 0)
            & (i == 0 || BookSide::better(side, levels[i - 1].price, level.price));
        ok &= if i < count { valid } else { *level == Level::EMPTY };
    }
    ok
}

/// What breaks [`validate_snapshot`]'s rules, rule by rule, as the error
/// that names it (`Ok`: nothing).
fn snapshot_error(snapshot: &BookSnapshot) -> Result<()> {
    let bad = |reason: String| Error::Snapshot {
        instrument: snapshot.instrument.to_string(),
        seq: snapshot.header.seq,
        reason,
    };
    if snapshot.header.kind != Kind::BookSnapshot as u16 {
        return Err(bad(format!("kind {} is not a book snapshot", snapshot.header.kind)));
    }
    InstrumentId::from_bytes(snapshot.instrument.0).map_err(|e| bad(e.to_string()))?;
    if snapshot._pad != [0; 4] {
        return Err(bad("non-zero padding".into()));
    }
    for (name, side, levels, count) in [
        ("bid", Side::Bid, &snapshot.bids, snapshot.bid_count),
        ("ask", Side::Ask, &snapshot.asks, snapshot.ask_count),
    ] {
        let count = usize::from(count);
        if count > BOOK_DEPTH {
            return Err(bad(format!("{name}_count {count} > 10")));
        }
        for (i, level) in levels.iter().enumerate() {
            if i < count {
                if level.price.is_null() || level.qty <= 0 {
                    return Err(bad(format!(
                        "{name} level {i} ({:?}, {}) is not a valid level",
                        level.price, level.qty
                    )));
                }
                if i > 0 && !BookSide::better(side, levels[i - 1].price, level.price) {
                    return Err(bad(format!(
                        "{name} level {i} does not worsen the price of level {}",
                        i - 1
                    )));
                }
            } else if *level != Level::EMPTY {
                return Err(bad(format!("{name} level {i} beyond count {count} is not empty")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn id() -> InstrumentId {
        InstrumentId::new("IF2501").unwrap()
    }

    fn delta(side: Side, price: i64, qty: i64, seq: u64) -> BookDelta {
        let mut d = BookDelta::new(id(), side, Price(price), qty, seq as i64 * 10);
        d.header.seq = seq;
        d
    }

    #[test]
    fn insert_update_remove_keep_order() {
        let mut book = Book::new(id());
        assert!(book.apply_delta(&delta(Side::Bid, 100, 5, 1)).unwrap());
        assert!(book.apply_delta(&delta(Side::Bid, 102, 1, 2)).unwrap());
        assert!(book.apply_delta(&delta(Side::Bid, 101, 3, 3)).unwrap());
        assert!(book.apply_delta(&delta(Side::Ask, 105, 2, 4)).unwrap());
        assert!(book.apply_delta(&delta(Side::Ask, 103, 2, 5)).unwrap());
        let prices: Vec<_> = book.bids().iter().map(|l| l.price.0).collect();
        assert_eq!(prices, [102, 101, 100]);
        let prices: Vec<_> = book.asks().iter().map(|l| l.price.0).collect();
        assert_eq!(prices, [103, 105]);
        assert!(book.apply_delta(&delta(Side::Bid, 101, 0, 6)).unwrap());
        assert!(!book.apply_delta(&delta(Side::Bid, 99, 0, 7)).unwrap());
        assert_eq!(book.last_change().seq, 6);
        let snap = book.to_snapshot();
        validate_snapshot(&snap).unwrap();
        assert_eq!((snap.bid_count, snap.ask_count), (2, 2));
        assert_eq!(Book::from_snapshot(&snap).unwrap(), book);
    }

    #[test]
    fn full_side_drops_the_level_pushed_past_ten() {
        let mut book = Book::new(id());
        for i in 0..10 {
            book.apply_delta(&delta(Side::Ask, 100 + i, 1, i as u64 + 1)).unwrap();
        }
        assert!(!book.apply_delta(&delta(Side::Ask, 200, 1, 11)).unwrap());
        assert!(book.apply_delta(&delta(Side::Ask, 50, 1, 12)).unwrap());
        assert_eq!(book.asks().len(), 10);
        assert_eq!(book.asks()[0].price.0, 50);
        assert_eq!(book.asks()[9].price.0, 108);
    }

    #[test]
    fn invalid_delta_is_an_error_and_leaves_the_book_unchanged() {
        let mut book = Book::new(id());
        book.apply_delta(&delta(Side::Bid, 100, 5, 1)).unwrap();
        let before = book.clone();
        let mut side2 = delta(Side::Bid, 101, 1, 2);
        side2.side = 2;
        let null = delta(Side::Bid, i64::MAX, 1, 3);
        let neg = delta(Side::Bid, 101, -1, 4);
        let mut other = delta(Side::Bid, 101, 1, 5);
        other.instrument = InstrumentId::new("rb2505").unwrap();
        for bad in [side2, null, neg, other] {
            let err = book.apply_delta(&bad).unwrap_err();
            assert!(err.to_string().contains(&format!("seq {}", bad.header.seq)), "{err}");
            assert_eq!(book, before);
        }
    }

    #[test]
    fn snapshot_rules_are_checked() {
        let mut snap = BookSnapshot::empty(id(), 1);
        validate_snapshot(&snap).unwrap();
        snap.bid_count = 2;
        snap.bids[0] = Level {
            price: Price(10),
            qty: 1,
        };
        snap.bids[1] = Level {
            price: Price(10),
            qty: 1,
        };
        assert!(validate_snapshot(&snap).unwrap_err().to_string().contains("worsen"));
        snap.bids[1].price = Price(9);
        validate_snapshot(&snap).unwrap();
        snap.bids[2].qty = 3;
        assert!(validate_snapshot(&snap).is_err());
        assert!(validate_snapshot(&bytemuck::Zeroable::zeroed()).is_err());
    }

    /// A snapshot near the rules' edges: a valid book of `bids`/`asks`
    /// levels, then one field changed by `edit`.
    fn edited_snapshot(bids: usize, asks: usize, edit: (u8, usize, i64)) -> BookSnapshot {
        let mut snap = BookSnapshot::empty(id(), 1);
        snap.bid_count = bids as u16;
        snap.ask_count = asks as u16;
        for i in 0..bids {
            snap.bids[i] = Level {
                price: Price(100 - i as i64),
                qty: 1 + i as i64,
            };
        }
        for i in 0..asks {
            snap.asks[i] = Level {
                price: Price(101 + i as i64),
                qty: 1 + i as i64,
            };
        }
        let (field, i, value) = edit;
        match field {
            0 => {}
            1 => snap.bids[i].price = Price(value),
            2 => snap.asks[i].price = Price(value),
            3 => snap.bids[i].qty = value,
            4 => snap.asks[i].qty = value,
            5 => snap.bid_count = value as u16,
            6 => snap.ask_count = value as u16,
            7 => snap.header.kind = value as u16,
            8 => snap._pad[i % 4] = value as u8,
            _ => snap.instrument.0[i] = value as u8,
        }
        snap
    }

    proptest! {
        #[test]
        fn fast_snapshot_verdict_is_the_rule_by_rule_verdict(
            bids in 0usize..=10,
            asks in 0usize..=10,
            field in 0u8..=9,
            i in 0usize..10,
            value in prop_oneof![Just(i64::MAX), Just(0i64), Just(-1i64), 0i64..12, 95i64..106],
        ) {
            let snap = edited_snapshot(bids, asks, (field, i, value));
            prop_assert_eq!(snapshot_is_valid(&snap), snapshot_error(&snap).is_ok(), "{:?}", snap);
        }

        #[test]
        fn a_confirmed_snapshot_is_valid_and_is_the_book(
            bids in 0usize..=10,
            asks in 0usize..=10,
            field in 0u8..=9,
            i in 0usize..10,
            value in prop_oneof![Just(i64::MAX), Just(0i64), Just(-1i64), 0i64..12, 95i64..106],
        ) {
            let mut book = Book::from_snapshot(&edited_snapshot(bids, asks, (0, 0, 0))).unwrap();
            let mut snap = edited_snapshot(bids, asks, (field, i, value));
            snap.header.seq = 9;
            let before = book.clone();
            if book.confirm_snapshot(&snap) {
                prop_assert!(snapshot_error(&snap).is_ok(), "{:?}", snap);
                let mut applied = before;
                applied.apply_snapshot(&snap).unwrap();
                prop_assert_eq!(book.to_snapshot(), applied.to_snapshot());
                prop_assert_eq!(book.to_snapshot().header.seq, 9);
            } else {
                prop_assert_eq!(book.to_snapshot(), before.to_snapshot());
            }
        }
    }

    /// Reference model: full depth per side in a BTreeMap; the publisher's
    /// top-10 view is the best 10 of each, and the publisher sends deltas
    /// by docs/spec.md's rule.
    #[derive(Default)]
    struct Reference {
        bids: BTreeMap<i64, i64>,
        asks: BTreeMap<i64, i64>,
    }

    impl Reference {
        fn top(&self, side: Side) -> Vec<(i64, i64)> {
            match side {
                Side::Bid => self.bids.iter().rev().take(10).map(|(p, q)| (*p, *q)).collect(),
                Side::Ask => self.asks.iter().take(10).map(|(p, q)| (*p, *q)).collect(),
            }
        }

        /// Sets a level in the full book; returns the deltas a publisher sends.
        fn set(&mut self, side: Side, price: i64, qty: i64) -> Vec<(Side, i64, i64)> {
            let before = self.top(side);
            let map = match side {
                Side::Bid => &mut self.bids,
                Side::Ask => &mut self.asks,
            };
            if qty == 0 {
                map.remove(&price);
            } else {
                map.insert(price, qty);
            }
            let after = self.top(side);
            let mut out = Vec::new();
            let in_before = before.iter().any(|(p, _)| *p == price);
            let in_after = after.iter().any(|(p, _)| *p == price);
            if in_after || (in_before && qty == 0) {
                out.push((side, price, qty));
            }
            if qty == 0 && in_before {
                // A deeper level entered the top 10.
                for level in &after {
                    if !before.contains(level) {
                        out.push((side, level.0, level.1));
                    }
                }
            }
            out
        }
    }

    proptest! {
        #[test]
        fn deltas_reproduce_the_reference_top_ten(
            ops in proptest::collection::vec((any::<bool>(), 90i64..130, 0i64..4), 1..300)
        ) {
            let mut reference = Reference::default();
            let mut book = Book::new(id());
            let mut seq = 0;
            for (is_bid, price, qty) in ops {
                let side = if is_bid { Side::Bid } else { Side::Ask };
                for (side, price, qty) in reference.set(side, price, qty) {
                    seq += 1;
                    book.apply_delta(&delta(side, price, qty, seq)).unwrap();
                }
                let bids: Vec<_> = book.bids().iter().map(|l| (l.price.0, l.qty)).collect();
                let asks: Vec<_> = book.asks().iter().map(|l| (l.price.0, l.qty)).collect();
                prop_assert_eq!(bids, reference.top(Side::Bid));
                prop_assert_eq!(asks, reference.top(Side::Ask));
                let snapshot = book.to_snapshot();
                validate_snapshot(&snapshot).unwrap();
                // The book kept by deltas confirms its own snapshot.
                prop_assert!(book.clone().confirm_snapshot(&snapshot));
            }
        }
    }
}
