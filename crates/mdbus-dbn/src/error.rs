//! The error type of `mdbus-dbn`.

use std::path::PathBuf;

/// What went wrong in an import. Every variant but [`Error::Thread`] names
/// the file, and the record index or instrument concerned; what came
/// before it is in the WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file cannot be opened or is not DBN (bad magic, bad metadata).
    #[error("{}: not a readable DBN file: {source}", file.display())]
    Open {
        /// The file.
        file: PathBuf,
        /// The decoder's error.
        source: dbn::Error,
    },
    /// A record that cannot be decoded (a truncated or corrupt file): the
    /// records before it were imported.
    #[error("{}: record {index} cannot be decoded (truncated or corrupt; the {index} records before it were imported): {source}", file.display())]
    Decode {
        /// The file.
        file: PathBuf,
        /// The index of the record, from 0.
        index: u64,
        /// The decoder's error.
        source: dbn::Error,
    },
    /// A schema this import does not map to mdbus records.
    #[error("{}: schema {schema} is not imported (mbp-10, mbp-1, tbbo, trades and mbo are)", file.display())]
    Schema {
        /// The file.
        file: PathBuf,
        /// The file's schema (`none`: mixed or unknown).
        schema: String,
    },
    /// An instrument without a usable mdbus symbol.
    #[error("{}: record {index}: instrument_id {instrument_id}: {reason}", file.display())]
    Symbol {
        /// The file.
        file: PathBuf,
        /// The index of the record, from 0.
        index: u64,
        /// DBN's instrument id.
        instrument_id: u32,
        /// What is wrong (no symbol, too long, ...) and what to pass.
        reason: String,
    },
    /// The publisher refused a record or could not write it (WAL full,
    /// invalid book).
    #[error("{}: publishing: {source}", file.display())]
    Publish {
        /// The file being imported.
        file: PathBuf,
        /// The publisher's error.
        source: mdbus_publisher::Error,
    },
    /// The import's reading thread could not be started (the system is
    /// out of threads or memory): nothing was read.
    #[error("cannot start the import's reading thread: {source}")]
    Thread {
        /// The system's error.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
