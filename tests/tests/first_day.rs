//! What a newcomer meets on the first day: a call that waited for a connection says why
//! there was none, a service config's method fields take effect (and what is not
//! implemented is refused), channel- and client-wide call options, and a server that
//! shuts down ends TLS connections cleanly, telling the calls it cut why.
//!
//! Every test runs under the leak check.

use std::time::{Duration, Instant};

use rsgrpc::channel::ServiceConfig;
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle};
use rsgrpc::tls::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use rsgrpc::{Channel, Code, Request, Response, Status};
use rsgrpc_tests::leak;
use rsgrpc_tests::pki::Pki;
use rsgrpc_tests::{EchoRequest, EchoResponse, Probe, UNARY, async_echo, blocking_echo, path, req};

const SVC: &str = "test.Echo";
const ASYNC_SVC: &str = "test.AsyncEcho";
const WAIT: Duration = Duration::from_secs(20);

fn serve() -> ServerHandle {
    Server::builder()
        .add_service(blocking_echo(SVC, Probe::new()))
        .add_service(async_echo(ASYNC_SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap()
}

fn tls_server(pki: &Pki) -> ServerHandle {
    let identity = Identity::from_pem(&pki.server_cert_pem, &pki.server_key_pem).unwrap();
    Server::builder()
        .tls_config(ServerTlsConfig::new(identity))
        .add_service(blocking_echo(SVC, Probe::new()))
        .add_service(async_echo(ASYNC_SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap()
}

fn tls_channel(server: &ServerHandle, tls: ClientTlsConfig) -> Channel {
    Channel::builder(format!("https://localhost:{}", server.local_addr().port()))
        .tls_config(tls)
        .connect_lazy()
        .unwrap()
}

/// A wait-for-ready call to a server whose certificate the client does not trust fails at
/// its deadline with the TLS error in its message (grpc-go's "last connection error"),
/// as a call that does not wait would: before, it said only "deadline exceeded".
#[test]
fn a_call_that_waited_for_ready_names_the_last_connection_error() {
    let _leaks = leak::check();
    let pki = Pki::new("untrusted");
    let server = tls_server(&pki);
    // Trusts another authority than the one that signed the server's certificate.
    let other = Pki::new("other");
    let config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&other.ca_pem).unwrap());
    let client = Client::new(tls_channel(&server, config));
    for service in [SVC, ASYNC_SVC] {
        let mut fail_fast = Request::new(req("x"));
        fail_fast.set_timeout(WAIT);
        let status = client
            .blocking_unary::<_, EchoResponse>(path(service, UNARY), fail_fast)
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("certificate"), "{status:?}");

        let mut waiting = Request::new(req("x"));
        waiting.set_timeout(Duration::from_millis(700));
        waiting.set_wait_for_ready(true);
        let status = client
            .blocking_unary::<_, EchoResponse>(path(service, UNARY), waiting)
            .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(
            status.message().contains("last connection error")
                && status.message().contains("certificate"),
            "{status:?}"
        );
    }
    drop((client, server));
}

/// A service config's `timeout` caps a call's own, `waitForReady` makes calls wait,
/// `maxRequestMessageBytes` and `maxResponseMessageBytes` lower the client's limits, all
/// with gRFC A2's name precedence (the method's entry over its service's over the
/// default). Before, the parser accepted these fields and dropped them.
#[test]
fn service_config_method_fields_take_effect() {
    let _leaks = leak::check();
    let server = serve();
    let config = ServiceConfig::from_json(&format!(
        r#"{{"methodConfig": [
            {{"name": [{{"service": "{SVC}"}}], "timeout": "0.3s",
              "maxRequestMessageBytes": 100, "maxResponseMessageBytes": 60}},
            {{"name": [{{"service": "{SVC}", "method": "{UNARY}"}}], "timeout": "0.3s"}},
            {{"name": [{{}}], "waitForReady": true, "timeout": "0.5s"}}
        ]}}"#
    ))
    .unwrap();
    let channel = Channel::builder(format!("http://{}", server.local_addr()))
        .service_config(config.clone())
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    // The timeout caps the call's own 20 s: a call that sleeps 5 s ends after 0.3 s.
    let mut slow = Request::new(req("sleep:5000"));
    slow.set_timeout(WAIT);
    let started = Instant::now();
    let status = client
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), slow)
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The exact method's entry applies alone: no size limit from the service's entry.
    let big = EchoRequest {
        message: "big".into(),
        payload: vec![1; 500].into(),
        ..Default::default()
    };
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), Request::new(big.clone()))
        .unwrap();
    assert_eq!(reply.get_ref().payload.len(), 500);
    // Another method of the service gets the service's limits: the request is too big.
    let status = client
        .blocking_unary::<_, EchoResponse>(path(SVC, "Other"), Request::new(big))
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    drop((client, server));

    // waitForReady from the default entry: a call to a server that is not there yet waits
    // (until its 0.5 s timeout) instead of failing at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let channel = Channel::builder(format!("http://{addr}"))
        .service_config(config)
        .connect_lazy()
        .unwrap();
    let started = Instant::now();
    let status = Client::new(channel)
        .blocking_unary::<_, EchoResponse>(path(ASYNC_SVC, UNARY), Request::new(req("x")))
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

/// The response limit of a service config: a response larger than
/// `maxResponseMessageBytes` fails the call with `RESOURCE_EXHAUSTED`.
#[test]
fn service_config_response_limit_takes_effect() {
    let _leaks = leak::check();
    let server = serve();
    let config = ServiceConfig::from_json(&format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "{ASYNC_SVC}"}}],
            "maxResponseMessageBytes": 60}}]}}"#
    ))
    .unwrap();
    let channel = Channel::builder(format!("http://{}", server.local_addr()))
        .service_config(config)
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(ASYNC_SVC, UNARY), Request::new(req("short")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "short");
    let status = client
        .blocking_unary::<_, EchoResponse>(
            path(ASYNC_SVC, UNARY),
            Request::new(req(&"m".repeat(80))),
        )
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Other services keep the channel's limit.
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), Request::new(req(&"m".repeat(80))))
        .unwrap();
    assert_eq!(reply.get_ref().message.len(), 80);
    drop((client, server));
}

/// What a service config asks that this implementation does not do is an error when the
/// config is parsed, naming it; never silently ignored.
#[test]
fn service_config_refuses_what_it_does_not_implement() {
    let _leaks = leak::check();
    for (json, names) in [
        (
            r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2}}]}"#,
            "hedgingPolicy",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "timout": "1s"}]}"#,
            "timout",
        ),
        (
            r#"{"healthCheckConfig": {"serviceName": "x"}}"#,
            "healthCheckConfig",
        ),
    ] {
        let error = ServiceConfig::from_json(json).unwrap_err();
        assert!(error.is_invalid_config(), "{error}");
        assert!(error.to_string().contains(names), "{error}");
    }
}

/// Defaults for every call of a channel or of one client: a timeout and wait-for-ready,
/// a call's own choice first, then its client's, then its channel's.
#[test]
fn channel_and_client_defaults_apply_to_every_call() {
    let _leaks = leak::check();
    let server = serve();
    let channel = Channel::builder(format!("http://{}", server.local_addr()))
        .timeout(Duration::from_millis(300))
        .connect_lazy()
        .unwrap();
    let plain = Client::new(channel.clone());
    let started = Instant::now();
    let status = plain
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("sleep:5000")))
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    // The client's own default wins over the channel's...
    let patient = Client::new(channel.clone()).timeout(Duration::from_secs(20));
    let reply: Response<EchoResponse> = patient
        .blocking_unary(path(SVC, UNARY), Request::new(req("sleep:600")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "sleep:600");
    // ... and the call's own wins over both.
    let mut own = Request::new(req("sleep:5000"));
    own.set_timeout(Duration::from_millis(200));
    let status = patient
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), own)
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    drop((plain, patient, channel, server));

    // Wait-for-ready, from the channel and from a client.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let channel = Channel::builder(format!("http://{addr}"))
        .timeout(Duration::from_millis(500))
        .wait_for_ready(true)
        .connect_lazy()
        .unwrap();
    let waits = |client: &Client| -> Status {
        client
            .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("x")))
            .unwrap_err()
    };
    assert_eq!(
        waits(&Client::new(channel.clone())).code(),
        Code::DeadlineExceeded
    );
    let impatient = Client::new(channel.clone()).wait_for_ready(false);
    assert_eq!(waits(&impatient).code(), Code::Unavailable);
    let mut own = Request::new(req("x"));
    own.set_wait_for_ready(false);
    let status = Client::new(channel)
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), own)
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// A TLS server shut down with a call still open at the end of its grace period: the call
/// ends with `UNAVAILABLE` saying the server shut down (not "connection lost ... without
/// TLS close_notify"), both handler flavours.
#[test]
fn a_shutdown_ends_tls_connections_cleanly() {
    let _leaks = leak::check();
    for service in [SVC, ASYNC_SVC] {
        let pki = Pki::new("shutdown");
        let server = tls_server(&pki);
        let config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca_pem).unwrap());
        let client = Client::new(tls_channel(&server, config));
        let reply: Response<EchoResponse> = client
            .blocking_unary(path(service, UNARY), Request::new(req("warm")))
            .unwrap();
        assert_eq!(reply.get_ref().message, "warm");
        let call = {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut request = Request::new(req("sleep:10000"));
                request.set_timeout(WAIT);
                client.blocking_unary::<_, EchoResponse>(path(service, UNARY), request)
            })
        };
        assert!(
            leak::eventually_within(WAIT, || server.active_calls() == 1),
            "{}",
            server.active_calls()
        );
        server.shutdown(Duration::from_millis(200)).wait();
        let status = call.join().unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{service}: {status:?}");
        assert!(
            status.message().contains("shut down"),
            "{service}: {status:?}"
        );
        assert!(
            !status.message().contains("close_notify"),
            "{service}: {status:?}"
        );
        drop((client, server));
    }
}
