//! [`Error`]: what went wrong while reading `.proto` files or generating code.

use std::fmt;
use std::path::Path;

/// A code-generation failure, naming the file (and line and column where known) or the
/// proto element.
///
/// Its `Debug` output is its `Display` text, since `Debug` is what a build script that
/// returns `Result<(), Box<dyn Error>>` prints when it fails.
pub struct Error {
    kind: Kind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A `.proto` file is malformed, or refers to a type that does not exist.
    Invalid,
    /// A `.proto` file or an import could not be found.
    NotFound,
    /// A setting or option is not understood.
    Option,
    /// Reading or writing a file, or running protoc, failed.
    Io,
}

impl Error {
    fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// From a protox error: `file:line:column: message` when a location is known, and for
    /// files not found, the include paths searched.
    pub(crate) fn parse(err: protox::Error, includes: &[impl AsRef<Path>]) -> Error {
        use miette::Diagnostic;
        let mut message = err.to_string();
        let location = err
            .labels()
            .and_then(|mut labels| labels.next())
            .and_then(|label| {
                let source = err.source_code()?;
                let span = source.read_span(label.inner(), 0, 0).ok()?;
                Some((
                    span.line() + 1,
                    span.column() + 1,
                    label.label().map(str::to_owned),
                ))
            });
        if let Some((line, column, label)) = location {
            let file = err.file().unwrap_or("<input>");
            message = format!("{file}:{line}:{column}: {message}");
            if let Some(label) = label {
                message.push_str(&format!(" ({label})"));
            }
        } else if let Some(file) = err.file() {
            if !message.contains(file) {
                message = format!("{file}: {message}");
            }
        }
        if let Some(help) = err.help() {
            message.push_str(&format!("; {help}"));
        }
        let kind = if err.is_file_not_found() {
            let searched: Vec<String> = includes
                .iter()
                .map(|p| p.as_ref().display().to_string())
                .collect();
            message.push_str(&format!(
                "; include paths searched: {}",
                if searched.is_empty() {
                    "none".to_owned()
                } else {
                    searched.join(", ")
                }
            ));
            Kind::NotFound
        } else if err.is_io() {
            Kind::Io
        } else {
            Kind::Invalid
        };
        Error {
            source: Some(Box::new(err)),
            ..Error::new(kind, message)
        }
    }

    /// A file written in protobuf editions, which the parsers and prost-build do not
    /// support: the same text whichever way the file came in.
    pub(crate) fn editions(file: &str) -> Error {
        Error::new(
            Kind::Invalid,
            format!(
                "{file}: protobuf editions (`edition = \"...\"`) are not supported yet: \
                 prost-build, which generates the messages, and protox, which parses .proto \
                 files without protoc, know only proto2 and proto3; declare `syntax = \
                 \"proto3\"` (or \"proto2\") in this file instead of its edition"
            ),
        )
    }

    pub(crate) fn protoc(message: String) -> Error {
        Error::new(Kind::Invalid, format!("protoc failed: {message}"))
    }

    pub(crate) fn generate(message: String) -> Error {
        Error::new(Kind::Invalid, format!("cannot generate code: {message}"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(Kind::Invalid, message)
    }

    pub(crate) fn missing_descriptor(name: &str) -> Error {
        Error::new(
            Kind::NotFound,
            format!("{name} was asked for but is not among the parsed files"),
        )
    }

    pub(crate) fn option(message: impl Into<String>) -> Error {
        Error::new(Kind::Option, message)
    }

    pub(crate) fn io(message: impl Into<String>, source: Option<std::io::Error>) -> Error {
        Error {
            source: source.map(|e| Box::new(e) as _),
            ..Error::new(Kind::Io, message)
        }
    }

    /// Whether a `.proto` file is malformed or refers to something that does not exist.
    pub fn is_invalid(&self) -> bool {
        self.kind == Kind::Invalid
    }

    /// Whether a `.proto` file or import could not be found.
    pub fn is_not_found(&self) -> bool {
        self.kind == Kind::NotFound
    }

    /// Whether an option was not understood.
    pub fn is_option(&self) -> bool {
        self.kind == Kind::Option
    }

    /// Whether reading, writing or running protoc failed.
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.kind == Kind::Io {
            if let Some(source) = &self.source {
                write!(f, ": {source}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}
