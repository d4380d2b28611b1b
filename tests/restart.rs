//! Restart equivalence (docs/spec.md, "Subscribe path"): a subscriber process
//! killed with SIGKILL at random points and restarted, while `mdbus
//! publish` runs, ends with exactly the L1 cache (every instrument's tick
//! and book) of a subscriber process that never stopped.
//!
//! The subscriber processes are this test binary run again in a child role
//! (`MDBUS_RESTART_CHILD`): iceoryx2 receiver, replay-merge from the WAL,
//! and at the end a dump of its L1 cache. Every wait has a watchdog; child
//! processes are killed on drop.
#![cfg(feature = "iceoryx2")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdbus::subscriber::{Event, L1Entry, Subscriber, SubscriberConfig};
use mdbus::transport::iceoryx::{IoxReceiver, IoxReceiverConfig, WaitStrategy, init_logging};
use mdbus::transport::{InProcBus, MdReceiver};
use mdbus::types::RecordRef;
use mdbus::types::WalLocation;
use mdbus::types::json::record_to_json;
use mdbus::wal::{ReadOptions, WalReader};

use common::{Proc, WATCHDOG};

const CHILD_ENV: &str = "MDBUS_RESTART_CHILD";

/// xorshift64*: random kill points without a dependency; the seed is
/// printed so a failing run can be repeated (`MDBUS_RESTART_SEED`).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Spawns this test binary as a subscriber child that dumps its L1 cache
/// to `out` once it has delivered the seq written to `done`.
fn spawn_child(feed: &str, wal: &Path, out: &Path, done: &Path) -> Proc {
    Proc(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "restart_child", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, "1")
            .env("MDBUS_RESTART_FEED", feed)
            .env("MDBUS_RESTART_WAL", wal)
            .env("MDBUS_RESTART_OUT", out)
            .env("MDBUS_RESTART_DONE", done)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn a_subscriber_killed_and_restarted_ends_with_the_cache_of_one_that_never_stopped() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let feed = format!("restart{}", std::process::id());
    let done = dir.path().join("done");
    let seed = std::env::var("MDBUS_RESTART_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| mdbus::types::clock::now_ns() as u64 | 1);
    eprintln!("restart equivalence: seed {seed} (MDBUS_RESTART_SEED to repeat)");
    let mut rng = Rng(seed);

    // The never-stopped subscriber attaches before the publisher starts.
    let reference_out = dir.path().join("reference.dump");
    let mut reference = spawn_child(&feed, &wal, &reference_out, &done);
    let mut publisher = Proc(
        Command::new(env!("CARGO_BIN_EXE_mdbus"))
            .args(["publish", "--feed", &feed, "--synthetic", "--instruments", "24"])
            // Unpaced would write gigabytes in a test; 150 k records/s (less
            // on a loaded machine: a debug build) and 1 MiB segments give
            // several segment rolls (snapshot sets) and busy subscribers.
            .args(["--rate", "150000", "--duration", "4", "--segment-bytes", "1048576"])
            .arg("--wal")
            .arg(&wal)
            .arg("--board-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    // Two victims, started and killed with SIGKILL at random points, in
    // rounds while the publisher runs. Then `live` restarts once more while
    // it still runs (it joins live through replay-merge) and `wal` once it
    // has ended (the WAL alone brings it up).
    let started = Instant::now();
    let live_out = dir.path().join("live.dump");
    let wal_out = dir.path().join("wal.dump");
    let mut round = 0;
    while round < 3 || started.elapsed() < Duration::from_millis(2500) {
        let mut live = spawn_child(&feed, &wal, &live_out, &done);
        let mut wal_victim = spawn_child(&feed, &wal, &wal_out, &done);
        for (name, victim) in [("live", &mut live), ("wal", &mut wal_victim)] {
            let ms = 20 + rng.below(300);
            std::thread::sleep(Duration::from_millis(ms));
            eprintln!("round {round}: SIGKILL {name} after {ms} ms");
            victim.kill_9();
        }
        round += 1;
    }
    let mut live = spawn_child(&feed, &wal, &live_out, &done);
    publisher.wait_ok("mdbus publish");
    let mut wal_victim = spawn_child(&feed, &wal, &wal_out, &done);

    // The last seq the publisher wrote, for the children to stop at.
    let mut reader = WalReader::open(&wal, &feed, ReadOptions::default()).unwrap();
    let mut last = 0;
    while let Some(r) = reader.next_record().unwrap() {
        last = r.record.header().seq;
    }
    // At least a few segments (~9 k records each), whatever the machine's load.
    assert!(last > 30_000, "the publisher wrote only {last} records");
    eprintln!("the publisher wrote {last} records");
    let tmp = dir.path().join("done.tmp");
    std::fs::write(&tmp, last.to_string()).unwrap();
    std::fs::rename(&tmp, &done).unwrap();

    reference.wait_ok("the never-stopped subscriber");
    live.wait_ok("the subscriber restarted while the publisher ran");
    wal_victim.wait_ok("the subscriber restarted after the publisher ended");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let reference = read(&reference_out);
    // The seq line, and a header, book and tick line for each of the 24.
    assert_eq!(reference.lines().count(), 1 + 24 * 3, "{reference}");
    assert!(reference.starts_with(&format!("last_seq {last}\n")), "{reference}");
    assert!(
        !reference.contains("none") && !reference.contains("stale=true"),
        "{reference}"
    );
    assert_eq!(
        read(&live_out),
        reference,
        "the L1 of the subscriber restarted while live differs"
    );
    assert_eq!(
        read(&wal_out),
        reference,
        "the L1 of the subscriber restarted from the WAL differs"
    );
}

/// The child role: a subscriber process (see `spawn_child`).
#[test]
fn restart_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let var = |name| PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} not set")));
    let feed = std::env::var("MDBUS_RESTART_FEED").unwrap();
    let (wal, out, done) = (
        var("MDBUS_RESTART_WAL"),
        var("MDBUS_RESTART_OUT"),
        var("MDBUS_RESTART_DONE"),
    );
    init_logging();
    let config = SubscriberConfig::default().wal(WalLocation::try_new(&wal, &feed).unwrap());
    let deadline = Instant::now() + WATCHDOG;
    // The publisher may not exist yet (the reference) or any more (a last
    // restart after it ended: then the WAL alone brings the cache up).
    let iox = IoxReceiverConfig::new(feed.clone()).wait(WaitStrategy::Block);
    let dump = loop {
        match IoxReceiver::open(&iox) {
            Ok(receiver) => break follow(Subscriber::new(receiver, config).unwrap(), &done, deadline),
            Err(e) if done.exists() => {
                eprintln!("child: no publisher ({e}): WAL only");
                let bus = InProcBus::new(16);
                break follow(Subscriber::new(bus.subscribe(), config).unwrap(), &done, deadline);
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "watchdog: feed {feed} never appeared: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    let mut file = std::fs::File::create(&out).unwrap();
    file.write_all(dump.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

/// Runs the subscriber until it delivered the seq in `done`; its L1 dump.
fn follow<R: MdReceiver>(mut subscriber: Subscriber<R>, done: &Path, deadline: Instant) -> String {
    let mut target = None;
    let mut events = 0u64;
    let mut previous: Option<u64> = None;
    loop {
        assert!(Instant::now() < deadline, "watchdog: child at {:?}", subscriber.stats());
        let event = subscriber.next_event(Duration::from_millis(50)).unwrap();
        match event {
            Some(Event::Gap(lost)) => panic!("gap {lost}: the WAL holds every record"),
            // One stream: each seq once, in order, across replay and live.
            Some(Event::Record { sample, .. }) => {
                let seq = sample.header().seq;
                if let Some(previous) = previous {
                    assert_eq!(seq, previous + 1, "seq {seq} after {previous}");
                }
                previous = Some(seq);
            }
            _ => {}
        }
        events += 1;
        if event.is_none() || events.is_multiple_of(8192) {
            target = target.or_else(|| std::fs::read_to_string(done).ok().map(|s| s.parse::<u64>().unwrap()));
        }
        let last = subscriber.stats().last_seq;
        if let (Some(target), Some(last)) = (target, last)
            && last >= target
        {
            assert_eq!(last, target, "delivered past the publisher's last seq");
            break;
        }
    }
    let stats = subscriber.stats();
    assert_eq!(stats.mismatches, 0, "{stats:?}");
    let mut dump = format!("last_seq {}\n", stats.last_seq.unwrap());
    for L1Entry {
        instrument,
        tick,
        book,
        stale,
    } in subscriber.l1().dump()
    {
        let book = book
            .as_ref()
            .map_or("none".into(), |b| record_to_json(RecordRef::BookSnapshot(b)));
        let tick = tick
            .as_ref()
            .map_or("none".into(), |t| record_to_json(RecordRef::Tick(t)));
        dump += &format!("{instrument} stale={stale}\n  book {book}\n  tick {tick}\n");
    }
    dump
}
