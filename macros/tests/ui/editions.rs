#[rsgrpc::grpc_service(proto = "ui-protos/editions.proto")]
pub mod editions {}

fn main() {}
