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

/// How much history L2 keeps per instrument.
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
}

impl Default for L2Config {
    /// 10 000 ticks and 10 000 book records per instrument, no time window.
    fn default() -> L2Config {
        L2Config {
            max_ticks: 10_000,
            max_book_records: 10_000,
            window: None,
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
}

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
}

impl L2Cache {
    pub(crate) fn new(config: L2Config) -> L2Cache {
        L2Cache {
            config,
            instruments: HashMap::default(),
            horizon: i64::MIN,
            known_from: None,
        }
    }

    /// Records were lost: forget everything, start again with the next record.
    pub(crate) fn reset(&mut self) {
        self.instruments.clear();
        self.horizon = i64::MIN;
        self.known_from = None;
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
        let history = self
            .instruments
            .entry(id)
            .or_insert_with(|| InstrumentHistory::new(known_from));
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
