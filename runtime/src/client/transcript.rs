//! The client's connection and call state machines, driven frame by frame over an
//! in-memory pipe by a hand-written HTTP/2 server: what the client sends for each call and
//! how it reads each answer. The channel dials pipes instead of sockets; its connections
//! and calls run on the runtime's poller as they do over TCP.

use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::Client;
use crate::channel::Channel;
use crate::request::Request;
use crate::runtime::Runtime;
use crate::status::{Code, Status};
use crate::transport::test_peer::*;

const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;

const ECHO: &str = "/test.Echo/Echo";

/// A client whose channel connects over pipes; the server's end of each new connection
/// arrives on the receiver.
fn client(
    configure: impl FnOnce(crate::channel::ChannelBuilder) -> crate::channel::ChannelBuilder,
) -> (Runtime, Client, mpsc::UnboundedReceiver<DuplexStream>) {
    let runtime = Runtime::builder()
        .poller_threads(1)
        .executor_threads(1)
        .build()
        .unwrap();
    let (dials, dialled) = mpsc::unbounded_channel();
    let builder = Channel::builder("127.0.0.1:50051")
        .runtime(&runtime)
        .in_memory(move || {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let _ = dials.send(theirs);
            ours
        });
    let channel = configure(builder).connect_lazy().unwrap();
    (runtime, Client::new(channel), dialled)
}

/// The server's side of the next connection: the client's preface and settings read, the
/// server's (empty, or these) settings sent and the client's acknowledged.
async fn accept(dialled: &mut mpsc::UnboundedReceiver<DuplexStream>, ours: &[(u16, u32)]) -> Peer {
    let io = dialled.recv().await.expect("a connection");
    let mut peer = Peer::new(io);
    peer.read_preface().await;
    let theirs = peer.next().await.expect("the client's settings");
    assert_eq!(
        (theirs.kind, theirs.has(ACK)),
        (SETTINGS, false),
        "{theirs:?}"
    );
    peer.write(&settings(ours)).await;
    peer.write(&frame(SETTINGS, ACK, 0, &[])).await;
    peer
}

/// The body of the request on stream 1, up to its end (in its last DATA frame or an
/// empty one).
async fn request_body(peer: &mut Peer) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let data = next_call_frame(peer).await;
        assert_eq!((data.kind, data.stream), (DATA, 1), "{data:?}");
        body.extend_from_slice(&data.payload);
        if data.has(END_STREAM) {
            return body;
        }
    }
}

/// Starts a unary call on the test's runtime.
fn call(
    client: &Client,
    request: Request<String>,
) -> tokio::task::JoinHandle<Result<String, Status>> {
    let client = client.clone();
    tokio::spawn(async move {
        client
            .unary::<String, String>(ECHO, request)
            .await
            .map(|response| response.into_inner())
    })
}

const OK_HEADERS: &[(&str, &str)] = &[(":status", "200"), ("content-type", "application/grpc")];

#[tokio::test]
async fn a_unary_call_frame_by_frame() {
    let (_runtime, client, mut dialled) = client(|b| b);
    let call = call(&client, Request::new("hello".to_owned()));
    let mut peer = accept(&mut dialled, &[]).await;

    let headers = next_call_frame(&mut peer).await;
    assert_eq!((headers.kind, headers.stream), (HEADERS, 1), "{headers:?}");
    assert!(!headers.has(END_STREAM));
    let fields = peer.decode(&headers);
    assert_eq!(field(&fields, ":method"), Some("POST"));
    assert_eq!(field(&fields, ":scheme"), Some("http"));
    assert_eq!(field(&fields, ":path"), Some(ECHO));
    assert_eq!(field(&fields, ":authority"), Some("127.0.0.1:50051"));
    assert_eq!(field(&fields, "content-type"), Some("application/grpc"));
    assert_eq!(field(&fields, "te"), Some("trailers"));
    assert_eq!(field(&fields, "grpc-timeout"), None, "no deadline was set");
    // The request, then the end of the stream (in the same frame or an empty one).
    let body = request_body(&mut peer).await;
    assert_eq!(body, message("hello"));

    peer.headers(1, OK_HEADERS, false).await;
    peer.write(&frame(DATA, 0, 1, &message("hello back"))).await;
    peer.headers(1, &[("grpc-status", "0")], true).await;
    assert_eq!(call.await.unwrap().unwrap(), "hello back");
}

#[tokio::test]
async fn a_trailers_only_answer_is_the_calls_status() {
    let (_runtime, client, mut dialled) = client(|b| b);
    let call = call(&client, Request::new("key".to_owned()));
    let mut peer = accept(&mut dialled, &[]).await;
    let headers = next_call_frame(&mut peer).await;
    peer.decode(&headers);
    peer.headers(
        1,
        &[
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "5"),
            ("grpc-message", "no%20such%20key"),
        ],
        true,
    )
    .await;
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "no such key");
}

#[tokio::test]
async fn an_http_error_without_a_grpc_status_is_mapped_to_a_code() {
    // gRPC's mapping of HTTP status codes, for answers from proxies that are not gRPC.
    for (http, code) in [
        ("404", Code::Unimplemented),
        ("503", Code::Unavailable),
        ("401", Code::Unauthenticated),
        ("429", Code::Unavailable),
    ] {
        let (_runtime, client, mut dialled) = client(|b| b);
        let call = call(&client, Request::new("x".to_owned()));
        let mut peer = accept(&mut dialled, &[]).await;
        let headers = next_call_frame(&mut peer).await;
        peer.decode(&headers);
        peer.headers(1, &[(":status", http), ("content-type", "text/html")], true)
            .await;
        let status = call.await.unwrap().unwrap_err();
        assert_eq!(status.code(), code, "HTTP {http}: {status:?}");
        assert!(status.message().contains(http), "HTTP {http}: {status:?}");
    }
}

#[tokio::test]
async fn a_deadline_is_sent_and_a_late_call_is_reset_with_cancel() {
    let (_runtime, client, mut dialled) = client(|b| b);
    let mut request = Request::new("slow".to_owned());
    request.set_timeout(Duration::from_millis(300));
    let call = call(&client, request);
    let mut peer = accept(&mut dialled, &[]).await;
    let headers = next_call_frame(&mut peer).await;
    let fields = peer.decode(&headers);
    let timeout = field(&fields, "grpc-timeout").expect("a grpc-timeout");
    // At most 300 ms, in the units the client chose.
    let (value, unit) = timeout.split_at(timeout.len() - 1);
    let value: u64 = value.parse().unwrap();
    let micros = match unit {
        "m" => value * 1000,
        "u" => value,
        "n" => value / 1000,
        _ => panic!("unexpected unit in {timeout}"),
    };
    assert!(micros <= 300_000 && micros > 0, "{timeout}");
    // The server never answers: the client gives up at its deadline and resets the stream.
    let reset = loop {
        let frame = next_call_frame(&mut peer).await;
        if frame.kind == RST_STREAM {
            break frame;
        }
        assert_eq!(frame.kind, DATA, "{frame:?}");
    };
    assert_eq!((reset.stream, reset.value()), (1, CANCEL), "{reset:?}");
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn a_refused_stream_is_retried_on_a_new_stream() {
    let (_runtime, client, mut dialled) = client(|b| b);
    let call = call(&client, Request::new("again".to_owned()));
    let mut peer = accept(&mut dialled, &[]).await;
    let first = next_call_frame(&mut peer).await;
    assert_eq!((first.kind, first.stream), (HEADERS, 1));
    peer.decode(&first);
    peer.write(&frame(RST_STREAM, 0, 1, &REFUSED_STREAM.to_be_bytes()))
        .await;
    // Unprocessed, so sent again (transparently: no retry policy is configured).
    let second = loop {
        let frame = next_call_frame(&mut peer).await;
        if frame.kind == HEADERS {
            break frame;
        }
        assert_eq!((frame.kind, frame.stream), (DATA, 1), "{frame:?}");
    };
    assert_eq!(second.stream, 3, "{second:?}");
    assert_eq!(field(&peer.decode(&second), ":path"), Some(ECHO));
    let mut body = Vec::new();
    loop {
        let data = next_call_frame(&mut peer).await;
        assert_eq!((data.kind, data.stream), (DATA, 3), "{data:?}");
        body.extend_from_slice(&data.payload);
        if data.has(END_STREAM) {
            break;
        }
    }
    assert_eq!(body, message("again"));
    peer.headers(3, OK_HEADERS, false).await;
    peer.write(&frame(DATA, 0, 3, &message("done"))).await;
    peer.headers(3, &[("grpc-status", "0")], true).await;
    assert_eq!(call.await.unwrap().unwrap(), "done");
}

#[tokio::test]
async fn requests_wait_for_the_servers_window() {
    let (_runtime, client, mut dialled) = client(|b| b);
    let text = "x".repeat(100);
    let call = call(&client, Request::new(text.clone()));
    let mut peer = accept(&mut dialled, &[(SETTINGS_INITIAL_WINDOW_SIZE, 10)]).await;
    let headers = next_call_frame(&mut peer).await;
    peer.decode(&headers);
    // Ten bytes, then nothing until the window grows.
    let data = next_call_frame(&mut peer).await;
    assert_eq!((data.kind, data.payload.len()), (DATA, 10), "{data:?}");
    let mut body = data.payload.to_vec();
    let expected = message(&text);
    peer.write(&frame(WINDOW_UPDATE, 0, 1, &1000u32.to_be_bytes()))
        .await;
    while body.len() < expected.len() {
        let data = next_call_frame(&mut peer).await;
        assert_eq!((data.kind, data.stream), (DATA, 1), "{data:?}");
        body.extend_from_slice(&data.payload);
    }
    assert_eq!(body, expected);
    peer.headers(1, OK_HEADERS, false).await;
    peer.write(&frame(DATA, 0, 1, &message("ok"))).await;
    peer.headers(1, &[("grpc-status", "0")], true).await;
    assert_eq!(call.await.unwrap().unwrap(), "ok");
}

#[tokio::test]
async fn queued_requests_go_out_in_full_frames_across_their_boundaries() {
    const MESSAGES: usize = 6;
    let (_runtime, client, mut dialled) = client(|b| b);
    let text = "y".repeat(20_000);
    let (queued_tx, queued_rx) = std::sync::mpsc::channel();
    let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
    let sent = text.clone();
    let caller = tokio::task::spawn_blocking(move || {
        let (mut requests, responses) = client
            .blocking_bidi_streaming::<String, String>(ECHO, Request::new(()))
            .unwrap();
        for _ in 0..MESSAGES {
            requests.send(sent.clone()).unwrap();
        }
        queued_tx.send(()).unwrap();
        finish_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        requests.finish();
        responses.collect::<Result<Vec<_>, _>>()
    });
    // No window for the stream until every request is queued.
    let mut peer = accept(&mut dialled, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    let headers = next_call_frame(&mut peer).await;
    assert_eq!((headers.kind, headers.stream), (HEADERS, 1), "{headers:?}");
    peer.decode(&headers);
    tokio::task::spawn_blocking(move || queued_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the caller queued its requests");
    finish_tx.send(()).unwrap();
    let window = (1u32 << 20).to_be_bytes();
    peer.write(&frame(WINDOW_UPDATE, 0, 0, &window)).await;
    peer.write(&frame(WINDOW_UPDATE, 0, 1, &window)).await;

    // Each request is 20,005 bytes, which 16 KiB frames (the server's, by default) do not
    // divide: every frame but the last is full all the same.
    let mut body = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let data = next_call_frame(&mut peer).await;
        assert_eq!((data.kind, data.stream), (DATA, 1), "{data:?}");
        if !data.payload.is_empty() {
            sizes.push(data.payload.len());
        }
        body.extend_from_slice(&data.payload);
        if data.has(END_STREAM) {
            break;
        }
    }
    let one = message(&text);
    assert_eq!(
        body,
        one.repeat(MESSAGES),
        "the requests, whole and in order"
    );
    let (last, full) = sizes.split_last().expect("data frames");
    assert!(full.iter().all(|&n| n == 16_384), "frame sizes {sizes:?}");
    assert_eq!(full.len() * 16_384 + last, one.len() * MESSAGES);
    peer.headers(1, OK_HEADERS, false).await;
    peer.write(&frame(DATA, 0, 1, &message("done"))).await;
    peer.headers(1, &[("grpc-status", "0")], true).await;
    assert_eq!(caller.await.unwrap().unwrap(), ["done"]);
}

#[tokio::test]
async fn keepalive_pings_while_a_call_is_open_and_gives_up_unanswered() {
    let (_runtime, client, mut dialled) = client(|b| {
        b.keepalive_time(Duration::from_millis(200))
            .keepalive_timeout(Duration::from_millis(300))
    });
    let call = call(&client, Request::new("wait".to_owned()));
    let mut peer = accept(&mut dialled, &[]).await;
    // The call's frames, then, with the call open and the server quiet, a ping.
    let ping = loop {
        let frame = next_call_frame(&mut peer).await;
        if frame.kind == PING {
            break frame;
        }
        assert!(matches!(frame.kind, HEADERS | DATA), "{frame:?}");
    };
    assert!(!ping.has(ACK), "{ping:?}");
    // Never answered: the client closes the connection and the call fails.
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    while let Some(frame) = peer.next().await {
        assert!(
            matches!(
                frame.kind,
                GOAWAY | RST_STREAM | PING | WINDOW_UPDATE | SETTINGS
            ),
            "{frame:?}"
        );
    }
}

#[tokio::test]
async fn a_goaway_before_the_call_was_processed_sends_it_on_a_new_connection() {
    let (_runtime, client, mut dialled) = client(|b| b);
    let mut request = Request::new("moved".to_owned());
    // A server that sends every new connection away is a failed connection attempt: a
    // call that does not wait for ready would fail with it.
    request.set_wait_for_ready(true);
    let call = call(&client, request);
    let mut peer = accept(&mut dialled, &[]).await;
    let headers = next_call_frame(&mut peer).await;
    assert_eq!(headers.stream, 1);
    peer.decode(&headers);
    // GOAWAY, last stream 0: stream 1 was not processed.
    let mut goaway = 0u32.to_be_bytes().to_vec();
    goaway.extend_from_slice(&0u32.to_be_bytes());
    peer.write(&frame(GOAWAY, 0, 0, &goaway)).await;
    drop(peer);

    let mut peer = accept(&mut dialled, &[]).await;
    let headers = next_call_frame(&mut peer).await;
    assert_eq!((headers.kind, headers.stream), (HEADERS, 1), "{headers:?}");
    peer.decode(&headers);
    loop {
        let data = next_call_frame(&mut peer).await;
        if data.has(END_STREAM) {
            break;
        }
    }
    peer.headers(1, OK_HEADERS, false).await;
    peer.write(&frame(DATA, 0, 1, &message("here"))).await;
    peer.headers(1, &[("grpc-status", "0")], true).await;
    assert_eq!(call.await.unwrap().unwrap(), "here");
}

#[tokio::test]
async fn a_call_sent_away_by_goaway_fails_unavailable_without_wait_for_ready() {
    let (_runtime, client, mut dialled) = client(|b| b);
    let call = call(&client, Request::new("moved".to_owned()));
    let mut peer = accept(&mut dialled, &[]).await;
    let headers = next_call_frame(&mut peer).await;
    peer.decode(&headers);
    let mut goaway = 0u32.to_be_bytes().to_vec();
    goaway.extend_from_slice(&0u32.to_be_bytes());
    peer.write(&frame(GOAWAY, 0, 0, &goaway)).await;
    drop(peer);
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("GOAWAY"), "{status:?}");
}

const WEB_HEADERS: &[(&str, &str)] = &[
    (":status", "200"),
    ("content-type", "application/grpc-web+proto"),
];

/// A gRPC-Web trailers frame holding `block`.
fn web_trailers(block: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80];
    frame.extend_from_slice(&(block.len() as u32).to_be_bytes());
    frame.extend_from_slice(block);
    frame
}

/// Starts a gRPC-Web call and answers its headers; returns the call and the peer.
async fn web_call(
    request: &str,
) -> (
    Runtime,
    tokio::task::JoinHandle<Result<crate::response::Response<String>, Status>>,
    Peer,
) {
    let (runtime, client, mut dialled) = client(|b| b.grpc_web(true));
    let request = Request::new(request.to_owned());
    let call = tokio::spawn(async move { client.unary::<String, String>(ECHO, request).await });
    let mut peer = accept(&mut dialled, &[]).await;
    let headers = next_call_frame(&mut peer).await;
    let fields = peer.decode(&headers);
    assert_eq!(
        field(&fields, "content-type"),
        Some("application/grpc-web+proto")
    );
    assert_eq!(field(&fields, "x-grpc-web"), Some("1"));
    assert_eq!(field(&fields, "te"), None, "gRPC-Web asks for no trailers");
    let body = request_body(&mut peer).await;
    assert_eq!(body, message(request_text(&body)));
    peer.headers(1, WEB_HEADERS, false).await;
    (runtime, call, peer)
}

/// The text of a framed string message.
fn request_text(framed: &[u8]) -> &str {
    std::str::from_utf8(&framed[7..]).unwrap()
}

#[tokio::test]
async fn a_grpc_web_call_reads_its_status_from_the_last_frame() {
    let (_runtime, call, mut peer) = web_call("hello").await;
    let mut body = message("hello back");
    body.extend(web_trailers(b"grpc-status: 0\r\nx-trailer: t1\r\n"));
    // The trailers frame split across DATA frames; no HTTP/2 trailers.
    let (first, rest) = body.split_at(body.len() - 7);
    peer.write(&frame(DATA, 0, 1, first)).await;
    peer.write(&frame(DATA, END_STREAM, 1, rest)).await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.get_ref(), "hello back");
    assert_eq!(response.trailers().get("x-trailer").unwrap(), "t1");
}

#[tokio::test]
async fn a_grpc_web_error_status_and_a_frame_after_the_trailers() {
    let (_runtime, call, mut peer) = web_call("fail").await;
    let body = web_trailers(b"grpc-status: 3\r\ngrpc-message: bad%20input\r\n");
    peer.write(&frame(DATA, END_STREAM, 1, &body)).await;
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "bad input")
    );

    let (_runtime, call, mut peer) = web_call("more").await;
    let mut body = web_trailers(b"grpc-status: 0\r\n");
    body.extend(message("late"));
    peer.write(&frame(DATA, END_STREAM, 1, &body)).await;
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status}");
    assert!(status.message().contains("after"), "{status}");

    // A response with no trailers anywhere is an error too.
    let (_runtime, call, mut peer) = web_call("none").await;
    peer.write(&frame(DATA, END_STREAM, 1, &message("no status")))
        .await;
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status}");
}
