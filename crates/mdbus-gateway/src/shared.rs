//! State shared by the feed thread, the connection tasks and `/stats`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use mdbus_subscriber::L1Cache;
use parking_lot::{Mutex, RwLock};

use crate::client::{Client, ClientStats};
use crate::config::GatewayConfig;

/// What the gateway did, for `/stats` and [`Gateway::stats`](crate::Gateway::stats).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Records received from the feed (heartbeats included).
    pub records: u64,
    /// Records per second over the last full second.
    pub records_per_sec: f64,
    /// Seq of the last record received.
    pub last_seq: Option<u64>,
    /// The gateway's subscriber finished its WAL replay and is live.
    pub replay_done: bool,
    /// Gaps (records neither the stream nor the WAL had) seen.
    pub gaps: u64,
    /// Instruments known (in the L1 cache).
    pub instruments: usize,
    /// Connections closed because a write waited longer than
    /// [`GatewayConfig::send_timeout`](crate::GatewayConfig::send_timeout).
    pub send_timeouts: u64,
    /// The feed thread's error as text, if it stopped on one (the typed
    /// error: [`Gateway::feed_error`](crate::Gateway::feed_error)).
    pub feed_error: Option<String>,
    /// Events conflated since the gateway started, closed connections
    /// included (never decreases, unlike the sum over [`Self::clients`]).
    pub conflated_total: u64,
    /// Every connected client.
    pub clients: Vec<ClientStats>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) l1: Arc<L1Cache>,
    pub(crate) clients: RwLock<Vec<Arc<Client>>>,
    pub(crate) next_client_id: AtomicU64,
    pub(crate) stop: AtomicBool,
    pub(crate) records: AtomicU64,
    pub(crate) last_seq: AtomicU64,
    /// f64 bits.
    pub(crate) records_per_sec: AtomicU64,
    pub(crate) rate_at_ns: AtomicI64,
    pub(crate) replay_done: AtomicBool,
    pub(crate) gaps: AtomicU64,
    pub(crate) send_timeouts: AtomicU64,
    /// Events conflated for connections that have closed. Added to under
    /// the `clients` write lock as the client leaves, read under its read
    /// lock: a reader sees a client either in `clients` or in here.
    pub(crate) conflated_closed: AtomicU64,
    pub(crate) feed_error: Mutex<Option<Arc<mdbus_subscriber::Error>>>,
    /// Set to `true` when the gateway shuts down: every connection sends
    /// a Close frame (1001, going away) and ends.
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(config: GatewayConfig, l1: Arc<L1Cache>) -> Shared {
        Shared {
            config,
            l1,
            clients: RwLock::new(Vec::new()),
            next_client_id: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            records: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            records_per_sec: AtomicU64::new(0f64.to_bits()),
            rate_at_ns: AtomicI64::new(0),
            replay_done: AtomicBool::new(false),
            gaps: AtomicU64::new(0),
            send_timeouts: AtomicU64::new(0),
            conflated_closed: AtomicU64::new(0),
            feed_error: Mutex::new(None),
            closing: tokio::sync::watch::Sender::new(false),
        }
    }

    pub(crate) fn add_client(&self, client: Arc<Client>) {
        self.clients.write().push(client);
    }

    pub(crate) fn remove_client(&self, id: u64) {
        let mut clients = self.clients.write();
        if let Some(at) = clients.iter().position(|c| c.id == id) {
            let client = clients.remove(at);
            // Relaxed: the `clients` lock orders this add before any
            // reader that no longer sees the client (see `stats`). The
            // feed thread offers under the read lock, so the client's
            // count is final once it is out of the list.
            self.conflated_closed.fetch_add(client.conflated(), Ordering::Relaxed);
        }
    }

    pub(crate) fn stats(&self) -> GatewayStats {
        let (clients, conflated_closed) = {
            let clients = self.clients.read();
            (clients.clone(), self.conflated_closed.load(Ordering::Relaxed))
        };
        let clients: Vec<ClientStats> = clients.iter().map(|c| c.stats()).collect();
        let last_seq = self.last_seq.load(Ordering::Relaxed);
        // A rate older than 2 s means the feed went quiet.
        let fresh = mdbus_types::clock::now_ns() - self.rate_at_ns.load(Ordering::Relaxed) < 2_000_000_000;
        GatewayStats {
            records: self.records.load(Ordering::Relaxed),
            records_per_sec: if fresh {
                f64::from_bits(self.records_per_sec.load(Ordering::Relaxed))
            } else {
                0.0
            },
            last_seq: (last_seq != 0).then_some(last_seq),
            replay_done: self.replay_done.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
            instruments: self.l1.len(),
            send_timeouts: self.send_timeouts.load(Ordering::Relaxed),
            feed_error: self.feed_error.lock().as_ref().map(ToString::to_string),
            conflated_total: conflated_closed + clients.iter().map(|c| c.conflated).sum::<u64>(),
            clients,
        }
    }
}

impl GatewayStats {
    /// The `/stats` JSON.
    pub fn to_json(&self) -> String {
        let clients: Vec<serde_json::Value> = self
            .clients
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "peer": c.peer.to_string(),
                    "queue_depth": c.queue_depth,
                    "conflated": c.conflated,
                    "conflations": c.conflations,
                    "events_sent": c.events_sent,
                    "batches_sent": c.batches_sent,
                    "subscriptions": c.subscriptions,
                    "latency_ns": {"p50": c.latency_ns.0, "p99": c.latency_ns.1},
                })
            })
            .collect();
        serde_json::json!({
            "clients": self.clients.len(),
            "records": self.records,
            "records_per_sec": (self.records_per_sec * 10.0).round() / 10.0,
            "last_seq": self.last_seq,
            "replay_done": self.replay_done,
            "gaps": self.gaps,
            "instruments": self.instruments,
            "send_timeouts": self.send_timeouts,
            "queue_depth_total": self.clients.iter().map(|c| c.queue_depth).sum::<usize>(),
            "conflated_total": self.conflated_total,
            "feed_error": self.feed_error,
            "per_client": clients,
        })
        .to_string()
    }
}
