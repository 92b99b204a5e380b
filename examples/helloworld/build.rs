//! Generates the greeter's messages and stubs from `helloworld.proto`; no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rsgrpc_codegen::compile_protos(&["../proto/helloworld/helloworld.proto"], &["../proto"])?;
    Ok(())
}
