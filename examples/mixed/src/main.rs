//! Runs the price service and the shop, then asks the shop for quotes with an async and a
//! blocking client. `cargo run -p mixed`

use std::time::Duration;

use mixed::mixed::QuoteRequest;
use mixed::mixed::prices_server::PricesBlockingServer;
use mixed::mixed::shop_client::{ShopBlockingClient, ShopClient};
use mixed::mixed::shop_server::ShopServer;
use mixed::{PriceList, Shop, pricing::PriceBook};
use rsgrpc::server::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prices = Server::builder()
        .add_service(PricesBlockingServer::new(PriceList))
        .bind("127.0.0.1:0")?;
    let book = PriceBook::new(&format!("http://{}", prices.local_addr()))?;
    let shop = Server::builder()
        .add_service(ShopServer::new(Shop { book }))
        .bind("127.0.0.1:0")?;
    let target = format!("http://{}", shop.local_addr());

    let quote =
        futures::executor::block_on(ShopClient::connect_lazy(&target)?.quote(QuoteRequest {
            item: "coffee".into(),
            quantity: 3,
        }))?;
    println!("async quote:    {:?}", quote.get_ref());
    let quote = ShopBlockingClient::connect_lazy(&target)?.quote(QuoteRequest {
        item: "bread".into(),
        quantity: 2,
    })?;
    println!("blocking quote: {:?}", quote.get_ref());

    shop.shutdown(Duration::from_secs(5)).wait();
    prices.shutdown(Duration::from_secs(5)).wait();
    Ok(())
}
