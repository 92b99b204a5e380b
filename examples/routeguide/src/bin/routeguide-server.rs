//! Serves the route guide until interrupted.
//!
//! `routeguide-server [--addr 127.0.0.1:10000] [--flavour async|blocking]`

use routeguide::routeguide::route_guide_server::{RouteGuideBlockingServer, RouteGuideServer};
use routeguide::{AsyncGuide, BlockingGuide, Guide};
use rsgrpc::server::Server;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:10000".to_owned());
    let flavour = arg("--flavour").unwrap_or_else(|| "async".to_owned());
    let guide = Guide::new();
    let builder = match flavour.as_str() {
        "async" => Server::builder().add_service(RouteGuideServer::new(AsyncGuide(guide))),
        "blocking" => {
            Server::builder().add_service(RouteGuideBlockingServer::new(BlockingGuide(guide)))
        }
        other => return Err(format!("--flavour is async or blocking, not {other:?}").into()),
    };
    let server = builder.bind(addr.as_str())?;
    println!(
        "route guide ({flavour}) listening on {}",
        server.local_addr()
    );
    loop {
        std::thread::park();
    }
}
