//! L1: the latest `Tick` and the current top-10 book of every instrument,
//! in a [`DashMap`] that any thread reads while the receive loop writes.
//!
//! The receive loop holds a shard's write lock only for the few hundred
//! nanoseconds of one record's update; readers copy the value out under a
//! shard read lock and never see a half-applied record.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use dashmap::DashMap;
use mdbus_types::{Book, BookDelta, BookSnapshot, InstrumentId, Level, Tick};

use crate::hash::IdBuildHasher;

/// One instrument's L1 state.
#[derive(Debug, Clone)]
struct Slot {
    tick: Option<Tick>,
    book: Option<Book>,
    /// The book missed records (a [`Gap`](crate::Event::Gap)): not to be
    /// trusted until the next snapshot.
    stale: bool,
    mismatches: u64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            tick: None,
            book: None,
            stale: false,
            mismatches: 0,
        }
    }

    fn set_tick(&mut self, tick: &Tick) {
        self.tick = Some(*tick);
    }

    /// Applies a snapshot; compares it first with a book kept by deltas.
    fn apply_snapshot(&mut self, snapshot: &BookSnapshot) -> mdbus_types::Result<SnapshotCheck> {
        // The common case first: a book equal to the snapshot (which is
        // then valid) takes only its header, for one comparison.
        let confirmed = self.book.as_mut().is_some_and(|book| book.confirm_snapshot(snapshot));
        let check = match &self.book {
            Some(_) if self.stale => SnapshotCheck::NotCompared,
            Some(_) if confirmed => SnapshotCheck::Match,
            Some(book) => {
                if book.bids() == snapshot.bid_levels() && book.asks() == snapshot.ask_levels() {
                    SnapshotCheck::Match
                } else {
                    SnapshotCheck::Mismatch
                }
            }
            None => SnapshotCheck::NotCompared,
        };
        if !confirmed {
            match &mut self.book {
                Some(book) => book.apply_snapshot(snapshot)?,
                None => self.book = Some(Book::from_snapshot(snapshot)?),
            }
        }
        self.stale = false;
        if check == SnapshotCheck::Mismatch {
            self.mismatches += 1;
        }
        Ok(check)
    }

    /// Applies a delta to the book (none before the first snapshot).
    fn apply_delta(&mut self, delta: &BookDelta) -> mdbus_types::Result<()> {
        if let Some(book) = self.book.as_mut() {
            book.apply_delta(delta)?;
        }
        Ok(())
    }
}

/// What [`L1Cache::apply_snapshot`] found when it compared the book kept by
/// deltas with a published snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotCheck {
    /// No book yet, or a stale one: nothing to compare.
    NotCompared,
    /// The book kept by deltas equals the snapshot.
    Match,
    /// It differs: counted, and the book is reset from the snapshot.
    Mismatch,
}

/// One instrument in an [`L1Cache::dump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Entry {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Its latest tick.
    pub tick: Option<Tick>,
    /// Its current book as a `BookSnapshot` whose header carries the seq,
    /// `ts_event` and `ts_publish` of the last record that changed it,
    /// flags 0 (the same book the snapshot board holds).
    pub book: Option<BookSnapshot>,
    /// The book missed records and waits for the next snapshot.
    pub stale: bool,
}

/// The top of one instrument's book, read in one shard read: both sides,
/// the seq and time of the record that last changed the book, and whether
/// the book is stale, all from the same instant (no second lookup that
/// could race the receive loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Best bid: price and total quantity; [`Level::EMPTY`] (`Price::NULL`,
    /// 0) when the side is empty.
    pub bid: Level,
    /// Best ask, [`Level::EMPTY`] when the side is empty.
    pub ask: Level,
    /// Seq of the last record that changed the book.
    pub seq: u64,
    /// `ts_event` of that record, ns since Unix epoch.
    pub ts_event: i64,
    /// `ts_publish` of that record, ns since Unix epoch.
    pub ts_publish: i64,
    /// The book missed records (a [`Gap`](crate::Event::Gap)) and waits for
    /// its next snapshot: do not trade on it.
    pub stale: bool,
}

impl Quote {
    /// Both sides have a level.
    pub fn is_two_sided(&self) -> bool {
        !self.bid.price.is_null() && !self.ask.price.is_null()
    }

    /// `(bid + ask) / 2` as a float, `None` unless both sides have a level.
    pub fn mid(&self) -> Option<f64> {
        Some((self.bid.price.to_f64()? + self.ask.price.to_f64()?) / 2.0)
    }
}

/// The L1 cache: latest tick and current book per instrument. Share it as
/// `Arc<L1Cache>` ([`Subscriber::l1`](crate::Subscriber::l1)); every read
/// is a copy, lock-free for the writer apart from one shard.
#[derive(Debug, Default)]
pub struct L1Cache {
    slots: DashMap<InstrumentId, Slot, IdBuildHasher>,
}

impl L1Cache {
    /// An empty cache.
    pub fn new() -> L1Cache {
        L1Cache::default()
    }

    /// The latest tick of `id` (the one published, flags included).
    #[inline]
    pub fn tick(&self, id: &InstrumentId) -> Option<Tick> {
        self.slots.get(id).and_then(|s| s.tick)
    }

    /// The current book of `id` as a `BookSnapshot` (header: seq and times
    /// of the last record that changed it, flags 0).
    #[inline]
    pub fn book(&self, id: &InstrumentId) -> Option<BookSnapshot> {
        self.slots.get(id).and_then(|s| s.book.as_ref().map(Book::to_snapshot))
    }

    /// Runs `f` on the current book of `id` under the shard's read lock
    /// (no copy; keep `f` short, the receive loop waits for it).
    pub fn with_book<T>(&self, id: &InstrumentId, f: impl FnOnce(&Book) -> T) -> Option<T> {
        self.slots.get(id).and_then(|s| s.book.as_ref().map(f))
    }

    /// The top of the book of `id` and its staleness, in one read; `None`
    /// until a snapshot of its book was received.
    #[inline]
    pub fn quote(&self, id: &InstrumentId) -> Option<Quote> {
        let slot = self.slots.get(id)?;
        let book = slot.book.as_ref()?;
        let last = book.last_change();
        Some(Quote {
            instrument: *id,
            bid: book.best_bid().unwrap_or(Level::EMPTY),
            ask: book.best_ask().unwrap_or(Level::EMPTY),
            seq: last.seq,
            ts_event: last.ts_event,
            ts_publish: last.ts_publish,
            stale: slot.stale,
        })
    }

    /// Whether the book of `id` missed records and waits for the next
    /// snapshot.
    pub fn is_stale(&self, id: &InstrumentId) -> bool {
        self.slots.get(id).is_some_and(|s| s.stale)
    }

    /// Book mismatches counted for `id` (see [`SubscriberStats::mismatches`](crate::SubscriberStats::mismatches)).
    pub fn mismatches(&self, id: &InstrumentId) -> u64 {
        self.slots.get(id).map_or(0, |s| s.mismatches)
    }

    /// Known instruments, sorted by symbol.
    pub fn instruments(&self) -> Vec<InstrumentId> {
        let mut ids: Vec<InstrumentId> = self.slots.iter().map(|e| *e.key()).collect();
        ids.sort_unstable();
        ids
    }

    /// Number of known instruments.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no instrument is known yet.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every instrument's tick and book, sorted by symbol: compare two
    /// caches with `==` (restart equivalence).
    pub fn dump(&self) -> Vec<L1Entry> {
        let mut out: Vec<L1Entry> = self
            .slots
            .iter()
            .map(|e| L1Entry {
                instrument: *e.key(),
                tick: e.tick,
                book: e.book.as_ref().map(Book::to_snapshot),
                stale: e.stale,
            })
            .collect();
        out.sort_unstable_by_key(|e| e.instrument);
        out
    }

    pub(crate) fn set_tick(&self, tick: &Tick) {
        self.slots
            .entry(tick.instrument)
            .or_insert_with(Slot::new)
            .set_tick(tick);
    }

    /// Applies a snapshot; compares it first with a book kept by deltas.
    pub(crate) fn apply_snapshot(&self, snapshot: &BookSnapshot) -> mdbus_types::Result<SnapshotCheck> {
        self.slots
            .entry(snapshot.instrument)
            .or_insert_with(Slot::new)
            .apply_snapshot(snapshot)
    }

    /// Applies a delta to the book of its instrument; a delta before any
    /// snapshot of it (a live-only start) is passed over until one comes.
    pub(crate) fn apply_delta(&self, delta: &BookDelta) -> mdbus_types::Result<()> {
        match self.slots.get_mut(&delta.instrument) {
            Some(mut slot) => slot.apply_delta(delta),
            None => Ok(()),
        }
    }

    /// Marks every book stale (records were lost).
    pub(crate) fn mark_all_stale(&self) {
        for mut slot in self.slots.iter_mut() {
            if slot.book.is_some() {
                slot.stale = true;
            }
        }
    }
}

/// L1 updates made without its locks, then written into it at once: a
/// silent replay ([`CatchUp::Silent`](crate::CatchUp::Silent)) applies
/// millions of records that no one reads one by one, and a shard lock per
/// record (two atomic read-modify-writes) was a large share of its cost.
/// Each instrument's slot is copied out of L1 when the batch first touches
/// it and goes back at [`L1Batch::flush`]; readers of L1 meanwhile see the
/// state of the last flush. Only the thread that writes L1 (the receive
/// loop) may use a batch.
#[derive(Debug, Default)]
pub(crate) struct L1Batch {
    slots: HashMap<InstrumentId, Slot, IdBuildHasher>,
}

impl L1Batch {
    /// The slot of `id`: the batch's, else a copy of L1's, else a new one.
    #[inline]
    fn slot(&mut self, l1: &L1Cache, id: InstrumentId) -> &mut Slot {
        self.slots
            .entry(id)
            .or_insert_with(|| l1.slots.get(&id).map_or_else(Slot::new, |slot| slot.clone()))
    }

    /// The slot of `id` if the batch or L1 has one (a delta before any
    /// snapshot changes nothing, and must not make the instrument known).
    #[inline]
    fn known_slot(&mut self, l1: &L1Cache, id: InstrumentId) -> Option<&mut Slot> {
        match self.slots.entry(id) {
            Entry::Occupied(slot) => Some(slot.into_mut()),
            Entry::Vacant(vacant) => Some(vacant.insert(l1.slots.get(&id)?.clone())),
        }
    }

    /// [`L1Cache::set_tick`] into the batch.
    #[inline]
    fn set_tick(&mut self, l1: &L1Cache, tick: &Tick) {
        self.slot(l1, tick.instrument).set_tick(tick);
    }

    /// [`L1Cache::apply_snapshot`] into the batch.
    #[inline]
    fn apply_snapshot(&mut self, l1: &L1Cache, snapshot: &BookSnapshot) -> mdbus_types::Result<SnapshotCheck> {
        self.slot(l1, snapshot.instrument).apply_snapshot(snapshot)
    }

    /// [`L1Cache::apply_delta`] into the batch.
    #[inline]
    fn apply_delta(&mut self, l1: &L1Cache, delta: &BookDelta) -> mdbus_types::Result<()> {
        match self.known_slot(l1, delta.instrument) {
            Some(slot) => slot.apply_delta(delta),
            None => Ok(()),
        }
    }

    /// Writes the batch's slots into `l1` and empties the batch.
    pub(crate) fn flush(&mut self, l1: &L1Cache) {
        if self.slots.is_empty() {
            return;
        }
        for (id, slot) in self.slots.drain() {
            l1.slots.insert(id, slot);
        }
    }
}

/// Where a delivered record's L1 update goes: L1 itself (under its shard
/// locks) or an [`L1Batch`] in front of it.
pub(crate) trait L1Writer {
    /// [`L1Cache::set_tick`].
    fn set_tick(&mut self, tick: &Tick);
    /// [`L1Cache::apply_snapshot`].
    fn apply_snapshot(&mut self, snapshot: &BookSnapshot) -> mdbus_types::Result<SnapshotCheck>;
    /// [`L1Cache::apply_delta`].
    fn apply_delta(&mut self, delta: &BookDelta) -> mdbus_types::Result<()>;
}

impl L1Writer for &L1Cache {
    #[inline]
    fn set_tick(&mut self, tick: &Tick) {
        L1Cache::set_tick(self, tick);
    }

    #[inline]
    fn apply_snapshot(&mut self, snapshot: &BookSnapshot) -> mdbus_types::Result<SnapshotCheck> {
        L1Cache::apply_snapshot(self, snapshot)
    }

    #[inline]
    fn apply_delta(&mut self, delta: &BookDelta) -> mdbus_types::Result<()> {
        L1Cache::apply_delta(self, delta)
    }
}

/// An [`L1Batch`] in front of the L1 it is flushed into.
#[derive(Debug)]
pub(crate) struct Batched<'a> {
    pub(crate) batch: &'a mut L1Batch,
    pub(crate) l1: &'a L1Cache,
}

impl L1Writer for Batched<'_> {
    #[inline]
    fn set_tick(&mut self, tick: &Tick) {
        self.batch.set_tick(self.l1, tick);
    }

    #[inline]
    fn apply_snapshot(&mut self, snapshot: &BookSnapshot) -> mdbus_types::Result<SnapshotCheck> {
        self.batch.apply_snapshot(self.l1, snapshot)
    }

    #[inline]
    fn apply_delta(&mut self, delta: &BookDelta) -> mdbus_types::Result<()> {
        self.batch.apply_delta(self.l1, delta)
    }
}

#[cfg(test)]
mod tests {
    use mdbus_types::{Price, Side};

    use super::*;

    fn snapshot(seq: u64, bid: i64) -> BookSnapshot {
        let mut snapshot = BookSnapshot::empty(InstrumentId::new("IF2501").unwrap(), seq as i64);
        snapshot.header.seq = seq;
        snapshot.bid_count = 1;
        snapshot.bids[0] = Level {
            price: Price::from_raw(bid),
            qty: 5,
        };
        snapshot
    }

    /// Each verdict of a snapshot against a slot's book, and what the
    /// book is after it.
    #[test]
    fn a_snapshot_is_compared_then_applied() {
        let mut slot = Slot::new();
        assert_eq!(
            slot.apply_snapshot(&snapshot(1, 100)).unwrap(),
            SnapshotCheck::NotCompared
        );
        // Equal: only the header is taken.
        assert_eq!(slot.apply_snapshot(&snapshot(2, 100)).unwrap(), SnapshotCheck::Match);
        assert_eq!(slot.book.as_ref().unwrap().to_snapshot().header.seq, 2);
        // Different: counted, and the book becomes the snapshot.
        assert_eq!(slot.apply_snapshot(&snapshot(3, 99)).unwrap(), SnapshotCheck::Mismatch);
        assert_eq!(slot.mismatches, 1);
        assert_eq!(slot.book.as_ref().unwrap().bids()[0].price, Price::from_raw(99));
        // A delta keeps the book; the snapshot after it matches.
        let delta = BookDelta::new(snapshot(0, 0).instrument, Side::Bid, Price::from_raw(98), 1, 4);
        slot.apply_delta(&delta).unwrap();
        let mut after = snapshot(5, 99);
        after.bid_count = 2;
        after.bids[1] = Level {
            price: Price::from_raw(98),
            qty: 1,
        };
        assert_eq!(slot.apply_snapshot(&after).unwrap(), SnapshotCheck::Match);
        // Stale: not compared, and no longer stale after.
        slot.stale = true;
        assert_eq!(slot.apply_snapshot(&after).unwrap(), SnapshotCheck::NotCompared);
        assert!(!slot.stale);
        // Equal in its valid levels but with a level past its count: an
        // invalid snapshot, refused, the book unchanged.
        let mut bad = after;
        bad.header.seq = 6;
        bad.bids[5] = Level {
            price: Price::from_raw(1),
            qty: 1,
        };
        assert!(slot.apply_snapshot(&bad).is_err());
        let book = slot.book.as_ref().unwrap();
        assert_eq!((book.to_snapshot().header.seq, book.bids()), (5, after.bid_levels()));
        assert_eq!(slot.mismatches, 1);
    }
}
