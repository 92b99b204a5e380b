//! The outcome of a call: [`Status`] and its [`Code`].
//!
//! On the wire a status travels in the `grpc-status`, `grpc-message` (percent-encoded UTF-8)
//! and `grpc-status-details-bin` trailers, as gRPC's PROTOCOL-HTTP2 document describes.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http::header::HeaderValue;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, percent_encode};

use crate::metadata::MetadataMap;

/// Header carrying the numeric status code.
pub(crate) const GRPC_STATUS: &str = "grpc-status";
/// Header carrying the percent-encoded status message.
pub(crate) const GRPC_MESSAGE: &str = "grpc-message";
/// Header carrying the binary status details (usually a `google.rpc.Status`).
pub(crate) const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

/// gRPC status codes, as defined in gRPC's `statuscodes.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Not an error; returned on success.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error, for example a status from another address space that is not known here.
    Unknown = 2,
    /// The client specified an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity that a client attempted to create already exists.
    AlreadyExists = 6,
    /// The caller does not have permission to execute the operation.
    PermissionDenied = 7,
    /// Some resource has been exhausted, such as a per-user quota or a message size limit.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation's execution.
    FailedPrecondition = 9,
    /// The operation was aborted, typically due to a concurrency issue.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or not supported by this service.
    Unimplemented = 12,
    /// Internal error: an invariant expected by the underlying system was broken.
    Internal = 13,
    /// The service is currently unavailable; retrying may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request does not have valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// All seventeen codes, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code's number on the wire.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code's canonical name, as in service configs (`UNAVAILABLE`).
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 17] = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        NAMES[self as usize]
    }

    /// The code with a canonical name (`UNAVAILABLE`; case-insensitive).
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL
            .into_iter()
            .find(|code| code.name().eq_ignore_ascii_case(name))
    }

    /// A short description of the code, in the words of gRPC's status code table.
    pub fn description(self) -> &'static str {
        match self {
            Code::Ok => "the operation completed successfully",
            Code::Cancelled => "the operation was cancelled",
            Code::Unknown => "unknown error",
            Code::InvalidArgument => "client specified an invalid argument",
            Code::DeadlineExceeded => "deadline expired before operation could complete",
            Code::NotFound => "some requested entity was not found",
            Code::AlreadyExists => "some entity that we attempted to create already exists",
            Code::PermissionDenied => {
                "the caller does not have permission to execute the specified operation"
            }
            Code::ResourceExhausted => "some resource has been exhausted",
            Code::FailedPrecondition => {
                "the system is not in a state required for the operation's execution"
            }
            Code::Aborted => "the operation was aborted",
            Code::OutOfRange => "operation was attempted past the valid range",
            Code::Unimplemented => "operation is not implemented or not supported",
            Code::Internal => "internal error",
            Code::Unavailable => "the service is currently unavailable",
            Code::DataLoss => "unrecoverable data loss or corruption",
            Code::Unauthenticated => "the request does not have valid authentication credentials",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        };
        f.write_str(name)
    }
}

/// A wire status number that is not one of the seventeen gRPC codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownCode(pub i32);

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a grpc status code", self.0)
    }
}

impl StdError for UnknownCode {}

impl TryFrom<i32> for Code {
    type Error = UnknownCode;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Code::ALL.get(i).copied())
            .ok_or(UnknownCode(value))
    }
}

/// The outcome of a gRPC call: a [`Code`], a message, optional binary details and metadata.
///
/// A handler returns `Err(Status)` to fail a call; a client receives one when the call fails.
///
/// ```
/// use rsgrpc::{Code, Status};
///
/// let status = Status::not_found("no feature at 40.7, -74.0");
/// assert_eq!(status.code(), Code::NotFound);
/// assert_eq!(status.message(), "no feature at 40.7, -74.0");
/// ```
#[derive(Clone)]
pub struct Status {
    code: Code,
    message: String,
    /// Details, metadata and source: rarely set, so kept out of line to keep `Status` (and
    /// every `Result<_, Status>`) small.
    extra: Option<Box<Extra>>,
}

#[derive(Clone, Default)]
struct Extra {
    details: Bytes,
    metadata: MetadataMap,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

static NO_DETAILS: Bytes = Bytes::new();
static NO_METADATA: std::sync::OnceLock<MetadataMap> = std::sync::OnceLock::new();

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
            extra: None,
        }
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// A status carrying binary details, sent as `grpc-status-details-bin`.
    pub fn with_details(code: Code, message: impl Into<String>, details: Bytes) -> Status {
        let mut status = Status::new(code, message);
        if !details.is_empty() {
            status.extra_mut().details = details;
        }
        status
    }

    constructors! {
        /// An `OK` status.
        ok => Ok,
        /// A `CANCELLED` status.
        cancelled => Cancelled,
        /// An `UNKNOWN` status.
        unknown => Unknown,
        /// An `INVALID_ARGUMENT` status.
        invalid_argument => InvalidArgument,
        /// A `DEADLINE_EXCEEDED` status.
        deadline_exceeded => DeadlineExceeded,
        /// A `NOT_FOUND` status.
        not_found => NotFound,
        /// An `ALREADY_EXISTS` status.
        already_exists => AlreadyExists,
        /// A `PERMISSION_DENIED` status.
        permission_denied => PermissionDenied,
        /// A `RESOURCE_EXHAUSTED` status.
        resource_exhausted => ResourceExhausted,
        /// A `FAILED_PRECONDITION` status.
        failed_precondition => FailedPrecondition,
        /// An `ABORTED` status.
        aborted => Aborted,
        /// An `OUT_OF_RANGE` status.
        out_of_range => OutOfRange,
        /// An `UNIMPLEMENTED` status.
        unimplemented => Unimplemented,
        /// An `INTERNAL` status.
        internal => Internal,
        /// An `UNAVAILABLE` status.
        unavailable => Unavailable,
        /// A `DATA_LOSS` status.
        data_loss => DataLoss,
        /// An `UNAUTHENTICATED` status.
        unauthenticated => Unauthenticated,
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The status message (decoded from its percent-encoded wire form).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The binary details, empty when none were sent.
    pub fn details(&self) -> &Bytes {
        self.extra.as_ref().map_or(&NO_DETAILS, |e| &e.details)
    }

    /// Trailing metadata sent with the status (other than the status headers themselves).
    pub fn metadata(&self) -> &MetadataMap {
        match &self.extra {
            Some(extra) => &extra.metadata,
            None => NO_METADATA.get_or_init(MetadataMap::new),
        }
    }

    /// Mutable access to the trailing metadata sent with this status.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.extra_mut().metadata
    }

    /// Attaches the local error that caused this status; see [`std::error::Error::source`].
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Status {
        self.extra_mut().source = Some(Arc::new(source));
        self
    }

    /// Whether the code is [`Code::Ok`].
    pub fn is_ok(&self) -> bool {
        self.code == Code::Ok
    }

    /// Writes `grpc-status`, `grpc-message` and `grpc-status-details-bin` (and this status'
    /// metadata) into `headers`.
    pub(crate) fn write_headers(&self, headers: &mut HeaderMap) {
        self.metadata().write_to(headers);
        headers.insert(GRPC_STATUS, HeaderValue::from(self.code.as_i32()));
        if !self.message.is_empty() {
            let encoded = encode_message(&self.message);
            // Percent-encoding leaves only visible ASCII, which is always a valid value.
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(GRPC_MESSAGE, value);
            }
        }
        if !self.details().is_empty() {
            let encoded = crate::metadata::encode_binary(self.details());
            headers.insert(GRPC_STATUS_DETAILS, encoded);
        }
    }

    /// Reads a status from trailers (or from the headers of a Trailers-Only response).
    ///
    /// Returns `None` when there is no `grpc-status` header at all.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Status> {
        let raw = headers.get(GRPC_STATUS)?;
        let parsed = raw.to_str().ok().and_then(|s| s.trim().parse::<i32>().ok());
        let message = headers
            .get(GRPC_MESSAGE)
            .map(|v| decode_message(v.as_bytes()))
            .unwrap_or_default();
        let mut status = match parsed.map(Code::try_from) {
            Some(Ok(code)) => Status::new(code, message),
            Some(Err(UnknownCode(n))) => Status::new(
                Code::Unknown,
                format!("peer sent unknown grpc-status {n}: {message}"),
            ),
            None => Status::new(
                Code::Unknown,
                format!("peer sent malformed grpc-status {raw:?}: {message}"),
            ),
        };
        if let Some(details) = headers.get(GRPC_STATUS_DETAILS) {
            match crate::metadata::decode_binary(details.as_bytes()) {
                Ok(bytes) if !bytes.is_empty() => status.extra_mut().details = bytes,
                Ok(_) => {}
                Err(_) => {
                    tracing::debug!("ignoring grpc-status-details-bin that is not base64");
                }
            }
        }
        let metadata = MetadataMap::from_headers(headers);
        if !metadata.is_empty() {
            status.extra_mut().metadata = metadata;
        }
        Some(status)
    }

    /// The status a client reports for an HTTP response without `grpc-status`, following
    /// gRPC's "HTTP to gRPC status code mapping".
    pub(crate) fn from_http_status(status: http::StatusCode) -> Status {
        let code = match status.as_u16() {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        };
        Status::new(code, format!("peer answered with http status {status}"))
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.code).field("message", &self.message);
        if let Some(extra) = &self.extra {
            if !extra.details.is_empty() {
                d.field("details", &format_args!("{} bytes", extra.details.len()));
            }
            if !extra.metadata.is_empty() {
                d.field("metadata", &extra.metadata);
            }
            if let Some(source) = &extra.source {
                d.field("source", source);
            }
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "status {}", self.code)
        } else {
            write!(f, "status {}: {}", self.code, self.message)
        }
    }
}

impl StdError for Status {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.extra
            .as_ref()
            .and_then(|e| e.source.as_ref())
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

impl From<std::io::Error> for Status {
    fn from(err: std::io::Error) -> Status {
        Status::unavailable(format!("i/o error: {err}")).with_source(err)
    }
}

/// Bytes that must be percent-encoded in `grpc-message`: everything outside visible ASCII,
/// plus `%` itself (controls and non-ASCII are encoded by `percent_encode` already).
const MESSAGE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// Percent-encodes a status message for the `grpc-message` header.
pub(crate) fn encode_message(message: &str) -> String {
    percent_encode(message.as_bytes(), MESSAGE_ESCAPES).to_string()
}

/// Decodes a `grpc-message` header; invalid escapes and invalid UTF-8 are kept as they are
/// (lossily), as the protocol asks of receivers.
pub(crate) fn decode_message(raw: &[u8]) -> String {
    percent_decode(raw).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_stays_small() {
        assert!(std::mem::size_of::<Status>() <= 48);
    }

    #[test]
    fn every_code_round_trips_through_its_number() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(code.as_i32(), i as i32);
            assert_eq!(Code::try_from(i as i32), Ok(*code));
        }
        assert_eq!(Code::try_from(17), Err(UnknownCode(17)));
        assert_eq!(Code::try_from(-1), Err(UnknownCode(-1)));
        for code in Code::ALL {
            assert_eq!(Code::from_name(code.name()), Some(code));
        }
        assert_eq!(Code::from_name("unavailable"), Some(Code::Unavailable));
        assert_eq!(Code::from_name("NOPE"), None);
    }

    #[test]
    fn message_percent_encoding_round_trips() {
        let samples = [
            "",
            "plain ascii",
            "100% sure",
            "tab\tand\nnewline",
            "unicode: \u{1F600} é 中文",
            "%%%41",
            "\u{0}\u{7f}",
        ];
        for s in samples {
            let encoded = encode_message(s);
            assert!(
                encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
                "{encoded:?} is not visible ascii"
            );
            assert_eq!(decode_message(encoded.as_bytes()), s);
        }
        assert_eq!(encode_message("a%b"), "a%25b");
    }

    #[test]
    fn decoding_tolerates_bad_escapes() {
        assert_eq!(decode_message(b"50%"), "50%");
        assert_eq!(decode_message(b"%zz"), "%zz");
        assert_eq!(decode_message(b"%FF"), "\u{FFFD}");
    }

    #[test]
    fn status_round_trips_through_headers() {
        let mut status = Status::with_details(
            Code::FailedPrecondition,
            "bad state: ∞",
            Bytes::from_static(b"\x00\x01details"),
        );
        status.metadata_mut().insert("x-extra", "1").unwrap();
        let mut headers = HeaderMap::new();
        status.write_headers(&mut headers);
        let back = Status::from_headers(&headers).unwrap();
        assert_eq!(back.code(), Code::FailedPrecondition);
        assert_eq!(back.message(), "bad state: ∞");
        assert_eq!(&back.details()[..], b"\x00\x01details");
        assert_eq!(back.metadata().get("x-extra"), Some("1"));
        assert!(back.metadata().get("grpc-status").is_none());
    }

    #[test]
    fn unknown_wire_code_is_reported_not_remapped_silently() {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_STATUS, HeaderValue::from_static("42"));
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static("odd"));
        let status = Status::from_headers(&headers).unwrap();
        assert_eq!(status.code(), Code::Unknown);
        assert!(status.message().contains("42"), "{}", status.message());
        assert!(status.message().contains("odd"));
    }

    #[test]
    fn http_status_mapping() {
        assert_eq!(
            Status::from_http_status(http::StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
        assert_eq!(
            Status::from_http_status(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            Status::from_http_status(http::StatusCode::IM_A_TEAPOT).code(),
            Code::Unknown
        );
    }
}
