//! The error type of `mdbus-bridge`.

/// What went wrong in a bridge, or what is wrong with a message it got.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Zenoh refused an operation (open, declare, put, get, reply).
    #[error("zenoh: {what}: {message}")]
    Zenoh {
        /// The operation.
        what: &'static str,
        /// Zenoh's message.
        message: String,
    },
    /// The local iceoryx2 transport failed.
    #[error("transport: {0}")]
    Transport(#[from] mdbus_transport::Error),
    /// The local subscriber of the sending bridge failed.
    #[error("subscriber: {0}")]
    Subscriber(#[from] mdbus_subscriber::Error),
    /// The replica's publisher failed (WAL, board, transport, seq).
    #[error("replica: {0}")]
    Publisher(#[from] mdbus_publisher::Error),
    /// The WAL failed.
    #[error("WAL: {0}")]
    Wal(#[from] mdbus_wal::Error),
    /// A bad name or record.
    #[error("record: {0}")]
    Record(#[from] mdbus_types::Error),
    /// The sending bridge needs the feed's WAL (to answer gap-fill
    /// queries) and found none: pass `--wal`.
    #[error("feed {feed}: no WAL given and the publisher announces none: pass --wal")]
    NoWal {
        /// The feed.
        feed: String,
    },
    /// A message whose length is not a whole number of records: it ends
    /// inside the record at `offset`.
    #[error("message of {len} bytes ends inside the record at byte {offset}")]
    Truncated {
        /// Byte offset of the cut record.
        offset: usize,
        /// The message's length.
        len: usize,
    },
    /// A record kind that no record has.
    #[error("record at byte {offset}: unknown kind {kind}")]
    UnknownKind {
        /// Byte offset of the record.
        offset: usize,
        /// The kind found.
        kind: u16,
    },
    /// The records of a message (or a gap-fill reply) do not follow one
    /// another in seq.
    #[error("record at byte {offset}: seq {got}, expected {expected}")]
    SeqNotDense {
        /// Byte offset of the record.
        offset: usize,
        /// The seq that should follow.
        expected: u64,
        /// The seq found.
        got: u64,
    },
    /// A message without a record.
    #[error("empty message")]
    Empty,
    /// A payload without the checksum attachment every bridge payload
    /// carries.
    #[error(
        "payload of {len} bytes has no checksum attachment (4 bytes, its CRC-32C), which every `bridge out` payload \
         carries: a sender from before the checksum, or not a bridge"
    )]
    NoChecksum {
        /// The payload's length.
        len: usize,
    },
    /// A checksum attachment that is not 4 bytes.
    #[error("checksum attachment of {len} bytes, expected 4 (the payload's CRC-32C)")]
    BadChecksumLength {
        /// The attachment's length.
        len: usize,
    },
    /// A payload whose bytes do not give the checksum it came with: it
    /// changed on the way.
    #[error(
        "payload of {len} bytes: its CRC-32C {computed:08x} does not match the attached {attached:08x} (changed in transit)"
    )]
    ChecksumMismatch {
        /// The payload's length.
        len: usize,
        /// The checksum attached by the sender.
        attached: u32,
        /// The checksum of the bytes received.
        computed: u32,
    },
    /// A gap-fill query or answer that does not parse.
    #[error("bad gap-fill {what}: {text:?}")]
    BadQuery {
        /// What was parsed (a range, an error reply).
        what: &'static str,
        /// The text.
        text: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Zenoh's boxed error with the operation it came from.
pub(crate) fn zenoh_err(what: &'static str) -> impl FnOnce(zenoh::Error) -> Error {
    move |e| Error::Zenoh {
        what,
        message: e.to_string(),
    }
}
