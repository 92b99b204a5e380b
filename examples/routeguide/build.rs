//! Generates the route guide's messages and stubs; no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(&["../proto/routeguide/route_guide.proto"], &["../proto"])?;
    Ok(())
}
