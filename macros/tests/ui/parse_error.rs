#[rsgrpc::grpc_service(proto = "ui-protos/broken.proto")]
pub mod broken {}

fn main() {}
