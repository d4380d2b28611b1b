//! The short load run of CI: 100 clients subscribed to every instrument,
//! 10 000 records/s in for 1 s (debug build), bounded in counts and time.
//! It checks counts only (never a speed) and prints the latency; the numbers worth
//! quoting come from the release example:
//! `cargo run --release -p mdbus-gateway --example load`.

#[path = "common/load.rs"]
mod load;

use std::time::Duration;

#[test]
fn hundred_clients_at_ten_thousand_records_per_second_all_end_with_the_last_tick() {
    let report = load::run(load::LoadConfig {
        duration: Duration::from_secs(1),
        rate: std::env::var("MDBUS_LOAD_RATE")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(10_000),
        ..load::LoadConfig::default()
    });
    println!("{}", report.summary());
    assert_eq!(report.clients.len(), 100);
    assert_eq!(report.gateway.len(), 100, "every client still connected");
    for client in &report.clients {
        assert_eq!(client.closed, None, "{client:?}");
        assert!(client.max_seq >= report.target_seq, "{client:?}");
        assert!(client.events > 0);
    }
    // Counts only: how fast the run went is reported, never asserted.
    assert!(report.published > 0, "{}", report.summary());
    assert!(report.last_seq >= report.target_seq, "{}", report.summary());
}
