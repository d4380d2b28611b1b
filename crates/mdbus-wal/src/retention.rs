//! Retention: delete whole segments, oldest first, by total size and by
//! age, never the segment holding the newest full snapshot set nor any
//! newer one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, io_err};
use crate::format::{HEADER_LEN, SegmentHeader, list_segments, validate_feed};
use crate::verify::recovery_point;

/// What to keep. `None` limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete the oldest segments while all segments together take more
    /// than this many bytes (allocated size).
    pub max_bytes: Option<u64>,
    /// Delete segments whose records are all older than this: a segment's
    /// age is measured from the creation of the segment after it (when it
    /// stopped growing).
    pub max_age: Option<Duration>,
}

/// What [`apply_retention`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Deleted segments, oldest first.
    pub deleted: Vec<PathBuf>,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Segments left.
    pub kept: usize,
    /// Bytes left.
    pub kept_bytes: u64,
    /// The oldest segment that can never be deleted now (the newest full
    /// snapshot set's, or the newest segment when there is no set).
    pub protected_from: Option<PathBuf>,
}

fn read_header(path: &Path) -> Result<Option<SegmentHeader>> {
    let mut buf = [0u8; HEADER_LEN];
    let mut file = std::fs::File::open(path).map_err(io_err("open", path))?;
    if file.read_exact(&mut buf).is_err() {
        return Ok(None);
    }
    Ok(SegmentHeader::decode(&buf).ok())
}

/// Deletes whole segments of `feed` under `dir`, oldest first, while the
/// feed takes more than `max_bytes` or the oldest segment is older than
/// `max_age`. Stops at the first segment it keeps, and never deletes the
/// segment holding the newest full snapshot set or anything newer (the
/// newest segment when no segment has a set). Safe while a writer and
/// readers run: a reader that has a segment mapped keeps reading it.
pub fn apply_retention(dir: impl AsRef<Path>, feed: &str, policy: &RetentionPolicy) -> Result<RetentionReport> {
    validate_feed(feed)?;
    let feed_dir = dir.as_ref().join(feed);
    let segments = list_segments(&feed_dir)?;
    let mut report = RetentionReport::default();
    if segments.is_empty() {
        return Ok(report);
    }
    let protected = match recovery_point(dir.as_ref(), feed)? {
        Some(point) => segments
            .iter()
            .position(|(_, p)| *p == point.path)
            .unwrap_or(segments.len() - 1),
        None => segments.len() - 1,
    };
    report.protected_from = Some(segments[protected].1.clone());
    let sizes: Vec<u64> = segments
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect();
    let mut total: u64 = sizes.iter().sum();
    let now = mdbus_types::clock::now_ns();
    let mut first_kept = 0;
    for i in 0..protected {
        let over_size = policy.max_bytes.is_some_and(|max| total > max);
        let too_old = match policy.max_age {
            Some(max_age) => {
                // The segment stopped growing when the next one was created.
                let ended = read_header(&segments[i + 1].1)?.map(|h| h.created_ns);
                ended.is_some_and(|ended| now.saturating_sub(ended) > max_age.as_nanos() as i64)
            }
            None => false,
        };
        if !over_size && !too_old {
            break;
        }
        let path = &segments[i].1;
        std::fs::remove_file(path).map_err(io_err("delete segment", path))?;
        total -= sizes[i];
        report.freed_bytes += sizes[i];
        report.deleted.push(path.clone());
        first_kept = i + 1;
    }
    report.kept = segments.len() - first_kept;
    report.kept_bytes = total;
    Ok(report)
}
