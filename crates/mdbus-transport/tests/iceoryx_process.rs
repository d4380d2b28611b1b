#![cfg(feature = "iceoryx2")]
//! The iceoryx2 transport across processes: a publisher in a child process
//! (this test binary run again with `MDBUS_IOX_CHILD` set, see
//! [`child_publisher`]), the subscriber here; and kill -9 of that child,
//! after which a new publisher on the same feed serves the same subscriber.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mdbus_transport::iceoryx::{IoxReceiver, IoxReceiverConfig, IoxSender, IoxSenderConfig, WaitStrategy, feed_exists};
use mdbus_transport::{Error, MdReceiver, MdSender};
use mdbus_types::{Heartbeat, Kind, MdSample, RecordHeader};

/// Every wait in these tests ends after this, so a bug fails, never hangs.
const WATCHDOG: Duration = Duration::from_secs(30);
const CHILD_ENV: &str = "MDBUS_IOX_CHILD";

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

fn heartbeat(seq: u64) -> MdSample {
    let mut sample = MdSample::from(Heartbeat {
        header: RecordHeader::new(Kind::Heartbeat, i64::try_from(seq).unwrap()),
    });
    sample.header_mut().seq = seq;
    sample
}

/// The child role. Run normally it does nothing. With `MDBUS_IOX_CHILD`
/// set to `<feed>:<first seq>:<count>` it creates a publisher, prints
/// `@@READY`, waits for a line on stdin, sends `count` heartbeats from
/// `first seq` in paced batches, prints `@@SENT`, and waits for stdin to
/// close (or to be killed) before dropping the publisher.
#[test]
fn child_publisher() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split(':');
    let feed = parts.next().unwrap().to_string();
    let first: u64 = parts.next().unwrap().parse().unwrap();
    let count: u64 = parts.next().unwrap().parse().unwrap();
    let mut publisher = IoxSender::create(&IoxSenderConfig::new(&feed)).unwrap();
    println!("@@READY");
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line).unwrap();
    let seqs: Vec<u64> = (first..first + count).collect();
    for batch in seqs.chunks(50) {
        for &seq in batch {
            publisher.send(&heartbeat(seq)).unwrap();
        }
        publisher.end_batch().unwrap();
        // Paced (about 25 k/s): the subscriber keeps up as it would on a
        // live feed (the tests send fewer than its 4096-deep queue holds, so
        // a busy machine does not make it drop).
        thread::sleep(Duration::from_millis(2));
    }
    println!("@@SENT");
    line.clear();
    let _eof = stdin.read_line(&mut line);
}

/// A child publisher process; killed and reaped if the test fails.
struct ChildPublisher {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl ChildPublisher {
    fn spawn(feed: &str, first: u64, count: u64) -> ChildPublisher {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_publisher", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, format!("{feed}:{first}:{count}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut publisher = ChildPublisher { child, stdin, lines };
        publisher.expect("@@READY");
        publisher
    }

    fn expect(&mut self, marker: &str) {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return,
                Ok(_) => continue,
                Err(e) => panic!("watchdog: child publisher did not print {marker}: {e}"),
            }
        }
    }

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin: the child drops its publisher and exits.
    fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WATCHDOG;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "child publisher failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "watchdog: child publisher did not exit");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// kill -9.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildPublisher {
    fn drop(&mut self) {
        let _ignored = self.child.kill();
        let _ignored = self.child.wait();
    }
}

fn receive_in_order(subscriber: &mut IoxReceiver, seqs: std::ops::RangeInclusive<u64>) {
    for expected in seqs {
        let sample = subscriber
            .recv_timeout(WATCHDOG)
            .unwrap()
            .unwrap_or_else(|| panic!("watchdog: nothing within {WATCHDOG:?}, waiting for seq {expected}"));
        assert_eq!(sample.as_bytes(), heartbeat(expected).as_bytes());
    }
}

#[test]
fn publisher_in_another_process_delivers_every_record() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    // Fewer than the subscriber's queue holds (4096): opened before `go`,
    // it loses none even if it gets no CPU until the child has sent all.
    const COUNT: u64 = 4000;
    let feed = unique_feed("xproc");
    let mut child = ChildPublisher::spawn(&feed, 1, COUNT);
    let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(WaitStrategy::Block)).unwrap();
    child.go();
    receive_in_order(&mut subscriber, 1..=COUNT);
    child.expect("@@SENT");
    assert_eq!(subscriber.dropped(), 0);
    child.finish();
    // (A wait without a publisher lasts its timeout, then says so.)
    assert!(matches!(
        subscriber.recv_timeout(Duration::from_millis(100)),
        Err(Error::Disconnected)
    ));
    drop(subscriber);
    assert!(!feed_exists(&feed).unwrap(), "services of feed {feed} are left behind");
}

#[test]
fn after_kill_9_a_new_publisher_serves_the_running_subscriber() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    const COUNT: u64 = 1000;
    let feed = unique_feed("kill9");
    let mut first = ChildPublisher::spawn(&feed, 1, COUNT);
    let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(WaitStrategy::Block)).unwrap();
    first.go();
    receive_in_order(&mut subscriber, 1..=COUNT);
    first.expect("@@SENT");
    first.kill();
    let restarts = subscriber.poll_events().unwrap();

    // The new publisher cleans the killed one's dead node on start, and the
    // subscriber that kept running receives from it and sees the restart.
    let mut second = ChildPublisher::spawn(&feed, COUNT + 1, COUNT);
    second.go();
    receive_in_order(&mut subscriber, COUNT + 1..=2 * COUNT);
    second.expect("@@SENT");
    assert_eq!(subscriber.dropped(), 0);
    assert_eq!(
        subscriber.publisher_count(),
        1,
        "the killed publisher was not cleaned up"
    );
    subscriber.poll_events().unwrap();
    assert!(subscriber.publisher_restarts() > restarts, "no publisher start seen");
    second.finish();
    drop(subscriber);
    assert!(!feed_exists(&feed).unwrap(), "services of feed {feed} are left behind");
}
