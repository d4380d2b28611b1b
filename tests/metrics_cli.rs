//! `mdbus publish --metrics` and the gateway's `/metrics` as real
//! processes over iceoryx2: scraped over plain HTTP/1.1 and parsed with
//! the Prometheus project's own OpenMetrics parser (Python
//! `prometheus_client`, installed by name into a venv under `target/`).
//!
//! The endpoints serve OpenMetrics text (`application/openmetrics-text`),
//! so the parser is `prometheus_client.openmetrics.parser`, which checks
//! the format strictly (`# EOF`, `_total` suffixes, cumulative buckets,
//! `_count` equal to the `+Inf` bucket). (Its classic-format parser,
//! `prometheus_client.parser`, reads an OpenMetrics counter as an untyped
//! `..._total` series: the wrong parser for this Content-Type.)
//!
//! Without python3, its venv or pip the test writes `SKIP ...` to the
//! terminal and passes, except under CI (`CI` set), where it fails.
#![cfg(feature = "iceoryx2")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Proc, WATCHDOG, http_get};
use futures_util::SinkExt;
use serde_json::Value;

const TEST: &str = "metrics_cli::publisher_and_gateway_metrics_parse_and_count";

/// Reads a parse of OpenMetrics text on stdin, writes the families as
/// JSON: `{name: {"type": .., "samples": [{"name", "labels", "value"}]}}`.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    families[f.name] = {
        "type": f.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
    }
print(json.dumps(families))
"#;

/// A venv with `prometheus_client` (made once, kept under target/), or a
/// SKIP when this machine cannot make one.
fn parser_python() -> Option<PathBuf> {
    common::python_venv(
        TEST,
        "metrics-venv",
        "prometheus_client.openmetrics.parser",
        "prometheus_client",
    )
}

/// The families of `text`, parsed by `prometheus_client`; panics with the
/// parser's message when the text is not valid OpenMetrics.
fn parse(python: &Path, text: &str) -> Value {
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Scrapes and parses `path`, checking status and Content-Type.
fn scrape(python: &Path, addr: &str, path: &str) -> Value {
    let (head, body) = http_get(addr, path);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    parse(python, &body)
}

/// The one sample of family `name` (labelled with `feed`).
fn value(families: &Value, name: &str, feed: &str) -> f64 {
    let samples = families[name]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {name} in {families}"));
    assert_eq!(samples.len(), 1, "{name}: {samples:?}");
    assert_eq!(samples[0]["labels"]["feed"], feed, "{name}");
    samples[0]["value"].as_f64().unwrap()
}

/// The `_count` of histogram family `name`.
fn histogram_count(families: &Value, name: &str) -> f64 {
    let count = format!("{name}_count");
    families[name]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {name} in {families}"))
        .iter()
        .find(|s| s["name"] == count.as_str())
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no {count} in {families}"))
}

/// The `host:port` after `http://` in the first line containing `marker`.
fn address(lines: &mpsc::Receiver<String>, marker: &str, deadline: Instant) -> String {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("watchdog: no line with {marker:?} ({e})"));
        if line.contains(marker) {
            return line
                .split("http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_else(|| panic!("no address in {line:?}"))
                .to_string();
        }
    }
}

/// Scrapes until `ready` holds for the parsed families (a condition under
/// the deadline, never a fixed sleep).
fn scrape_until(python: &Path, addr: &str, path: &str, deadline: Instant, ready: impl Fn(&Value) -> bool) -> Value {
    loop {
        let families = scrape(python, addr, path);
        if ready(&families) {
            return families;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: {path} never got there: {families}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn publisher_and_gateway_metrics_parse_and_count() {
    let Some(python) = parser_python() else { return };
    let mdbus = env!("CARGO_BIN_EXE_mdbus");
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let feed = format!("metrics-{}", std::process::id());
    let deadline = Instant::now() + WATCHDOG;

    let mut publisher = Proc(
        Command::new(mdbus)
            .args(["publish", "--feed", &feed, "--synthetic", "--instruments", "8"])
            // Far longer than the test: killed at the end.
            .args(["--rate", "5000", "--duration", "600", "--sync", "interval"])
            .args(["--metrics", "127.0.0.1:0", "--wal"])
            .arg(&wal)
            .arg("--board-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let publisher_lines = common::lines_of(publisher.0.stderr.take().unwrap());
    let publisher_addr = address(&publisher_lines, "metrics of feed", deadline);

    // Published records, every instrument seen, a timed sync round.
    let families = scrape_until(&python, &publisher_addr, "/metrics", deadline, |f| {
        value(f, "mdbus_records_published", &feed) > 0.0
            && value(f, "mdbus_publisher_instruments", &feed) == 8.0
            && histogram_count(f, "mdbus_wal_sync_seconds") > 0.0
    });
    assert_eq!(families["mdbus_records_published"]["type"], "counter");
    assert_eq!(families["mdbus_wal_bytes"]["type"], "counter");
    assert_eq!(families["mdbus_publisher_last_seq"]["type"], "gauge");
    let published = value(&families, "mdbus_records_published", &feed);
    assert!(value(&families, "mdbus_wal_bytes", &feed) > 0.0);
    assert!(value(&families, "mdbus_publisher_last_seq", &feed) >= 1.0);
    assert_eq!(value(&families, "mdbus_wal_segments", &feed), 1.0);
    // The sync histogram: cumulative buckets up to +Inf, which is _count.
    let sync = &families["mdbus_wal_sync_seconds"];
    assert_eq!(sync["type"], "histogram");
    let samples = sync["samples"].as_array().unwrap();
    let sample = |suffix: &str| -> Vec<&Value> {
        let name = format!("mdbus_wal_sync_seconds{suffix}");
        samples.iter().filter(|s| s["name"] == name.as_str()).collect()
    };
    let count = sample("_count")[0]["value"].as_f64().unwrap();
    assert!(count > 0.0);
    assert!(sample("_sum")[0]["value"].as_f64().unwrap() > 0.0);
    let buckets: Vec<(f64, f64)> = sample("_bucket")
        .iter()
        .map(|s| {
            assert_eq!(s["labels"]["feed"], feed.as_str());
            let le = s["labels"]["le"].as_str().unwrap();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (bound, s["value"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(buckets.len(), 17, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "bounds ascending, counts cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, count)));

    // The gateway: /metrics behind its token, clients 1 while a WebSocket
    // client is connected.
    let mut gateway = Proc(
        Command::new(mdbus)
            .args(["gateway", "--feed", &feed, "--listen", "127.0.0.1:0", "--token", "t0k"])
            .args(["--duration", "600", "--wal"])
            .arg(&wal)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let gateway_lines = common::lines_of(gateway.0.stdout.take().unwrap());
    let gateway_addr = address(&gateway_lines, "(depth page)", deadline);
    let (head, _) = http_get(&gateway_addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let families = scrape_until(&python, &gateway_addr, "/metrics?token=t0k", deadline, |f| {
        value(f, "mdbus_gateway_records", &feed) > 0.0
    });
    assert_eq!(value(&families, "mdbus_gateway_clients", &feed), 0.0);
    assert_eq!(families["mdbus_subscriber_holes"]["type"], "counter");
    assert_eq!(
        value(&families, "mdbus_subscriber_holes", &feed),
        0.0,
        "a live feed has no holes"
    );
    assert_eq!(families["mdbus_gateway_conflated"]["type"], "counter");
    assert_eq!(families["mdbus_gateway_send_timeouts"]["type"], "counter");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ws = rt.block_on(async {
        let (mut ws, _) = tokio::time::timeout(
            WATCHDOG,
            tokio_tungstenite::connect_async(format!("ws://{gateway_addr}/ws?token=t0k")),
        )
        .await
        .expect("watchdog: no WebSocket connection")
        .unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"type":"subscribe","channels":["tick"],"instruments":["*"]}"#,
        ))
        .await
        .unwrap();
        ws
    });
    let families = scrape_until(&python, &gateway_addr, "/metrics?token=t0k", deadline, |f| {
        value(f, "mdbus_gateway_clients", &feed) == 1.0
    });
    let depth = families["mdbus_gateway_client_queue_depth"]["samples"]
        .as_array()
        .unwrap();
    assert_eq!(depth.len(), 1, "one client, one queue: {depth:?}");
    assert_eq!(depth[0]["labels"]["feed"], feed.as_str());
    assert!(depth[0]["labels"]["client"].is_string());
    rt.block_on(async { ws.close(None).await }).unwrap();
    drop(ws);
    scrape_until(&python, &gateway_addr, "/metrics?token=t0k", deadline, |f| {
        value(f, "mdbus_gateway_clients", &feed) == 0.0
    });
    drop(gateway);

    // What was scraped as published is in the WAL (the publisher counts a
    // record once it is appended; SIGKILL keeps what the page cache has).
    publisher.kill_9();
    let frames: u64 = mdbus_wal::inspect(&wal, &feed).unwrap().iter().map(|s| s.frames).sum();
    assert!(published <= frames as f64, "scraped {published}, WAL {frames}");
}
