//! Running as a service (issue 16): `mdbus publish` and `mdbus gateway`
//! without `--duration` run until SIGTERM or SIGINT and then stop cleanly
//! (exit 0, the WAL verified clean); a restarted publisher continues the
//! seq with no gap and no duplicate, which a gateway running across the
//! restart sees with no gap; the units of `contrib/systemd` pass
//! `systemd-analyze verify` without a warning.
//!
//! Real processes of the built binary, unique feed names, temp folders;
//! every wait is a condition under a watchdog. Without `systemd-analyze`
//! the unit test writes `SKIP ...` and passes, except under CI (`CI` set).

mod common;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Proc, WATCHDOG};
use mdbus::wal::{ReadOptions, WalReader};

/// How long a stopped process may take to exit: far more than a clean
/// stop needs (a sync and joining two threads), on a loaded machine.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Every line received so far and until the pipe closes (the process
/// exited), under the watchdog.
fn rest_of(lines: &mpsc::Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + WATCHDOG;
    let mut out = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => out.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return out,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: the pipe stays open: {out:?}"),
        }
    }
}

/// `mdbus publish` with no duration: runs until stopped.
fn publish(feed: &str, dir: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_mdbus"))
            .args(["publish", "--feed", feed, "--synthetic", "--instruments", "4"])
            .args(["--rate", "20000", "--segment-bytes", "1048576", "--wal"])
            .arg(dir.join("wal"))
            .arg("--board-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Sends `signal` to the child.
fn signal(process: &Proc, signal: i32) {
    let pid = i32::try_from(process.0.id()).unwrap();
    // SAFETY: kill(2) has no memory effects; `pid` is our own child, not
    // yet reaped (its `Proc` reaps it), so the pid names no other process.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
}

/// The child's exit status, failing after [`STOP_DEADLINE`].
fn exit_status(process: &mut Proc, what: &str) -> ExitStatus {
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: {what} still running after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The seqs in the feed's WAL, in WAL order (empty before it exists).
fn wal_seqs(dir: &Path, feed: &str) -> Vec<u64> {
    let Ok(mut reader) = WalReader::open(dir.join("wal"), feed, ReadOptions::default()) else {
        return Vec::new();
    };
    let mut seqs = Vec::new();
    while let Ok(Some(r)) = reader.next_record() {
        seqs.push(r.record.header().seq);
    }
    seqs
}

/// Waits until the WAL holds a record past `seq`.
fn wait_for_wal_past(dir: &Path, feed: &str, seq: u64) {
    let deadline = Instant::now() + WATCHDOG;
    while wal_seqs(dir, feed).last().is_none_or(|&last| last <= seq) {
        assert!(
            Instant::now() < deadline,
            "watchdog: no record past seq {seq} in the WAL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a publisher with `sig`: exit 0, and the seq range of its summary
/// line (`... seq A..=B ...`).
fn stop_publisher(publisher: &mut Proc, sig: i32, what: &str) -> (u64, u64) {
    let stdout = common::lines_of(publisher.0.stdout.take().unwrap());
    let stderr = common::lines_of(publisher.0.stderr.take().unwrap());
    signal(publisher, sig);
    let status = exit_status(publisher, what);
    let (stdout, stderr) = (rest_of(&stdout), rest_of(&stderr));
    assert_eq!(status.code(), Some(0), "{what}: {status}\n{stdout:?}\n{stderr:?}");
    assert!(
        stderr.iter().any(|l| l.contains("stopping (SIGTERM or SIGINT)")),
        "{what}: {stderr:?}"
    );
    // A clean stop leaves nothing for the next start to repair.
    assert!(!stderr.iter().any(|l| l.contains("WAL recovery")), "{what}: {stderr:?}");
    let summary = stdout
        .iter()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("{what}: no summary in {stdout:?}"));
    let range = summary
        .split(": seq ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|range| range.split_once("..="))
        .unwrap_or_else(|| panic!("{what}: no seq range in {summary}"));
    (range.0.parse().unwrap(), range.1.parse().unwrap())
}

fn wal_verify(dir: &Path, feed: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_mdbus"))
        .args(["wal", "verify", "--feed", feed, "--wal"])
        .arg(dir.join("wal"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The seqs `mdbus replay` prints for the feed.
fn replayed_seqs(dir: &Path, feed: &str) -> Vec<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_mdbus"))
        .args(["replay", "--feed", feed, "--wal"])
        .arg(dir.join("wal"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).unwrap();
            record["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {l}"))
        })
        .collect()
}

#[test]
fn publish_stops_cleanly_on_sigterm_and_sigint_and_a_restart_continues_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("svc-pub-{}", std::process::id());

    let mut first = publish(&feed, dir.path());
    wait_for_wal_past(dir.path(), &feed, 2_000);
    let (from, to) = stop_publisher(&mut first, libc::SIGTERM, "mdbus publish (SIGTERM)");
    assert_eq!(from, 1);
    assert!(to > 2_000, "{to}");
    wal_verify(dir.path(), &feed);

    // Restarted on the same WAL: the next seq, then SIGINT (Ctrl-C).
    let mut second = publish(&feed, dir.path());
    wait_for_wal_past(dir.path(), &feed, to + 2_000);
    let (next, last) = stop_publisher(&mut second, libc::SIGINT, "mdbus publish (SIGINT)");
    assert_eq!(next, to + 1, "the restart continues the seq");
    wal_verify(dir.path(), &feed);

    // Dense across the restart: 1..=last, each once, in order.
    let seqs = replayed_seqs(dir.path(), &feed);
    assert_eq!(
        seqs.len() as u64,
        last,
        "first {:?}, last {:?}",
        seqs.first(),
        seqs.last()
    );
    assert!(
        seqs.iter().zip(1..).all(|(&seq, want)| seq == want),
        "a gap or a duplicate in 1..={last}"
    );
}

/// `GET /stats` of the gateway, as JSON.
#[cfg(feature = "iceoryx2")]
fn gateway_stats(addr: &str) -> serde_json::Value {
    let (head, body) = common::http_get(addr, "/stats");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Polls the gateway's `/stats` until `ready` holds, under the watchdog.
#[cfg(feature = "iceoryx2")]
fn gateway_stats_until(addr: &str, what: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let stats = gateway_stats(addr);
        if ready(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "watchdog: {what}: {stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(feature = "iceoryx2")]
#[test]
fn a_gateway_sees_a_publisher_restart_without_a_gap_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("svc-gw-{}", std::process::id());
    let mut first = publish(&feed, dir.path());
    wait_for_wal_past(dir.path(), &feed, 1_000);

    let mut gateway = Proc(
        Command::new(env!("CARGO_BIN_EXE_mdbus"))
            .args(["gateway", "--feed", &feed, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let gateway_out = common::lines_of(gateway.0.stdout.take().unwrap());
    let banner = gateway_out
        .recv_timeout(WATCHDOG)
        .expect("watchdog: no address from the gateway");
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_string();
    gateway_stats_until(&addr, "the gateway goes live", |s| {
        s["replay_done"] == true && s["last_seq"].as_u64().is_some_and(|seq| seq > 1_000)
    });

    // An upgrade: the publisher stopped and started again, the gateway on.
    let (_, to) = stop_publisher(&mut first, libc::SIGTERM, "mdbus publish (SIGTERM)");
    let mut second = publish(&feed, dir.path());
    let stats = gateway_stats_until(&addr, "the gateway follows the restarted publisher", |s| {
        s["last_seq"].as_u64().is_some_and(|seq| seq > to + 1_000)
    });
    assert_eq!(stats["gaps"], 0, "{stats}");
    assert!(stats["feed_error"].is_null(), "{stats}");

    signal(&gateway, libc::SIGTERM);
    let status = exit_status(&mut gateway, "mdbus gateway");
    let stderr = rest_of(&common::lines_of(gateway.0.stderr.take().unwrap()));
    assert_eq!(status.code(), Some(0), "mdbus gateway: {status}: {stderr:?}");
    let summary = rest_of(&gateway_out);
    assert!(
        summary.iter().any(|l| l.contains(&format!("records of feed {feed}"))),
        "{summary:?}"
    );
    stop_publisher(&mut second, libc::SIGTERM, "the restarted mdbus publish");
    wal_verify(dir.path(), &feed);
}

#[test]
fn the_systemd_units_verify_without_a_warning() {
    const TEST: &str = "service::the_systemd_units_verify_without_a_warning";
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|o| o.status.success()) {
        mdbus::types::test_support::skip(TEST, "no systemd-analyze (Debian package `systemd`)");
        return;
    }
    // `verify` checks that ExecStart= is executable: the units as shipped,
    // with the installed path replaced by the binary just built.
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "service") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/mdbus "), "{}", path.display());
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(
            &copy,
            text.replace("/usr/local/bin/mdbus ", &format!("{} ", env!("CARGO_BIN_EXE_mdbus"))),
        )
        .unwrap();
        paths.push(copy);
    }
    paths.sort();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["mdbus-gateway@.service", "mdbus-publish@.service"]);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only what is about our units counts: a host's own broken units may
    // be reported too.
    let ours: Vec<&str> = printed.lines().filter(|l| l.contains("mdbus")).collect();
    for line in printed.lines().filter(|l| !l.contains("mdbus")) {
        eprintln!("systemd-analyze (not about our units): {line}");
    }
    assert!(out.status.success() && ours.is_empty(), "{}\n{printed}", out.status);
}
