//! The protocol with a real WebSocket client: snapshot first, batches in
//! seq order that rebuild the publisher's book exactly, every malformed
//! request answered by its error on a connection that keeps working,
//! unsubscribe, `"*"`, the token and the HTTP pages.

mod common;

use common::{Client, Harness, Mirror, id, runtime};
use mdbus_gateway::GatewayConfig;
use mdbus_types::Kind;

fn config() -> GatewayConfig {
    let mut config = GatewayConfig::default();
    // Large enough that nothing is conflated here (the slow-client test
    // covers conflation).
    config.queue_capacity = 1 << 20;
    config.max_subscriptions = 4;
    config
}

#[test]
fn subscribe_gets_a_snapshot_first_then_batches_in_seq_order_that_rebuild_the_book() {
    let mut harness = Harness::start(&format!("gw-proto-{}", std::process::id()), 8, 3000, config());
    let rt = runtime();
    let if2501 = id("IF2501");
    let mut client = rt.block_on(Client::connect(&harness.url()));
    let mut mirror = Mirror::default();
    rt.block_on(async {
        client
            .send(r#"{"type":"subscribe","channels":["tick","orderbook"],"instruments":["IF2501"]}"#)
            .await;
        let first = client.recv_text().await;
        assert_eq!(mirror.apply(&first), "snapshot", "{first}");
        let snapshot: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(snapshot["instrument"], "IF2501");
        assert_eq!(snapshot["book"]["kind"], "book_snapshot", "{first}");
        assert_eq!(snapshot["book"]["bids"].as_array().unwrap().len(), 10, "{first}");
        let (ack, _) = client.recv_until("subscribed").await;
        assert_eq!(ack["instruments"], serde_json::json!(["IF2501"]));
        assert_eq!(ack["channels"], serde_json::json!(["tick", "orderbook"]));
    });
    // The snapshot equals the book as published so far.
    assert!(mirror.books_match(&harness.publisher, &[if2501]));

    let first_new = harness.publisher.next_seq();
    harness.publish(3000);
    let last = harness.last_seq_of(&if2501);
    rt.block_on(async {
        while mirror.last_seq < last {
            let text = client.recv_text().await;
            let kind = mirror.apply(&text);
            assert_eq!(kind, "batch", "{text}");
            let batch: serde_json::Value = serde_json::from_str(&text).unwrap();
            for event in batch["events"].as_array().unwrap() {
                assert_eq!(event["instrument"], "IF2501", "{event}");
                for field in ["seq", "kind", "ts_event", "ts_publish"] {
                    assert!(event.get(field).is_some(), "{field} missing in {event}");
                }
            }
        }
    });
    // Every record of IF2501 published after the subscription, each once,
    // in seq order (Mirror checks the order), and the same book.
    let expected: Vec<u64> = harness
        .wal_records()
        .iter()
        .filter(|(seq, instrument, kind)| *seq >= first_new && *instrument == if2501 && *kind != Kind::Heartbeat)
        .map(|(seq, _, _)| *seq)
        .collect();
    assert_eq!(mirror.seqs[&if2501], expected);
    assert!(mirror.books_match(&harness.publisher, &[if2501]));
    assert_eq!(mirror.gaps, 0);
    let stats = harness.gateway.stats();
    assert_eq!(stats.clients.len(), 1);
    assert_eq!(stats.clients[0].conflated, 0);
    assert_eq!(stats.clients[0].events_sent, expected.len() as u64);
}

#[test]
fn every_malformed_request_gets_its_error_and_the_connection_keeps_working() {
    let mut harness = Harness::start(&format!("gw-errors-{}", std::process::id()), 8, 2000, config());
    let rt = runtime();
    let mut client = rt.block_on(Client::connect(&harness.url()));
    rt.block_on(async {
        let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
        let cases: [(&str, &str); 7] = [
            ("this is not json", "bad_json"),
            (r#"{"type":"subscribe","channels":["tick"]}"#, "bad_json"),
            (r#"{"type":"hello"}"#, "unknown_type"),
            (
                r#"{"type":"subscribe","channels":["trades"],"instruments":["IF2501"]}"#,
                "unknown_channel",
            ),
            (
                r#"{"type":"subscribe","channels":["tick"],"instruments":["NOPE9999"]}"#,
                "unknown_instrument",
            ),
            (
                r#"{"type":"subscribe","instruments":["this symbol is far too long"]}"#,
                "unknown_instrument",
            ),
            (&huge, "frame_too_large"),
        ];
        for (request, code) in cases {
            client.send(request).await;
            let (error, skipped) = client.recv_until("error").await;
            assert!(skipped.is_empty(), "{skipped:?}");
            assert_eq!(error["code"], code, "{request:.80}: {error}");
            assert!(!error["message"].as_str().unwrap().is_empty());
            // Still open and answering.
            client.send(r#"{"type":"ping","id":"after"}"#).await;
            let (pong, _) = client.recv_until("pong").await;
            assert_eq!(pong["id"], "after");
        }

        // The valid part of a request still applies: tick of IC2501 is
        // subscribed although a channel and an instrument were unknown.
        client
            .send(r#"{"type":"subscribe","channels":["tick","bogus"],"instruments":["IC2501","NOPE9999"]}"#)
            .await;
        let error = client.recv().await;
        assert_eq!(error["code"], "unknown_channel", "{error}");
        let error = client.recv().await;
        assert_eq!(error["code"], "unknown_instrument", "{error}");
        assert!(error["message"].as_str().unwrap().contains("NOPE9999"), "{error}");
        let snapshot = client.recv().await;
        assert_eq!(snapshot["type"], "snapshot");
        assert_eq!(snapshot["instrument"], "IC2501");
        assert!(snapshot["book"].is_null(), "only the tick channel: {snapshot}");
        let (ack, _) = client.recv_until("subscribed").await;
        assert_eq!(ack["channels"], serde_json::json!(["tick"]));

        // The limit (4 here): IC2501 + 3 more accepted, 2 refused.
        client
            .send(r#"{"type":"subscribe","instruments":["IF2501","IH2501","IM2501","rb2501","hc2501"]}"#)
            .await;
        let error = client.recv().await;
        assert_eq!(error["code"], "too_many_subscriptions", "{error}");
        let (ack, snapshots) = client.recv_until("subscribed").await;
        assert_eq!(ack["instruments"], serde_json::json!(["IF2501", "IH2501", "IM2501"]));
        assert_eq!(snapshots.iter().filter(|m| m["type"] == "snapshot").count(), 3);
    });
    let stats = harness.gateway.stats();
    assert_eq!(stats.clients[0].subscriptions, 4);

    // Unsubscribe: after the acknowledgement, nothing of IF2501 arrives,
    // while IH2501 keeps coming.
    rt.block_on(async {
        client
            .send(r#"{"type":"unsubscribe","channels":["tick","orderbook"],"instruments":["IF2501"]}"#)
            .await;
        let (ack, _) = client.recv_until("unsubscribed").await;
        assert_eq!(ack["instruments"], serde_json::json!(["IF2501"]));
    });
    harness.publish(2000);
    let (if2501, ih2501) = (id("IF2501"), id("IH2501"));
    let last_ih = harness.last_seq_of(&ih2501);
    let mut mirror = Mirror {
        lenient: true,
        ..Mirror::default()
    };
    rt.block_on(async {
        while mirror
            .seqs
            .get(&ih2501)
            .and_then(|s| s.last())
            .is_none_or(|&s| s < last_ih)
        {
            let text = client.recv_text().await;
            mirror.apply(&text);
        }
    });
    assert!(!mirror.seqs.contains_key(&if2501), "IF2501 after unsubscribe");
}

#[test]
fn star_then_unsubscribing_one_instrument_stops_it_and_subscribing_it_again_brings_it_back() {
    let mut harness = Harness::start(&format!("gw-star-unsub-{}", std::process::id()), 4, 500, config());
    let rt = runtime();
    let mut client = rt.block_on(Client::connect(&harness.url()));
    rt.block_on(async {
        client.send(r#"{"type":"subscribe","instruments":["*"]}"#).await;
        client.recv_until("subscribed").await;
        client.send(r#"{"type":"unsubscribe","instruments":["IF2501"]}"#).await;
        let (ack, _) = client.recv_until("unsubscribed").await;
        assert_eq!(ack["instruments"], serde_json::json!(["IF2501"]));
    });
    let instruments: Vec<_> = harness.feed.instruments().collect();
    let if2501 = id("IF2501");
    let others: Vec<_> = instruments.iter().filter(|i| **i != if2501).copied().collect();
    assert_eq!(others.len(), 3);
    harness.publish(2000);
    let last = harness.wal_records().last().unwrap().0;
    let mut mirror = Mirror {
        lenient: true,
        ..Mirror::default()
    };
    // Until every other instrument's last record came.
    let others_last: Vec<u64> = others.iter().map(|i| harness.last_seq_of(i)).collect();
    rt.block_on(async {
        while others
            .iter()
            .zip(&others_last)
            .any(|(i, &l)| mirror.seqs.get(i).and_then(|s| s.last()).is_none_or(|&s| s < l))
        {
            let text = client.recv_text().await;
            mirror.apply(&text);
        }
    });
    assert!(
        !mirror.seqs.contains_key(&if2501),
        "IF2501 events after unsubscribing it from \"*\": {:?}",
        mirror.seqs.get(&if2501).map(Vec::len)
    );
    for other in &others {
        assert!(mirror.seqs.contains_key(other), "no event of {other}");
    }
    assert!(mirror.last_seq <= last);

    // Subscribing IF2501 again clears the exclusion: a snapshot, then its events.
    rt.block_on(async {
        client.send(r#"{"type":"subscribe","instruments":["IF2501"]}"#).await;
        let (_, before) = client.recv_until("subscribed").await;
        assert!(
            before
                .iter()
                .any(|m| m["type"] == "snapshot" && m["instrument"] == "IF2501"),
            "{before:?}"
        );
    });
    harness.publish(2000);
    let last_if = harness.last_seq_of(&if2501);
    rt.block_on(async {
        while mirror
            .seqs
            .get(&if2501)
            .and_then(|s| s.last())
            .is_none_or(|&s| s < last_if)
        {
            let text = client.recv_text().await;
            mirror.apply(&text);
        }
    });
}

#[test]
fn star_subscribes_every_instrument() {
    let mut harness = Harness::start(&format!("gw-star-{}", std::process::id()), 6, 2000, config());
    let rt = runtime();
    let mut client = rt.block_on(Client::connect(&harness.url()));
    let mut mirror = Mirror::default();
    let instruments: Vec<_> = harness.feed.instruments().collect();
    rt.block_on(async {
        client.send(r#"{"type":"subscribe","instruments":["*"]}"#).await;
        for _ in 0..instruments.len() {
            let text = client.recv_text().await;
            assert_eq!(mirror.apply(&text), "snapshot", "{text}");
        }
        let (ack, _) = client.recv_until("subscribed").await;
        assert_eq!(ack["instruments"], serde_json::json!(["*"]));
    });
    assert!(mirror.books_match(&harness.publisher, &instruments));
    harness.publish(3000);
    let last = harness.wal_records().last().unwrap().0;
    rt.block_on(async {
        while mirror.last_seq < last {
            let text = client.recv_text().await;
            mirror.apply(&text);
        }
    });
    assert!(mirror.books_match(&harness.publisher, &instruments));
    assert_eq!(mirror.seqs.len(), instruments.len());
}

#[test]
fn token_is_required_on_every_path_by_query_or_header() {
    let mut config = config();
    config.token = Some("s3cret".into());
    let harness = Harness::start(&format!("gw-token-{}", std::process::id()), 2, 200, config);
    let addr = harness.gateway.local_addr();
    let rt = runtime();
    rt.block_on(async {
        for path in ["/", "/stats", "/metrics", "/instruments", "/ws", "/stats?token=wrong"] {
            assert!(http_get(addr, path, &[]).await.starts_with("HTTP/1.1 401"), "{path}");
        }
        let ok = http_get(addr, "/stats?token=s3cret", &[]).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let ok = http_get(addr, "/metrics", &["Authorization: Bearer s3cret"]).await;
        assert!(
            ok.starts_with("HTTP/1.1 200")
                && ok.contains("application/openmetrics-text")
                && ok.contains("mdbus_gateway_clients{")
                && ok.ends_with("# EOF\n"),
            "{ok}"
        );
        let ok = http_get(addr, "/instruments", &["Authorization: Bearer s3cret"]).await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("IF2501"), "{ok}");
        let ok = http_get(addr, "/", &["X-Mdbus-Token: s3cret"]).await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("<html"), "{ok:.200}");

        let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected 401, got {other:?}"),
        }
        let mut client = Client::connect(&format!("ws://{addr}/ws?token=s3cret")).await;
        client.send(r#"{"type":"ping"}"#).await;
        assert_eq!(client.recv().await["type"], "pong");
    });
}

#[test]
fn a_foreign_origin_may_not_open_the_websocket() {
    let harness = Harness::start(&format!("gw-origin-{}", std::process::id()), 2, 200, config());
    let addr = harness.gateway.local_addr();
    let rt = runtime();
    rt.block_on(async {
        let upgrade = [
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ];
        let foreign: Vec<&str> = upgrade.iter().copied().chain(["Origin: http://evil.example"]).collect();
        let response = http_get(addr, "/ws", &foreign).await;
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        let own = format!("Origin: http://{addr}");
        let same: Vec<&str> = upgrade.iter().copied().chain([own.as_str()]).collect();
        let response = http_get(addr, "/ws", &same).await;
        assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    });
}

#[test]
fn stats_and_instruments_are_json() {
    let harness = Harness::start(&format!("gw-stats-{}", std::process::id()), 3, 500, config());
    let addr = harness.gateway.local_addr();
    let rt = runtime();
    rt.block_on(async {
        let _client = Client::connect(&harness.url()).await;
        let response = http_get(addr, "/stats", &[]).await;
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        let stats: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(stats["instruments"], 3, "{stats}");
        assert_eq!(stats["last_seq"], harness.publisher.next_seq() - 1, "{stats}");
        assert!(stats["per_client"].is_array(), "{stats}");
        let response = http_get(addr, "/instruments", &[]).await;
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        let symbols: Vec<String> = serde_json::from_str(body).unwrap();
        assert_eq!(symbols.len(), 3);
    });
}

/// A raw HTTP/1.1 GET; the response head and body as text (the
/// connection is closed by asking for it, or after 101 by reading once).
async fn http_get(addr: std::net::SocketAddr, path: &str, headers: &[&str]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    let upgrade = headers.iter().any(|h| h.starts_with("Upgrade"));
    if !upgrade {
        request.push_str("Connection: close\r\n");
    }
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = async {
        if upgrade {
            let mut buf = vec![0; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            out.extend_from_slice(&buf[..n]);
        } else {
            stream.read_to_end(&mut out).await.unwrap();
        }
    };
    tokio::time::timeout(common::WATCHDOG, read)
        .await
        .expect("watchdog: http");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn shutdown_sends_each_client_a_close_frame_going_away() {
    use futures_util::StreamExt;
    use mdbus_gateway::Gateway;
    use mdbus_subscriber::{Subscriber, SubscriberConfig};
    use tokio_tungstenite::tungstenite::Message;

    let bus = mdbus_transport::InProcBus::new(1024);
    let mut config = GatewayConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let receiver = bus.subscribe();
    let gateway = Gateway::start(config, move || {
        Ok(Subscriber::new(receiver, SubscriberConfig::default())?)
    })
    .unwrap();
    let rt = runtime();
    let mut client = rt.block_on(Client::connect(&format!("ws://{}/ws", gateway.local_addr())));
    let deadline = std::time::Instant::now() + common::WATCHDOG;
    while gateway.stats().clients.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: the client is not listed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    gateway.shutdown();
    rt.block_on(async {
        loop {
            let message = tokio::time::timeout(common::WATCHDOG, client.ws.next())
                .await
                .expect("watchdog: nothing after the shutdown");
            match message {
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.expect("a Close frame with a code");
                    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("no Close frame: {other:?}"),
            }
        }
    });
}

/// A message over the 1 MiB hard limit is answered with a Close frame 1009
/// (message too big, RFC 6455 7.4.1) naming the sizes, not a reset; the
/// gateway goes on serving others.
#[test]
fn a_message_over_the_hard_limit_is_closed_with_1009_and_a_reason() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let harness = Harness::start(&format!("gw-toobig-{}", std::process::id()), 2, 100, config());
    let rt = runtime();
    rt.block_on(async {
        let mut client = Client::connect(&harness.url()).await;
        let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2 << 20));
        client
            .ws
            .send(Message::text(big))
            .await
            .expect("the message is written");
        let close = loop {
            let message = tokio::time::timeout(common::WATCHDOG, client.ws.next())
                .await
                .expect("watchdog: nothing after the oversized message");
            match message {
                Some(Ok(Message::Close(frame))) => break frame.expect("a Close frame with a code"),
                Some(Ok(_)) => {}
                other => panic!("no Close frame (a reset?): {other:?}"),
            }
        };
        assert_eq!(u16::from(close.code), 1009, "{close:?}");
        let reason = close.reason.as_str();
        assert!(reason.contains("too big") && reason.contains("1048576"), "{reason}");

        // Others are still served.
        let mut other = Client::connect(&harness.url()).await;
        other.send(r#"{"type":"ping","id":"still"}"#).await;
        let (pong, _) = other.recv_until("pong").await;
        assert_eq!(pong["id"], "still");
    });
}
