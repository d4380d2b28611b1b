//! `CatchUp::Silent`: the replay is applied to L1, not delivered. The
//! first event is `ReplayDone` (or a `Gap` where the WAL lost records), the
//! live records follow without gap or duplicate, and L1 ends equal to the
//! publisher's books, as after a replay that delivers every record.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{WATCHDOG, assert_dense, publish, publisher, running_publisher, seqs};
use mdbus_publisher::SyntheticFeed;
use mdbus_subscriber::{CatchUp, Event, Source, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::{InProcBus, MdReceiver};
use mdbus_types::{SeqRange, WalLocation};
use mdbus_wal::{RetentionPolicy, apply_retention, inspect};

const EVENTS: usize = if cfg!(miri) { 500 } else { 40_000 };

fn silent(dir: &std::path::Path, feed: &str, start: StartFrom) -> SubscriberConfig {
    SubscriberConfig::default()
        .wal(WalLocation::try_new(dir, feed).unwrap())
        .start(start)
        .catch_up(CatchUp::Silent)
}

/// Events until the record `last` was delivered (watchdog).
fn events_until_record<R: MdReceiver>(subscriber: &mut Subscriber<R>, last: u64) -> Vec<Event> {
    let deadline = Instant::now() + WATCHDOG;
    let mut events = Vec::new();
    while events.last().and_then(Event::seq) != Some(last) {
        assert!(
            Instant::now() < deadline,
            "watchdog: record {last} not delivered; stats {:?}",
            subscriber.stats()
        );
        events.extend(subscriber.next_event(Duration::from_millis(100)).unwrap());
    }
    events
}

/// The one `ReplayDone`, first or right after the gaps; every record after
/// it live or a gap fill. Returns its `last_replayed_seq`.
fn check_silent_switch(events: &[Event]) -> Option<u64> {
    let at = events
        .iter()
        .position(|e| matches!(e, Event::ReplayDone { .. }))
        .expect("a ReplayDone");
    assert!(
        events[..at].iter().all(|e| matches!(e, Event::Gap(_))),
        "only gaps before the switch: {:?}",
        &events[..at]
    );
    for e in &events[at + 1..] {
        assert!(
            matches!(
                e,
                Event::Record {
                    source: Source::Live | Source::GapFill,
                    ..
                }
            ),
            "{e:?} after the switch"
        );
    }
    match events[at] {
        Event::ReplayDone { last_replayed_seq } => last_replayed_seq,
        _ => unreachable!(),
    }
}

#[test]
fn silent_catch_up_delivers_the_switch_then_live_and_l1_holds_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let mut feed = SyntheticFeed::new(4, 3).unwrap();
    let mut p = publisher(dir.path(), "quiet", &bus, 256 << 10);
    publish(&mut p, &mut feed, 3_000);
    p.flush().unwrap();
    let in_wal = p.next_seq() - 1;

    let mut subscriber = Subscriber::new(bus.subscribe(), silent(dir.path(), "quiet", StartFrom::Seq(1))).unwrap();
    // The whole WAL is applied within one call, and nothing is delivered
    // while no live record has come.
    assert_eq!(subscriber.next_event(Duration::ZERO).unwrap(), None);
    let stats = subscriber.stats();
    assert_eq!((stats.replayed, stats.last_seq), (in_wal, Some(in_wal)), "{stats:?}");
    for id in feed.instruments() {
        assert_eq!(subscriber.l1().book(&id), p.book(&id).map(|b| b.to_snapshot()), "{id}");
    }

    publish(&mut p, &mut feed, 200);
    let last = p.next_seq() - 1;
    let events = events_until_record(&mut subscriber, last);
    // The replay goes on through the WAL (which has the new records too)
    // up to the oldest live record it has not applied.
    let replayed_to = check_silent_switch(&events).unwrap();
    assert!(replayed_to >= in_wal, "{replayed_to} < {in_wal}");
    assert_dense(&seqs(&events), replayed_to + 1, last);
    let stats = subscriber.stats();
    assert_eq!(
        (
            stats.replayed,
            stats.live,
            stats.gaps,
            stats.mismatches,
            stats.bad_records
        ),
        (replayed_to, last - replayed_to, 0, 0, 0),
        "{stats:?}"
    );
    // The latest tick of each instrument, from the WAL.
    let mut ticks = HashMap::new();
    for sample in common::wal_records(dir.path(), "quiet") {
        if let Ok(mdbus_types::RecordRef::Tick(t)) = sample.record() {
            ticks.insert(t.instrument, *t);
        }
    }
    assert!(!ticks.is_empty());
    for id in feed.instruments() {
        assert_eq!(subscriber.l1().book(&id), p.book(&id).map(|b| b.to_snapshot()), "{id}");
        assert_eq!(subscriber.l1().tick(&id), ticks.get(&id).copied(), "{id}");
    }
}

#[test]
fn silent_catch_up_joins_a_running_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let publisher_thread = running_publisher(dir.path(), "running", &bus, (8, 17), EVENTS, 20_000);
    let deadline = Instant::now() + WATCHDOG;
    let mut subscriber = Subscriber::new(bus.subscribe(), silent(dir.path(), "running", StartFrom::Seq(1))).unwrap();
    let mut events = Vec::new();
    while !publisher_thread.is_finished() {
        assert!(Instant::now() < deadline, "watchdog: publisher did not finish");
        events.extend(subscriber.next_event(Duration::from_millis(10)).unwrap());
    }
    let (last, books) = publisher_thread.join().unwrap();
    if events.last().and_then(Event::seq) != Some(last) {
        events.extend(events_until_record(&mut subscriber, last));
    }
    let replayed_to = check_silent_switch(&events).expect("something was replayed");
    assert_dense(&seqs(&events), replayed_to + 1, last);
    let stats = subscriber.stats();
    assert_eq!(stats.replayed, replayed_to, "{stats:?}");
    assert_eq!(
        (stats.gaps, stats.mismatches, stats.bad_records),
        (0, 0, 0),
        "{stats:?}"
    );
    for (id, book) in &books {
        assert_eq!(subscriber.l1().book(id).as_ref(), Some(book), "{id}");
    }
    assert_eq!(subscriber.l1().len(), books.len());
}

#[test]
fn silent_catch_up_over_a_retention_hole_delivers_the_gap_first() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let mut feed = SyntheticFeed::new(4, 2).unwrap();
    let mut p = publisher(dir.path(), "holed", &bus, 64 << 10);
    publish(&mut p, &mut feed, 5_000);
    p.flush().unwrap();
    assert!(inspect(dir.path(), "holed").unwrap().len() > 3);
    let report = apply_retention(
        dir.path(),
        "holed",
        &RetentionPolicy {
            max_bytes: Some(1),
            max_age: None,
        },
    )
    .unwrap();
    assert!(!report.deleted.is_empty());
    let oldest = inspect(dir.path(), "holed").unwrap()[0].first_seq;
    let in_wal = p.next_seq() - 1;

    let mut subscriber = Subscriber::new(bus.subscribe(), silent(dir.path(), "holed", StartFrom::Seq(1))).unwrap();
    assert_eq!(
        subscriber.next_event(Duration::ZERO).unwrap(),
        Some(Event::Gap(SeqRange {
            from: 1,
            to: oldest - 1
        }))
    );
    // The record after the gap is applied like the rest, not delivered.
    assert_eq!(subscriber.next_event(Duration::ZERO).unwrap(), None);
    assert_eq!(subscriber.stats().replayed, in_wal - oldest + 1);

    publish(&mut p, &mut feed, 50);
    let last = p.next_seq() - 1;
    let mut events = vec![Event::Gap(SeqRange {
        from: 1,
        to: oldest - 1,
    })];
    events.extend(events_until_record(&mut subscriber, last));
    let replayed_to = check_silent_switch(&events).unwrap();
    assert!(replayed_to >= in_wal, "{replayed_to} < {in_wal}");
    assert_dense(&seqs(&events), replayed_to + 1, last);
    let stats = subscriber.stats();
    assert_eq!(
        (stats.gaps, stats.gap_records, stats.mismatches),
        (1, oldest - 1, 0),
        "{stats:?}"
    );
    // Stale after the gap, repaired by the oldest kept segment's snapshot set.
    for id in feed.instruments() {
        assert!(!subscriber.l1().is_stale(&id), "{id}");
        assert_eq!(subscriber.l1().book(&id), p.book(&id).map(|b| b.to_snapshot()), "{id}");
    }
}
