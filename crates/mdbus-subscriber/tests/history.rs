//! `ticks()` and `book_at()` from L2 and from L3 against a reference
//! computed from a full replay of the WAL.

mod common;

use std::collections::HashMap;

use common::{events_until, publish, publisher};
use mdbus_publisher::SyntheticFeed;
use mdbus_subscriber::{CacheLevel, CatchUp, History, L2Config, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::InProcBus;
use mdbus_types::WalLocation;
use mdbus_types::{Book, BookSnapshot, FLAG_RECOVERY_SNAPSHOT, InstrumentId, MdSample, RecordRef, Tick};

/// Trades per instrument, from a full replay.
fn reference_ticks(records: &[MdSample], id: &InstrumentId, from: i64, to: i64) -> Vec<Tick> {
    records
        .iter()
        .filter_map(|s| match s.record().unwrap() {
            RecordRef::Tick(t) if t.instrument == *id && t.header.flags & FLAG_RECOVERY_SNAPSHOT == 0 => Some(*t),
            _ => None,
        })
        .filter(|t| (from..=to).contains(&t.header.ts_event))
        .collect()
}

/// The book of `id` after every record up to the first one later than `ts`.
fn reference_book(records: &[MdSample], id: &InstrumentId, ts: i64) -> Option<BookSnapshot> {
    let mut book: Option<Book> = None;
    for sample in records {
        if sample.header().ts_event > ts {
            break;
        }
        match sample.record().unwrap() {
            RecordRef::BookSnapshot(s) if s.instrument == *id => {
                book = Some(Book::from_snapshot(s).unwrap());
            }
            RecordRef::BookDelta(d) if d.instrument == *id => {
                book.as_mut().unwrap().apply_delta(d).unwrap();
            }
            _ => {}
        }
    }
    book.map(|b| b.to_snapshot())
}

#[test]
fn ticks_and_book_at_match_a_full_replay_from_l2_and_l3() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let mut feed = SyntheticFeed::new(4, 21).unwrap();
    let mut p = publisher(dir.path(), "hist", &bus, 256 << 10);
    publish(&mut p, &mut feed, 8_000);
    p.flush().unwrap();
    let last = p.next_seq() - 1;
    let records = common::wal_records(dir.path(), "hist");
    assert_eq!(records.len() as u64, last);

    let subscribe_with = |l2: L2Config, catch_up: CatchUp| {
        let config = SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), "hist").unwrap())
            .start(StartFrom::Seq(1))
            .l2(l2)
            .catch_up(catch_up);
        let mut s = Subscriber::new(bus.subscribe(), config).unwrap();
        events_until(&mut s, last, |_| {});
        s
    };
    let subscribe = |l2: L2Config| subscribe_with(l2, CatchUp::Full);
    let big = subscribe(L2Config::default().max_ticks(1 << 20).max_book_records(1 << 20));
    let small = subscribe(L2Config::default().max_ticks(50).max_book_records(100));
    // A state-only catch-up: the same L1, no L2 of the replayed range.
    let state_only = subscribe_with(
        L2Config::default().max_ticks(1 << 20).max_book_records(1 << 20),
        CatchUp::StateOnly,
    );
    assert_eq!(state_only.l1().dump(), big.l1().dump());
    let standalone = History::open(WalLocation::try_new(dir.path(), "hist").unwrap());
    drop(p); // the publisher exits; the WAL still answers

    let ids: Vec<InstrumentId> = feed.instruments().collect();
    let times: Vec<i64> = records.iter().step_by(997).map(|s| s.header().ts_event).collect();
    let newest = records.last().unwrap().header().ts_event;
    let mut levels: HashMap<(&str, CacheLevel), usize> = HashMap::new();
    for id in &ids {
        for (i, &t) in times.iter().enumerate() {
            for ts in [t - 1, t, t + 1] {
                let want = reference_book(&records, id, ts);
                for (name, s) in [("big", &big), ("small", &small), ("state_only", &state_only)] {
                    let (got, level) = s.book_at_traced(id, ts).unwrap();
                    assert_eq!(got, want, "{name} book_at({id}, {ts}) from {level:?}");
                    *levels.entry((name, level)).or_default() += 1;
                }
                assert_eq!(standalone.book_at(id, ts).unwrap(), want, "L3 book_at({id}, {ts})");
            }
            let to = times.get(i + 3).copied().unwrap_or(newest);
            let want = reference_ticks(&records, id, t, to);
            for (name, s) in [("big", &big), ("small", &small), ("state_only", &state_only)] {
                let (got, level) = s.history().ticks_traced(id, t, to).unwrap();
                assert_eq!(got, want, "{name} ticks({id}, {t}, {to}) from {level:?}");
                *levels.entry((name, level)).or_default() += 1;
            }
            assert_eq!(standalone.ticks(id, t, to).unwrap(), want);
        }
        // Recent history: the small L2 still holds it.
        let recent = records[records.len() - 20].header().ts_event;
        let (got, level) = small.book_at_traced(id, newest - 1).unwrap();
        assert_eq!((got, level), (reference_book(&records, id, newest - 1), CacheLevel::L2));
        let (got, level) = small.history().ticks_traced(id, recent, newest - 1).unwrap();
        assert_eq!(
            (got, level),
            (reference_ticks(&records, id, recent, newest - 1), CacheLevel::L2)
        );
        *levels.entry(("small", CacheLevel::L2)).or_default() += 2;
    }
    // The big L2 answered all but the newest instants; the small one sent
    // the older ranges to the WAL.
    let count = |name, level| levels.get(&(name, level)).copied().unwrap_or(0);
    assert!(
        count("big", CacheLevel::L2) > 3 * count("big", CacheLevel::L3),
        "{levels:?}"
    );
    assert!(
        count("small", CacheLevel::L3) > count("small", CacheLevel::L2),
        "{levels:?}"
    );
    assert!(count("small", CacheLevel::L2) > 0, "{levels:?}");
    // Everything was replayed: the state-only catch-up kept no history.
    assert_eq!(count("state_only", CacheLevel::L2), 0, "{levels:?}");
    assert!(count("state_only", CacheLevel::L3) > 0, "{levels:?}");
}
