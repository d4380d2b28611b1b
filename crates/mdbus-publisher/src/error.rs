//! The error type of `mdbus-publisher`.

/// What went wrong while publishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport refused a sample.
    #[error("transport: {0}")]
    Transport(#[from] mdbus_transport::Error),
    /// A record that cannot be published (unknown kind, bad header).
    #[error("record: {0}")]
    Record(#[from] mdbus_types::Error),
    /// The write-ahead log failed (full disk, lock held, corruption, ...).
    #[error("WAL: {0}")]
    Wal(#[from] mdbus_wal::Error),
    /// An invalid configuration value or record, named in the message.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
