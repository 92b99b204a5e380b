//! All four RPC kinds, with blocking and async clients against blocking and async servers.

use futures::StreamExt;
use rsgrpc::client::Client;
use rsgrpc::{Request, Response};
use rsgrpc_tests::{
    BIDI, CLIENT_STREAM, EchoRequest, EchoResponse, SERVER_STREAM, UNARY, path, req,
};

use crate::support::{FLAVOURS, Flavour, SVC, client, server};

fn unary_request() -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        message: "hello".into(),
        payload: vec![0, 1, 2, 255].into(),
        ..Default::default()
    });
    request.metadata_mut().insert("x-echo", "v1").unwrap();
    request
        .metadata_mut()
        .insert_bin("x-echo-bin", [0u8, 10, 255])
        .unwrap();
    request
}

fn check_unary(response: &Response<EchoResponse>) {
    assert_eq!(response.get_ref().message, "hello");
    assert_eq!(response.get_ref().payload, vec![0, 1, 2, 255]);
    assert_eq!(response.metadata().get("x-echo"), Some("v1"));
    assert_eq!(
        response.metadata().get_bin("x-echo-bin").unwrap(),
        &[0u8, 10, 255][..]
    );
    assert_eq!(response.trailers().get("x-echo-trailer"), Some("v1"));
    assert_eq!(
        response.trailers().get_bin("x-echo-trailer-bin").unwrap(),
        &[0u8, 10, 255][..]
    );
}

fn stream_request(count: u32) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        message: "s".into(),
        count,
        ..Default::default()
    });
    request.metadata_mut().insert("x-echo", "st").unwrap();
    request
}

fn check_stream_items(items: &[EchoResponse], count: u32) {
    assert_eq!(items.len(), count as usize);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.index, i as u32);
        assert_eq!(item.message, format!("s:{i}"));
    }
}

pub(crate) fn exercise_blocking(client: &Client) {
    let response = client
        .blocking_unary(path(SVC, UNARY), unary_request())
        .unwrap();
    check_unary(&response);

    let response = client
        .blocking_server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), stream_request(50))
        .unwrap();
    assert_eq!(response.metadata().get("x-echo"), Some("st"));
    let mut stream = response.into_inner();
    let items: Vec<EchoResponse> = stream.by_ref().map(Result::unwrap).collect();
    check_stream_items(&items, 50);
    assert_eq!(stream.trailers().unwrap().get("x-echo-trailer"), Some("st"));

    let mut request = Request::new(vec![req("a"), req("b"), req("c")]);
    request.metadata_mut().insert("x-echo", "cs").unwrap();
    let response: Response<EchoResponse> = client
        .blocking_client_streaming(path(SVC, CLIENT_STREAM), request)
        .unwrap();
    assert_eq!(response.get_ref().message, "a,b,c");
    assert_eq!(response.get_ref().index, 3);
    assert_eq!(response.metadata().get("x-echo"), Some("cs"));

    let mut request = Request::new(());
    request.metadata_mut().insert("x-echo", "bd").unwrap();
    let (mut sender, mut responses) = client
        .blocking_bidi_streaming::<EchoRequest, EchoResponse>(path(SVC, BIDI), request)
        .unwrap();
    for i in 0..20 {
        sender.send(req(&format!("p{i}"))).unwrap();
        let reply = responses.next().unwrap().unwrap();
        assert_eq!(reply.message, format!("p{i}:{i}"));
    }
    assert_eq!(responses.headers().unwrap().get("x-echo"), Some("bd"));
    sender.finish();
    assert!(responses.next().is_none());
    assert_eq!(
        responses.trailers().unwrap().get("x-echo-trailer"),
        Some("bd")
    );
}

pub(crate) async fn exercise_async(client: &Client) {
    let response = client
        .unary(path(SVC, UNARY), unary_request())
        .await
        .unwrap();
    check_unary(&response);

    let response = client
        .server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), stream_request(50))
        .await
        .unwrap();
    assert_eq!(response.metadata().get("x-echo"), Some("st"));
    let mut stream = response.into_inner();
    let mut items = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        items.push(item);
    }
    check_stream_items(&items, 50);
    assert_eq!(stream.trailers().unwrap().get("x-echo-trailer"), Some("st"));

    let mut request = Request::new(futures::stream::iter(vec![req("a"), req("b"), req("c")]));
    request.metadata_mut().insert("x-echo", "cs").unwrap();
    let response: Response<EchoResponse> = client
        .client_streaming(path(SVC, CLIENT_STREAM), request)
        .await
        .unwrap();
    assert_eq!(response.get_ref().message, "a,b,c");
    assert_eq!(response.metadata().get("x-echo"), Some("cs"));

    // Ping-pong: each request is only produced after the previous reply arrived.
    let (tx, rx) = futures::channel::mpsc::unbounded::<EchoRequest>();
    let mut request = Request::new(rx);
    request.metadata_mut().insert("x-echo", "bd").unwrap();
    tx.unbounded_send(req("p0")).unwrap();
    let response = client
        .bidi_streaming::<_, _, EchoResponse>(path(SVC, BIDI), request)
        .await
        .unwrap();
    assert_eq!(response.metadata().get("x-echo"), Some("bd"));
    let mut responses = response.into_inner();
    for i in 0..20 {
        let reply = responses.next().await.unwrap().unwrap();
        assert_eq!(reply.message, format!("p{i}:{i}"));
        if i < 19 {
            tx.unbounded_send(req(&format!("p{}", i + 1))).unwrap();
        }
    }
    drop(tx);
    assert!(responses.next().await.is_none());
    assert_eq!(
        responses.trailers().unwrap().get("x-echo-trailer"),
        Some("bd")
    );
}

#[test]
fn blocking_client_against_both_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        exercise_blocking(&client(&server));
    }
}

#[test]
fn async_client_against_both_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        futures::executor::block_on(exercise_async(&client(&server)));
    }
}

#[test]
fn large_messages_flow_through_flow_control() {
    let _leaks = rsgrpc_tests::leak::check();
    // Messages and streams far larger than the HTTP/2 windows, in both directions.
    for flavour in FLAVOURS {
        let (server, _) = server(flavour);
        let client = client(&server);
        let big = EchoRequest {
            message: "big".into(),
            payload: vec![7; 3 * 1024 * 1024].into(),
            ..Default::default()
        };
        let response: Response<EchoResponse> = client
            .blocking_unary(path(SVC, UNARY), Request::new(big.clone()))
            .unwrap();
        assert_eq!(response.get_ref().payload.len(), 3 * 1024 * 1024);

        let stream = client
            .blocking_server_streaming::<_, EchoResponse>(
                path(SVC, SERVER_STREAM),
                Request::new(EchoRequest {
                    message: "s".into(),
                    count: 200,
                    response_size: 64 * 1024,
                    ..Default::default()
                }),
            )
            .unwrap()
            .into_inner();
        let total: usize = stream.map(|r| r.unwrap().payload.len()).sum();
        assert_eq!(total, 200 * 64 * 1024, "{flavour:?}");

        let many = (0..100).map(|_| EchoRequest {
            payload: vec![1; 100 * 1024].into(),
            ..Default::default()
        });
        let response: Response<EchoResponse> = client
            .blocking_client_streaming(path(SVC, CLIENT_STREAM), Request::new(many))
            .unwrap();
        assert_eq!(response.get_ref().payload, b"10240000".to_vec());
    }
}

#[test]
fn many_concurrent_calls_share_one_connection() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Async);
    let client = client(&server);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let message = format!("t{t}-{i}");
                    let response: Response<EchoResponse> = client
                        .blocking_unary(path(SVC, UNARY), Request::new(req(&message)))
                        .unwrap();
                    assert_eq!(response.get_ref().message, message);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.accepted_connections(), 1);
}
