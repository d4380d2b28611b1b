//! A market-by-order book: every resting order, and price levels as the
//! sums of their orders.
//!
//! DBN's MBO actions, as checked on real CME data: `A` adds an order; `C`
//! reduces an order by `size` (a partial cancel; at 0 the order is gone);
//! `M` gives an order a new price and size (an `M` of an unknown order
//! adds it); `R` clears the book; `T` (the aggressor's trade) and `F` (a
//! resting order's fill) never change the book: the resting order's
//! reduction comes as its own `C` or `M`.

use std::collections::{BTreeMap, HashMap};

use mdbus_types::{BOOK_DEPTH, Level, Price, Side};

use crate::levels::Levels;

#[derive(Debug, Clone, Copy)]
struct Order {
    side: Side,
    price: i64,
    size: i64,
}

/// What an MBO record did to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The book changed.
    Changed,
    /// Nothing to change (trade, fill, none, or a no-op).
    Unchanged,
    /// A cancel of an order the book does not hold, or an add or modify
    /// without a side: counted, the book unchanged.
    Unknown,
}

/// One instrument's orders and levels.
#[derive(Debug, Default, Clone)]
pub(crate) struct OrderBook {
    orders: HashMap<u64, Order>,
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl OrderBook {
    fn level(&mut self, side: Side, price: i64, change: i64) {
        let levels = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        let qty = levels.entry(price).or_insert(0);
        *qty += change;
        if *qty <= 0 {
            levels.remove(&price);
        }
    }

    fn remove(&mut self, order_id: u64) -> Option<Order> {
        let order = self.orders.remove(&order_id)?;
        self.level(order.side, order.price, -order.size);
        Some(order)
    }

    fn insert(&mut self, order_id: u64, order: Order) {
        if order.size > 0 {
            self.level(order.side, order.price, order.size);
            self.orders.insert(order_id, order);
        }
    }

    /// Applies one MBO record: `action` and `side` are DBN's ASCII codes.
    pub(crate) fn apply(&mut self, action: u8, side: u8, order_id: u64, price: i64, size: u32) -> Applied {
        let side = match side {
            b'B' => Some(Side::Bid),
            b'A' => Some(Side::Ask),
            _ => None,
        };
        let size = i64::from(size);
        match action {
            b'A' | b'M' => {
                let side = match (side, self.orders.get(&order_id)) {
                    (Some(side), _) => side,
                    (None, Some(order)) => order.side,
                    (None, None) => return Applied::Unknown,
                };
                // An add of an order already there replaces it, as a modify.
                self.remove(order_id);
                self.insert(order_id, Order { side, price, size });
                Applied::Changed
            }
            b'C' => match self.remove(order_id) {
                Some(mut order) => {
                    order.size -= size.min(order.size);
                    self.insert(order_id, order);
                    Applied::Changed
                }
                None => Applied::Unknown,
            },
            b'R' => {
                let changed = !self.orders.is_empty();
                *self = OrderBook::default();
                if changed { Applied::Changed } else { Applied::Unchanged }
            }
            _ => Applied::Unchanged,
        }
    }

    /// The top levels of a side, best first, into `out` (cleared first:
    /// the importer reuses its buffers, no allocation per event).
    pub(crate) fn top_into(&self, side: Side, out: &mut Levels) {
        let level = |(&price, &qty): (&i64, &i64)| Level {
            price: Price(price),
            qty,
        };
        out.clear();
        match side {
            Side::Bid => out.extend(self.bids.iter().rev().take(BOOK_DEPTH).map(level)),
            Side::Ask => out.extend(self.asks.iter().take(BOOK_DEPTH).map(level)),
        }
    }

    /// The top levels of a side, best first.
    #[cfg(test)]
    pub(crate) fn top(&self, side: Side) -> Levels {
        let mut out = Levels::new();
        self.top_into(side, &mut out);
        out
    }

    /// The best level of a side.
    pub(crate) fn best(&self, side: Side) -> Option<Level> {
        let level = |(&price, &qty): (&i64, &i64)| Level {
            price: Price(price),
            qty,
        };
        match side {
            Side::Bid => self.bids.last_key_value().map(level),
            Side::Ask => self.asks.first_key_value().map(level),
        }
    }

    /// Resting orders.
    pub(crate) fn orders(&self) -> usize {
        self.orders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_cancels_modifies_and_what_never_changes_the_book() {
        let mut book = OrderBook::default();
        assert_eq!(book.apply(b'A', b'B', 1, 100, 5), Applied::Changed);
        assert_eq!(book.apply(b'A', b'B', 2, 100, 3), Applied::Changed);
        assert_eq!(book.apply(b'A', b'A', 3, 101, 4), Applied::Changed);
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
        assert_eq!(book.apply(b'C', b'B', 1, 100, 2), Applied::Changed);
        assert_eq!(book.top(Side::Bid)[0].qty, 6);
        // A modify moves an order; a modify of an unknown order adds it.
        assert_eq!(book.apply(b'M', b'B', 2, 99, 3), Applied::Changed);
        assert_eq!(book.apply(b'M', b'A', 9, 102, 1), Applied::Changed);
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
        assert_eq!(book.apply(b'R', b'N', 0, 0, 0), Applied::Changed);
        assert!(book.top(Side::Bid).is_empty() && book.orders() == 0);
    }
}
