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

#[test]
fn bad_messages_are_counted_and_never_republished() {
    mdbus_transport::iceoryx::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("bad{}", std::process::id());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    // The plain Zenoh side: a recovery point of 1, and a publisher.
    let source = session::open(std::slice::from_ref(&endpoint), &[]).unwrap();
    let _point = source
        .declare_queryable(wire::recovery_point_key(&feed))
        .callback(|query| {
            let point = 1u64.to_le_bytes();
            query
                .reply(query.key_expr().clone(), point.to_vec())
                .attachment(wire::checksum(&point).to_vec())
                .wait()
                .unwrap();
        })
        .wait()
        .unwrap();
    let publisher = source.declare_publisher(wire::md_key(&feed)).wait().unwrap();

    let mut config = InConfig::new(&feed, dir.path().to_path_buf());
    config.connect = vec![endpoint];
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicU64::new(0));
    let records = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(None));
    let receiver = {
        let (stop, bad, records, errors) = (
            Arc::clone(&stop),
            Arc::clone(&bad),
            Arc::clone(&records),
            Arc::clone(&errors),
        );
        std::thread::spawn(move || {
            let result = inbound::run(&config, &stop, |stats| {
                bad.store(stats.bad_messages.load(Ordering::Relaxed), Ordering::Relaxed);
                records.store(stats.records.load(Ordering::Relaxed), Ordering::Relaxed);
            });
            *errors.lock().unwrap() = result.err().map(|e| e.to_string());
        })
    };
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
        records.load(Ordering::Relaxed) == 3 && bad.load(Ordering::Relaxed) == 7
    });
    stop.store(true, Ordering::Relaxed);
    receiver.join().unwrap();
    assert_eq!(*errors.lock().unwrap(), None);
    let copied = replica_records(dir.path(), &feed);
    assert_eq!(copied.concat(), good, "the replica holds the good records only");
}
