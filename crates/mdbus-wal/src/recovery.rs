//! What a writer's open found and repaired.

use std::fmt;
use std::path::PathBuf;

/// One thing the writer's open found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryEvent {
    /// A bad last frame with nothing crc-valid after it, in the newest
    /// segment: zeroed from `offset`; appends continue there.
    TornTailCut {
        /// The segment.
        path: PathBuf,
        /// Offset of the bad frame.
        offset: u64,
        /// Bytes zeroed (up to the last non-zero byte).
        bytes: u64,
        /// What was wrong with the frame.
        reason: String,
    },
    /// Non-zero bytes after the live end (a frame being written when its
    /// writer died, `len` still 0): zeroed.
    StrayBytesZeroed {
        /// The segment.
        path: PathBuf,
        /// Offset of the live end.
        offset: u64,
        /// Bytes zeroed.
        bytes: u64,
    },
    /// A bad frame with crc-valid frames after it (or in an older segment):
    /// left as it is.
    Corruption {
        /// The segment.
        path: PathBuf,
        /// Offset of the bad frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A new segment started after a corrupt newest segment.
    NewSegment {
        /// The new segment.
        path: PathBuf,
        /// Its first seq (highest valid seq + 1).
        first_seq: u64,
    },
    /// The newest segment's header is damaged (not all zero): left as it
    /// is when it holds crc-valid frames (readers with skip-corrupt read
    /// them by the first seq of its name), and appends go on in a new
    /// segment after them ([`RecoveryEvent::NewSegment`]).
    BadHeader {
        /// The segment.
        path: PathBuf,
        /// What is wrong (the field, where it can be told).
        reason: String,
    },
    /// A newest segment with a damaged header and no crc-valid frame was
    /// renamed aside (nothing readable in it), and a new segment took its
    /// name.
    SetAside {
        /// The segment's name before.
        path: PathBuf,
        /// Its name now.
        to: PathBuf,
    },
    /// The newest segment's header was all zero (a roll cut by a power loss
    /// before the group commit made the header durable): written again
    /// from the file name and size.
    HeaderRestored {
        /// The segment.
        path: PathBuf,
        /// Its first seq, from its name.
        first_seq: u64,
    },
    /// A newest segment shorter than its header's `segment_bytes`
    /// (truncated) was given its space back.
    Extended {
        /// The segment.
        path: PathBuf,
        /// Size found.
        from: u64,
        /// Size restored.
        to: u64,
    },
}

impl fmt::Display for RecoveryEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryEvent::TornTailCut {
                path,
                offset,
                bytes,
                reason,
            } => write!(
                f,
                "{}: offset {offset}: torn tail cut ({bytes} bytes zeroed): {reason}",
                path.display()
            ),
            RecoveryEvent::StrayBytesZeroed { path, offset, bytes } => write!(
                f,
                "{}: offset {offset}: {bytes} stray bytes after the last frame zeroed",
                path.display()
            ),
            RecoveryEvent::Corruption { path, offset, reason } => {
                write!(
                    f,
                    "{}: offset {offset}: corruption left in place: {reason}",
                    path.display()
                )
            }
            RecoveryEvent::NewSegment { path, first_seq } => {
                write!(f, "{}: new segment started at seq {first_seq}", path.display())
            }
            RecoveryEvent::BadHeader { path, reason } => {
                write!(f, "{}: bad segment header left in place: {reason}", path.display())
            }
            RecoveryEvent::SetAside { path, to } => {
                write!(
                    f,
                    "{}: bad segment header and no valid frame: renamed to {}",
                    path.display(),
                    to.display()
                )
            }
            RecoveryEvent::HeaderRestored { path, first_seq } => {
                write!(
                    f,
                    "{}: all-zero header (a roll cut by a power loss) written again, first seq {first_seq}",
                    path.display()
                )
            }
            RecoveryEvent::Extended { path, from, to } => {
                write!(
                    f,
                    "{}: truncated segment extended from {from} to {to} bytes",
                    path.display()
                )
            }
        }
    }
}

/// What [`crate::Wal::open`] found and did; `Display` prints one event
/// per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// `<dir>/<feed>`.
    pub feed_dir: PathBuf,
    /// Segments in the feed directory after open.
    pub segments: usize,
    /// The segment appends go to.
    pub live_segment: PathBuf,
    /// The seq the next append must carry.
    pub next_seq: u64,
    /// Byte offset of the next append in the live segment.
    pub append_offset: u64,
    /// What was found and done, in order.
    pub events: Vec<RecoveryEvent>,
}

impl RecoveryReport {
    /// Nothing was found or repaired.
    pub fn is_clean(&self) -> bool {
        self.events.is_empty()
    }

    /// Whether corruption was found (and left in place).
    pub fn has_corruption(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, RecoveryEvent::Corruption { .. }))
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for event in &self.events {
            writeln!(f, "{event}")?;
        }
        write!(
            f,
            "{}: next seq {} at offset {}",
            self.live_segment.display(),
            self.next_seq,
            self.append_offset
        )
    }
}
