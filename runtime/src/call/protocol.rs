//! What client and server read alike from gRPC over HTTP/2: the content type that marks
//! a gRPC message stream, and the status an HTTP/2 error stands for.

use crate::status::Status;

/// Whether a `content-type` is gRPC's: `application/grpc`, optionally with a `+format`
/// or parameters.
pub(crate) fn is_grpc_content_type(value: Option<&http::HeaderValue>) -> bool {
    value.is_some_and(|v| {
        let v = v.as_bytes();
        v == b"application/grpc"
            || v.starts_with(b"application/grpc+")
            || v.starts_with(b"application/grpc;")
    })
}

/// The status for an HTTP/2 error, following gRPC's mapping of RST_STREAM codes.
pub(crate) fn h2_status(e: &h2::Error) -> Status {
    if let Some(reason) = e.reason() {
        if e.is_go_away() && reason == h2::Reason::NO_ERROR {
            return Status::unavailable("the server closed the connection (GOAWAY)");
        }
        let message = format!("stream reset by peer: {reason}");
        return match reason {
            h2::Reason::CANCEL => Status::cancelled(message),
            h2::Reason::REFUSED_STREAM => Status::unavailable(message),
            h2::Reason::ENHANCE_YOUR_CALM => Status::resource_exhausted(message),
            h2::Reason::INADEQUATE_SECURITY => Status::permission_denied(message),
            _ if e.is_go_away() => Status::unavailable(format!("connection closed: {reason}")),
            _ => Status::internal(message),
        };
    }
    if e.is_io() {
        return Status::unavailable(format!("connection lost: {e}"));
    }
    Status::internal(format!("http/2 error: {e}"))
}
