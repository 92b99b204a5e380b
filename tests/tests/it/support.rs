//! Shared set-up for the end-to-end tests.

use std::sync::Arc;

use rsgrpc::Channel;
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle};
use rsgrpc_tests::{Probe, async_echo, blocking_echo};

pub(crate) const SVC: &str = "test.Echo";

pub(crate) use rsgrpc_tests::{FLAVOURS, Flavour};

/// An echo server of the given flavour on 127.0.0.1, port chosen by the OS.
pub(crate) fn server(flavour: Flavour) -> (ServerHandle, Arc<Probe>) {
    server_with(flavour, |b| b)
}

pub(crate) fn server_with(
    flavour: Flavour,
    configure: impl FnOnce(rsgrpc::server::ServerBuilder) -> rsgrpc::server::ServerBuilder,
) -> (ServerHandle, Arc<Probe>) {
    let probe = Probe::new();
    let service = match flavour {
        Flavour::Blocking => blocking_echo(SVC, probe.clone()),
        Flavour::Async => async_echo(SVC, probe.clone()),
    };
    let server = configure(Server::builder().add_service(service))
        .bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0");
    (server, probe)
}

pub(crate) fn target(server: &ServerHandle) -> String {
    format!("http://{}", server.local_addr())
}

pub(crate) fn client(server: &ServerHandle) -> Client {
    Client::new(Channel::new(&target(server)).unwrap())
}

/// A multi-threaded tokio runtime for tests that need one.
pub(crate) fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
