//! The publish path end to end in one process: WAL + in-process bus +
//! snapshot board, segment rolls with snapshot sets, restart, bad input.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mdbus_board::BoardReader;
use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_transport::{InProcBus, InProcReceiver, MdReceiver};
use mdbus_types::{
    Book, BookDelta, FLAG_END_OF_BATCH, FLAG_RECOVERY_SNAPSHOT, InstrumentId, Kind, MdSample, Price, RecordRef, Side,
};
use mdbus_wal::{ReadFrom, ReadOptions, WalOptions, WalReader, inspect};

fn config(dir: &std::path::Path, feed: &str) -> FeedConfig {
    let mut config = FeedConfig::new(feed);
    config.wal_root = Some(dir.join("wal"));
    config.wal = WalOptions::default().segment_bytes(64 * 1024);
    config.board_dir = Some(dir.to_path_buf());
    config.board_capacity = 64;
    config
}

fn drain(rx: &mut InProcReceiver) -> Vec<MdSample> {
    std::iter::from_fn(|| rx.try_recv().unwrap()).collect()
}

fn publish_events(publisher: &mut FeedPublisher<mdbus_transport::InProcSender>, feed: &mut SyntheticFeed, n: usize) {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.clear();
        feed.next_event(1_764_000_000_000_000_000 + i as i64, &mut batch);
        publisher.publish_batch(&mut batch).unwrap();
    }
}

/// A publisher of `feed` that publishes 3 000 events and stops: the seq it
/// would take next and every instrument's book then.
fn publish_then_stop(dir: &std::path::Path, name: &str, bus: &InProcBus, feed: &mut SyntheticFeed) -> (u64, Vec<Book>) {
    let mut publisher = FeedPublisher::open(config(dir, name), bus.sender()).unwrap();
    publish_events(&mut publisher, feed, 3_000);
    let books = feed
        .instruments()
        .map(|id| publisher.book(&id).unwrap().clone())
        .collect();
    (publisher.next_seq(), books)
}

/// A subscriber's L1 view built from a stream.
fn l1(records: &[MdSample]) -> HashMap<InstrumentId, Book> {
    let mut books: HashMap<InstrumentId, Book> = HashMap::new();
    for sample in records {
        match sample.record().unwrap() {
            RecordRef::BookSnapshot(s) => {
                books
                    .entry(s.instrument)
                    .or_insert_with(|| Book::new(s.instrument))
                    .apply_snapshot(s)
                    .unwrap();
            }
            RecordRef::BookDelta(d) => {
                books.get_mut(&d.instrument).unwrap().apply_delta(d).unwrap();
            }
            _ => {}
        }
    }
    books
}

#[test]
fn wal_bus_and_board_carry_the_same_dense_stream() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 20);
    let mut rx = bus.subscribe();
    let mut publisher = FeedPublisher::open(config(dir.path(), "same"), bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(6, 3).unwrap();
    publish_events(&mut publisher, &mut feed, 5_000);
    publisher.flush().unwrap();
    let sent = drain(&mut rx);
    assert_eq!(sent.len() as u64, publisher.stats().records);
    for (i, s) in sent.iter().enumerate() {
        assert_eq!(s.header().seq, i as u64 + 1, "dense seq from 1");
    }
    assert!(sent.iter().any(|s| s.header().flags & FLAG_END_OF_BATCH != 0));
    // The WAL holds byte-identical records.
    let mut reader = WalReader::open(dir.path().join("wal"), "same", ReadOptions::default()).unwrap();
    let mut logged = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        logged.push(r.record.to_sample());
    }
    assert_eq!(logged, sent);
    // Several segments, each starting with a full snapshot set.
    let segments = inspect(dir.path().join("wal"), "same").unwrap();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    assert!(publisher.stats().snapshot_sets as usize >= segments.len());
    for seg in &segments {
        let first = seg.first_seq;
        let first_record = sent[first as usize - 1];
        assert_ne!(
            first_record.header().flags & FLAG_RECOVERY_SNAPSHOT,
            0,
            "segment at seq {first}"
        );
    }
    // Every segment after the first has a snapshot of all 6 instruments.
    let last = segments.last().unwrap().first_seq as usize;
    let set: Vec<_> = sent[last - 1..]
        .iter()
        .take_while(|s| s.header().flags & FLAG_RECOVERY_SNAPSHOT != 0)
        .collect();
    assert_eq!(
        set.iter()
            .filter(|s| s.header().kind == Kind::BookSnapshot as u16)
            .count(),
        6
    );
    assert_eq!(set.last().unwrap().header().kind, Kind::Heartbeat as u16);
    // The board's books equal a subscriber's L1 books.
    let board = BoardReader::open(dir.path(), "same").unwrap();
    assert_eq!(board.status().last_seq, publisher.next_seq() - 1);
    let books = l1(&sent);
    assert_eq!(books.len(), 6);
    for (id, book) in &books {
        assert_eq!(board.book(id).unwrap(), book.to_snapshot(), "{id}");
        assert_eq!(publisher.book(id).unwrap(), book);
    }
    // And its ticks are the last tick sent of each instrument (the board
    // writes a tick only when it changed, a book only when it changed).
    let mut ticks = 0;
    for id in books.keys() {
        let last = sent.iter().rev().find_map(|s| match s.record().unwrap() {
            RecordRef::Tick(t) if t.instrument == *id => Some(*t),
            _ => None,
        });
        assert_eq!(board.tick(id), last, "{id}");
        ticks += usize::from(last.is_some());
    }
    assert!(ticks > 0, "the synthetic feed traded");
    assert!(publisher.stats().policy_snapshots > 0);
}

#[test]
fn restart_continues_seq_and_recovers_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 20);
    let mut rx = bus.subscribe();
    let mut feed = SyntheticFeed::new(4, 9).unwrap();
    let (next, books) = publish_then_stop(dir.path(), "restart", &bus, &mut feed);
    let mut publisher = FeedPublisher::open(config(dir.path(), "restart"), bus.sender()).unwrap();
    assert_eq!(publisher.next_seq(), next);
    assert!(publisher.stats().recovered_records > 0);
    for (id, book) in feed.instruments().zip(&books) {
        assert_eq!(publisher.book(&id).unwrap(), book, "{id}");
    }
    publish_events(&mut publisher, &mut feed, 500);
    let sent = drain(&mut rx);
    for (i, s) in sent.iter().enumerate() {
        assert_eq!(s.header().seq, i as u64 + 1);
    }
    let books = l1(&sent);
    for (id, book) in &books {
        assert_eq!(publisher.book(id).unwrap(), book, "{id}");
    }
}

/// A flipped byte in the newest segment's header does not keep the
/// publisher from starting (issue 16): it continues the seq after that
/// segment's frames and its books are the ones before the restart.
#[test]
fn restart_after_a_damaged_newest_segment_header_keeps_seq_and_books() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 20);
    let mut feed = SyntheticFeed::new(4, 9).unwrap();
    let (next, books) = publish_then_stop(dir.path(), "damaged", &bus, &mut feed);
    let feed_dir = dir.path().join("wal/damaged");
    let mut segments: Vec<_> = std::fs::read_dir(&feed_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    assert!(segments.len() > 1, "{segments:?}");
    let newest = segments.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[20] ^= 0x01;
    std::fs::write(newest, &bytes).unwrap();

    let publisher = FeedPublisher::open(config(dir.path(), "damaged"), bus.sender()).unwrap();
    let report = publisher.recovery_report().expect("a WAL").to_string();
    assert!(report.contains("first_seq"), "{report}");
    for (id, book) in feed.instruments().zip(&books) {
        // The levels (the new segment's snapshot set changed `last`).
        let now = publisher.book(&id).unwrap();
        assert_eq!((now.bids(), now.asks()), (book.bids(), book.asks()), "{id}");
    }
    // The new segment starts after the damaged one's frames, with the
    // snapshot set every segment starts with; the WAL stays dense.
    let options = ReadOptions {
        from: ReadFrom::Start,
        skip_corrupt: true,
    };
    let mut reader = WalReader::open(dir.path().join("wal"), "damaged", options).unwrap();
    let mut seqs = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        if let mdbus_wal::ReadEvent::Record(r) = event {
            if r.seq() >= next {
                assert_ne!(r.header().flags & FLAG_RECOVERY_SNAPSHOT, 0, "seq {}", r.seq());
            }
            seqs.push(r.seq());
        }
    }
    assert_eq!(seqs, (1..publisher.next_seq()).collect::<Vec<_>>());
    assert!(publisher.next_seq() > next);
}

/// Without a WAL or a board (the demo's setup): seq is dense from 1, each
/// batch's last record alone carries `END_OF_BATCH`, and the stats count
/// what was sent.
#[test]
fn without_a_wal_seq_is_dense_from_one_and_each_batch_is_flagged_once() {
    let bus = InProcBus::new(1 << 16);
    let mut rx = bus.subscribe();
    let mut publisher = FeedPublisher::open(FeedConfig::new("nowal"), bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(3, 1).unwrap();
    let mut batch = Vec::new();
    let mut batches = 0;
    for round in 0..100 {
        batch.clear();
        for _ in 0..(round % 7 + 1) {
            feed.next_event(round, &mut batch);
        }
        let n = batch.len() as u64;
        let seqs = publisher.publish_batch(&mut batch).unwrap();
        assert_eq!(seqs.end() - seqs.start() + 1, n);
        batches += 1;
    }
    let sent = drain(&mut rx);
    for (i, sample) in sent.iter().enumerate() {
        assert_eq!(sample.header().seq, i as u64 + 1);
        assert!(sample.header().ts_publish > 0);
    }
    let ends = sent
        .iter()
        .filter(|s| s.header().flags & FLAG_END_OF_BATCH != 0)
        .count();
    let stats = publisher.stats();
    assert_eq!(sent.len() as u64, stats.records);
    assert_eq!(publisher.next_seq(), stats.records + 1);
    // Policy snapshots (if any) go out in batches of their own.
    assert_eq!(ends as u64, stats.batches);
    assert!(stats.batches >= batches);
}

#[test]
fn bad_records_are_refused_before_taking_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1024);
    let mut publisher = FeedPublisher::open(config(dir.path(), "bad"), bus.sender()).unwrap();
    let start = publisher.next_seq();
    let id = InstrumentId::new("IF2501").unwrap();
    let delta = BookDelta::new(id, Side::Bid, Price(1), 1, 0);
    let err = publisher.publish_batch(&mut [delta.into()]).unwrap_err().to_string();
    assert!(err.contains("IF2501") && err.contains("snapshot"), "{err}");
    let mut bad_kind = MdSample::default();
    bad_kind.header_mut().kind = 42;
    assert!(
        publisher
            .publish_batch(&mut [bad_kind])
            .unwrap_err()
            .to_string()
            .contains("42")
    );
    let mut feed = SyntheticFeed::new(1, 1).unwrap();
    let mut batch = Vec::new();
    feed.next_event(0, &mut batch); // the snapshot of IF2501
    let mut negative = BookDelta::new(id, Side::Ask, Price(5), -3, 0);
    negative.header.ts_event = 1;
    batch.push(negative.into());
    let err = publisher.publish_batch(&mut batch).unwrap_err().to_string();
    assert!(err.contains("negative qty"), "{err}");
    assert_eq!(publisher.next_seq(), start, "nothing of a bad batch is published");
}

#[test]
fn quiet_feed_gets_heartbeats_and_interval_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let mut rx = bus.subscribe();
    let mut cfg = config(dir.path(), "quiet");
    cfg.heartbeat_interval = Duration::from_millis(5);
    cfg.snapshot_interval = Duration::from_millis(5);
    let mut publisher = FeedPublisher::open(cfg, bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(3, 5).unwrap();
    publish_events(&mut publisher, &mut feed, 3);
    drain(&mut rx);
    let heartbeats = publisher.stats().heartbeats;
    // 20 ms later by the publisher's clock (no sleep: the clock is given).
    publisher.poll_at(Instant::now() + Duration::from_millis(20)).unwrap();
    let got = drain(&mut rx);
    let kinds: Vec<u16> = got.iter().map(|s| s.header().kind).collect();
    assert!(kinds.contains(&(Kind::Heartbeat as u16)), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|&&k| k == Kind::BookSnapshot as u16).count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(publisher.stats().heartbeats, heartbeats + 1);
}

#[test]
fn replay_from_the_recovery_point_rebuilds_the_final_books() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 20);
    let mut rx = bus.subscribe();
    let mut publisher = FeedPublisher::open(config(dir.path(), "recpt"), bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(5, 11).unwrap();
    publish_events(&mut publisher, &mut feed, 4_000);
    let sent = drain(&mut rx);
    let options = ReadOptions {
        from: ReadFrom::RecoveryPoint,
        skip_corrupt: false,
    };
    let mut reader = WalReader::open(dir.path().join("wal"), "recpt", options).unwrap();
    let mut tail = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        tail.push(r.record.to_sample());
    }
    assert!(tail.len() < sent.len(), "recovery reads one segment, not the history");
    assert_eq!(l1(&tail), l1(&sent));
}

#[test]
fn a_live_segment_without_a_full_snapshot_set_gets_one_on_open() {
    use mdbus_types::{FLAG_RECOVERY_SNAPSHOT, Heartbeat, Kind, RecordHeader};
    let dir = tempfile::tempdir().unwrap();
    // A writer that died before finishing its set: records, no closing
    // RECOVERY_SNAPSHOT heartbeat.
    {
        let mut wal = mdbus_wal::Wal::open(
            dir.path().join("wal"),
            "noset",
            WalOptions::default().segment_bytes(65536),
        )
        .unwrap();
        let mut feed = SyntheticFeed::new(2, 4).unwrap();
        let mut out = Vec::new();
        feed.next_event(1, &mut out);
        for mut sample in out {
            sample.header_mut().seq = wal.next_seq();
            sample.header_mut().flags = FLAG_RECOVERY_SNAPSHOT;
            wal.append(&sample).unwrap();
        }
        let mut hb = MdSample::from(Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, 2),
        });
        hb.header_mut().seq = wal.next_seq();
        wal.append(&hb).unwrap();
    }
    assert!(
        mdbus_wal::recovery_point(dir.path().join("wal"), "noset")
            .unwrap()
            .is_none()
    );
    let bus = InProcBus::new(1024);
    let publisher = FeedPublisher::open(config(dir.path(), "noset"), bus.sender()).unwrap();
    assert_eq!(publisher.stats().snapshot_sets, 1);
    let point = mdbus_wal::recovery_point(dir.path().join("wal"), "noset")
        .unwrap()
        .expect("a full set now");
    assert!(
        point.start_seq() > 2,
        "the set follows the old records: {}",
        point.start_seq()
    );
    assert_eq!(
        publisher
            .book(&InstrumentId::new("IF2501").unwrap())
            .map(|b| b.bids().len()),
        Some(10)
    );
}

#[test]
fn a_segment_too_small_for_the_snapshot_set_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let mut cfg = config(dir.path(), "tiny");
    cfg.wal = WalOptions::default().segment_bytes(1024);
    let mut publisher = FeedPublisher::open(cfg, bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(8, 2).unwrap();
    let mut batch = Vec::new();
    let mut err = None;
    for i in 0..200 {
        batch.clear();
        feed.next_event(i, &mut batch);
        if let Err(e) = publisher.publish_batch(&mut batch) {
            err = Some(e.to_string());
            break;
        }
    }
    let err = err.expect("8 snapshots do not fit in 1 KiB segments");
    assert!(err.contains("snapshot set") && err.contains("1024"), "{err}");
}

/// A WAL whose snapshot of a book was corrupted: the restarted publisher
/// reports each record that no longer applies (never drops it silently),
/// forgets that book, and refuses its deltas until a new snapshot.
#[test]
fn a_lost_snapshot_in_the_wal_is_reported_on_restart_and_its_book_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let id = InstrumentId::new("IF2501").unwrap();
    let delta = |px: i64, qty: i64| BookDelta::new(id, Side::Bid, Price::from_raw(px), qty, 1);
    {
        let bus = InProcBus::new(1 << 10);
        // No policy snapshot in between: the deltas follow the one snapshot.
        let mut config = config(dir.path(), "lost");
        config.snapshot_threshold = 1e9;
        let mut publisher = FeedPublisher::open(config, bus.sender()).unwrap();
        let mut snapshot = mdbus_types::BookSnapshot::empty(id, 1);
        snapshot.bid_count = 1;
        snapshot.bids[0] = mdbus_types::Level {
            price: Price::from_raw(100),
            qty: 5,
        };
        publisher.publish(&mut snapshot).unwrap();
        publisher.publish(&mut delta(99, 3)).unwrap();
        publisher.publish(&mut delta(98, 2)).unwrap();
        publisher.flush().unwrap();
    }
    // The first segment: its snapshot set (a heartbeat, nothing was known
    // yet) at 128, then the book snapshot frame: flip a byte of it.
    let segment = dir.path().join("wal/lost/00000000000000000001.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    let snapshot_frame = 128 + 8 + 32;
    assert_eq!(
        u32::from_le_bytes(bytes[snapshot_frame..snapshot_frame + 4].try_into().unwrap()),
        376,
        "the book snapshot frame"
    );
    bytes[snapshot_frame + 8 + 60] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();

    let bus = InProcBus::new(1 << 10);
    let mut publisher = FeedPublisher::open(config(dir.path(), "lost"), bus.sender()).unwrap();
    let failures: Vec<String> = publisher.recovery_failures().iter().map(ToString::to_string).collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].contains("seq 3") && failures[0].contains("before any snapshot"),
        "{failures:?}"
    );
    assert!(publisher.book(&id).is_none(), "the book is forgotten");
    let err = publisher.publish(&mut delta(97, 1)).unwrap_err();
    assert!(
        matches!(err, mdbus_publisher::Error::DeltaBeforeSnapshot { instrument } if instrument == id),
        "{err}"
    );
}

/// The records of `feed`'s WAL under `root` from `from`.
fn wal_records(root: &std::path::Path, feed: &str, from: ReadFrom) -> Vec<MdSample> {
    let mut reader = WalReader::open(
        root,
        feed,
        ReadOptions {
            from,
            skip_corrupt: false,
        },
    )
    .unwrap();
    let mut out = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        if let mdbus_wal::ReadEvent::Record(r) = event {
            out.push(r.record.to_sample());
        }
    }
    out
}

#[test]
fn a_replica_keeps_the_source_seq_and_bytes_and_writes_nothing_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let bus = InProcBus::new(1 << 16);
    let mut feed = SyntheticFeed::new(8, 7).unwrap();
    let mut source = FeedPublisher::open(config(dir.path(), "src"), bus.sender()).unwrap();
    publish_events(&mut source, &mut feed, 4_000);
    let source_root = dir.path().join("wal");
    let point = mdbus_wal::recovery_point(&source_root, "src").unwrap().unwrap();
    assert!(point.start_seq() > 1, "several segments: the replica starts later");
    let source_records = wal_records(&source_root, "src", ReadFrom::Seq(point.start_seq()));

    let replica_dir = dir.path().join("replica");
    std::fs::create_dir_all(&replica_dir).unwrap();
    let replica_bus = InProcBus::new(1 << 16);
    let mut rx = replica_bus.subscribe();
    let mut replica = FeedPublisher::open_replica(config(&replica_dir, "copy"), || {
        Ok::<_, mdbus_publisher::Error>(replica_bus.sender())
    })
    .unwrap();
    // Nothing of its own on open or on poll (no snapshot set, no heartbeat).
    replica.poll_at(Instant::now() + Duration::from_secs(5)).unwrap();
    assert!(drain(&mut rx).is_empty());
    replica.replica_skip_to(point.start_seq()).unwrap();

    let refs: Vec<RecordRef<'_>> = source_records.iter().map(|s| s.record().unwrap()).collect();
    // A duplicate or a skipped record is refused and nothing is published.
    let err = replica.replicate(&refs[1..3]).unwrap_err();
    assert!(matches!(err, mdbus_publisher::Error::ReplicaSeq { .. }), "{err}");
    for chunk in refs.chunks(97) {
        replica.replicate(chunk).unwrap();
    }
    let err = replica.replicate(&refs[..1]).unwrap_err();
    assert!(matches!(err, mdbus_publisher::Error::ReplicaSeq { .. }), "{err}");

    let sent = drain(&mut rx);
    assert_eq!(sent.len(), refs.len());
    for (got, want) in sent.iter().zip(&source_records) {
        assert_eq!(got.record_bytes().unwrap(), want.record_bytes().unwrap());
    }
    let replica_root = replica_dir.join("wal");
    let copied = wal_records(&replica_root, "copy", ReadFrom::Start);
    assert_eq!(copied.len(), source_records.len());
    for (got, want) in copied.iter().zip(&source_records) {
        assert_eq!(got.record_bytes().unwrap(), want.record_bytes().unwrap());
    }
    // The replica's own recovery point is the same snapshot set.
    let replica_point = mdbus_wal::recovery_point(&replica_root, "copy").unwrap().unwrap();
    assert_eq!(replica_point.start_seq(), point.start_seq());
    // Its books are the source's.
    for id in feed.instruments() {
        assert_eq!(replica.book(&id), source.book(&id), "{id}");
    }
}

#[test]
fn with_the_batch_clock_a_batch_shares_one_ts_publish() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "batchclock");
    config.batch_clock = true;
    let bus = InProcBus::new(1 << 16);
    let mut rx = bus.subscribe();
    let mut publisher = FeedPublisher::open(config, bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(8, 3).unwrap();
    let mut batch = Vec::new();
    for i in 0..50 {
        feed.next_event(1_764_000_000_000_000_000 + i, &mut batch);
    }
    let range = publisher.publish_batch(&mut batch).unwrap();
    assert_eq!(range.clone().count(), batch.len());
    let sent: Vec<MdSample> = drain(&mut rx)
        .into_iter()
        .filter(|s| range.contains(&s.header().seq))
        .collect();
    assert_eq!(sent.len(), batch.len());
    let first = sent[0].header().ts_publish;
    assert!(first > 0);
    assert!(sent.iter().all(|s| s.header().ts_publish == first));
    // The END_OF_BATCH flag still marks the batch's last record alone.
    let ends: Vec<bool> = sent.iter().map(|s| s.header().flags & FLAG_END_OF_BATCH != 0).collect();
    assert_eq!(ends.iter().filter(|e| **e).count(), 1);
    assert!(ends[ends.len() - 1]);
}
