//! gRPC's interop test server: `interop-server --port P [--flavour async|blocking]`.

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            let prefix = format!("{name}=");
            args.iter()
                .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
        })
}

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
