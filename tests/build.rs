//! Generates stubs for the echo service, used against the tonic peer.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(&["proto/echo/echo.proto"], &["proto"])?;
    Ok(())
}
