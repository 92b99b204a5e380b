#[rsgrpc::grpc_service(proto = "../../../../macros/tests/ui/broken.proto")]
pub mod broken {}

fn main() {}
