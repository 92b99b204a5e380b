#[rsgrpc::grpc_service(proto = "ui-protos/empty.proto", client = "yes")]
pub mod bad {}

fn main() {}
