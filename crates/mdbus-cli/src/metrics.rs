//! `mdbus publish --metrics ADDR`: `GET /metrics` (OpenMetrics text, see
//! `mdbus_gateway::metrics`) served from a thread of its own.
//!
//! The publish loop pays nothing per record: it copies a few counters
//! from `FeedPublisher::stats()` and the WAL's getters into
//! [`PublishValues`] once per [`TICK`] (Relaxed stores). A scrape reads
//! those, the WAL sync thread's [`SyncStats`] and the segment count of the
//! feed folder.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use mdbus_gateway::metrics::{CONTENT_TYPE, counter, feed_registry, gauge, render, seconds_histogram};
use mdbus_publisher::FeedPublisher;
use mdbus_transport::MdSender;
use mdbus_wal::SyncStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// How often the publish loop copies its counters for the scrapes.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// The publisher's counters as of the last tick. Each is independent of
/// the others (a scrape may see one tick's records with the previous
/// tick's bytes): Relaxed throughout.
#[derive(Debug, Default)]
pub(crate) struct PublishValues {
    records: AtomicU64,
    last_seq: AtomicU64,
    instruments: AtomicU64,
    snapshot_sets: AtomicU64,
    heartbeats: AtomicU64,
    wal_bytes: AtomicU64,
    retention_deleted_segments: AtomicU64,
    retention_freed_bytes: AtomicU64,
}

impl PublishValues {
    /// Copies the publisher's counters (once per tick, never per record).
    pub(crate) fn update<S: MdSender>(&self, publisher: &FeedPublisher<S>) {
        let stats = publisher.stats();
        let set = |to: &AtomicU64, value: u64| to.store(value, Ordering::Relaxed);
        set(&self.records, stats.records);
        set(&self.last_seq, publisher.next_seq().saturating_sub(1));
        set(&self.instruments, publisher.instrument_count() as u64);
        set(&self.snapshot_sets, stats.snapshot_sets);
        set(&self.heartbeats, stats.heartbeats);
        if let Some(wal) = publisher.wal() {
            set(&self.wal_bytes, wal.bytes_written());
            let (retention, _running) = wal.retention_totals();
            set(&self.retention_deleted_segments, retention.deleted_segments);
            set(&self.retention_freed_bytes, retention.freed_bytes);
        }
    }
}

/// The publisher's series.
#[derive(Debug)]
struct PublishCollector {
    values: Arc<PublishValues>,
    sync: Option<Arc<SyncStats>>,
    /// `<wal>/<feed>`: its segment files are counted at each scrape.
    feed_dir: PathBuf,
}

/// Segment files (`<20 digits>.wal`) in `feed_dir`.
fn segment_count(feed_dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(feed_dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        })
        .count() as u64
}

impl Collector for PublishCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let v = &self.values;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gauge_of = |a: &AtomicU64| i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let e = &mut encoder;
        counter(
            e,
            "mdbus_records_published",
            "Records published (written to the WAL and sent; snapshot sets and heartbeats included).",
            get(&v.records),
        )?;
        gauge(
            e,
            "mdbus_publisher_last_seq",
            "Seq of the last record published.",
            gauge_of(&v.last_seq),
        )?;
        gauge(
            e,
            "mdbus_publisher_instruments",
            "Instruments the publisher knows (and writes to the board).",
            gauge_of(&v.instruments),
        )?;
        counter(
            e,
            "mdbus_publisher_snapshot_sets",
            "Snapshot sets written (one at the start of each WAL segment).",
            get(&v.snapshot_sets),
        )?;
        counter(
            e,
            "mdbus_publisher_heartbeats",
            "Heartbeats sent because the feed was quiet.",
            get(&v.heartbeats),
        )?;
        counter(
            e,
            "mdbus_wal_bytes",
            "Bytes this publisher wrote to the WAL (frames and segment headers).",
            get(&v.wal_bytes),
        )?;
        gauge(
            e,
            "mdbus_wal_segments",
            "WAL segment files of the feed now.",
            i64::try_from(segment_count(&self.feed_dir)).unwrap_or(i64::MAX),
        )?;
        counter(
            e,
            "mdbus_wal_retention_deleted_segments",
            "WAL segments deleted by retention (--retain-bytes, --retain-age).",
            get(&v.retention_deleted_segments),
        )?;
        counter(
            e,
            "mdbus_wal_retention_freed_bytes",
            "Bytes freed by WAL retention.",
            get(&v.retention_freed_bytes),
        )?;
        if let Some(sync) = &self.sync {
            let times = sync.snapshot();
            seconds_histogram(
                e,
                "mdbus_wal_sync",
                "Group-commit sync rounds of the WAL (msync of the dirty range, fsync of a new segment's directory entry).",
                times.total_seconds,
                times.rounds,
                &times.buckets,
            )?;
        }
        Ok(())
    }
}

/// The `/metrics` server of `mdbus publish`: stops (and joins its
/// thread) when dropped.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `listen` now (an error is the caller's to report) and serves
    /// `GET /metrics` from a thread with a one-thread tokio runtime.
    pub(crate) fn start(
        listen: SocketAddr,
        feed: &str,
        feed_dir: PathBuf,
        values: Arc<PublishValues>,
        sync: Option<Arc<SyncStats>>,
    ) -> std::io::Result<MetricsServer> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let collector = Arc::new(PublishCollector { values, sync, feed_dir });
        let feed = feed.to_string();
        let scrape = move || {
            let mut registry = feed_registry(&feed);
            registry.register_collector(Box::new(Arc::clone(&collector)));
            ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&registry)).into_response()
        };
        let router = Router::new().route("/metrics", get(move || std::future::ready(scrape())));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mdbus-metrics".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            eprintln!("mdbus publish: metrics: {e}");
                            return;
                        }
                    };
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                        eprintln!("mdbus publish: metrics: {e}");
                    }
                });
            })?;
        Ok(MetricsServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (port 0 resolved).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_series_read_the_ticked_values_and_the_sync_histogram() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(mdbus_wal::segment_file_name(1)), b"").unwrap();
        std::fs::write(dir.path().join(mdbus_wal::segment_file_name(900)), b"").unwrap();
        std::fs::write(dir.path().join("prealloc.tmp"), b"").unwrap();
        let values = Arc::new(PublishValues::default());
        values.records.store(1000, Ordering::Relaxed);
        values.last_seq.store(1000, Ordering::Relaxed);
        values.wal_bytes.store(123_456, Ordering::Relaxed);
        let collector = PublishCollector {
            values,
            sync: Some(Arc::new(SyncStats::default())),
            feed_dir: dir.path().to_path_buf(),
        };
        let mut registry = feed_registry("md1");
        registry.register_collector(Box::new(collector));
        let text = render(&registry);
        for expected in [
            "# TYPE mdbus_records_published counter",
            "mdbus_records_published_total{feed=\"md1\"} 1000",
            "mdbus_publisher_last_seq{feed=\"md1\"} 1000",
            "mdbus_wal_bytes_total{feed=\"md1\"} 123456",
            "mdbus_wal_segments{feed=\"md1\"} 2",
            "mdbus_wal_retention_deleted_segments_total{feed=\"md1\"} 0",
            "# TYPE mdbus_wal_sync_seconds histogram",
            "mdbus_wal_sync_seconds_count{feed=\"md1\"} 0",
            "mdbus_wal_sync_seconds_bucket{feed=\"md1\",le=\"0.00001\"} 0",
            "mdbus_wal_sync_seconds_bucket{feed=\"md1\",le=\"+Inf\"} 0",
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected:?} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
