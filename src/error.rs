//! The error of the five-line API ([`crate::Publisher`],
//! [`crate::Subscriber`]): the layer that failed, with its own typed error.

use std::fmt;

/// What went wrong in [`crate::Publisher`] or [`crate::Subscriber`]. The
/// wrapped errors name the feed, file, offset or instrument concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The publish path (WAL, transport, board, a record refused).
    #[error(transparent)]
    Publish(#[from] mdbus_publisher::Error),
    /// The subscriber (replay, gap fill, caches).
    #[error(transparent)]
    Subscribe(#[from] mdbus_subscriber::Error),
    /// Opening the live transport.
    #[error(transparent)]
    Transport(#[from] mdbus_transport::Error),
    /// A record layout, name or setting refused (e.g. a CPU that cannot
    /// be pinned).
    #[error(transparent)]
    Types(#[from] mdbus_types::Error),
    /// A subscriber was asked to replay but no WAL is known: the publisher
    /// announced none (it runs without a WAL) and none was given.
    #[error(
        "feed {feed}: replay asked for, but the publisher announces no WAL and none was given (SubscriberBuilder::wal)"
    )]
    NoWal {
        /// The feed.
        feed: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A record that [`crate::Publisher`] did not publish, handed back with
/// the reason (crossbeam's `TrySendError::Full(T)` shape): nothing is lost,
/// the caller may fix and resend it.
///
/// When [`PublishError::seq`] is `Some`, the record did reach the WAL and
/// took that seq, and only the live send failed: subscribers get it from
/// the WAL (gap fill), so it must **not** be sent again.
pub struct PublishError<R> {
    /// The record as the caller gave it, but for its header's `seq`,
    /// `ts_publish` and flags, which the publisher owns (stamped when it
    /// got as far as the WAL append, else `seq` 0).
    pub record: R,
    /// The seq it took when it reached the WAL before the failure.
    pub seq: Option<u64>,
    /// Why.
    pub error: mdbus_publisher::Error,
}

impl<R> PublishError<R> {
    /// The record back.
    pub fn into_record(self) -> R {
        self.record
    }
}

impl<R> fmt::Debug for PublishError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishError")
            .field("seq", &self.seq)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Display for PublishError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            None => write!(f, "record not published: {}", self.error),
            Some(seq) => write!(
                f,
                "record logged as seq {seq} but not sent live (subscribers fill it from the WAL): {}",
                self.error
            ),
        }
    }
}

impl<R> std::error::Error for PublishError<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
