//! One error type for the whole core: a kind that hosts key on (the page, the JS API, the CLI's
//! exit code) and one line of message a user can act on.

use std::fmt;

/// One table for the error kinds: the enum, its stable names, the printed prefixes and the
/// constructors of [`Error`] (so that a new kind cannot miss one of them).
macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $kind:ident = $name:literal, $prefix:literal $(, fn $new:ident)?; )*) => {
        /// What went wrong, as the page and the JS API see it (`kind` on a thrown JS error).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorKind {
            $( $(#[$doc])* $kind, )*
        }

        impl ErrorKind {
            pub const ALL: [ErrorKind; [$(ErrorKind::$kind),*].len()] = [$(ErrorKind::$kind),*];

            /// The stable name hosts match on.
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorKind::$kind => $name, )*
                }
            }

            /// How a message of this kind starts when printed.
            fn prefix(self) -> &'static str {
                match self {
                    $( ErrorKind::$kind => $prefix, )*
                }
            }
        }

        impl Error {
            $($(
                pub fn $new(message: impl Into<String>) -> Error {
                    Error::new(ErrorKind::$kind, message)
                }
            )?)*
        }
    };
}

error_kinds! {
    /// The host could not read or write (permissions, disk full, a dropped Blob).
    Io = "io", "I/O error", fn io;
    /// A structure the image declares lies (partly) past the end of its file.
    Truncated = "truncated", "truncated image", fn truncated;
    /// The metadata contradicts itself or the spec.
    Corrupt = "corrupt", "corrupt image", fn corrupt;
    /// A valid image using something vmdisk does not handle (yet).
    Unsupported = "unsupported", "not supported", fn unsupported;
    /// The file is not a disk image at all (empty, compressed archive, ...).
    NotAnImage = "not-an-image", "not a disk image", fn not_an_image;
    /// A companion file (backing file, extent) that the user did not supply.
    Missing = "missing", "missing file", fn missing;
    /// The caller's request makes no sense (bad option, output equals input).
    Invalid = "invalid", "invalid request", fn invalid;
    /// The host asked the copy to stop.
    Cancelled = "cancelled", "cancelled";
}

impl ErrorKind {
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
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
