//! Generates stubs for the echo service (used against the tonic peer) and for gRPC's
//! interop test service, and the echo service again with default stubs.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(
        &["proto/echo/echo.proto", "proto/grpc/testing/test.proto"],
        &["proto"],
    )?;
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").ok_or("no OUT_DIR")?);
    rsgrpc_codegen::Builder::new()
        .generate_default_stubs(true)
        .out_dir(out_dir.join("defaults"))
        .compile(&["proto/echo/echo.proto"], &["proto"])?;
    Ok(())
}
