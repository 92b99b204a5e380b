#[rsgrpc::grpc_service(proto = "../../../../macros/tests/ui/empty.proto", client = "yes")]
pub mod bad {}

fn main() {}
