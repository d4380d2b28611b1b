//! History queries that go L2 then L3, transparently.

use std::sync::Arc;

use mdbus_types::{BookSnapshot, InstrumentId, Tick};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::history::History;
use crate::l2::{CacheLevel, L2Cache};

/// `ticks` and `book_at` from the subscriber's L2 when it holds the whole
/// answer, else from the WAL (L3). Cheap to clone and `Send + Sync`: hand
/// it to other threads ([`Subscriber::history`](crate::Subscriber::history)).
#[derive(Debug, Clone)]
pub struct CachedHistory {
    pub(crate) l2: Arc<Mutex<L2Cache>>,
    pub(crate) l3: Option<History>,
}

impl CachedHistory {
    /// The trades of `instrument` with `from <= ts_event <= to`, in seq order.
    pub fn ticks(&self, instrument: &InstrumentId, from: i64, to: i64) -> Result<Vec<Tick>> {
        self.ticks_traced(instrument, from, to).map(|(ticks, _)| ticks)
    }

    /// [`CachedHistory::ticks`], and which level answered.
    pub fn ticks_traced(&self, instrument: &InstrumentId, from: i64, to: i64) -> Result<(Vec<Tick>, CacheLevel)> {
        if let Some(ticks) = self.l2.lock().ticks(instrument, from, to) {
            return Ok((ticks, CacheLevel::L2));
        }
        match &self.l3 {
            Some(history) => Ok((history.ticks(instrument, from, to)?, CacheLevel::L3)),
            None => Err(not_covered(instrument, from, to)),
        }
    }

    /// The book of `instrument` at `ts` (see [`History::book_at`]).
    pub fn book_at(&self, instrument: &InstrumentId, ts: i64) -> Result<Option<BookSnapshot>> {
        self.book_at_traced(instrument, ts).map(|(book, _)| book)
    }

    /// [`CachedHistory::book_at`], and which level answered.
    pub fn book_at_traced(&self, instrument: &InstrumentId, ts: i64) -> Result<(Option<BookSnapshot>, CacheLevel)> {
        if let Some(book) = self.l2.lock().book_at(instrument, ts) {
            return Ok((book, CacheLevel::L2));
        }
        match &self.l3 {
            Some(history) => Ok((history.book_at(instrument, ts)?, CacheLevel::L3)),
            None => Err(not_covered(instrument, ts, ts)),
        }
    }

    /// The WAL behind L3, if the subscriber has one.
    pub fn wal(&self) -> Option<&History> {
        self.l3.as_ref()
    }
}

fn not_covered(instrument: &InstrumentId, from: i64, to: i64) -> Error {
    Error::NotCovered {
        instrument: instrument.to_string(),
        from,
        to,
    }
}
