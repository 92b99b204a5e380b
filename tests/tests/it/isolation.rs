//! A blocking handler that sleeps must not delay other calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rsgrpc::{Request, Response};
use rsgrpc_tests::{EchoResponse, UNARY, path, req};

use crate::support::{Flavour, SVC, client, server};

#[test]
fn sleeping_blocking_handlers_do_not_delay_other_calls() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, probe) = server(Flavour::Blocking);
    let client = client(&server);

    // More sleepers than the machine has cores: a fixed-size pool would be exhausted.
    const SLEEPERS: usize = 8;
    let finished = Arc::new(AtomicUsize::new(0));
    let sleepers: Vec<_> = (0..SLEEPERS)
        .map(|i| {
            let client = client.clone();
            let finished = finished.clone();
            std::thread::spawn(move || {
                let message = format!("sleep:2000:started:s{i}");
                let reply: Response<EchoResponse> = client
                    .blocking_unary(path(SVC, UNARY), Request::new(req(&message)))
                    .unwrap();
                finished.fetch_add(1, Ordering::SeqCst);
                reply
            })
        })
        .collect();
    for i in 0..SLEEPERS {
        assert!(probe.wait(&format!("started:s{i}"), Duration::from_secs(30)));
    }

    // Every sleeper is now inside its handler. Other calls must still be served.
    let mut latencies = Vec::new();
    for i in 0..20 {
        let start = Instant::now();
        let reply: Response<EchoResponse> = client
            .blocking_unary(path(SVC, UNARY), Request::new(req(&format!("quick{i}"))))
            .unwrap();
        latencies.push(start.elapsed());
        assert_eq!(reply.get_ref().message, format!("quick{i}"));
    }
    // Causal check: all quick calls were answered while every sleeper was still asleep.
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "quick calls waited for the sleepers; latencies {latencies:?}"
    );
    // And, generously, none took anywhere near the sleepers' 2 s.
    let worst = latencies.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(1500),
        "worst latency {worst:?}"
    );

    for (i, s) in sleepers.into_iter().enumerate() {
        let reply = s.join().unwrap();
        assert_eq!(reply.get_ref().message, format!("sleep:2000:started:s{i}"));
    }
    assert_eq!(finished.load(Ordering::SeqCst), SLEEPERS);
}

/// An async handler that calls, through a blocking client, another async service on the
/// same runtime must not starve it, even with a single executor thread.
#[test]
fn async_handler_blocking_on_a_call_to_the_same_executor_does_not_deadlock() {
    let _leaks = rsgrpc_tests::leak::check();
    use rsgrpc::client::Client;
    use rsgrpc::server::{Server, Service};
    use rsgrpc::{Channel, Runtime, Status};
    use rsgrpc_tests::{EchoRequest, Probe, async_echo};

    let runtime = Runtime::builder()
        .executor_threads(1)
        .thread_name_prefix("onexec")
        .build()
        .unwrap();
    let inner = Server::builder()
        .runtime(&runtime)
        .add_service(async_echo("test.Inner", Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let inner_client = Client::new(
        Channel::builder(format!("http://{}", inner.local_addr()))
            .runtime(&runtime)
            .connect_lazy()
            .unwrap(),
    );
    let outer_service = Service::builder("test.Outer")
        .unary(UNARY, move |request: Request<EchoRequest>| {
            let client = inner_client.clone();
            async move {
                // A synchronous call from inside an async handler on the only executor
                // thread; the inner handler needs that executor too.
                let reply: Response<EchoResponse> = client.blocking_unary(
                    path("test.Inner", UNARY),
                    Request::new(request.into_inner()),
                )?;
                Ok::<_, Status>(Response::new(reply.into_inner()))
            }
        })
        .build();
    let outer = Server::builder()
        .runtime(&runtime)
        .add_service(outer_service)
        .bind("127.0.0.1:0")
        .unwrap();
    let client = Client::new(Channel::new(&format!("http://{}", outer.local_addr())).unwrap());
    for i in 0..5 {
        let mut request = Request::new(req(&format!("nested {i}")));
        request.set_timeout(Duration::from_secs(20));
        let reply: Response<EchoResponse> = client
            .blocking_unary(path("test.Outer", UNARY), request)
            .unwrap();
        assert_eq!(reply.get_ref().message, format!("nested {i}"));
    }
}
