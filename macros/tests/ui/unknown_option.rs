#[rsgrpc::grpc_service(proto = "ui-protos/empty.proto", colour = "blue")]
pub mod coloured {}

fn main() {}
