//! Every kind of call, blocking and async clients against blocking and async servers, all
//! from generated stubs.

use routeguide::routeguide::route_guide_client::{RouteGuideBlockingClient, RouteGuideClient};
use routeguide::routeguide::route_guide_server::{RouteGuideBlockingServer, RouteGuideServer};
use routeguide::{AsyncGuide, BlockingGuide, Guide, Tour};
use rsgrpc::server::{Server, ServerHandle};

fn check(tour: &Tour) {
    assert_eq!(tour.found, "Feature 2-3");
    assert!(tour.unnamed_elsewhere);
    assert_eq!(tour.listed, 9);
    assert_eq!(tour.summary.point_count, 11);
    assert_eq!(tour.summary.feature_count, 10);
    assert!(tour.summary.distance > 1_000_000, "{:?}", tour.summary);
    assert_eq!(tour.chat_replies, 2);
}

fn servers() -> Vec<(&'static str, ServerHandle)> {
    let async_server = Server::builder()
        .add_service(RouteGuideServer::new(AsyncGuide(Guide::new())))
        .bind("127.0.0.1:0")
        .unwrap();
    let blocking_server = Server::builder()
        .add_service(RouteGuideBlockingServer::new(BlockingGuide(Guide::new())))
        .bind("127.0.0.1:0")
        .unwrap();
    vec![("async", async_server), ("blocking", blocking_server)]
}

#[test]
fn blocking_client_tours_both_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for (flavour, server) in servers() {
        let client =
            RouteGuideBlockingClient::connect_lazy(&format!("http://{}", server.local_addr()))
                .unwrap();
        let tour = routeguide::tour_blocking(&client).unwrap();
        check(&tour);
        println!("{flavour}: {tour:?}");
    }
}

#[test]
fn async_client_tours_both_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for (flavour, server) in servers() {
        let client =
            RouteGuideClient::connect_lazy(&format!("http://{}", server.local_addr())).unwrap();
        let tour = futures::executor::block_on(routeguide::tour_async(&client)).unwrap();
        check(&tour);
        println!("{flavour}: {tour:?}");
    }
}
