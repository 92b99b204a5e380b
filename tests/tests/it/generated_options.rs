//! Stubs generated with builder settings, over the wire: default stubs answer
//! `UNIMPLEMENTED`, a client's `send_compressed` compresses its requests, server types are
//! `Clone` and name their service.

use rsgrpc::server::{Server, ServerHandle};
use rsgrpc::{
    BlockingStreaming, Code, CompressionEncoding, Request, Response, ResponseSink, Status,
};
use rsgrpc_tests::defaults::echo_client::{EchoBlockingClient, EchoClient};
use rsgrpc_tests::defaults::echo_server::{
    self, Echo, EchoBlocking, EchoBlockingServer, EchoServer,
};
use rsgrpc_tests::defaults::{EchoRequest, EchoResponse};

fn request(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        count: 2,
        ..Default::default()
    }
}

/// Implements only the unary method; it tells whether the request came compressed.
struct OnlyUnary;

impl Echo for OnlyUnary {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let compressed = request.message_compressed();
        Ok(Response::new(EchoResponse {
            message: format!("{} compressed={compressed}", request.get_ref().message),
            ..Default::default()
        }))
    }
}

/// Implements only the server-streaming method.
struct OnlyServerStream;

impl EchoBlocking for OnlyServerStream {
    fn server_stream(
        &self,
        request: Request<EchoRequest>,
        mut responses: ResponseSink<EchoResponse>,
    ) -> Result<(), Status> {
        for index in 0..request.get_ref().count {
            responses.send(EchoResponse {
                message: request.get_ref().message.clone(),
                index,
                ..Default::default()
            })?;
        }
        Ok(())
    }
}

fn serve(service: impl Into<rsgrpc::server::Service>) -> (ServerHandle, String) {
    let server = Server::builder()
        .add_service(service)
        .bind("127.0.0.1:0")
        .unwrap();
    let target = format!("http://{}", server.local_addr());
    (server, target)
}

/// The status of a server-streaming call, whether it fails at once or in the stream.
fn stream_status(
    result: Result<Response<BlockingStreaming<EchoResponse>>, Status>,
) -> Result<Vec<u32>, Status> {
    result?.into_inner().map(|r| r.map(|r| r.index)).collect()
}

#[test]
fn methods_left_out_answer_unimplemented() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, target) = serve(EchoServer::new(OnlyUnary));
    let client = EchoBlockingClient::connect_lazy(&target).unwrap();
    let reply = client.unary(request("hi")).unwrap();
    assert_eq!(reply.get_ref().message, "hi compressed=false");
    let err = stream_status(client.server_stream(request("hi"))).unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    assert!(err.message().contains("ServerStream"), "{err}");
    let err = client
        .client_stream(vec![request("a"), request("b")])
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    drop(server);

    let (server, target) = serve(EchoBlockingServer::new(OnlyServerStream));
    let client = EchoClient::connect_lazy(&target).unwrap();
    let err = futures::executor::block_on(client.unary(request("hi"))).unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    let blocking = EchoBlockingClient::connect_lazy(&target).unwrap();
    assert_eq!(
        stream_status(blocking.server_stream(request("hi"))).unwrap(),
        [0, 1]
    );
    drop(server);
}

#[test]
fn a_client_can_compress_its_requests() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, target) = serve(EchoServer::new(OnlyUnary));
    let plain = EchoClient::connect_lazy(&target).unwrap();
    let compressing = plain.clone().send_compressed(CompressionEncoding::Gzip);
    let reply = futures::executor::block_on(compressing.unary(request("a"))).unwrap();
    assert_eq!(reply.get_ref().message, "a compressed=true");
    // Only the client it was set on compresses, though both share one channel.
    let reply = futures::executor::block_on(plain.unary(request("b"))).unwrap();
    assert_eq!(reply.get_ref().message, "b compressed=false");
    let blocking =
        EchoBlockingClient::new(plain.channel().clone()).send_compressed(CompressionEncoding::Gzip);
    assert_eq!(
        blocking.unary(request("c")).unwrap().get_ref().message,
        "c compressed=true"
    );
}

#[test]
fn server_types_clone_and_name_their_service() {
    let _leaks = rsgrpc_tests::leak::check();
    assert_eq!(echo_server::SERVICE_NAME, "test.Echo");
    assert_eq!(EchoServer::<OnlyUnary>::SERVICE_NAME, "test.Echo");
    assert_eq!(
        EchoBlockingServer::<OnlyServerStream>::SERVICE_NAME,
        "test.Echo"
    );
    // Clones share one implementation and each serves it.
    let server = EchoServer::new(OnlyUnary);
    let (_first, first) = serve(server.clone());
    let (_second, second) = serve(server);
    for target in [first, second] {
        let client = EchoBlockingClient::connect_lazy(&target).unwrap();
        assert_eq!(
            client.unary(request("x")).unwrap().get_ref().message,
            "x compressed=false"
        );
    }
}
