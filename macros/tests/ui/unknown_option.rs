#[rsgrpc::grpc_service(proto = "../../../../macros/tests/ui/empty.proto", colour = "blue")]
pub mod coloured {}

fn main() {}
