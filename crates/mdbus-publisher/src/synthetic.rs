//! A deterministic, seeded synthetic market for N instruments.
//!
//! Each instrument keeps a full-depth book (deeper than 10 levels, positive
//! spread, prices on its tick size) in two `BTreeMap`s. Market events add
//! and cancel liquidity and trade against the best levels (a trade may sweep
//! up to three levels), so the mid walks. Every level change is turned into
//! [`BookDelta`]s by docs/spec.md's top-10 rule, so a consumer's last snapshot
//! plus the deltas after it always equals the generator's top-10 view.
//! The same seed gives the same records.

use std::collections::BTreeMap;

use mdbus_types::{
    BOOK_DEPTH, BookDelta, BookSnapshot, InstrumentId, Kind, Level, MdSample, Price, RecordHeader, Side, Tick,
};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::error::{Error, Result};

/// Levels each side keeps (more than the 10 the feed shows).
const FULL_DEPTH: usize = 16;

/// (symbol prefix, tick size in 1e-9 units, reference price in ticks, lot).
const PRODUCTS: &[(&str, i64, i64, i64)] = &[
    ("IF", 200_000_000, 20_000, 5),
    ("IC", 200_000_000, 29_000, 5),
    ("IH", 200_000_000, 13_500, 5),
    ("IM", 200_000_000, 31_000, 5),
    ("rb", 1_000_000_000, 3_500, 50),
    ("hc", 1_000_000_000, 3_600, 40),
    ("cu", 10_000_000_000, 7_400, 10),
    ("al", 5_000_000_000, 4_000, 20),
    ("zn", 5_000_000_000, 4_800, 10),
    ("au", 20_000_000, 31_000, 5),
    ("ag", 1_000_000_000, 7_800, 30),
    ("sc", 100_000_000, 5_600, 10),
    ("m", 1_000_000_000, 2_900, 100),
    ("y", 2_000_000_000, 3_900, 60),
    ("p", 2_000_000_000, 4_250, 60),
    ("c", 1_000_000_000, 2_300, 150),
    ("SR", 1_000_000_000, 6_100, 60),
    ("CF", 5_000_000_000, 2_900, 40),
    ("TA", 2_000_000_000, 2_500, 100),
    ("MA", 1_000_000_000, 2_600, 120),
    ("i", 500_000_000, 1_600, 80),
    ("j", 500_000_000, 4_000, 20),
    ("fu", 1_000_000_000, 3_200, 80),
    ("T", 5_000_000, 21_600, 20),
];

/// Most instruments the generator can name (products x months 2501..9912).
pub const MAX_INSTRUMENTS: usize = PRODUCTS.len() * 12 * 75;

/// The symbol of the `index`th synthetic instrument: every product for
/// 2501 first (IF2501, IC2501, ...), then 2502, and so on.
pub fn synthetic_symbol(index: usize) -> String {
    let (product, month) = (index % PRODUCTS.len(), index / PRODUCTS.len());
    let yy = 25 + month / 12;
    let mm = 1 + month % 12;
    format!("{}{yy:02}{mm:02}", PRODUCTS[product].0)
}

#[derive(Debug, Clone)]
struct Instrument {
    id: InstrumentId,
    tick: i64,
    lot: i64,
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    volume: i64,
}

impl Instrument {
    fn side(&self, side: Side) -> &BTreeMap<i64, i64> {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    /// The best `n` levels of a side, best first.
    fn top(&self, side: Side, n: usize) -> Vec<(i64, i64)> {
        match side {
            Side::Bid => self.bids.iter().rev().take(n).map(|(p, q)| (*p, *q)).collect(),
            Side::Ask => self.asks.iter().take(n).map(|(p, q)| (*p, *q)).collect(),
        }
    }

    fn best(&self, side: Side) -> Option<(i64, i64)> {
        match side {
            Side::Bid => self.bids.iter().next_back().map(|(p, q)| (*p, *q)),
            Side::Ask => self.asks.iter().next().map(|(p, q)| (*p, *q)),
        }
    }

    fn worst(&self, side: Side) -> Option<i64> {
        match side {
            Side::Bid => self.bids.keys().next().copied(),
            Side::Ask => self.asks.keys().next_back().copied(),
        }
    }

    /// Sets a level of the full book (qty 0 removes it) and appends the
    /// deltas docs/spec.md's top-10 rule asks for.
    fn set(&mut self, side: Side, price: i64, qty: i64, ts_event: i64, out: &mut Vec<MdSample>) {
        let before = self.top(side, BOOK_DEPTH);
        let map = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        if qty == 0 {
            map.remove(&price);
        } else {
            map.insert(price, qty);
        }
        let after = self.top(side, BOOK_DEPTH);
        let in_before = before.iter().any(|(p, _)| *p == price);
        let in_after = after.iter().any(|(p, _)| *p == price);
        if in_after || (in_before && qty == 0) {
            out.push(BookDelta::new(self.id, side, Price(price), qty, ts_event).into());
        }
        if qty == 0 && in_before {
            // A deeper level entered the top 10: it arrives as its own delta.
            for &(p, q) in after.iter().filter(|level| !before.contains(level)) {
                out.push(BookDelta::new(self.id, side, Price(p), q, ts_event).into());
            }
        }
        // An insert that pushed the 10th level out needs no delta.
    }

    fn snapshot(&self, ts_event: i64) -> BookSnapshot {
        let mut snapshot = BookSnapshot::empty(self.id, ts_event);
        let bids = self.top(Side::Bid, BOOK_DEPTH);
        let asks = self.top(Side::Ask, BOOK_DEPTH);
        snapshot.bid_count = bids.len() as u16;
        snapshot.ask_count = asks.len() as u16;
        for (slot, (p, q)) in snapshot.bids.iter_mut().zip(bids) {
            *slot = Level {
                price: Price(p),
                qty: q,
            };
        }
        for (slot, (p, q)) in snapshot.asks.iter_mut().zip(asks) {
            *slot = Level {
                price: Price(p),
                qty: q,
            };
        }
        snapshot
    }
}

/// The synthetic market. See the module docs.
#[derive(Debug, Clone)]
pub struct SyntheticFeed {
    rng: Pcg64Mcg,
    instruments: Vec<Instrument>,
    /// Initial snapshots still to emit.
    initial_snapshots_sent: usize,
}

impl SyntheticFeed {
    /// A market of `instruments` instruments (1..=[`MAX_INSTRUMENTS`])
    /// from `seed`.
    pub fn new(instruments: usize, seed: u64) -> Result<SyntheticFeed> {
        if instruments == 0 || instruments > MAX_INSTRUMENTS {
            return Err(Error::Config(format!(
                "synthetic feed: {instruments} instruments, expected 1..={MAX_INSTRUMENTS}"
            )));
        }
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let instruments = (0..instruments)
            .map(|index| {
                let (_, tick, reference, lot) = PRODUCTS[index % PRODUCTS.len()];
                let id = InstrumentId::new(&synthetic_symbol(index)).expect("synthetic symbols are valid");
                let best_bid = reference + rng.random_range(-reference / 20..=reference / 20);
                let mut instrument = Instrument {
                    id,
                    tick,
                    lot,
                    bids: BTreeMap::new(),
                    asks: BTreeMap::new(),
                    volume: 0,
                };
                for i in 0..FULL_DEPTH as i64 {
                    instrument
                        .bids
                        .insert((best_bid - i) * tick, rng.random_range(lot..=6 * lot));
                    instrument
                        .asks
                        .insert((best_bid + 1 + i) * tick, rng.random_range(lot..=6 * lot));
                }
                instrument
            })
            .collect();
        Ok(SyntheticFeed {
            rng,
            instruments,
            initial_snapshots_sent: 0,
        })
    }

    /// The instruments, in the order they were named.
    pub fn instruments(&self) -> impl ExactSizeIterator<Item = InstrumentId> + '_ {
        self.instruments.iter().map(|i| i.id)
    }

    /// The generator's current top-10 view of instrument `index`, as a
    /// snapshot (header seq 0).
    pub fn view(&self, index: usize) -> Option<BookSnapshot> {
        self.instruments.get(index).map(|i| i.snapshot(0))
    }

    /// A `BookSnapshot` of every instrument's top-10 view.
    pub fn snapshots(&self, ts_event: i64, out: &mut Vec<MdSample>) {
        out.extend(self.instruments.iter().map(|i| MdSample::from(i.snapshot(ts_event))));
    }

    /// Appends the records of the next market event at `ts_event`: first a
    /// snapshot of each instrument (one per call), then deltas and ticks.
    /// Returns how many records were appended (at least 1).
    pub fn next_event(&mut self, ts_event: i64, out: &mut Vec<MdSample>) -> usize {
        let start = out.len();
        if self.initial_snapshots_sent < self.instruments.len() {
            let instrument = &self.instruments[self.initial_snapshots_sent];
            out.push(instrument.snapshot(ts_event).into());
            self.initial_snapshots_sent += 1;
            return 1;
        }
        while out.len() == start {
            let index = self.rng.random_range(0..self.instruments.len());
            let roll = self.rng.random_range(0..100);
            let side = if self.rng.random_bool(0.5) {
                Side::Bid
            } else {
                Side::Ask
            };
            let rng = &mut self.rng;
            let instrument = &mut self.instruments[index];
            match roll {
                0..45 => add_liquidity(rng, instrument, side, ts_event, out),
                45..75 => cancel(rng, instrument, side, ts_event, out),
                _ => trade(rng, instrument, side, ts_event, out),
            }
            replenish(rng, instrument, ts_event, out);
        }
        out.len() - start
    }
}

fn add_liquidity(rng: &mut Pcg64Mcg, inst: &mut Instrument, side: Side, ts: i64, out: &mut Vec<MdSample>) {
    let tick = inst.tick;
    let (best_bid, best_ask) = (inst.best(Side::Bid), inst.best(Side::Ask));
    let spread_ticks = match (best_bid, best_ask) {
        (Some((b, _)), Some((a, _))) => (a - b) / tick,
        _ => 1,
    };
    // Depth from the best in ticks: a wide spread mostly fills in (a
    // negative depth is inside the spread), otherwise mostly near the top.
    let depth = if spread_ticks > 1 && rng.random_bool(0.8) {
        -rng.random_range(1..spread_ticks)
    } else {
        rng.random_range(0..4) + rng.random_range(0..4) + rng.random_range(0..4)
    };
    let price = match (side, best_bid, best_ask) {
        (Side::Bid, Some((b, _)), _) => b - depth * tick,
        (Side::Bid, None, Some((a, _))) => a - (depth + 2) * tick,
        (Side::Ask, _, Some((a, _))) => a + depth * tick,
        (Side::Ask, Some((b, _)), None) => b + (depth + 2) * tick,
        _ => return,
    };
    // Keep a positive spread and positive prices.
    let crosses = match side {
        Side::Bid => best_ask.is_some_and(|(a, _)| price >= a),
        Side::Ask => best_bid.is_some_and(|(b, _)| price <= b),
    };
    if crosses || price <= 0 {
        return;
    }
    let qty = match inst.side(side).get(&price) {
        Some(q) => q + rng.random_range(1..=inst.lot),
        None => rng.random_range(1..=2 * inst.lot),
    };
    inst.set(side, price, qty, ts, out);
}

fn cancel(rng: &mut Pcg64Mcg, inst: &mut Instrument, side: Side, ts: i64, out: &mut Vec<MdSample>) {
    let levels = inst.top(side, 12);
    if levels.is_empty() {
        return;
    }
    let (price, qty) = levels[rng.random_range(0..levels.len())];
    let new_qty = if qty <= 1 || rng.random_bool(0.1) {
        0
    } else {
        qty - rng.random_range(1..qty.min(inst.lot + 1))
    };
    inst.set(side, price, new_qty, ts, out);
}

/// An aggressor on `side` trades against the other side's best levels.
fn trade(rng: &mut Pcg64Mcg, inst: &mut Instrument, side: Side, ts: i64, out: &mut Vec<MdSample>) {
    let passive = match side {
        Side::Bid => Side::Ask,
        Side::Ask => Side::Bid,
    };
    let mut remaining = rng.random_range(1..=2 * inst.lot);
    let mut filled = 0;
    let mut last_px = 0;
    for _ in 0..3 {
        let Some((price, qty)) = inst.best(passive) else { break };
        let fill = remaining.min(qty);
        inst.set(passive, price, qty - fill, ts, out);
        filled += fill;
        remaining -= fill;
        last_px = price;
        if remaining == 0 {
            break;
        }
    }
    if filled == 0 {
        return;
    }
    inst.volume += filled;
    let (bid_px, bid_qty) = inst.best(Side::Bid).map_or((Price::NULL, 0), |(p, q)| (Price(p), q));
    let (ask_px, ask_qty) = inst.best(Side::Ask).map_or((Price::NULL, 0), |(p, q)| (Price(p), q));
    let tick = Tick {
        header: RecordHeader::new(Kind::Tick, ts),
        instrument: inst.id,
        last_px: Price(last_px),
        last_qty: filled,
        bid_px,
        bid_qty,
        ask_px,
        ask_qty,
        volume: inst.volume,
    };
    out.push(tick.into());
}

/// Keeps each side [`FULL_DEPTH`] levels deep and near the touch: levels
/// that drifted far from the best are cancelled, and new ones are placed
/// at random within `2 x FULL_DEPTH` ticks of the best.
fn replenish(rng: &mut Pcg64Mcg, inst: &mut Instrument, ts: i64, out: &mut Vec<MdSample>) {
    let tick = inst.tick;
    let reach = 3 * FULL_DEPTH as i64 * tick;
    for side in [Side::Bid, Side::Ask] {
        let other = match side {
            Side::Bid => Side::Ask,
            Side::Ask => Side::Bid,
        };
        // Cancel what drifted away, and the excess beyond FULL_DEPTH.
        if let Some((best, _)) = inst.best(side) {
            let far: Vec<i64> = inst
                .side(side)
                .keys()
                .copied()
                .filter(|p| (p - best).abs() > reach)
                .collect();
            for price in far {
                inst.set(side, price, 0, ts, out);
            }
        }
        while inst.side(side).len() > FULL_DEPTH {
            let worst = inst.worst(side).expect("non-empty");
            inst.set(side, worst, 0, ts, out);
        }
        let mut attempts = 0;
        while inst.side(side).len() < FULL_DEPTH && attempts < 4 * FULL_DEPTH {
            attempts += 1;
            let anchor = match (inst.best(side), inst.best(other)) {
                (Some((b, _)), _) => b,
                (None, Some((o, _))) => o,
                (None, None) => break,
            };
            let k = rng.random_range(1..=2 * FULL_DEPTH as i64);
            let price = match side {
                Side::Bid => anchor - k * tick,
                Side::Ask => anchor + k * tick,
            };
            if price <= 0 || inst.side(side).contains_key(&price) {
                continue;
            }
            let qty = rng.random_range(inst.lot..=6 * inst.lot);
            inst.set(side, price, qty, ts, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{Book, RecordRef};
    use std::collections::HashMap;

    #[test]
    fn symbols_are_realistic_and_valid() {
        assert_eq!(synthetic_symbol(0), "IF2501");
        assert_eq!(synthetic_symbol(4), "rb2501");
        assert_eq!(synthetic_symbol(PRODUCTS.len()), "IF2502");
        for i in [0, 100, MAX_INSTRUMENTS - 1] {
            InstrumentId::new(&synthetic_symbol(i)).unwrap();
        }
        assert!(SyntheticFeed::new(0, 1).is_err());
        assert!(SyntheticFeed::new(MAX_INSTRUMENTS + 1, 1).is_err());
    }

    fn run(feed: &mut SyntheticFeed, events: usize) -> Vec<MdSample> {
        let mut out = Vec::new();
        for i in 0..events {
            feed.next_event(1_000 + i as i64, &mut out);
        }
        out
    }

    #[test]
    fn same_seed_same_records() {
        let a = run(&mut SyntheticFeed::new(8, 42).unwrap(), 5_000);
        let b = run(&mut SyntheticFeed::new(8, 42).unwrap(), 5_000);
        let c = run(&mut SyntheticFeed::new(8, 43).unwrap(), 5_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn consumer_books_equal_the_generator_view_and_keep_record_rules() {
        let mut feed = SyntheticFeed::new(5, 7).unwrap();
        let records = run(&mut feed, 50_000);
        let mut books: HashMap<InstrumentId, Book> = HashMap::new();
        let (mut ticks, mut deltas) = (0, 0);
        let mut spread_ticks: Vec<i64> = Vec::new();
        for sample in &records {
            match sample.record().unwrap() {
                RecordRef::BookSnapshot(s) => {
                    assert!(books.insert(s.instrument, Book::from_snapshot(s).unwrap()).is_none());
                }
                RecordRef::BookDelta(d) => {
                    books
                        .get_mut(&d.instrument)
                        .expect("snapshot first")
                        .apply_delta(d)
                        .unwrap();
                    deltas += 1;
                }
                RecordRef::Tick(t) => {
                    let book = &books[&t.instrument];
                    assert!(t.last_qty > 0);
                    // The tick's top of book is the consumer's top of book.
                    assert_eq!(book.best_bid().map(|l| (l.price, l.qty)), Some((t.bid_px, t.bid_qty)));
                    assert_eq!(book.best_ask().map(|l| (l.price, l.qty)), Some((t.ask_px, t.ask_qty)));
                    ticks += 1;
                    let tick_size = feed.instruments.iter().find(|i| i.id == t.instrument).unwrap().tick;
                    spread_ticks.push((t.ask_px.raw() - t.bid_px.raw()) / tick_size);
                }
                RecordRef::Heartbeat(_) => unreachable!(),
            }
        }
        assert!(ticks > 1_000 && deltas > 10_000, "ticks {ticks} deltas {deltas}");
        for (index, id) in feed.instruments().enumerate() {
            let mut view = feed.view(index).unwrap();
            let mut ours = books[&id].to_snapshot();
            mdbus_types::validate_snapshot(&ours).unwrap();
            (view.header, ours.header) = (Default::default(), Default::default());
            assert_eq!(ours, view, "{id}");
            assert_eq!(view.bid_count, 10);
            assert!(
                view.bids[0].price < view.asks[0].price,
                "{id}: spread must stay positive"
            );
        }
        // A realistic market keeps a tight spread, not one that drifts open.
        spread_ticks.sort_unstable();
        let p95 = spread_ticks[spread_ticks.len() * 95 / 100];
        assert!(spread_ticks[0] >= 1 && p95 <= 10, "spread p95 {p95} ticks");
    }
}
