//! `/metrics`: the gateway's counters in the OpenMetrics text format that
//! Prometheus and other monitoring stacks scrape, and the helpers
//! `mdbus publish --metrics` shares.
//!
//! The values are read at scrape time (a [`Collector`] over
//! [`GatewayStats`]): collecting costs the feed thread and the
//! connections nothing. `prometheus-client` (the Prometheus project's
//! Rust client) writes the text: names, `_total` suffixes, label
//! escaping, cumulative buckets and the closing `# EOF`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::shared::GatewayStats;

/// The `Content-Type` of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry whose every series carries `feed="<feed>"`.
pub fn feed_registry(feed: &str) -> Registry {
    Registry::with_labels([("feed".into(), feed.to_string().into())].into_iter())
}

/// The registry as OpenMetrics text (ending in `# EOF`).
pub fn render(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing to a String fails only if a collector fails, and ours
    // propagate only the String's (infallible) errors.
    prometheus_client::encoding::text::encode(&mut text, registry).expect("writing to a String cannot fail");
    text
}

/// Writes one counter (`<name>_total`) with value `value`.
pub fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// Writes one gauge.
pub fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: i64) -> fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// Writes one histogram `<name>_seconds` from cumulative `(upper bound,
/// count)` buckets (the last bound `+Inf`, its count `count`), as
/// Prometheus exposes them. (`prometheus-client` takes per-bucket counts
/// and accumulates them itself: they are taken apart here.)
pub fn seconds_histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    sum: f64,
    count: u64,
    buckets: &[(f64, u64)],
) -> fmt::Result {
    let mut below = 0;
    let per_bucket: Vec<(f64, u64)> = buckets
        .iter()
        .map(|&(bound, cumulative)| {
            let in_bucket = cumulative.saturating_sub(below);
            below = below.max(cumulative);
            (bound, in_bucket)
        })
        .collect();
    let mut metric = encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(sum, count, &per_bucket, None)
}

/// The gateway's series, read from its stats at each scrape.
#[derive(Debug)]
pub(crate) struct GatewayCollector(pub(crate) GatewayStats);

fn clamp(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let stats = &self.0;
        let e = &mut encoder;
        gauge(
            e,
            "mdbus_gateway_clients",
            "WebSocket clients connected.",
            clamp(stats.clients.len()),
        )?;
        counter(
            e,
            "mdbus_gateway_records",
            "Records the gateway received from the feed (heartbeats included).",
            stats.records,
        )?;
        counter(
            e,
            "mdbus_gateway_conflated",
            "Events merged into a newer state of the same instrument because a client's queue was full, since start.",
            stats.conflated_total,
        )?;
        counter(
            e,
            "mdbus_gateway_send_timeouts",
            "Connections closed because a write to the client waited past the send timeout.",
            stats.send_timeouts,
        )?;
        counter(
            e,
            "mdbus_subscriber_holes",
            "Gaps the gateway's subscriber saw: records that neither the stream nor the WAL had.",
            stats.gaps,
        )?;
        gauge(
            e,
            "mdbus_gateway_last_seq",
            "Seq of the last record received (0 before the first).",
            clamp(stats.last_seq.unwrap_or(0)),
        )?;
        gauge(
            e,
            "mdbus_gateway_instruments",
            "Instruments known to the gateway (its L1 cache).",
            clamp(stats.instruments),
        )?;
        gauge(
            e,
            "mdbus_gateway_replay_done",
            "1 once the gateway's subscriber finished its WAL replay and is live.",
            i64::from(stats.replay_done),
        )?;
        gauge(
            e,
            "mdbus_gateway_feed_up",
            "1 while the feed thread runs, 0 once it stopped on an error.",
            i64::from(stats.feed_error.is_none()),
        )?;
        let mut depth = e.encode_descriptor(
            "mdbus_gateway_client_queue_depth",
            "Events waiting to be written to one client.",
            None,
            MetricType::Gauge,
        )?;
        for client in &stats.clients {
            let labels = [("client", client.id.to_string())];
            ConstGauge::new(clamp(client.queue_depth)).encode(depth.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The gateway's `/metrics` text for `stats`.
pub(crate) fn gateway_text(feed: &str, stats: GatewayStats) -> String {
    let mut registry = feed_registry(feed);
    registry.register_collector(Box::new(GatewayCollector(stats)));
    render(&registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientStats;

    fn stats(clients: Vec<ClientStats>) -> GatewayStats {
        GatewayStats {
            records: 120,
            records_per_sec: 0.0,
            last_seq: Some(119),
            replay_done: true,
            gaps: 2,
            instruments: 4,
            send_timeouts: 1,
            feed_error: None,
            conflated_total: 37,
            clients,
        }
    }

    fn client(id: u64, queue_depth: usize) -> ClientStats {
        ClientStats {
            id,
            peer: "127.0.0.1:5000".parse().unwrap(),
            queue_depth,
            conflated: 0,
            conflations: 0,
            events_sent: 0,
            batches_sent: 0,
            subscriptions: 1,
            latency_ns: (0, 0),
        }
    }

    #[test]
    fn gateway_series_carry_the_feed_label_and_openmetrics_names() {
        let text = gateway_text("md-\"x\"", stats(vec![client(3, 5), client(4, 0)]));
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "# TYPE mdbus_gateway_clients gauge",
            "mdbus_gateway_clients{feed=\"md-\\\"x\\\"\"} 2",
            "# TYPE mdbus_gateway_records counter",
            "mdbus_gateway_records_total{feed=\"md-\\\"x\\\"\"} 120",
            "mdbus_gateway_conflated_total{feed=\"md-\\\"x\\\"\"} 37",
            "mdbus_gateway_send_timeouts_total{feed=\"md-\\\"x\\\"\"} 1",
            "mdbus_subscriber_holes_total{feed=\"md-\\\"x\\\"\"} 2",
            "mdbus_gateway_last_seq{feed=\"md-\\\"x\\\"\"} 119",
            "mdbus_gateway_instruments{feed=\"md-\\\"x\\\"\"} 4",
            "mdbus_gateway_replay_done{feed=\"md-\\\"x\\\"\"} 1",
            "mdbus_gateway_feed_up{feed=\"md-\\\"x\\\"\"} 1",
            "mdbus_gateway_client_queue_depth{feed=\"md-\\\"x\\\"\",client=\"3\"} 5",
            "mdbus_gateway_client_queue_depth{feed=\"md-\\\"x\\\"\",client=\"4\"} 0",
        ] {
            assert!(lines.contains(&expected), "{expected:?} missing from\n{text}");
        }
        assert_eq!(lines.last(), Some(&"# EOF"));
    }

    #[test]
    fn a_histogram_is_written_with_cumulative_buckets_and_its_unit() {
        let mut registry = feed_registry("f");
        #[derive(Debug)]
        struct Sync;
        impl Collector for Sync {
            fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
                let buckets = [(0.001, 2), (0.01, 5), (f64::INFINITY, 6)];
                seconds_histogram(&mut encoder, "mdbus_wal_sync", "Sync rounds.", 0.25, 6, &buckets)
            }
        }
        registry.register_collector(Box::new(Sync));
        let text = render(&registry);
        for expected in [
            "# TYPE mdbus_wal_sync_seconds histogram",
            "# UNIT mdbus_wal_sync_seconds seconds",
            "mdbus_wal_sync_seconds_sum{feed=\"f\"} 0.25",
            "mdbus_wal_sync_seconds_count{feed=\"f\"} 6",
            "mdbus_wal_sync_seconds_bucket{feed=\"f\",le=\"0.001\"} 2",
            "mdbus_wal_sync_seconds_bucket{feed=\"f\",le=\"0.01\"} 5",
            "mdbus_wal_sync_seconds_bucket{feed=\"f\",le=\"+Inf\"} 6",
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected:?} missing from\n{text}");
        }
    }
}
