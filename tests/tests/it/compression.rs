//! Message compression (gzip, deflate, zstd): negotiation, both directions, both flavours,
//! limits on the decompressed size, and interop with tonic's three encodings.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use rsgrpc::client::Client;
use rsgrpc::{Channel, CompressionEncoding, Request, Response};
use rsgrpc_tests::tonic_echo::{TonicClient, TonicServer};
use rsgrpc_tests::{EchoRequest, EchoResponse, UNARY, path, req};

use crate::kinds::{exercise_async, exercise_blocking};
use crate::protocol::{RawResponse, connect, raw_call};
use crate::support::{FLAVOURS, SVC, server_with, tokio_rt};

fn gzip_client(target: String) -> Client {
    Client::new(
        Channel::builder(target)
            .send_compressed(CompressionEncoding::Gzip)
            .connect_lazy()
            .unwrap(),
    )
}

#[test]
fn every_kind_works_compressed_both_ways() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = server_with(flavour, |b| b.send_compressed(CompressionEncoding::Gzip));
        let client = gzip_client(format!("http://{}", server.local_addr()));
        exercise_blocking(&client);
        futures::executor::block_on(exercise_async(&client));
    }
}

#[test]
fn per_call_compression_with_an_uncompressed_channel() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server_with(FLAVOURS[0], |b| b);
    let client = Client::new(Channel::new(&format!("http://{}", server.local_addr())).unwrap());
    let mut request = Request::new(EchoRequest {
        message: "zipped".into(),
        payload: vec![b'z'; 100_000].into(),
        ..Default::default()
    });
    request.set_send_compressed(CompressionEncoding::Gzip);
    let reply: Response<EchoResponse> = client.blocking_unary(path(SVC, UNARY), request).unwrap();
    assert_eq!(reply.get_ref().payload.len(), 100_000);
}

/// A raw HTTP/2 unary call to the echo service, to see flags and headers on the wire.
async fn raw(addr: std::net::SocketAddr, headers: &[(&str, &str)], body: Bytes) -> RawResponse {
    let mut send = connect(addr).await;
    let mut all = vec![("content-type", "application/grpc")];
    all.extend_from_slice(headers);
    raw_call(&mut send, addr, &format!("/{SVC}/{UNARY}"), &all, body).await
}

/// Every encoding, with its name on the wire.
const ENCODINGS: [(CompressionEncoding, &str); 3] = [
    (CompressionEncoding::Gzip, "gzip"),
    (CompressionEncoding::Deflate, "deflate"),
    (CompressionEncoding::Zstd, "zstd"),
];

/// `plain` compressed by flate2 or the zstd crate (not by rsgrpc), with its prefix.
fn compressed_frame(encoding: &str, plain: &[u8]) -> Bytes {
    let compressed = match encoding {
        "gzip" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(plain).unwrap();
            gz.finish().unwrap()
        }
        "deflate" => {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(plain).unwrap();
            z.finish().unwrap()
        }
        "zstd" => zstd::encode_all(plain, 19).unwrap(),
        other => panic!("no encoder for {other}"),
    };
    let mut buf = BytesMut::new();
    buf.put_u8(1);
    buf.put_u32(compressed.len() as u32);
    buf.put_slice(&compressed);
    buf.freeze()
}

#[test]
fn wire_format_flags_and_headers() {
    let _leaks = rsgrpc_tests::leak::check();
    for (encoding, name) in ENCODINGS {
        let (server, _) = server_with(FLAVOURS[1], |b| b.send_compressed(encoding));
        let addr = server.local_addr();
        tokio_rt().block_on(async {
            // A compressed request with its declared encoding is accepted; the response
            // is compressed because the request accepts the encoding.
            let plain = req("over the wire").encode_to_vec();
            let r = raw(
                addr,
                &[("grpc-encoding", name), ("grpc-accept-encoding", name)],
                compressed_frame(name, &plain),
            )
            .await;
            assert_eq!(r.grpc_status().as_deref(), Some("0"), "{name}");
            assert_eq!(r.headers.get("grpc-encoding").unwrap(), name);
            assert_eq!(r.data[0], 1, "the response message is flagged compressed");
            let accepted = r.headers.get("grpc-accept-encoding").unwrap();
            assert_eq!(accepted, "gzip,deflate,zstd");
            // A client accepting only another encoding gets the response uncompressed.
            let other = if name == "gzip" { "zstd" } else { "gzip" };
            let r = raw(
                addr,
                &[("grpc-encoding", name), ("grpc-accept-encoding", other)],
                compressed_frame(name, &plain),
            )
            .await;
            assert_eq!(r.grpc_status().as_deref(), Some("0"), "{name}");
            assert!(r.headers.get("grpc-encoding").is_none(), "{name}");
            assert_eq!(r.data[0], 0);
        });
    }
    let (server, _) = server_with(FLAVOURS[1], |b| {
        b.send_compressed(CompressionEncoding::Gzip)
    });
    let addr = server.local_addr();
    tokio_rt().block_on(async {
        let plain = req("over the wire").encode_to_vec();

        // Without grpc-accept-encoding the response is not compressed.
        let mut frame = BytesMut::new();
        frame.put_u8(0);
        frame.put_u32(plain.len() as u32);
        frame.put_slice(&plain);
        let r = raw(addr, &[], frame.freeze()).await;
        assert_eq!(r.grpc_status().as_deref(), Some("0"));
        assert!(r.headers.get("grpc-encoding").is_none());
        assert_eq!(r.data[0], 0);
    });
}

#[test]
fn a_compression_bomb_is_refused_by_its_decompressed_size() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server_with(FLAVOURS[0], |b| b);
    let addr = server.local_addr();
    // A valid EchoRequest whose payload is 64 MiB of zeros: at most about 64 KiB
    // compressed, far over the 4 MiB receive limit once decompressed.
    let bomb = EchoRequest {
        payload: vec![0; 64 << 20].into(),
        ..Default::default()
    }
    .encode_to_vec();
    for (_, name) in ENCODINGS {
        let frame = compressed_frame(name, &bomb);
        assert!(frame.len() < 1 << 20);
        tokio_rt().block_on(async {
            let r = raw(addr, &[("grpc-encoding", name)], frame).await;
            assert_eq!(
                r.grpc_status().as_deref(),
                Some("8"),
                "RESOURCE_EXHAUSTED ({name})"
            );
            // Garbage under a declared encoding is INTERNAL, naming the encoding.
            let garbage = r#"not compressed at all"#.as_bytes();
            let mut frame = BytesMut::new();
            frame.put_u8(1);
            frame.put_u32(garbage.len() as u32);
            frame.put_slice(garbage);
            let r = raw(addr, &[("grpc-encoding", name)], frame.freeze()).await;
            assert_eq!(r.grpc_status().as_deref(), Some("13"), "INTERNAL ({name})");
        });
    }
}

#[test]
fn every_encoding_interoperates_with_tonic() {
    let _leaks = rsgrpc_tests::leak::check();
    let rt = tokio_rt();
    for (encoding, name) in ENCODINGS {
        let tonic_encoding = match name {
            "gzip" => tonic::codec::CompressionEncoding::Gzip,
            "deflate" => tonic::codec::CompressionEncoding::Deflate,
            _ => tonic::codec::CompressionEncoding::Zstd,
        };
        // Our compressing client against tonic, which compresses its answers with the
        // same encoding only (both client flavours).
        let tonic = TonicServer::start_compressing(1, None, tonic_encoding);
        let client = Client::new(
            Channel::builder(format!("http://{}", tonic.addr))
                .send_compressed(encoding)
                .connect_lazy()
                .unwrap(),
        );
        let request = || {
            Request::new(EchoRequest {
                message: "to tonic".into(),
                payload: vec![b'p'; 50_000].into(),
                ..Default::default()
            })
        };
        let reply: Response<EchoResponse> =
            client.blocking_unary(path(SVC, UNARY), request()).unwrap();
        assert_eq!(reply.get_ref().payload.len(), 50_000, "{name}");
        assert!(reply.message_compressed(), "tonic answered with {name}");
        let reply: Response<EchoResponse> =
            futures::executor::block_on(client.unary(path(SVC, UNARY), request())).unwrap();
        assert_eq!(reply.get_ref().payload.len(), 50_000, "{name}");
        assert!(reply.message_compressed(), "tonic answered with {name}");

        // A tonic client compressing with the encoding (and accepting only it) against
        // our servers compressing with it.
        for flavour in FLAVOURS {
            compressing_tonic_client_against(&rt, flavour, encoding, tonic_encoding);
        }
    }
}

fn compressing_tonic_client_against(
    rt: &tokio::runtime::Runtime,
    flavour: crate::support::Flavour,
    encoding: CompressionEncoding,
    tonic_encoding: tonic::codec::CompressionEncoding,
) {
    let (server, _) = server_with(flavour, |b| b.send_compressed(encoding));
    rt.block_on(async {
        let mut client = TonicClient::connect(server.local_addr(), SVC)
            .await
            .compressed(tonic_encoding);
        let reply = client
            .unary(tonic::Request::new(EchoRequest {
                message: "from tonic".into(),
                payload: vec![b'q'; 50_000].into(),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert_eq!(reply.get_ref().payload.len(), 50_000, "{flavour:?}");
        let err = client
            .unary(tonic::Request::new(req("fail:3:bad")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });
}

/// Handlers and clients can see and choose compression message by message.
#[test]
fn compression_is_visible_and_switchable_per_message() {
    let _leaks = rsgrpc_tests::leak::check();
    use rsgrpc::server::{Server, Service};
    use rsgrpc::{BlockingStreaming, ResponseSink, Status};

    let service = Service::builder(SVC)
        // Reports whether the request arrived compressed; compresses the reply only when
        // asked to by the message "compress".
        .blocking_unary(UNARY, |request: Request<EchoRequest>| {
            let compressed = request.message_compressed();
            let compress = request.get_ref().message == "compress";
            let mut response = Response::new(EchoResponse {
                message: compressed.to_string(),
                ..Default::default()
            });
            response.set_compression(compress);
            Ok::<_, Status>(response)
        })
        // Alternates compressed and uncompressed responses.
        .blocking_server_streaming(
            rsgrpc_tests::SERVER_STREAM,
            |request: Request<EchoRequest>, mut sink: ResponseSink<EchoResponse>| {
                for i in 0..request.get_ref().count {
                    sink.set_compression(i % 2 == 0);
                    sink.send(EchoResponse {
                        index: i,
                        payload: vec![b'a'; 1000].into(),
                        ..Default::default()
                    })?;
                }
                Ok(())
            },
        )
        // Reports, per request message, whether it arrived compressed.
        .blocking_client_streaming(
            rsgrpc_tests::CLIENT_STREAM,
            |request: Request<BlockingStreaming<EchoRequest>>| {
                let mut requests = request.into_inner();
                let mut flags = Vec::new();
                while requests.recv()?.is_some() {
                    flags.push(if requests.last_message_compressed() {
                        "z"
                    } else {
                        "-"
                    });
                }
                Ok(Response::new(EchoResponse {
                    message: flags.concat(),
                    ..Default::default()
                }))
            },
        )
        .build();
    let server = Server::builder()
        .add_service(service)
        .send_compressed(CompressionEncoding::Gzip)
        .bind("127.0.0.1:0")
        .unwrap();
    let client = gzip_client(format!("http://{}", server.local_addr()));

    // The server sees the compressed request; the reply is compressed only on request.
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), Request::new(req("plain")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "true");
    let mut stream = client
        .blocking_server_streaming::<_, EchoResponse>(
            path(SVC, rsgrpc_tests::SERVER_STREAM),
            Request::new(EchoRequest {
                count: 4,
                ..Default::default()
            }),
        )
        .unwrap()
        .into_inner();
    let mut flags = Vec::new();
    while stream.recv().unwrap().is_some() {
        flags.push(stream.last_message_compressed());
    }
    assert_eq!(flags, [true, false, true, false]);

    // The client switches compression between messages of one stream (the sender handle
    // of a bidi call, used on the client-streaming method: the wire is the same).
    let (mut sender, mut replies) = client
        .blocking_bidi_streaming::<EchoRequest, EchoResponse>(
            path(SVC, rsgrpc_tests::CLIENT_STREAM),
            Request::new(()),
        )
        .unwrap();
    sender.send(req("1")).unwrap();
    sender.set_compression(false);
    sender.send(req("2")).unwrap();
    sender.set_compression(true);
    sender.send(req("3")).unwrap();
    sender.finish();
    let summary = replies.recv().unwrap().unwrap();
    assert_eq!(summary.message, "z-z");
}
