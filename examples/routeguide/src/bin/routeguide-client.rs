//! Takes a tour of a route guide server with all four kinds of call.
//!
//! `routeguide-client [--addr 127.0.0.1:10000] [--flavour async|blocking]`

use routeguide::routeguide::route_guide_client::{RouteGuideBlockingClient, RouteGuideClient};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:10000".to_owned());
    let target = format!("http://{addr}");
    let tour = match arg("--flavour").as_deref().unwrap_or("blocking") {
        "blocking" => routeguide::tour_blocking(&RouteGuideBlockingClient::connect_lazy(&target)?)?,
        "async" => futures::executor::block_on(routeguide::tour_async(
            &RouteGuideClient::connect_lazy(&target)?,
        ))?,
        other => return Err(format!("--flavour is async or blocking, not {other:?}").into()),
    };
    println!("{tour:#?}");
    Ok(())
}
