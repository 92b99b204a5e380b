//! A call traced across two services: the caller starts a trace, the shop continues it,
//! the price list continues the shop's. Prints the span each handler ran in.

use std::sync::{Arc, Mutex};

use rsgrpc::server::Server;
use traceparent::demo::{PriceList, Shop};
use traceparent::mixed::QuoteRequest;
use traceparent::mixed::prices_server::PricesBlockingServer;
use traceparent::mixed::shop_client::ShopBlockingClient;
use traceparent::mixed::shop_server::ShopBlockingServer;
use traceparent::{ClientSpan, ServerSpan, TraceContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let prices = Server::builder()
        .interceptor(ServerSpan::default())
        .add_service(PricesBlockingServer::new(PriceList {
            spans: spans.clone(),
        }))
        .bind("127.0.0.1:0")?;
    let shop = Server::builder()
        .interceptor(ServerSpan::default())
        .add_service(ShopBlockingServer::new(Shop::new(
            &format!("http://{}", prices.local_addr()),
            spans.clone(),
        )?))
        .bind("127.0.0.1:0")?;

    let client = ShopBlockingClient::connect_lazy(&format!("http://{}", shop.local_addr()))?
        .with_interceptor(ClientSpan::default());
    let root = TraceContext::new_root(true);
    let reply = root.in_scope(|| {
        client.quote(QuoteRequest {
            item: "coffee".into(),
            quantity: 2,
        })
    })?;
    println!("total: {} cents", reply.get_ref().total_cents);
    println!("caller  trace {} span {}", root.trace_id(), root.span_id());
    for (service, span) in spans.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!(
            "{service:<7} trace {} span {}",
            span.trace_id(),
            span.span_id()
        );
    }
    Ok(())
}
