//! L2: bounded in-memory history per instrument — the last ticks, and the
//! book snapshots and deltas `book_at` needs — filled by the receive loop.
//!
//! # Which records a query sees
//!
//! A query at time `T` sees the feed's records in seq order up to the first
//! record whose `ts_event > T` (the publisher stamps records in time order;
//! a `BookSnapshot` carries the time of the book's last change and a
//! `RECOVERY_SNAPSHOT` tick repeats an earlier trade, so neither is ever
//! later than the records before it). `ticks` returns trades only, not the
//! recovery copies. L2 and L3 ([`History`](crate::History)) apply the same
//! rule, so they give the same answers: L2 stores with every book record
//! the feed's *horizon* (the largest `ts_event` up to it) and applies a
//! record iff its horizon is `<= T`.
//!
//! L2 answers only what it has seen entirely: from its first *current*
//! record (a delta, heartbeat or trade, not a snapshot copy with an older
//! time) until just before the newest time seen, and back as far as its
//! limits keep; anything else goes to L3.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use mdbus_types::{Book, BookDelta, BookSnapshot, FLAG_RECOVERY_SNAPSHOT, InstrumentId, RecordHeader, RecordRef, Tick};

use crate::hash::IdBuildHasher;

/// How much history L2 keeps: per instrument, and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct L2Config {
    /// Last ticks kept per instrument (0: no tick history in memory).
    pub max_ticks: usize,
    /// Book records (snapshots + deltas) kept per instrument; older ones
    /// are dropped a snapshot at a time, so the log always starts with a
    /// snapshot (it may exceed this until the next snapshot arrives).
    /// 0: no book history in memory.
    pub max_book_records: usize,
    /// Also drop what is older than this (by `ts_event`, relative to the
    /// newest record); `None`: by count only.
    pub window: Option<Duration>,
    /// The memory budget of the whole cache, whatever the universe: each
    /// instrument gets an equal share (half for ticks, half for book
    /// records) within the counts above, and drops its oldest history past
    /// it (the pushed instrument at once, the others by a sweep of one
    /// instrument per record). `None`: the counts alone (which at 4 096
    /// instruments and the default counts is ~20 GB).
    pub max_bytes: Option<usize>,
}

/// [`L2Config::max_bytes`] by default: 256 MiB.
pub const DEFAULT_L2_BYTES: usize = 256 << 20;

impl Default for L2Config {
    /// 10 000 ticks and 10 000 book records per instrument within 256 MiB
    /// in all, no time window.
    fn default() -> L2Config {
        L2Config {
            max_ticks: 10_000,
            max_book_records: 10_000,
            window: None,
            max_bytes: Some(DEFAULT_L2_BYTES),
        }
    }
}

impl L2Config {
    /// Sets [`L2Config::max_ticks`].
    pub fn max_ticks(mut self, n: usize) -> L2Config {
        self.max_ticks = n;
        self
    }

    /// Sets [`L2Config::max_book_records`].
    pub fn max_book_records(mut self, n: usize) -> L2Config {
        self.max_book_records = n;
        self
    }

    /// Sets [`L2Config::window`].
    pub fn window(mut self, window: Option<Duration>) -> L2Config {
        self.window = window;
        self
    }

    /// Sets [`L2Config::max_bytes`].
    pub fn max_bytes(mut self, bytes: Option<usize>) -> L2Config {
        self.max_bytes = bytes;
        self
    }

    /// No history in memory (every query goes to the WAL).
    pub fn off() -> L2Config {
        L2Config::default().max_ticks(0).max_book_records(0)
    }
}

const TICK_BYTES: usize = std::mem::size_of::<Tick>();
const SNAPSHOT_BYTES: usize = std::mem::size_of::<(i64, u64, BookSnapshot)>();
const DELTA_BYTES: usize = std::mem::size_of::<(i64, BookDelta)>();

/// Whether `record`'s `ts_event` is the time it was published (not an
/// older time carried by a snapshot or a recovery copy).
#[inline]
fn is_current(record: &RecordRef<'_>) -> bool {
    match record {
        RecordRef::BookSnapshot(_) => false,
        RecordRef::Tick(t) => t.header.flags & FLAG_RECOVERY_SNAPSHOT == 0,
        RecordRef::BookDelta(_) | RecordRef::Heartbeat(_) => true,
    }
}

/// A ticks query answer counts a tick iff it is a trade (not a recovery copy).
#[inline]
pub(crate) fn is_trade(header: &RecordHeader) -> bool {
    header.flags & FLAG_RECOVERY_SNAPSHOT == 0
}

#[derive(Debug, Default)]
struct InstrumentHistory {
    ticks: VecDeque<Tick>,
    /// Every tick of this instrument with `ts_event >= ticks_from` is in
    /// `ticks`.
    ticks_from: i64,
    /// (horizon, index in `deltas` space of the first delta after it, snapshot).
    snapshots: VecDeque<(i64, u64, BookSnapshot)>,
    /// (horizon, delta); `deltas[0]` has absolute index `delta_base`.
    deltas: VecDeque<(i64, BookDelta)>,
    delta_base: u64,
}

impl InstrumentHistory {
    fn new(ticks_from: i64) -> InstrumentHistory {
        InstrumentHistory {
            ticks_from,
            ..InstrumentHistory::default()
        }
    }

    fn book_records(&self) -> usize {
        self.snapshots.len() + self.deltas.len()
    }

    fn next_delta_index(&self) -> u64 {
        self.delta_base + self.deltas.len() as u64
    }

    fn book_bytes(&self) -> usize {
        self.snapshots.len() * SNAPSHOT_BYTES + self.deltas.len() * DELTA_BYTES
    }

    /// Memory held (the deques' capacities).
    fn allocated_bytes(&self) -> usize {
        self.ticks.capacity() * TICK_BYTES
            + self.snapshots.capacity() * SNAPSHOT_BYTES
            + self.deltas.capacity() * DELTA_BYTES
    }

    /// Drops the oldest ticks past half of `share` bytes. The count leaves
    /// room for the deque's doubling: what it allocates stays within the
    /// half.
    #[inline]
    fn trim_ticks(&mut self, share: usize) {
        let tick_cap = share / 2 / TICK_BYTES / 2;
        while self.ticks.len() > tick_cap {
            let Some(old) = self.ticks.pop_front() else { break };
            self.ticks_from = self.ticks_from.max(old.header.ts_event.saturating_add(1));
        }
    }

    /// Drops whole book epochs past a quarter of `share` bytes (the last
    /// one too when it alone is over: queries of that time then go to the
    /// WAL), so that the two deques, each doubling on its own, allocate
    /// within half of the share.
    #[inline]
    fn trim_book(&mut self, share: usize) {
        let half = share / 2;
        while !self.snapshots.is_empty() && self.book_bytes() > half / 2 {
            self.drop_first_epoch();
        }
        // What a larger share let them allocate (or a deque's minimum
        // capacity) is given back.
        if self.snapshots.capacity() * SNAPSHOT_BYTES + self.deltas.capacity() * DELTA_BYTES > half {
            self.snapshots.shrink_to(self.snapshots.len());
            self.deltas.shrink_to(self.deltas.len());
        }
    }

    /// Both trims, and gives back what the deques hold past the share (a
    /// share that shrank as the universe grew).
    fn trim_to(&mut self, share: usize) {
        self.trim_ticks(share);
        self.trim_book(share);
        if self.ticks.capacity() * TICK_BYTES > share / 2 {
            self.ticks.shrink_to(self.ticks.len());
        }
    }

    /// Drops the oldest snapshot and the deltas after it.
    fn drop_first_epoch(&mut self) {
        self.snapshots.pop_front();
        let keep_from = self.snapshots.front().map_or(self.next_delta_index(), |s| s.1);
        while self.delta_base < keep_from {
            self.deltas.pop_front();
            self.delta_base += 1;
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheLevel {
    /// The in-memory history.
    L2,
    /// The WAL, through its sparse index.
    L3,
}

/// The L2 cache (owned by the receive loop behind a mutex; queries lock it
/// briefly).
#[derive(Debug)]
pub(crate) struct L2Cache {
    config: L2Config,
    instruments: HashMap<InstrumentId, InstrumentHistory, IdBuildHasher>,
    /// The largest time-bearing `ts_event` seen (`i64::MIN`: none yet).
    horizon: i64,
    /// Everything with a time-bearing `ts_event >= known_from` has been
    /// seen (`None`: nothing yet, or just reset after a gap).
    known_from: Option<i64>,
    /// The instruments in the order they came (the budget's sweep).
    order: Vec<InstrumentId>,
    sweep: usize,
    /// Instruments still to visit since the shares last changed.
    sweep_left: usize,
    /// Each instrument's share of the budget, for `shared_by` instruments.
    share: usize,
    shared_by: usize,
}

impl L2Cache {
    pub(crate) fn new(config: L2Config) -> L2Cache {
        L2Cache {
            config,
            instruments: HashMap::default(),
            horizon: i64::MIN,
            known_from: None,
            order: Vec::new(),
            sweep: 0,
            sweep_left: 0,
            share: 0,
            shared_by: 0,
        }
    }

    /// Records were lost: forget everything, start again with the next record.
    pub(crate) fn reset(&mut self) {
        self.instruments.clear();
        self.order.clear();
        self.horizon = i64::MIN;
        self.known_from = None;
    }

    /// Memory the history holds (the deques' capacities; the maps'
    /// overhead, a few dozen bytes per instrument, is not counted).
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.instruments.values().map(InstrumentHistory::allocated_bytes).sum()
    }

    /// The budget's other half (see [`L2Cache::push`], which keeps the
    /// instrument it pushed to within its share): when the universe grew
    /// (every share shrank), one other instrument per record, round robin,
    /// until all were visited.
    #[inline]
    fn sweep_budget(&mut self) {
        let share = self.share;
        if self.sweep_left > 0 && !self.order.is_empty() {
            self.sweep_left -= 1;
            self.sweep = (self.sweep + 1) % self.order.len();
            if let Some(history) = self.instruments.get_mut(&self.order[self.sweep]) {
                history.trim_to(share);
            }
        }
    }

    /// Adds one delivered record (in seq order, no holes since the last reset).
    pub(crate) fn push(&mut self, record: RecordRef<'_>) {
        if self.config.max_ticks == 0 && self.config.max_book_records == 0 {
            // No history in memory: every query goes to L3.
            return;
        }
        let ts = record.header().ts_event;
        if self.known_from.is_none() && (record.header().seq == 1 || is_current(&record)) {
            // The feed's first record (seq 1) has nothing before it;
            // otherwise records before ours have ts <= this one's.
            let first = if record.header().seq == 1 {
                i64::MIN
            } else {
                ts.saturating_add(1)
            };
            self.known_from = Some(first);
        }
        self.horizon = self.horizon.max(ts);
        let Some(known_from) = self.known_from else { return };
        let config = self.config;
        let horizon = self.horizon;
        let Some(id) = record.instrument() else { return };
        let order = &mut self.order;
        let history = self.instruments.entry(id).or_insert_with(|| {
            order.push(id);
            InstrumentHistory::new(known_from)
        });
        // Each instrument's share of the budget (`order` lists every
        // instrument in `instruments`); `history`, just pushed to, is kept
        // within it at once, below, without a second lookup.
        if let Some(budget) = config.max_bytes {
            let n = order.len().max(1);
            if n != self.shared_by {
                self.shared_by = n;
                self.share = budget / n;
                self.sweep_left = n;
            }
        }
        let share = self.share;
        match record {
            RecordRef::Tick(t) if is_trade(&t.header) && config.max_ticks > 0 => {
                history.ticks.push_back(*t);
                let cutoff = config.window.map(|w| horizon.saturating_sub(w.as_nanos() as i64));
                while history.ticks.len() > config.max_ticks
                    || cutoff.is_some_and(|c| history.ticks.front().is_some_and(|f| f.header.ts_event < c))
                {
                    let Some(old) = history.ticks.pop_front() else { break };
                    history.ticks_from = history.ticks_from.max(old.header.ts_event.saturating_add(1));
                }
            }
            RecordRef::BookSnapshot(s) if config.max_book_records > 0 => {
                let next = history.next_delta_index();
                history.snapshots.push_back((horizon, next, *s));
                let cutoff = config.window.map(|w| horizon.saturating_sub(w.as_nanos() as i64));
                while history.snapshots.len() >= 2
                    && (history.book_records() > config.max_book_records
                        || cutoff.is_some_and(|c| history.snapshots[1].0 <= c))
                {
                    history.drop_first_epoch();
                }
            }
            RecordRef::BookDelta(d) if config.max_book_records > 0 && !history.snapshots.is_empty() => {
                history.deltas.push_back((horizon, *d));
            }
            _ => {}
        }
        if config.max_bytes.is_some() {
            if matches!(record, RecordRef::Tick(_)) {
                history.trim_ticks(share);
            } else {
                history.trim_book(share);
            }
            self.sweep_budget();
        }
    }

    /// The ticks of `id` with `from <= ts_event <= to`, if L2 holds all of them.
    pub(crate) fn ticks(&self, id: &InstrumentId, from: i64, to: i64) -> Option<Vec<Tick>> {
        let known_from = self.known_from?;
        if to >= self.horizon {
            // Records at or before `to` may still come.
            return None;
        }
        let ticks_from = self.instruments.get(id).map_or(known_from, |h| h.ticks_from);
        if from < ticks_from.max(known_from) || self.config.max_ticks == 0 {
            return None;
        }
        let Some(history) = self.instruments.get(id) else {
            return Some(Vec::new());
        };
        let start = history.ticks.partition_point(|t| t.header.ts_event < from);
        Some(
            history
                .ticks
                .range(start..)
                .take_while(|t| t.header.ts_event <= to)
                .copied()
                .collect(),
        )
    }

    /// The book of `id` at `ts` (see the module docs), `Some(None)` when L2
    /// knows the instrument had no book then, `None` when L2 cannot answer.
    pub(crate) fn book_at(&self, id: &InstrumentId, ts: i64) -> Option<Option<BookSnapshot>> {
        if ts < self.known_from? || ts >= self.horizon {
            return None;
        }
        let history = self.instruments.get(id)?;
        let first = history.snapshots.front()?;
        if first.0 > ts {
            return None;
        }
        // The last snapshot applied before the horizon passes `ts`.
        let k = history.snapshots.partition_point(|s| s.0 <= ts) - 1;
        let (_, delta_index, snapshot) = &history.snapshots[k];
        let mut book = Book::from_snapshot(snapshot).ok()?;
        let end = history.snapshots.get(k + 1).map_or(history.next_delta_index(), |s| s.1);
        for i in *delta_index..end {
            let (horizon, delta) = &history.deltas[(i - history.delta_base) as usize];
            if *horizon > ts {
                break;
            }
            // A delta that does not apply was counted by the receive loop.
            let _ = book.apply_delta(delta);
        }
        Some(Some(book.to_snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{Level, MdSample, Price, Side};

    /// 1 000 instruments through a 4 MiB budget: once every instrument has
    /// been seen and swept, the history never holds more than the budget,
    /// however long the stream; and what it keeps still answers.
    #[test]
    fn the_budget_holds_whatever_the_universe() {
        let budget = 4 << 20;
        let mut l2 = L2Cache::new(L2Config::default().max_bytes(Some(budget)));
        let ids: Vec<InstrumentId> = (0..1000)
            .map(|i| InstrumentId::new(&format!("I{i}")).unwrap())
            .collect();
        let mut seq = 0;
        let mut peak_after_sweep = 0;
        for round in 0..200u64 {
            for (i, id) in ids.iter().enumerate() {
                seq += 1;
                let ts = seq as i64 * 1_000;
                let record = match round % 20 {
                    0 => {
                        let mut s = BookSnapshot::empty(*id, ts);
                        s.bid_count = 1;
                        s.bids[0] = Level {
                            price: Price::from_f64(100.0).unwrap(),
                            qty: 1,
                        };
                        s.header.seq = seq;
                        MdSample::from(s)
                    }
                    r if r % 2 == 1 => {
                        let mut t = Tick::new(*id, ts).last(Price::from_f64(100.0).unwrap(), 1);
                        t.header.seq = seq;
                        MdSample::from(t)
                    }
                    r => {
                        let mut d =
                            BookDelta::new(*id, Side::Bid, Price::from_f64(99.0 + r as f64 / 100.0).unwrap(), 2, ts);
                        d.header.seq = seq;
                        MdSample::from(d)
                    }
                };
                l2.push(record.record().unwrap());
                if round >= 2 && i % 100 == 0 {
                    peak_after_sweep = peak_after_sweep.max(l2.allocated_bytes());
                }
            }
        }
        assert!(peak_after_sweep > 0);
        assert!(
            peak_after_sweep <= budget,
            "{peak_after_sweep} bytes held, budget {budget}"
        );
        // The newest ticks are still answered from memory.
        let horizon = seq as i64 * 1_000;
        let ticks = l2.ticks(&ids[7], horizon - 5_000_000, horizon - 1);
        assert!(ticks.is_some_and(|t| !t.is_empty()));
    }
}
