// Stubs from this generator against a runtime older than `rsgrpc::codegen::v1` fail to
// compile with an error naming `v1`. The older runtime is modelled by this crate standing in
// for `rsgrpc`: everything of the real one but the hidden module, whose items are at its top
// as they were before versions.

extern crate rsgrpc as runtime;
extern crate self as rsgrpc;

pub use runtime::*;

#[doc(hidden)]
pub mod codegen {
    pub use runtime::codegen::v1::*;
}

#[runtime::grpc_service(proto = "ui-protos/helloworld.proto")]
pub mod helloworld {}

fn main() {}
