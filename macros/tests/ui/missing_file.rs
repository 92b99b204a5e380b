#[rsgrpc::grpc_service(proto = "no/such/file.proto")]
pub mod missing {}

fn main() {}
