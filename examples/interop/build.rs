//! Generates the interop service's stubs from `tests/proto/grpc/testing`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(
        &["../../tests/proto/grpc/testing/test.proto"],
        &["../../tests/proto"],
    )?;
    Ok(())
}
