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
    /// The feed's subscriber could not be created or failed.
    #[error("feed: {0}")]
    Feed(String),
}

/// The gateway's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
