//! Generates both services' messages and stubs; no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(&["../proto/mixed/mixed.proto"], &["../proto"])?;
    Ok(())
}
