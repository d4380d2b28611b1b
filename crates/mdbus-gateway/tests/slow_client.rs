//! A client that never reads: the others keep getting everything, the
//! gateway's queue for it stays bounded (folded to the latest state per
//! instrument and channel), its conflated count grows, and once it reads
//! again it ends with the publisher's books (fewer updates, never stale).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Client, Harness, Mirror, WATCHDOG};
use futures_util::{SinkExt, StreamExt};
use mdbus_gateway::GatewayConfig;
use tokio_tungstenite::tungstenite::Message;

const CAPACITY: usize = 256;
const INSTRUMENTS: usize = 16;
/// Market events per chunk of the slow-client test: a few records each
/// plus policy snapshots, far below `CAPACITY`.
const CHUNK_EVENTS: usize = 16;
/// Chunks published before the slow client's first conflation counts.
const MIN_CHUNKS: u32 = 200;

#[test]
fn a_client_that_never_reads_is_conflated_and_the_others_keep_up() {
    let mut config = GatewayConfig::default();
    config.queue_capacity = CAPACITY;
    // The slow client stops reading for the whole run: it is not dropped.
    config.send_timeout = WATCHDOG * 10;
    let mut harness = Harness::start(&format!("gw-slow-{}", std::process::id()), INSTRUMENTS, 2000, config);
    let url = harness.url();
    let instruments: Vec<_> = harness.feed.instruments().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    // The fast client reads on its own task until it has the target seq.
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let mut fast = rt.block_on(Client::connect(&url));
    let mut fast_mirror = Mirror::default();
    rt.block_on(async {
        fast.send(r#"{"type":"subscribe","instruments":["*"]}"#).await;
        loop {
            let text = fast.recv_text().await;
            if fast_mirror.apply(&text) == "subscribed" {
                break;
            }
        }
    });

    // The slow client: a tiny receive buffer, subscribes to everything,
    // then reads nothing.
    let mut slow = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(harness.gateway.local_addr()).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), stream).await.unwrap();
        let mut ws = ws;
        ws.send(Message::text(r#"{"type":"subscribe","instruments":["*"]}"#))
            .await
            .unwrap();
        ws
    });
    let deadline = Instant::now() + WATCHDOG;
    while harness
        .gateway
        .stats()
        .clients
        .iter()
        .all(|c| c.subscriptions == 0 || c.id == 1)
    {
        assert!(Instant::now() < deadline, "watchdog: the slow client never subscribed");
        std::thread::sleep(Duration::from_millis(5));
    }

    // The fast client reads on the runtime's worker and says how far it got.
    let fast_seen = Arc::new(AtomicU64::new(0));
    let fast_task = {
        let (target, fast_seen) = (Arc::clone(&target), Arc::clone(&fast_seen));
        rt.spawn(async move {
            while fast_mirror.last_seq < target.load(Ordering::Relaxed) {
                let message = tokio::time::timeout(Duration::from_millis(200), fast.ws.next()).await;
                if let Ok(Some(Ok(Message::Text(text)))) = message {
                    fast_mirror.apply(text.as_str());
                    fast_seen.store(fast_mirror.last_seq, Ordering::Relaxed);
                }
            }
            // The client comes back too: the connection stays open.
            (fast_mirror, fast)
        })
    };

    // Publish in small chunks, each one only once the fast client has read
    // the previous one: its queue never holds more than a chunk (far below
    // the capacity), so it is never conflated however slow this machine
    // is, while the slow client, which reads nothing, fills its socket and
    // then its queue by volume alone. Conditions, not speeds, end each
    // phase: first the slow client gets conflated, then it goes on being
    // conflated.
    let mut max_depth = 0;
    let mut chunks = 0u32;
    let mut publish_chunk = |harness: &mut Harness| {
        harness.publish(CHUNK_EVENTS);
        chunks += 1;
        let last = harness.publisher.next_seq() - 1;
        let deadline = Instant::now() + WATCHDOG;
        while fast_seen.load(Ordering::Relaxed) < last {
            assert!(
                Instant::now() < deadline,
                "watchdog: the fast client stopped at seq {} of {last}",
                fast_seen.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let stats = harness.gateway.stats();
        let slow = stats
            .clients
            .iter()
            .find(|c| c.id == 2)
            .expect("the slow client is connected")
            .clone();
        max_depth = max_depth.max(slow.queue_depth);
        (chunks, slow)
    };
    let deadline = Instant::now() + WATCHDOG;
    let conflated_mid = loop {
        let (chunks, slow) = publish_chunk(&mut harness);
        if chunks >= MIN_CHUNKS && slow.conflated > 0 {
            break slow.conflated;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: the slow client was never conflated: {slow:?}"
        );
    };
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let (_, slow) = publish_chunk(&mut harness);
        if slow.conflated > conflated_mid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: the slow client stopped being conflated at {conflated_mid}: {slow:?}"
        );
    }
    harness.wait_gateway_caught_up();
    let last = harness.wal_records().last().unwrap().0;
    target.store(last, Ordering::Relaxed);
    let (fast_mirror, _fast) = rt
        .block_on(async { tokio::time::timeout(WATCHDOG, fast_task).await })
        .expect("watchdog: the fast client did not get the last record")
        .unwrap();

    let stats = harness.gateway.stats();
    let slow_stats = stats.clients.iter().find(|c| c.id == 2).unwrap().clone();
    let fast_stats = stats.clients.iter().find(|c| c.id == 1).unwrap().clone();
    println!(
        "slow client: {slow_stats:?}\nfast client: {fast_stats:?}\nmax queue depth of the slow client {max_depth}, conflated at the middle {conflated_mid}"
    );
    // The fast client got everything, unfolded, and the publisher's books.
    assert_eq!(fast_mirror.last_seq, last);
    assert_eq!(fast_stats.conflations, 0, "{fast_stats:?}");
    assert_eq!(fast_mirror.conflated_batches, 0, "{fast_mirror:?}");
    assert!(fast_mirror.books_match(&harness.publisher, &instruments));
    // The slow one: folded, bounded, and still being folded.
    assert!(slow_stats.conflations >= 1, "{slow_stats:?}");
    assert!(
        slow_stats.conflated > conflated_mid,
        "{slow_stats:?} vs {conflated_mid} at the middle"
    );
    assert!(
        max_depth <= CAPACITY,
        "queue depth {max_depth} over the capacity {CAPACITY}"
    );
    assert!(slow_stats.queue_depth <= 2 * INSTRUMENTS + 1, "{slow_stats:?}");

    // Now the slow client reads: it ends with the publisher's books.
    let mut slow_mirror = Mirror::default();
    rt.block_on(async {
        let deadline = Instant::now() + WATCHDOG;
        while !(slow_mirror.last_seq >= last && slow_mirror.books_match(&harness.publisher, &instruments)) {
            assert!(Instant::now() < deadline, "watchdog: the slow client never caught up");
            let message = tokio::time::timeout(Duration::from_millis(500), slow.next()).await;
            if let Ok(Some(Ok(Message::Text(text)))) = message {
                slow_mirror.apply(text.as_str());
            }
        }
    });
    assert!(slow_mirror.conflated_batches >= 1, "{slow_mirror:?}");
    assert!(
        slow_mirror.events < fast_mirror.events,
        "the slow client got fewer updates: {} vs {}",
        slow_mirror.events,
        fast_mirror.events
    );
}

/// A peer that stops reading is dropped once a write waits past the send
/// timeout, and counted; the gateway goes on serving.
#[test]
fn a_peer_that_stops_reading_is_dropped_after_the_send_timeout() {
    let mut config = GatewayConfig::default();
    config.queue_capacity = CAPACITY;
    config.send_timeout = Duration::from_millis(500);
    let mut harness = Harness::start(
        &format!("gw-send-timeout-{}", std::process::id()),
        INSTRUMENTS,
        200,
        config,
    );
    let url = harness.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Subscribes to everything with a tiny receive buffer, then reads nothing.
    let _dead = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(harness.gateway.local_addr()).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream).await.unwrap();
        ws.send(Message::text(r#"{"type":"subscribe","instruments":["*"]}"#))
            .await
            .unwrap();
        ws
    });
    let deadline = Instant::now() + WATCHDOG;
    // Publish until its socket buffers are full and a write times out.
    while harness.gateway.stats().send_timeouts == 0 {
        assert!(
            Instant::now() < deadline,
            "watchdog: no send timeout: {:?}",
            harness.gateway.stats()
        );
        harness.publish(500);
    }
    while !harness.gateway.stats().clients.is_empty() {
        assert!(
            Instant::now() < deadline,
            "watchdog: the client is still listed: {:?}",
            harness.gateway.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = harness.gateway.stats();
    assert_eq!(stats.send_timeouts, 1, "{stats:?}");
    assert!(stats.to_json().contains(r#""send_timeouts":1"#), "{}", stats.to_json());
    // Still serving: a new client gets its snapshot.
    rt.block_on(async {
        let mut client = Client::connect(&url).await;
        client.send(r#"{"type":"subscribe","instruments":["IF2501"]}"#).await;
        let (_, before) = client.recv_until("subscribed").await;
        assert_eq!(before.len(), 1, "{before:?}");
        assert_eq!(before[0]["type"], "snapshot");
    });
}
