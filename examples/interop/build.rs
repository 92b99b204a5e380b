//! Generates the interop service's rsgrpc stubs and its encoded descriptors (for the
//! reflection service), and, for the tonic peer used in the tests,
//! tonic's own stubs (from the same descriptors, parsed without protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["../../tests/proto/grpc/testing/test.proto"];
    let includes = ["../../tests/proto"];
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    rsgrpc_codegen::Builder::new()
        .file_descriptor_set_path(out_dir.join("interop_descriptor.bin"))
        // Payloads as `Bytes`: the long ones go out without being copied into their
        // message's encoding, to every peer the tests call.
        .bytes(".grpc.testing.Payload.body")
        .compile(&protos, &includes)?;

    let descriptors = rsgrpc_codegen::Builder::new().parse(&protos, &includes)?;
    let tonic_dir = out_dir.join("tonic");
    std::fs::create_dir_all(&tonic_dir)?;
    tonic_prost_build::configure()
        .out_dir(&tonic_dir)
        .compile_fds(descriptors)?;
    Ok(())
}
