#[rsgrpc::grpc_service(
    proto = ["ui-protos/helloworld.proto", "no/such/other.proto"],
    includes = ["ui-protos"]
)]
pub mod second {}

fn main() {}
