//! The transport under calls: TLS and mutual TLS, Unix sockets, keepalive and ping
//! strikes, connection lifetimes, name resolution, load balancing and connectivity.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsgrpc::channel::{Address, ConnectivityState, LoadBalancingPolicy, Resolver};
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle, Service};
use rsgrpc::tls::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use rsgrpc::{Channel, Code, Request, Response, Status};
use rsgrpc_tests::pki::Pki;
use rsgrpc_tests::{
    EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, async_echo, blocking_echo, path, req,
};

const SVC: &str = "test.Echo";

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

use rsgrpc_tests::eventually;

fn unary(client: &Client, message: &str) -> Result<Response<EchoResponse>, Status> {
    let mut request = Request::new(req(message));
    request.set_timeout(Duration::from_secs(20));
    client.blocking_unary(path(SVC, UNARY), request)
}

async fn unary_async(client: &Client, message: &str) -> Result<Response<EchoResponse>, Status> {
    let mut request = Request::new(req(message));
    request.set_timeout(Duration::from_secs(20));
    client.unary(path(SVC, UNARY), request).await
}

/// A service that reports what it knows of its caller: how many certificates, and the
/// Unix uid.
fn peer_service() -> Service {
    Service::builder("test.Peer")
        .blocking_unary("Who", |request: Request<EchoRequest>| {
            let certs = request.peer_certificates().map(|c| c.to_vec());
            let uid = request.unix_credentials().map(|c| c.uid);
            Ok(Response::new(EchoResponse {
                message: format!("uid:{uid:?}"),
                index: certs.as_ref().map_or(0, |c| c.len() as u32),
                payload: certs
                    .and_then(|c| c.first().map(|leaf| leaf.to_vec()))
                    .unwrap_or_default()
                    .into(),
            }))
        })
        .build()
}

fn who(client: &Client) -> Result<EchoResponse, Status> {
    let mut request = Request::new(req("who"));
    request.set_timeout(Duration::from_secs(20));
    client
        .blocking_unary("/test.Peer/Who", request)
        .map(Response::into_inner)
}

// ---------------------------------------------------------------------------------------
// TLS

fn tls_server(pki: &Pki, tls: impl FnOnce(ServerTlsConfig) -> ServerTlsConfig) -> ServerHandle {
    let identity = Identity::from_pem(&pki.server_cert_pem, &pki.server_key_pem).unwrap();
    Server::builder()
        .tls_config(tls(ServerTlsConfig::new(identity)))
        .add_service(blocking_echo(SVC, Probe::new()))
        .add_service(async_echo("test.AsyncEcho", Probe::new()))
        .add_service(peer_service())
        .bind("127.0.0.1:0")
        .unwrap()
}

fn tls_client(server: &ServerHandle, tls: ClientTlsConfig) -> Client {
    let target = format!("https://localhost:{}", server.local_addr().port());
    Client::new(
        Channel::builder(target)
            .tls_config(tls)
            .connect_lazy()
            .unwrap(),
    )
}

fn trusting(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca_pem).unwrap())
}

#[test]
fn both_flavours_over_tls() {
    let _leaks = rsgrpc_tests::leak::check();
    let pki = Pki::new("tls");
    let server = tls_server(&pki, |t| t);
    let client = tls_client(&server, trusting(&pki));
    for service in [SVC, "test.AsyncEcho"] {
        let mut request = Request::new(req("secret"));
        request.set_timeout(Duration::from_secs(20));
        let reply: Response<EchoResponse> = client
            .blocking_unary(path(service, UNARY), request)
            .unwrap();
        assert_eq!(reply.get_ref().message, "secret");
        let reply: Response<EchoResponse> = futures::executor::block_on(
            client.unary(path(service, UNARY), Request::new(req("async secret"))),
        )
        .unwrap();
        assert_eq!(reply.get_ref().message, "async secret");
        let stream = client
            .blocking_server_streaming::<_, EchoResponse>(
                path(service, SERVER_STREAM),
                Request::new(EchoRequest {
                    count: 50,
                    response_size: 10_000,
                    ..req("s")
                }),
            )
            .unwrap()
            .into_inner();
        assert_eq!(
            stream.map(|m| m.unwrap().payload.len()).sum::<usize>(),
            500_000
        );
    }
    // No client certificate was asked for.
    assert_eq!(who(&client).unwrap().index, 0);
    // An address works too when the certificate names it.
    let by_ip = Client::new(
        Channel::builder(format!("https://127.0.0.1:{}", server.local_addr().port()))
            .tls_config(trusting(&pki))
            .connect_lazy()
            .unwrap(),
    );
    assert_eq!(unary(&by_ip, "by ip").unwrap().get_ref().message, "by ip");
}

#[test]
fn mutual_tls_accepts_a_client_certificate_and_refuses_its_absence() {
    let _leaks = rsgrpc_tests::leak::check();
    let pki = Pki::new("mtls");
    let ca = Certificate::from_pem(&pki.ca_pem).unwrap();
    let server = tls_server(&pki, |t| t.client_ca_root(ca.clone()));
    let identity = Identity::from_pem(&pki.client_cert_pem, &pki.client_key_pem).unwrap();
    let with_cert = tls_client(&server, trusting(&pki).identity(identity.clone()));
    let seen = who(&with_cert).unwrap();
    assert_eq!(seen.index, 1, "the handler sees the client's chain");
    assert_eq!(seen.payload, pki.client_cert_der);

    let without = tls_client(&server, trusting(&pki));
    let status = unary(&without, "no cert").unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().to_lowercase().contains("certificate"),
        "the message names the cause: {status:?}"
    );

    // With client certificates optional, both get in; the handler tells them apart.
    let optional = tls_server(&pki, |t| t.client_ca_root(ca).client_auth_optional(true));
    assert_eq!(
        who(&tls_client(&optional, trusting(&pki))).unwrap().index,
        0
    );
    assert_eq!(
        who(&tls_client(&optional, trusting(&pki).identity(identity)))
            .unwrap()
            .index,
        1
    );
}

#[test]
fn a_wrong_host_name_or_an_unknown_ca_is_refused_with_the_reason() {
    let _leaks = rsgrpc_tests::leak::check();
    let pki = Pki::new("names");
    let server = tls_server(&pki, |t| t);
    let wrong_name = tls_client(&server, trusting(&pki).domain_name("elsewhere.example"));
    let status = unary(&wrong_name, "x").unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("NotValidForName")
            || status.message().contains("not valid for name"),
        "{status:?}"
    );

    let other = Pki::new("other");
    let unknown_ca = tls_client(&server, trusting(&other));
    let status = unary(&unknown_ca, "x").unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("UnknownIssuer") || status.message().contains("issuer"),
        "{status:?}"
    );

    // A client that speaks plaintext to a TLS server fails too, and the server lives on.
    let plain = Client::new(Channel::new(&format!("http://{}", server.local_addr())).unwrap());
    assert!(unary(&plain, "plain").is_err());
    assert_eq!(
        unary(&tls_client(&server, trusting(&pki)), "still fine")
            .unwrap()
            .get_ref()
            .message,
        "still fine"
    );
}

#[test]
fn pem_that_does_not_parse_is_an_error_not_a_panic() {
    let _leaks = rsgrpc_tests::leak::check();
    let err = Certificate::from_pem("-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap_err();
    assert!(err.is_invalid_tls(), "{err}");
    let err = Certificate::from_pem("").unwrap_err();
    assert!(err.is_invalid_tls(), "{err}");
    let pki = Pki::new("pem");
    let err = Identity::from_pem(&pki.server_cert_pem, "no key here").unwrap_err();
    assert!(err.is_invalid_tls(), "{err}");
    assert!(err.to_string().contains("key"), "{err}");
    // A key that is not the certificate's.
    let identity = Identity::from_pem(&pki.server_cert_pem, &pki.client_key_pem).unwrap();
    let err = Server::builder()
        .tls_config(ServerTlsConfig::new(identity))
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(err.is_invalid_tls(), "{err}");
}

// ---------------------------------------------------------------------------------------
// Unix domain sockets

fn socket_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "rsgrpc-{name}-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn own_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn both_flavours_over_a_unix_socket() {
    let _leaks = rsgrpc_tests::leak::check();
    let socket = socket_path("uds");
    let server = Server::builder()
        .add_service(blocking_echo(SVC, Probe::new()))
        .add_service(async_echo("test.AsyncEcho", Probe::new()))
        .add_service(peer_service())
        .bind_unix(&socket)
        .unwrap();
    assert_eq!(server.unix_path(), Some(socket.as_path()));
    for target in [
        format!("unix:{}", socket.display()),
        format!("unix://{}", socket.display()),
    ] {
        let client = Client::new(Channel::new(&target).unwrap());
        for service in [SVC, "test.AsyncEcho"] {
            let reply: Response<EchoResponse> = client
                .blocking_unary(path(service, UNARY), Request::new(req("local")))
                .unwrap();
            assert_eq!(reply.get_ref().message, "local");
            let reply: Response<EchoResponse> = futures::executor::block_on(
                client.unary(path(service, UNARY), Request::new(req("local async"))),
            )
            .unwrap();
            assert_eq!(reply.get_ref().message, "local async");
        }
        assert_eq!(
            who(&client).unwrap().message,
            format!("uid:Some({})", own_uid())
        );
    }
    drop(server);
    assert!(
        !socket.exists(),
        "the socket file is removed with the server"
    );
}

/// Clients of Unix sockets (gRPC C-core, grpc-java, grpcurl) send the socket's path as
/// `:authority`, raw or percent-encoded, which h2 refuses as malformed: the server drops
/// it and serves the call, for both handler flavours. Written by hand, since h2's own
/// client would not send such an authority. Before, every such stream was reset with
/// PROTOCOL_ERROR.
#[test]
fn a_socket_path_as_authority_is_served_over_a_unix_socket() {
    use rsgrpc_tests::raw;
    use std::io::{Read, Write};
    let _leaks = rsgrpc_tests::leak::check();
    let socket = socket_path("authority");
    let server = Server::builder()
        .add_service(blocking_echo(SVC, Probe::new()))
        .add_service(async_echo("test.AsyncEcho", Probe::new()))
        .bind_unix(&socket)
        .unwrap();
    let raw_path = socket.display().to_string();
    let encoded = raw_path.replace('/', "%2F");
    let mut wire = raw::PREFACE.to_vec();
    wire.extend(raw::settings(&[]));
    let mut streams = Vec::new();
    for (i, (service, authority)) in [
        (SVC, raw_path.as_str()),
        ("test.AsyncEcho", raw_path.as_str()),
        (SVC, encoded.as_str()),
        ("test.AsyncEcho", encoded.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        let stream = 2 * i as u32 + 1;
        let mut block = Vec::new();
        raw::hpack_literal(&mut block, ":method", b"POST");
        raw::hpack_literal(&mut block, ":scheme", b"http");
        raw::hpack_literal(
            &mut block,
            ":path",
            format!("/{service}/{UNARY}").as_bytes(),
        );
        raw::hpack_literal(&mut block, ":authority", authority.as_bytes());
        raw::hpack_literal(&mut block, "content-type", b"application/grpc");
        raw::hpack_literal(&mut block, "te", b"trailers");
        wire.extend(raw::headers(stream, false, &block));
        let message = prost::Message::encode_to_vec(&req(&format!("over uds {i}")));
        wire.extend(raw::data(stream, true, &raw::grpc_message(false, &message)));
        streams.push(stream);
    }
    let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(&wire).unwrap();
    // Read frames until every stream got its response data, or a reset comes.
    let (mut data_streams, mut resets) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    while data_streams.len() < streams.len() && resets.is_empty() && Instant::now() < deadline {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            match buf[3] {
                raw::DATA if len > 0 => data_streams.push(stream),
                raw::RST_STREAM => resets.push(stream),
                _ => {}
            }
            buf.drain(..9 + len);
        }
    }
    assert!(resets.is_empty(), "streams reset: {resets:?}");
    data_streams.sort_unstable();
    assert_eq!(
        data_streams, streams,
        "every call answered with its message"
    );
    drop(conn);
    drop(server);
}

// ---------------------------------------------------------------------------------------
// Keepalive and ping strikes

/// An HTTP/2 server that accepts a connection and its first stream, then stops reading
/// or writing anything: to its client, a dead peer.
async fn frozen_server(listener: tokio::net::TcpListener) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut connection = h2::server::handshake(tcp).await.unwrap();
    let accepted = connection.accept().await;
    // Hold everything, poll nothing.
    let _held = (connection, accepted);
    std::future::pending::<()>().await;
}

#[test]
fn client_keepalive_fails_calls_to_a_peer_that_stopped_answering() {
    let _leaks = rsgrpc_tests::leak::check();
    let tokio = tokio_rt();
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio.spawn(frozen_server(listener));
    let channel = Channel::builder(format!("http://{addr}"))
        .keepalive_time(Duration::from_millis(200))
        .keepalive_timeout(Duration::from_millis(300))
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    let start = Instant::now();
    let mut request = Request::new(req("never answered"));
    request.set_timeout(Duration::from_secs(30));
    let status = client
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), request)
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // time + timeout is half a second; the deadline was 30 s.
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn server_keepalive_closes_a_client_that_stopped_answering() {
    let _leaks = rsgrpc_tests::leak::check();
    let probe = Probe::new();
    let server = Server::builder()
        .keepalive_time(Duration::from_millis(200))
        .keepalive_timeout(Duration::from_millis(300))
        .add_service(async_echo(SVC, probe.clone()))
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.local_addr();
    let tokio = tokio_rt();
    // A client that opens a call and then stops servicing its connection.
    let started = {
        let probe = probe.clone();
        move || probe.wait("started:dead-client", Duration::from_secs(20))
    };
    let held = tokio.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
        let request = http::Request::post(format!("http://{addr}/{SVC}/{UNARY}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let mut ready = send.ready().await.unwrap();
        let (response, mut stream) = ready.send_request(request, false).unwrap();
        let body = {
            use prost::Message;
            let message = req("wait-cancel:dead-client").encode_to_vec();
            let mut framed = vec![0];
            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
            framed.extend_from_slice(&message);
            bytes::Bytes::from(framed)
        };
        stream.send_data(body, true).unwrap();
        // Drive the connection until the handler runs, then never again.
        tokio::select! {
            ended = &mut connection => panic!("the connection ended: {ended:?}"),
            started = tokio::task::spawn_blocking(started) => {
                assert!(started.unwrap(), "the handler never started");
            }
        }
        (connection, response, stream, ready)
    });
    assert!(
        probe.wait("dead-client", Duration::from_secs(20)),
        "the handler was not cancelled"
    );
    assert!(eventually(|| server.open_connections() == 0));
    drop(held);
}

/// Minimal HTTP/2 by hand: the client preface, an empty SETTINGS, then PINGs.
fn raw_pings(addr: SocketAddr, pings: usize) -> Vec<(u8, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    for i in 0..pings {
        out.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&(i as u64).to_be_bytes());
    }
    tcp.write_all(&out).unwrap();
    // Read frames until the server closes.
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            frames.push((buf[3], buf[9..9 + len].to_vec()));
            buf.drain(..9 + len);
        }
        if frames.iter().any(|(kind, _)| *kind == 0x7) {
            break;
        }
    }
    frames
}

#[test]
fn a_client_that_pings_too_often_gets_too_many_pings() {
    let _leaks = rsgrpc_tests::leak::check();
    let server = Server::builder()
        .add_service(blocking_echo(SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let frames = raw_pings(server.local_addr(), 10);
    let goaway = frames
        .iter()
        .find(|(kind, _)| *kind == 0x7)
        .expect("a GOAWAY");
    let payload = &goaway.1;
    assert_eq!(
        u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
        0xb,
        "ENHANCE_YOUR_CALM"
    );
    assert_eq!(&payload[8..], b"too_many_pings");
    // Pings within the policy are answered and do not end the connection.
    let patient = Server::builder()
        .keepalive_min_time(Duration::ZERO)
        .permit_keepalive_without_calls(true)
        .add_service(blocking_echo(SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = patient.local_addr();
    let reader = std::thread::spawn(move || raw_pings(addr, 10));
    assert!(eventually(|| patient.open_connections() == 1));
    drop(patient);
    let frames = reader.join().unwrap();
    // Our pings carried 0..10; a server that shuts down gracefully pings on its own too.
    let acks = frames
        .iter()
        .filter(|(kind, payload)| *kind == 0x6 && payload[..] < 10u64.to_be_bytes()[..])
        .count();
    assert_eq!(acks, 10, "every ping answered");
    assert!(
        frames
            .iter()
            .filter(|(kind, _)| *kind == 0x7)
            .all(|(_, p)| &p[8..] != b"too_many_pings")
    );
}

#[test]
fn a_channel_told_too_many_pings_pings_less() {
    let _leaks = rsgrpc_tests::leak::check();
    let server = Server::builder()
        .keepalive_min_time(Duration::from_millis(400))
        .add_service(blocking_echo(SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let channel = Channel::builder(format!("http://{}", server.local_addr()))
        .keepalive_time(Duration::from_millis(20))
        .keepalive_timeout(Duration::from_secs(5))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    // Calls that keep connections busy while the channel pings: each too_many_pings
    // closes the connection and doubles the keepalive time (20 ms, 40, 80 ... past
    // 400 ms), after which the server has no more reason to close it.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        let _ = unary(&client, "sleep:300");
    }
    let connections = server.accepted_connections();
    assert!(
        connections >= 2,
        "the server never objected ({connections})"
    );
    let before = server.accepted_connections();
    for _ in 0..4 {
        unary(&client, "sleep:300").unwrap();
    }
    assert_eq!(
        server.accepted_connections(),
        before,
        "the channel still pings too often"
    );
}

// ---------------------------------------------------------------------------------------
// Connection lifetimes

#[test]
fn idle_connections_are_closed_and_reopened_on_demand() {
    let _leaks = rsgrpc_tests::leak::check();
    let server = Server::builder()
        .max_connection_idle(Duration::from_millis(200))
        .add_service(blocking_echo(SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let client = Client::new(Channel::new(&format!("http://{}", server.local_addr())).unwrap());
    assert_eq!(unary(&client, "one").unwrap().get_ref().message, "one");
    assert!(eventually(|| server.open_connections() == 0));
    assert_eq!(unary(&client, "two").unwrap().get_ref().message, "two");
    assert_eq!(server.accepted_connections(), 2);
}

#[test]
fn old_connections_are_drained_and_then_cut() {
    let _leaks = rsgrpc_tests::leak::check();
    let server = Server::builder()
        .max_connection_age(Duration::from_millis(300))
        .max_connection_age_grace(Duration::from_millis(300))
        .add_service(blocking_echo(SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let client = Client::new(Channel::new(&format!("http://{}", server.local_addr())).unwrap());
    let start = Instant::now();
    let status = unary(&client, "sleep:10000").unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::Cancelled),
        "{status:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    // Short calls keep working over new connections.
    for i in 0..5 {
        let message = format!("short {i}");
        assert_eq!(unary(&client, &message).unwrap().get_ref().message, message);
    }
}

// ---------------------------------------------------------------------------------------
// Resolution, load balancing and connectivity

/// An echo server on `addr` that counts its calls.
fn counted(addr: SocketAddr, calls: Arc<AtomicUsize>) -> ServerHandle {
    let service = Service::builder(SVC)
        .blocking_unary(UNARY, move |request: Request<EchoRequest>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(EchoResponse {
                message: request.into_inner().message,
                ..Default::default()
            }))
        })
        .build();
    Server::builder().add_service(service).bind(addr).unwrap()
}

#[test]
fn round_robin_spreads_calls_survives_a_dead_server_and_takes_it_back() {
    let _leaks = rsgrpc_tests::leak::check();
    let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut servers: Vec<Option<ServerHandle>> = (0..3)
        .map(|i| {
            let addr: SocketAddr = format!("127.0.0.{}:0", i + 1).parse().unwrap();
            Some(counted(addr, counts[i].clone()))
        })
        .collect();
    let addrs: Vec<SocketAddr> = servers
        .iter()
        .map(|s| s.as_ref().unwrap().local_addr())
        .collect();
    let target = format!(
        "ipv4:{}",
        addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let channel = Channel::builder(target)
        .load_balancing(LoadBalancingPolicy::RoundRobin)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .connect_lazy()
        .unwrap();
    channel.connect_blocking(Duration::from_secs(20)).unwrap();
    let client = Client::new(channel);
    // Wait until every subchannel is ready, so that the spread is fair.
    assert!(eventually(|| {
        let _ = unary(&client, "warm");
        counts.iter().all(|c| c.load(Ordering::SeqCst) > 0)
    }));
    let base: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    for i in 0..300 {
        unary(&client, &format!("c{i}")).unwrap();
    }
    for (i, c) in counts.iter().enumerate() {
        let n = c.load(Ordering::SeqCst) - base[i];
        assert!((80..=120).contains(&n), "server {i} got {n} of 300 calls");
    }

    // Kill the second server: calls move to the others; at most the ones in flight fail.
    drop(servers[1].take());
    let mut failed = 0;
    let mut first_error = None;
    for i in 0..100 {
        if let Err(e) = unary(&client, &format!("d{i}")) {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    assert!(
        failed <= 2,
        "{failed} calls failed after one server of three went away, the first with {first_error:?}"
    );

    // Restart it on the same address: it rejoins.
    let rejoined = Arc::new(AtomicUsize::new(0));
    servers[1] = Some(counted(addrs[1], rejoined.clone()));
    assert!(
        eventually(|| {
            let _ = unary(&client, "again");
            rejoined.load(Ordering::SeqCst) > 0
        }),
        "the restarted server never got a call"
    );
}

#[test]
fn pick_first_sticks_to_the_first_address_and_fails_over() {
    let _leaks = rsgrpc_tests::leak::check();
    let first_calls = Arc::new(AtomicUsize::new(0));
    let second_calls = Arc::new(AtomicUsize::new(0));
    let first = counted("127.0.0.1:0".parse().unwrap(), first_calls.clone());
    let second = counted("127.0.0.1:0".parse().unwrap(), second_calls.clone());
    let target = format!("ipv4:{},{}", first.local_addr(), second.local_addr());
    let client = Client::new(Channel::new(&target).unwrap());
    for i in 0..20 {
        unary(&client, &format!("p{i}")).unwrap();
    }
    assert_eq!(first_calls.load(Ordering::SeqCst), 20);
    assert_eq!(second_calls.load(Ordering::SeqCst), 0);
    drop(first);
    assert!(eventually(|| unary(&client, "moved").is_ok()));
    for i in 0..10 {
        unary(&client, &format!("q{i}")).unwrap();
    }
    assert!(second_calls.load(Ordering::SeqCst) >= 10);
}

/// A resolver whose answer the test changes.
struct Moving(Arc<Mutex<Vec<Address>>>, Arc<AtomicUsize>);

impl Resolver for Moving {
    fn resolve(&self) -> Result<Vec<Address>, Status> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let name = std::thread::current().name().unwrap_or("").to_owned();
        assert!(!name.contains("poller"), "resolver ran on {name}");
        Ok(self.0.lock().unwrap().clone())
    }
}

#[test]
fn a_resolver_of_ours_moves_calls_when_its_answer_changes() {
    let _leaks = rsgrpc_tests::leak::check();
    let a_calls = Arc::new(AtomicUsize::new(0));
    let b_calls = Arc::new(AtomicUsize::new(0));
    let a = counted("127.0.0.1:0".parse().unwrap(), a_calls.clone());
    let b = counted("127.0.0.1:0".parse().unwrap(), b_calls.clone());
    let answer = Arc::new(Mutex::new(vec![Address::Tcp(a.local_addr())]));
    let resolutions = Arc::new(AtomicUsize::new(0));
    let channel = Channel::builder("registry:///echo")
        .resolver(Moving(answer.clone(), resolutions.clone()))
        .resolve_interval(Duration::from_millis(100))
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    unary(&client, "to a").unwrap();
    assert_eq!(a_calls.load(Ordering::SeqCst), 1);
    *answer.lock().unwrap() = vec![Address::Tcp(b.local_addr())];
    assert!(
        eventually(|| {
            let _ = unary(&client, "to b");
            b_calls.load(Ordering::SeqCst) > 0
        }),
        "calls never moved to the new address"
    );
    assert!(resolutions.load(Ordering::SeqCst) >= 2);
    // A resolver that finds nothing fails calls fast, with its reason.
    answer.lock().unwrap().clear();
    drop(b);
    assert!(eventually(|| {
        unary(&client, "nowhere").is_err_and(|s| s.code() == Code::Unavailable)
    }));
}

#[test]
fn connectivity_state_follows_the_channel() {
    let _leaks = rsgrpc_tests::leak::check();
    let server = counted(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(AtomicUsize::new(0)),
    );
    let channel = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    assert_eq!(channel.state(false), ConnectivityState::Idle);
    channel.connect_blocking(Duration::from_secs(20)).unwrap();
    assert_eq!(channel.state(false), ConnectivityState::Ready);
    // The async flavour of the same.
    futures::executor::block_on(channel.connect()).unwrap();
    let waiter = {
        let channel = channel.clone();
        std::thread::spawn(move || {
            channel.wait_for_state_change(ConnectivityState::Ready, Duration::from_secs(20))
        })
    };
    channel.close();
    assert!(waiter.join().unwrap());
    assert_eq!(channel.state(true), ConnectivityState::Shutdown);
    assert!(channel.connect_blocking(Duration::from_secs(1)).is_err());

    // Nothing listens: the channel goes to TransientFailure and connect says why.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let channel = Channel::new(&format!("http://{dead}")).unwrap();
    let status = channel
        .connect_blocking(Duration::from_secs(20))
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains(&dead.to_string()), "{status:?}");
    assert_eq!(channel.state(false), ConnectivityState::TransientFailure);
    let next =
        futures::executor::block_on(channel.state_changed(ConnectivityState::TransientFailure));
    assert_eq!(next, ConnectivityState::Connecting);
}

#[test]
fn async_calls_work_over_tls_and_unix_sockets_on_tokio() {
    let _leaks = rsgrpc_tests::leak::check();
    let pki = Pki::new("async");
    let tls = tls_server(&pki, |t| t);
    let tls_client = tls_client(&tls, trusting(&pki));
    let path = socket_path("async");
    let _unix = Server::builder()
        .add_service(async_echo(SVC, Probe::new()))
        .bind_unix(&path)
        .unwrap();
    let unix_client = Client::new(Channel::new(&format!("unix:{}", path.display())).unwrap());
    let rt = tokio_rt();
    rt.block_on(async {
        let a = unary_async(&tls_client, "tls").await.unwrap();
        let b = unary_async(&unix_client, "unix").await.unwrap();
        assert_eq!(
            (a.into_inner().message, b.into_inner().message),
            ("tls".into(), "unix".into())
        );
    });
}

// ---------------------------------------------------------------------------------------
// Retries

use rsgrpc::channel::ServiceConfig;
use rsgrpc::{BlockingStreaming, MetadataMap, ResponseSink};

fn retry_config(attempts: u32, codes: &str, extra: &str) -> ServiceConfig {
    ServiceConfig::from_json(&format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "test.Flaky"}}],
             "retryPolicy": {{"maxAttempts": {attempts}, "initialBackoff": "0.01s",
               "maxBackoff": "0.05s", "backoffMultiplier": 2,
               "retryableStatusCodes": [{codes}]}}}}]{extra}}}"#
    ))
    .unwrap()
}

/// A service that fails its first `failures` calls with `code` (and what each attempt
/// carried in `grpc-previous-rpc-attempts`).
struct Flaky {
    calls: AtomicUsize,
    failures: usize,
    code: Code,
    previous: Mutex<Vec<Option<String>>>,
    pushback: Option<&'static str>,
}

fn flaky_service(flaky: Arc<Flaky>) -> Service {
    let (f1, f2, f3) = (flaky.clone(), flaky.clone(), flaky);
    let fail = |flaky: &Flaky, metadata: &MetadataMap| -> Result<(), Status> {
        let n = flaky.calls.fetch_add(1, Ordering::SeqCst);
        flaky.previous.lock().unwrap().push(
            metadata
                .get("grpc-previous-rpc-attempts")
                .map(str::to_owned),
        );
        if n < flaky.failures {
            let mut status = Status::new(flaky.code, format!("attempt {n} fails"));
            if let Some(ms) = flaky.pushback {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", ms)
                    .unwrap();
            }
            return Err(status);
        }
        Ok(())
    };
    Service::builder("test.Flaky")
        .blocking_unary(UNARY, move |request: Request<EchoRequest>| {
            fail(&f1, request.metadata())?;
            Ok(Response::new(EchoResponse {
                message: request.into_inner().message,
                ..Default::default()
            }))
        })
        .blocking_client_streaming(
            "Collect",
            move |request: Request<BlockingStreaming<EchoRequest>>| {
                let (metadata, requests) = request.into_parts();
                let messages: Vec<String> = requests
                    .map(|r| r.map(|r| r.message))
                    .collect::<Result<_, _>>()?;
                fail(&f2, &metadata)?;
                Ok(Response::new(EchoResponse {
                    message: messages.join(","),
                    ..Default::default()
                }))
            },
        )
        .blocking_server_streaming(
            "Headers",
            move |request: Request<EchoRequest>, mut sink: ResponseSink<EchoResponse>| {
                sink.send_headers(MetadataMap::new())?;
                fail(&f3, request.metadata())?;
                sink.send(EchoResponse::default())
            },
        )
        .build()
}

fn flaky(failures: usize, code: Code) -> Arc<Flaky> {
    Arc::new(Flaky {
        calls: AtomicUsize::new(0),
        failures,
        code,
        previous: Mutex::new(Vec::new()),
        pushback: None,
    })
}

fn flaky_client(server: &ServerHandle, config: ServiceConfig) -> Client {
    Client::new(
        Channel::builder(format!("http://{}", server.local_addr()))
            .service_config(config)
            .connect_lazy()
            .unwrap(),
    )
}

fn serve_flaky(flaky: &Arc<Flaky>) -> ServerHandle {
    Server::builder()
        .add_service(flaky_service(flaky.clone()))
        .bind("127.0.0.1:0")
        .unwrap()
}

#[test]
fn a_retry_policy_retries_retryable_codes_and_says_so() {
    let _leaks = rsgrpc_tests::leak::check();
    let f = flaky(2, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(4, r#""UNAVAILABLE""#, ""));
    let reply: Response<EchoResponse> = client
        .blocking_unary("/test.Flaky/Unary", Request::new(req("third time")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "third time");
    assert_eq!(f.calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        *f.previous.lock().unwrap(),
        vec![None, Some("1".to_owned()), Some("2".to_owned())]
    );
    // The async flavour retries the same way.
    let f = flaky(1, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(4, r#""UNAVAILABLE""#, ""));
    let reply: Response<EchoResponse> =
        futures::executor::block_on(client.unary("/test.Flaky/Unary", Request::new(req("async"))))
            .unwrap();
    assert_eq!(reply.get_ref().message, "async");
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn retries_stop_at_other_codes_at_max_attempts_and_once_committed() {
    let _leaks = rsgrpc_tests::leak::check();
    // A code the policy does not list.
    let f = flaky(1, Code::Internal);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(4, r#""UNAVAILABLE""#, ""));
    let status = client
        .blocking_unary::<_, EchoResponse>("/test.Flaky/Unary", Request::new(req("x")))
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);

    // Attempts run out (numbers work as codes too).
    let f = flaky(100, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(3, "14", ""));
    let status = client
        .blocking_unary::<_, EchoResponse>("/test.Flaky/Unary", Request::new(req("x")))
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "attempt 2 fails");
    assert_eq!(f.calls.load(Ordering::SeqCst), 3);

    // Response headers were sent: the call is committed and never retried.
    let f = flaky(1, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(4, r#""UNAVAILABLE""#, ""));
    let stream = client
        .blocking_server_streaming::<_, EchoResponse>("/test.Flaky/Headers", Request::new(req("x")))
        .unwrap()
        .into_inner();
    let results: Vec<_> = stream.collect();
    assert!(results.last().unwrap().is_err());
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn pushback_and_throttling_limit_retries() {
    let _leaks = rsgrpc_tests::leak::check();
    // The server says not to retry.
    let f = Arc::new(Flaky {
        pushback: Some("-1"),
        ..Arc::into_inner(flaky(5, Code::Unavailable)).unwrap()
    });
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(4, r#""UNAVAILABLE""#, ""));
    assert!(
        client
            .blocking_unary::<_, EchoResponse>("/test.Flaky/Unary", Request::new(req("x")))
            .is_err()
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);

    // Throttling: 3 tokens, so after two failures (1 token left, not more than half)
    // no call is retried any more.
    let f = flaky(1000, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(
        &server,
        retry_config(
            5,
            r#""UNAVAILABLE""#,
            r#", "retryThrottling": {"maxTokens": 3, "tokenRatio": 0.1}"#,
        ),
    );
    for _ in 0..5 {
        let _ =
            client.blocking_unary::<_, EchoResponse>("/test.Flaky/Unary", Request::new(req("x")));
    }
    // Without throttling, 5 calls x 5 attempts = 25.
    let calls = f.calls.load(Ordering::SeqCst);
    assert!(
        calls <= 8,
        "{calls} attempts: throttling did not stop the retries"
    );
}

#[test]
fn a_streaming_call_is_replayed_on_retry_within_the_retry_buffer() {
    let _leaks = rsgrpc_tests::leak::check();
    let f = flaky(1, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(3, r#""UNAVAILABLE""#, ""));
    let reply: Response<EchoResponse> = client
        .blocking_client_streaming(
            "/test.Flaky/Collect",
            Request::new(vec![req("a"), req("b"), req("c")]),
        )
        .unwrap();
    assert_eq!(
        reply.get_ref().message,
        "a,b,c",
        "the retry sent every request again"
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);

    // Requests larger than a frame, which go out joined across their boundaries, are
    // replayed whole and in order.
    let f = flaky(1, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(3, r#""UNAVAILABLE""#, ""));
    let large = (0..4).map(|i| EchoRequest {
        message: format!("l{i}"),
        payload: vec![7; 20_000].into(),
        ..Default::default()
    });
    let reply: Response<EchoResponse> = client
        .blocking_client_streaming("/test.Flaky/Collect", Request::new(large))
        .unwrap();
    assert_eq!(reply.get_ref().message, "l0,l1,l2,l3");
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);

    // More than the retry buffer: the call cannot be replayed, so it is not retried.
    let f = flaky(1, Code::Unavailable);
    let server = serve_flaky(&f);
    let client = flaky_client(&server, retry_config(3, r#""UNAVAILABLE""#, ""));
    let big = (0..5).map(|i| EchoRequest {
        message: format!("m{i}"),
        payload: vec![0; 100 * 1024].into(),
        ..Default::default()
    });
    let status = client
        .blocking_client_streaming::<_, _, EchoResponse>("/test.Flaky/Collect", Request::new(big))
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn calls_refused_by_a_busy_server_are_retried() {
    let _leaks = rsgrpc_tests::leak::check();
    let server = Server::builder()
        .max_concurrent_calls(1)
        .add_service(blocking_echo(SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let config = ServiceConfig::from_json(
        r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 5,
           "initialBackoff": "1s", "maxBackoff": "2s", "backoffMultiplier": 2,
           "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
    )
    .unwrap();
    let client = flaky_client(&server, config);
    let busy = {
        let client = client.clone();
        std::thread::spawn(move || unary(&client, "sleep:200"))
    };
    // Wait until the first call holds the server's only slot. The second is refused
    // until it is free: four backoffs drawn from up to 1 s, 2 s, 2 s and 2 s sum to
    // less than the 200 ms it holds the slot with negligible odds.
    assert!(eventually(|| server.active_calls() == 1));
    assert_eq!(unary(&client, "after").unwrap().get_ref().message, "after");
    busy.join().unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------
// Behind a real gRPC proxy: Debian's nginx with grpc_pass.

/// nginx in the foreground with `config`, killed when dropped.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &std::path::Path, upstreams: &[SocketAddr], socket: &std::path::Path) -> Nginx {
    let servers: String = upstreams
        .iter()
        .map(|a| format!("    server {a};\n"))
        .collect();
    let d = dir.display();
    let config = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\n\
         pid {d}/nginx.pid;\nevents {{}}\nhttp {{\n  access_log off;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n  upstream echo {{\n{servers}  }}\n\
         server {{\n    listen unix:{} http2;\n    location / {{ grpc_pass grpc://echo; }}\n  }}\n}}\n",
        socket.display()
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    let child = std::process::Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (scripts/test.sh installs Debian's nginx-light)");
    let proxy = Nginx(child);
    assert!(
        eventually(|| socket.exists()),
        "nginx did not start: {}",
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
    proxy
}

#[test]
fn both_flavours_serve_correctly_behind_nginx() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in ["blocking", "async"] {
        let dir =
            std::env::temp_dir().join(format!("rsgrpc-nginx-{flavour}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let servers: Vec<ServerHandle> = (0..3)
            .map(|_| {
                let service = if flavour == "blocking" {
                    blocking_echo(SVC, Probe::new())
                } else {
                    async_echo(SVC, Probe::new())
                };
                Server::builder()
                    .add_service(service)
                    .bind("127.0.0.1:0")
                    .unwrap()
            })
            .collect();
        let upstreams: Vec<SocketAddr> = servers.iter().map(|s| s.local_addr()).collect();
        let socket = dir.join("nginx.sock");
        let _proxy = nginx(&dir, &upstreams, &socket);
        let client = Client::new(Channel::new(&format!("unix:{}", socket.display())).unwrap());

        // Unary, with metadata both ways, many times: nginx spreads them over the three.
        for i in 0..30 {
            let mut request = Request::new(req(&format!("via nginx {i}")));
            request.set_timeout(Duration::from_secs(20));
            request.metadata_mut().insert("x-echo", "meta").unwrap();
            let reply: Response<EchoResponse> =
                client.blocking_unary(path(SVC, UNARY), request).unwrap();
            assert_eq!(reply.get_ref().message, format!("via nginx {i}"));
            assert_eq!(reply.metadata().get("x-echo"), Some("meta"), "{flavour}");
            assert_eq!(
                reply.trailers().get("x-echo-trailer"),
                Some("meta"),
                "{flavour}"
            );
        }
        let accepted: Vec<u64> = servers.iter().map(|s| s.accepted_connections()).collect();
        assert!(
            accepted.iter().all(|n| *n > 0),
            "{flavour}: not every upstream was used: {accepted:?}"
        );

        // A failing call keeps its status, message and details through the proxy.
        let status = client
            .blocking_unary::<_, EchoResponse>(
                path(SVC, UNARY),
                Request::new(req("fail:7:not for you")),
            )
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{flavour}: {status:?}"
        );
        assert_eq!(status.message(), "not for you");
        assert_eq!(status.details().as_ref(), b"why");

        // Streams, both client flavours.
        let stream = client
            .blocking_server_streaming::<_, EchoResponse>(
                path(SVC, SERVER_STREAM),
                Request::new(EchoRequest {
                    count: 100,
                    response_size: 5000,
                    ..req("s")
                }),
            )
            .unwrap()
            .into_inner();
        assert_eq!(
            stream.map(|m| m.unwrap().payload.len()).sum::<usize>(),
            500_000
        );
        let reply: Response<EchoResponse> = client
            .blocking_client_streaming(
                path(SVC, rsgrpc_tests::CLIENT_STREAM),
                Request::new(vec![req("a"), req("b")]),
            )
            .unwrap();
        assert_eq!(reply.get_ref().message, "a,b");
        let replies: Vec<String> = futures::executor::block_on(async {
            let requests = futures::stream::iter(vec![req("x"), req("y")]);
            let mut stream = client
                .bidi_streaming::<_, _, EchoResponse>(
                    path(SVC, rsgrpc_tests::BIDI),
                    Request::new(requests),
                )
                .await
                .unwrap()
                .into_inner();
            let mut out = Vec::new();
            while let Some(m) = stream.message().await.unwrap() {
                out.push(m.message);
            }
            out
        });
        assert_eq!(replies, vec!["x:0", "y:1"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
