#[rsgrpc::grpc_service(proto = "ui-protos/empty.proto")]
pub mod empty {}

fn main() {}
