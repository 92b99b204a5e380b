//! The crate's local error type: failures of this process, not of the remote peer.
//!
//! A failed call is reported as a [`Status`](crate::Status); an [`Error`] is what the
//! builders and metadata setters return when they are given something they cannot use.

use std::error::Error as StdError;
use std::fmt;

/// A local failure: bad configuration, an invalid target or metadata, or an i/o error
/// while binding.
pub struct Error {
    kind: Kind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What went wrong, grouped by cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A metadata key or value that gRPC does not allow.
    InvalidMetadata,
    /// A channel target that cannot be parsed or is not supported.
    InvalidTarget,
    /// A builder setting outside its allowed range.
    InvalidConfig,
    /// A certificate, key or TLS setting that cannot be used.
    InvalidTls,
    /// The operating system refused an operation (bind, spawning a thread).
    Io,
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn invalid_metadata(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidMetadata, message)
    }

    pub(crate) fn invalid_target(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidTarget, message)
    }

    pub(crate) fn invalid_config(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidConfig, message)
    }

    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn invalid_tls(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidTls, message)
    }

    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Error {
        Error {
            source: Some(Box::new(source)),
            ..Error::new(Kind::Io, message)
        }
    }

    /// Whether a metadata key or value was rejected.
    pub fn is_invalid_metadata(&self) -> bool {
        self.kind == Kind::InvalidMetadata
    }

    /// Whether a channel target could not be parsed or is not supported.
    pub fn is_invalid_target(&self) -> bool {
        self.kind == Kind::InvalidTarget
    }

    /// Whether a builder setting was out of range.
    pub fn is_invalid_config(&self) -> bool {
        self.kind == Kind::InvalidConfig
    }

    /// Whether a certificate, key or TLS setting could not be used (a PEM that does not
    /// parse, a key that does not match its certificate).
    pub fn is_invalid_tls(&self) -> bool {
        self.kind == Kind::InvalidTls
    }

    /// Whether the operating system refused an operation; [`source`](StdError::source) is
    /// the [`std::io::Error`].
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

/// Prints this error's own description; the cause, if any, is its
/// [`source`](StdError::source) (as hyper and most error-reporting crates expect, so a
/// report does not show the cause twice).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_error_itself_and_the_cause_is_its_source() {
        let cause = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let error = Error::io("cannot bind the server address", cause);
        assert_eq!(error.to_string(), "cannot bind the server address");
        let source = error.source().expect("the cause");
        assert_eq!(source.to_string(), "address in use");
        assert!(error.is_io());
    }
}
