//! gRPC-Web on the server: both forms (binary and base64 text) over HTTP/2 and HTTP/1.1,
//! both handler flavours, the status as the body's last frame, metadata both ways, CORS,
//! deadlines and cancellation, and HTTP/1.1 connections under the server's connection
//! rules and memory budget. `curl` gives a transcript of the wire format; the browser and
//! Node clients are in examples/interop/tests/grpc_web.rs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::{BufMut, BytesMut};
use prost::Message;
use rsgrpc::server::{GrpcWeb, ServerBuilder};
use rsgrpc_tests::{EchoRequest, EchoResponse, SERVER_STREAM, UNARY, req};

use crate::support::{FLAVOURS, SVC, server_with, tokio_rt};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn web_server(
    flavour: rsgrpc_tests::Flavour,
    web: GrpcWeb,
) -> (
    rsgrpc::server::ServerHandle,
    std::sync::Arc<rsgrpc_tests::Probe>,
) {
    server_with(flavour, |b: ServerBuilder| {
        b.grpc_web(web).accept_http1(true)
    })
}

/// `message` with its prefix.
fn framed(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut buf = BytesMut::new();
    buf.put_u8(0);
    buf.put_u32(body.len() as u32);
    buf.put_slice(&body);
    buf.to_vec()
}

/// A gRPC-Web body split into (flag, payload) frames.
fn frames(mut body: &[u8]) -> Frames {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "a frame cut short: {body:?}");
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    out
}

/// The trailer lines of a trailers frame, sorted.
fn trailer_lines(block: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(block).unwrap();
    assert!(text.ends_with("\r\n"), "{text:?}");
    let mut lines: Vec<String> = text.split_terminator("\r\n").map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Decodes a text-form body: padded base64 runs one after another.
fn decode_text(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for group in body.chunks(4) {
        out.extend(B64.decode(group).unwrap());
    }
    out
}

// --- A plain HTTP/1.1 client over a socket. -------------------------------------------

struct Http1Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http1Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn http1_connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    BufReader::new(tcp)
}

fn http1_send(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let addr = conn.get_ref().peer_addr().unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // One write: a server that answers from the first bytes (431, or no HTTP/1.1 at all)
    // and closes may do so before it has read the rest; what it answered is what the
    // caller reads next.
    match conn.get_mut().write_all(&request) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => panic!("writing the request: {e}"),
    }
}

/// Reads one HTTP/1.1 message (request or response): its first line, its headers and
/// its body (chunked, sized, or none).
fn read_message(conn: &mut BufReader<TcpStream>) -> (String, Headers, Vec<u8>) {
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let first = line.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut body = Vec::new();
    if header(&headers, "transfer-encoding") == Some("chunked") {
        loop {
            line.clear();
            conn.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = header(&headers, "content-length") {
        body = vec![0; len.parse().unwrap()];
        conn.read_exact(&mut body).unwrap();
    }
    (first, headers, body)
}

fn http1_read(conn: &mut BufReader<TcpStream>) -> Http1Response {
    let (status_line, headers, body) = read_message(conn);
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {status_line:?}"));
    Http1Response {
        status,
        headers,
        body,
    }
}

fn http1(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Http1Response {
    let mut conn = http1_connect(addr);
    http1_send(&mut conn, method, path, headers, body);
    http1_read(&mut conn)
}

/// A CORS preflight for a POST from `origin`, with `extra` headers.
fn preflight(addr: SocketAddr, path: &str, origin: &str, extra: &[(&str, &str)]) -> Http1Response {
    let mut headers = vec![
        ("origin", origin),
        ("access-control-request-method", "POST"),
    ];
    headers.extend_from_slice(extra);
    http1(addr, "OPTIONS", path, &headers, b"")
}

// --- HTTP/2 ------------------------------------------------------------------------------

/// A gRPC-Web (or any) request over HTTP/2; the response's status, headers, body and
/// HTTP/2 trailers.
async fn h2_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Vec<u8>, Option<http::HeaderMap>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let mut send = send.ready().await.unwrap();
    let (response, mut stream) = send.send_request(request, false).unwrap();
    let _ = stream.send_data(body.into(), true);
    let response = response.await.unwrap();
    let (parts, mut recv) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        let _ = recv.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await.unwrap();
    (parts.status.as_u16(), parts.headers, data, trailers)
}

/// Headers as (lower-case name, value).
type Headers = Vec<(String, String)>;
/// A gRPC-Web body's frames as (flag, payload).
type Frames = Vec<(u8, Vec<u8>)>;

/// One call through either transport and either form: (status, headers, frames).
fn web_call(
    addr: SocketAddr,
    http2: bool,
    text: bool,
    method: &str,
    headers: &[(&str, &str)],
    message: &EchoRequest,
) -> (u16, Headers, Frames) {
    let content_type = if text {
        "application/grpc-web-text"
    } else {
        "application/grpc-web+proto"
    };
    let mut all = vec![("content-type", content_type), ("x-grpc-web", "1")];
    all.extend_from_slice(headers);
    let body = framed(message);
    let body = if text {
        B64.encode(body).into_bytes()
    } else {
        body
    };
    let path = format!("/{SVC}/{method}");
    let (status, headers, body) = if http2 {
        let (status, headers, body, trailers) =
            tokio_rt().block_on(h2_request(addr, "POST", &path, &all, body));
        assert!(trailers.is_none(), "gRPC-Web sends no HTTP trailers");
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        (status, headers, body)
    } else {
        let r = http1(addr, "POST", &path, &all, &body);
        (r.status, r.headers, r.body)
    };
    let body = if text { decode_text(&body) } else { body };
    (status, headers, frames(&body))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn unary_and_server_streaming_in_both_forms_over_both_protocols() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = web_server(flavour, GrpcWeb::new());
        let addr = server.local_addr();
        for http2 in [false, true] {
            for text in [false, true] {
                let what = format!("{flavour:?}, http2 {http2}, text {text}");
                let expected_type = if text {
                    "application/grpc-web-text+proto"
                } else {
                    "application/grpc-web+proto"
                };
                // Unary, with metadata both ways.
                let message = EchoRequest {
                    message: "hello web".into(),
                    payload: vec![7; 100_000].into(),
                    ..Default::default()
                };
                let (status, headers, frames) =
                    web_call(addr, http2, text, UNARY, &[("x-echo", "v1")], &message);
                assert_eq!(status, 200, "{what}");
                assert_eq!(header(&headers, "content-type"), Some(expected_type));
                assert_eq!(header(&headers, "x-echo"), Some("v1"), "{what}");
                assert_eq!(frames.len(), 2, "{what}");
                let reply = EchoResponse::decode(&frames[0].1[..]).unwrap();
                assert_eq!(frames[0].0, 0);
                assert_eq!(reply.message, "hello web");
                assert_eq!(reply.payload.len(), 100_000);
                assert_eq!(frames[1].0, 0x80, "the last frame holds the trailers");
                assert_eq!(
                    trailer_lines(&frames[1].1),
                    ["grpc-status: 0", "x-echo-trailer: v1"],
                    "{what}"
                );

                // Server streaming: every message, then the trailers.
                let message = EchoRequest {
                    count: 5,
                    response_size: 20_000,
                    ..Default::default()
                };
                let (status, _, frames) = web_call(addr, http2, text, SERVER_STREAM, &[], &message);
                assert_eq!(status, 200, "{what}");
                assert_eq!(frames.len(), 6, "{what}");
                for (i, (flag, body)) in frames[..5].iter().enumerate() {
                    assert_eq!(*flag, 0);
                    let item = EchoResponse::decode(&body[..]).unwrap();
                    assert_eq!((item.index, item.payload.len()), (i as u32, 20_000));
                }
                assert_eq!(trailer_lines(&frames[5].1), ["grpc-status: 0"]);

                // An error before any message: a Trailers-Only response, the status in
                // the headers and no body.
                let (status, headers, frames) =
                    web_call(addr, http2, text, UNARY, &[], &req("fail:3:bad input"));
                assert_eq!(status, 200, "{what}");
                assert_eq!(header(&headers, "grpc-status"), Some("3"), "{what}");
                assert_eq!(header(&headers, "grpc-message"), Some("bad input"));
                assert!(frames.is_empty(), "{what}: {frames:?}");
            }
        }
    }
}

#[test]
fn curl_transcript_over_http1() {
    let _leaks = rsgrpc_tests::leak::check();
    let dir = std::env::temp_dir().join(format!("rsgrpc-web-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let request = dir.join("request.bin");
    let message = EchoRequest {
        message: "from curl".into(),
        ..Default::default()
    };
    std::fs::write(&request, framed(&message)).unwrap();
    for flavour in FLAVOURS {
        let (server, _) = web_server(flavour, GrpcWeb::new());
        let output = std::process::Command::new("curl")
            .args(["--http1.1", "--silent", "--show-error", "--include"])
            .args(["-H", "content-type: application/grpc-web+proto"])
            .args(["-H", "x-grpc-web: 1", "-H", "x-echo: curl"])
            .arg("--data-binary")
            .arg(format!("@{}", request.display()))
            .arg(format!("http://{}/{SVC}/{UNARY}", server.local_addr()))
            .output()
            .expect("curl (scripts/test.sh installs it)");
        assert!(output.status.success(), "{output:?}");
        let out = output.stdout;
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let body = &out[split + 4..];
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/grpc-web+proto\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-echo: curl\r\n"), "{head}");
        // The body, byte for byte: the reply message, then the trailers frame.
        let reply = framed(&EchoResponse {
            message: "from curl".into(),
            ..Default::default()
        });
        assert_eq!(&body[..reply.len()], &reply[..], "{flavour:?}");
        let trailers = &body[reply.len()..];
        // (The handler's trailing metadata, then the status, as in native trailers.)
        let block = b"x-echo-trailer: curl\r\ngrpc-status: 0\r\n";
        let mut expected = vec![0x80];
        expected.extend_from_slice(&(block.len() as u32).to_be_bytes());
        expected.extend_from_slice(block);
        assert_eq!(
            trailers,
            &expected[..],
            "{}",
            String::from_utf8_lossy(trailers)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cors_preflight_and_origins() {
    let _leaks = rsgrpc_tests::leak::check();
    let web = GrpcWeb::new()
        .allow_origin("http://app.example")
        .allow_headers(["x-echo"])
        .expose_headers(["x-echo", "x-echo-trailer"]);
    let (server, probe) = web_server(FLAVOURS[0], web);
    let addr = server.local_addr();
    let path = format!("/{SVC}/{UNARY}");
    let request_headers = [(
        "access-control-request-headers",
        "content-type,x-grpc-web,x-echo",
    )];
    let r = preflight(addr, &path, "http://app.example", &request_headers);
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
    let allowed = r.header("access-control-allow-headers").unwrap();
    for name in ["content-type", "x-grpc-web", "grpc-timeout", "x-echo"] {
        assert!(allowed.split(',').any(|h| h == name), "{name} in {allowed}");
    }
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("vary"), Some("origin"));

    let r = preflight(addr, &path, "http://evil.example", &request_headers);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // A call from an origin not allowed is refused before its handler runs.
    let call = |origin: &str, message: &str| {
        http1(
            addr,
            "POST",
            &path,
            &[
                ("content-type", "application/grpc-web+proto"),
                ("origin", origin),
                ("x-echo", "e"),
            ],
            &framed(&req(message)),
        )
    };
    let r = call("http://evil.example", "sleep:0:started:evil");
    assert_eq!(r.status, 403);
    assert!(r.body.is_empty());
    let r = call("http://app.example", "sleep:0:started:app");
    assert_eq!(r.status, 200);
    assert!(probe.has("started:app"));
    assert!(!probe.has("started:evil"), "the refused call ran");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    let exposed = r.header("access-control-expose-headers").unwrap();
    for name in ["grpc-status", "grpc-message", "x-echo", "x-echo-trailer"] {
        assert!(exposed.split(',').any(|h| h == name), "{name} in {exposed}");
    }

    // The server's own origin is always allowed; requests without an origin carry no
    // CORS headers.
    let r = call(&format!("http://{addr}"), "own");
    assert_eq!(r.status, 200);
    let r = http1(
        addr,
        "POST",
        &path,
        &[("content-type", "application/grpc-web+proto")],
        &framed(&req("no origin")),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // The default: no cross-origin access at all.
    let (server, _) = web_server(FLAVOURS[1], GrpcWeb::new());
    let r = preflight(server.local_addr(), &path, "http://app.example", &[]);
    assert_eq!(r.status, 403);
    // Any origin, with credentials asked for: a wildcard never allows them.
    let (server, _) = web_server(
        FLAVOURS[1],
        GrpcWeb::new().allow_any_origin().allow_credentials(true),
    );
    let r = preflight(server.local_addr(), &path, "http://anywhere.example", &[]);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    // Credentials for a listed origin.
    let (server, _) = web_server(
        FLAVOURS[1],
        GrpcWeb::new()
            .allow_origin("http://app.example")
            .allow_credentials(true),
    );
    let r = preflight(server.local_addr(), &path, "http://app.example", &[]);
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
}

#[test]
fn deadlines_and_cancellation_over_http1() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, probe) = web_server(flavour, GrpcWeb::new());
        let addr = server.local_addr();
        let path = format!("/{SVC}/{UNARY}");
        // The deadline passes while the handler sleeps: DEADLINE_EXCEEDED, at once.
        let started = Instant::now();
        let r = http1(
            addr,
            "POST",
            &path,
            &[
                ("content-type", "application/grpc-web+proto"),
                ("grpc-timeout", "100m"),
            ],
            &framed(&req("sleep:3000")),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("grpc-status"), Some("4"), "{flavour:?}");
        assert!(started.elapsed() < Duration::from_millis(2900));

        // The browser goes away (its connection closes): the handler sees the call
        // cancelled.
        let mut conn = http1_connect(addr);
        let tag = format!("web-cancelled-{flavour:?}");
        http1_send(
            &mut conn,
            "POST",
            &path,
            &[("content-type", "application/grpc-web+proto")],
            &framed(&req(&format!("wait-cancel:{tag}"))),
        );
        // Once its handler runs (a call cancelled before that is answered without it).
        assert!(probe.wait(&format!("started:{tag}"), Duration::from_secs(20)));
        drop(conn);
        assert!(
            probe.wait(&tag, Duration::from_secs(20)),
            "{flavour:?}: the handler did not see the cancellation"
        );
    }
}

#[test]
fn http1_connections_follow_the_servers_connection_rules_and_budget() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server_with(FLAVOURS[1], |b| {
        b.grpc_web(GrpcWeb::new())
            .accept_http1(true)
            .max_connections(1)
            .handshake_timeout(Duration::from_millis(300))
    });
    let addr = server.local_addr();
    let path = format!("/{SVC}/{UNARY}");
    let before = server.memory_used();
    // An HTTP/1.1 connection, kept open after its request.
    let mut conn = http1_connect(addr);
    http1_send(
        &mut conn,
        "POST",
        &path,
        &[("content-type", "application/grpc-web+proto")],
        &framed(&req("kept")),
    );
    assert_eq!(http1_read(&mut conn).status, 200);
    // It is charged what it holds, beyond an HTTP/2 connection's cost.
    assert!(
        server.memory_used() >= before + rsgrpc::limits::HTTP1_BRIDGE_COST,
        "{} then {}",
        before,
        server.memory_used()
    );
    // It is the one connection allowed; idle, it makes room for a new client.
    let client = crate::support::client(&server);
    let reply: rsgrpc::Response<EchoResponse> = client
        .blocking_unary(
            rsgrpc_tests::path(SVC, UNARY),
            rsgrpc::Request::new(req("native")),
        )
        .unwrap();
    assert_eq!(reply.get_ref().message, "native");
    let mut rest = Vec::new();
    assert_eq!(
        conn.read_to_end(&mut rest).unwrap(),
        0,
        "the idle HTTP/1.1 connection was closed"
    );
    drop(client);

    // Headers beyond the read buffer: 431.
    let big = "v".repeat(rsgrpc::limits::HTTP1_READ_BUFFER);
    let r = http1(
        addr,
        "POST",
        &path,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-big", &big),
        ],
        &framed(&req("big")),
    );
    assert_eq!(r.status, 431);

    // A request whose headers never end is closed at the handshake timeout.
    assert!(rsgrpc_tests::eventually(|| server.open_connections() == 0));
    let mut slow = http1_connect(addr);
    slow.get_mut()
        .write_all(b"POST /test.Echo/Unary HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_stalled_http1_reader_is_held_to_the_budget() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = web_server(flavour, GrpcWeb::new());
        let addr = server.local_addr();
        let baseline = server.memory_used();
        // 2,000 messages of 64 KiB (125 MiB) to a client that reads nothing.
        let mut conn = http1_connect(addr);
        conn.get_ref().set_read_timeout(None).unwrap();
        http1_send(
            &mut conn,
            "POST",
            &format!("/{SVC}/{SERVER_STREAM}"),
            &[("content-type", "application/grpc-web+proto")],
            &framed(&EchoRequest {
                count: 2000,
                response_size: 64 * 1024,
                ..Default::default()
            }),
        );
        assert!(rsgrpc_tests::eventually(|| server.active_calls() == 1));
        // Whenever looked at, the server holds no more than the call's queue, the
        // bridge's cost and the sockets' buffers, however long the client stalls.
        let bound = baseline + rsgrpc::limits::HTTP1_BRIDGE_COST + (2 << 20);
        let mut most = 0;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            most = most.max(server.memory_used());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            most <= bound,
            "{flavour:?}: held {most} bytes, bound {bound}"
        );
        // Reading it all gets every message.
        conn.get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let r = http1_read(&mut conn);
        let frames = frames(&r.body);
        assert_eq!(frames.len(), 2001, "{flavour:?}");
        assert_eq!(trailer_lines(&frames[2000].1), ["grpc-status: 0"]);
    }
}

#[test]
fn without_grpc_web_or_http1_nothing_changes() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server_with(FLAVOURS[0], |b| b);
    let addr = server.local_addr();
    let path = format!("/{SVC}/{UNARY}");
    let (status, _, _, _) = tokio_rt().block_on(h2_request(
        addr,
        "POST",
        &path,
        &[("content-type", "application/grpc-web+proto")],
        framed(&req("web")),
    ));
    assert_eq!(status, 415, "gRPC-Web is off by default");
    // HTTP/1.1 is not spoken: the connection closes without an answer.
    let mut conn = http1_connect(addr);
    http1_send(
        &mut conn,
        "POST",
        &path,
        &[("content-type", "application/grpc-web+proto")],
        &framed(&req("web")),
    );
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert!(
        !rest.starts_with(b"HTTP/1.1"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    // gRPC-Web without HTTP/1.1: HTTP/2 only.
    let (server, _) = server_with(FLAVOURS[0], |b| b.grpc_web(GrpcWeb::new()));
    let addr = server.local_addr();
    let (status, headers, _, _) = tokio_rt().block_on(h2_request(
        addr,
        "POST",
        &path,
        &[("content-type", "application/grpc-web+proto")],
        framed(&req("web")),
    ));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc-web+proto");
    let mut conn = http1_connect(addr);
    http1_send(&mut conn, "POST", &path, &[], b"");
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert!(!rest.starts_with(b"HTTP/1.1"));
    // Native gRPC is unchanged beside gRPC-Web.
    let (server, _) = web_server(FLAVOURS[1], GrpcWeb::new().allow_any_origin());
    let client = crate::support::client(&server);
    crate::kinds::exercise_blocking(&client);
    futures::executor::block_on(crate::kinds::exercise_async(&client));
}

/// rsgrpc's client in gRPC-Web mode over HTTP/1.1, against a hand-written HTTP/1.1 server
/// that speaks only gRPC-Web: the request as it is on the wire, and both calls on one
/// kept-alive connection.
#[test]
fn our_client_speaks_grpc_web_over_http1() {
    let _leaks = rsgrpc_tests::leak::check();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut conn = BufReader::new(tcp);
        let mut seen = Vec::new();
        for answer in ["first", "second"] {
            let (request_line, headers, body) = read_message(&mut conn);
            seen.push((request_line, headers, body));
            let mut reply = framed(&EchoResponse {
                message: answer.into(),
                ..Default::default()
            });
            let block = b"grpc-status: 0\r\nx-trailer: t\r\n";
            reply.push(0x80);
            reply.extend_from_slice(&(block.len() as u32).to_be_bytes());
            reply.extend_from_slice(block);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/grpc-web+proto\r\nx-head: h\r\ncontent-length: {}\r\n\r\n",
                reply.len()
            );
            let tcp = conn.get_mut();
            tcp.write_all(head.as_bytes()).unwrap();
            tcp.write_all(&reply).unwrap();
        }
        // The connection was kept for both calls; no other one came.
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "a second connection");
        seen
    });
    let channel = rsgrpc::Channel::builder(format!("http://{addr}"))
        .grpc_web(true)
        .http1(true)
        .connect_lazy()
        .unwrap();
    let client = rsgrpc::client::Client::new(channel);
    let blocking: rsgrpc::Response<EchoResponse> = client
        .blocking_unary(
            rsgrpc_tests::path(SVC, UNARY),
            rsgrpc::Request::new(req("one")),
        )
        .unwrap();
    assert_eq!(blocking.get_ref().message, "first");
    assert_eq!(blocking.metadata().get("x-head").unwrap(), "h");
    assert_eq!(blocking.trailers().get("x-trailer").unwrap(), "t");
    let async_reply: rsgrpc::Response<EchoResponse> = futures::executor::block_on(client.unary(
        rsgrpc_tests::path(SVC, UNARY),
        rsgrpc::Request::new(req("two")),
    ))
    .unwrap();
    assert_eq!(async_reply.get_ref().message, "second");
    let seen = server.join().unwrap();
    for ((request_line, headers, body), sent) in seen.iter().zip(["one", "two"]) {
        assert_eq!(request_line, &format!("POST /{SVC}/{UNARY} HTTP/1.1"));
        assert_eq!(header(headers, "host"), Some(addr.to_string().as_str()));
        assert_eq!(
            header(headers, "content-type"),
            Some("application/grpc-web+proto")
        );
        assert_eq!(header(headers, "x-grpc-web"), Some("1"));
        assert_eq!(header(headers, "te"), None);
        assert_eq!(body, &framed(&req(sent)));
    }
    // HTTP/1.1 without gRPC-Web is refused when the channel is built.
    let err = rsgrpc::Channel::builder(format!("http://{addr}"))
        .http1(true)
        .connect_lazy()
        .unwrap_err();
    assert!(err.to_string().contains("grpc_web"), "{err}");
}

/// Bodies that are not what gRPC-Web says get a status, over either protocol.
#[test]
fn bad_grpc_web_bodies_get_a_status() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = web_server(FLAVOURS[0], GrpcWeb::new());
    let addr = server.local_addr();
    let path = format!("/{SVC}/{UNARY}");
    let text = [("content-type", "application/grpc-web-text")];
    let cases: [(&[u8], &str); 3] = [
        (b"!!!!!!!!", "not base64"),
        // One group and two characters of the next: cut short.
        (b"AAAAAA", "cut short"),
        // A whole prefix announcing more than arrives.
        (b"AAAAAAUK", "a message cut short"),
    ];
    for (body, what) in cases {
        let r = http1(addr, "POST", &path, &text, body);
        assert_eq!(r.status, 200, "{what}");
        assert_eq!(r.header("grpc-status"), Some("13"), "{what} (HTTP/1.1)");
        let (_, headers, _, _) =
            tokio_rt().block_on(h2_request(addr, "POST", &path, &text, body.to_vec()));
        assert_eq!(headers["grpc-status"], "13", "{what} (HTTP/2)");
    }
    // A content type that is neither gRPC nor gRPC-Web, and a GET.
    let r = http1(addr, "POST", &path, &[("content-type", "text/plain")], b"x");
    assert_eq!(r.status, 415);
    let r = http1(addr, "GET", &path, &[], b"");
    assert_eq!(r.status, 405);
}

/// A server that pushes a response faster than our gRPC-Web client over HTTP/1.1 reads it
/// gets no further than the sockets' buffers and the client's windows: the bridge holds
/// no more than its budget.
#[test]
fn our_http1_client_holds_a_pushy_response_to_its_budget() {
    let _leaks = rsgrpc_tests::leak::check();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut conn = BufReader::new(tcp);
        read_message(&mut conn);
        let tcp = conn.get_mut();
        tcp.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc-web+proto\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .unwrap();
        // Up to 2,000 messages of 64 KiB (125 MiB), each a chunk, until a write waits
        // longer than the stall bound.
        tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let message = framed(&EchoResponse {
            payload: vec![b'p'; 64 * 1024].into(),
            ..Default::default()
        });
        let mut chunk = format!("{:x}\r\n", message.len()).into_bytes();
        chunk.extend_from_slice(&message);
        chunk.extend_from_slice(b"\r\n");
        let mut written = 0usize;
        for _ in 0..2000 {
            match tcp.write(&chunk) {
                Ok(n) if n == chunk.len() => written += n,
                Ok(n) => {
                    written += n;
                    break;
                }
                Err(_) => break,
            }
        }
        written
    });
    let channel = rsgrpc::Channel::builder(format!("http://{addr}"))
        .grpc_web(true)
        .http1(true)
        .connect_lazy()
        .unwrap();
    let client = rsgrpc::client::Client::new(channel);
    let mut stream = client
        .blocking_server_streaming::<_, EchoResponse>(
            rsgrpc_tests::path(SVC, SERVER_STREAM),
            rsgrpc::Request::new(req("pushy")),
        )
        .unwrap()
        .into_inner();
    // One message read, then none while the server pushes.
    assert_eq!(stream.recv().unwrap().unwrap().payload.len(), 64 * 1024);
    let written = server.join().unwrap();
    assert!(
        written < 32 << 20,
        "the server wrote {written} bytes to a client that did not read"
    );
    drop(stream);
}

/// Our gRPC-Web client mode against our servers: all four kinds, both flavours, over
/// HTTP/2 and HTTP/1.1 (client and bidi streaming too: rsgrpc's servers read request
/// bodies as they arrive, whatever the protocol; browsers cannot send such calls).
#[test]
fn our_grpc_web_client_with_every_kind() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = web_server(flavour, GrpcWeb::new());
        for http1 in [false, true] {
            let channel = rsgrpc::Channel::builder(crate::support::target(&server))
                .grpc_web(true)
                .http1(http1)
                .connect_lazy()
                .unwrap();
            let client = rsgrpc::client::Client::new(channel);
            crate::kinds::exercise_blocking(&client);
            futures::executor::block_on(crate::kinds::exercise_async(&client));
        }
    }
}
