//! Calls that fail: deadlines, cancellation, size limits, panics, unknown methods, server
//! restarts and shutdown. Each runs against both server flavours.

use std::time::{Duration, Instant};

use rsgrpc::client::Client;
use rsgrpc::server::Server;
use rsgrpc::{Channel, Code, Request, Response, Status};
use rsgrpc_tests::{
    CLIENT_STREAM, EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, blocking_echo, path, req,
};

use crate::support::{FLAVOURS, Flavour, SVC, client, server, server_with, target};

fn unary(client: &Client, message: &str) -> Result<Response<EchoResponse>, Status> {
    client.blocking_unary(path(SVC, UNARY), Request::new(req(message)))
}

#[test]
fn client_deadline_is_enforced_and_seen_by_the_server() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, probe) = server(flavour);
        let client = client(&server);

        // Blocking client, handler that sleeps far past the deadline.
        let mut request = Request::new(req("sleep:10000"));
        request.set_timeout(Duration::from_millis(200));
        let start = Instant::now();
        let err = client
            .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), request)
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{flavour:?}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{:?}",
            start.elapsed()
        );

        // Async client; the handler observes the deadline as cancellation. (A call whose
        // deadline passes before its handler starts is answered without running it: the
        // deadline leaves the handler ample time to start on a busy machine.)
        let mut request = Request::new(req("wait-cancel:deadline"));
        request.set_timeout(Duration::from_secs(1));
        let err =
            futures::executor::block_on(client.unary::<_, EchoResponse>(path(SVC, UNARY), request))
                .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{flavour:?}: {err}");
        assert!(
            probe.wait("deadline", Duration::from_secs(20)),
            "{flavour:?}: the handler never saw its deadline pass"
        );
    }
}

#[test]
fn dropping_a_call_cancels_it_at_the_server() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, probe) = server(flavour);
        let client = client(&server);

        // Blocking: drop the response stream once the headers arrived.
        let response = client
            .blocking_server_streaming::<_, EchoResponse>(
                path(SVC, SERVER_STREAM),
                Request::new(req("wait-cancel:blocking-drop")),
            )
            .unwrap();
        drop(response);
        assert!(
            probe.wait("blocking-drop", Duration::from_secs(20)),
            "{flavour:?}: handler did not see the blocking client's cancellation"
        );

        // Async: drop the stream returned by the call future.
        futures::executor::block_on(async {
            let response = client
                .server_streaming::<_, EchoResponse>(
                    path(SVC, SERVER_STREAM),
                    Request::new(req("wait-cancel:async-drop")),
                )
                .await
                .unwrap();
            drop(response);
        });
        assert!(
            probe.wait("async-drop", Duration::from_secs(20)),
            "{flavour:?}: handler did not see the async client's cancellation"
        );

        // The server is still fine.
        assert_eq!(unary(&client, "after").unwrap().get_ref().message, "after");
    }
}

#[test]
fn dropping_an_unfinished_unary_future_cancels_it() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, probe) = server(Flavour::Async);
    let client = client(&server);
    let rt = crate::support::tokio_rt();
    rt.block_on(async {
        let call = client.unary::<_, EchoResponse>(
            path(SVC, UNARY),
            Request::new(req("wait-cancel:unary-future")),
        );
        // Poll the call until its handler runs, then drop it.
        let started = {
            let probe = probe.clone();
            tokio::task::spawn_blocking(move || {
                probe.wait("started:unary-future", Duration::from_secs(20))
            })
        };
        tokio::select! {
            outcome = call => panic!("the call ended by itself: {outcome:?}"),
            started = started => assert!(started.unwrap(), "the handler never started"),
        }
    });
    assert!(probe.wait("unary-future", Duration::from_secs(20)));
}

#[test]
fn oversized_messages_are_refused_with_resource_exhausted() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        // Request over the server's default 4 MiB limit.
        let (server, _) = server(flavour);
        let client = client(&server);
        let big = EchoRequest {
            payload: vec![0; 5 * 1024 * 1024].into(),
            ..Default::default()
        };
        let err = client
            .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(big))
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{flavour:?}: {err}");

        // Response over the client's configured limit.
        let channel = Channel::builder(target(&server))
            .max_receive_message_size(1024)
            .connect_lazy()
            .unwrap();
        let small_client = Client::new(channel);
        let request = EchoRequest {
            message: "big reply".into(),
            payload: vec![1; 4096].into(),
            ..Default::default()
        };
        let err = small_client
            .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(request))
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{flavour:?}: {err}");

        // Client-streaming: the limit applies per message and fails the call.
        let (server, _) = server_with(flavour, |b| b.max_receive_message_size(1000));
        let client = crate::support::client(&server);
        let requests = vec![
            req("ok"),
            EchoRequest {
                payload: vec![0; 2000].into(),
                ..Default::default()
            },
        ];
        let err = client
            .blocking_client_streaming::<_, _, EchoResponse>(
                path(SVC, CLIENT_STREAM),
                Request::new(requests),
            )
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{flavour:?}: {err}");
        assert_eq!(
            unary(&client, "still up").unwrap().get_ref().message,
            "still up"
        );
    }
}

#[test]
fn send_limit_fails_before_sending() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Blocking);
    let channel = Channel::builder(target(&server))
        .max_send_message_size(100)
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    let err = client
        .blocking_unary::<_, EchoResponse>(
            path(SVC, UNARY),
            Request::new(EchoRequest {
                payload: vec![0; 200].into(),
                ..Default::default()
            }),
        )
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        server.accepted_connections(),
        0,
        "nothing should have been sent"
    );
}

#[test]
fn a_panicking_handler_fails_only_its_call() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        let client = client(&server);
        for _ in 0..3 {
            let err = unary(&client, "panic").unwrap_err();
            assert_eq!(err.code(), Code::Unknown, "{flavour:?}: {err}");
            assert_eq!(unary(&client, "fine").unwrap().get_ref().message, "fine");
        }
    }
}

#[test]
fn unknown_methods_and_services_are_unimplemented() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        let client = client(&server);
        for p in ["/test.Echo/Nope", "/no.Such/Method"] {
            let err = client
                .blocking_unary::<_, EchoResponse>(p, Request::new(req("x")))
                .unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "{p}: {err}");
            assert!(err.message().contains(p), "{err}");
        }
    }
}

#[test]
fn status_code_message_and_details_round_trip() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        let client = client(&server);
        for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
            let text = "bad ∞ state: 100% \t\n done";
            let err = unary(&client, &format!("fail:{}:{text}", code.as_i32())).unwrap_err();
            assert_eq!(err.code(), code, "{flavour:?}");
            assert_eq!(err.message(), text);
            assert_eq!(&err.details()[..], b"why");
        }
        // The same through a streaming call that fails before any message (Trailers-Only).
        let err = client
            .blocking_server_streaming::<_, EchoResponse>(
                path(SVC, SERVER_STREAM),
                Request::new(req("fail:5:gone")),
            )
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), "gone");
    }
}

#[test]
fn channel_reconnects_after_the_server_restarts() {
    let _leaks = rsgrpc_tests::leak::check();
    let probe = Probe::new();
    let first = Server::builder()
        .add_service(blocking_echo(SVC, probe.clone()))
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = first.local_addr();
    let channel = Channel::builder(format!("http://{addr}"))
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    assert_eq!(unary(&client, "one").unwrap().get_ref().message, "one");

    first.shutdown(Duration::from_secs(5)).wait();
    drop(first);
    let err = unary(&client, "down").unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    // Same address again (the port was chosen by the OS for the first server).
    let second = Server::builder()
        .add_service(blocking_echo(SVC, probe))
        .bind(addr)
        .unwrap();
    let mut request = Request::new(req("two"));
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(30));
    let reply: Response<EchoResponse> = client.blocking_unary(path(SVC, UNARY), request).unwrap();
    assert_eq!(reply.get_ref().message, "two");
    assert_eq!(second.accepted_connections(), 1);
}

#[test]
fn unreachable_server_fails_fast_with_unavailable() {
    let _leaks = rsgrpc_tests::leak::check();
    // Bind and drop a listener to get a port nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
    let err = unary(&client, "x").unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains(&addr.to_string()), "{err}");
}

#[test]
fn graceful_shutdown_lets_calls_finish_then_cancels_stragglers() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, probe) = server(flavour);
        let client = client(&server);

        // An in-flight call that finishes within the grace period completes normally.
        let c = client.clone();
        let in_flight = std::thread::spawn(move || {
            unary(&c, "sleep:300:started:graceful").map(|r| r.into_inner())
        });
        assert!(probe.wait("started:graceful", Duration::from_secs(20)));
        server.shutdown(Duration::from_secs(20)).wait();
        assert_eq!(
            in_flight.join().unwrap().unwrap().message,
            "sleep:300:started:graceful"
        );
        let err = unary(&client, "after shutdown").unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{flavour:?}: {err}");

        // A call that outlives the grace period is cancelled, and its handler sees it.
        let (server, probe) = crate::support::server(flavour);
        let client = crate::support::client(&server);
        // The call returns once the handler sent its headers and waits for cancellation.
        let stream = client
            .blocking_server_streaming::<_, EchoResponse>(
                path(SVC, SERVER_STREAM),
                Request::new(req("wait-cancel:straggler")),
            )
            .unwrap()
            .into_inner();
        futures::executor::block_on(server.shutdown(Duration::from_millis(200)));
        let rest: Result<Vec<_>, _> = stream.collect();
        assert!(rest.is_err(), "{flavour:?}: {rest:?}");
        assert!(
            probe.wait("straggler", Duration::from_secs(20)),
            "{flavour:?}"
        );
    }
}
