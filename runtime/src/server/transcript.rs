//! The server's connection and call state machines, driven frame by frame over an
//! in-memory pipe by a hand-written HTTP/2 peer: what the server sends for each thing a
//! client does, in order. The connection task runs on the runtime's poller as it does for
//! a socket; only the byte stream differs.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::connection::{Setup, serve};
use super::{Phase, Server, ServerBuilder, ServerShared, Service};
use crate::call::streams::BlockingStreaming;
use crate::request::Request;
use crate::response::Response;
use crate::runtime::Runtime;
use crate::status::Status;
use crate::transport::PeerInfo;
use crate::transport::test_peer::*;

const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// A server with `service`, not bound to any port, on a runtime of its own.
fn server(builder: ServerBuilder) -> (Runtime, Arc<ServerShared>) {
    let runtime = Runtime::builder()
        .poller_threads(1)
        .executor_threads(1)
        .build()
        .unwrap();
    let shared = builder.runtime(&runtime).into_shared().unwrap();
    (runtime, shared)
}

fn echo() -> ServerBuilder {
    let echo = Service::builder("test.Echo")
        .blocking_unary("Echo", |request: Request<String>| {
            Ok::<_, Status>(Response::new(request.into_inner()))
        })
        .build();
    Server::builder().add_service(echo)
}

/// A client connection: the pipe's far end is served like an accepted socket, and the
/// client's preface and (empty, or these) settings are sent.
async fn connect(shared: &Arc<ServerShared>, settings_sent: &[(u16, u32)]) -> Peer {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let guard = shared.admit_connection().expect("room for a connection");
    shared.rt.poller().spawn(serve(
        shared.clone(),
        theirs,
        PeerInfo::default(),
        guard,
        Instant::now(),
        Setup::internal(crate::limits::CONNECTION_COST),
    ));
    let mut peer = Peer::new(ours);
    peer.write(PREFACE).await;
    peer.write(&settings(settings_sent)).await;
    peer
}

fn request(path: &str) -> Vec<(&str, &str)> {
    vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "transcript.test"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
}

#[tokio::test]
async fn the_server_announces_its_limits_then_acknowledges_ours() {
    let (_runtime, shared) = server(echo());
    let mut peer = connect(&shared, &[]).await;
    let first = peer.next().await.unwrap();
    assert_eq!(first.kind, SETTINGS, "{first:?}");
    assert!(!first.has(ACK));
    let announced = first.settings();
    assert!(
        announced.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 256)),
        "{announced:?}"
    );
    assert!(
        announced.contains(&(SETTINGS_INITIAL_WINDOW_SIZE, 1024 * 1024)),
        "{announced:?}"
    );
    assert!(
        announced.contains(&(SETTINGS_MAX_HEADER_LIST_SIZE, 16 * 1024)),
        "{announced:?}"
    );
    // Then, in either order: the connection window raised to 2 MiB, and our settings
    // acknowledged.
    let mut window = None;
    let mut acked = false;
    while window.is_none() || !acked {
        let frame = peer.next().await.unwrap();
        match frame.kind {
            WINDOW_UPDATE if frame.stream == 0 => window = Some(frame.value()),
            SETTINGS if frame.has(ACK) => acked = true,
            _ => panic!("unexpected {frame:?}"),
        }
    }
    assert_eq!(window, Some(2 * 1024 * 1024 - 65_535));
}

#[tokio::test]
async fn a_unary_call_frame_by_frame() {
    let (_runtime, shared) = server(echo());
    let mut peer = connect(&shared, &[]).await;
    peer.headers(1, &request("/test.Echo/Echo"), false).await;
    peer.write(&frame(DATA, END_STREAM, 1, &message("hi")))
        .await;

    let headers = next_call_frame(&mut peer).await;
    assert_eq!((headers.kind, headers.stream), (HEADERS, 1), "{headers:?}");
    assert!(!headers.has(END_STREAM));
    let fields = peer.decode(&headers);
    assert_eq!(field(&fields, ":status"), Some("200"));
    assert_eq!(field(&fields, "content-type"), Some("application/grpc"));

    let data = next_call_frame(&mut peer).await;
    assert_eq!((data.kind, data.stream), (DATA, 1), "{data:?}");
    assert_eq!(&data.payload[..], &message("hi")[..]);
    assert!(!data.has(END_STREAM));

    let trailers = next_call_frame(&mut peer).await;
    assert_eq!(
        (trailers.kind, trailers.stream),
        (HEADERS, 1),
        "{trailers:?}"
    );
    assert!(trailers.has(END_STREAM));
    let fields = peer.decode(&trailers);
    assert_eq!(field(&fields, "grpc-status"), Some("0"), "{fields:?}");
}

#[tokio::test]
async fn an_unknown_method_is_answered_trailers_only() {
    let (_runtime, shared) = server(echo());
    let mut peer = connect(&shared, &[]).await;
    peer.headers(1, &request("/test.Echo/Nope"), true).await;
    let only = next_call_frame(&mut peer).await;
    assert_eq!((only.kind, only.stream), (HEADERS, 1), "{only:?}");
    assert!(only.has(END_STREAM), "one header block ends the call");
    let fields = peer.decode(&only);
    assert_eq!(field(&fields, ":status"), Some("200"));
    assert_eq!(field(&fields, "grpc-status"), Some("12"), "{fields:?}");
    assert!(
        field(&fields, "grpc-message").is_some_and(|m| m.contains("/test.Echo/Nope")),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_request_that_is_not_grpc_gets_an_http_error() {
    let (_runtime, shared) = server(echo());
    let mut peer = connect(&shared, &[]).await;
    let mut fields = request("/test.Echo/Echo");
    fields[4] = ("content-type", "text/plain");
    peer.headers(1, &fields, true).await;
    let answer = next_call_frame(&mut peer).await;
    assert!(answer.has(END_STREAM));
    let fields = peer.decode(&answer);
    assert_eq!(field(&fields, ":status"), Some("415"), "{fields:?}");
    assert_eq!(field(&fields, "grpc-status"), None);
}

#[tokio::test]
async fn a_second_message_on_a_unary_call_fails_it() {
    let (_runtime, shared) = server(echo());
    let mut peer = connect(&shared, &[]).await;
    peer.headers(1, &request("/test.Echo/Echo"), false).await;
    let mut two = message("one");
    two.extend(message("two"));
    peer.write(&frame(DATA, END_STREAM, 1, &two)).await;
    let only = next_call_frame(&mut peer).await;
    assert!(only.has(END_STREAM), "{only:?}");
    let fields = peer.decode(&only);
    assert_eq!(field(&fields, "grpc-status"), Some("13"), "{fields:?}");
}

#[tokio::test]
async fn a_zero_timeout_is_answered_and_never_run() {
    let (ran_tx, ran_rx) = mpsc::channel::<()>();
    let service = Service::builder("test.Echo")
        .blocking_unary("Echo", move |request: Request<String>| {
            let _ = ran_tx.send(());
            Ok::<_, Status>(Response::new(request.into_inner()))
        })
        .build();
    let (_runtime, shared) = server(Server::builder().add_service(service));
    let mut peer = connect(&shared, &[]).await;
    let mut fields = request("/test.Echo/Echo");
    fields.push(("grpc-timeout", "0n"));
    peer.headers(1, &fields, false).await;
    peer.write(&frame(DATA, END_STREAM, 1, &message("late")))
        .await;
    let only = next_call_frame(&mut peer).await;
    assert!(only.has(END_STREAM), "{only:?}");
    let fields = peer.decode(&only);
    assert_eq!(field(&fields, "grpc-status"), Some("4"), "{fields:?}");
    assert!(ran_rx.try_recv().is_err(), "the handler must not run");
}

#[tokio::test]
async fn responses_wait_for_the_clients_window() {
    let (_runtime, shared) = server(echo());
    // A 16-byte window for each stream the server sends on.
    let mut peer = connect(&shared, &[(SETTINGS_INITIAL_WINDOW_SIZE, 16)]).await;
    let text = "a response longer than the window";
    let expected = message(text);
    assert!(expected.len() > 16);
    peer.headers(1, &request("/test.Echo/Echo"), false).await;
    peer.write(&frame(DATA, END_STREAM, 1, &message(text)))
        .await;

    let headers = next_call_frame(&mut peer).await;
    assert_eq!(headers.kind, HEADERS, "{headers:?}");
    let first = next_call_frame(&mut peer).await;
    assert_eq!((first.kind, first.payload.len()), (DATA, 16), "{first:?}");
    // The window is spent: the server sends nothing more on the stream. A PING sent now is
    // answered before anything else, since the server writes in order.
    peer.write(&frame(PING, 0, 0, b"12345678")).await;
    let pong = next_call_frame(&mut peer).await;
    assert_eq!((pong.kind, pong.has(ACK)), (PING, true), "{pong:?}");
    assert_eq!(&pong.payload[..], b"12345678");
    // More window: the rest of the message, then the trailers.
    peer.write(&frame(WINDOW_UPDATE, 0, 1, &1000u32.to_be_bytes()))
        .await;
    let rest = next_call_frame(&mut peer).await;
    assert_eq!(rest.kind, DATA, "{rest:?}");
    let mut sent = first.payload.to_vec();
    sent.extend_from_slice(&rest.payload);
    assert_eq!(sent, expected);
    let trailers = next_call_frame(&mut peer).await;
    assert!(trailers.has(END_STREAM), "{trailers:?}");
    assert_eq!(field(&peer.decode(&trailers), "grpc-status"), Some("0"));
}

#[tokio::test]
async fn queued_messages_go_out_in_full_frames_across_their_boundaries() {
    use crate::server::responder::ResponseSink;

    const MESSAGES: usize = 6;
    let text = "y".repeat(20_000);
    let (queued_tx, queued_rx) = mpsc::channel();
    let sent = text.clone();
    let service = Service::builder("test.Burst")
        .blocking_server_streaming(
            "Burst",
            move |_: Request<String>, mut sink: ResponseSink<String>| {
                for _ in 0..MESSAGES {
                    sink.send(sent.clone())?;
                }
                queued_tx.send(()).unwrap();
                Ok(())
            },
        )
        .build();
    let (_runtime, shared) = server(Server::builder().add_service(service));
    // No window for the stream until every message is queued.
    let mut peer = connect(&shared, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    peer.headers(1, &request("/test.Burst/Burst"), false).await;
    peer.write(&frame(DATA, END_STREAM, 1, &message("go")))
        .await;
    let headers = next_call_frame(&mut peer).await;
    assert_eq!(headers.kind, HEADERS, "{headers:?}");
    tokio::task::spawn_blocking(move || queued_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the handler queued its messages");
    let window = (1u32 << 20).to_be_bytes();
    peer.write(&frame(WINDOW_UPDATE, 0, 0, &window)).await;
    peer.write(&frame(WINDOW_UPDATE, 0, 1, &window)).await;

    // Each message is 20,005 bytes, which 16 KiB frames (the peer's, by default) do not
    // divide: every frame but the last is full all the same.
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let next = next_call_frame(&mut peer).await;
        if next.kind == HEADERS {
            assert!(next.has(END_STREAM), "{next:?}");
            assert_eq!(field(&peer.decode(&next), "grpc-status"), Some("0"));
            break;
        }
        assert_eq!(next.kind, DATA, "{next:?}");
        sizes.push(next.payload.len());
        data.extend_from_slice(&next.payload);
    }
    let one = message(&text);
    assert_eq!(
        data,
        one.repeat(MESSAGES),
        "the messages, whole and in order"
    );
    let (last, full) = sizes.split_last().expect("data frames");
    assert!(full.iter().all(|&n| n == 16_384), "frame sizes {sizes:?}");
    assert_eq!(full.len() * 16_384 + last, one.len() * MESSAGES);
}

#[tokio::test]
async fn a_reset_cancels_the_handler_and_ends_the_stream_silently() {
    let (seen_tx, seen_rx) = mpsc::channel::<String>();
    let service = Service::builder("test.Sum")
        .blocking_client_streaming("Sum", move |request: Request<BlockingStreaming<String>>| {
            for message in request.into_inner() {
                match message {
                    Ok(text) => {
                        let _ = seen_tx.send(text);
                    }
                    Err(status) => {
                        let _ = seen_tx.send(format!("ended: {:?}", status.code()));
                        return Err(status);
                    }
                }
            }
            Ok::<_, Status>(Response::new(String::new()))
        })
        .build();
    let (_runtime, shared) = server(Server::builder().add_service(service));
    let mut peer = connect(&shared, &[]).await;
    peer.headers(1, &request("/test.Sum/Sum"), false).await;
    peer.write(&frame(DATA, 0, 1, &message("first"))).await;
    let wait = Duration::from_secs(30);
    assert_eq!(seen_rx.recv_timeout(wait).unwrap(), "first");
    // CANCEL (0x8).
    peer.write(&frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()))
        .await;
    assert_eq!(seen_rx.recv_timeout(wait).unwrap(), "ended: Cancelled");
    // Nothing is sent on the reset stream: the next frame answers a PING.
    peer.write(&frame(PING, 0, 0, b"pingpong")).await;
    let pong = next_call_frame(&mut peer).await;
    assert_eq!((pong.kind, pong.has(ACK)), (PING, true), "{pong:?}");
}

#[tokio::test]
async fn draining_sends_goaway_and_lets_the_open_call_finish() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let service = Service::builder("test.Echo")
        .blocking_unary("Echo", move |request: Request<String>| {
            let _ = started_tx.send(());
            let _ = release_rx.lock().unwrap().recv();
            Ok::<_, Status>(Response::new(request.into_inner()))
        })
        .build();
    let (_runtime, shared) = server(Server::builder().add_service(service));
    let mut peer = connect(&shared, &[]).await;
    peer.headers(1, &request("/test.Echo/Echo"), false).await;
    peer.write(&frame(DATA, END_STREAM, 1, &message("in flight")))
        .await;
    started_rx.recv_timeout(Duration::from_secs(30)).unwrap();

    shared.phase.send_replace(Phase::Draining);
    let goaway = next_call_frame(&mut peer).await;
    assert_eq!(goaway.kind, GOAWAY, "{goaway:?}");
    let error = u32::from_be_bytes(goaway.payload[4..8].try_into().unwrap());
    assert_eq!(error, 0, "NO_ERROR");
    // The call in flight still completes.
    release_tx.send(()).unwrap();
    let mut status = None;
    while status.is_none() {
        let frame = next_call_frame(&mut peer).await;
        if frame.kind == HEADERS && frame.has(END_STREAM) {
            status = field(&peer.decode(&frame), "grpc-status").map(str::to_owned);
        } else if frame.kind == HEADERS {
            peer.decode(&frame);
        }
    }
    assert_eq!(status.as_deref(), Some("0"));
}

#[tokio::test]
async fn keepalive_pings_a_quiet_client_and_closes_when_a_ping_goes_unanswered() {
    let time = Duration::from_millis(200);
    let (_runtime, shared) = server(
        echo()
            .keepalive_time(time)
            .keepalive_timeout(Duration::from_millis(300)),
    );
    let mut peer = connect(&shared, &[]).await;
    // Quiet after its preface and settings: the server pings.
    let ping = next_call_frame(&mut peer).await;
    assert_eq!((ping.kind, ping.has(ACK)), (PING, false), "{ping:?}");
    peer.write(&frame(PING, ACK, 0, &ping.payload)).await;
    let answered = Instant::now();
    // Answered, so the connection stays; the next ping comes only after another quiet
    // keepalive time.
    let again = next_call_frame(&mut peer).await;
    assert_eq!((again.kind, again.has(ACK)), (PING, false), "{again:?}");
    assert!(
        answered.elapsed() >= time,
        "pinged again after {:?}",
        answered.elapsed()
    );
    // Unanswered: the server gives the connection up.
    while let Some(frame) = peer.next().await {
        assert!(
            matches!(frame.kind, GOAWAY | SETTINGS | WINDOW_UPDATE),
            "{frame:?}"
        );
    }
}

#[tokio::test]
async fn a_stream_nobody_reads_holds_what_its_budgets_allow_and_no_more() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::limits;
    use crate::server::responder::ResponseSink;

    const SIZE: usize = 16 * 1024;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let service = Service::builder("test.Flood")
        .blocking_server_streaming(
            "Flood",
            move |_: Request<String>, mut sink: ResponseSink<String>| {
                let text = "x".repeat(SIZE);
                // Far more than the budgets hold; a send fails once the call is gone.
                for _ in 0..(16 << 20) / SIZE {
                    sink.send(text.clone())?;
                    counter.fetch_add(SIZE, Ordering::SeqCst);
                }
                Ok(())
            },
        )
        .build();
    let (_runtime, shared) = server(Server::builder().add_service(service));
    // Windows as large as HTTP/2 allows: flow control holds nothing back, so what the
    // server holds is up to its own budgets.
    let mut peer = connect(&shared, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0x7fff_ffff)]).await;
    peer.write(&frame(
        WINDOW_UPDATE,
        0,
        0,
        &(0x7fff_ffff - 65_535u32).to_be_bytes(),
    ))
    .await;
    peer.headers(1, &request("/test.Flood/Flood"), false).await;
    peer.write(&frame(DATA, END_STREAM, 1, &message("go")))
        .await;
    // From here on the peer reads nothing: the pipe (64 KiB) fills, then the server's
    // gathered write, h2's send buffer for the stream, and the call's outbound queue. The
    // handler fills the queue at least; how much got past it by then depends on how its
    // sends and the poller interleaved (a blocked sender is woken only once the queue
    // drains to a quarter, which it cannot here). Unloaded, 752-832 KiB.
    let pushed = limits::SERVER_OUTBOUND_QUEUE;
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.load(Ordering::SeqCst) < pushed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        accepted.load(Ordering::SeqCst) >= pushed,
        "the handler sent only {} bytes",
        accepted.load(Ordering::SeqCst)
    );
    // Until the handler makes no more progress (a pause on a loaded machine ends this
    // early, which can only make the count smaller).
    for _ in 0..20 {
        let before = accepted.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if accepted.load(Ordering::SeqCst) == before {
            break;
        }
    }
    // ...and no further than what can hold sent bytes: the pipe, the gathered write, h2's
    // frame buffer and its send buffer for the stream, the message the poller is sending
    // with the one it looked at behind it and the tail of less than a frame it kept to go
    // out with that one, and the queue. (With h2's default send buffer, 400 KiB, 944-1008
    // KiB got through, above this bound.)
    let bound = 64 * 1024
        + limits::WRITE_GATHER
        + 2 * SIZE
        + limits::SERVER_SEND_BUFFER
        + 2 * SIZE
        + 16 * 1024
        + limits::SERVER_OUTBOUND_QUEUE;
    let sent = accepted.load(Ordering::SeqCst);
    assert!(
        sent <= bound,
        "{sent} bytes accepted, more than the {bound} budgeted"
    );
    drop(peer);
}
/// What a connection's task holds for its whole life is its connection (h2's and ours)
/// and little else: the handshakes (TLS's and HTTP/2's) and the rarely taken HTTP/1.1
/// path are boxed while they run, so that an idle connection does not carry them. (Inline,
/// with what the connection's fields were built from kept beside it, the task of a
/// plaintext connection was 5 KB.)
#[test]
fn a_connection_task_holds_its_connection_and_little_else() {
    let (runtime, shared) = server(echo());
    let sockets = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    sockets.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let guard = shared.admit_connection().unwrap();
        let task = super::connection::serve_connection(
            shared.clone(),
            crate::transport::Io::Tcp(tcp),
            PeerInfo::default(),
            guard,
        );
        let conn = super::connection::connection_size();
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= conn + 1024,
            "a connection's task is {size} bytes, its connection {conn}"
        );
    });
    drop(runtime);
}
