//! The status of a running bridge, for `mdbus bridge status`: each bridge
//! rewrites a small JSON file once a second, `<dir>/mdbus.<feed>.bridge-in.json`
//! (`bridge in`, named by its local feed, the `--as` name) or
//! `<dir>/mdbus.<feed>.bridge-out.json` (`bridge out`), beside the snapshot
//! boards (`/dev/shm` by default).
//!
//! A file, not shared memory or a Zenoh key: any tool (`cat`, `jq`, a
//! monitoring agent) reads it, it needs no session, and it survives the
//! bridge: a bridge that stopped cleanly leaves its last counters with
//! `stopped` set; one that died leaves a file whose `updated_ns` no longer
//! moves and whose `pid` is gone, which the reader reports as not running.
//! Each write goes to a temporary file renamed over the old one, so a
//! reader never sees half a status.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mdbus_types::clock;
use serde::{Deserialize, Serialize};

use crate::inbound::InStats;
use crate::out::OutStats;

/// A status not rewritten for this long belongs to a bridge that is not
/// running (it rewrites it every second).
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// Which side of the bridge a status file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `mdbus bridge in` (named by its local feed).
    In,
    /// `mdbus bridge out` (named by the source feed).
    Out,
}

/// The status file of `side` for `feed` in `dir`.
pub fn status_path(dir: &Path, feed: &str, side: Side) -> PathBuf {
    let side = match side {
        Side::In => "in",
        Side::Out => "out",
    };
    dir.join(format!("mdbus.{feed}.bridge-{side}.json"))
}

/// The status of `mdbus bridge in`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InStatus {
    /// The bridge's process id.
    pub pid: u32,
    /// When this status was written, ns since the Unix epoch.
    pub updated_ns: i64,
    /// Whether the bridge has stopped (cleanly; these are its last counters).
    pub stopped: bool,
    /// The source feed.
    pub feed: String,
    /// The local replica's feed.
    pub as_feed: String,
    /// Whether the sending bridge is reachable now (its liveliness token
    /// is seen).
    pub link_up: bool,
    /// Records republished per second over the last interval.
    pub records_per_sec: f64,
    /// Records republished since start (live and gap-filled).
    pub records: u64,
    /// Seq of the last record republished.
    pub last_seq: u64,
    /// The highest seq seen from the source (in a message or a gap fill).
    pub source_seq: u64,
    /// Seqs the replica is behind the source: `source_seq - last_seq`.
    pub lag_seq: u64,
    /// How far behind in time: 0 when caught up (`lag_seq` 0), else ns from
    /// the last republished record's `ts_publish` (the source's clock) to
    /// now. With the link down both lags are as of the last message.
    pub lag_ns: i64,
    /// Ns from the last republished record's `ts_publish` to now, caught
    /// up or not (grows while the source is quiet); 0 before the first.
    pub last_record_age_ns: i64,
    /// Gap-fill queries that moved the replica on.
    pub gap_fills: u64,
    /// Records that came by gap fill.
    pub filled_records: u64,
    /// Seqs the source no longer had: holes in the replica.
    pub gone: u64,
    /// Times the link to the sending bridge came back after it was lost.
    pub reconnects: u64,
    /// Payloads refused (checksum missing or not matching, not whole
    /// records, unknown kind, seq not dense).
    pub bad_messages: u64,
    /// Messages dropped because too many were queued (fetched again by
    /// gap fill).
    pub dropped_messages: u64,
    /// Records dropped because the replica had them already.
    pub duplicates: u64,
}

/// The status of `mdbus bridge out`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutStatus {
    /// The bridge's process id.
    pub pid: u32,
    /// When this status was written, ns since the Unix epoch.
    pub updated_ns: i64,
    /// Whether the bridge has stopped (cleanly; these are its last counters).
    pub stopped: bool,
    /// The feed.
    pub feed: String,
    /// Records put on Zenoh per second over the last interval.
    pub records_per_sec: f64,
    /// Records put on Zenoh since start.
    pub records: u64,
    /// Zenoh messages put.
    pub messages: u64,
    /// Seq of the last record put.
    pub last_seq: u64,
    /// Ns from the last record's `ts_publish` to now; 0 before the first.
    pub last_record_age_ns: i64,
    /// Gap-fill queries answered.
    pub queries: u64,
    /// Records sent in gap-fill replies.
    pub filled_records: u64,
    /// Seqs answered as gone.
    pub gone: u64,
    /// Holes the local subscriber reported (the source's own WAL lost them).
    pub local_gaps: u64,
}

/// Records per second from a counter, between two calls.
#[derive(Debug)]
pub struct Rate {
    at: Instant,
    count: u64,
}

impl Default for Rate {
    fn default() -> Rate {
        Rate {
            at: Instant::now(),
            count: 0,
        }
    }
}

impl Rate {
    /// The counter's increase per second since the last call (or creation).
    pub fn per_sec(&mut self, counter: &AtomicU64) -> f64 {
        let now = Instant::now();
        let count = counter.load(Ordering::Relaxed);
        let rate = count.saturating_sub(self.count) as f64 / (now - self.at).as_secs_f64().max(1e-9);
        (self.at, self.count) = (now, count);
        rate
    }
}

/// Ns from `ts` (ns since the epoch) to now; 0 for 0 (no record yet).
fn age(ts: u64) -> i64 {
    if ts == 0 { 0 } else { clock::now_ns() - ts as i64 }
}

impl InStatus {
    /// The status now, from the receiving bridge's counters.
    pub fn new(feed: &str, as_feed: &str, stats: &InStats, rate: &mut Rate) -> InStatus {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (last_seq, source_seq) = (load(&stats.last_seq), load(&stats.source_seq));
        let lag_seq = source_seq.saturating_sub(last_seq);
        let last_record_age_ns = age(load(&stats.last_ts_publish));
        InStatus {
            pid: std::process::id(),
            updated_ns: clock::now_ns(),
            stopped: false,
            feed: feed.to_string(),
            as_feed: as_feed.to_string(),
            link_up: load(&stats.link_up) == 1,
            records_per_sec: rate.per_sec(&stats.records),
            records: load(&stats.records),
            last_seq,
            source_seq,
            lag_seq,
            lag_ns: if lag_seq == 0 { 0 } else { last_record_age_ns },
            last_record_age_ns,
            gap_fills: load(&stats.gap_fills),
            filled_records: load(&stats.filled_records),
            gone: load(&stats.gone),
            reconnects: load(&stats.reconnects),
            bad_messages: load(&stats.bad_messages),
            dropped_messages: load(&stats.dropped_messages),
            duplicates: load(&stats.duplicates),
        }
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "in {} (from {}): link {}, {:.0} rec/s, last seq {}, lag {} seq / {:.3} ms, last record {:.3} ms old, {} gap fills ({} records), {} gone, {} reconnects, {} bad messages, {} dropped",
            self.as_feed,
            self.feed,
            if self.link_up { "up" } else { "down" },
            self.records_per_sec,
            self.last_seq,
            self.lag_seq,
            self.lag_ns as f64 / 1e6,
            self.last_record_age_ns as f64 / 1e6,
            self.gap_fills,
            self.filled_records,
            self.gone,
            self.reconnects,
            self.bad_messages,
            self.dropped_messages,
        )
    }
}

impl OutStatus {
    /// The status now, from the sending bridge's counters.
    pub fn new(feed: &str, stats: &OutStats, rate: &mut Rate) -> OutStatus {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        OutStatus {
            pid: std::process::id(),
            updated_ns: clock::now_ns(),
            stopped: false,
            feed: feed.to_string(),
            records_per_sec: rate.per_sec(&stats.records),
            records: load(&stats.records),
            messages: load(&stats.messages),
            last_seq: load(&stats.last_seq),
            last_record_age_ns: age(load(&stats.last_ts_publish)),
            queries: load(&stats.queries),
            filled_records: load(&stats.filled_records),
            gone: load(&stats.gone),
            local_gaps: load(&stats.local_gaps),
        }
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "out {}: {:.0} rec/s, last seq {}, last record {:.3} ms old, {} queries ({} records filled, {} gone), {} local gaps",
            self.feed,
            self.records_per_sec,
            self.last_seq,
            self.last_record_age_ns as f64 / 1e6,
            self.queries,
            self.filled_records,
            self.gone,
            self.local_gaps,
        )
    }
}

/// Writes `status` to `path` whole: a temporary file beside it, renamed
/// over it.
pub fn write<T: Serialize>(path: &Path, status: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Reads a status file; `Ok(None)` when there is none.
pub fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the bridge that wrote a status (its `pid`, `updated_ns` and
/// `stopped`) is running: not stopped, its process alive, and the status
/// rewritten within [`STALE_AFTER`].
pub fn running(pid: u32, updated_ns: i64, stopped: bool) -> bool {
    !stopped
        && Path::new(&format!("/proc/{pid}")).exists()
        && clock::now_ns() - updated_ns < STALE_AFTER.as_nanos() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = status_path(dir.path(), "md", Side::In);
        assert_eq!(path.file_name().unwrap(), "mdbus.md.bridge-in.json");
        assert_eq!(read::<InStatus>(&path).unwrap(), None);
        let stats = InStats::default();
        stats.records.store(10, Ordering::Relaxed);
        stats.last_seq.store(10, Ordering::Relaxed);
        stats.source_seq.store(15, Ordering::Relaxed);
        stats.last_ts_publish.store(clock::now_ns() as u64, Ordering::Relaxed);
        let status = InStatus::new("md", "md2", &stats, &mut Rate::default());
        assert_eq!((status.lag_seq, status.records), (5, 10));
        assert!(status.lag_ns >= 0 && status.lag_ns == status.last_record_age_ns);
        write(&path, &status).unwrap();
        assert_eq!(read::<InStatus>(&path).unwrap(), Some(status.clone()));
        // A rate that serde_json's default float parsing read back one
        // ulp off (seen in CI); exact with its `float_roundtrip`.
        let odd = InStatus {
            records_per_sec: 1926411.0961279138,
            ..status.clone()
        };
        write(&path, &odd).unwrap();
        assert_eq!(read::<InStatus>(&path).unwrap(), Some(odd));
        write(&path, &status).unwrap();
        assert!(running(status.pid, status.updated_ns, false));
        assert!(!running(status.pid, status.updated_ns, true));
        let old = status.updated_ns - STALE_AFTER.as_nanos() as i64;
        assert!(!running(status.pid, old, false));
        std::fs::write(&path, b"{").unwrap();
        assert!(read::<InStatus>(&path).is_err());
    }

    #[test]
    fn caught_up_means_no_time_lag() {
        let stats = InStats::default();
        stats.last_seq.store(7, Ordering::Relaxed);
        stats.source_seq.store(7, Ordering::Relaxed);
        stats.last_ts_publish.store(1, Ordering::Relaxed);
        let status = InStatus::new("md", "md", &stats, &mut Rate::default());
        assert_eq!((status.lag_seq, status.lag_ns), (0, 0));
        assert!(status.last_record_age_ns > 0);
    }
}
