//! A market-by-order book: every resting order, and price levels as the
//! sums of their orders.
//!
//! DBN's MBO actions, as checked on real CME data: `A` adds an order; `C`
//! reduces an order by `size` (a partial cancel; at 0 the order is gone);
//! `M` gives an order a new price and size (an `M` of an unknown order
//! adds it); `R` clears the book; `T` (the aggressor's trade) and `F` (a
//! resting order's fill) never change the book: the resting order's
//! reduction comes as its own `C` or `M`.

use mdbus_types::{BOOK_DEPTH, Level, Price, Side};
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::levels::Levels;

/// One resting order: 16 bytes (24 with its id in the map), so more of
/// a deep book's orders share a cache line.
#[derive(Debug, Clone, Copy)]
struct Order {
    price: i64,
    /// > 0 (DBN sizes are u32; a cancel only reduces it).
    size: u32,
    side: Side,
}

const _: () = assert!(size_of::<Order>() == 16);

/// What an MBO record did to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The book changed; `top`: which sides' top 10 levels may have
    /// (a side not named has the same top 10 as before).
    Changed {
        /// The sides whose top 10 a level changed, came or went in.
        top: Sides,
    },
    /// Nothing to change (trade, fill, none, or a no-op).
    Unchanged,
    /// A cancel of an order the book does not hold, or an add or modify
    /// without a side: counted, the book unchanged.
    Unknown,
}

/// A set of book sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sides {
    pub(crate) bid: bool,
    pub(crate) ask: bool,
}

impl Sides {
    /// Both sides.
    pub(crate) const BOTH: Sides = Sides { bid: true, ask: true };

    /// `side` alone when `on`, else none.
    #[inline]
    fn one(side: Side, on: bool) -> Sides {
        Sides {
            bid: on && side == Side::Bid,
            ask: on && side == Side::Ask,
        }
    }

    /// Either side.
    pub(crate) fn any(self) -> bool {
        self.bid || self.ask
    }
}

impl std::ops::BitOrAssign for Sides {
    fn bitor_assign(&mut self, other: Sides) {
        self.bid |= other.bid;
        self.ask |= other.ask;
    }
}

/// How a side's top 10 changed since [`OrderBook::take_touched`] last
/// asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Touched {
    /// Not at all.
    #[default]
    No,
    /// Only the quantity of the level at this depth (0 = best): the same
    /// prices, so the one delta is that level's.
    Qty(usize),
    /// Anything else: levels came or went, or several changed.
    Levels,
}

/// One side's price levels, sorted by `key` ascending with the best level
/// last (an order book changes mostly near its top: an insert or removal
/// there moves few entries). The key is the price for bids and its bitwise
/// complement for asks (`!p` orders prices in reverse, without overflow).
#[derive(Debug, Default, Clone)]
struct Ladder {
    /// (key, qty), qty > 0.
    levels: Vec<(i64, i64)>,
    touched: Touched,
}

impl Ladder {
    /// Adds `change` to the level at `key` (a new level when there is
    /// none and `change > 0`; removed at qty <= 0); whether a level of the
    /// top 10 changed.
    #[inline]
    fn change(&mut self, key: i64, change: i64) -> bool {
        let len = self.levels.len();
        // Search from the best end: most changes are near the top.
        let found = self.levels.binary_search_by(|&(k, _)| k.cmp(&key));
        match found {
            Ok(i) => {
                let depth = len - 1 - i;
                let qty = &mut self.levels[i].1;
                *qty += change;
                let removed = *qty <= 0;
                if removed {
                    self.levels.remove(i);
                }
                let top = depth < BOOK_DEPTH;
                if top {
                    self.touched = match self.touched {
                        Touched::No if !removed => Touched::Qty(depth),
                        Touched::Qty(d) if d == depth && !removed => Touched::Qty(depth),
                        _ => Touched::Levels,
                    };
                }
                top
            }
            Err(i) => {
                if change <= 0 {
                    return false;
                }
                self.levels.insert(i, (key, change));
                let top = len - i < BOOK_DEPTH;
                if top {
                    self.touched = Touched::Levels;
                }
                top
            }
        }
    }
}

/// One instrument's orders and levels.
#[derive(Debug, Default, Clone)]
pub(crate) struct OrderBook {
    /// FxHash: order ids are the venue's numbers, and SipHash was a large
    /// part of the import.
    orders: FxHashMap<u64, Order>,
    bids: Ladder,
    asks: Ladder,
}

/// A price as its side's ladder key, and back.
#[inline]
fn key(side: Side, price: i64) -> i64 {
    match side {
        Side::Bid => price,
        Side::Ask => !price,
    }
}

/// Adds `change` to the level at `price` of `side`; the side when its top
/// 10 changed. A free function: it borrows the ladders alone, while the
/// caller holds an entry of the orders.
#[inline]
fn level(bids: &mut Ladder, asks: &mut Ladder, side: Side, price: i64, change: i64) -> Sides {
    let top = match side {
        Side::Bid => bids.change(key(side, price), change),
        Side::Ask => asks.change(key(side, price), change),
    };
    Sides::one(side, top)
}

impl OrderBook {
    /// Applies one MBO record: `action` and `side` are DBN's ASCII codes.
    pub(crate) fn apply(&mut self, action: u8, side: u8, order_id: u64, price: i64, size: u32) -> Applied {
        let side = match side {
            b'B' => Some(Side::Bid),
            b'A' => Some(Side::Ask),
            _ => None,
        };
        match action {
            // An add of an order already there replaces it, as a modify:
            // one probe of the orders either way.
            b'A' | b'M' => match self.orders.entry(order_id) {
                Entry::Occupied(mut entry) => {
                    let old = *entry.get();
                    let side = side.unwrap_or(old.side);
                    let mut top = level(
                        &mut self.bids,
                        &mut self.asks,
                        old.side,
                        old.price,
                        -i64::from(old.size),
                    );
                    if size > 0 {
                        top |= level(&mut self.bids, &mut self.asks, side, price, i64::from(size));
                        entry.insert(Order { price, size, side });
                    } else {
                        entry.remove();
                    }
                    Applied::Changed { top }
                }
                Entry::Vacant(entry) => {
                    let Some(side) = side else { return Applied::Unknown };
                    let mut top = Sides::default();
                    if size > 0 {
                        top = level(&mut self.bids, &mut self.asks, side, price, i64::from(size));
                        entry.insert(Order { price, size, side });
                    }
                    Applied::Changed { top }
                }
            },
            b'C' => match self.orders.entry(order_id) {
                Entry::Occupied(mut entry) => {
                    let order = entry.get_mut();
                    let cut = size.min(order.size);
                    order.size -= cut;
                    let (side, price) = (order.side, order.price);
                    if order.size == 0 {
                        entry.remove();
                    }
                    // The level loses `cut` (the whole order when it goes).
                    Applied::Changed {
                        top: level(&mut self.bids, &mut self.asks, side, price, -i64::from(cut)),
                    }
                }
                Entry::Vacant(_) => Applied::Unknown,
            },
            b'R' => {
                let changed = !self.orders.is_empty();
                *self = OrderBook::default();
                if changed {
                    Applied::Changed { top: Sides::BOTH }
                } else {
                    Applied::Unchanged
                }
            }
            _ => Applied::Unchanged,
        }
    }

    /// The top levels of a side, best first, into `out` (cleared first:
    /// the importer reuses its buffers, no allocation per event).
    pub(crate) fn top_into(&self, side: Side, out: &mut Levels) {
        let ladder = match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        };
        out.clear();
        out.extend(ladder.levels.iter().rev().take(BOOK_DEPTH).map(|&(k, qty)| Level {
            price: Price(key(side, k)),
            qty,
        }));
    }

    /// The top levels of a side, best first.
    #[cfg(test)]
    pub(crate) fn top(&self, side: Side) -> Levels {
        let mut out = Levels::new();
        self.top_into(side, &mut out);
        out
    }

    /// How a side's top 10 changed since the last call (the importer
    /// asks at each publish of the side).
    pub(crate) fn take_touched(&mut self, side: Side) -> Touched {
        let ladder = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        std::mem::take(&mut ladder.touched)
    }

    /// The level at `depth` (0 = best) of a side.
    pub(crate) fn at_depth(&self, side: Side, depth: usize) -> Option<Level> {
        let ladder = match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        };
        let i = ladder.levels.len().checked_sub(1 + depth)?;
        let (k, qty) = ladder.levels[i];
        Some(Level {
            price: Price(key(side, k)),
            qty,
        })
    }

    /// The best level of a side.
    pub(crate) fn best(&self, side: Side) -> Option<Level> {
        let ladder = match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        };
        ladder.levels.last().map(|&(k, qty)| Level {
            price: Price(key(side, k)),
            qty,
        })
    }

    /// Resting orders.
    pub(crate) fn orders(&self) -> usize {
        self.orders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BID: Sides = Sides { bid: true, ask: false };
    const ASK: Sides = Sides { bid: false, ask: true };

    #[test]
    fn adds_cancels_modifies_and_what_never_changes_the_book() {
        let mut book = OrderBook::default();
        assert_eq!(book.apply(b'A', b'B', 1, 100, 5), Applied::Changed { top: BID });
        assert_eq!(book.apply(b'A', b'B', 2, 100, 3), Applied::Changed { top: BID });
        assert_eq!(book.apply(b'A', b'A', 3, 101, 4), Applied::Changed { top: ASK });
        assert_eq!(
            book.top(Side::Bid),
            vec![Level {
                price: Price(100),
                qty: 8
            }]
        );
        // Trades and fills change nothing; the reduction comes as a cancel.
        assert_eq!(book.apply(b'T', b'A', 0, 100, 2), Applied::Unchanged);
        assert_eq!(book.apply(b'F', b'B', 1, 100, 2), Applied::Unchanged);
        assert_eq!(book.apply(b'C', b'B', 1, 100, 2), Applied::Changed { top: BID });
        assert_eq!(book.top(Side::Bid)[0].qty, 6);
        // A modify moves an order; a modify of an unknown order adds it.
        assert_eq!(book.apply(b'M', b'B', 2, 99, 3), Applied::Changed { top: BID });
        assert_eq!(book.apply(b'M', b'A', 9, 102, 1), Applied::Changed { top: ASK });
        assert_eq!(
            book.top(Side::Bid),
            vec![
                Level {
                    price: Price(100),
                    qty: 3
                },
                Level {
                    price: Price(99),
                    qty: 3
                }
            ]
        );
        assert_eq!(book.top(Side::Ask).len(), 2);
        // A cancel of an unknown order is counted, never a panic.
        assert_eq!(book.apply(b'C', b'B', 77, 100, 1), Applied::Unknown);
        assert_eq!(book.apply(b'R', b'N', 0, 0, 0), Applied::Changed { top: Sides::BOTH });
        assert!(book.top(Side::Bid).is_empty() && book.orders() == 0);
    }

    #[test]
    fn touched_says_when_only_one_levels_quantity_changed() {
        let mut book = OrderBook::default();
        book.apply(b'A', b'B', 1, 100, 5);
        book.apply(b'A', b'B', 2, 99, 5);
        assert_eq!(book.take_touched(Side::Bid), Touched::Levels);
        assert_eq!(book.take_touched(Side::Bid), Touched::No);
        // Another order at the best level, then a partial cancel there.
        book.apply(b'A', b'B', 3, 100, 2);
        book.apply(b'C', b'B', 1, 100, 1);
        assert_eq!(book.take_touched(Side::Bid), Touched::Qty(0));
        assert_eq!(
            book.at_depth(Side::Bid, 1),
            Some(Level {
                price: Price(99),
                qty: 5
            })
        );
        // Two depths, or a level gone: the whole side.
        book.apply(b'C', b'B', 1, 100, 1);
        book.apply(b'A', b'B', 4, 99, 1);
        assert_eq!(book.take_touched(Side::Bid), Touched::Levels);
        book.apply(b'C', b'B', 2, 99, 5);
        book.apply(b'C', b'B', 4, 99, 1);
        assert_eq!(book.take_touched(Side::Bid), Touched::Levels);
        assert_eq!(book.take_touched(Side::Ask), Touched::No);
        assert_eq!(book.at_depth(Side::Bid, 1), None);
    }
}
