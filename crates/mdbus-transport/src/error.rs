//! The error type of `mdbus-transport`.

/// What went wrong in a transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every sender of the bus is gone and nothing is left to receive.
    #[error("transport disconnected: every sender of the feed is gone")]
    Disconnected,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
