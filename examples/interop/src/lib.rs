//! gRPC's interop test service ("interop test descriptions"), served and called with
//! rsgrpc's generated stubs in both flavours.
//!
//! `interop-server --port P [--flavour async|blocking]` (which also serves the standard
//! health and reflection services) and
//! `interop-client --server_host H --server_port P --test_case NAME [--flavour ...]`.

use std::time::Duration;

use rsgrpc::{MetadataMap, Request, Response, Status};

/// Messages and stubs generated from `tests/proto/grpc/testing/test.proto`.
pub mod testing {
    rsgrpc::include_proto!("grpc.testing");
}

/// The encoded descriptors of the interop protos (with their comments), written by the
/// build script, for the reflection service.
pub const DESCRIPTORS: &[u8] = rsgrpc::include_file_descriptor_set!("interop_descriptor");

pub mod client;
pub mod server;

use testing::{EchoStatus, Payload, PayloadType};

/// Header echoed back in the response headers.
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
/// Binary header echoed back in the trailers.
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// The value of a command-line flag, given as `--name value` or `--name=value` (the forms
/// gRPC's own interop binaries accept).
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            let prefix = format!("{name}=");
            args.iter()
                .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
        })
}

/// A payload of `size` zero bytes.
pub fn payload(size: i32) -> Option<Payload> {
    Some(Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; usize::try_from(size).unwrap_or(0)],
    })
}

/// The status a request asks the server to answer with, if any.
pub fn requested_status(status: Option<&EchoStatus>) -> Result<(), Status> {
    match status {
        Some(s) if s.code != 0 => Err(Status::new(
            rsgrpc::Code::try_from(s.code).unwrap_or(rsgrpc::Code::Unknown),
            s.message.clone(),
        )),
        _ => Ok(()),
    }
}

/// The echo headers and trailers of the custom_metadata case.
pub fn echo_metadata(request: &MetadataMap) -> (MetadataMap, MetadataMap) {
    let mut headers = MetadataMap::new();
    let mut trailers = MetadataMap::new();
    if let Some(value) = request.get(ECHO_INITIAL) {
        let _ = headers.insert(ECHO_INITIAL, value);
    }
    if let Some(value) = request.get_bin(ECHO_TRAILING) {
        let _ = trailers.insert_bin(ECHO_TRAILING, &value);
    }
    (headers, trailers)
}

/// Puts echoed metadata on a response.
pub fn with_echo<T>(request: &MetadataMap, message: T) -> Response<T> {
    let (headers, trailers) = echo_metadata(request);
    let mut response = Response::new(message);
    *response.metadata_mut() = headers;
    *response.trailers_mut() = trailers;
    response
}

/// A request carrying the custom_metadata case's headers.
pub fn with_custom_metadata<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let _ = request
        .metadata_mut()
        .insert(ECHO_INITIAL, "test_initial_metadata_value");
    let _ = request
        .metadata_mut()
        .insert_bin(ECHO_TRAILING, [0xab, 0xab, 0xab]);
    request
}

/// Converts a `ResponseParameters.interval_us`.
pub fn interval(us: i32) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// Every test case this client implements, in the order `--test_case all` runs them.
pub const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "custom_metadata",
];
