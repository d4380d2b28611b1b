//! Replaying the independently written `wal-clean` fixture leaves every
//! instrument's L1 book equal to its `expected-books.json`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mdbus_subscriber::{Event, History, Source, Subscriber, SubscriberConfig};
use mdbus_transport::InProcBus;
use mdbus_types::WalLocation;
use mdbus_types::{InstrumentId, RecordRef, json::record_to_json};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wal-clean")
}

#[test]
fn replay_of_wal_clean_gives_the_expected_books() {
    let dir = fixture();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected-books.json")).unwrap()).unwrap();
    // No publisher: replay only (readers never write, so no copy needed).
    let bus = InProcBus::new(16);
    let mut subscriber = Subscriber::new(
        bus.subscribe(),
        SubscriberConfig::default().wal(WalLocation::try_new(&dir, "golden").unwrap()),
    )
    .unwrap();
    let deadline = Instant::now() + common::WATCHDOG;
    let mut events = Vec::new();
    while subscriber.stats().last_seq != Some(21) {
        assert!(Instant::now() < deadline, "watchdog");
        events.extend(subscriber.next_event(Duration::from_millis(100)).unwrap());
    }
    // Nothing more, and no switch to live without a publisher.
    assert_eq!(subscriber.next_event(Duration::from_millis(20)).unwrap(), None);
    assert!(!subscriber.is_live());
    assert!(events.iter().all(|e| matches!(
        e,
        Event::Record {
            source: Source::Replay,
            ..
        }
    )));
    common::assert_dense(&common::seqs(&events), 1, 21);
    let stats = subscriber.stats();
    // The fixture's seq 12 snapshot moves IF2501's book to new levels with
    // no deltas before it: the consistency check counts that once.
    assert_eq!(
        (stats.replayed, stats.mismatches, stats.gaps, stats.bad_records),
        (21, 1, 0, 0)
    );
    assert_eq!(subscriber.l1().mismatches(&InstrumentId::new("IF2501").unwrap()), 1);

    let expected = expected.as_object().unwrap();
    let l1 = subscriber.l1();
    assert_eq!(l1.len(), expected.len());
    for (symbol, book) in expected {
        let id = InstrumentId::new(symbol).unwrap();
        let ours = l1.book(&id).unwrap_or_else(|| panic!("no book of {symbol}"));
        let ours: serde_json::Value = serde_json::from_str(&record_to_json(RecordRef::BookSnapshot(&ours))).unwrap();
        assert_eq!(&ours, book, "{symbol}");
        assert!(!l1.is_stale(&id));
    }
    // The last tick of IF2501 is seq 20.
    let tick = l1.tick(&InstrumentId::new("IF2501").unwrap()).unwrap();
    assert_eq!(tick.header.seq, 20);
}

#[test]
fn history_answers_from_the_fixture_alone() {
    let history = History::open(WalLocation::try_new(fixture(), "golden").unwrap());
    let id = InstrumentId::new("IF2501").unwrap();
    let ts = |seq: i64| 1_764_000_000_000_000_000 + seq * 1000;
    // Trades only: seq 2 is a RECOVERY_SNAPSHOT copy in the snapshot set.
    let ticks = history.ticks(&id, 0, i64::MAX).unwrap();
    assert_eq!(ticks.iter().map(|t| t.header.seq).collect::<Vec<_>>(), [8, 20]);
    assert_eq!(history.ticks(&id, ts(9), ts(20)).unwrap().len(), 1);
    assert!(history.ticks(&id, ts(21), ts(30)).unwrap().is_empty());
    // The book at the end equals the expected one; at seq 7 it has seq 7's change.
    let end = history.book_at(&id, i64::MAX).unwrap().unwrap();
    assert_eq!(end.header.seq, 21);
    let at7 = history.book_at(&id, ts(7)).unwrap().unwrap();
    assert_eq!(at7.header.seq, 7);
    assert_eq!(history.book_at(&id, ts(1) - 1).unwrap(), None);
    assert_eq!(
        history.book_at(&InstrumentId::new("NOPE").unwrap(), ts(21)).unwrap(),
        None
    );
}
