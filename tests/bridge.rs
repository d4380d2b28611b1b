//! `mdbus bridge` across processes on loopback (issue 15): a feed
//! published by `mdbus publish`, put on Zenoh by `mdbus bridge out` and
//! republished by `mdbus bridge in --as G` must leave a replica WAL with
//! the source's records (dense seq, same bytes; a million records, also
//! compared by `mdbus replay`), also when either bridge
//! is killed with SIGKILL and restarted, and a receiver that joins late
//! starts at the source's newest snapshot set; `mdbus bridge status` shows
//! what the running bridges report. Every wait is a condition under a
//! watchdog; children are killed on drop. Two hosts (network namespaces,
//! a link cut, a receiver stopped with SIGSTOP): tests/bridge_hosts.rs.
#![cfg(feature = "iceoryx2")]

#[path = "common/bridge.rs"]
mod bridge_support;
mod common;

use std::path::PathBuf;

use mdbus::board::BoardReader;

use bridge_support::*;

/// The loopback endpoint of a bridge on `port`.
fn local(port: u16) -> String {
    format!("tcp/127.0.0.1:{port}")
}

/// The test on loopback: a million records across, dense seq and
/// identical bytes, `mdbus replay` of both WALs the same (the veth
/// variant: tests/bridge_hosts.rs).
#[test]
fn loopback_a_million_records_have_dense_seq_and_identical_bytes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("lo");
    let count = a_million_across(dir, &feed, &replica(&feed), &local(free_port()), None, None);
    println!("loopback: {count} records across, equal to the source");
}

#[test]
fn bridges_killed_with_sigkill_and_restarted_leave_no_gap_or_duplicate() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("k9");
    let port = free_port();
    let mut receiver = bridge_in(None, dir, &feed, &replica(&feed), &local(port), 1);
    let mut publisher = publish(None, dir, &feed, "50000", "10", "67108864");
    let mut sender = bridge_out(None, dir, &feed, &local(port), 1);
    let mut copy = Tail::new(&replica_root(dir), &replica(&feed));
    let mut source = Tail::new(&dir.join("src"), &feed);
    // Mid-stream: the replica has records and the source goes on (or, on
    // a slow machine, has ended: the restart must catch up all the same).
    wait_for("the replica gets records", dir, || copy.last_seq() > 20_000);
    receiver.kill_9();
    let at_kill = copy.last_seq();
    wait_for("the source moves on", dir, || {
        source.last_seq() > at_kill + 20_000 || exited(&mut publisher)
    });
    receiver = bridge_in(None, dir, &feed, &replica(&feed), &local(port), 2);
    wait_for("the restarted receiver moves on", dir, || {
        copy.last_seq() > at_kill + 10_000
    });
    sender.kill_9();
    let at_kill = source.last_seq();
    wait_for("the source moves on", dir, || {
        source.last_seq() > at_kill + 20_000 || exited(&mut publisher)
    });
    sender = bridge_out(None, dir, &feed, &local(port), 2);
    publisher.wait_ok("mdbus publish");
    let end = source.last_seq();
    wait_for("the replica reaches the source's last seq", dir, || {
        copy.last_seq() >= end
    });
    stop(&mut receiver, "bridge in");
    stop(&mut sender, "bridge out");
    let (first, count) = assert_replica_equals_source(dir, &feed, &replica(&feed));
    assert_eq!(first, 1, "the receiver started with the feed");
    println!("replica: seq 1..={count} equal to the source after both kills");
}

#[test]
fn a_late_receiver_starts_at_the_newest_snapshot_set_and_ends_with_the_source_board() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("late");
    let port = free_port();
    // Small segments: several snapshot sets before the receiver joins.
    let mut publisher = publish(None, dir, &feed, "50000", "2", "1048576");
    let mut sender = bridge_out(None, dir, &feed, &local(port), 1);
    publisher.wait_ok("mdbus publish");
    let src_root = dir.join("src");
    let point = mdbus::wal::recovery_point(&src_root, &feed).unwrap().unwrap();
    assert!(point.start_seq() > 1, "the source has several segments");
    let end = last_seq(&src_root, &feed);
    let mut receiver = bridge_in(None, dir, &feed, &replica(&feed), &local(port), 1);
    let mut copy = Tail::new(&replica_root(dir), &replica(&feed));
    wait_for("the late replica reaches the source's last seq", dir, || {
        copy.last_seq() >= end
    });
    stop(&mut receiver, "bridge in");
    stop(&mut sender, "bridge out");
    let (first, _) = assert_replica_equals_source(dir, &feed, &replica(&feed));
    assert_eq!(
        first,
        point.start_seq(),
        "the replica starts at the newest snapshot set"
    );
    let source = BoardReader::open(&dir.join("board-src"), &feed).unwrap();
    let copy = BoardReader::open(&dir.join("board-dst"), &replica(&feed)).unwrap();
    let instruments = source.instruments();
    assert!(!instruments.is_empty());
    for id in instruments {
        assert_eq!(copy.tick(&id), source.tick(&id), "tick of {id}");
        assert_eq!(copy.book(&id), source.book(&id), "book of {id}");
    }
}

/// `bridge out --linger-us`: each Zenoh message waits for more records
/// after its first, so a message that is not full spans at least the
/// linger: no more of them than the bridge's run time over the linger
/// (plus the full ones, at most the records' bytes over a message's). The
/// records still arrive whole: the replica equals the source.
#[test]
fn a_linger_puts_fewer_larger_messages_and_the_replica_is_whole() {
    const LINGER_MS: u64 = 20;
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("lg");
    let port = free_port();
    let mut receiver = bridge_in(None, dir, &feed, &replica(&feed), &local(port), 1);
    let mut publisher = publish(None, dir, &feed, "50000", "2", "67108864");
    let started = std::time::Instant::now();
    let linger_us = (LINGER_MS * 1000).to_string();
    let mut sender = bridge_out_with(None, dir, &feed, &local(port), 1, &["--linger-us", &linger_us]);
    publisher.wait_ok("mdbus publish");
    let end = last_seq(&dir.join("src"), &feed);
    let mut copy = Tail::new(&replica_root(dir), &replica(&feed));
    wait_for("the replica reaches the source's last seq", dir, || {
        copy.last_seq() >= end
    });
    stop(&mut sender, "bridge out");
    let ran = started.elapsed();
    stop(&mut receiver, "bridge in");
    let (_, count) = assert_replica_equals_source(dir, &feed, &replica(&feed));
    let path = dir.join(format!("mdbus.{feed}.bridge-out.json"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let (records, messages) = (json["records"].as_u64().unwrap(), json["messages"].as_u64().unwrap());
    assert!(records >= count as u64, "{json}: {count} records in the replica");
    let bytes = record_bytes(&dir.join("src"), &feed);
    let full = bytes / (mdbus_bridge::out::MESSAGE_BYTES - mdbus::types::SAMPLE_SIZE) as u64;
    let lingered = ran.as_millis() as u64 / LINGER_MS;
    assert!(
        messages <= lingered + full + 2,
        "{messages} messages for {records} records in {ran:?}: more than {lingered} lingering and {full} full ones"
    );
    println!("linger {LINGER_MS} ms: {records} records ({bytes} bytes) in {messages} messages ({ran:?})");
}

/// `field` of the `side` ("in" or "out") of a status JSON.
fn field<'a>(json: &'a serde_json::Value, side: &str, field: &str) -> &'a serde_json::Value {
    &json[side][field]
}

#[test]
fn bridge_status_shows_link_state_lag_and_reconnects_of_running_bridges() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("st");
    let copy_feed = replica(&feed);
    let port = free_port();
    let (ok, json) = status(dir, &copy_feed);
    assert!(!ok && json["in"].is_null() && json["out"].is_null(), "{json}");
    let mut receiver = bridge_in(None, dir, &feed, &copy_feed, &local(port), 1);
    let mut publisher = publish(None, dir, &feed, "10000", "300", "67108864");
    let mut sender = bridge_out(None, dir, &feed, &local(port), 1);
    let mut json = serde_json::Value::Null;
    wait_for("bridge status: in running, link up, records", dir, || {
        let (ok, now) = status(dir, &copy_feed);
        json = now;
        ok && field(&json, "in", "running") == true
            && field(&json, "in", "link_up") == true
            && field(&json, "in", "records").as_u64() > Some(1000)
    });
    assert_eq!(field(&json, "in", "feed").as_str(), Some(feed.as_str()));
    assert_eq!(field(&json, "in", "reconnects"), 0);
    let (last, source) = (
        field(&json, "in", "last_seq").as_u64().unwrap(),
        field(&json, "in", "source_seq").as_u64().unwrap(),
    );
    assert_eq!(field(&json, "in", "lag_seq").as_u64(), Some(source - last), "{json}");
    assert!(field(&json, "in", "last_record_age_ns").as_i64() > Some(0), "{json}");
    wait_for("bridge status: out running with records", dir, || {
        let (ok, json) = status(dir, &feed);
        ok && field(&json, "out", "running") == true && field(&json, "out", "records").as_u64() > Some(0)
    });

    sender.kill_9();
    wait_for("bridge status: the link is down", dir, || {
        let (_, json) = status(dir, &copy_feed);
        field(&json, "in", "link_up") == false && field(&json, "in", "running") == true
    });
    let (ok, json) = status(dir, &feed);
    assert!(!ok, "a killed bridge out is not running: {json}");
    assert_eq!(field(&json, "out", "running"), false);

    sender = bridge_out(None, dir, &feed, &local(port), 2);
    let mut copy = Tail::new(&replica_root(dir), &copy_feed);
    let before = copy.last_seq();
    wait_for(
        "bridge status: link up again, one reconnect, records move on",
        dir,
        || {
            let (_, json) = status(dir, &copy_feed);
            field(&json, "in", "link_up") == true
                && field(&json, "in", "reconnects") == 1
                && field(&json, "in", "last_seq").as_u64() > Some(before + 1000)
        },
    );

    stop(&mut receiver, "bridge in");
    let (ok, json) = status(dir, &copy_feed);
    assert!(!ok, "a stopped bridge in is not running: {json}");
    assert!(
        field(&json, "in", "running") == false && field(&json, "in", "stopped") == true,
        "{json}"
    );
    // Its last counters stay: the replica's WAL ends where the status says.
    assert_eq!(field(&json, "in", "last_seq").as_u64(), Some(copy.last_seq()), "{json}");
    stop(&mut sender, "bridge out");
    publisher.kill_9();
    let human = bridge_support::mdbus(None)
        .args(["bridge", "status", "--feed", &copy_feed, "--status-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.starts_with("stopped (pid ") && text.contains("reconnects"),
        "{text}"
    );
}

/// A venv with the `eclipse-zenoh` package (made once, kept under
/// target/), or a SKIP (a failure under CI) when this machine cannot make
/// one.
fn zenoh_python(test: &str) -> Option<PathBuf> {
    common::python_venv(test, "zenoh-venv", "zenoh", "eclipse-zenoh")
}

#[test]
fn a_python_zenoh_client_decodes_the_stream_with_dense_seq() {
    const TEST: &str = "bridge::a_python_zenoh_client_decodes_the_stream_with_dense_seq";
    let _serial = serial();
    let Some(python) = zenoh_python(TEST) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("py");
    let port = free_port();
    let _publisher = publish(None, dir, &feed, "10000", "300", "67108864");
    let _sender = bridge_out(None, dir, &feed, &local(port), 1);
    // The example gives up after its own --timeout (the watchdog); the
    // Proc guard kills it if the test fails first.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/zenoh_feed.py");
    let timeout = common::WATCHDOG.as_secs().to_string();
    let log = std::fs::File::create(dir.join("python.log")).unwrap();
    let child = std::process::Command::new(&python)
        .args([example, "--connect", &local(port), "--feed", &feed])
        .args(["--count", "20000", "--print", "20", "--timeout", &timeout])
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = std::fs::read_to_string(dir.join("python.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "zenoh_feed.py: {}\n{stdout}\n{stderr}",
        out.status
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let (n, first, last) = (
        summary["records"].as_u64().unwrap(),
        summary["first_seq"].as_u64().unwrap(),
        summary["last_seq"].as_u64().unwrap(),
    );
    assert_eq!(summary["holes"], 0, "{summary}");
    assert_eq!(summary["bad_messages"], 0, "{summary}");
    assert!(n >= 20_000, "{summary}");
    assert_eq!(last - first + 1, n, "dense seq: {summary}");
    // The ticks it decoded are the source's, field by field.
    let ticks = summary["ticks"].as_array().unwrap();
    assert_eq!(ticks.len(), 20, "{summary}");
    let source = records(&dir.join("src"), &feed);
    for decoded in ticks {
        let seq = decoded["seq"].as_u64().unwrap();
        let (_, bytes) = source
            .iter()
            .find(|(s, _)| *s == seq)
            .expect("the tick's seq is in the WAL");
        let mdbus::types::RecordRef::Tick(tick) = mdbus::types::RecordRef::from_bytes(bytes).unwrap() else {
            panic!("seq {seq} is not a tick in the WAL");
        };
        assert_eq!(
            decoded["instrument"].as_str(),
            Some(tick.instrument.as_str()),
            "seq {seq}"
        );
        assert_eq!(decoded["last_px_raw"].as_i64(), Some(tick.last_px.0), "seq {seq}");
        assert_eq!(decoded["last_qty"].as_i64(), Some(tick.last_qty), "seq {seq}");
        assert_eq!(decoded["volume"].as_i64(), Some(tick.volume), "seq {seq}");
        assert_eq!(decoded["ts_event"].as_i64(), Some(tick.header.ts_event), "seq {seq}");
    }
    println!(
        "python eclipse-zenoh: {n} records, seq {first}..={last}, {}",
        summary["kinds"]
    );
}
