//! The error type of `mdbus-wal`.

use std::path::PathBuf;

/// What went wrong in `mdbus-wal`. Every variant names the file, offset or
/// feed concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The WAL of a feed published with a Unix group the calling user is
    /// not in: "permission denied: feed F is readable by group G".
    #[error(transparent)]
    AccessDenied(#[from] mdbus_types::AccessDenied),
    /// An I/O operation on `path` failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `map`, `rename`, ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Preallocating a segment failed (full disk, file size limit, ...).
    /// Records already written stay valid; the next append retries.
    #[error("cannot preallocate {bytes} bytes for WAL segment {}: {source}", path.display())]
    Preallocate {
        /// The segment file being prepared.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The OS error (`ENOSPC`, `EFBIG`, ...).
        source: std::io::Error,
    },
    /// Another writer holds the feed's lock file.
    #[error("feed {feed:?} already has a writer (pid {pid}, lock file {})", path.display())]
    Locked {
        /// The feed.
        feed: String,
        /// The pid written in the lock file by the holder (0 if unreadable).
        pid: u32,
        /// The lock file.
        path: PathBuf,
    },
    /// A feed name outside `[A-Za-z0-9_-]{1,32}` (`mdbus_types::FeedName`'s
    /// check and reason).
    #[error("invalid feed name {feed:?}: {reason} (1 to 32 characters of [A-Za-z0-9_-])")]
    InvalidFeed {
        /// The name given.
        feed: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An appended record whose `seq` is not the previous + 1.
    #[error("feed {feed:?}: append of seq {got}, expected seq {expected}")]
    SeqOutOfOrder {
        /// The feed.
        feed: String,
        /// The seq the WAL expects next.
        expected: u64,
        /// The seq of the record given.
        got: u64,
    },
    /// A record the WAL cannot store (unknown kind, bad length).
    #[error("feed {feed:?}: cannot append record: {source}")]
    Record {
        /// The feed.
        feed: String,
        /// The records crate's error.
        source: mdbus_types::Error,
    },
    /// A bad frame met by a reader (replay, tail, seek).
    #[error("corrupt WAL {} at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad frame in that file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A segment whose 128-byte header is not a valid v1 header.
    #[error("bad WAL segment header in {}: {reason}", path.display())]
    BadHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Options that cannot work.
    #[error("invalid WAL options: {0}")]
    Options(String),
    /// The feed directory has no segment.
    #[error("no WAL segments for feed {feed:?} in {}", dir.display())]
    NoSegments {
        /// The feed.
        feed: String,
        /// The feed directory.
        dir: PathBuf,
    },
    /// A background sync (`msync`) failed; what was synced before is safe.
    #[error("background sync of {} failed: {source}", path.display())]
    Sync {
        /// The segment file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
