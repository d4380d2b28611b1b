//! The record every transport carries: a 376-byte `MdSample` holding a
//! `Tick` whose `volume` is the publisher's running index and whose
//! `last_qty` says whether it belongs to the measured phase (1) or the
//! warm-up (0); and the pacing of the publisher.

use std::mem::offset_of;
use std::time::Duration;

use mdbus_types::{FLAG_RECOVERY_SNAPSHOT, InstrumentId, Kind, MdSample, Price, RecordHeader, Tick};

/// The instrument of every bench record.
pub const INSTRUMENT: &str = "BENCH";

/// Most records one send batch takes when the publisher is behind its
/// schedule (or unpaced).
pub const MAX_BATCH: u64 = 64;

const INDEX_WORD: usize = offset_of!(Tick, volume) / 8;
const MEASURED_WORD: usize = offset_of!(Tick, last_qty) / 8;
const TS_PUBLISH_WORD: usize = offset_of!(RecordHeader, ts_publish) / 8;
const KIND_WORD: usize = offset_of!(RecordHeader, kind) / 8;
// `kind` and `flags` share word 3: kind in the low 16 bits, flags in the
// next 16 (little-endian layout).
const FLAGS_SHIFT: usize = (offset_of!(RecordHeader, flags) - offset_of!(RecordHeader, kind)) * 8;
const _: () = assert!(offset_of!(RecordHeader, kind) % 8 == 0 && offset_of!(RecordHeader, flags) / 8 == KIND_WORD);

/// A bench tick with running `index` (from 1), marked measured or warm-up.
pub fn tick(index: u64, measured: bool) -> MdSample {
    MdSample::from(Tick {
        header: RecordHeader::new(Kind::Tick, 0),
        instrument: InstrumentId::new(INSTRUMENT).expect("a valid symbol"),
        last_px: Price::from_raw(100_000_000_000),
        last_qty: i64::from(measured),
        bid_px: Price::from_raw(99_000_000_000),
        bid_qty: 1,
        ask_px: Price::from_raw(101_000_000_000),
        ask_qty: 1,
        volume: index as i64,
    })
}

/// What a subscriber reads of a received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// `ts_publish` of the record, ns since the Unix epoch.
    pub ts_publish: i64,
    /// The publisher's running index.
    pub index: u64,
    /// Whether it belongs to the measured phase.
    pub measured: bool,
}

/// The bench fields of `sample`, `None` for a record that is not a bench
/// tick: any other kind (mdbus also sends book snapshots and heartbeats)
/// and any record flagged [`FLAG_RECOVERY_SNAPSHOT`] (on each WAL segment
/// roll mdbus resends the last tick, restamped, in its snapshot set: it is
/// neither recorded nor counted as received).
#[inline]
pub fn read(sample: &MdSample) -> Option<Received> {
    let word = sample.words[KIND_WORD];
    if (word & 0xffff) as u16 != Kind::Tick as u16 {
        return None;
    }
    if ((word >> FLAGS_SHIFT) & 0xffff) as u16 & FLAG_RECOVERY_SNAPSHOT != 0 {
        return None;
    }
    Some(Received {
        ts_publish: sample.words[TS_PUBLISH_WORD] as i64,
        index: sample.words[INDEX_WORD],
        measured: sample.words[MEASURED_WORD] == 1,
    })
}

/// Records due after `elapsed` at `rate` per second (`u64::MAX` when
/// unpaced: rate 0).
pub fn due(rate: u64, elapsed: Duration) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    u64::try_from(elapsed.as_nanos() * u128::from(rate) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_gives_back_index_measured_and_stamp() {
        let mut sample = tick(42, true);
        sample.header_mut().ts_publish = 1_764_000_000_123_456_789;
        assert_eq!(
            read(&sample),
            Some(Received {
                ts_publish: 1_764_000_000_123_456_789,
                index: 42,
                measured: true,
            })
        );
        assert!(!read(&tick(7, false)).unwrap().measured);
        assert_eq!(sample.as_bytes().len(), 376);
    }

    #[test]
    fn other_kinds_are_not_bench_records() {
        let heartbeat = MdSample::from(mdbus_types::Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, 0),
        });
        assert_eq!(read(&heartbeat), None);
    }

    #[test]
    fn snapshot_set_ticks_are_not_bench_records() {
        let mut sample = tick(9, true);
        sample.header_mut().flags = FLAG_RECOVERY_SNAPSHOT | mdbus_types::FLAG_END_OF_BATCH;
        assert_eq!(read(&sample), None);
        sample.header_mut().flags = mdbus_types::FLAG_END_OF_BATCH;
        assert_eq!(read(&sample).map(|r| r.index), Some(9));
    }

    #[test]
    fn due_follows_the_rate() {
        assert_eq!(due(100_000, Duration::from_millis(10)), 1000);
        assert_eq!(due(2_000_000, Duration::from_micros(1)), 2);
        assert_eq!(due(0, Duration::ZERO), u64::MAX);
    }
}
