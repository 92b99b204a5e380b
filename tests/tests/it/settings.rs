//! Per-client and per-service settings over the wire: message size limits and compression
//! set on one client override its channel's for that client's calls alone, and set on one
//! service override the server's for that service's methods alone. A request's own
//! compression choice overrides its client's.
//!
//! The servers are the generated server types of the echo service (default stubs, so only
//! the methods used here are written), next to the hand-written echo service under another
//! name, which keeps the server's settings.

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use rsgrpc::server::{Server, ServerBuilder, ServerHandle, Service};
use rsgrpc::{
    BlockingStreaming, Channel, Code, CompressionEncoding, Request, Response, ResponseSink, Status,
    Streaming,
};
use rsgrpc_tests::defaults::echo_client::{EchoBlockingClient, EchoClient};
use rsgrpc_tests::defaults::echo_server::{Echo, EchoBlocking, EchoBlockingServer, EchoServer};
use rsgrpc_tests::defaults::{EchoRequest, EchoResponse};
use rsgrpc_tests::{Probe, UNARY, async_echo, blocking_echo};

use crate::protocol::{connect, raw_call};
use crate::support::{FLAVOURS, Flavour, SVC, tokio_rt};

/// The service hosted next to the generated one, with the server's settings.
const OTHER: &str = "test.Other";

/// A request carrying `payload` bytes and asking for responses of `response_size` bytes.
fn sized(payload: usize, response_size: usize) -> EchoRequest {
    EchoRequest {
        message: "sized".into(),
        count: 2,
        payload: vec![0; payload],
        response_size: u32::try_from(response_size).unwrap(),
    }
}

/// A response of `request.response_size` zero bytes (compressible), or the request's
/// payload back; its message tells whether the request arrived compressed.
fn reply(request: &EchoRequest, compressed: bool, index: u32) -> EchoResponse {
    EchoResponse {
        message: format!("compressed={compressed}"),
        index,
        payload: match request.response_size {
            0 => request.payload.clone(),
            size => vec![0; size as usize],
        },
    }
}

/// The echo service on the generated async trait.
struct AsyncEcho;

impl Echo for AsyncEcho {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(reply(
            request.get_ref(),
            request.message_compressed(),
            0,
        )))
    }

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<rsgrpc::BoxStream<EchoResponse>>, Status> {
        let request = request.into_inner();
        let items: Vec<_> = (0..request.count)
            .map(|i| Ok(reply(&request, false, i)))
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(items))))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        let mut requests = request.into_inner();
        let mut flags = String::new();
        while requests.message().await?.is_some() {
            flags.push(if requests.last_message_compressed() {
                'z'
            } else {
                '-'
            });
        }
        Ok(Response::new(EchoResponse {
            message: flags,
            ..Default::default()
        }))
    }
}

/// The echo service on the generated blocking trait.
struct BlockingEcho;

impl EchoBlocking for BlockingEcho {
    fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(reply(
            request.get_ref(),
            request.message_compressed(),
            0,
        )))
    }

    fn server_stream(
        &self,
        request: Request<EchoRequest>,
        mut responses: ResponseSink<EchoResponse>,
    ) -> Result<(), Status> {
        for i in 0..request.get_ref().count {
            responses.send(reply(request.get_ref(), false, i))?;
        }
        Ok(())
    }

    fn client_stream(
        &self,
        request: Request<BlockingStreaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        let mut requests = request.into_inner();
        let mut flags = String::new();
        while requests.recv()?.is_some() {
            flags.push(if requests.last_message_compressed() {
                'z'
            } else {
                '-'
            });
        }
        Ok(Response::new(EchoResponse {
            message: flags,
            ..Default::default()
        }))
    }
}

/// Settings for the generated service, applied through its server type's own setters.
#[derive(Clone, Copy, Default)]
struct Own {
    receive: Option<usize>,
    send: Option<usize>,
    gzip: bool,
}

macro_rules! apply {
    ($server:expr, $own:expr) => {{
        let mut server = $server;
        if let Some(bytes) = $own.receive {
            server = server.max_receive_message_size(bytes);
        }
        if let Some(bytes) = $own.send {
            server = server.max_send_message_size(bytes);
        }
        if $own.gzip {
            server = server.send_compressed(CompressionEncoding::Gzip);
        }
        Service::from(server)
    }};
}

/// A server of `flavour` hosting the generated echo service (`test.Echo`) with `own`
/// settings, and the hand-written one as `test.Other` with the server's.
fn serve(
    flavour: Flavour,
    own: Own,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> (ServerHandle, Channel) {
    let (echo, other) = match flavour {
        Flavour::Blocking => (
            apply!(EchoBlockingServer::new(BlockingEcho), own),
            blocking_echo(OTHER, Probe::new()),
        ),
        Flavour::Async => (
            apply!(EchoServer::new(AsyncEcho), own),
            async_echo(OTHER, Probe::new()),
        ),
    };
    let server = configure(Server::builder().add_service(echo).add_service(other))
        .bind("127.0.0.1:0")
        .unwrap();
    let channel = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    (server, channel)
}

/// A unary call to `test.Other` through the generic client: the response's payload size,
/// or the error's code.
fn other_unary(client: &rsgrpc::client::Client, request: EchoRequest) -> Result<usize, Code> {
    let path = rsgrpc_tests::path(OTHER, UNARY);
    client
        .blocking_unary::<_, EchoResponse>(path, Request::new(request))
        .map(|reply| reply.get_ref().payload.len())
        .map_err(|status| status.code())
}

/// The response's payload size, or the error's code.
fn outcome(result: Result<Response<EchoResponse>, Status>) -> Result<usize, Code> {
    result
        .map(|r| r.get_ref().payload.len())
        .map_err(|status| status.code())
}

/// Every item's payload size, or the code of the first error.
fn stream_outcome(
    result: Result<Response<BlockingStreaming<EchoResponse>>, Status>,
) -> Result<Vec<usize>, Code> {
    let items = result.map_err(|s| s.code())?.into_inner();
    items
        .map(|r| r.map(|r| r.payload.len()).map_err(|s| s.code()))
        .collect()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

#[test]
fn a_client_receive_limit_overrides_its_channels() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, channel) = serve(flavour, Own::default(), |b| b);
        let big_reply = || sized(10, 4096);

        // Two clients of each flavour on one channel (default limit: 4 MiB).
        let small = EchoBlockingClient::new(channel.clone()).max_receive_message_size(1024);
        let plain = EchoBlockingClient::new(channel.clone());
        assert_eq!(
            outcome(small.unary(big_reply())),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        assert_eq!(outcome(plain.unary(big_reply())), Ok(4096), "{flavour:?}");
        assert_eq!(
            stream_outcome(small.server_stream(big_reply())),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        assert_eq!(
            stream_outcome(plain.server_stream(big_reply())),
            Ok(vec![4096, 4096]),
            "{flavour:?}"
        );
        let small_async = EchoClient::new(channel.clone()).max_receive_message_size(1024);
        let plain_async = EchoClient::new(channel.clone());
        assert_eq!(
            outcome(block_on(small_async.unary(big_reply()))),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        assert_eq!(
            outcome(block_on(plain_async.unary(big_reply()))),
            Ok(4096),
            "{flavour:?}"
        );
        let streamed = block_on(async {
            let mut stream = small_async.server_stream(big_reply()).await?.into_inner();
            while stream.next().await.transpose()?.is_some() {}
            Ok::<_, Status>(())
        });
        assert_eq!(
            streamed.map_err(|s| s.code()),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );

        // A client's limit may also be larger than its channel's.
        let strict = Channel::builder(format!("http://{}", server.local_addr()))
            .max_receive_message_size(1024)
            .connect_lazy()
            .unwrap();
        assert_eq!(
            outcome(EchoBlockingClient::new(strict.clone()).unary(big_reply())),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        let roomy = EchoClient::new(strict).max_receive_message_size(1 << 20);
        assert_eq!(
            outcome(block_on(roomy.unary(big_reply()))),
            Ok(4096),
            "{flavour:?}"
        );
    }
}

#[test]
fn a_client_receive_limit_bounds_decompressed_responses() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        // 64 KiB of zeros compress to well under the limit; decompressed they exceed it.
        let (_server, channel) = serve(flavour, Own::default(), |b| {
            b.send_compressed(CompressionEncoding::Gzip)
        });
        let request = || sized(10, 64 * 1024);
        let small = EchoBlockingClient::new(channel.clone()).max_receive_message_size(1024);
        let err = small.unary(request()).unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{flavour:?}: {err}");
        assert!(err.message().contains("decompresses"), "{flavour:?}: {err}");
        let plain = EchoClient::new(channel);
        assert_eq!(
            outcome(block_on(plain.unary(request()))),
            Ok(64 * 1024),
            "{flavour:?}"
        );
    }
}

#[test]
fn a_client_send_limit_overrides_its_channels() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, channel) = serve(Flavour::Blocking, Own::default(), |b| b);
    let big = || sized(200, 0);

    // Refused before anything is sent: the channel has not even connected.
    let limited = EchoBlockingClient::new(channel.clone()).max_send_message_size(100);
    assert_eq!(outcome(limited.unary(big())), Err(Code::ResourceExhausted));
    let limited_async = EchoClient::new(channel.clone()).max_send_message_size(100);
    assert_eq!(
        outcome(block_on(limited_async.unary(big()))),
        Err(Code::ResourceExhausted)
    );
    assert_eq!(server.accepted_connections(), 0, "nothing should be sent");

    // Another client on the same channel sends it.
    let plain = EchoBlockingClient::new(channel.clone());
    assert_eq!(outcome(plain.unary(big())), Ok(200));

    // Streamed requests: the one over the limit fails the call, in both flavours.
    let err = limited
        .client_stream(vec![sized(10, 0), big()])
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    let requests = futures::stream::iter(vec![sized(10, 0), big()]);
    let err = block_on(limited_async.client_stream(requests)).unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    let requests = futures::stream::iter(vec![sized(10, 0), big()]);
    let reply = block_on(EchoClient::new(channel).client_stream(requests)).unwrap();
    assert_eq!(reply.get_ref().message, "--");

    // A client's limit may also be larger than its channel's.
    let strict = Channel::builder(format!("http://{}", server.local_addr()))
        .max_send_message_size(100)
        .connect_lazy()
        .unwrap();
    assert_eq!(
        outcome(EchoBlockingClient::new(strict.clone()).unary(big())),
        Err(Code::ResourceExhausted)
    );
    let roomy = EchoBlockingClient::new(strict).max_send_message_size(1 << 20);
    assert_eq!(outcome(roomy.unary(big())), Ok(200));
}

#[test]
fn a_service_receive_limit_leaves_other_services_alone() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let own = Own {
            receive: Some(1000),
            ..Own::default()
        };
        let (_server, channel) = serve(flavour, own, |b| b);
        let echo = EchoBlockingClient::new(channel.clone());
        let other = rsgrpc::client::Client::new(channel.clone());
        let big = || sized(2000, 0);

        assert_eq!(
            outcome(echo.unary(big())),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        assert_eq!(other_unary(&other, big()), Ok(2000), "{flavour:?}");
        // Streamed requests, uncompressed and compressed: 10,000 zeros compress to far
        // less than the limit, but are refused by their decompressed size.
        let err = echo.client_stream(vec![sized(10, 0), big()]).unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{flavour:?}: {err}");
        let zipping = echo.clone().send_compressed(CompressionEncoding::Gzip);
        let err = zipping
            .client_stream(vec![sized(10, 0), sized(10_000, 0)])
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{flavour:?}: {err}");
        // The single request of a unary call, compressed.
        assert_eq!(
            outcome(zipping.unary(sized(10_000, 0))),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        let zipping_other = other.clone().send_compressed(CompressionEncoding::Gzip);
        assert_eq!(
            other_unary(&zipping_other, sized(10_000, 0)),
            Ok(10_000),
            "{flavour:?}"
        );
        // Within the limit, the service answers.
        assert_eq!(outcome(echo.unary(sized(500, 0))), Ok(500), "{flavour:?}");
    }
}

#[test]
fn a_service_receive_limit_may_exceed_the_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let own = Own {
            receive: Some(1 << 20),
            ..Own::default()
        };
        let (_server, channel) = serve(flavour, own, |b| b.max_receive_message_size(1000));
        let big = || sized(2000, 0);
        let echo = EchoClient::new(channel.clone());
        assert_eq!(
            outcome(block_on(echo.unary(big()))),
            Ok(2000),
            "{flavour:?}"
        );
        let other = rsgrpc::client::Client::new(channel);
        assert_eq!(
            other_unary(&other, big()),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
    }
}

#[test]
fn a_service_send_limit_leaves_other_services_alone() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let own = Own {
            send: Some(1000),
            ..Own::default()
        };
        let (_server, channel) = serve(flavour, own, |b| b);
        let echo = EchoBlockingClient::new(channel.clone());
        assert_eq!(
            outcome(echo.unary(sized(10, 2000))),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        assert_eq!(
            stream_outcome(echo.server_stream(sized(10, 2000))),
            Err(Code::ResourceExhausted),
            "{flavour:?}"
        );
        assert_eq!(
            stream_outcome(echo.server_stream(sized(10, 500))),
            Ok(vec![500, 500]),
            "{flavour:?}"
        );
        // The other service echoes a 2000-byte payload back.
        let other = rsgrpc::client::Client::new(channel);
        assert_eq!(other_unary(&other, sized(2000, 0)), Ok(2000), "{flavour:?}");
    }
}

/// A raw unary call to `service` that accepts gzip: the response's `grpc-encoding` and
/// the compressed flag of its message.
fn raw_unary(addr: std::net::SocketAddr, service: &str) -> (Option<String>, u8) {
    let plain = sized(10, 1400).encode_to_vec();
    let mut body = Vec::with_capacity(5 + plain.len());
    body.push(0);
    body.extend_from_slice(&u32::try_from(plain.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&plain);
    tokio_rt().block_on(async {
        let mut send = connect(addr).await;
        let r = raw_call(
            &mut send,
            addr,
            &format!("/{service}/{UNARY}"),
            &[
                ("content-type", "application/grpc"),
                ("grpc-accept-encoding", "gzip"),
            ],
            Bytes::from(body),
        )
        .await;
        assert_eq!(r.grpc_status().as_deref(), Some("0"), "{service}");
        let encoding = r
            .headers
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        (encoding, r.data[0])
    })
}

#[test]
fn service_compression_is_seen_on_the_wire() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let own = Own {
            gzip: true,
            ..Own::default()
        };
        let (server, channel) = serve(flavour, own, |b| b);
        let addr = server.local_addr();
        assert_eq!(
            raw_unary(addr, SVC),
            (Some("gzip".to_owned()), 1),
            "{flavour:?}: test.Echo compresses"
        );
        assert_eq!(
            raw_unary(addr, OTHER),
            (None, 0),
            "{flavour:?}: test.Other does not"
        );

        // Streamed responses, as our client sees them.
        let echo = EchoBlockingClient::new(channel);
        let mut stream = echo.server_stream(sized(10, 4096)).unwrap().into_inner();
        let mut flags = Vec::new();
        while stream.recv().unwrap().is_some() {
            flags.push(stream.last_message_compressed());
        }
        assert_eq!(flags, [true, true], "{flavour:?}");
    }
}

#[test]
fn service_builder_settings_apply_to_its_methods_only() {
    let _leaks = rsgrpc_tests::leak::check();
    // A hand-built service whose one method echoes a payload of the size asked for.
    let limited = Service::builder("test.Limited")
        .blocking_unary(UNARY, |request: Request<EchoRequest>| {
            Ok::<_, Status>(Response::new(reply(request.get_ref(), false, 0)))
        })
        .max_receive_message_size(1000)
        .max_send_message_size(1500)
        .send_compressed(CompressionEncoding::Gzip)
        .build();
    let server = Server::builder()
        .add_service(limited)
        .add_service(blocking_echo(OTHER, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let client = rsgrpc::client::Client::new(
        Channel::new(&format!("http://{}", server.local_addr())).unwrap(),
    );
    let call = |request: EchoRequest| {
        let path = rsgrpc_tests::path("test.Limited", UNARY);
        client
            .blocking_unary::<_, EchoResponse>(path, Request::new(request))
            .map(|r| r.get_ref().payload.len())
            .map_err(|s| s.code())
    };
    assert_eq!(call(sized(2000, 10)), Err(Code::ResourceExhausted));
    assert_eq!(call(sized(10, 2000)), Err(Code::ResourceExhausted));
    assert_eq!(call(sized(900, 1400)), Ok(1400));
    assert_eq!(other_unary(&client, sized(2000, 0)), Ok(2000));
    assert_eq!(
        raw_unary(server.local_addr(), "test.Limited").0.as_deref(),
        Some("gzip")
    );
    assert_eq!(raw_unary(server.local_addr(), OTHER).0, None);
}

#[test]
fn a_requests_compression_wins_over_its_clients() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, channel) = serve(flavour, Own::default(), |b| b);
        let plain = EchoBlockingClient::new(channel.clone());
        let zipping = plain.clone().send_compressed(CompressionEncoding::Gzip);
        let message = |r: Result<Response<EchoResponse>, Status>| r.unwrap().into_inner().message;
        let uncompressed = || {
            let mut request = Request::new(sized(100, 0));
            request.set_send_uncompressed();
            request
        };
        let compressed = || {
            let mut request = Request::new(sized(100, 0));
            request.set_send_compressed(CompressionEncoding::Gzip);
            request
        };

        // Blocking clients.
        assert_eq!(message(zipping.unary(sized(100, 0))), "compressed=true");
        assert_eq!(message(zipping.unary(uncompressed())), "compressed=false");
        assert_eq!(message(plain.unary(sized(100, 0))), "compressed=false");
        assert_eq!(message(plain.unary(compressed())), "compressed=true");
        let mut requests = Request::new(vec![sized(1, 0), sized(2, 0)]);
        requests.set_send_uncompressed();
        assert_eq!(message(zipping.client_stream(requests)), "--");
        assert_eq!(
            message(zipping.client_stream(vec![sized(1, 0), sized(2, 0)])),
            "zz"
        );

        // Async clients.
        let plain = EchoClient::new(channel.clone());
        let zipping = plain.clone().send_compressed(CompressionEncoding::Gzip);
        assert_eq!(
            message(block_on(zipping.unary(sized(100, 0)))),
            "compressed=true"
        );
        assert_eq!(
            message(block_on(zipping.unary(uncompressed()))),
            "compressed=false"
        );
        assert_eq!(
            message(block_on(plain.unary(compressed()))),
            "compressed=true"
        );
        let mut requests = Request::new(futures::stream::iter(vec![sized(1, 0), sized(2, 0)]));
        requests.set_send_uncompressed();
        assert_eq!(message(block_on(zipping.client_stream(requests))), "--");

        // A channel that compresses: the request opts out, another client keeps it.
        let zipping_channel = Channel::builder(format!("http://{}", server.local_addr()))
            .send_compressed(CompressionEncoding::Gzip)
            .connect_lazy()
            .unwrap();
        let client = EchoBlockingClient::new(zipping_channel);
        assert_eq!(message(client.unary(sized(100, 0))), "compressed=true");
        assert_eq!(message(client.unary(uncompressed())), "compressed=false");
    }
}
