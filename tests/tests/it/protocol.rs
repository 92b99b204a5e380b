//! Protocol-level behaviour checked with a raw HTTP/2 peer (the h2 crate), as another
//! gRPC implementation or a misbehaving client would see it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::HeaderMap;
use prost::Message;
use rsgrpc::client::Client;
use rsgrpc::{Channel, Code, Request, Response};
use rsgrpc_tests::{EchoResponse, UNARY, path, req};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::{FLAVOURS, Flavour, SVC, server, server_with, tokio_rt};

pub(crate) async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

fn framed(message: &str) -> Bytes {
    let body = req(message).encode_to_vec();
    let mut buf = BytesMut::new();
    buf.put_u8(0);
    buf.put_u32(body.len() as u32);
    buf.put_slice(&body);
    buf.freeze()
}

pub(crate) struct RawResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: HeaderMap,
    /// The response body, message prefixes included.
    pub(crate) data: Vec<u8>,
    pub(crate) trailers: Option<HeaderMap>,
}

impl RawResponse {
    /// `grpc-status` from the trailers, or from the headers of a Trailers-Only response.
    pub(crate) fn grpc_status(&self) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

pub(crate) async fn raw_call(
    send: &mut SendRequest<Bytes>,
    addr: SocketAddr,
    method_path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> RawResponse {
    let mut request = http::Request::post(format!("http://{addr}{method_path}"))
        .body(())
        .unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let mut ready = send.clone().ready().await.unwrap();
    let (response, mut stream) = ready.send_request(request, false).unwrap();
    // The connection is driven on another thread: the server may already have answered
    // the headers alone (a refused content-type, an unknown method) and closed the
    // stream before the body goes out. Its answer is what the tests look at.
    if let Err(e) = stream.send_data(body, true) {
        assert!(
            e.is_reset() || e.is_go_away() || e.to_string().contains("inactive stream"),
            "sending the request body failed: {e}"
        );
    }
    let response = response.await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        data,
        trailers,
    }
}

#[test]
fn non_grpc_content_type_gets_http_415() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Blocking);
    let addr = server.local_addr();
    tokio_rt().block_on(async {
        let mut send = connect(addr).await;
        let r = raw_call(
            &mut send,
            addr,
            &format!("/{SVC}/{UNARY}"),
            &[("content-type", "application/json")],
            Bytes::from_static(b"{}"),
        )
        .await;
        assert_eq!(r.status, http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    });
}

#[test]
fn unknown_method_is_a_trailers_only_unimplemented() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Async);
    let addr = server.local_addr();
    tokio_rt().block_on(async {
        let mut send = connect(addr).await;
        let r = raw_call(
            &mut send,
            addr,
            "/test.Echo/Missing",
            &[("content-type", "application/grpc"), ("te", "trailers")],
            framed("x"),
        )
        .await;
        assert_eq!(r.status, http::StatusCode::OK);
        assert_eq!(r.headers.get("grpc-status").unwrap(), "12");
        assert!(
            r.trailers.is_none(),
            "Trailers-Only has no separate trailers"
        );
    });
}

#[test]
fn server_enforces_grpc_timeout_on_its_own() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        let addr = server.local_addr();
        tokio_rt().block_on(async {
            let mut send = connect(addr).await;
            let start = Instant::now();
            let r = raw_call(
                &mut send,
                addr,
                &format!("/{SVC}/{UNARY}"),
                &[
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                    ("grpc-timeout", "100m"),
                ],
                framed("sleep:10000"),
            )
            .await;
            assert_eq!(r.grpc_status().as_deref(), Some("4"), "{flavour:?}");
            assert!(
                start.elapsed() < Duration::from_secs(8),
                "{:?}",
                start.elapsed()
            );
        });
    }
}

#[test]
fn unsupported_compression_is_unimplemented_with_accepted_encodings() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Blocking);
    let addr = server.local_addr();
    tokio_rt().block_on(async {
        let mut send = connect(addr).await;
        let r = raw_call(
            &mut send,
            addr,
            &format!("/{SVC}/{UNARY}"),
            &[
                ("content-type", "application/grpc"),
                ("grpc-encoding", "snappy"),
            ],
            framed("x"),
        )
        .await;
        assert_eq!(r.grpc_status().as_deref(), Some("12"));
        assert!(r.headers.get("grpc-accept-encoding").is_some());
    });
}

#[test]
fn compressed_flag_without_encoding_is_internal() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Blocking);
    let addr = server.local_addr();
    tokio_rt().block_on(async {
        let mut send = connect(addr).await;
        let mut body = BytesMut::from(&framed("x")[..]);
        body[0] = 1;
        let r = raw_call(
            &mut send,
            addr,
            &format!("/{SVC}/{UNARY}"),
            &[("content-type", "application/grpc")],
            body.freeze(),
        )
        .await;
        assert_eq!(r.grpc_status().as_deref(), Some("13"));
    });
}

#[test]
fn silent_connections_are_closed_after_the_handshake_timeout() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server_with(Flavour::Blocking, |b| {
        b.handshake_timeout(Duration::from_millis(300))
    });
    let addr = server.local_addr();
    tokio_rt().block_on(async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // Send nothing; the server may write its own preface, then must hang up.
        let mut buf = [0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server kept a silent connection open");
    });
}

#[test]
fn oversized_request_headers_are_refused_and_the_server_carries_on() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Async);
    let client = Client::new(Channel::new(&format!("http://{}", server.local_addr())).unwrap());
    let mut request = Request::new(req("big headers"));
    request
        .metadata_mut()
        .insert("x-big", &"a".repeat(32 * 1024))
        .unwrap();
    let err = client
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), request)
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), Request::new(req("small")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "small");
}
