//! Subscribing while the feed keeps publishing: 30 clients subscribe to
//! IF2501 one after another while a thread publishes, then read. Each gets
//! its snapshot first, then batches in seq order with no event at or below
//! the seq its snapshot already carried (per channel), and ends with the
//! publisher's book. Once with a queue that never fills, once with a
//! queue of 8 (every client is folded while the others subscribe).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Client, Harness, Mirror, WATCHDOG, id, runtime};
use mdbus_gateway::GatewayConfig;
use mdbus_types::Kind;
use serde_json::Value;

const CLIENTS: usize = 30;

#[test]
fn subscribing_while_publishing_loses_and_repeats_nothing() {
    race(1 << 20);
}

#[test]
fn subscribing_while_publishing_with_conflation_repeats_nothing_and_ends_current() {
    race(8);
}

/// Sets the flag when dropped: a failed assertion stops the publisher
/// thread instead of leaving the scope waiting for it forever.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a client's snapshot carried: the seq of its tick and of its book.
#[derive(Debug, Clone, Copy)]
struct Floors {
    tick: u64,
    book: u64,
}

fn race(queue_capacity: usize) {
    let mut config = GatewayConfig::default();
    config.queue_capacity = queue_capacity;
    // The clients subscribed first are read only once all have subscribed
    // (a debug build, a loaded machine: maybe longer than the default 10 s
    // a write may wait): they are not dropped meanwhile.
    config.send_timeout = WATCHDOG * 10;
    let name = format!("gw-race-{}-{queue_capacity}", std::process::id());
    let mut harness = Harness::start(&name, 4, 2000, config);
    let url = harness.url();
    let rt = runtime();
    let if2501 = id("IF2501");
    let stop = AtomicBool::new(false);
    let published = AtomicU64::new(0);
    let mut clients: Vec<(Client, Mirror, Floors)> = Vec::new();

    std::thread::scope(|scope| {
        let _stop_guard = StopOnDrop(&stop);
        let harness = &mut harness;
        let (stop, published) = (&stop, &published);
        scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                harness.publish(3);
                published.fetch_add(3, Ordering::Relaxed);
            }
        });
        // The publisher is running before the first subscription.
        let deadline = Instant::now() + WATCHDOG;
        while published.load(Ordering::Relaxed) < 30 {
            assert!(
                Instant::now() < deadline,
                "watchdog: the publisher thread does not publish"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..CLIENTS {
            let mut client = rt.block_on(Client::connect(&url));
            let mut mirror = Mirror::default();
            let mut floors = None;
            rt.block_on(async {
                client
                    .send(r#"{"type":"subscribe","channels":["tick","orderbook"],"instruments":["IF2501"]}"#)
                    .await;
                loop {
                    let text = client.recv_text().await;
                    let message: Value = serde_json::from_str(&text).unwrap();
                    match message["type"].as_str() {
                        Some("snapshot") => {
                            assert!(floors.is_none(), "a second snapshot: {text:.300}");
                            floors = Some(Floors {
                                tick: message["tick"]["seq"].as_u64().unwrap_or(0),
                                book: message["book"]["seq"].as_u64().unwrap_or(0),
                            });
                        }
                        Some("batch") => panic!("a batch before the subscription was acknowledged: {text:.300}"),
                        _ => {}
                    }
                    if mirror.apply(&text) == "subscribed" {
                        break;
                    }
                }
            });
            let floors = floors.expect("a snapshot before the acknowledgement");
            assert!(floors.book > 0, "IF2501 has a book after the warm-up");
            clients.push((client, mirror, floors));
        }
    });
    // Nobody reads now: with a queue of 8 every client is folded.
    harness.publish(500);
    harness.wait_gateway_caught_up();
    let last = harness.last_seq_of(&if2501);
    let wal: Vec<(u64, Kind)> = harness
        .wal_records()
        .into_iter()
        .filter(|(_, instrument, kind)| *instrument == if2501 && *kind != Kind::Heartbeat)
        .map(|(seq, _, kind)| (seq, kind))
        .collect();

    let mut events = 0;
    for (client, mirror, floors) in &mut clients {
        rt.block_on(async {
            while mirror.last_seq < last {
                let text = client.recv_text().await;
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == "batch" {
                    for event in message["events"].as_array().unwrap() {
                        let floor = match event["kind"].as_str() {
                            Some("gap") => continue,
                            Some("tick") => floors.tick,
                            _ => floors.book,
                        };
                        let seq = event["seq"].as_u64().expect("an event has a seq");
                        assert!(
                            seq > floor,
                            "event {seq} ({}) at or below its snapshot's seq {floor}",
                            event["kind"]
                        );
                    }
                }
                // Checks the seq order across batches too.
                mirror.apply(&text);
            }
        });
        assert_eq!(mirror.last_seq, last);
        assert!(
            mirror.books_match(&harness.publisher, &[if2501]),
            "the client's IF2501 book differs from the publisher's"
        );
        if queue_capacity >= 1 << 20 {
            // Never folded: exactly every record after the snapshot's.
            let expected: Vec<u64> = wal
                .iter()
                .filter(|(seq, kind)| *seq > if *kind == Kind::Tick { floors.tick } else { floors.book })
                .map(|(seq, _)| *seq)
                .collect();
            assert_eq!(mirror.seqs.get(&if2501), Some(&expected), "{floors:?}");
        }
        events += mirror.events;
    }
    let stats = harness.gateway.stats();
    assert_eq!(stats.clients.len(), CLIENTS);
    if queue_capacity < 1 << 20 {
        assert!(
            stats.clients.iter().all(|c| c.conflations >= 1),
            "every client was folded: {stats:?}"
        );
    }
    println!(
        "{CLIENTS} clients, queue {queue_capacity}: {} published while they subscribed, {events} events received",
        published.load(Ordering::Relaxed)
    );
}
