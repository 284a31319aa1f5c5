//! One error type for the whole core: a kind that hosts key on (the page, the JS API, the CLI's
//! exit code) and one line of message a user can act on.

use std::fmt;

/// What went wrong, as the page and the JS API see it (`kind` on a thrown JS error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The host could not read or write (permissions, disk full, a dropped Blob).
    Io,
    /// A structure the image declares lies (partly) past the end of its file.
    Truncated,
    /// The metadata contradicts itself or the spec.
    Corrupt,
    /// A valid image using something vmdisk does not handle (yet).
    Unsupported,
    /// The file is not a disk image at all (empty, compressed archive, ...).
    NotAnImage,
    /// A companion file (backing file, extent) that the user did not supply.
    Missing,
    /// The caller's request makes no sense (bad option, output equals input).
    Invalid,
    /// The host asked the copy to stop.
    Cancelled,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Io,
        ErrorKind::Truncated,
        ErrorKind::Corrupt,
        ErrorKind::Unsupported,
        ErrorKind::NotAnImage,
        ErrorKind::Missing,
        ErrorKind::Invalid,
        ErrorKind::Cancelled,
    ];

    /// The stable name hosts match on.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NotAnImage => "not-an-image",
            ErrorKind::Missing => "missing",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How a message of this kind starts when printed.
    fn prefix(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Truncated => "truncated image",
            ErrorKind::Corrupt => "corrupt image",
            ErrorKind::Unsupported => "not supported",
            ErrorKind::NotAnImage => "not a disk image",
            ErrorKind::Missing => "missing file",
            ErrorKind::Invalid => "invalid request",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// The specifics, without the kind's prefix (empty for a cancellation).
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn io(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Io, message)
    }
    pub fn truncated(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Truncated, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corrupt, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unsupported, message)
    }
    pub fn not_an_image(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotAnImage, message)
    }
    pub fn missing(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Missing, message)
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, message)
    }
    pub fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, String::new())
    }

    pub fn is_cancelled(&self) -> bool {
        self.kind == ErrorKind::Cancelled
    }

    /// The same error with `what` in front of its message ("backing file x: ..."); a
    /// cancellation stays as it is.
    pub fn context(self, what: impl fmt::Display) -> Error {
        self.map_message(|m| format!("{what}: {m}"))
    }

    /// The same kind with the message rewritten; a cancellation stays as it is.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Error {
        match self.kind {
            ErrorKind::Cancelled => self,
            kind => Error::new(kind, f(self.message)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Cancelled => f.write_str("cancelled"),
            kind => write!(f, "{}: {}", kind.prefix(), self.message),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_context_keeps_the_kind() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(k.name()), Some(k));
        }
        let e = Error::corrupt("bad table").context("backing file \"b\"");
        assert_eq!(e.kind, ErrorKind::Corrupt);
        assert_eq!(
            e.to_string(),
            "corrupt image: backing file \"b\": bad table"
        );
        assert_eq!(Error::cancelled().context("x").to_string(), "cancelled");
    }
}
