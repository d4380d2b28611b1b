//! The harness's error type.

use std::path::{Path, PathBuf};

/// What went wrong in the harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or socket operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file, socket or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A histogram could not be serialized, read or merged.
    #[error("histogram: {0}")]
    Histogram(String),
    /// A JSON file (run results, criterion estimates) is not what was expected.
    #[error("{path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A role process or thread failed, or a run could not be set up.
    #[error("{0}")]
    Run(String),
    /// A plot could not be drawn.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An mdbus transport error.
    #[error(transparent)]
    Transport(#[from] mdbus_transport::Error),
    /// An mdbus publisher error.
    #[error(transparent)]
    Publisher(#[from] mdbus_publisher::Error),
    /// An mdbus subscriber error.
    #[error(transparent)]
    Subscriber(#[from] mdbus_subscriber::Error),
}

impl Error {
    /// An [`Error::Io`] about `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;
