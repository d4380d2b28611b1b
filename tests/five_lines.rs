//! The five-line API: `mdbus::Publisher` and `mdbus::Subscriber` as a
//! strategy developer writes them, end to end over iceoryx2 (or, without
//! it, over the WAL's tail), with a unique feed name per test.

use std::time::{Duration, Instant};

use mdbus::types::{BookSnapshot, Level, clock};
use mdbus::{BookDelta, Event, InstrumentId, Price, Side, Tick};

const WATCHDOG: Duration = Duration::from_secs(60);

fn feed(name: &str) -> String {
    format!("{name}{}", std::process::id())
}

fn px(s: &str) -> Price {
    s.parse().unwrap()
}

fn book(id: InstrumentId, bids: &[(&str, i64)], asks: &[(&str, i64)]) -> BookSnapshot {
    let mut snapshot = BookSnapshot::empty(id, clock::now_ns());
    for (i, &(p, q)) in bids.iter().enumerate() {
        snapshot.bids[i] = Level { price: px(p), qty: q };
    }
    for (i, &(p, q)) in asks.iter().enumerate() {
        snapshot.asks[i] = Level { price: px(p), qty: q };
    }
    snapshot.bid_count = bids.len() as u16;
    snapshot.ask_count = asks.len() as u16;
    snapshot
}

#[test]
fn records_start_empty_with_null_prices_not_zero() {
    let tick = Tick::default();
    assert!(tick.last_px.is_null() && tick.bid_px.is_null() && tick.ask_px.is_null());
    assert_eq!(tick.header.kind, mdbus::types::Kind::Tick as u16);
    let id = InstrumentId::new("IF2501").unwrap();
    let tick = Tick::new(id, 7)
        .last(px("1.5"), 2)
        .bid(px("1.25"), 3)
        .ask(px("1.75"), 4);
    assert_eq!(
        (tick.last_px, tick.last_qty, tick.bid_qty, tick.ask_px),
        (px("1.5"), 2, 3, px("1.75"))
    );
    assert_eq!(tick.header.ts_event, 7);
    assert!(
        BookSnapshot::default()
            .bids
            .iter()
            .all(|l| l.price.is_null() && l.qty == 0)
    );
    assert!(BookDelta::default().price.is_null());
}

#[test]
fn publish_then_subscribe_with_replay_and_read_the_quote() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("fiveline");
    let id = InstrumentId::new("IF2501").unwrap();

    let mut bus = mdbus::Publisher::builder(&feed)
        .wal(dir.path())
        .board(dir.path())
        .open()
        .unwrap();
    // Before the subscriber exists: it gets these by replay.
    bus.book(book(id, &[("100.0", 5), ("99.5", 7)], &[("100.5", 4)]))
        .unwrap();
    bus.tick(
        Tick::new(id, clock::now_ns())
            .last(px("100.5"), 1)
            .bid(px("100.0"), 5)
            .ask(px("100.5"), 3),
    )
    .unwrap();

    let mut sub = subscriber(&feed, dir.path());
    // After: live (or from the WAL's tail without iceoryx2).
    let last = bus
        .delta(BookDelta::new(id, Side::Bid, px("100.25"), 9, clock::now_ns()))
        .unwrap();

    let deadline = Instant::now() + WATCHDOG;
    let mut seqs = Vec::new();
    while seqs.last() != Some(&last) {
        assert!(Instant::now() < deadline, "watchdog: got {seqs:?}, waiting for {last}");
        match sub.next().unwrap() {
            Some(Event::Record { sample, .. }) => seqs.push(sample.header().seq),
            Some(_) => {}
            None => panic!("idle timeout: got {seqs:?}"),
        }
    }
    // The WAL started with the snapshot set (its closing heartbeat), then
    // ours: one stream, every seq once, in order.
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let quote = sub.quote(&id).expect("a quote once the book is known");
    assert_eq!(
        quote.bid,
        Level {
            price: px("100.25"),
            qty: 9
        }
    );
    assert_eq!(
        quote.ask,
        Level {
            price: px("100.5"),
            qty: 4
        }
    );
    assert_eq!(quote.seq, last);
    assert!(!quote.stale);
    assert!(quote.is_two_sided());
    assert_eq!(sub.tick(&id).unwrap().last_qty, 1);
    let publishers = bus.current_book(&id).unwrap();
    assert_eq!(publishers.best_bid(), Some(quote.bid));
}

#[cfg(feature = "iceoryx2")]
fn subscriber(feed: &str, _dir: &std::path::Path) -> mdbus::Subscriber {
    // The WAL is the one the publisher announces in its service.
    mdbus::Subscriber::builder(feed)
        .replay(true)
        .idle_timeout(WATCHDOG)
        .open()
        .unwrap()
}

#[cfg(not(feature = "iceoryx2"))]
fn subscriber(feed: &str, dir: &std::path::Path) -> mdbus::Subscriber {
    mdbus::Subscriber::builder(feed)
        .replay(true)
        .wal(dir)
        .idle_timeout(WATCHDOG)
        .open()
        .unwrap()
}

#[test]
fn a_refused_record_comes_back_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("refused");
    let mut bus = mdbus::Publisher::builder(&feed)
        .wal(dir.path())
        .no_board()
        .open()
        .unwrap();
    let id = InstrumentId::new("IH2501").unwrap();
    let before = bus.next_seq();
    // A delta before any snapshot of its book.
    let delta = BookDelta::new(id, Side::Ask, px("10"), 1, 1);
    let err = bus.delta(delta).unwrap_err();
    assert_eq!(err.record, delta, "the record is handed back unchanged");
    assert_eq!(err.seq, None, "it took no seq");
    assert!(err.to_string().contains("before any snapshot"), "{err}");
    // A tick without a symbol (the default) is refused the same way.
    let err = bus.tick(Tick::default()).unwrap_err();
    assert_eq!(err.into_record(), Tick::default());
    assert_eq!(bus.next_seq(), before, "nothing was published");
    // Fixed, it goes through.
    bus.book(book(id, &[("9", 1)], &[("10", 2)])).unwrap();
    assert_eq!(bus.delta(delta).unwrap(), before + 1);
}

#[test]
fn a_subscriber_without_a_wal_to_replay_says_so() {
    #[cfg(feature = "iceoryx2")]
    {
        let feed = feed("nowal");
        // A publisher without a WAL announces none.
        let _bus = mdbus::Publisher::builder(&feed).no_board().open().unwrap();
        let err = mdbus::Subscriber::builder(&feed).replay(true).open().unwrap_err();
        assert!(matches!(err, mdbus::Error::NoWal { .. }), "{err}");
        assert!(err.to_string().contains(&feed), "{err}");
        // Live only needs none.
        mdbus::Subscriber::builder(&feed).replay(false).open().unwrap();
    }
    #[cfg(not(feature = "iceoryx2"))]
    {
        let err = mdbus::Subscriber::builder("nowal").replay(true).open().unwrap_err();
        assert!(matches!(err, mdbus::Error::NoWal { .. }), "{err}");
    }
}

/// Zero copy means zero copies: a record handed to the publisher is
/// stamped in place, appended to the WAL (the WAL's copy, not counted) and
/// written once into shared memory. Counted by `mdbus-types`' debug
/// counter (feature `count-copies`, on for these tests).
#[test]
fn a_published_record_is_copied_once_on_its_way_to_shared_memory() {
    use mdbus::types::copies;
    const { assert!(copies::ENABLED, "the tests build mdbus-types with count-copies") };
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("copies");
    // No heartbeat or interval snapshot of the publisher's own in between.
    let hour = Duration::from_secs(3600);
    let mut bus = mdbus::Publisher::builder(&feed)
        .wal(dir.path())
        .no_board()
        .heartbeat_interval(hour)
        .snapshot_interval(hour)
        .open()
        .unwrap();
    let id = InstrumentId::new("IF2501").unwrap();
    let before = bus.stats();
    const N: u64 = 1000;
    copies::reset();
    for i in 0..N as i64 {
        let px = Price::from_raw(100_000_000_000 + i);
        bus.tick(
            Tick::new(id, i)
                .last(px, 1)
                .bid(px, 2)
                .ask(Price::from_raw(px.raw() + 1), 3),
        )
        .unwrap();
    }
    let copied = copies::count();
    let stats = bus.stats();
    assert_eq!(
        stats.records - before.records,
        N,
        "only the caller's records were published"
    );
    assert_eq!(
        copied, N,
        "{copied} copies for {N} records: one each into shared memory"
    );
    // The WAL holds every one (its own copy).
    let mut reader = mdbus::wal::WalReader::open(dir.path(), &feed, mdbus::wal::ReadOptions::default()).unwrap();
    let mut ticks = 0;
    while let Some(r) = reader.next_record().unwrap() {
        ticks += u64::from(r.record.kind() == mdbus::types::Kind::Tick);
    }
    assert_eq!(ticks, N);
}

/// The file mapped at `address` in this process (`/proc/self/maps`), if any.
#[cfg(all(feature = "iceoryx2", target_os = "linux"))]
fn mapping_of(address: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        (start..end)
            .contains(&address)
            .then(|| fields.nth(4).unwrap_or("").to_string())
    })
}

/// Zero copy on the receive side: a live record that the subscriber
/// takes as it comes is lent to the caller where iceoryx2 put it, in the
/// shared-memory segment (`/dev/shm`), not copied into the subscriber.
#[cfg(all(feature = "iceoryx2", target_os = "linux"))]
#[test]
fn a_live_record_is_read_in_place_in_shared_memory() {
    use mdbus::EventRef;
    let feed = feed("inplace");
    let mut bus = mdbus::Publisher::builder(&feed).no_board().open().unwrap();
    let mut sub = mdbus::Subscriber::builder(&feed)
        .replay(false)
        .idle_timeout(WATCHDOG)
        .open()
        .unwrap();
    let id = InstrumentId::new("IF2501").unwrap();
    let px = Price::from_raw(4_000_000_000_000);
    let next_record = |sub: &mut mdbus::Subscriber| loop {
        match sub.next_ref().unwrap().expect("watchdog: no event") {
            EventRef::Record { sample, source } => {
                assert_eq!(source, mdbus::Source::Live);
                break (sample.header().seq, sample as *const _ as usize);
            }
            EventRef::ReplayDone { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    // The first live record ends the (empty) replay: it waited in the
    // subscriber's buffer, so it is the subscriber's copy.
    let first = bus.tick(Tick::new(id, 1).last(px, 1)).unwrap();
    let (seq, address) = next_record(&mut sub);
    assert_eq!(seq, first);
    let held_by_subscriber = mapping_of(address).unwrap_or_default();
    assert!(!held_by_subscriber.starts_with("/dev/shm/"), "{held_by_subscriber}");
    // From then on each record is read where the publisher wrote it.
    for ts in 2..50 {
        let published = bus.tick(Tick::new(id, ts).last(px, 1)).unwrap();
        let (seq, address) = next_record(&mut sub);
        assert_eq!(seq, published);
        let mapping = mapping_of(address).unwrap_or_default();
        assert!(
            mapping.starts_with("/dev/shm/"),
            "record {seq} read from {mapping:?}, not shared memory"
        );
        assert_eq!(
            sub.tick(&id).map(|t| t.header.seq),
            Some(seq),
            "the cache was updated first"
        );
    }
}

/// `cpu(n)` pins the thread that opens (and so the WAL threads it starts);
/// a CPU the process may not use is a clear error, before anything opens.
#[test]
fn a_publisher_pinned_to_a_cpu_and_a_bad_cpu_named() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("pinned");
    let err = mdbus::Publisher::builder(&feed)
        .wal(dir.path())
        .no_board()
        .cpu(usize::MAX)
        .open()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("CPU {}", usize::MAX)), "{err}");
    assert!(!dir.path().join(&feed).exists(), "nothing was opened before the pin");
    let cpu = *mdbus::types::affinity::available_cpus().last().unwrap();
    let root = dir.path().to_path_buf();
    // In a thread of its own: the pin stays with it.
    std::thread::spawn(move || {
        let mut bus = mdbus::Publisher::builder(&feed)
            .wal(root)
            .no_board()
            .cpu(cpu)
            .open()
            .unwrap();
        let id = InstrumentId::new("IF2501").unwrap();
        bus.tick(Tick::new(id, 1).last(Price::from_raw(1), 1)).unwrap();
    })
    .join()
    .unwrap();
}
