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
    /// The snapshot board failed (held by another writer, full, invalid
    /// file); the error names the board file and the feed or instrument.
    #[error(transparent)]
    Board(#[from] mdbus_board::Error),
    /// The write-ahead log failed (full disk, lock held, corruption, ...).
    #[error("WAL: {0}")]
    Wal(#[from] mdbus_wal::Error),
    /// A feed's files that cannot be given its Unix group
    /// ([`FeedConfig::group`](crate::FeedConfig::group)), or that belong to
    /// another user: only the owner of a feed publishes it.
    #[error("feed {feed}: {reason}")]
    Access {
        /// The feed.
        feed: String,
        /// What failed, naming the file or folder.
        reason: String,
    },
    /// An invalid configuration value, named in the message.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A book delta for an instrument whose book was never snapshotted:
    /// publish a `BookSnapshot` of it first. Nothing of its batch was
    /// published.
    #[error("book delta for {instrument} before any snapshot of it: publish a BookSnapshot first")]
    DeltaBeforeSnapshot {
        /// The instrument.
        instrument: mdbus_types::InstrumentId,
    },
    /// A book delta that no book can apply (its side, price or quantity).
    /// Nothing of its batch was published.
    #[error("book delta for {instrument}: {reason}")]
    BadDelta {
        /// The instrument.
        instrument: mdbus_types::InstrumentId,
        /// What is wrong with it.
        reason: String,
    },
    /// The snapshot set (one snapshot and tick per instrument) does not fit
    /// in one WAL segment: raise the segment size.
    #[error(
        "the snapshot set of {instruments} instruments takes {bytes} bytes: more than a WAL segment of {segment_bytes} bytes holds"
    )]
    SnapshotSetTooLarge {
        /// Instruments in the set.
        instruments: usize,
        /// The set's WAL bytes.
        bytes: u64,
        /// The configured segment size.
        segment_bytes: u64,
    },
    /// A replica ([`crate::FeedPublisher::replicate`]) was given a record
    /// whose seq is not the next one: a replica never leaves a hole of its
    /// own, repeats or reorders a record. Nothing of the batch was
    /// published.
    #[error("replica: expected seq {expected}, got seq {got}")]
    ReplicaSeq {
        /// The seq the replica publishes next.
        expected: u64,
        /// The seq of the record given.
        got: u64,
    },
    /// Rebuilding the publisher's books from its WAL found a record that
    /// does not apply (a delta before its snapshot, an invalid book): the
    /// WAL's history is inconsistent at that seq.
    #[error("recovering the books from the WAL: record seq {seq}: {source}")]
    Recovery {
        /// The record's seq.
        seq: u64,
        /// Why it does not apply.
        #[source]
        source: Box<Error>,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
