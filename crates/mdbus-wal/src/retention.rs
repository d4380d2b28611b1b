//! Retention: delete whole segments, oldest first, by total size and by
//! age, never the segment holding the newest full snapshot set nor any
//! newer one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result, io_err};
use crate::format::{HEADER_LEN, SegmentHeader, list_segments, validate_feed};
use crate::scan::{MappedSegment, opens_with_snapshot_set};
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
    /// The oldest segment this pass kept for recovery: the newest segment
    /// whose frames, read from its start, reach a complete snapshot set
    /// (the newest full set's segment, or an older one when that set lies
    /// behind a bad frame); else the newest full set's segment as a full
    /// scan finds it; else the newest segment, when there is no set.
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
    let protected = match newest_opening_with_set(&segments)? {
        Some(i) => i,
        None => match recovery_point(dir.as_ref(), feed)? {
            Some(point) => segments
                .iter()
                .position(|(_, p)| *p == point.path)
                .unwrap_or(segments.len() - 1),
            None => segments.len() - 1,
        },
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

/// The newest segment (its index in `segments`) whose frames from the
/// start close a snapshot set ([`opens_with_snapshot_set`]): a publisher
/// writes one near the start of every segment it rolls to, so this reads a
/// few frames of a segment or two, where [`recovery_point`] reads the
/// newest segment to its end (64 MiB by default, and the zeros after its
/// live end) at every roll. It never protects less: the segment of the
/// newest full set is this one or a newer one, since this one holds a set;
/// it may protect more (a newer set behind a bad frame is not seen). `None`
/// when no segment opens with one; the caller then asks [`recovery_point`],
/// which reads them all again (a WAL without sets pays two reads a pass).
fn newest_opening_with_set(segments: &[(u64, PathBuf)]) -> Result<Option<usize>> {
    for (i, (_, path)) in segments.iter().enumerate().rev() {
        let segment = match MappedSegment::open(path) {
            Ok(s) => s,
            Err(Error::BadHeader { .. }) => continue,
            // Deleted since the listing (`mdbus wal prune` at the same
            // time, or the writer's `skip_to` dropping an empty segment):
            // nothing there to protect.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if opens_with_snapshot_set(segment.bytes(), &segment.header) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// What the writer's background retention ([`crate::WalOptions::retention`])
/// did since the WAL was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionTotals {
    /// Passes that finished (one at open and one after each roll, unless a
    /// pass was still running then; the writer's drop runs a last one).
    pub passes: u64,
    /// Segments deleted.
    pub deleted_segments: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// The last pass's error, if it failed (the next roll tries again).
    pub last_error: Option<String>,
}

/// Retention run by the writer in a thread of its own (a segment's delete
/// can take milliseconds on a large file: never in the appending thread).
#[derive(Debug, Default)]
pub(crate) struct BackgroundRetention {
    state: Mutex<PassState>,
}

#[derive(Debug, Default)]
struct PassState {
    running: bool,
    /// A pass was asked for while one ran: the running one goes again.
    again: bool,
    totals: RetentionTotals,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundRetention {
    fn lock(&self) -> std::sync::MutexGuard<'_, PassState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a pass over `feed` under `dir`; when one is running it goes
    /// again once it is done (so the last roll's pass always happens).
    pub(crate) fn start(self: &Arc<Self>, dir: PathBuf, feed: String, policy: RetentionPolicy) {
        let mut state = self.lock();
        if state.running {
            state.again = true;
            return;
        }
        state.running = true;
        // The previous pass's thread has ended (`running` was false).
        if let Some(done) = state.thread.take() {
            let _ = done.join();
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("mdbus-wal-retain".into())
            .spawn(move || {
                loop {
                    let result = apply_retention(&dir, &feed, &policy);
                    let mut state = me.lock();
                    state.totals.add(result);
                    if !std::mem::take(&mut state.again) {
                        state.running = false;
                        return;
                    }
                }
            });
        match spawned {
            Ok(thread) => state.thread = Some(thread),
            Err(e) => {
                state.totals.last_error = Some(format!("cannot start the retention thread: {e}"));
                state.running = false;
            }
        }
    }

    /// What the passes did so far, and whether one is running.
    pub(crate) fn totals(&self) -> (RetentionTotals, bool) {
        let state = self.lock();
        (state.totals.clone(), state.running)
    }

    /// Waits for the running pass (and the one it was asked to run again),
    /// then runs one last pass in this thread. The pass after a roll may
    /// have looked at the WAL before the new segment's snapshot set was
    /// written (the publisher writes it after the roll), and kept the older
    /// set's segment for it: the last pass sees the WAL as it is left.
    pub(crate) fn finish(&self, dir: &Path, feed: &str, policy: &RetentionPolicy) {
        let thread = self.lock().thread.take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        let result = apply_retention(dir, feed, policy);
        self.lock().totals.add(result);
    }
}

impl RetentionTotals {
    fn add(&mut self, pass: Result<RetentionReport>) {
        self.passes += 1;
        match pass {
            Ok(report) => {
                self.deleted_segments += report.deleted.len() as u64;
                self.freed_bytes += report.freed_bytes;
                self.last_error = None;
            }
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }
}
