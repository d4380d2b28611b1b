//! Gap fill: a slow subscriber whose queue overflows gets every seq once,
//! the holes read from the WAL; what retention deleted is an explicit Gap.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use common::{WATCHDOG, assert_dense, events_until, publish, publisher, seqs};
use mdbus_publisher::SyntheticFeed;
use mdbus_subscriber::{CatchUp, Event, Source, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::{InProcBus, MdReceiver, MdSender};
use mdbus_types::WalLocation;
use mdbus_types::{Kind, MdSample, SeqRange};
use mdbus_wal::{ReadOptions, RetentionPolicy, WalReader, apply_retention, inspect};

#[test]
fn slow_subscriber_with_overflow_gets_every_seq_once() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(16);
    let receiver = bus.subscribe();
    let publisher_thread = {
        let (dir, bus) = (dir.path().to_path_buf(), bus.clone());
        std::thread::spawn(move || {
            let mut p = publisher(&dir, "slow", &bus, 256 << 10);
            let mut feed = SyntheticFeed::new(6, 9).unwrap();
            publish(&mut p, &mut feed, 20_000);
            p.flush().unwrap();
            let books: Vec<_> = feed
                .instruments()
                .map(|id| (id, p.book(&id).unwrap().to_snapshot()))
                .collect();
            (p.next_seq() - 1, books)
        })
    };
    let mut subscriber = Subscriber::new(
        receiver,
        SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), "slow").unwrap())
            .start(StartFrom::LiveOnly)
            .live_buffer(8),
    )
    .unwrap();
    let deadline = Instant::now() + WATCHDOG;
    let mut events = Vec::new();
    while !publisher_thread.is_finished() {
        assert!(Instant::now() < deadline, "watchdog");
        if let Some(event) = subscriber.next_event(Duration::from_millis(10)).unwrap() {
            events.push(event);
        }
        if events.len().is_multiple_of(50) {
            std::thread::sleep(Duration::from_millis(1)); // slow reader
        }
    }
    let (last, books) = publisher_thread.join().unwrap();
    events.extend(events_until(&mut subscriber, last, |_| {}));
    let seqs = seqs(&events);
    assert_dense(&seqs, seqs[0], last);
    let stats = subscriber.stats();
    assert!(subscriber.receiver().dropped() > 0, "the queue overflowed");
    assert!(stats.gap_fills > 0 && stats.gap_filled > 0, "{stats:?}");
    assert_eq!((stats.gaps, stats.mismatches), (0, 0), "{stats:?}");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Record {
            source: Source::GapFill,
            ..
        }
    )));
    for (id, book) in books {
        assert_eq!(subscriber.l1().book(&id), Some(book), "{id}");
    }
}

#[test]
fn retention_removed_the_needed_segment_gives_an_explicit_gap() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(16);
    let mut feed = SyntheticFeed::new(4, 2).unwrap();
    let mut p = publisher(dir.path(), "ret", &bus, 64 << 10);
    publish(&mut p, &mut feed, 50);

    // A live subscriber takes the first records...
    let receiver = bus.subscribe();
    let mut live = Subscriber::new(
        receiver,
        SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), "ret").unwrap())
            .start(StartFrom::LiveOnly),
    )
    .unwrap();
    publish(&mut p, &mut feed, 5);
    let first_live = p.next_seq() - 1;
    let mut events = events_until(&mut live, first_live, |_| {});
    let resume = live.next_seq().unwrap();
    // ...then falls far behind (its queue keeps the newest 16), and
    // retention deletes the segments it needs.
    publish(&mut p, &mut feed, 5_000);
    p.flush().unwrap();
    assert!(inspect(dir.path(), "ret").unwrap().len() > 3);
    let report = apply_retention(
        dir.path(),
        "ret",
        &RetentionPolicy {
            max_bytes: Some(1),
            max_age: None,
        },
    )
    .unwrap();
    assert!(!report.deleted.is_empty());
    let oldest = inspect(dir.path(), "ret").unwrap()[0].first_seq;
    assert!(oldest > resume);
    let last = p.next_seq() - 1;
    events.extend(events_until(&mut live, last, |_| {}));
    let gaps: Vec<_> = events.iter().filter(|e| matches!(e, Event::Gap(_))).collect();
    assert_eq!(
        gaps,
        [&Event::Gap(SeqRange {
            from: resume,
            to: oldest - 1
        })]
    );
    let after: Vec<u64> = events
        .iter()
        .skip_while(|e| !matches!(e, Event::Gap(_)))
        .filter_map(Event::seq)
        .collect();
    assert_dense(&after, oldest, last);
    let stats = live.stats();
    assert_eq!((stats.gaps, stats.gap_records), (1, oldest - resume), "{stats:?}");
    // Books were stale after the gap and repaired by the snapshot set of
    // the oldest kept segment; not counted as mismatches.
    assert_eq!(stats.mismatches, 0);
    for id in feed.instruments() {
        assert!(!live.l1().is_stale(&id), "{id}");
        assert_eq!(live.l1().book(&id), p.book(&id).map(|b| b.to_snapshot()), "{id}");
    }

    // A replay from seq 1 starts with the same kind of explicit gap.
    let mut replay = Subscriber::new(
        bus.subscribe(),
        SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), "ret").unwrap())
            .start(StartFrom::Seq(1)),
    )
    .unwrap();
    let first = replay.next_event(Duration::from_secs(5)).unwrap();
    assert_eq!(
        first,
        Some(Event::Gap(SeqRange {
            from: 1,
            to: oldest - 1
        }))
    );
    let next = replay.next_event(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(next.seq(), Some(oldest));
}

#[test]
fn without_a_wal_a_hole_is_a_gap_and_the_book_waits_for_a_snapshot() {
    let bus = InProcBus::new(4);
    let receiver = bus.subscribe();
    let mut p = mdbus_publisher::FeedPublisher::open(mdbus_publisher::FeedConfig::new("nowal"), bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(1, 4).unwrap();
    let mut subscriber = Subscriber::new(receiver, SubscriberConfig::default().start(StartFrom::LiveOnly)).unwrap();
    publish(&mut p, &mut feed, 3);
    let seen = p.next_seq() - 1;
    events_until(&mut subscriber, seen, |_| {});
    publish(&mut p, &mut feed, 100); // overflows the 4-slot queue
    let id = feed.instruments().next().unwrap();
    let event = subscriber.next_event(Duration::from_secs(5)).unwrap().unwrap();
    assert!(matches!(event, Event::Gap(lost) if lost.from == seen + 1), "{event:?}");
    assert!(subscriber.l1().is_stale(&id));
    // Drain, then a snapshot repairs the book without counting a mismatch.
    while subscriber.next_event(Duration::from_millis(20)).unwrap().is_some() {}
    p.publish_snapshot_set().unwrap();
    let last = p.next_seq() - 1;
    events_until(&mut subscriber, last, |_| {});
    assert!(!subscriber.l1().is_stale(&id));
    assert_eq!(subscriber.stats().mismatches, 0);
    assert_eq!(subscriber.l1().book(&id), p.book(&id).map(|b| b.to_snapshot()));
}

/// A replay from seq 1 up to the live stream, which carries
/// `FIRST_LIVE..=last_live` and `last_live + 11..=last_live + 20`, with the
/// length field of the WAL frame of one seq rewritten to another record
/// size: the events up to the last, the last seq, and the corrupt one
/// (`corrupt(last_live)` picks it). The replay drains the whole live queue
/// into its buffer at its 64th record, so the hole `last_live + 1..` is
/// filled by reading the WAL forward from where the replay ended, past the
/// records delivered from the buffer.
fn a_hole_after_a_bad_length(corrupt: impl Fn(u64) -> u64) -> (Vec<Event>, u64, u64) {
    const FIRST_LIVE: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let wal_bus = InProcBus::new(1 << 16);
    {
        let mut p = publisher(dir.path(), "badlen", &wal_bus, 1 << 20);
        let mut feed = SyntheticFeed::new(4, 3).unwrap();
        publish(&mut p, &mut feed, 400);
        p.flush().unwrap();
    }
    // Every record with its frame's file and offset.
    let mut reader = WalReader::open(dir.path(), "badlen", ReadOptions::default()).unwrap();
    let mut frames = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        frames.push((record.record.to_sample(), record.path.to_path_buf(), record.offset));
    }
    drop(reader);
    // The first record from seq 140 on that is smaller than a snapshot: its
    // length can become a snapshot's, which would still pass a look at
    // the length alone.
    let snapshot_len = Kind::BookSnapshot.record_size();
    let smaller = |s: &MdSample| s.record().unwrap().as_bytes().len() < snapshot_len;
    let last_live = frames
        .iter()
        .map(|(s, _, _)| s)
        .find(|s| s.header().seq >= FIRST_LIVE + 40 && smaller(s))
        .unwrap()
        .header()
        .seq;
    let last = last_live + 20;
    assert!(frames.len() as u64 > last, "{} records", frames.len());
    let bad = corrupt(last_live);
    let (sample, path, offset) = &frames[bad as usize - 1];
    assert_eq!(sample.header().seq, bad);
    assert!(smaller(sample), "seq {bad} is a snapshot");
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(*offset)).unwrap();
    file.write_all(&(snapshot_len as u32).to_le_bytes()).unwrap();
    drop(file);

    let live = InProcBus::new(1 << 16);
    let receiver = live.subscribe();
    let mut sender = live.sender();
    for (sample, _, _) in &frames {
        let seq = sample.header().seq;
        if (FIRST_LIVE..=last_live).contains(&seq) || (last_live + 11..=last).contains(&seq) {
            sender.send(sample).unwrap();
        }
    }
    let mut subscriber = Subscriber::new(
        receiver,
        SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), "badlen").unwrap())
            .start(StartFrom::Seq(1)),
    )
    .unwrap();
    let events = events_until(&mut subscriber, last, |_| {});
    let live_from_buffer = events
        .iter()
        .filter(|e| matches!(e, Event::Record { source: Source::Live, sample } if sample.header().seq <= last_live))
        .count() as u64;
    assert!(
        live_from_buffer >= last_live - FIRST_LIVE,
        "the records before the hole came live: {live_from_buffer}; {:?}",
        subscriber.stats()
    );
    (events, last, bad)
}

/// A gap fill steps over the WAL frames the subscriber had live already
/// without every check, but a frame whose length changed does not take it
/// past the records it needs: they are filled, with no gap.
#[test]
fn a_bad_length_in_a_frame_a_gap_fill_steps_over_loses_nothing() {
    let (events, last, bad) = a_hole_after_a_bad_length(|last_live| last_live);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Gap(_))),
        "seq {bad} corrupt: {events:?}"
    );
    assert_dense(&seqs(&events), 1, last);
}

/// The same frame inside the hole the fill needs: that one record is an
/// explicit gap, every other is filled.
#[test]
fn a_bad_length_in_a_frame_a_gap_fill_needs_is_a_gap_of_that_record() {
    let (events, last, bad) = a_hole_after_a_bad_length(|last_live| last_live + 1);
    let gaps: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Gap(range) => Some(*range),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, vec![SeqRange { from: bad, to: bad }], "{events:?}");
    let seqs = seqs(&events);
    let expected: Vec<u64> = (1..=last).filter(|&s| s != bad).collect();
    assert_eq!(seqs, expected);
}

/// A subscriber that took its first records live, then fell far behind:
/// 300 more events were published into its 16-record queue, which keeps
/// `caught_up - 15..=caught_up`.
struct FallenBehind {
    dir: tempfile::TempDir,
    feed: SyntheticFeed,
    p: common::Pub,
    subscriber: Subscriber<mdbus_transport::InProcReceiver>,
    /// The events delivered before it fell behind.
    events: Vec<Event>,
    /// The last seq delivered before it fell behind.
    first: u64,
    /// The last seq published.
    caught_up: u64,
}

fn fall_behind(feed_name: &str) -> FallenBehind {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(16);
    let receiver = bus.subscribe();
    let mut feed = SyntheticFeed::new(4, 5).unwrap();
    let mut p = publisher(dir.path(), feed_name, &bus, 1 << 20);
    let mut subscriber = Subscriber::new(
        receiver,
        SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), feed_name).unwrap())
            .start(StartFrom::LiveOnly),
    )
    .unwrap();
    publish(&mut p, &mut feed, 5);
    let first = p.next_seq() - 1;
    let events = events_until(&mut subscriber, first, |_| {});
    publish(&mut p, &mut feed, 300);
    let caught_up = p.next_seq() - 1;
    FallenBehind {
        dir,
        feed,
        p,
        subscriber,
        events,
        first,
        caught_up,
    }
}

/// A subscriber whose receiver fell behind ([`fall_behind`]) catches up
/// from the WAL, past the hole, to the WAL's end, instead of through the
/// receiver; then drops the receiver's copies of what it delivered and is
/// live again.
/// Returns the events, the seqs delivered live first and caught up to
/// (the last before the 5 events published after the catch-up), and the
/// duplicates dropped.
fn behind_then_live(feed_name: &str, damage: impl FnOnce(&std::path::Path, u64)) -> (Vec<Event>, (u64, u64), u64) {
    let FallenBehind {
        dir,
        mut feed,
        mut p,
        mut subscriber,
        mut events,
        first,
        caught_up,
    } = fall_behind(feed_name);
    damage(dir.path(), caught_up);
    events.extend(events_until(&mut subscriber, caught_up, |_| {}));
    // Nothing more was published: past the WAL's end, the receiver's
    // copies are dropped, and the wait finds nothing.
    assert_eq!(subscriber.next_event(Duration::from_millis(50)).unwrap(), None);
    // Fewer records than the queue holds.
    publish(&mut p, &mut feed, 5);
    let last = p.next_seq() - 1;
    events.extend(events_until(&mut subscriber, last, |_| {}));
    assert_dense(&seqs(&events), 1, last);
    let stats = subscriber.stats();
    assert_eq!(
        (stats.gaps, stats.mismatches, stats.bad_records),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(subscriber.receiver().dropped(), caught_up - first - 16, "{stats:?}");
    for id in feed.instruments() {
        assert_eq!(subscriber.l1().book(&id), p.book(&id).map(|b| b.to_snapshot()), "{id}");
    }
    (events, (first, caught_up), stats.duplicates)
}

/// The source of each record event, by seq.
fn sources(events: &[Event]) -> std::collections::BTreeMap<u64, Source> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Record { sample, source } => Some((sample.header().seq, *source)),
            _ => None,
        })
        .collect()
}

#[test]
fn behind_the_subscriber_reads_the_wal_to_its_end_then_goes_live_again() {
    let (events, (first, caught_up), duplicates) = behind_then_live("behind", |_, _| {});
    let sources = sources(&events);
    // The hole up to the queue's oldest record, that record (it showed the
    // hole), then the WAL, not the queue, up to the WAL's end.
    let oldest_queued = caught_up - 15;
    for (&seq, &source) in &sources {
        let expected = match seq {
            s if s <= first => Source::Live,
            s if s < oldest_queued => Source::GapFill,
            s if s == oldest_queued => Source::Live,
            s if s <= caught_up => Source::GapFill,
            _ => Source::Live,
        };
        assert_eq!(source, expected, "seq {seq}");
    }
    // The queue's other 15 records came again, and were dropped.
    assert_eq!(duplicates, 15);
}

/// Behind, the WAL lost a record the receiver's queue still holds (its
/// frame's checksum fails): the catch-up stops there and the queue
/// supplies it, with no gap.
#[test]
fn behind_a_record_the_wal_lost_comes_from_the_receivers_queue() {
    let bad = std::cell::Cell::new(0);
    let (events, (_, caught_up), duplicates) = behind_then_live("behindbad", |dir, caught_up| {
        flip_a_payload_bit(dir, "behindbad", caught_up - 5);
        bad.set(caught_up - 5);
    });
    let bad = bad.get();
    let sources = sources(&events);
    assert_eq!(sources[&bad], Source::Live, "seq {bad}");
    assert_eq!(sources[&(bad - 1)], Source::GapFill, "seq {}", bad - 1);
    assert!((bad..=caught_up).all(|s| sources[&s] == Source::Live));
    // The queue's records before it came again, and were dropped.
    assert_eq!(duplicates, bad - (caught_up - 15) - 1);
}

/// Flips a bit of the payload of the WAL frame of `seq` (past the frame
/// header and the record header's seq): its checksum fails.
fn flip_a_payload_bit(dir: &std::path::Path, feed: &str, seq: u64) {
    let mut reader = WalReader::open(dir, feed, ReadOptions::default()).unwrap();
    let (path, offset) = loop {
        let record = reader.next_record().unwrap().expect("the seq is in the WAL");
        if record.record.header().seq == seq {
            break (record.path.to_path_buf(), record.offset);
        }
    };
    drop(reader);
    let at = offset + 8 + 24;
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut file, &mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0x10]).unwrap();
}

/// A replay that delivers every record (`Full`, `StateOnly`) over corrupt
/// frames, one inside a segment and one that opens a segment: each is a
/// gap of that record alone, every other record comes from the replay,
/// byte for byte as the WAL holds it, and both modes end with the same L1.
/// (The dense records are read as runs of one; a bad frame ends such a
/// read and goes the long way.)
#[test]
fn a_delivering_replay_over_corrupt_frames_loses_only_those_records() {
    let dir = tempfile::tempdir().unwrap();
    let feed_name = "replay-over-corrupt";
    let bus = InProcBus::new(1 << 16);
    let mut feed = SyntheticFeed::new(4, 7).unwrap();
    let mut publisher = publisher(dir.path(), feed_name, &bus, 64 << 10);
    publish(&mut publisher, &mut feed, 3000);
    publisher.flush().unwrap();
    let last = publisher.next_seq() - 1;
    let records = common::wal_records(dir.path(), feed_name);
    let segments = inspect(dir.path(), feed_name).unwrap();
    assert!(segments.len() > 3, "{} segments", segments.len());
    let (inside, opening) = (500, segments[2].first_seq);
    assert!(
        inside < segments[1].first_seq,
        "seq {inside} is not inside the first segment"
    );
    // The later one first: the finder reads from the start, and stops at
    // a corrupt frame.
    flip_a_payload_bit(dir.path(), feed_name, opening);
    flip_a_payload_bit(dir.path(), feed_name, inside);
    let mut books = Vec::new();
    for catch_up in [CatchUp::Full, CatchUp::StateOnly] {
        let config = SubscriberConfig::default()
            .wal(WalLocation::try_new(dir.path(), feed_name).unwrap())
            .start(StartFrom::Seq(1))
            .catch_up(catch_up);
        let mut subscriber = Subscriber::new(bus.subscribe(), config).unwrap();
        let events = events_until(&mut subscriber, last, |_| {});
        let (mut gaps, mut delivered) = (Vec::new(), Vec::new());
        for event in &events {
            match event {
                Event::Record { sample, source } => {
                    let seq = sample.header().seq;
                    assert_eq!(*source, Source::Replay, "{catch_up:?}: seq {seq}");
                    assert_eq!(*sample, records[seq as usize - 1], "{catch_up:?}: seq {seq}");
                    delivered.push(seq);
                }
                Event::Gap(lost) => gaps.push(*lost),
                other => panic!("{catch_up:?}: {other:?}"),
            }
        }
        let one = |seq| SeqRange { from: seq, to: seq };
        assert_eq!(gaps, [one(inside), one(opening)], "{catch_up:?}");
        let expected: Vec<u64> = (1..=last).filter(|&seq| seq != inside && seq != opening).collect();
        assert_eq!(delivered, expected, "{catch_up:?}");
        let stats = subscriber.stats();
        assert_eq!(
            (stats.replayed, stats.gaps, stats.gap_records, stats.bad_records),
            (last - 2, 2, 2, 0),
            "{catch_up:?}: {stats:?}"
        );
        books.push(subscriber.l1().dump());
    }
    assert_eq!(books[0], books[1], "Full and StateOnly end with the same L1");
}

/// A caller that polls with a zero timeout until `None` (a burst drain)
/// gets everything: when the catch-up stops at a record the WAL lost, the
/// receiver's queue, which holds it and the rest, is looked at before the
/// call gives up (found in review: it returned `None` there).
#[test]
fn behind_a_zero_timeout_poll_gets_what_the_queue_holds() {
    let FallenBehind {
        dir,
        mut subscriber,
        mut events,
        caught_up: last,
        ..
    } = fall_behind("behindpoll");
    flip_a_payload_bit(dir.path(), "behindpoll", last - 5);
    // Everything is published and in the queue or the WAL: a poll that
    // finds nothing before `last` is a failure, not a wait.
    let deadline = Instant::now() + WATCHDOG;
    while let Some(event) = subscriber.next_event(Duration::ZERO).unwrap() {
        assert!(Instant::now() < deadline, "watchdog");
        events.push(event);
    }
    assert_eq!(subscriber.stats().last_seq, Some(last), "{:?}", subscriber.stats());
    assert_dense(&seqs(&events), 1, last);
    assert_eq!(subscriber.stats().gaps, 0);
}
