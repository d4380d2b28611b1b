//! `mdbus publish` and `mdbus gateway` as real processes over iceoryx2: a
//! WebSocket client gets a snapshot then live batches, `/stats` counts,
//! and the token is enforced.
#![cfg(feature = "iceoryx2")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const WATCHDOG: Duration = Duration::from_secs(60);

fn mdbus_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mdbus"))
}

/// Kills the child when dropped (a failed assertion leaves nothing behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_with_watchdog(child: &mut Reaped) -> std::process::ExitStatus {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "watchdog: process still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn gateway_process_serves_a_published_feed_over_websocket() {
    let mdbus = mdbus_binary();
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("gwcli-{}", std::process::id());
    let wal = dir.path().join("wal");
    let publisher = Reaped(
        Command::new(&mdbus)
            .args(["publish", "--feed", &feed, "--synthetic", "--instruments", "8"])
            // Far longer than the test: the guard kills it at the end, so a
            // slow machine never sees the feed end before the client reads.
            .args(["--rate", "5000", "--duration", "600", "--wal"])
            .arg(&wal)
            .arg("--board-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    serves_over_websocket(&feed, publisher);
}

/// A recorded feed played again (`mdbus play`, issue 13) is served like a
/// live one: the same client, the same checks.
#[test]
fn gateway_process_serves_a_played_recording_over_websocket() {
    let mdbus = mdbus_binary();
    let dir = tempfile::tempdir().unwrap();
    let recorded = format!("gwrec-{}", std::process::id());
    let played = format!("gwplay-{}", std::process::id());
    let wal = dir.path().join("wal");
    let mut record = Reaped(
        Command::new(&mdbus)
            .args(["publish", "--feed", &recorded, "--synthetic", "--instruments", "8"])
            .args(["--rate", "5000", "--duration", "1", "--no-board", "--wal"])
            .arg(&wal)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_with_watchdog(&mut record).success(), "recording failed");
    let player = Reaped(
        Command::new(&mdbus)
            .args(["play", "--feed", &recorded, "--as", &played, "--wal"])
            .arg(&wal)
            // Far longer than the test (the guard kills it): 20 s a pass.
            .args(["--speed", "0.05", "--loop", "30", "--board-dir"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    serves_over_websocket(&played, player);
}

/// Starts `mdbus gateway` on `feed` (published by `source`, killed at the
/// end) and checks what a WebSocket client gets: a snapshot, then batches
/// above it in seq order; `/stats`; the token; a run to `--duration`.
fn serves_over_websocket(feed: &str, source: Reaped) {
    let mdbus = mdbus_binary();
    let feed = feed.to_string();
    let mut gateway = Reaped(
        Command::new(&mdbus)
            .args(["gateway", "--feed", &feed, "--listen", "127.0.0.1:0", "--token", "t0k"])
            .args(["--duration", "600"])
            // The publisher (or player) starting beside it may take longer
            // than the default 10 s on a loaded machine.
            .args(["--wait-for-publisher", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(gateway.0.stdout.take().unwrap());
    let mut banner = String::new();
    // The banner comes once the feed is open (the publisher creates it).
    let reader = std::thread::spawn(move || {
        stdout.read_line(&mut banner).unwrap();
        (banner, stdout)
    });
    let deadline = Instant::now() + WATCHDOG;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "watchdog: no banner from mdbus gateway");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (banner, stdout) = reader.join().unwrap();
    if banner.is_empty() {
        let mut stderr = String::new();
        gateway.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        panic!("mdbus gateway printed no banner: {stderr}");
    }
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_string();

    assert!(http_get(&addr, "/stats").starts_with("HTTP/1.1 401"));
    // The gateway may have started before the publisher's first records:
    // wait until it knows the instruments.
    loop {
        let stats = http_get(&addr, "/stats?token=t0k");
        assert!(stats.starts_with("HTTP/1.1 200"), "{stats}");
        if stats.contains(r#""instruments":8"#) {
            break;
        }
        assert!(Instant::now() < deadline, "watchdog: {stats}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (snapshot, events) = rt.block_on(async {
        let (mut ws, _) = tokio::time::timeout(
            WATCHDOG,
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token=t0k")),
        )
        .await
        .expect("watchdog: no WebSocket connection within the watchdog")
        .unwrap_or_else(|e| panic!("WebSocket connection to {addr} refused: {e}"));
        ws.send(Message::text(
            r#"{"type":"subscribe","channels":["tick","orderbook"],"instruments":["IF2501"]}"#,
        ))
        .await
        .unwrap_or_else(|e| panic!("sending the subscription failed: {e}"));
        let mut received = 0usize;
        let mut next = async || -> serde_json::Value {
            loop {
                let message = match tokio::time::timeout(WATCHDOG, ws.next()).await {
                    Err(_) => panic!("watchdog: no message from the gateway after {received} messages"),
                    Ok(None) => panic!("the gateway closed the WebSocket after {received} messages"),
                    Ok(Some(Err(e))) => panic!("WebSocket error after {received} messages: {e}"),
                    Ok(Some(Ok(message))) => message,
                };
                if let Message::Text(text) = message {
                    received += 1;
                    return serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text.as_str()));
                }
            }
        };
        let snapshot = next().await;
        let mut events = Vec::new();
        while events.len() < 50 {
            let message = next().await;
            if message["type"] == "batch" {
                let batch = message["events"]
                    .as_array()
                    .unwrap_or_else(|| panic!("a batch without events: {message}"));
                events.extend(batch.iter().cloned());
            }
        }
        (snapshot, events)
    });
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["instrument"], "IF2501");
    assert!(snapshot["book"]["bids"].is_array(), "{snapshot}");
    // Nothing at or below what the snapshot carried (per channel), the
    // first batch event included.
    let floor_tick = snapshot["tick"]["seq"].as_u64().unwrap_or(0);
    let floor_book = snapshot["book"]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("a snapshot book without a seq: {snapshot}"));
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("an event without a seq: {e}"))
        })
        .collect();
    for (event, &seq) in events.iter().zip(&seqs) {
        let floor = if event["kind"] == "tick" {
            floor_tick
        } else {
            floor_book
        };
        assert!(
            seq > floor,
            "event {seq} at or below the snapshot's seq {floor}: {event}"
        );
    }
    assert!(
        seqs[0] > floor_tick.min(floor_book),
        "first batch seq {} vs snapshot {snapshot}",
        seqs[0]
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(events.iter().all(|e| e["instrument"] == "IF2501"));

    // /stats counts what it served.
    let stats = http_get(&addr, "/stats?token=t0k");
    let body = stats.split("\r\n\r\n").nth(1).unwrap_or_default();
    let stats_json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("/stats is not JSON ({e}): {stats}"));
    assert!(stats_json["records"].as_u64().is_some_and(|r| r > 0), "{stats_json}");

    // A gateway run to its end (--duration) prints its summary and exits 0,
    // whatever the feed did meanwhile.
    let mut short = Reaped(
        Command::new(&mdbus)
            .args(["gateway", "--feed", &feed, "--listen", "127.0.0.1:0", "--duration", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_with_watchdog(&mut short);
    let mut summary = String::new();
    short.0.stdout.take().unwrap().read_to_string(&mut summary).unwrap();
    let mut stderr = String::new();
    short.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{summary}\n{stderr}");
    assert!(summary.contains("records of feed"), "{summary}\n{stderr}");
    // The long-running gateway and publisher are killed by their guards.
    drop(gateway);
    drop(stdout);
    drop(source);
}

#[test]
fn gateway_bad_arguments_exit_2_naming_what_is_wrong() {
    let mdbus = mdbus_binary();
    let dir = tempfile::tempdir().unwrap();
    for (args, names) in [
        (vec!["--feed", "f", "--listen", "nope"], "--listen"),
        (vec!["--feed", "f", "--token", "a b"], "token"),
        (vec!["--feed", "f", "--queue", "0"], "--queue"),
        (
            vec!["--feed", "f", "--wal", dir.path().to_str().unwrap()],
            "no WAL of feed f",
        ),
    ] {
        let out = Command::new(&mdbus).arg("gateway").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
}
