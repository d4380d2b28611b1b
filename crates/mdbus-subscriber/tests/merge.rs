//! Replay-merge: a late subscriber joining a running publisher, and a
//! publisher that is stopped and started again.

mod common;

use std::time::{Duration, Instant};

use common::{WATCHDOG, assert_dense, events_until, publish, publisher, running_publisher, seqs};
use mdbus_publisher::SyntheticFeed;
use mdbus_subscriber::{Event, Source, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::InProcBus;
use mdbus_types::MdSample;
use mdbus_types::WalLocation;

const EVENTS: usize = if cfg!(miri) { 500 } else { 60_000 };

/// Counts the switch markers and checks the sources are in order: Replay
/// (or gap fills) before the one ReplayDone, Live or GapFill after it.
fn check_switch(events: &[Event]) -> Option<u64> {
    let done: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::ReplayDone { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(done.len(), 1, "one ReplayDone marker");
    let at = done[0];
    for e in &events[..at] {
        assert!(
            matches!(
                e,
                Event::Record {
                    source: Source::Replay,
                    ..
                }
            ),
            "{e:?} before the switch"
        );
    }
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
    let Event::ReplayDone { last_replayed_seq } = events[at] else {
        unreachable!()
    };
    assert_eq!(last_replayed_seq, events[..at].last().and_then(Event::seq));
    last_replayed_seq
}

#[test]
fn late_subscriber_joins_a_running_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    // Join once the publisher is well under way (several segments).
    let publisher_thread = running_publisher(dir.path(), "late", &bus, (8, 11), EVENTS, 40_000);
    let deadline = Instant::now() + WATCHDOG;
    let receiver = bus.subscribe();
    let mut subscriber = Subscriber::new(
        receiver,
        SubscriberConfig::default().wal(WalLocation::try_new(dir.path(), "late").unwrap()),
    )
    .unwrap();
    // Merge while the publisher runs at full rate.
    let mut events = Vec::new();
    while !publisher_thread.is_finished() {
        assert!(Instant::now() < deadline, "watchdog: publisher did not finish");
        events.extend(subscriber.next_event(Duration::from_millis(10)).unwrap());
    }
    let (last, books) = publisher_thread.join().unwrap();
    events.extend(events_until(&mut subscriber, last, |_| {}));
    let seqs = seqs(&events);
    let first = seqs[0];
    assert!(first > 1, "recovery point, not the whole WAL");
    assert_dense(&seqs, first, last);
    let replayed_to = check_switch(&events).expect("something was replayed");
    assert!(replayed_to > first);
    let stats = subscriber.stats();
    assert_eq!(
        (stats.gaps, stats.mismatches, stats.bad_records),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(stats.live > 0 && stats.replayed > 0, "{stats:?}");
    // L1 equals the publisher's books.
    for (id, book) in &books {
        assert_eq!(subscriber.l1().book(id).as_ref(), Some(book), "{id}");
    }
    assert_eq!(subscriber.l1().len(), books.len());
}

#[test]
fn publisher_stopped_then_started_switches_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let mut feed = SyntheticFeed::new(4, 5).unwrap();
    {
        let mut p = publisher(dir.path(), "restart", &bus, 256 << 10);
        publish(&mut p, &mut feed, 3_000);
        p.flush().unwrap();
    } // Publisher stopped: the bus has no sender.
    let receiver = bus.subscribe();
    let mut subscriber = Subscriber::new(
        receiver,
        SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), "restart").unwrap())
            .start(StartFrom::Seq(1)),
    )
    .unwrap();
    // Replay everything there is, then wait: nothing live.
    let on_disk = common::wal_records(dir.path(), "restart").len() as u64;
    let mut events = events_until(&mut subscriber, on_disk, |_| {});
    // Every replayed record is the WAL's, byte for byte (the zero tail of
    // a short record after a long one included).
    let replayed: Vec<MdSample> = events
        .iter()
        .filter_map(|e| match e {
            Event::Record { sample, .. } => Some(*sample),
            _ => None,
        })
        .collect();
    assert!(replayed == common::wal_records(dir.path(), "restart"));
    assert_eq!(subscriber.next_event(Duration::from_millis(30)).unwrap(), None);
    assert!(!subscriber.is_live());

    // Started again: it continues seq from the WAL; the subscriber reads the
    // WAL's tail up to the first live seq and switches.
    let mut p = publisher(dir.path(), "restart", &bus, 256 << 10);
    publish(&mut p, &mut feed, 3_000);
    p.flush().unwrap();
    let last = p.next_seq() - 1;
    events.extend(events_until(&mut subscriber, last, |_| {}));
    assert_dense(&seqs(&events), 1, last);
    check_switch(&events);
    let stats = subscriber.stats();
    assert_eq!((stats.gaps, stats.mismatches), (0, 0), "{stats:?}");
    for id in feed.instruments() {
        assert_eq!(subscriber.l1().book(&id), p.book(&id).map(|b| b.to_snapshot()), "{id}");
    }
}

#[test]
fn live_only_without_wal_starts_at_the_first_live_record() {
    let bus = InProcBus::new(1 << 12);
    let receiver = bus.subscribe();
    let mut p = mdbus_publisher::FeedPublisher::open(mdbus_publisher::FeedConfig::new("nowal"), bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(2, 1).unwrap();
    publish(&mut p, &mut feed, 200);
    let mut subscriber = Subscriber::new(receiver, SubscriberConfig::default().start(StartFrom::LiveOnly)).unwrap();
    let last = p.next_seq() - 1;
    let events = events_until(&mut subscriber, last, |_| {});
    assert_eq!(
        events[0],
        Event::ReplayDone {
            last_replayed_seq: None
        }
    );
    assert_dense(&seqs(&events), 1, last);
    // Without a WAL, history outside L2 is an error, not a wrong answer.
    let id = feed.instruments().next().unwrap();
    assert!(subscriber.ticks(&id, 0, i64::MAX).is_err());
}
