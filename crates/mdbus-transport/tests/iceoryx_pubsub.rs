#![cfg(feature = "iceoryx2")]
//! The iceoryx2 transport in one process: order and bytes, every wait
//! strategy, a slow subscriber, incompatible services, the WAL attribute.
//! Every test uses its own feed name, so they run in parallel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use iceoryx2::prelude::*;
use mdbus_transport::iceoryx::{
    IoxReceiver, IoxReceiverConfig, IoxSender, IoxSenderConfig, IoxSharedSender, WaitStrategy, feed_exists,
};
use mdbus_transport::{Error, MdReceiver, MdSender};
use mdbus_types::{FeedName, InstrumentId, Kind, MdSample, Price, RecordHeader, Tick, WalLocation};

/// Every wait in these tests ends after this, so a bug fails, never hangs.
const WATCHDOG: Duration = Duration::from_secs(30);

fn unique_feed(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let feed = format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    assert!(feed.len() <= 32, "{feed}");
    feed
}

fn tick(seq: u64) -> MdSample {
    let seq_i = i64::try_from(seq).unwrap();
    let mut sample = MdSample::from(Tick {
        header: RecordHeader::new(Kind::Tick, 1_764_000_000_000_000_000 + seq_i),
        instrument: InstrumentId::new("IF2501").unwrap(),
        last_px: Price::from_raw(4_123_400_000_000 + seq_i),
        last_qty: seq_i % 7 + 1,
        bid_px: Price::from_raw(4_123_200_000_000),
        bid_qty: 5,
        ask_px: Price::from_raw(4_123_400_000_000),
        ask_qty: 3,
        volume: seq_i * 2,
    });
    sample.header_mut().seq = seq;
    sample
}

/// Aborts the process if a test step hangs (for waits that have no timeout
/// of their own, such as a send that would block).
struct Watchdog {
    /// Dropping it disconnects the channel, which disarms the watchdog.
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    fn start(what: &'static str) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
                eprintln!("watchdog: {what} hung for {WATCHDOG:?}");
                std::process::abort();
            }
        });
        Watchdog { _disarm: tx }
    }
}

fn assert_feed_gone(feed: &str) {
    assert!(!feed_exists(feed).unwrap(), "services of feed {feed} are left behind");
}

fn service_reason(err: Error) -> (String, String) {
    match err {
        Error::Service { service, reason } => (service, reason),
        other => panic!("expected Error::Service, got {other:?}"),
    }
}

#[test]
fn every_sample_arrives_in_order_with_equal_bytes() {
    let feed = unique_feed("order");
    {
        let mut publisher = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap();
        let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(WaitStrategy::BusySpin)).unwrap();
        assert_eq!(publisher.subscriber_count(), 1);
        assert_eq!(subscriber.publisher_count(), 1);
        let sent: Vec<MdSample> = (1..=3000).map(tick).collect();
        for batch in sent.chunks(100) {
            for sample in batch {
                publisher.send(sample).unwrap();
            }
            publisher.end_batch().unwrap();
        }
        let mut received = Vec::new();
        while let Some(sample) = subscriber.try_recv().unwrap() {
            received.push(sample);
        }
        assert_eq!(received.len(), sent.len());
        for (got, want) in received.iter().zip(&sent) {
            assert_eq!(got.as_bytes(), want.as_bytes(), "seq {}", want.header().seq);
        }
        assert_eq!(subscriber.dropped(), 0);
        // In place, without a copy.
        publisher.send(&tick(3001)).unwrap();
        let seq = subscriber.try_recv_with(|sample| sample.header().seq).unwrap();
        assert_eq!(seq, Some(3001));
    }
    assert_feed_gone(&feed);
}

/// A sender on thread-safe ports (`IoxSender::create_shared`), created on
/// one thread and moved to another halfway, publishes the same services:
/// a subscriber on the single-threaded ports gets every sample in order
/// with equal bytes, woken by its batches.
#[test]
fn a_shared_sender_moves_between_threads_and_plain_subscribers_read_it() {
    let feed = unique_feed("shared");
    {
        let mut publisher: IoxSharedSender = IoxSender::create_shared(&IoxSenderConfig::new(&feed)).unwrap();
        let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(WaitStrategy::Block)).unwrap();
        assert_eq!(publisher.subscriber_count(), 1);
        let sent: Vec<MdSample> = (1..=400).map(tick).collect();
        for sample in &sent[..200] {
            publisher.send(sample).unwrap();
        }
        publisher.end_batch().unwrap();
        let second = sent[200..].to_vec();
        let publisher = thread::spawn(move || {
            for sample in &second {
                publisher.send(sample).unwrap();
            }
            publisher.end_batch().unwrap();
            publisher
        })
        .join()
        .unwrap();
        let deadline = Instant::now() + WATCHDOG;
        let mut received = Vec::new();
        while received.len() < sent.len() {
            assert!(
                Instant::now() < deadline,
                "only {} of {} samples came",
                received.len(),
                sent.len()
            );
            if let Some(sample) = subscriber.recv_timeout(Duration::from_millis(100)).unwrap() {
                received.push(sample);
            }
        }
        for (got, want) in received.iter().zip(&sent) {
            assert_eq!(got.as_bytes(), want.as_bytes(), "seq {}", want.header().seq);
        }
        assert_eq!(subscriber.dropped(), 0);
        drop(publisher);
    }
    assert_feed_gone(&feed);
}

/// The publisher lives in its own thread (ports are per thread), starts
/// sending only once the subscriber waits, and sends in paced batches, so
/// the subscriber really waits (and with `Block`, sleeps on the event
/// service) between batches.
fn receive_from_another_thread(wait: WaitStrategy, tag: &str) {
    const COUNT: u64 = 600;
    const BATCH: usize = 50;
    let feed = unique_feed(tag);
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let publisher_feed = feed.clone();
    let publisher_thread = thread::spawn(move || {
        let mut publisher = IoxSender::create(&IoxSenderConfig::new(&publisher_feed)).unwrap();
        ready_tx.send(()).unwrap();
        go_rx.recv_timeout(WATCHDOG).unwrap();
        thread::sleep(Duration::from_millis(20));
        let seqs: Vec<u64> = (1..=COUNT).collect();
        for batch in seqs.chunks(BATCH) {
            for &seq in batch {
                publisher.send(&tick(seq)).unwrap();
            }
            publisher.end_batch().unwrap();
            thread::sleep(Duration::from_millis(2));
        }
    });
    ready_rx.recv_timeout(WATCHDOG).unwrap();
    let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(wait)).unwrap();
    assert_eq!(subscriber.wait_strategy(), wait);
    go_tx.send(()).unwrap();
    let mut expected = 1;
    while expected <= COUNT {
        let sample = subscriber
            .recv_timeout(WATCHDOG)
            .unwrap()
            .unwrap_or_else(|| panic!("watchdog: nothing within {WATCHDOG:?}, waiting for seq {expected}"));
        assert_eq!(sample.as_bytes(), tick(expected).as_bytes());
        expected += 1;
    }
    assert_eq!(subscriber.dropped(), 0);
    publisher_thread.join().unwrap();
    // The publisher is gone and everything was received.
    // (A wait without a publisher lasts its timeout, then says so.)
    assert!(matches!(
        subscriber.recv_timeout(Duration::from_millis(100)),
        Err(Error::Disconnected)
    ));
    assert_eq!(subscriber.publisher_count(), 0);
    drop(subscriber);
    assert_feed_gone(&feed);
}

#[test]
fn busy_spin_receives_from_another_thread() {
    receive_from_another_thread(WaitStrategy::BusySpin, "spin");
}

#[test]
fn backoff_receives_from_another_thread() {
    receive_from_another_thread(WaitStrategy::backoff(), "backoff");
}

#[test]
fn block_wakes_on_batches_from_another_thread() {
    receive_from_another_thread(WaitStrategy::Block, "block");
}

/// A receiver whose publisher is gone keeps waiting (no early
/// `Disconnected`), and a publisher that starts meanwhile wakes it.
#[test]
fn a_wait_without_publisher_is_woken_by_a_new_one() {
    let feed = unique_feed("nopub");
    for wait in [WaitStrategy::Block, WaitStrategy::backoff(), WaitStrategy::BusySpin] {
        let first = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap();
        let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(wait)).unwrap();
        drop(first);
        let start = Instant::now();
        assert!(matches!(
            subscriber.recv_timeout(Duration::from_millis(30)),
            Err(Error::Disconnected)
        ));
        assert!(start.elapsed() >= Duration::from_millis(30), "{wait:?}: returned early");
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let publisher_feed = feed.clone();
        let publisher = thread::spawn(move || {
            let mut second = IoxSender::create(&IoxSenderConfig::new(&publisher_feed)).unwrap();
            second.send(&tick(1)).unwrap();
            second.end_batch().unwrap();
            done_rx.recv_timeout(WATCHDOG).unwrap();
        });
        let got = subscriber.recv_timeout(WATCHDOG).unwrap().expect("watchdog");
        assert_eq!(got.as_bytes(), tick(1).as_bytes(), "{wait:?}");
        done_tx.send(()).unwrap();
        publisher.join().unwrap();
        drop(subscriber);
    }
    assert_feed_gone(&feed);
}

#[test]
fn each_strategy_times_out_empty_and_block_counts_a_publisher_start() {
    let feed = unique_feed("timeout");
    let first = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap();
    for wait in [WaitStrategy::BusySpin, WaitStrategy::backoff(), WaitStrategy::Block] {
        let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(wait)).unwrap();
        assert!(
            subscriber.recv_timeout(Duration::from_millis(5)).unwrap().is_none(),
            "{wait:?}"
        );
        assert!(subscriber.recv_timeout(Duration::ZERO).unwrap().is_none(), "{wait:?}");
    }
    // A second publisher on the feed (a restart) is announced with event 1.
    let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed)).unwrap();
    assert_eq!(subscriber.publisher_restarts(), 0);
    let second = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap();
    assert!(subscriber.recv_timeout(Duration::from_millis(50)).unwrap().is_none());
    assert_eq!(subscriber.publisher_restarts(), 1);
    drop((first, second, subscriber));
    assert_feed_gone(&feed);
}

#[test]
fn slow_subscriber_loses_its_oldest_and_the_holes_are_exactly_those() {
    const COUNT: u64 = 20_000;
    let feed = unique_feed("slow");
    {
        let mut publisher = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap();
        let mut slow = IoxReceiver::open(&IoxReceiverConfig::new(&feed)).unwrap();
        publisher.send(&tick(1)).unwrap();
        assert_eq!(slow.try_recv().unwrap().unwrap().header().seq, 1);
        {
            // The publisher never blocks on the subscriber that does not read.
            let _watchdog = Watchdog::start("sending to a slow subscriber");
            let seqs: Vec<u64> = (2..=COUNT).collect();
            for batch in seqs.chunks(100) {
                for &seq in batch {
                    publisher.send(&tick(seq)).unwrap();
                }
                publisher.end_batch().unwrap();
            }
        }
        let received: Vec<u64> = std::iter::from_fn(|| slow.try_recv().unwrap())
            .map(|sample| sample.header().seq)
            .collect();
        // The newest 4096 (the subscriber's buffer) survive, in order.
        let first = COUNT - 4096 + 1;
        assert_eq!(received, (first..=COUNT).collect::<Vec<_>>());
        // Lost: 2..first, the oldest, and `dropped` counts exactly those.
        assert_eq!(slow.dropped(), first - 2);
    }
    assert_feed_gone(&feed);
}

#[test]
fn bad_feed_names_are_refused() {
    for bad in ["", "a/b", "a b", "feed.1", &"x".repeat(33)] {
        let err = IoxSender::create(&IoxSenderConfig::new(bad)).unwrap_err();
        assert!(
            matches!(&err, Error::FeedName(mdbus_types::Error::FeedName { feed, .. }) if feed == bad),
            "{err:?}"
        );
        let err = IoxReceiver::open(&IoxReceiverConfig::new(bad)).unwrap_err();
        assert!(
            matches!(&err, Error::FeedName(mdbus_types::Error::FeedName { feed, .. }) if feed == bad),
            "{err:?}"
        );
        assert!(matches!(feed_exists(bad), Err(Error::FeedName { .. })));
    }
}

#[test]
fn subscriber_without_publisher_is_a_clear_error() {
    let feed = unique_feed("nopub");
    let (service, reason) = service_reason(IoxReceiver::open(&IoxReceiverConfig::new(&feed)).unwrap_err());
    assert_eq!(service, format!("mdbus/{feed}/md"));
    assert!(reason.contains("does not exist"), "{reason}");
    assert_feed_gone(&feed);
}

/// Creates `mdbus/<feed>/md` the way a misconfigured client would, then
/// checks that our publisher and subscriber refuse it, naming what differs.
fn refused_service(
    tag: &str,
    create: impl FnOnce(&Node<ipc::Service>, &ServiceName) -> Box<dyn std::any::Any>,
    words: &[&str],
) {
    let feed = unique_feed(tag);
    let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
    let name = ServiceName::new(&format!("mdbus/{feed}/md")).unwrap();
    let service = create(&node, &name);
    let (pub_service, pub_reason) = service_reason(IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap_err());
    let (sub_service, sub_reason) = service_reason(IoxReceiver::open(&IoxReceiverConfig::new(&feed)).unwrap_err());
    for (service_name, reason) in [(pub_service, pub_reason), (sub_service, sub_reason)] {
        assert_eq!(service_name, format!("mdbus/{feed}/md"));
        for word in words {
            assert!(reason.contains(word), "{word:?} missing in: {reason}");
        }
    }
    drop(service);
    drop(node);
    assert_feed_gone(&feed);
}

#[test]
fn smaller_buffer_is_refused() {
    refused_service(
        "buf",
        |node, name| {
            Box::new(
                node.service_builder(name)
                    .publish_subscribe::<MdSample>()
                    .subscriber_max_buffer_size(1024)
                    .max_subscribers(16)
                    .max_nodes(64)
                    .subscriber_max_borrowed_samples(8)
                    .create()
                    .unwrap(),
            )
        },
        &[
            "smaller subscriber_max_buffer_size",
            "subscriber_max_buffer_size 1024 (expected 4096)",
        ],
    );
}

#[test]
fn safe_overflow_off_is_refused() {
    refused_service(
        "ovf",
        |node, name| {
            Box::new(
                node.service_builder(name)
                    .publish_subscribe::<MdSample>()
                    .enable_safe_overflow(false)
                    .subscriber_max_buffer_size(4096)
                    .subscriber_max_borrowed_samples(8)
                    .max_subscribers(16)
                    .max_nodes(64)
                    .create()
                    .unwrap(),
            )
        },
        &["overflow", "safe overflow false (expected true)"],
    );
}

#[test]
fn another_payload_type_is_refused() {
    refused_service(
        "type",
        |node, name| Box::new(node.service_builder(name).publish_subscribe::<u64>().create().unwrap()),
        &[
            "another payload",
            "payload u64 (8 bytes, align 8) (expected mdbus::v1::MdSample (376 bytes, align 8))",
        ],
    );
}

#[test]
fn wal_dir_attribute_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let feed = unique_feed("wal");
    let location = |root: &Path| WalLocation::new(root, FeedName::new(&feed).unwrap());
    let wal = location(&dir.path().join("wal"));
    {
        let publisher = IoxSender::create(&IoxSenderConfig::new(&feed).wal(wal.clone())).unwrap();
        assert_eq!(publisher.wal().unwrap(), Some(wal.clone()));
        let subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed)).unwrap();
        assert_eq!(subscriber.wal().unwrap(), Some(wal.clone()));
        // A restarted publisher with the same folder opens the service ...
        let again = IoxSender::create(&IoxSenderConfig::new(&feed).wal(wal.clone())).unwrap();
        drop(again);
        // ... one with another folder is refused, naming both.
        let other = location(&dir.path().join("other"));
        let (_, reason) =
            service_reason(IoxSender::create(&IoxSenderConfig::new(&feed).wal(other.clone())).unwrap_err());
        assert!(reason.contains("mdbus.wal_dir"), "{reason}");
        let both = format!("mdbus.wal_dir {wal} (expected {other})");
        assert!(reason.contains(&both), "{reason}");
        // The WAL of another feed is refused before any service is touched.
        let foreign = WalLocation::new(dir.path(), FeedName::new("another").unwrap());
        let (_, reason) = service_reason(IoxSender::create(&IoxSenderConfig::new(&feed).wal(foreign)).unwrap_err());
        assert!(reason.contains("is of feed another"), "{reason}");
        drop((publisher, subscriber));
    }
    assert_feed_gone(&feed);

    // Without a folder there is no attribute; a relative root is made absolute.
    let feed = unique_feed("wal");
    {
        let publisher = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap();
        let subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed)).unwrap();
        assert_eq!(subscriber.wal().unwrap(), None);
        drop((publisher, subscriber));
    }
    let feed = unique_feed("wal");
    {
        let relative = WalLocation::new("rel/wal", FeedName::new(&feed).unwrap());
        let publisher = IoxSender::create(&IoxSenderConfig::new(&feed).wal(relative)).unwrap();
        let subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed)).unwrap();
        let expected: PathBuf = std::env::current_dir().unwrap().join("rel/wal");
        let announced = subscriber.wal().unwrap().expect("announced");
        assert_eq!(
            (announced.root(), announced.feed().as_str()),
            (expected.as_path(), feed.as_str())
        );
        drop((publisher, subscriber));
    }
    assert_feed_gone(&feed);
}

#[test]
fn open_waiting_waits_for_a_starting_publisher_and_names_a_feed_that_never_comes() {
    // Nobody creates this feed: the wait ends with the "does not exist" error.
    let missing = unique_feed("never");
    let err = IoxReceiver::open_waiting(&IoxReceiverConfig::new(missing), Duration::from_millis(100))
        .expect_err("no publisher ever created the feed");
    let (_, reason) = service_reason(err);
    assert!(reason.contains("does not exist"), "{reason}");

    // A publisher that appears while the subscriber waits.
    let feed = unique_feed("late");
    let (tx, rx) = mpsc::channel();
    let publisher_feed = feed.clone();
    let publisher = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        let publisher = IoxSender::create(&IoxSenderConfig::new(publisher_feed)).unwrap();
        // Keep the service alive until the subscriber has opened it.
        rx.recv_timeout(WATCHDOG).unwrap();
        drop(publisher);
    });
    let subscriber = IoxReceiver::open_waiting(&IoxReceiverConfig::new(feed.clone()), WATCHDOG).unwrap();
    tx.send(()).unwrap();
    publisher.join().unwrap();
    drop(subscriber);
    assert_feed_gone(&feed);
}

/// A feed with a group (the process's own effective group: no other user
/// needed) lives in its own iceoryx2 root with the group's modes, round
/// trips, and leaves no service behind. (Other users: tests/groups.rs.)
#[test]
fn a_feed_with_a_group_lives_in_its_own_root_with_the_groups_modes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let feed = unique_feed("grp");
    let root = mdbus_transport::iceoryx::group_root(&feed);
    let _watchdog = Watchdog::start("a feed with a group");
    let group = mdbus_types::FeedGroup::effective();
    {
        let mut publisher = IoxSender::create(&IoxSenderConfig::new(&feed).group(group.clone())).unwrap();
        let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(WaitStrategy::Block)).unwrap();
        publisher.send(&tick(1)).unwrap();
        publisher.end_batch().unwrap();
        let received = subscriber.recv_timeout(WATCHDOG).unwrap().expect("a sample");
        assert_eq!(received.header().seq, 1);

        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root), 0o3770);
        assert_eq!(mode(&root.join("nodes")), 0o3770);
        assert_eq!(mode(&root.join("services")), 0o2750);
        let services: Vec<PathBuf> = std::fs::read_dir(root.join("services"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(services.len(), 2, "{services:?}");
        for service in &services {
            assert_eq!(mode(service), 0o440, "{}", service.display());
        }
        let prefix = mdbus_transport::iceoryx::group_prefix(&feed);
        let shm: Vec<PathBuf> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix))
            .filter(|p| !p.to_string_lossy().ends_with(".global_mgmt"))
            .collect();
        assert!(shm.len() >= 3, "{shm:?}");
        for file in &shm {
            let want = if file.to_string_lossy().ends_with(".data") {
                0o640
            } else {
                0o660
            };
            // The connection and the listener's files are shared by the
            // keeper thread, soon after they appear.
            let deadline = Instant::now() + WATCHDOG;
            while mode(file) != want {
                assert!(Instant::now() < deadline, "{} is {:o}", file.display(), mode(file));
                thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                std::fs::metadata(file).unwrap().gid(),
                group.gid(),
                "{}",
                file.display()
            );
        }
    }
    assert_feed_gone(&feed);
    // Without a group the feed is refused while its group's root exists.
    let refused = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap_err();
    assert!(
        refused.to_string().contains("was published with a group before"),
        "{refused}"
    );
    std::fs::remove_dir_all(&root).unwrap();
    for entry in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("mdbus.{feed}."))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
