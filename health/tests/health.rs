//! The health service over the wire, with rsgrpc's own generated clients of both flavours,
//! on a server that also hosts a blocking service.

use std::time::{Duration, Instant};

use futures::StreamExt;
use rsgrpc::server::{Server, ServerHandle, Service};
use rsgrpc::{Channel, Code, Request, Response, Status};
use rsgrpc_health::pb::health_client::{HealthBlockingClient, HealthClient};
use rsgrpc_health::pb::{HealthCheckRequest, HealthCheckResponse};
use rsgrpc_health::{HealthReporter, MAX_SERVICE_NAME_LEN, ServingStatus, health_service};

const ECHO: &str = "test.Echo";

/// A server with a blocking service and the health service.
fn serve() -> (HealthReporter, ServerHandle, Channel) {
    let (reporter, health) = health_service();
    let echo = Service::builder(ECHO)
        .blocking_unary("Echo", |req: Request<HealthCheckRequest>| {
            Ok::<_, Status>(Response::new(req.into_inner()))
        })
        .build();
    let server = Server::builder()
        .add_service(echo)
        .add_service(health)
        .bind("127.0.0.1:0")
        .unwrap();
    let channel = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    (reporter, server, channel)
}

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

fn status_of(response: &HealthCheckResponse) -> ServingStatus {
    ServingStatus::try_from(response.status).unwrap()
}

/// Waits (bounded) until `condition` holds; the service updates its state when the
/// server side of a call notices the client went away, which takes a moment.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    assert!(
        rsgrpc_tests::eventually(condition),
        "timed out waiting until {what}"
    );
}

#[test]
fn check_answers_known_services_and_not_found_otherwise() {
    let _leaks = rsgrpc_tests::leak::check();
    let (reporter, _server, channel) = serve();
    let client = HealthBlockingClient::new(channel);
    // The whole server is SERVING from the start.
    let whole = client.check(ask("")).unwrap().into_inner();
    assert_eq!(status_of(&whole), ServingStatus::Serving);

    let unknown = client.check(ask(ECHO)).unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains(ECHO), "{unknown}");

    reporter.set_serving(ECHO);
    let echo = client.check(ask(ECHO)).unwrap().into_inner();
    assert_eq!(status_of(&echo), ServingStatus::Serving);
    reporter.set_not_serving(ECHO);
    let echo = client.check(ask(ECHO)).unwrap().into_inner();
    assert_eq!(status_of(&echo), ServingStatus::NotServing);

    reporter.clear_status(ECHO);
    assert_eq!(client.check(ask(ECHO)).unwrap_err().code(), Code::NotFound);
    // SERVICE_UNKNOWN is not a status one can set: it forgets the service.
    reporter.set_serving(ECHO);
    reporter.set_status(ECHO, ServingStatus::ServiceUnknown);
    assert_eq!(reporter.status(ECHO), None);

    // A long name in an error message is shortened.
    let long = "x".repeat(10_000);
    let err = client.check(ask(&long)).unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().len() < 200, "{}", err.message().len());
}

#[test]
fn watch_sends_the_status_then_each_change_until_cancelled() {
    let _leaks = rsgrpc_tests::leak::check();
    let (reporter, server, channel) = serve();
    reporter.set_serving(ECHO);
    let client = HealthClient::new(channel);
    futures::executor::block_on(async {
        let mut stream = client.watch(ask(ECHO)).await.unwrap().into_inner();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(status_of(&first), ServingStatus::Serving);

        reporter.set_not_serving(ECHO);
        let second = stream.next().await.unwrap().unwrap();
        assert_eq!(status_of(&second), ServingStatus::NotServing);

        // Setting the same status again sends nothing; the next change comes next.
        reporter.set_not_serving(ECHO);
        reporter.clear_status(ECHO);
        let third = stream.next().await.unwrap().unwrap();
        assert_eq!(status_of(&third), ServingStatus::ServiceUnknown);
        reporter.set_serving(ECHO);
        let fourth = stream.next().await.unwrap().unwrap();
        assert_eq!(status_of(&fourth), ServingStatus::Serving);
        assert_eq!(reporter.watchers(), 1);
        drop(stream);
    });
    // Cancelling the call ends the watch on the server and frees what it held.
    eventually("the watch is gone", || {
        reporter.watchers() == 0 && server.active_calls() == 0
    });
}

#[test]
fn a_watcher_that_falls_behind_sees_the_latest_status_only() {
    let _leaks = rsgrpc_tests::leak::check();
    let (reporter, _server, channel) = serve();
    let client = HealthBlockingClient::new(channel);
    let mut stream = client.watch(ask(ECHO)).unwrap().into_inner();
    let first = stream.next().unwrap().unwrap();
    assert_eq!(status_of(&first), ServingStatus::ServiceUnknown);
    for _ in 0..1000 {
        reporter.set_serving(ECHO);
        reporter.set_not_serving(ECHO);
    }
    reporter.set_serving(ECHO);
    reporter.set_status(ECHO, ServingStatus::Unknown);
    // The service keeps no queue per watcher: it sends whatever is current when the call
    // has room, so the watcher may see any of the changes in between, but never more
    // messages than changes, and it ends on the last status.
    let mut seen = 0;
    loop {
        let next = stream.next().unwrap().unwrap();
        seen += 1;
        if status_of(&next) == ServingStatus::Unknown {
            break;
        }
        assert!(seen <= 2002, "more messages than changes");
    }
    assert_eq!(reporter.status(ECHO), Some(ServingStatus::Unknown));
}

#[test]
fn shutdown_reports_not_serving_and_ends_watches() {
    let _leaks = rsgrpc_tests::leak::check();
    let (reporter, server, channel) = serve();
    reporter.set_serving(ECHO);
    let client = HealthBlockingClient::new(channel);
    let mut whole = client.watch(ask("")).unwrap().into_inner();
    let mut unknown = client.watch(ask("never.Set")).unwrap().into_inner();
    assert_eq!(
        status_of(&whole.next().unwrap().unwrap()),
        ServingStatus::Serving
    );
    assert_eq!(
        status_of(&unknown.next().unwrap().unwrap()),
        ServingStatus::ServiceUnknown
    );

    reporter.shutdown();
    assert_eq!(
        status_of(&whole.next().unwrap().unwrap()),
        ServingStatus::NotServing
    );
    let end = whole.next().unwrap().unwrap_err();
    assert_eq!(end.code(), Code::Unavailable);
    assert!(whole.next().is_none());
    assert_eq!(
        unknown.next().unwrap().unwrap_err().code(),
        Code::Unavailable
    );

    // Everything is NOT_SERVING now, and stays so.
    let echo = client.check(ask(ECHO)).unwrap().into_inner();
    assert_eq!(status_of(&echo), ServingStatus::NotServing);
    reporter.set_serving(ECHO);
    let echo = client.check(ask(ECHO)).unwrap().into_inner();
    assert_eq!(status_of(&echo), ServingStatus::NotServing);
    // A new watch gets the status and ends.
    let mut late = client.watch(ask(ECHO)).unwrap().into_inner();
    assert_eq!(
        status_of(&late.next().unwrap().unwrap()),
        ServingStatus::NotServing
    );
    assert_eq!(late.next().unwrap().unwrap_err().code(), Code::Unavailable);
    assert_eq!(reporter.watchers(), 0);

    // No watch holds the graceful shutdown: it ends long before its grace period would.
    let started = Instant::now();
    server.shutdown(Duration::from_secs(600)).wait();
    assert!(started.elapsed() < Duration::from_secs(300));
}

#[test]
fn watch_refuses_long_unknown_names() {
    let _leaks = rsgrpc_tests::leak::check();
    let (reporter, _server, channel) = serve();
    let client = HealthBlockingClient::new(channel);
    let long = "y".repeat(MAX_SERVICE_NAME_LEN + 1);
    // The status comes with the response headers (Trailers-Only), so the call fails.
    let err = client.watch(ask(&long)).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // A name the server set is watched whatever its length.
    reporter.set_serving(&long);
    let mut stream = client.watch(ask(&long)).unwrap().into_inner();
    assert_eq!(
        status_of(&stream.next().unwrap().unwrap()),
        ServingStatus::Serving
    );
}

#[test]
fn many_watchers_all_see_a_change_and_all_are_released() {
    let _leaks = rsgrpc_tests::leak::check();
    let (reporter, server, channel) = serve();
    reporter.set_serving(ECHO);
    let client = HealthClient::new(channel);
    futures::executor::block_on(async {
        let mut streams = Vec::new();
        for _ in 0..50 {
            let mut stream = client.watch(ask(ECHO)).await.unwrap().into_inner();
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(status_of(&first), ServingStatus::Serving);
            streams.push(stream);
        }
        assert_eq!(reporter.watchers(), 50);
        reporter.set_not_serving(ECHO);
        for stream in &mut streams {
            let next = stream.next().await.unwrap().unwrap();
            assert_eq!(status_of(&next), ServingStatus::NotServing);
        }
    });
    eventually("every watch is gone", || {
        reporter.watchers() == 0 && server.active_calls() == 0
    });
}
