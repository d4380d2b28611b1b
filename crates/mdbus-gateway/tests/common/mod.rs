//! Helpers of the gateway's tests: a publisher and a gateway over one
//! in-process bus, a WebSocket client (tokio-tungstenite) with timeouts,
//! and a client-side mirror of books and ticks built from what the gateway
//! sends.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use mdbus_gateway::{Gateway, GatewayConfig};
use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_subscriber::{Subscriber, SubscriberConfig};
use mdbus_transport::{InProcBus, InProcSender};
use mdbus_types::WalLocation;
use mdbus_types::json::sample_from_json;
use mdbus_types::{Book, InstrumentId, Kind, MdSample, RecordRef, clock::now_ns};
use mdbus_wal::{ReadOptions, WalOptions, WalReader};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in these tests ends by this deadline or fails.
pub const WATCHDOG: Duration = Duration::from_secs(60);

pub type Pub = FeedPublisher<InProcSender>;

/// A publisher of a synthetic market and a gateway subscribed to it over
/// one in-process bus, the WAL in a temporary directory.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub bus: InProcBus,
    pub publisher: Pub,
    pub feed: SyntheticFeed,
    pub gateway: Gateway,
    /// (seq, instrument, kind) of every record published, in order.
    pub published: Vec<(u64, InstrumentId, Kind)>,
}

impl Harness {
    /// `instruments` synthetic instruments, `warmup` events published
    /// before the gateway starts (it replays them from the WAL).
    pub fn start(name: &str, instruments: usize, warmup: usize, config: GatewayConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let bus = InProcBus::new(1 << 16);
        let mut feed_config = FeedConfig::new(name);
        feed_config.wal_root = Some(dir.path().to_path_buf());
        feed_config.wal = WalOptions::default().segment_bytes(16 << 20);
        let publisher = FeedPublisher::open(feed_config, bus.sender()).unwrap();
        let feed = SyntheticFeed::new(instruments, 7).unwrap();
        let mut harness = Harness {
            gateway: start_gateway(&bus, dir.path(), name, config),
            dir,
            bus,
            publisher,
            feed,
            published: Vec::new(),
        };
        harness.publish(warmup);
        harness.wait_gateway_caught_up();
        harness
    }

    /// Publishes `n` market events.
    pub fn publish(&mut self, n: usize) {
        publish(&mut self.publisher, &mut self.feed, n, &mut self.published);
    }

    /// Waits until the gateway has received everything published.
    pub fn wait_gateway_caught_up(&self) {
        let last = self.publisher.next_seq() - 1;
        let deadline = Instant::now() + WATCHDOG;
        while self.gateway.stats().last_seq.is_none_or(|s| s < last) {
            assert!(
                Instant::now() < deadline,
                "watchdog: gateway stats {:?}",
                self.gateway.stats()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.gateway.local_addr())
    }

    /// The last published seq of `instrument` (heartbeats aside).
    pub fn last_seq_of(&self, instrument: &InstrumentId) -> u64 {
        self.wal_records()
            .iter()
            .rev()
            .find(|(_, id, kind)| id == instrument && *kind != Kind::Heartbeat)
            .map_or(0, |(seq, _, _)| *seq)
    }

    /// (seq, instrument, kind) of every record with an instrument in the
    /// WAL (what was published, policy snapshots included), oldest first.
    pub fn wal_records(&self) -> Vec<(u64, InstrumentId, Kind)> {
        let feed = self.publisher.wal().expect("the harness has a WAL").feed().to_string();
        let mut reader = WalReader::open(self.dir.path(), &feed, ReadOptions::default()).unwrap();
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            if let Some(id) = r.record.instrument() {
                out.push((r.record.header().seq, id, r.record.kind()));
            }
        }
        out
    }
}

/// A gateway on 127.0.0.1:0 replay-merging `feed` from the WAL in `dir`
/// into the live stream of `bus`.
pub fn start_gateway(bus: &InProcBus, dir: &Path, feed: &str, mut config: GatewayConfig) -> Gateway {
    config.listen = "127.0.0.1:0".parse().unwrap();
    let receiver = bus.subscribe();
    let (dir, feed) = (dir.to_path_buf(), feed.to_string());
    Gateway::start(config, move || {
        Ok(Subscriber::new(
            receiver,
            SubscriberConfig::default().wal(WalLocation::try_new(dir, &feed).unwrap()),
        )?)
    })
    .unwrap()
}

/// Publishes `n` market events, noting what was published.
pub fn publish(
    publisher: &mut Pub,
    feed: &mut SyntheticFeed,
    n: usize,
    published: &mut Vec<(u64, InstrumentId, Kind)>,
) {
    let mut batch = Vec::new();
    for _ in 0..n {
        batch.clear();
        feed.next_event(now_ns(), &mut batch);
        publisher.publish_batch(&mut batch).unwrap();
        for sample in &batch {
            let record = sample.record().unwrap();
            if let Some(id) = record.instrument() {
                published.push((record.header().seq, id, record.kind()));
            }
        }
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client whose every wait has a timeout.
pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WATCHDOG, tokio_tungstenite::connect_async(url))
            .await
            .expect("watchdog: connect")
            .expect("connect");
        Client { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text frame.
    pub async fn recv_text(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(WATCHDOG, self.ws.next())
                .await
                .expect("watchdog: no message")
                .expect("connection closed")
                .expect("websocket error");
            match message {
                Message::Text(text) => return text.as_str().to_string(),
                Message::Close(frame) => panic!("closed by the gateway: {frame:?}"),
                _ => {}
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).expect("the gateway sends JSON")
    }

    /// Messages until one of `kind` (returned with those skipped).
    pub async fn recv_until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let message = self.recv().await;
            if message["type"] == kind {
                return (message, skipped);
            }
            skipped.push(message);
        }
    }
}

#[derive(Deserialize)]
struct Snapshot<'a> {
    #[serde(borrow)]
    book: Option<&'a RawValue>,
    #[serde(borrow)]
    tick: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Books and ticks as a client rebuilds them from snapshots, snapshots in
/// batches and deltas, checking the order of what arrives.
#[derive(Debug, Default)]
pub struct Mirror {
    pub books: HashMap<InstrumentId, Book>,
    pub ticks: HashMap<InstrumentId, MdSample>,
    /// Seq of the last event of a batch (events must come in seq order).
    pub last_seq: u64,
    pub events: u64,
    pub batches: u64,
    pub conflated_batches: u64,
    /// Seqs of the events received, per instrument.
    pub seqs: HashMap<InstrumentId, Vec<u64>>,
    pub gaps: u64,
    /// Deltas of a book never received are skipped instead of failing
    /// (a test that did not feed the snapshots to this mirror).
    pub lenient: bool,
}

impl Mirror {
    /// Applies one message; returns its `type`.
    pub fn apply(&mut self, text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "snapshot" => {
                let snapshot: Snapshot<'_> = serde_json::from_str(text).unwrap();
                if let Some(book) = snapshot.book {
                    self.record(&sample_from_json(book.get()).unwrap(), false);
                }
                if let Some(tick) = snapshot.tick {
                    self.record(&sample_from_json(tick.get()).unwrap(), false);
                }
            }
            "batch" => {
                let batch: Batch<'_> = serde_json::from_str(text).unwrap();
                self.batches += 1;
                if value["conflated"] == true {
                    self.conflated_batches += 1;
                }
                for event in batch.events {
                    if event.get().contains("\"kind\":\"gap\"") {
                        self.gaps += 1;
                        continue;
                    }
                    let sample = sample_from_json(event.get()).unwrap();
                    self.record(&sample, true);
                }
            }
            _ => {}
        }
        kind
    }

    fn record(&mut self, sample: &MdSample, in_batch: bool) {
        let record = sample.record().unwrap();
        let seq = record.header().seq;
        let id = record.instrument().unwrap();
        if in_batch {
            assert!(
                seq > self.last_seq,
                "seq {seq} after {} (events out of order)",
                self.last_seq
            );
            self.last_seq = seq;
            self.events += 1;
            self.seqs.entry(id).or_default().push(seq);
        }
        match record {
            RecordRef::Tick(_) => {
                self.ticks.insert(id, *sample);
            }
            RecordRef::BookSnapshot(s) => {
                self.books.insert(id, Book::from_snapshot(s).unwrap());
            }
            RecordRef::BookDelta(d) => match self.books.get_mut(&id) {
                Some(book) => {
                    book.apply_delta(d).unwrap();
                }
                None => assert!(self.lenient, "a delta of {id} before any snapshot of its book"),
            },
            RecordRef::Heartbeat(_) => panic!("heartbeats are not sent to clients"),
        }
    }

    /// Whether every book equals the publisher's top-10 view.
    pub fn books_match(&self, publisher: &Pub, instruments: &[InstrumentId]) -> bool {
        instruments.iter().all(|id| {
            let (Some(mine), Some(theirs)) = (self.books.get(id), publisher.book(id)) else {
                return false;
            };
            mine.bids() == theirs.bids() && mine.asks() == theirs.asks()
        })
    }
}

/// A tokio runtime for the clients of a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn id(symbol: &str) -> InstrumentId {
    InstrumentId::new(symbol).unwrap()
}
