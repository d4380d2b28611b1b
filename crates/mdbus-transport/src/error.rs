//! The error type of `mdbus-transport`.

/// What went wrong in a transport. Every variant names the feed or
/// service concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every sender of the bus is gone and nothing is left to receive.
    #[error("transport disconnected: every sender of the feed is gone")]
    Disconnected,
    /// A feed name outside `[A-Za-z0-9_-]{1,32}`: the one check,
    /// `mdbus_types::FeedName::new`, and its error
    /// (`mdbus_types::Error::FeedName`, naming the name and what is wrong).
    #[error(transparent)]
    FeedName(#[from] mdbus_types::Error),
    /// A feed published with a Unix group the calling user is not in
    /// (`mdbus publish --group`): "permission denied: feed F is readable
    /// by group G".
    #[error(transparent)]
    AccessDenied(mdbus_types::AccessDenied),
    /// A shared-memory service that cannot be created or opened, or that
    /// is incompatible (other payload type, other settings).
    #[error("service {service}: {reason}")]
    Service {
        /// The service name, e.g. `mdbus/<feed>/md`.
        service: String,
        /// What failed or differs.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
