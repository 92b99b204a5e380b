#[rsgrpc::grpc_service(
    proto = ["../../../../examples/proto/helloworld/helloworld.proto", "no/such/other.proto"],
    includes = ["../../../../examples/proto"]
)]
pub mod second {}

fn main() {}
