//! Generated stubs against tonic: our generated clients (both flavours) against a tonic
//! server, and a tonic client against servers built from our generated traits.

use futures::StreamExt;
use rsgrpc::server::Server;
use rsgrpc::{BlockingStreaming, Request, Response, ResponseSink, Status, Streaming};
use rsgrpc_tests::generated::echo_client::{EchoBlockingClient, EchoClient};
use rsgrpc_tests::generated::echo_server::{self, EchoBlockingServer, EchoServer};
use rsgrpc_tests::generated::{EchoRequest, EchoResponse};
use rsgrpc_tests::tonic_echo::{TonicClient, TonicServer};

use crate::support::{SVC, tokio_rt};

fn request(message: &str, count: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        count,
        ..Default::default()
    }
}

fn item(request: &EchoRequest, index: u32) -> EchoResponse {
    EchoResponse {
        message: format!("{}:{index}", request.message),
        index,
        payload: request.payload.clone(),
    }
}

/// The echo service on the generated async trait.
struct AsyncEcho;

impl echo_server::Echo for AsyncEcho {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EchoResponse {
            message: request.message,
            index: 0,
            payload: request.payload,
        }))
    }

    type ServerStreamStream = rsgrpc::BoxStream<EchoResponse>;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        let request = request.into_inner();
        let items: Vec<_> = (0..request.count).map(|i| Ok(item(&request, i))).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(items))))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        let mut requests = request.into_inner();
        let mut joined = Vec::new();
        while let Some(r) = requests.message().await? {
            joined.push(r.message);
        }
        Ok(Response::new(EchoResponse {
            message: joined.join(","),
            index: joined.len() as u32,
            payload: Vec::new(),
        }))
    }

    type BidiStream = rsgrpc::BoxStream<EchoResponse>;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        let replies = request
            .into_inner()
            .enumerate()
            .map(|(i, r)| r.map(|r| item(&r, i as u32)));
        Ok(Response::new(Box::pin(replies)))
    }
}

/// The echo service on the generated blocking trait.
struct BlockingEcho;

impl echo_server::EchoBlocking for BlockingEcho {
    fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EchoResponse {
            message: request.message,
            index: 0,
            payload: request.payload,
        }))
    }

    fn server_stream(
        &self,
        request: Request<EchoRequest>,
        mut responses: ResponseSink<EchoResponse>,
    ) -> Result<(), Status> {
        let request = request.into_inner();
        for i in 0..request.count {
            responses.send(item(&request, i))?;
        }
        Ok(())
    }

    fn client_stream(
        &self,
        request: Request<BlockingStreaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        let joined = request
            .into_inner()
            .map(|r| r.map(|r| r.message))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(EchoResponse {
            message: joined.join(","),
            index: joined.len() as u32,
            payload: Vec::new(),
        }))
    }

    fn bidi(
        &self,
        request: Request<BlockingStreaming<EchoRequest>>,
        mut responses: ResponseSink<EchoResponse>,
    ) -> Result<(), Status> {
        for (i, r) in request.into_inner().enumerate() {
            responses.send(item(&r?, i as u32))?;
        }
        Ok(())
    }
}

#[test]
fn generated_clients_against_a_tonic_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let tonic = TonicServer::start();
    let target = format!("http://{}", tonic.addr);

    let client = EchoBlockingClient::connect_lazy(&target).unwrap();
    assert_eq!(
        client.unary(request("hi", 0)).unwrap().get_ref().message,
        "hi"
    );
    let streamed: Vec<u32> = client
        .server_stream(request("s", 7))
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().index)
        .collect();
    assert_eq!(streamed, (0..7).collect::<Vec<_>>());
    let joined = client
        .client_stream(vec![request("a", 0), request("b", 0)])
        .unwrap();
    assert_eq!(joined.get_ref().message, "a,b");
    let (mut sender, mut replies) = client.bidi().unwrap();
    for i in 0..5 {
        sender.send(request(&format!("p{i}"), 0)).unwrap();
        assert_eq!(
            replies.next().unwrap().unwrap().message,
            format!("p{i}:{i}")
        );
    }
    drop(sender);
    assert!(replies.next().is_none());

    let client = EchoClient::connect_lazy(&target).unwrap();
    futures::executor::block_on(async {
        assert_eq!(
            client
                .unary(request("hey", 0))
                .await
                .unwrap()
                .get_ref()
                .message,
            "hey"
        );
        let mut stream = client
            .server_stream(request("s", 4))
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while stream.message().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 4);
        let joined = client
            .client_stream(futures::stream::iter(vec![
                request("x", 0),
                request("y", 0),
            ]))
            .await
            .unwrap();
        assert_eq!(joined.get_ref().message, "x,y");
        let replies: Vec<_> = client
            .bidi(futures::stream::iter(vec![
                request("q", 0),
                request("r", 0),
            ]))
            .await
            .unwrap()
            .into_inner()
            .map(|r| r.unwrap().message)
            .collect()
            .await;
        assert_eq!(replies, vec!["q:0", "r:1"]);
    });
}

#[test]
fn a_tonic_client_against_generated_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    let servers = [
        Server::builder()
            .add_service(EchoServer::new(AsyncEcho))
            .bind("127.0.0.1:0")
            .unwrap(),
        Server::builder()
            .add_service(EchoBlockingServer::new(BlockingEcho))
            .bind("127.0.0.1:0")
            .unwrap(),
    ];
    let rt = tokio_rt();
    for server in &servers {
        rt.block_on(async {
            let mut client = TonicClient::connect(server.local_addr(), SVC).await;
            let reply = client
                .unary(tonic::Request::new(rsgrpc_tests::req("tonic")))
                .await
                .unwrap();
            assert_eq!(reply.get_ref().message, "tonic");

            let mut stream = client
                .server_stream(tonic::Request::new(rsgrpc_tests::EchoRequest {
                    message: "s".into(),
                    count: 9,
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner();
            let mut n = 0;
            while let Some(item) = stream.message().await.unwrap() {
                assert_eq!(item.index, n);
                n += 1;
            }
            assert_eq!(n, 9);

            let reply = client
                .client_stream(tonic::Request::new(futures::stream::iter(
                    ["1", "2", "3"].map(rsgrpc_tests::req),
                )))
                .await
                .unwrap();
            assert_eq!(reply.get_ref().message, "1,2,3");

            let (tx, rx) = futures::channel::mpsc::unbounded();
            tx.unbounded_send(rsgrpc_tests::req("b0")).unwrap();
            let mut replies = client
                .bidi(tonic::Request::new(rx))
                .await
                .unwrap()
                .into_inner();
            for i in 0..5 {
                let reply = replies.message().await.unwrap().unwrap();
                assert_eq!(reply.message, format!("b{i}:{i}"));
                if i < 4 {
                    tx.unbounded_send(rsgrpc_tests::req(&format!("b{}", i + 1)))
                        .unwrap();
                }
            }
            drop(tx);
            assert!(replies.message().await.unwrap().is_none());
        });
    }
}
