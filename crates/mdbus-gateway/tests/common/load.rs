//! A bounded load run on loopback: a paced in-process publisher, the
//! gateway, and N WebSocket clients subscribed to every instrument, all in
//! one process. Shared by the short CI test (`tests/load.rs`) and the
//! example that reports the numbers (`examples/load.rs`).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use mdbus_gateway::{Gateway, GatewayConfig};
use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_subscriber::{Subscriber, SubscriberConfig};
use mdbus_transport::InProcBus;
use mdbus_types::WalLocation;
use mdbus_types::clock::now_ns;
use mdbus_types::{Kind, MdSample};
use tokio_tungstenite::tungstenite::Message;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub clients: usize,
    pub instruments: usize,
    /// Records per second the publisher sends (all kinds).
    pub rate: u64,
    pub duration: Duration,
    /// Per-client queue capacity of the gateway.
    pub queue_capacity: usize,
    /// Gateway runtime threads.
    pub gateway_threads: usize,
    /// Client runtime threads.
    pub client_threads: usize,
}

impl Default for LoadConfig {
    fn default() -> LoadConfig {
        LoadConfig {
            clients: 100,
            instruments: 16,
            rate: 10_000,
            duration: Duration::from_secs(5),
            queue_capacity: GatewayConfig::default().queue_capacity,
            gateway_threads: 1,
            client_threads: 1,
        }
    }
}

/// What one client saw. Latencies are per batch, of its oldest event
/// (the batch's worst; the gateway's `/stats` measures the same way).
#[derive(Debug)]
pub struct ClientReport {
    pub events: u64,
    pub batches: u64,
    pub conflated_batches: u64,
    pub max_seq: u64,
    /// Oldest `ts_publish` of a batch -> the client's receive (ns).
    pub latency: Histogram<u64>,
    /// Oldest `ts_publish` of a batch -> its `ts_send`, stamped by the
    /// gateway as it builds the frame, just before the write (ns).
    pub gateway_side: Histogram<u64>,
    /// `ts_send` -> the client's receive: the socket, and the client's
    /// own wait for a core (ns).
    pub transit: Histogram<u64>,
    /// Why the client stopped before the target seq, if the connection
    /// was closed or failed.
    pub closed: Option<String>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct LoadReport {
    pub config: LoadConfig,
    pub published: u64,
    pub publish_secs: f64,
    pub last_seq: u64,
    /// Seq every client had to reach (the final tick).
    pub target_seq: u64,
    pub drain_secs: f64,
    pub clients: Vec<ClientReport>,
    /// Every batch of every client: oldest ts_publish -> client receive (ns).
    pub latency: Histogram<u64>,
    /// Every batch of every client: oldest ts_publish -> ts_send (ns).
    pub gateway_side: Histogram<u64>,
    /// Every batch of every client: ts_send -> client receive (ns).
    pub transit: Histogram<u64>,
    /// Per client, from the gateway: (conflated, conflations, gateway p50, gateway p99).
    pub gateway: Vec<(u64, u64, u64, u64)>,
    pub gateway_records: u64,
    /// CPU time (user + system) of the gateway's threads (`mdbus-gateway-*`)
    /// from the publisher's start to the clients' end, in clock ticks;
    /// `None` where /proc cannot tell. Unlike latency it hardly depends on
    /// what else runs on the machine.
    pub gateway_cpu_ticks: Option<u64>,
}

/// CPU time so far (user + system, clock ticks) of this process's threads
/// whose name starts with `prefix`, from /proc (Linux).
fn threads_cpu_ticks(prefix: &str) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // After the ")" closing the name: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        total += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// The integer that starts at `at` in `bytes` (0 if none).
fn number_at(bytes: &[u8], at: usize) -> i64 {
    let mut value = 0i64;
    for &b in bytes.get(at..).unwrap_or_default() {
        if !b.is_ascii_digit() {
            break;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    value
}

/// What a client reads of a batch, without parsing it: the clients share
/// the cores with the gateway, so they look at a few fields found by
/// substring search (SIMD) and never parse an event.
struct BatchScan {
    head: &'static [u8],
    ts_publish: memchr::memmem::Finder<'static>,
    last_seq: memchr::memmem::FinderRev<'static>,
}

/// The fields of one batch a client uses.
#[derive(Debug, PartialEq)]
struct BatchFields {
    ts_send: i64,
    /// The first event's `ts_publish` (events are in seq order, so the
    /// oldest); `None` when the batch holds only gaps.
    oldest_ts_publish: Option<i64>,
    /// The last record's seq (the highest).
    last_seq: Option<u64>,
    /// Records in the batch (gaps not counted).
    records: u64,
    conflated: bool,
}

impl BatchScan {
    fn new() -> BatchScan {
        BatchScan {
            head: br#"{"type":"batch","ts_send":"#,
            ts_publish: memchr::memmem::Finder::new(br#""ts_publish":"#),
            last_seq: memchr::memmem::FinderRev::new(br#"{"seq":"#),
        }
    }

    /// `None`: not a batch.
    fn scan(&self, text: &str) -> Option<BatchFields> {
        let bytes = text.as_bytes();
        if !bytes.starts_with(self.head) {
            return None;
        }
        let ts_send = number_at(bytes, self.head.len());
        let key = self.ts_publish.needle().len();
        let oldest_ts_publish = self.ts_publish.find(bytes).map(|at| number_at(bytes, at + key));
        let last_seq = self
            .last_seq
            .rfind(bytes)
            .map(|at| number_at(bytes, at + self.last_seq.needle().len()) as u64);
        Some(BatchFields {
            ts_send,
            oldest_ts_publish,
            last_seq,
            records: self.ts_publish.find_iter(bytes).count() as u64,
            // In the head, before the first event.
            conflated: memchr::memmem::find(&bytes[..bytes.len().min(96)], br#""conflated":true"#).is_some(),
        })
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One client's loop; the connection comes back open, so the gateway's
/// counts for it can still be read.
async fn client(url: String, target: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> (ClientReport, Ws) {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
        .await
        .expect("connect");
    let batch_scan = BatchScan::new();
    ws.send(Message::text(r#"{"type":"subscribe","instruments":["*"]}"#))
        .await
        .expect("subscribe");
    let mut report = ClientReport {
        events: 0,
        batches: 0,
        conflated_batches: 0,
        max_seq: 0,
        latency: Histogram::new(3).expect("3 significant digits"),
        gateway_side: Histogram::new(3).expect("3 significant digits"),
        transit: Histogram::new(3).expect("3 significant digits"),
        closed: None,
    };
    while report.max_seq < target.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        let message = match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            // Nothing yet: look at the target and the stop flag again.
            Err(_) => continue,
            Ok(Some(Ok(message))) => message,
            // A closed or failed connection yields the same forever: stop.
            Ok(None) => {
                report.closed = Some("the gateway closed the connection".into());
                break;
            }
            Ok(Some(Err(e))) => {
                report.closed = Some(format!("websocket error: {e}"));
                break;
            }
        };
        let received = now_ns();
        let Message::Text(text) = message else { continue };
        let Some(batch) = batch_scan.scan(text.as_str()) else {
            continue;
        };
        report.batches += 1;
        report.conflated_batches += u64::from(batch.conflated);
        report.events += batch.records;
        let ns = |from: i64, to: i64| to.saturating_sub(from).max(0) as u64;
        let _ = report.transit.record(ns(batch.ts_send, received));
        if let Some(oldest) = batch.oldest_ts_publish {
            let _ = report.latency.record(ns(oldest, received));
            let _ = report.gateway_side.record(ns(oldest, batch.ts_send));
        }
        if let Some(seq) = batch.last_seq {
            report.max_seq = report.max_seq.max(seq);
        }
    }
    (report, ws)
}

/// Runs the load and reports; bounded by `duration` plus at most 30 s of
/// draining.
pub fn run(config: LoadConfig) -> LoadReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let feed_name = format!("gw-load-{}", std::process::id());
    let bus = InProcBus::new(1 << 16);
    let mut feed_config = FeedConfig::new(&feed_name);
    feed_config.wal_root = Some(dir.path().to_path_buf());
    feed_config.wal = mdbus_wal::WalOptions::default().segment_bytes(32 << 20);
    let mut publisher = FeedPublisher::open(feed_config, bus.sender()).expect("publisher");
    let mut feed = SyntheticFeed::new(config.instruments, 11).expect("synthetic feed");
    let mut batch: Vec<MdSample> = Vec::with_capacity(300);
    // Every instrument's first snapshot before the clients come.
    for _ in 0..config.instruments {
        batch.clear();
        feed.next_event(now_ns(), &mut batch);
        publisher.publish_batch(&mut batch).expect("publish");
    }

    let mut gateway_config = GatewayConfig::default();
    gateway_config.listen = "127.0.0.1:0".parse().unwrap();
    gateway_config.queue_capacity = config.queue_capacity;
    gateway_config.worker_threads = config.gateway_threads;
    let receiver = bus.subscribe();
    let wal_dir = dir.path().to_path_buf();
    let feed_for_gateway = feed_name.clone();
    let gateway = Gateway::start(gateway_config, move || {
        Ok(Subscriber::new(
            receiver,
            SubscriberConfig::default().wal(WalLocation::try_new(wal_dir, &feed_for_gateway).unwrap()),
        )?)
    })
    .expect("gateway");
    let url = format!("ws://{}/ws", gateway.local_addr());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.client_threads)
        .enable_all()
        .build()
        .expect("client runtime");
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..config.clients)
        .map(|_| rt.spawn(client(url.clone(), Arc::clone(&target), Arc::clone(&stop))))
        .collect();
    // Every client subscribed before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway.stats().clients.iter().filter(|c| c.subscriptions > 0).count() < config.clients {
        assert!(
            Instant::now() < deadline,
            "clients did not all subscribe: {:?}",
            gateway.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Paced publishing: records due by now, in batches of at most 256.
    let cpu_at_start = threads_cpu_ticks("mdbus-gateway");
    let start = Instant::now();
    let mut published = 0u64;
    while start.elapsed() < config.duration {
        publisher.poll().expect("poll");
        let due = (config.rate as f64 * start.elapsed().as_secs_f64()) as u64;
        if published >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let want = (due - published).min(256) as usize;
        batch.clear();
        let ts = now_ns();
        while batch.len() < want {
            feed.next_event(ts, &mut batch);
        }
        published += batch.len() as u64;
        publisher.publish_batch(&mut batch).expect("publish");
    }
    let publish_secs = start.elapsed().as_secs_f64();
    // A final tick: every client must end with it (as itself or as the
    // latest tick of its instrument after conflation).
    let target_seq = loop {
        batch.clear();
        feed.next_event(now_ns(), &mut batch);
        publisher.publish_batch(&mut batch).expect("publish");
        published += batch.len() as u64;
        if let Some(tick) = batch.iter().rev().find(|s| s.header().kind == Kind::Tick as u16) {
            break tick.header().seq;
        }
    };
    target.store(target_seq, Ordering::Relaxed);
    let drain_start = Instant::now();
    let (clients, connections): (Vec<ClientReport>, Vec<Ws>) = rt.block_on(async {
        let all = futures_util::future::join_all(tasks);
        match tokio::time::timeout(Duration::from_secs(30), all).await {
            Ok(results) => results.into_iter().map(|r| r.expect("client task")).unzip(),
            Err(_) => panic!("clients did not reach seq {target_seq} within 30 s"),
        }
    });
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let gateway_cpu_ticks = cpu_at_start.zip(threads_cpu_ticks("mdbus-gateway")).map(|(a, b)| b - a);
    stop.store(true, Ordering::Relaxed);
    let stats = gateway.stats();
    drop(connections);
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let mut gateway_side = Histogram::<u64>::new(3).unwrap();
    let mut transit = Histogram::<u64>::new(3).unwrap();
    for c in &clients {
        latency.add(&c.latency).unwrap();
        gateway_side.add(&c.gateway_side).unwrap();
        transit.add(&c.transit).unwrap();
    }
    LoadReport {
        config,
        published,
        publish_secs,
        last_seq: publisher.next_seq() - 1,
        target_seq,
        drain_secs,
        clients,
        latency,
        gateway_side,
        transit,
        gateway: stats
            .clients
            .iter()
            .map(|c| (c.conflated, c.conflations, c.latency_ns.0, c.latency_ns.1))
            .collect(),
        gateway_records: stats.records,
        gateway_cpu_ticks,
    }
}

impl LoadReport {
    /// The report as text.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let events: u64 = self.clients.iter().map(|r| r.events).sum();
        let batches: u64 = self.clients.iter().map(|r| r.batches).sum();
        let min_events = self.clients.iter().map(|r| r.events).min().unwrap_or(0);
        let max_events = self.clients.iter().map(|r| r.events).max().unwrap_or(0);
        let conflated: Vec<u64> = self.gateway.iter().map(|g| g.0).collect();
        let conflating = conflated.iter().filter(|&&n| n > 0).count();
        let conflations: u64 = self.gateway.iter().map(|g| g.1).sum();
        let mut gw_p50: Vec<u64> = self.gateway.iter().map(|g| g.2).collect();
        let mut gw_p99: Vec<u64> = self.gateway.iter().map(|g| g.3).collect();
        gw_p50.sort_unstable();
        gw_p99.sort_unstable();
        let mid = |v: &[u64]| v.get(v.len() / 2).copied().unwrap_or(0);
        let us = |ns: u64| ns as f64 / 1000.0;
        let quantiles = |h: &Histogram<u64>| {
            format!(
                "p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
                us(h.value_at_quantile(0.5)),
                us(h.value_at_quantile(0.9)),
                us(h.value_at_quantile(0.99)),
                us(h.value_at_quantile(0.999)),
                us(h.max()),
            )
        };
        format!(
            "load: {} clients x every instrument ({}), {} records/s in for {:.2} s: {} records published, last seq {}, gateway received {}\n\
             delivered: {} events in {} batches ({:.1} events/batch), {:.0} events/s out; per client {}..{} events; drain after the publisher stopped {:.2} s\n\
             push latency per batch, its oldest event (us, {} batches of all clients):\n\
             \x20 client side  ts_publish -> client receive: {}\n\
             \x20 gateway side ts_publish -> ts_send (frame built, then written): {}\n\
             \x20 transit      ts_send -> client receive: {}\n\
             \x20 gateway /stats, median over clients of each client's p50 {:.1} p99 {:.1}\n\
             gateway threads' CPU: {} (user + system, publisher start to clients' end)\n\
             conflation: {} of {} clients conflated, {} events merged in total (per client {}..{}), {} overflows",
            c.clients,
            c.instruments,
            c.rate,
            self.publish_secs,
            self.published,
            self.last_seq,
            self.gateway_records,
            events,
            batches,
            events as f64 / batches.max(1) as f64,
            events as f64 / (self.publish_secs + self.drain_secs),
            min_events,
            max_events,
            self.drain_secs,
            self.latency.len(),
            quantiles(&self.latency),
            quantiles(&self.gateway_side),
            quantiles(&self.transit),
            us(mid(&gw_p50)),
            us(mid(&gw_p99)),
            match self.gateway_cpu_ticks {
                // Clock ticks are 1/100 s on Linux.
                Some(ticks) => format!(
                    "{:.2} s, {:.0}% of one core, {:.2} us per event out",
                    ticks as f64 / 100.0,
                    ticks as f64 / (self.publish_secs + self.drain_secs),
                    ticks as f64 * 1e4 / events.max(1) as f64
                ),
                None => "unknown (no /proc)".to_string(),
            },
            conflating,
            c.clients,
            conflated.iter().sum::<u64>(),
            conflated.iter().min().unwrap_or(&0),
            conflated.iter().max().unwrap_or(&0),
            conflations,
        )
    }
}

#[test]
fn a_batch_is_read_by_its_head_first_event_and_last_seq() {
    let scan = BatchScan::new();
    let batch = concat!(
        r#"{"type":"batch","ts_send":1000,"conflated":true,"events":["#,
        r#"{"kind":"gap","from":3,"to":4},"#,
        r#"{"seq":5,"kind":"tick","instrument":"A","ts_event":1,"ts_publish":700,"flags":0},"#,
        r#"{"seq":9,"kind":"tick","instrument":"B","ts_event":1,"ts_publish":900,"flags":0},"#,
        r#"{"kind":"gap","from":10,"to":10}]}"#
    );
    assert_eq!(
        scan.scan(batch),
        Some(BatchFields {
            ts_send: 1000,
            oldest_ts_publish: Some(700),
            last_seq: Some(9),
            records: 2,
            conflated: true,
        })
    );
    assert_eq!(scan.scan(r#"{"type":"pong","ts":1}"#), None);
}
