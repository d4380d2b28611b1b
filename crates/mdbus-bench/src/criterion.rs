//! Numbers of the criterion benches, read from
//! `<target>/criterion/<id>/new/estimates.json` (mean time per
//! iteration) and `benchmark.json` (elements per iteration).

use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

use crate::error::{Error, Result};

/// The criterion benches the report quotes: `(id, what it measures)`.
pub const QUOTED: [(&str, &str); 8] = [
    (
        "append_tick/never/warm",
        "WAL append, Tick, SyncPolicy::Never, warm segment",
    ),
    (
        "append_tick/interval/warm",
        "WAL append, Tick, SyncPolicy::Interval, warm segment",
    ),
    (
        "append_tick/interval/steady",
        "WAL append, Tick, Interval, sustained (rolls included)",
    ),
    ("replay/tick_validated", "WAL replay, Tick stream, validated"),
    ("replay/mixed_validated", "WAL replay, mixed stream, validated"),
    ("l1/tick_get", "L1 cache get, last Tick"),
    ("l1/book_get", "L1 cache get, top-10 book"),
    (
        "publish_path/wal_interval_board_iceoryx2",
        "publish path per record (FeedPublisher: WAL Interval + board + iceoryx2 send)",
    ),
];

/// One criterion bench's result.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchEstimate {
    /// The bench id, e.g. `append_tick/never/warm`.
    pub id: String,
    /// Mean time per iteration, ns.
    pub mean_ns: f64,
    /// Elements per iteration, when the bench declared a throughput.
    pub elements: Option<u64>,
}

impl BenchEstimate {
    /// Elements per second (iterations per second without a throughput).
    pub fn per_second(&self) -> f64 {
        if self.mean_ns <= 0.0 {
            return 0.0;
        }
        self.elements.unwrap_or(1) as f64 * 1e9 / self.mean_ns
    }

    /// Mean time per element, ns.
    pub fn ns_per_element(&self) -> f64 {
        self.mean_ns / self.elements.unwrap_or(1).max(1) as f64
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The estimate of bench `id` under `criterion_dir`; `Ok(None)` when it
/// has not run.
pub fn read(criterion_dir: &Path, id: &str) -> Result<Option<BenchEstimate>> {
    let dir = criterion_dir.join(id).join("new");
    let estimates = dir.join("estimates.json");
    if !estimates.exists() {
        return Ok(None);
    }
    let value = read_json(&estimates)?;
    let mean_ns = value
        .pointer("/mean/point_estimate")
        .and_then(Value::as_f64)
        .ok_or_else(|| Error::Json {
            path: estimates.clone(),
            reason: "no mean.point_estimate".to_string(),
        })?;
    let benchmark = dir.join("benchmark.json");
    let elements = if benchmark.exists() {
        read_json(&benchmark)?
            .pointer("/throughput/Elements")
            .and_then(Value::as_u64)
    } else {
        None
    };
    Ok(Some(BenchEstimate {
        id: id.to_string(),
        mean_ns,
        elements,
    }))
}

/// What [`read_since`] found of one bench.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// No `estimates.json`.
    Missing,
    /// An `estimates.json` older than this run: an earlier run's number.
    Stale,
    /// This run's estimate.
    Fresh(BenchEstimate),
}

/// The estimate of bench `id` if it was written at or after `since`
/// (the start of this benchmark run; `None`: any age counts).
pub fn read_since(criterion_dir: &Path, id: &str, since: Option<SystemTime>) -> Result<Reading> {
    let estimates = criterion_dir.join(id).join("new").join("estimates.json");
    if let Some(since) = since
        && estimates.exists()
    {
        let modified = std::fs::metadata(&estimates)
            .and_then(|m| m.modified())
            .map_err(|e| Error::io(&estimates, e))?;
        if modified < since {
            return Ok(Reading::Stale);
        }
    }
    Ok(read(criterion_dir, id)?.map_or(Reading::Missing, Reading::Fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, id: &str, estimates: &str, benchmark: Option<&str>) {
        let new = dir.join(id).join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("estimates.json"), estimates).unwrap();
        if let Some(b) = benchmark {
            std::fs::write(new.join("benchmark.json"), b).unwrap();
        }
    }

    #[test]
    fn reads_mean_and_throughput_elements() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "replay/tick_validated",
            r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":20000000.0,"standard_error":1.0}}"#,
            Some(
                r#"{"group_id":"replay","function_id":"tick_validated","value_str":null,"throughput":{"Elements":200000},"full_id":"replay/tick_validated"}"#,
            ),
        );
        let e = read(dir.path(), "replay/tick_validated").unwrap().unwrap();
        assert_eq!(e.elements, Some(200_000));
        assert_eq!(e.per_second(), 10_000_000.0);
        assert_eq!(e.ns_per_element(), 100.0);
    }

    #[test]
    fn without_throughput_counts_iterations_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "l1/tick_get",
            r#"{"mean":{"point_estimate":25.0}}"#,
            Some(r#"{"throughput":null}"#),
        );
        let e = read(dir.path(), "l1/tick_get").unwrap().unwrap();
        assert_eq!(e.elements, None);
        assert_eq!(e.per_second(), 40_000_000.0);
        assert_eq!(read(dir.path(), "l1/book_get").unwrap(), None);
    }

    #[test]
    fn estimates_older_than_the_run_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "l1/tick_get", r#"{"mean":{"point_estimate":25.0}}"#, None);
        let written = std::fs::metadata(dir.path().join("l1/tick_get/new/estimates.json"))
            .unwrap()
            .modified()
            .unwrap();
        let later = written + std::time::Duration::from_secs(5);
        let earlier = written - std::time::Duration::from_secs(5);
        assert_eq!(
            read_since(dir.path(), "l1/tick_get", Some(later)).unwrap(),
            Reading::Stale
        );
        assert!(matches!(
            read_since(dir.path(), "l1/tick_get", Some(earlier)).unwrap(),
            Reading::Fresh(e) if e.mean_ns == 25.0
        ));
        assert!(matches!(
            read_since(dir.path(), "l1/tick_get", None).unwrap(),
            Reading::Fresh(_)
        ));
        assert_eq!(
            read_since(dir.path(), "l1/book_get", Some(later)).unwrap(),
            Reading::Missing
        );
    }

    #[test]
    fn a_broken_estimates_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x/y", r#"{"median":{}}"#, None);
        let err = read(dir.path(), "x/y").unwrap_err().to_string();
        assert!(
            err.contains("estimates.json") && err.contains("point_estimate"),
            "{err}"
        );
    }
}
