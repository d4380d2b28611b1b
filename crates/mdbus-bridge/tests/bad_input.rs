//! A receiving bridge given bad messages by a plain Zenoh publisher on its
//! key: each is counted and logged, none is republished, nothing panics,
//! and the good records that follow reach the replica's WAL as they were.
//! Bad means malformed records (each with a checksum that matches, so the
//! record checks are what refuses it) or a checksum missing, short or not
//! matching the bytes (one bit of a record's body flipped, which no record
//! check sees).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdbus_bridge::inbound::{self, InConfig};
use mdbus_bridge::{session, wire};
use mdbus_types::{Heartbeat, MdSample};
use mdbus_wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};
use zenoh::Wait;

const WATCHDOG: Duration = Duration::from_secs(60);

fn heartbeats(seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for seq in seqs {
        let mut heartbeat = Heartbeat::new(1_764_000_000_000_000_000 + seq as i64);
        heartbeat.header.seq = seq;
        bytes.extend_from_slice(MdSample::from(heartbeat).record_bytes().unwrap());
    }
    bytes
}

fn replica_records(root: &Path, feed: &str) -> Vec<Vec<u8>> {
    let options = ReadOptions {
        from: ReadFrom::Start,
        skip_corrupt: false,
    };
    let Ok(mut reader) = WalReader::open(root, feed, options) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok(Some(event)) = reader.next_event() {
        if let ReadEvent::Record(r) = event {
            out.push(r.record.as_bytes().to_vec());
        }
    }
    out
}

/// Waits until `done` holds, failing after [`WATCHDOG`] with `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !done() {
        assert!(Instant::now() < deadline, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `inbound::run` of a replica of `feed` on a thread, connected to
/// `endpoint`, with the counters of its last status.
struct Receiver {
    stop: Arc<AtomicBool>,
    /// records, filled_records, bad_messages
    counters: Arc<Mutex<(u64, u64, u64)>>,
    error: Arc<Mutex<Option<String>>>,
    handle: std::thread::JoinHandle<()>,
}

impl Receiver {
    fn start(feed: &str, wal_root: &Path, endpoint: &str) -> Receiver {
        let mut config = InConfig::new(feed, wal_root.to_path_buf());
        config.connect = vec![endpoint.to_string()];
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Mutex::new((0, 0, 0)));
        let error = Arc::new(Mutex::new(None));
        let handle = {
            let (stop, counters, error) = (Arc::clone(&stop), Arc::clone(&counters), Arc::clone(&error));
            std::thread::spawn(move || {
                let result = inbound::run(&config, &stop, |stats| {
                    *counters.lock().unwrap() = (
                        stats.records.load(Ordering::Relaxed),
                        stats.filled_records.load(Ordering::Relaxed),
                        stats.bad_messages.load(Ordering::Relaxed),
                    );
                });
                *error.lock().unwrap() = result.err().map(|e| e.to_string());
            })
        };
        Receiver {
            stop,
            counters,
            error,
            handle,
        }
    }

    /// (records, filled_records, bad_messages) of the last status.
    fn counters(&self) -> (u64, u64, u64) {
        *self.counters.lock().unwrap()
    }

    /// Stops the bridge; it ended without an error.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap();
        assert_eq!(*self.error.lock().unwrap(), None);
    }
}

/// The plain Zenoh source's recovery point: seq 1, with its checksum
/// (with `first_bad`, the first answer's is another payload's); and how
/// often it was asked.
fn recovery_point(
    source: &zenoh::Session,
    feed: &str,
    first_bad: bool,
) -> (zenoh::query::Queryable<()>, Arc<AtomicU64>) {
    let asked = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&asked);
    let queryable = source
        .declare_queryable(wire::recovery_point_key(feed))
        .callback(move |query| {
            let point = 1u64.to_le_bytes();
            let sum = match counted.fetch_add(1, Ordering::Relaxed) {
                0 if first_bad => wire::checksum(&2u64.to_le_bytes()),
                _ => wire::checksum(&point),
            };
            query
                .reply(query.key_expr().clone(), point.to_vec())
                .attachment(sum.to_vec())
                .wait()
                .unwrap();
        })
        .wait()
        .unwrap();
    (queryable, asked)
}

#[test]
fn bad_messages_are_counted_and_never_republished() {
    mdbus_transport::iceoryx::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("bad{}", std::process::id());
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    // The plain Zenoh side: a recovery point of 1, and a publisher.
    let source = session::open(std::slice::from_ref(&endpoint), &[]).unwrap();
    let (_point, _) = recovery_point(&source, &feed, false);
    let publisher = source.declare_publisher(wire::md_key(&feed)).wait().unwrap();

    let receiver = Receiver::start(&feed, dir.path(), &endpoint);
    wait_for("the receiving bridge subscribes", || {
        publisher.matching_status().wait().unwrap().matching()
    });

    let good = heartbeats(1..=3);
    let mut bad_kind = heartbeats(1..=2);
    bad_kind[32 + 24] = 9; // the second record's kind
    let malformed: [&[u8]; 4] = [
        &good[..good.len() - 8],                          // not a whole number of records
        &bad_kind,                                        // an unknown kind
        &heartbeats(1..=1)[..20],                         // less than a header
        &[heartbeats(1..=1), heartbeats(3..=3)].concat(), // seq not dense
    ];
    for message in malformed {
        let sum = wire::checksum(message);
        publisher.put(message.to_vec()).attachment(sum.to_vec()).wait().unwrap();
    }
    let sum = wire::checksum(&good);
    let mut flipped = good.clone();
    flipped[32 + 8] ^= 0x04; // the second record's ts_event, no record check's business
    publisher.put(good.clone()).wait().unwrap(); // no checksum
    publisher
        .put(good.clone())
        .attachment(sum[..2].to_vec())
        .wait()
        .unwrap();
    publisher.put(flipped).attachment(sum.to_vec()).wait().unwrap();
    publisher.put(good.clone()).attachment(sum.to_vec()).wait().unwrap();
    wait_for("the good message is republished and the bad ones counted", || {
        receiver.counters() == (3, 0, 7)
    });
    receiver.stop();
    let copied = replica_records(dir.path(), &feed);
    assert_eq!(copied.concat(), good, "the replica holds the good records only");
}

/// What a changed payload held comes again by gap fill: a source (plain
/// Zenoh) whose recovery point, stream message, first gap-fill reply and
/// two gone replies are bad once each (a checksum that does not match, a
/// gone reply with a changed checksum, a whole one outside the query), and
/// right after. The replica holds the source's records, all from the fill;
/// nothing was left out.
#[test]
fn what_a_refused_payload_held_comes_again_by_gap_fill() {
    mdbus_transport::iceoryx::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("fill{}", std::process::id());
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let source = session::open(std::slice::from_ref(&endpoint), &[]).unwrap();
    let wal = heartbeats(1..=6);
    let (_point, asked_point) = recovery_point(&source, &feed, true);
    let _ranges = {
        let (asked, wal) = (AtomicU64::new(0), wal.clone());
        source
            .declare_queryable(wire::wal_keys(&feed))
            .callback(move |query| {
                let (from, to) = wire::parse_range(query.key_expr().as_str()).unwrap();
                let records = &wal[(from.min(7) as usize - 1) * 32..(to.min(6) as usize) * 32];
                let reply = |bytes: &[u8], sum: [u8; 4]| {
                    query
                        .reply(query.key_expr().clone(), bytes.to_vec())
                        .attachment(sum.to_vec())
                        .wait()
                        .unwrap();
                };
                // Past the source's end (the probe once the replica has
                // everything): nothing to answer.
                if records.is_empty() {
                    return;
                }
                match asked.fetch_add(1, Ordering::Relaxed) {
                    // The records with a checksum that is not theirs.
                    0 => reply(records, wire::checksum(&records[32..])),
                    // A gone reply changed on the way: its checksum no
                    // longer matches its range.
                    1 => query
                        .reply_err(wire::gone_reply(from, to).replacen("gone 1", "gone 2", 1))
                        .wait()
                        .unwrap(),
                    // A whole gone reply past what was asked.
                    2 => query.reply_err(wire::gone_reply(from, to + 100)).wait().unwrap(),
                    _ => reply(records, wire::checksum(records)),
                }
            })
            .wait()
            .unwrap()
    };
    let publisher = source.declare_publisher(wire::md_key(&feed)).wait().unwrap();
    let receiver = Receiver::start(&feed, dir.path(), &endpoint);
    wait_for("the receiving bridge subscribes", || {
        publisher.matching_status().wait().unwrap().matching()
    });

    // Seqs 1..=3 with a bit of the second record's body flipped, under
    // the checksum of the bytes as they were; then 4..=6 as they are,
    // which opens the hole the refused message left.
    let (first, rest) = wal.split_at(3 * 32);
    let mut flipped = first.to_vec();
    flipped[32 + 8] ^= 0x04;
    publisher
        .put(flipped)
        .attachment(wire::checksum(first).to_vec())
        .wait()
        .unwrap();
    publisher
        .put(rest.to_vec())
        .attachment(wire::checksum(rest).to_vec())
        .wait()
        .unwrap();
    // Bad: the recovery point, the message, the first reply, both gone
    // replies. The six records all came by the fill that followed.
    wait_for(
        "the replica holds seqs 1..=6 from the gap fill, five payloads refused",
        || receiver.counters() == (6, 6, 5),
    );
    receiver.stop();
    assert!(
        asked_point.load(Ordering::Relaxed) >= 2,
        "the recovery point was asked again"
    );
    assert_eq!(
        replica_records(dir.path(), &feed).concat(),
        wal,
        "the replica holds the source's records"
    );
}
