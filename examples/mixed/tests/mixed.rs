//! The async handler reaches the second service through the blocking client: on the
//! default runtime, on a tokio runtime via the spawn hook, and under concurrent load.

use mixed::mixed::QuoteRequest;
use mixed::mixed::prices_server::PricesBlockingServer;
use mixed::mixed::shop_client::ShopBlockingClient;
use mixed::mixed::shop_server::ShopServer;
use mixed::{PriceList, Shop, pricing::PriceBook};
use rsgrpc::Code;
use rsgrpc::server::{Server, ServerBuilder, ServerHandle};

fn start(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> (ServerHandle, ServerHandle) {
    let prices = Server::builder()
        .add_service(PricesBlockingServer::new(PriceList))
        .bind("127.0.0.1:0")
        .unwrap();
    let book = PriceBook::new(&format!("http://{}", prices.local_addr())).unwrap();
    let shop = configure(Server::builder().add_service(ShopServer::new(Shop { book })))
        .bind("127.0.0.1:0")
        .unwrap();
    (prices, shop)
}

fn order(item: &str, quantity: u32) -> QuoteRequest {
    QuoteRequest {
        item: item.to_owned(),
        quantity,
    }
}

#[test]
fn async_handler_uses_the_blocking_client_on_the_default_runtime() {
    let (_prices, shop) = start(|b| b);
    let client =
        ShopBlockingClient::connect_lazy(&format!("http://{}", shop.local_addr())).unwrap();
    assert_eq!(
        client
            .quote(order("coffee", 3))
            .unwrap()
            .get_ref()
            .total_cents,
        3_600
    );
    let err = client.quote(order("caviar", 1)).unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("caviar"));
}

#[test]
fn async_handler_on_tokio_uses_the_blocking_client_without_panicking() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let (_prices, shop) = start(move |b| b.spawn_with(move |f| drop(handle.spawn(f))));
    let client =
        ShopBlockingClient::connect_lazy(&format!("http://{}", shop.local_addr())).unwrap();
    assert_eq!(
        client
            .quote(order("apple", 5))
            .unwrap()
            .get_ref()
            .total_cents,
        200
    );
}

#[test]
fn concurrent_quotes_all_complete() {
    let (_prices, shop) = start(|b| b);
    let target = format!("http://{}", shop.local_addr());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let client = ShopBlockingClient::connect_lazy(&target).unwrap();
            std::thread::spawn(move || {
                for q in 1..=10 {
                    let reply = client.quote(order("bread", q + i)).unwrap();
                    assert_eq!(reply.get_ref().total_cents, 250 * u64::from(q + i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
