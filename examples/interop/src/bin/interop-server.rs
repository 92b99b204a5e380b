//! gRPC's interop test server: `interop-server --port P [--flavour async|blocking]`, with
//! the standard health (grpc.health.v1) and reflection (grpc.reflection.v1, v1alpha) services.

use interop::arg;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = arg("--port").unwrap_or_else(|| "10000".to_owned());
    let flavour = arg("--flavour").unwrap_or_else(|| "async".to_owned());
    let server = interop::server::serve(&format!("127.0.0.1:{port}"), &flavour)?;
    println!(
        "interop server ({flavour}) listening on {}",
        server.local_addr()
    );
    loop {
        std::thread::park();
    }
}
