//! Blocking and async code sharing one channel, and one server hosting both flavours.

use rsgrpc::client::Client;
use rsgrpc::server::Server;
use rsgrpc::{Channel, Request, Response};
use rsgrpc_tests::{EchoResponse, Probe, UNARY, async_echo, blocking_echo, path, req};

use crate::support::{Flavour, SVC, server, target};

#[test]
fn blocking_and_async_clients_share_one_connection() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Async);
    let channel = Channel::new(&target(&server)).unwrap();
    let blocking = Client::new(channel.clone());
    let asynchronous = Client::new(channel);

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b = barrier.clone();
    let blocking_thread = std::thread::spawn(move || {
        b.wait();
        for i in 0..100 {
            let reply: Response<EchoResponse> = blocking
                .blocking_unary(path(SVC, UNARY), Request::new(req(&format!("b{i}"))))
                .unwrap();
            assert_eq!(reply.get_ref().message, format!("b{i}"));
        }
    });
    barrier.wait();
    futures::executor::block_on(async {
        for i in 0..100 {
            let reply: Response<EchoResponse> = asynchronous
                .unary(path(SVC, UNARY), Request::new(req(&format!("a{i}"))))
                .await
                .unwrap();
            assert_eq!(reply.get_ref().message, format!("a{i}"));
        }
    });
    blocking_thread.join().unwrap();
    assert_eq!(server.accepted_connections(), 1);
}

#[test]
fn one_server_hosts_blocking_and_async_services_on_one_port() {
    let _leaks = rsgrpc_tests::leak::check();
    let probe = Probe::new();
    let server = Server::builder()
        .add_service(blocking_echo("test.EchoBlocking", probe.clone()))
        .add_service(async_echo("test.EchoAsync", probe))
        .bind("127.0.0.1:0")
        .unwrap();
    let client = Client::new(Channel::new(&target(&server)).unwrap());
    for service in ["test.EchoBlocking", "test.EchoAsync"] {
        let reply: Response<EchoResponse> = client
            .blocking_unary(path(service, UNARY), Request::new(req(service)))
            .unwrap();
        assert_eq!(reply.get_ref().message, service);
    }
    assert_eq!(server.accepted_connections(), 1);
}

#[test]
fn async_handlers_can_run_on_a_user_executor() {
    let _leaks = rsgrpc_tests::leak::check();
    let rt = crate::support::tokio_rt();
    let handle = rt.handle().clone();
    let probe = Probe::new();
    let server = Server::builder()
        .add_service(async_echo(SVC, probe))
        .spawn_with(move |future| {
            handle.spawn(future);
        })
        .bind("127.0.0.1:0")
        .unwrap();
    let client = Client::new(Channel::new(&target(&server)).unwrap());
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), Request::new(req("on tokio")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "on tokio");
}
