//! Generates the interop service's rsgrpc stubs, and, for the tonic peer used in the tests,
//! tonic's own stubs (from the same descriptors, parsed without protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["../../tests/proto/grpc/testing/test.proto"];
    let includes = ["../../tests/proto"];
    rsgrpc_codegen::compile_protos(&protos, &includes)?;

    let descriptors = rsgrpc_codegen::Builder::new().parse(&protos, &includes)?;
    let tonic_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("tonic");
    std::fs::create_dir_all(&tonic_dir)?;
    tonic_prost_build::configure()
        .out_dir(&tonic_dir)
        .compile_fds(descriptors)?;
    Ok(())
}
