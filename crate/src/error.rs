//! One error type for the whole core. Every message is one line a user can act on.

use thiserror::Error;

#[derive(Clone, Debug, Error)]
pub enum Error {
    /// The host could not read or write (permissions, disk full, a dropped Blob).
    #[error("I/O error: {0}")]
    Io(String),
    /// A structure the image declares lies (partly) past the end of its file.
    #[error("truncated image: {0}")]
    Truncated(String),
    /// The metadata contradicts itself or the spec.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// A valid image using something vmdisk does not handle (yet).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The file is not a disk image at all (empty, compressed archive, ...).
    #[error("not a disk image: {0}")]
    NotAnImage(String),
    /// A companion file (backing file, extent) that the user did not supply.
    #[error("missing file: {0}")]
    Missing(String),
    /// The caller's request makes no sense (bad option, output equals input).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The host asked the copy to stop.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
