//! Interoperability with tonic, a gRPC implementation we did not write: our clients
//! against a tonic server, and a tonic client against our servers, for all four kinds.

use futures::StreamExt;
use rsgrpc::client::Client;
use rsgrpc::{Channel, Code, Request, Response};
use rsgrpc_tests::tonic_echo::{TonicClient, TonicServer};
use rsgrpc_tests::{
    BIDI, CLIENT_STREAM, EchoRequest, EchoResponse, SERVER_STREAM, UNARY, path, req,
};

use crate::support::{FLAVOURS, SVC, server, tokio_rt};

fn our_client_for(tonic: &TonicServer) -> Client {
    Client::new(Channel::new(&format!("http://{}", tonic.addr)).unwrap())
}

#[test]
fn our_blocking_client_against_a_tonic_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let tonic = TonicServer::start();
    let client = our_client_for(&tonic);

    let mut request = Request::new(EchoRequest {
        message: "hi".into(),
        payload: vec![1, 2, 3].into(),
        ..Default::default()
    });
    request.metadata_mut().insert("x-echo", "m").unwrap();
    request
        .metadata_mut()
        .insert_bin("x-echo-bin", [9u8, 0])
        .unwrap();
    let reply: Response<EchoResponse> = client.blocking_unary(path(SVC, UNARY), request).unwrap();
    assert_eq!(reply.get_ref().message, "hi");
    assert_eq!(reply.get_ref().payload, vec![1, 2, 3]);
    assert_eq!(reply.metadata().get("x-echo"), Some("m"));
    assert_eq!(
        reply.metadata().get_bin("x-echo-bin").unwrap(),
        &[9u8, 0][..]
    );

    let stream = client
        .blocking_server_streaming::<_, EchoResponse>(
            path(SVC, SERVER_STREAM),
            Request::new(EchoRequest {
                message: "s".into(),
                count: 30,
                ..Default::default()
            }),
        )
        .unwrap()
        .into_inner();
    let indices: Vec<u32> = stream.map(|r| r.unwrap().index).collect();
    assert_eq!(indices, (0..30).collect::<Vec<_>>());

    let reply: Response<EchoResponse> = client
        .blocking_client_streaming(
            path(SVC, CLIENT_STREAM),
            Request::new((0..10).map(|i| req(&i.to_string()))),
        )
        .unwrap();
    assert_eq!(reply.get_ref().message, "0,1,2,3,4,5,6,7,8,9");

    let (mut sender, mut responses) = client
        .blocking_bidi_streaming::<EchoRequest, EchoResponse>(path(SVC, BIDI), Request::new(()))
        .unwrap();
    for i in 0..10 {
        sender.send(req(&format!("b{i}"))).unwrap();
        assert_eq!(
            responses.next().unwrap().unwrap().message,
            format!("b{i}:{i}")
        );
    }
    drop(sender);
    assert!(responses.next().is_none());

    let err = client
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("fail:7:nope ∞")))
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "nope ∞");
    assert_eq!(&err.details()[..], b"why");
}

#[test]
fn our_async_client_against_a_tonic_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let tonic = TonicServer::start();
    let client = our_client_for(&tonic);
    futures::executor::block_on(async {
        let reply: Response<EchoResponse> = client
            .unary(path(SVC, UNARY), Request::new(req("async hi")))
            .await
            .unwrap();
        assert_eq!(reply.get_ref().message, "async hi");

        let mut stream = client
            .server_streaming::<_, EchoResponse>(
                path(SVC, SERVER_STREAM),
                Request::new(EchoRequest {
                    message: "s".into(),
                    count: 30,
                    ..Default::default()
                }),
            )
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(item) = stream.message().await.unwrap() {
            assert_eq!(item.index, n);
            n += 1;
        }
        assert_eq!(n, 30);

        let reply: Response<EchoResponse> = client
            .client_streaming(
                path(SVC, CLIENT_STREAM),
                Request::new(futures::stream::iter((0..5).map(|i| req(&i.to_string())))),
            )
            .await
            .unwrap();
        assert_eq!(reply.get_ref().message, "0,1,2,3,4");

        let (tx, rx) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(req("x0")).unwrap();
        let mut responses = client
            .bidi_streaming::<_, _, EchoResponse>(path(SVC, BIDI), Request::new(rx))
            .await
            .unwrap()
            .into_inner();
        for i in 0..10 {
            let reply = responses.next().await.unwrap().unwrap();
            assert_eq!(reply.message, format!("x{i}:{i}"));
            if i < 9 {
                tx.unbounded_send(req(&format!("x{}", i + 1))).unwrap();
            }
        }
        drop(tx);
        assert!(responses.next().await.is_none());
    });
}

#[test]
fn a_tonic_client_against_our_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    let rt = tokio_rt();
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        rt.block_on(async {
            let mut client = TonicClient::connect(server.local_addr(), SVC).await;

            let mut request = tonic::Request::new(EchoRequest {
                message: "from tonic".into(),
                payload: vec![4, 5].into(),
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("x-echo", "t".parse().unwrap());
            let reply = client.unary(request).await.unwrap();
            assert_eq!(reply.metadata().get("x-echo").unwrap(), "t");
            assert_eq!(reply.get_ref().message, "from tonic");
            assert_eq!(reply.get_ref().payload, vec![4, 5]);

            let mut stream = client
                .server_stream(tonic::Request::new(EchoRequest {
                    message: "s".into(),
                    count: 40,
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
            assert_eq!(n, 40, "{flavour:?}");

            let reply = client
                .client_stream(tonic::Request::new(futures::stream::iter(
                    (0..6).map(|i| req(&i.to_string())),
                )))
                .await
                .unwrap();
            assert_eq!(reply.get_ref().message, "0,1,2,3,4,5");

            let (tx, rx) = futures::channel::mpsc::unbounded();
            tx.unbounded_send(req("y0")).unwrap();
            let mut responses = client
                .bidi(tonic::Request::new(rx))
                .await
                .unwrap()
                .into_inner();
            for i in 0..10 {
                let reply = responses.message().await.unwrap().unwrap();
                assert_eq!(reply.message, format!("y{i}:{i}"));
                if i < 9 {
                    tx.unbounded_send(req(&format!("y{}", i + 1))).unwrap();
                }
            }
            drop(tx);
            assert!(responses.message().await.unwrap().is_none());

            let err = client
                .unary(tonic::Request::new(req("fail:9:precondition ✓")))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{flavour:?}");
            assert_eq!(err.message(), "precondition ✓");
            assert_eq!(err.details(), b"why");

            let err = client
                .server_stream(tonic::Request::new(req("fail:5:gone")))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::NotFound);

            let mut request = tonic::Request::new(req("sleep:5000"));
            request.set_timeout(std::time::Duration::from_millis(100));
            let err = client.unary(request).await.unwrap_err();
            // Both sides enforce the deadline; tonic reports its own timer firing first as
            // CANCELLED "Timeout expired", our server's verdict is DEADLINE_EXCEEDED (which
            // protocol::server_enforces_grpc_timeout_on_its_own checks alone).
            let tonic_timer =
                err.code() == tonic::Code::Cancelled && err.message().contains("Timeout expired");
            assert!(
                err.code() == tonic::Code::DeadlineExceeded || tonic_timer,
                "{flavour:?}: {err:?}"
            );
        });
    }
}
