//! How a gateway runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::error::{Error, Result};

/// Largest client frame the protocol accepts (64 KiB); a larger one, up
/// to [`HARD_FRAME_LIMIT`], gets a `frame_too_large` error and the
/// connection stays open.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// Frames (and messages) above this (1 MiB) are refused by the WebSocket
/// layer itself: the connection is closed with code 1009 (message too
/// big) and the sizes as the reason, without a `frame_too_large` error. A
/// guard against memory exhaustion: nothing that large is read into
/// memory.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// How a [`Gateway`](crate::Gateway) runs. Start from
/// `GatewayConfig::default()` and set the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Address to listen on; the default is `127.0.0.1:8765` (loopback
    /// only: another interface must be asked for explicitly).
    pub listen: SocketAddr,
    /// When set, every request (page, `/stats`, `/metrics`, `/instruments`, `/ws`) must
    /// carry it as the query parameter `token=`, the header
    /// `Authorization: Bearer <token>` or `X-Mdbus-Token`; others get 401.
    /// 1 to 256 characters of `[A-Za-z0-9._~-]` (safe in a URL as is).
    pub token: Option<String>,
    /// Events a client may have pending before its queue is conflated to
    /// the latest state per instrument and channel (at least 1).
    pub queue_capacity: usize,
    /// Instruments one client may subscribe to (`"*"` counts as one).
    pub max_subscriptions: usize,
    /// Origins (`scheme://host:port`) whose pages may open `/ws`, besides
    /// the gateway's own; `"*"` allows any. A browser sends `Origin`, so
    /// this keeps other web sites from reading the feed through a
    /// browser on this machine; clients that send no `Origin` are not
    /// affected.
    pub allowed_origins: Vec<String>,
    /// Worker threads of the gateway's tokio runtime (at least 1).
    pub worker_threads: usize,
    /// Longest one write to a client may wait for the peer (a dead peer
    /// or one that stopped reading with its socket buffers full); past
    /// it the connection is closed and counted in
    /// [`GatewayStats::send_timeouts`](crate::GatewayStats::send_timeouts).
    /// Default 10 s; not zero.
    pub send_timeout: Duration,
    /// The feed's name, the `feed` label of every series of `/metrics`
    /// (default empty: set it to the feed the subscriber reads).
    pub feed: String,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8765)),
            token: None,
            queue_capacity: 2048,
            max_subscriptions: 1024,
            allowed_origins: Vec::new(),
            worker_threads: 2,
            send_timeout: Duration::from_secs(10),
            feed: String::new(),
        }
    }
}

impl GatewayConfig {
    /// Checks every setting; the error names the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        if let Some(token) = &self.token
            && (token.is_empty()
                || token.len() > 256
                || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b)))
        {
            return Err(Error::Config(
                "the token must be 1 to 256 characters of [A-Za-z0-9._~-]".into(),
            ));
        }
        if self.queue_capacity == 0 {
            return Err(Error::Config("queue_capacity must be at least 1".into()));
        }
        if self.max_subscriptions == 0 {
            return Err(Error::Config("max_subscriptions must be at least 1".into()));
        }
        if self.send_timeout.is_zero() {
            return Err(Error::Config("send_timeout must be above zero".into()));
        }
        if self.worker_threads == 0 {
            return Err(Error::Config("worker_threads must be at least 1".into()));
        }
        Ok(())
    }
}
