//! The error type of `mdbus-types`.

/// What went wrong in `mdbus-types`. Every variant names the input concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A price string or float that is malformed or out of range.
    #[error("invalid price {input:?}: {reason}")]
    Price {
        /// The text (or float) given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An instrument symbol outside docs/spec.md's rules.
    #[error("invalid instrument symbol {symbol:?}: {reason}")]
    Instrument {
        /// The symbol given (lossy UTF-8 for raw bytes).
        symbol: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A feed name outside `[A-Za-z0-9_-]{1,32}`.
    #[error("invalid feed name {feed:?}: {reason} (1 to 32 characters of [A-Za-z0-9_-])")]
    FeedName {
        /// The name given.
        feed: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A thread that cannot be pinned to a CPU.
    #[error("cannot pin the thread to CPU {cpu}: {reason}")]
    Affinity {
        /// The CPU asked for.
        cpu: usize,
        /// Why not.
        reason: String,
    },
    /// A path that is not a WAL feed folder `<root>/<feed>`.
    #[error("{path} is not a WAL feed folder <root>/<feed>: {reason}")]
    FeedDir {
        /// The path given.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A record header whose `kind` is not one of the known kinds.
    #[error("unknown record kind {kind} (seq {seq})")]
    UnknownKind {
        /// The `kind` field found.
        kind: u16,
        /// The record's `seq`.
        seq: u64,
    },
    /// A byte slice that is not the size of the record it should hold.
    #[error("{record}: expected {expected} bytes, got {actual}")]
    Size {
        /// The record type.
        record: &'static str,
        /// Its size.
        expected: usize,
        /// The slice length given.
        actual: usize,
    },
    /// A `BookSnapshot` that breaks docs/spec.md's record rules.
    #[error("invalid book snapshot for {instrument} (seq {seq}): {reason}")]
    Snapshot {
        /// The snapshot's instrument.
        instrument: String,
        /// Its `seq`.
        seq: u64,
        /// Which rule it breaks.
        reason: String,
    },
    /// A `BookDelta` that cannot be applied; the book is left unchanged.
    #[error("invalid book delta for {instrument} (seq {seq}): {reason}")]
    Delta {
        /// The delta's instrument.
        instrument: String,
        /// Its `seq`.
        seq: u64,
        /// Why it was refused.
        reason: String,
    },
    /// A Unix group that does not exist, that the user is not in, or that
    /// cannot be given to a feed's file (`mdbus publish --group`).
    #[error("group {group}: {reason}")]
    Group {
        /// The group given.
        group: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON record that cannot be turned into a record.
    #[error("invalid JSON record: {0}")]
    Json(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
