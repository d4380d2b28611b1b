//! The mdbus WebSocket gateway (docs/spec.md, "Gateway"): dashboards and
//! remote clients see a feed through it.
//!
//! ```text
//!  feed ──► Subscriber (replay-merge, L1) ──► feed thread ──► per-client queue ──► connection task ──► WebSocket
//!           one std thread, sleeps in        offer() each     bounded; folded      one batch of all
//!           next_event until a record       record to the    to the latest state   that is pending
//!                                            clients that     per instrument and    per write
//!                                            subscribed       channel on overflow
//! ```
//!
//! - **Push, event-driven**: the feed thread blocks in
//!   `Subscriber::next_event` and hands each record to the clients that
//!   subscribed to it at once; at the end of each wake-up (everything the
//!   subscriber already held, at most 64 records) it rings the doorbell
//!   of each client that got something, and the client's connection task
//!   writes everything pending as one `{"type":"batch","events":[...]}`.
//!   No polling interval anywhere.
//! - **Conflation**: a client's queue holds at most
//!   [`GatewayConfig::queue_capacity`] records; when it is full the queue
//!   is folded into the latest state per instrument and channel (the last
//!   tick, the current book as a `book_snapshot`) until the client can be
//!   written to again. A slow client gets fewer, newer updates; memory
//!   stays bounded; [`ClientStats::conflated`] counts what was merged.
//! - **Protocol**: JSON text frames, shaped like qaexchange-rs's market
//!   WebSocket; README.md has the messages with examples.
//! - **Pages**: `/` a live depth page (embedded HTML and JavaScript),
//!   `/stats` JSON counters, `/metrics` the same for Prometheus
//!   (OpenMetrics text, see [`metrics`]), `/instruments` the known
//!   symbols, `/ws`.
//! - **Security**: listens on 127.0.0.1 unless told otherwise; an optional
//!   token that every request must carry (401 otherwise); browsers on
//!   other origins may not open `/ws`.
//!
//! # Quick start
//!
//! ```
//! use mdbus_gateway::{Gateway, GatewayConfig};
//! use mdbus_subscriber::{Subscriber, SubscriberConfig};
//! use mdbus_transport::InProcBus;
//!
//! let bus = InProcBus::new(4096);
//! let mut config = GatewayConfig::default();
//! config.listen = "127.0.0.1:0".parse()?;
//! let receiver = bus.subscribe();
//! let gateway = Gateway::start(config, move || Ok(Subscriber::new(receiver, SubscriberConfig::default())?))?;
//! println!("open http://{}/", gateway.local_addr());
//! gateway.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None. The gateway is generic over `mdbus_transport::MdReceiver`: the
//! subscriber is made by a closure that runs on the feed thread, so an
//! iceoryx2 receiver (not `Send`) works too.

mod client;
mod config;
mod error;
mod feed;
pub mod metrics;
mod protocol;
mod server;
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

pub use client::ClientStats;
pub use config::{GatewayConfig, HARD_FRAME_LIMIT, MAX_CLIENT_FRAME};
pub use error::{Error, Result};
use mdbus_subscriber::Subscriber;
use mdbus_transport::MdReceiver;
pub use shared::GatewayStats;
use shared::Shared;

/// What the closure given to [`Gateway::start`] may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running gateway: the feed thread, and the HTTP/WebSocket server on
/// its own tokio runtime. Dropping it stops both.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    feed: Option<JoinHandle<()>>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gateway {
    /// Starts a gateway: binds `config.listen`, runs `make_subscriber` on
    /// a new feed thread (where the receiver must be created if it is not
    /// `Send`), and serves once the subscriber exists. Errors of the
    /// config, the bind or the closure are returned here.
    pub fn start<R, F>(config: GatewayConfig, make_subscriber: F) -> Result<Gateway>
    where
        R: MdReceiver + 'static,
        F: FnOnce() -> std::result::Result<Subscriber<R>, BoxError> + Send + 'static,
    {
        config.validate()?;
        let listener = std::net::TcpListener::bind(config.listen).map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        listener.set_nonblocking(true).map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;

        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<Arc<Shared>, BoxError>>();
        let feed_config = config.clone();
        let feed = std::thread::Builder::new()
            .name("mdbus-gateway-feed".into())
            .spawn(move || {
                let subscriber = match make_subscriber() {
                    Ok(subscriber) => subscriber,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let shared = Arc::new(Shared::new(feed_config, Arc::clone(subscriber.l1())));
                if ready_tx.send(Ok(Arc::clone(&shared))).is_err() {
                    return;
                }
                if let Err(e) = feed::run(subscriber, &shared) {
                    eprintln!("mdbus gateway: feed stopped: {e}");
                    *shared.feed_error.lock() = Some(Arc::new(e));
                }
            })
            .map_err(|source| Error::Start {
                what: "feed thread",
                source,
            })?;
        let shared = match ready_rx.recv() {
            Ok(Ok(shared)) => shared,
            Ok(Err(e)) => {
                let _ = feed.join();
                return Err(Error::Feed(e));
            }
            Err(_) => {
                let _ = feed.join();
                return Err(Error::FeedThreadEnded);
            }
        };

        // From here on the feed thread runs: the guard stops and joins it
        // if anything below fails (dropping it on the early return).
        let mut gateway = Gateway {
            shared,
            local_addr,
            runtime: None,
            feed: Some(feed),
            stop_server: None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .thread_name("mdbus-gateway-io")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| Error::Start {
                what: "tokio runtime",
                source,
            })?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?
        };
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(Arc::clone(&gateway.shared)).into_make_service_with_connect_info::<SocketAddr>();
        runtime.spawn(async move {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                // Latency first: batches are written whole, no need to
                // let the kernel coalesce them.
                let _ = tcp.set_nodelay(true);
            });
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                eprintln!("mdbus gateway: server stopped: {e}");
            }
        });
        gateway.runtime = Some(runtime);
        gateway.stop_server = Some(stop_server);
        Ok(gateway)
    }

    /// The address the server listens on (the port chosen when
    /// `config.listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters: records, rate, clients with their queues and conflation.
    pub fn stats(&self) -> GatewayStats {
        self.shared.stats()
    }

    /// The subscriber's error that stopped the feed thread, typed.
    pub fn feed_error(&self) -> Option<Arc<mdbus_subscriber::Error>> {
        self.shared.feed_error.lock().clone()
    }

    /// Whether the feed thread is still running (it stops on a subscriber
    /// error, reported in [`GatewayStats::feed_error`]).
    pub fn is_running(&self) -> bool {
        self.feed.as_ref().is_some_and(|f| !f.is_finished())
    }

    /// Stops the feed thread and the server, closing every connection.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if self.runtime.is_some() {
            // Every connection sends Close (1001) and ends; wait for them
            // a little longer than one Close may take.
            self.shared.closing.send_replace(true);
            let deadline = std::time::Instant::now() + server::CLOSE_DEADLINE * 2;
            while !self.shared.clients.read().is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(feed) = self.feed.take() {
            let _ = feed.join();
        }
        if let Some(runtime) = self.runtime.take() {
            // Open WebSockets would hold a graceful shutdown forever; this
            // also works when dropped inside another runtime.
            runtime.shutdown_background();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}
