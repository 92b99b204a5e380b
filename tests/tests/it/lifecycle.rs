//! Runtime and server lifecycle: nothing is left running once they are shut down.

use std::time::{Duration, Instant};

use rsgrpc::client::Client;
use rsgrpc::server::Server;
use rsgrpc::{Channel, Request, Response, Runtime};
use rsgrpc_tests::{EchoResponse, Probe, UNARY, async_echo, blocking_echo, path, req};

/// Threads of this process whose name starts with `prefix` (names are cut to 15 bytes).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn dropping_a_runtime_stops_all_its_threads_and_sockets() {
    let _leaks = rsgrpc_tests::leak::check();
    let runtime = Runtime::builder()
        .thread_name_prefix("lcycle")
        .poller_threads(2)
        .executor_threads(2)
        .build()
        .unwrap();
    let probe = Probe::new();
    let server = Server::builder()
        .runtime(&runtime)
        .add_service(blocking_echo("test.Blocking", probe.clone()))
        .add_service(async_echo("test.Async", probe))
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.local_addr();
    let channel = Channel::builder(format!("http://{addr}"))
        .runtime(&runtime)
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    for service in ["test.Blocking", "test.Async"] {
        let reply: Response<EchoResponse> = client
            .blocking_unary(path(service, UNARY), Request::new(req("x")))
            .unwrap();
        assert_eq!(reply.get_ref().message, "x");
    }
    // Two pollers, two executor threads and at least one blocking worker.
    assert!(
        threads_named("lcycle-") >= 5,
        "{}",
        threads_named("lcycle-")
    );

    server.shutdown(Duration::from_secs(10)).wait();
    drop(server);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listening socket is still open"
    );
    drop(client);
    drop(runtime);

    // Threads were joined; give the kernel a moment to forget them.
    let start = Instant::now();
    while threads_named("lcycle-") > 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::yield_now();
    }
    assert_eq!(threads_named("lcycle-"), 0);
}
