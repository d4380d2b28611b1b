//! The error type of `mdbus-transport`.

/// What went wrong in a transport. Every variant names the feed or
/// service concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every sender of the bus is gone and nothing is left to receive.
    #[error("transport disconnected: every sender of the feed is gone")]
    Disconnected,
    /// A feed name outside `[A-Za-z0-9_-]{1,32}` (`mdbus_types::FeedName`'s
    /// check and reason).
    #[error("invalid feed name {feed:?}: {reason} (expected 1 to 32 characters of [A-Za-z0-9_-])")]
    FeedName {
        /// The name given.
        feed: String,
        /// What is wrong with it.
        reason: String,
    },
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

/// Checks a feed name: 1 to 32 characters of `[A-Za-z0-9_-]`.
pub fn validate_feed_name(feed: &str) -> Result<()> {
    match mdbus_types::FeedName::reason(feed) {
        None => Ok(()),
        Some(reason) => Err(Error::FeedName {
            feed: feed.to_string(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_names() {
        for ok in ["golden", "a", "A-b_9", &"x".repeat(32)] {
            validate_feed_name(ok).unwrap();
        }
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(33), "feed.1"] {
            let err = validate_feed_name(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
