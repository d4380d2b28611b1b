//! The gateway's error type.

use std::net::SocketAddr;

/// What can go wrong starting or running a gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of [`GatewayConfig`](crate::GatewayConfig) is not usable.
    #[error("gateway config: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The tokio runtime or a thread could not be started.
    #[error("cannot start the gateway's {what}: {source}")]
    Start {
        /// The runtime or the feed thread.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The feed's subscriber could not be created (the error of the
    /// caller's `make_subscriber`, kept as it is: downcast it to
    /// `mdbus_subscriber::Error` or the caller's own type).
    #[error("feed: {0}")]
    Feed(#[source] crate::BoxError),
    /// The feed thread ended (panicked) before its subscriber was ready.
    #[error("feed: the feed thread ended before its subscriber was ready")]
    FeedThreadEnded,
}

/// The gateway's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
