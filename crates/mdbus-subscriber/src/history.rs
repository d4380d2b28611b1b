//! L3: history queries straight from a feed's WAL, through its sparse
//! index. Works on its own (after the publisher exited, from the CLI) and
//! behind [`CachedHistory`](crate::CachedHistory) when L2 cannot answer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mdbus_types::{Book, BookSnapshot, InstrumentId, RecordRef, Tick, WalLocation};
use mdbus_wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};
use parking_lot::Mutex;

use crate::error::Result;
use crate::l2::is_trade;

/// A feed's WAL as history: `ticks` and `book_at` (see the `l2` module docs
/// of this crate for which records a query at time `T` sees; L2 applies
/// the same rule). Cheap to clone.
///
/// A query reuses the reader of the previous one (clones share it), whose
/// segment maps and sparse indexes are kept: a seek then walks no frame it
/// walked before. Concurrent queries each take their own reader. Up to a
/// few segment maps stay open between queries (a segment deleted by
/// retention meanwhile keeps its disk space until the next query).
#[derive(Debug, Clone)]
pub struct History {
    wal: WalLocation,
    lookback: Duration,
    /// The reader the last query left, to seek again.
    spare: Arc<Mutex<Option<WalReader>>>,
}

impl PartialEq for History {
    fn eq(&self, other: &History) -> bool {
        (&self.wal, self.lookback) == (&other.wal, other.lookback)
    }
}

impl Eq for History {}

impl History {
    /// The history in the WAL at `wal`.
    pub fn open(wal: WalLocation) -> History {
        History {
            wal,
            lookback: Duration::from_secs(2),
            spare: Arc::default(),
        }
    }

    /// How far before `ts` [`History::book_at`] first looks for a snapshot
    /// (default 2 s: the publisher snapshots every instrument at least
    /// every second); when none is there it reads from the start of the
    /// segment, which begins with a full snapshot set.
    pub fn with_lookback(mut self, lookback: Duration) -> History {
        self.lookback = lookback;
        self
    }

    /// Where the WAL is.
    pub fn wal(&self) -> &WalLocation {
        &self.wal
    }

    /// A skip-corrupt reader at the first record at or after `ts`: the
    /// spare one sought again, or a new one.
    fn reader_at(&self, ts: i64) -> Result<WalReader> {
        let spare = self.spare.lock().take();
        if let Some(mut reader) = spare {
            reader.seek_time(ts)?;
            return Ok(reader);
        }
        Ok(WalReader::open(
            self.wal.root(),
            self.wal.feed().as_str(),
            ReadOptions {
                from: ReadFrom::Time(ts),
                skip_corrupt: true,
            },
        )?)
    }

    /// Keeps `reader` for the next query.
    fn put_back(&self, reader: WalReader) {
        *self.spare.lock() = Some(reader);
    }

    /// The trades (ticks that are not `RECOVERY_SNAPSHOT` copies) of
    /// `instrument` with `from <= ts_event <= to` (ns since Unix epoch), in
    /// seq order. Records lost to corruption are passed over.
    pub fn ticks(&self, instrument: &InstrumentId, from: i64, to: i64) -> Result<Vec<Tick>> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let mut reader = self.reader_at(from)?;
        // Only this instrument's ticks, and the record that ends the range,
        // are checked in full (their checksums); the rest are stepped over.
        let wanted = |record: RecordRef<'_>| match record {
            RecordRef::Tick(t) => t.instrument == *instrument || t.header.ts_event > to,
            other => other.header().ts_event > to,
        };
        while let Some(event) = reader.next_event_where(wanted)? {
            let ReadEvent::Record(record) = event else { continue };
            let record = record.record;
            if record.header().ts_event > to {
                break;
            }
            if let RecordRef::Tick(t) = record
                && t.instrument == *instrument
                && is_trade(&t.header)
                && t.header.ts_event >= from
            {
                out.push(*t);
            }
        }
        self.put_back(reader);
        Ok(out)
    }

    /// The book of `instrument` as it was at `ts`: the nearest snapshot at
    /// or before `ts`, then the deltas up to `ts`; the header carries the
    /// seq and times of the last record that changed it, flags 0. `None`
    /// when the instrument had no book then (or the WAL does not reach
    /// back that far).
    pub fn book_at(&self, instrument: &InstrumentId, ts: i64) -> Result<Option<BookSnapshot>> {
        let mut reader = self.reader_at(ts.saturating_sub(self.lookback.as_nanos() as i64))?;
        let book = self.book_with(&mut reader, instrument, ts);
        self.put_back(reader);
        book
    }

    fn book_with(&self, reader: &mut WalReader, instrument: &InstrumentId, ts: i64) -> Result<Option<BookSnapshot>> {
        if let Some(book) = replay_book(reader, instrument, ts)? {
            return Ok(Some(book));
        }
        // No snapshot in the lookback: from the start of `ts`'s segment.
        reader.seek_time(ts)?;
        let Some((path, _)) = reader.position() else {
            return Ok(None);
        };
        let Some(first_seq) = segment_first_seq(path) else {
            return Ok(None);
        };
        reader.seek_seq(first_seq)?;
        replay_book(reader, instrument, ts)
    }
}

/// Applies `instrument`'s records from the reader's position until the
/// feed's time passes `ts`; the book if a snapshot was met.
fn replay_book(reader: &mut WalReader, instrument: &InstrumentId, ts: i64) -> Result<Option<BookSnapshot>> {
    let mut book: Option<Book> = None;
    while let Some(event) = reader.next_event()? {
        let record = match event {
            ReadEvent::Record(record) => record.record,
            // Lost records: the book is unknown until the next snapshot.
            ReadEvent::Skipped(_) => {
                book = None;
                continue;
            }
        };
        if record.header().ts_event > ts {
            break;
        }
        match record {
            RecordRef::BookSnapshot(s) if s.instrument == *instrument => match &mut book {
                Some(book) => book.apply_snapshot(s)?,
                None => book = Some(Book::from_snapshot(s)?),
            },
            RecordRef::BookDelta(d) if d.instrument == *instrument => {
                if let Some(book) = &mut book {
                    book.apply_delta(d)?;
                }
            }
            _ => {}
        }
    }
    Ok(book.map(|b| b.to_snapshot()))
}

/// The first seq of a segment file `<first_seq:020>.wal`.
fn segment_first_seq(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(segment_first_seq(Path::new("/w/f/00000000000000000042.wal")), Some(42));
        assert_eq!(segment_first_seq(Path::new("/w/f/x.wal")), None);
    }
}
