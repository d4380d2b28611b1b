//! The top-10 book an import has published for one instrument, and the
//! records that turn it into the next one.

use mdbus_types::{BOOK_DEPTH, BookDelta, BookSnapshot, InstrumentId, Level, Side};

use crate::batch::Batch;

/// One side's levels, best first, every one with a price and qty > 0.
pub(crate) type Levels = Vec<Level>;

/// What subscribers of the feed hold for one instrument: fixed arrays,
/// no allocation per instrument or event.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    bids: [Level; BOOK_DEPTH],
    asks: [Level; BOOK_DEPTH],
    bid_count: usize,
    ask_count: usize,
    /// A snapshot went out: later changes may be deltas.
    known: bool,
}

impl Default for Published {
    fn default() -> Published {
        Published {
            bids: [Level::EMPTY; BOOK_DEPTH],
            asks: [Level::EMPTY; BOOK_DEPTH],
            bid_count: 0,
            ask_count: 0,
            known: false,
        }
    }
}

impl Published {
    /// Whether a snapshot went out (until then, the next update is one).
    pub(crate) fn known(&self) -> bool {
        self.known
    }

    /// Appends to `out` what turns the published book into `bids`/`asks`
    /// (each at most 10 levels, best first): a snapshot when `snapshot` is
    /// set or nothing was published yet, else a delta per changed level,
    /// removals before additions so that a level sliding in at depth 10
    /// is kept (the top-10 rule of `Book`). Nothing when nothing changed.
    pub(crate) fn update(
        &mut self,
        id: InstrumentId,
        ts: i64,
        bids: &[Level],
        asks: &[Level],
        snapshot: bool,
        out: &mut Batch,
    ) {
        debug_assert!(bids.len() <= BOOK_DEPTH && asks.len() <= BOOK_DEPTH);
        if snapshot || !self.known {
            let mut book = BookSnapshot::empty(id, ts);
            book.bid_count = bids.len() as u16;
            book.ask_count = asks.len() as u16;
            book.bids[..bids.len()].copy_from_slice(bids);
            book.asks[..asks.len()].copy_from_slice(asks);
            out.push(&book);
            self.known = true;
        } else {
            // A side the event left as it was (an MBP-10 event changes
            // one side, mostly) is one memcmp, where the diff's compare
            // level by level was ~170 instructions (callgrind).
            if !same(&self.bids[..self.bid_count], bids) {
                diff(id, ts, Side::Bid, &self.bids[..self.bid_count], bids, out);
            }
            if !same(&self.asks[..self.ask_count], asks) {
                diff(id, ts, Side::Ask, &self.asks[..self.ask_count], asks, out);
            }
        }
        self.bids[..bids.len()].copy_from_slice(bids);
        self.bid_count = bids.len();
        self.asks[..asks.len()].copy_from_slice(asks);
        self.ask_count = asks.len();
    }

    /// The deltas that turn one side of the published book (known: a
    /// snapshot went out) into `levels`; the other side is unchanged.
    /// [`Published::update`] with that side's levels as they were writes
    /// the same deltas.
    pub(crate) fn update_side(&mut self, id: InstrumentId, ts: i64, side: Side, levels: &[Level], out: &mut Batch) {
        debug_assert!(self.known && levels.len() <= BOOK_DEPTH);
        let (published, count) = match side {
            Side::Bid => (&mut self.bids, &mut self.bid_count),
            Side::Ask => (&mut self.asks, &mut self.ask_count),
        };
        diff(id, ts, side, &published[..*count], levels, out);
        published[..levels.len()].copy_from_slice(levels);
        *count = levels.len();
    }
}

impl Published {
    /// The delta that sets the quantity of the level at `depth` of a side
    /// to `level.qty`, when the published level there has `level`'s
    /// price: what [`Published::update_side`] writes when only that
    /// level's quantity changed (nothing when it is the same), without
    /// reading the other levels. `false` (nothing written) when the
    /// published side has no level of that price there.
    pub(crate) fn update_level(
        &mut self,
        id: InstrumentId,
        ts: i64,
        side: Side,
        depth: usize,
        level: Level,
        out: &mut Batch,
    ) -> bool {
        debug_assert!(self.known);
        let (published, count) = match side {
            Side::Bid => (&mut self.bids, self.bid_count),
            Side::Ask => (&mut self.asks, self.ask_count),
        };
        if depth >= count || published[depth].price != level.price {
            return false;
        }
        if published[depth].qty != level.qty {
            out.push(&BookDelta::new(id, side, level.price, level.qty, ts));
            published[depth].qty = level.qty;
        }
        true
    }
}

/// Whether two sides hold the same levels (compared as bytes).
#[inline]
fn same(old: &[Level], new: &[Level]) -> bool {
    bytemuck::cast_slice::<Level, u8>(old) == bytemuck::cast_slice::<Level, u8>(new)
}

/// The deltas from `old` to `new` on one side (both best first, prices
/// unique): one merge walk; removals are written first, then new levels
/// and changed quantities.
fn diff(id: InstrumentId, ts: i64, side: Side, old: &[Level], new: &[Level], out: &mut Batch) {
    // The common case: the same prices, some quantities changed. The
    // merge walk below would write the same deltas, in the same order.
    if old.len() == new.len() && old.iter().zip(new).all(|(o, n)| o.price == n.price) {
        for (o, n) in old.iter().zip(new) {
            if o.qty != n.qty {
                out.push(&BookDelta::new(id, side, n.price, n.qty, ts));
            }
        }
        return;
    }
    // Whether price `a` comes before `b` on this side (better).
    let before = |a: &Level, b: &Level| match side {
        Side::Bid => a.price > b.price,
        Side::Ask => a.price < b.price,
    };
    let mut set = [Level::EMPTY; BOOK_DEPTH];
    let mut sets = 0;
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) if o.price == n.price => {
                if o.qty != n.qty {
                    set[sets] = *n;
                    sets += 1;
                }
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if before(o, n) => {
                out.push(&BookDelta::new(id, side, o.price, 0, ts));
                i += 1;
            }
            (Some(o), None) => {
                out.push(&BookDelta::new(id, side, o.price, 0, ts));
                i += 1;
            }
            (_, Some(n)) => {
                set[sets] = *n;
                sets += 1;
                j += 1;
            }
            (None, None) => unreachable!("the loop runs while one is left"),
        }
    }
    for level in &set[..sets] {
        out.push(&BookDelta::new(id, side, level.price, level.qty, ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{Book, Price, RecordRef};

    fn levels(raw: &[(i64, i64)]) -> Levels {
        raw.iter()
            .map(|&(p, q)| Level {
                price: Price(p),
                qty: q,
            })
            .collect()
    }

    /// Whatever the change, the book a subscriber keeps from the records
    /// equals the levels given.
    #[test]
    fn deltas_rebuild_the_next_levels_exactly() {
        let id = InstrumentId::new("ESH1").unwrap();
        let full_bids: Vec<(i64, i64)> = (0..10).map(|i| (100 - i, 1 + i)).collect();
        let steps = [
            (full_bids.clone(), vec![(101, 5)]),
            // The best bid goes: the 11th level slides in at depth 10.
            (
                full_bids[1..].iter().copied().chain([(90, 7)]).collect(),
                vec![(101, 5), (102, 1)],
            ),
            // A better bid pushes the worst one out; a qty changes.
            (
                [(100, 3)].into_iter().chain(full_bids[1..].iter().copied()).collect(),
                vec![(101, 9), (102, 1)],
            ),
            (vec![], vec![]),
            (vec![(50, 1)], vec![(60, 2)]),
        ];
        let mut published = Published::default();
        let mut book = Book::new(id);
        for (i, (bids, asks)) in steps.iter().enumerate() {
            let (bids, asks) = (levels(bids), levels(asks));
            let mut out = Batch::default();
            published.update(id, i as i64, &bids, &asks, false, &mut out);
            for sample in out.samples() {
                match sample.record().unwrap() {
                    RecordRef::BookSnapshot(s) => book = Book::from_snapshot(s).unwrap(),
                    RecordRef::BookDelta(d) => {
                        book.apply_delta(d).unwrap();
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!((book.bids(), book.asks()), (&bids[..], &asks[..]), "step {i}");
        }
        // Nothing changed: nothing is written.
        let mut out = Batch::default();
        let (bids, asks) = (levels(&[(50, 1)]), levels(&[(60, 2)]));
        published.update(id, 9, &bids, &asks, false, &mut out);
        assert!(out.is_empty());
    }
}
