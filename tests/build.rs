//! Generates stubs for the echo service (used against the tonic peer) and for gRPC's
//! interop test service.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(
        &["proto/echo/echo.proto", "proto/grpc/testing/test.proto"],
        &["proto"],
    )?;
    Ok(())
}
