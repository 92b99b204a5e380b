//! Generates the shop and price-list stubs the example traces through; no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(&["../proto/mixed/mixed.proto"], &["../proto"])?;
    Ok(())
}
