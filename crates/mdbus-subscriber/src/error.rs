//! The error type of `mdbus-subscriber`.

/// What went wrong in the subscriber. Every variant names the feed, file,
/// offset or instrument concerned (the wrapped errors carry them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the WAL failed (I/O, a bad segment header, a bad feed name).
    #[error("WAL: {0}")]
    Wal(#[from] mdbus_wal::Error),
    /// The live transport failed (other than "no publisher right now").
    #[error("transport: {0}")]
    Transport(#[from] mdbus_transport::Error),
    /// A record that cannot be read (unknown kind, bad length).
    #[error("record: {0}")]
    Record(#[from] mdbus_types::Error),
    /// A history query that L2 cannot answer, with no WAL to fall back on.
    #[error("history of {instrument} for {from}..={to} is not in memory (L2) and the subscriber has no WAL")]
    NotCovered {
        /// The instrument.
        instrument: String,
        /// Start of the range, ns since Unix epoch.
        from: i64,
        /// End of the range, ns since Unix epoch.
        to: i64,
    },
    /// A configuration that cannot work.
    #[error("invalid subscriber configuration: {0}")]
    Config(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
