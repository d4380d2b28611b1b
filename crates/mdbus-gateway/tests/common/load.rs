//! A bounded load run on loopback: a paced in-process publisher, the
//! gateway, and N WebSocket clients subscribed to every instrument, in
//! this process or in a child process of their own (so that the clients'
//! CPU is not the gateway's, and each side's CPU time can be read apart).
//! Shared by the short CI test (`tests/load.rs`) and the example that
//! reports the numbers (`examples/load.rs`).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, Write};
use std::path::PathBuf;
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
    /// Run the clients in a child process: this program, started with
    /// `--clients-of URL --clients N --client-threads T [--cpu C]`, which
    /// must call [`clients_process`] (the example does). `None`: the
    /// clients run in this process.
    pub clients_exe: Option<PathBuf>,
    /// Pin the publisher and the gateway (every thread they start) to the
    /// first CPU, and the clients to the second.
    pub pin: bool,
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
            clients_exe: None,
            pin: false,
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
    /// CPU time of the clients (their process, or their runtime's threads
    /// `mdbus-load-client`) over the same span, in clock ticks.
    pub clients_cpu_ticks: Option<u64>,
    /// Where the clients ran: "this process" or "a child process", and
    /// the CPUs when pinned.
    pub placement: String,
    /// `/proc/loadavg`'s first three fields before and after the run.
    pub loadavg: (String, String),
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages ("?" where unreadable).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time so far (user + system, clock ticks) of this whole process.
fn process_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Pins the calling thread to `cpu`, which may lie outside the mask it
/// inherited (a child of the pinned gateway process).
fn pin_to(cpu: usize) {
    assert!(
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu }),
        "pin to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
}

/// The second CPU this process may run on (the clients' when pinned), or
/// the first when there is one.
fn cpu(index: usize) -> usize {
    // Read once, before any pin narrows what this process may use.
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    let cpus = CPUS.get_or_init(mdbus_types::affinity::available_cpus);
    cpus.get(index).or(cpus.first()).copied().unwrap_or(0)
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

/// What the clients saw, all of them.
struct ClientsOutcome {
    clients: Vec<ClientReport>,
    latency: Histogram<u64>,
    gateway_side: Histogram<u64>,
    transit: Histogram<u64>,
    /// From [`Clients::start`] to their end.
    cpu_ticks: Option<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits")
}

/// The clients of a run: tasks on a runtime of this process, or a child
/// process talked to by lines on its stdin and stdout.
enum Clients {
    Here {
        rt: tokio::runtime::Runtime,
        tasks: Vec<tokio::task::JoinHandle<(ClientReport, Ws)>>,
        target: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
        /// Kept open until the gateway's counts are read.
        connections: Vec<Ws>,
        cpu_at_start: Option<u64>,
        pinned: bool,
    },
    Child {
        child: std::process::Child,
        stdin: Option<std::process::ChildStdin>,
        lines: std::sync::mpsc::Receiver<String>,
        pinned: bool,
    },
}

impl Clients {
    fn here(url: &str, config: &LoadConfig) -> Clients {
        let pin = config.pin.then(|| cpu(1));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.client_threads)
            .thread_name("mdbus-load-client")
            .on_thread_start(move || {
                if let Some(cpu) = pin {
                    pin_to(cpu);
                }
            })
            .enable_all()
            .build()
            .expect("client runtime");
        let target = Arc::new(AtomicU64::new(u64::MAX));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..config.clients)
            .map(|_| rt.spawn(client(url.to_string(), Arc::clone(&target), Arc::clone(&stop))))
            .collect();
        Clients::Here {
            rt,
            tasks,
            target,
            stop,
            connections: Vec::new(),
            cpu_at_start: None,
            pinned: config.pin,
        }
    }

    fn child(exe: &std::path::Path, url: &str, config: &LoadConfig) -> Clients {
        let mut command = std::process::Command::new(exe);
        command
            .args(["--clients-of", url])
            .args(["--clients", &config.clients.to_string()])
            .args(["--client-threads", &config.client_threads.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if config.pin {
            command.args(["--cpu", &cpu(1).to_string()]);
        }
        let mut child = command.spawn().expect("start the clients' process");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Clients::Child {
            child,
            stdin,
            lines,
            pinned: config.pin,
        }
    }

    fn placement(&self) -> String {
        let (place, pinned) = match self {
            Clients::Here { pinned, .. } => ("clients in this process", *pinned),
            Clients::Child { pinned, .. } => ("clients in a child process", *pinned),
        };
        if pinned {
            format!(
                "{place}; publisher + gateway pinned to CPU {}, clients to CPU {}",
                cpu(0),
                cpu(1)
            )
        } else {
            format!("{place}; not pinned")
        }
    }

    /// The publisher starts: the clients' CPU time counts from here.
    fn start(&mut self) {
        match self {
            Clients::Here { cpu_at_start, .. } => *cpu_at_start = threads_cpu_ticks("mdbus-load-client"),
            Clients::Child { stdin, .. } => {
                let stdin = stdin.as_mut().expect("stdin open until drop");
                writeln!(stdin, "start").expect("tell the clients' process");
            }
        }
    }

    /// Waits (at most 30 s) until every client has `target_seq`.
    fn finish(&mut self, target_seq: u64) -> ClientsOutcome {
        match self {
            Clients::Here {
                rt,
                tasks,
                target,
                stop,
                connections,
                cpu_at_start,
                ..
            } => {
                target.store(target_seq, Ordering::Relaxed);
                let (clients, open): (Vec<ClientReport>, Vec<Ws>) = rt.block_on(async {
                    let all = futures_util::future::join_all(tasks.drain(..));
                    match tokio::time::timeout(Duration::from_secs(30), all).await {
                        Ok(results) => results.into_iter().map(|r| r.expect("client task")).unzip(),
                        Err(_) => panic!("clients did not reach seq {target_seq} within 30 s"),
                    }
                });
                let cpu_ticks = cpu_at_start
                    .zip(threads_cpu_ticks("mdbus-load-client"))
                    .map(|(a, b)| b - a);
                stop.store(true, Ordering::Relaxed);
                *connections = open;
                let (mut latency, mut gateway_side, mut transit) = (histogram(), histogram(), histogram());
                for c in &clients {
                    latency.add(&c.latency).unwrap();
                    gateway_side.add(&c.gateway_side).unwrap();
                    transit.add(&c.transit).unwrap();
                }
                ClientsOutcome {
                    clients,
                    latency,
                    gateway_side,
                    transit,
                    cpu_ticks,
                }
            }
            Clients::Child { stdin, lines, .. } => {
                let stdin = stdin.as_mut().expect("stdin open until drop");
                writeln!(stdin, "{target_seq}").expect("tell the clients' process");
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut outcome = ClientsOutcome {
                    clients: Vec::new(),
                    latency: histogram(),
                    gateway_side: histogram(),
                    transit: histogram(),
                    cpu_ticks: None,
                };
                loop {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let line = lines
                        .recv_timeout(wait)
                        .unwrap_or_else(|_| panic!("clients did not reach seq {target_seq} within 30 s"));
                    if line == "end" {
                        return outcome;
                    }
                    read_line(&line, &mut outcome);
                }
            }
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Clients::Child { child, stdin, .. } = self {
            // Its stdin closing ends the process, connections and all.
            drop(stdin.take());
            let _ = child.wait();
        }
    }
}

/// A histogram as one line: `name value:count ...`.
fn histogram_line(name: &str, h: &Histogram<u64>) -> String {
    let mut line = name.to_string();
    for v in h.iter_recorded() {
        line.push_str(&format!(" {}:{}", v.value_iterated_to(), v.count_at_value()));
    }
    line
}

/// One line of the clients' process (see [`clients_process`]).
fn read_line(line: &str, outcome: &mut ClientsOutcome) {
    let mut words = line.split(' ');
    let kind = words.next().unwrap_or_default();
    let number = |w: Option<&str>| -> u64 { w.and_then(|w| w.parse().ok()).expect("a number from the clients") };
    match kind {
        "client" => {
            let (events, batches, conflated_batches, max_seq) = (
                number(words.next()),
                number(words.next()),
                number(words.next()),
                number(words.next()),
            );
            let closed = words.collect::<Vec<_>>().join(" ");
            outcome.clients.push(ClientReport {
                events,
                batches,
                conflated_batches,
                max_seq,
                latency: histogram(),
                gateway_side: histogram(),
                transit: histogram(),
                closed: (!closed.is_empty()).then_some(closed),
            });
        }
        "cpu" => outcome.cpu_ticks = words.next().and_then(|w| w.parse().ok()),
        "latency" | "gateway_side" | "transit" => {
            let h = match kind {
                "latency" => &mut outcome.latency,
                "gateway_side" => &mut outcome.gateway_side,
                _ => &mut outcome.transit,
            };
            for pair in words {
                let (value, count) = pair.split_once(':').expect("value:count");
                h.record_n(value.parse().unwrap(), count.parse().unwrap()).unwrap();
            }
        }
        other => panic!("unexpected line from the clients' process: {other}"),
    }
}

/// The clients' process (`--clients-of URL`): connects `clients` clients,
/// counts its CPU time from the `start` line on stdin, stops the clients
/// at the seq on the next line, prints per client
/// `client events batches conflated_batches max_seq [closed reason]`, the
/// three histograms, `cpu ticks` and `end`, and exits when stdin closes.
pub fn clients_process(url: &str, clients: usize, threads: usize, pin: Option<usize>) {
    if let Some(cpu) = pin {
        pin_to(cpu);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("client runtime");
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_at_start = Arc::new(AtomicU64::new(u64::MAX));
    let tasks: Vec<_> = (0..clients)
        .map(|_| rt.spawn(client(url.to_string(), Arc::clone(&target), Arc::clone(&stop))))
        .collect();
    let (eof_tx, eof) = std::sync::mpsc::channel::<()>();
    {
        let (target, stop, cpu_at_start) = (Arc::clone(&target), Arc::clone(&stop), Arc::clone(&cpu_at_start));
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                match line.trim() {
                    "start" => cpu_at_start.store(process_cpu_ticks().unwrap_or(u64::MAX), Ordering::Relaxed),
                    seq => target.store(seq.parse().expect("a seq"), Ordering::Relaxed),
                }
            }
            // The parent is gone or done: stop whatever still runs.
            stop.store(true, Ordering::Relaxed);
            let _ = eof_tx.send(());
        });
    }
    let (reports, connections): (Vec<ClientReport>, Vec<Ws>) = rt.block_on(async {
        futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.expect("client task"))
            .unzip()
    });
    let cpu = process_cpu_ticks()
        .zip(Some(cpu_at_start.load(Ordering::Relaxed)).filter(|&t| t != u64::MAX))
        .map(|(end, start)| end - start);
    let mut out = std::io::stdout().lock();
    let (mut latency, mut gateway_side, mut transit) = (histogram(), histogram(), histogram());
    for c in &reports {
        let closed = c.closed.as_deref().unwrap_or_default().replace('\n', " ");
        let _ = writeln!(
            out,
            "client {} {} {} {} {closed}",
            c.events, c.batches, c.conflated_batches, c.max_seq
        );
        latency.add(&c.latency).unwrap();
        gateway_side.add(&c.gateway_side).unwrap();
        transit.add(&c.transit).unwrap();
    }
    let _ = writeln!(out, "{}", histogram_line("latency", &latency));
    let _ = writeln!(out, "{}", histogram_line("gateway_side", &gateway_side));
    let _ = writeln!(out, "{}", histogram_line("transit", &transit));
    if let Some(ticks) = cpu {
        let _ = writeln!(out, "cpu {ticks}");
    }
    let _ = writeln!(out, "end");
    let _ = out.flush();
    drop(out);
    // Connections stay open until the parent has read the gateway's counts.
    let _ = eof.recv();
    drop(connections);
}

/// Runs the load and reports; bounded by `duration` plus at most 30 s of
/// draining.
pub fn run(config: LoadConfig) -> LoadReport {
    let loadavg_before = loadavg();
    if config.pin {
        // Every thread started from here on (publisher, WAL, gateway)
        // inherits the pin; `cpu(1)` was read before it.
        let _ = cpu(1);
        pin_to(cpu(0));
    }
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

    let mut clients = match &config.clients_exe {
        Some(exe) => Clients::child(exe, &url, &config),
        None => Clients::here(&url, &config),
    };
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
    clients.start();
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
    let drain_start = Instant::now();
    let outcome = clients.finish(target_seq);
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let gateway_cpu_ticks = cpu_at_start.zip(threads_cpu_ticks("mdbus-gateway")).map(|(a, b)| b - a);
    let stats = gateway.stats();
    let placement = clients.placement();
    drop(clients);
    let ClientsOutcome {
        clients,
        latency,
        gateway_side,
        transit,
        cpu_ticks: clients_cpu_ticks,
    } = outcome;
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
        clients_cpu_ticks,
        placement,
        loadavg: (loadavg_before, loadavg()),
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
        let span = self.publish_secs + self.drain_secs;
        let cpu = |ticks: Option<u64>| match ticks {
            // Clock ticks are 1/100 s on Linux.
            Some(ticks) => format!(
                "{:.2} s, {:.0}% of one core, {:.2} us per event out",
                ticks as f64 / 100.0,
                ticks as f64 / span,
                ticks as f64 * 1e4 / events.max(1) as f64
            ),
            None => "unknown (no /proc)".to_string(),
        };
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
             clients' CPU: {}\n\
             conflation: {} of {} clients conflated, {} events merged in total (per client {}..{}), {} overflows\n\
             {}; load average {} before, {} after",
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
            cpu(self.gateway_cpu_ticks),
            cpu(self.clients_cpu_ticks),
            conflating,
            c.clients,
            conflated.iter().sum::<u64>(),
            conflated.iter().min().unwrap_or(&0),
            conflated.iter().max().unwrap_or(&0),
            conflations,
            self.placement,
            self.loadavg.0,
            self.loadavg.1,
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
