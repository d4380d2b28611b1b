//! Read-only checks of a whole feed: [`verify`] (problems and an exit
//! code), [`inspect`] (one line per segment) and [`recovery_point`] (the
//! newest full snapshot set, where a subscriber's replay starts).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{HEADER_LEN, list_segments, validate_feed};
use crate::scan::{MappedSegment, SnapshotSet, scan};

/// The class of a [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A bad last frame of the newest segment with nothing crc-valid after
    /// it; the next writer open cuts it (exit code 3 when alone).
    TornTail,
    /// A bad frame followed by crc-valid frames, or any bad frame in an
    /// older segment (exit code 1).
    Corruption,
    /// A segment header that is not a valid v1 header (exit code 1).
    BadHeader,
    /// Segments whose seqs do not follow each other (exit code 1).
    SeqGap,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::TornTail => "torn tail",
            ProblemKind::Corruption => "corruption",
            ProblemKind::BadHeader => "bad header",
            ProblemKind::SeqGap => "seq gap",
        })
    }
}

/// One problem: file, byte offset, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The segment file.
    pub path: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// Its class.
    pub kind: ProblemKind,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: offset {}: {}: {}",
            self.path.display(),
            self.offset,
            self.kind,
            self.what
        )
    }
}

/// One segment as [`inspect`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// First seq from the header.
    pub first_seq: u64,
    /// Seq of the last valid frame.
    pub last_seq: Option<u64>,
    /// `ts_event` of the first valid frame.
    pub first_ts_event: Option<i64>,
    /// `ts_event` of the last valid frame.
    pub last_ts_event: Option<i64>,
    /// Valid frames.
    pub frames: u64,
    /// Bytes up to the end of the last valid frame (header included).
    pub bytes_used: u64,
    /// The file's size.
    pub bytes_allocated: u64,
    /// The last complete snapshot set in the segment, if any.
    pub snapshot_set: Option<SnapshotSet>,
    /// Problems found in the segment.
    pub problems: usize,
}

impl SegmentInfo {
    /// Whether the segment holds a full snapshot set.
    pub fn has_full_snapshot_set(&self) -> bool {
        self.snapshot_set.is_some()
    }
}

impl fmt::Display for SegmentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        write!(
            f,
            "{} seq {}..{} ts_event {}..{} frames {} bytes {}/{} snapshot_set {}",
            self.path.display(),
            self.first_seq,
            self.last_seq.map_or("-".to_string(), |s| s.to_string()),
            opt(self.first_ts_event),
            opt(self.last_ts_event),
            self.frames,
            self.bytes_used,
            self.bytes_allocated,
            self.snapshot_set
                .map_or("no".to_string(), |s| format!("{}..={}", s.first_seq, s.last_seq)),
        )?;
        if self.problems > 0 {
            write!(f, " problems {}", self.problems)?;
        }
        Ok(())
    }
}

/// The result of [`verify`]; `Display` prints one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// `<dir>/<feed>`.
    pub feed_dir: PathBuf,
    /// The segments checked.
    pub segments: Vec<SegmentInfo>,
    /// Valid records in all segments.
    pub records: u64,
    /// Problems, in file and offset order.
    pub problems: Vec<Problem>,
    /// Findings that are not problems (stray bytes after a live end).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// docs/spec.md's `mdbus wal verify` exit code: 0 clean, 1 corruption,
    /// 3 only a torn tail in the newest segment.
    pub fn exit_code(&self) -> i32 {
        if self.problems.iter().any(|p| p.kind != ProblemKind::TornTail) {
            1
        } else if self.problems.is_empty() {
            0
        } else {
            3
        }
    }

    /// No problem found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        write!(
            f,
            "{}: {} segments, {} records, {} problems",
            self.feed_dir.display(),
            self.segments.len(),
            self.records,
            self.problems.len()
        )
    }
}

/// Scans `segments` (oldest first); the last one is the newest of the
/// feed when `last_is_newest`.
fn examine(
    segments: &[(u64, PathBuf)],
    last_is_newest: bool,
    problems: &mut Vec<Problem>,
    notes: &mut Vec<String>,
) -> Result<Vec<SegmentInfo>> {
    let mut infos = Vec::with_capacity(segments.len());
    let mut prev_max: Option<u64> = None;
    for (i, (name_seq, path)) in segments.iter().enumerate() {
        let newest = last_is_newest && i + 1 == segments.len();
        let bytes_allocated = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        // A bad header is reported (naming the field where it can be
        // told) and the frames are still checked, with the header the
        // file's name, size and folder give.
        let feed = path
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let segment = match MappedSegment::open_lenient(path, feed) {
            Ok(s) => s,
            Err(Error::BadHeader { reason, .. }) => {
                problems.push(Problem {
                    path: path.clone(),
                    offset: 0,
                    kind: ProblemKind::BadHeader,
                    what: reason,
                });
                prev_max = None;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(reason) = &segment.bad_header {
            problems.push(Problem {
                path: path.clone(),
                offset: 0,
                kind: ProblemKind::BadHeader,
                what: reason.clone(),
            });
        }
        let header = &segment.header;
        let before = problems.len();
        if header.first_seq != *name_seq {
            problems.push(Problem {
                path: path.clone(),
                offset: 16,
                kind: ProblemKind::BadHeader,
                what: format!("header first_seq {} differs from the file name", header.first_seq),
            });
        }
        if let Some(prev) = prev_max
            && header.first_seq != prev + 1
        {
            problems.push(Problem {
                path: path.clone(),
                offset: HEADER_LEN as u64,
                kind: ProblemKind::SeqGap,
                what: format!(
                    "segment starts at seq {}, the previous one ends at seq {prev}",
                    header.first_seq
                ),
            });
        }
        let result = scan(segment.bytes(), header);
        let torn = if newest {
            result.torn_tail().map(|t| t.off)
        } else {
            None
        };
        for bad in &result.bad {
            let kind = if Some(bad.off) == torn {
                ProblemKind::TornTail
            } else {
                ProblemKind::Corruption
            };
            let what = match bad.resync {
                Some(r) if r != bad.off => format!("{}; next crc-valid frame at offset {r}", bad.reason),
                _ => bad.reason.to_string(),
            };
            problems.push(Problem {
                path: path.clone(),
                offset: bad.off as u64,
                kind,
                what,
            });
        }
        if let Some((from, to)) = result.stray {
            notes.push(format!(
                "{}: offset {from}: {} non-zero bytes after the live end (an unfinished frame; not a record)",
                path.display(),
                to - from
            ));
        }
        prev_max = result.max_seq.or(header.first_seq.checked_sub(1));
        infos.push(SegmentInfo {
            path: path.clone(),
            first_seq: header.first_seq,
            last_seq: result.last.map(|f| f.header.seq),
            first_ts_event: result.first.map(|f| f.header.ts_event),
            last_ts_event: result.last.map(|f| f.header.ts_event),
            frames: result.frames,
            bytes_used: result.end as u64,
            bytes_allocated,
            snapshot_set: result.snapshot_set,
            problems: problems.len() - before,
        });
    }
    Ok(infos)
}

/// Problems of older segments (used by the writer's optional full check).
pub(crate) fn check_segments(segments: &[(u64, PathBuf)], last_is_newest: bool) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    examine(segments, last_is_newest, &mut problems, &mut Vec::new())?;
    Ok(problems)
}

fn feed_segments(dir: &Path, feed: &str) -> Result<(PathBuf, Vec<(u64, PathBuf)>)> {
    validate_feed(feed)?;
    let feed_dir = dir.join(feed);
    let segments = list_segments(&feed_dir)?;
    if segments.is_empty() {
        return Err(Error::NoSegments {
            feed: feed.to_string(),
            dir: feed_dir,
        });
    }
    Ok((feed_dir, segments))
}

/// Checks every frame of every segment of `feed` under `dir`. Never
/// modifies a file. See [`VerifyReport::exit_code`].
pub fn verify(dir: impl AsRef<Path>, feed: &str) -> Result<VerifyReport> {
    let (feed_dir, segments) = feed_segments(dir.as_ref(), feed)?;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let infos = examine(&segments, true, &mut problems, &mut notes)?;
    let records = infos.iter().map(|s| s.frames).sum();
    Ok(VerifyReport {
        feed_dir,
        segments: infos,
        records,
        problems,
        notes,
    })
}

/// One [`SegmentInfo`] per segment of `feed`, oldest first.
pub fn inspect(dir: impl AsRef<Path>, feed: &str) -> Result<Vec<SegmentInfo>> {
    let (_, segments) = feed_segments(dir.as_ref(), feed)?;
    examine(&segments, true, &mut Vec::new(), &mut Vec::new())
}

/// Where recovery starts: the newest segment holding a full snapshot set,
/// and that set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// The segment holding the set.
    pub path: PathBuf,
    /// The segment's first seq.
    pub segment_first_seq: u64,
    /// The last complete snapshot set in it.
    pub set: SnapshotSet,
}

impl RecoveryPoint {
    /// The seq a replay for recovery starts at (the set's first record).
    pub fn start_seq(&self) -> u64 {
        self.set.first_seq
    }
}

/// The newest segment of `feed` with a full snapshot set (scanning from
/// the newest segment back), `None` when no segment has one. Reads only
/// as many segments as it must.
pub fn recovery_point(dir: impl AsRef<Path>, feed: &str) -> Result<Option<RecoveryPoint>> {
    validate_feed(feed)?;
    let segments = list_segments(&dir.as_ref().join(feed))?;
    for (_, path) in segments.iter().rev() {
        let segment = match MappedSegment::open(path) {
            Ok(s) => s,
            Err(Error::BadHeader { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(set) = scan(segment.bytes(), &segment.header).snapshot_set {
            return Ok(Some(RecoveryPoint {
                path: path.clone(),
                segment_first_seq: segment.header.first_seq,
                set,
            }));
        }
    }
    Ok(None)
}
