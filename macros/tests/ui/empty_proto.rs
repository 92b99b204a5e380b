#[rsgrpc::grpc_service(proto = "../../../../macros/tests/ui/empty.proto")]
pub mod empty {}

fn main() {}
