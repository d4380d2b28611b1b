//! The error type of `mdbus-board`.

use std::path::PathBuf;

use mdbus_types::InstrumentId;

/// What went wrong with a snapshot board. Every variant names the board
/// file, and the feed or instrument concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A feed name outside `[A-Za-z0-9_-]{1,32}`: the one check,
    /// `mdbus_types::FeedName::new`, and its error
    /// (`mdbus_types::Error::FeedName`, naming the name and what is wrong).
    #[error(transparent)]
    FeedName(#[from] mdbus_types::Error),
    /// A board of a feed published with a Unix group the calling user is
    /// not in: "permission denied: feed F is readable by group G".
    #[error(transparent)]
    AccessDenied(#[from] mdbus_types::AccessDenied),
    /// Another process holds the board's writer lock.
    #[error(
        "snapshot board {}: feed {feed} already has a board writer (pid {})",
        path.display(),
        pid.map_or_else(|| "unknown".to_string(), |pid| pid.to_string())
    )]
    Locked {
        /// The board file.
        path: PathBuf,
        /// The feed.
        feed: String,
        /// The holder's pid as its header says (`None`: unreadable).
        pid: Option<u32>,
    },
    /// Every slot is taken: `instrument` cannot be added.
    #[error(
        "snapshot board {}: full: {used} of {capacity} slots used, cannot add {instrument}",
        path.display()
    )]
    Full {
        /// The board file.
        path: PathBuf,
        /// The instrument that found no slot.
        instrument: InstrumentId,
        /// Slots in use.
        used: usize,
        /// The board's capacity.
        capacity: usize,
    },
    /// A board file that is not a valid board (magic, version, sizes, feed,
    /// index), or a capacity out of range.
    #[error("snapshot board {}: {reason}", path.display())]
    Invalid {
        /// The board file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error on a board file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The board file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(path: &std::path::Path, reason: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// `map_err` adapter: an I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
