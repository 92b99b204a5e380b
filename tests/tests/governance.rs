//! Resource governance: what one hostile peer can make a server (or a client) hold, and
//! that other peers keep being served meanwhile. Each attack is written by hand over raw
//! HTTP/2 (or an h2 server for the client side), against handlers of both flavours, and
//! checks the bound the runtime's design notes give (`rsgrpc::design`, "Budgets").
//!
//! Every test runs under the leak check: threads, file descriptors and live calls and
//! connections come back to their baseline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prost::Message;
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerBuilder, ServerHandle, Service};
use rsgrpc::{
    BlockingStreaming, Channel, Request, Response, ResponseSink, Runtime, Status, Streaming,
};
use rsgrpc_tests::leak::{self, rss};
use rsgrpc_tests::raw::{self, RawConn};
use rsgrpc_tests::{
    EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, async_echo, blocking_echo, path, req,
};

const SVC: &str = "test.Echo";
const HOLD: &str = "test.Hold";
const MIB: usize = 1 << 20;
const WAIT: Duration = Duration::from_secs(20);

use rsgrpc_tests::{FLAVOURS, Flavour};

/// A client-streaming method `test.Hold/Take` whose handler never reads its requests and
/// returns when its call is cancelled, and the echo service beside it.
fn services(flavour: Flavour) -> (Service, Service) {
    let hold = match flavour {
        Flavour::Blocking => Service::builder(HOLD)
            .blocking_client_streaming(
                "Take",
                |request: Request<BlockingStreaming<EchoRequest>>| {
                    // Bounded: the test ends the call long before.
                    let until = Instant::now() + Duration::from_secs(60);
                    while !request.is_cancelled() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err::<Response<EchoResponse>, _>(Status::cancelled("held"))
                },
            )
            .build(),
        Flavour::Async => Service::builder(HOLD)
            .client_streaming(
                "Take",
                |request: Request<Streaming<EchoRequest>>| async move {
                    request.cancelled().await;
                    Err::<Response<EchoResponse>, _>(Status::cancelled("held"))
                },
            )
            .build(),
    };
    let echo = match flavour {
        Flavour::Blocking => blocking_echo(SVC, Probe::new()),
        Flavour::Async => async_echo(SVC, Probe::new()),
    };
    (hold, echo)
}

fn runtime(prefix: &str) -> Runtime {
    Runtime::builder()
        .thread_name_prefix(prefix)
        .build()
        .unwrap()
}

fn serve(
    rt: &Runtime,
    flavour: Flavour,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> ServerHandle {
    let (hold, echo) = services(flavour);
    configure(
        Server::builder()
            .runtime(rt)
            .add_service(hold)
            .add_service(echo),
    )
    .bind("127.0.0.1:0")
    .unwrap()
}

fn client(rt: &Runtime, addr: SocketAddr) -> Client {
    Client::new(
        Channel::builder(format!("http://{addr}"))
            .runtime(rt)
            .connect_lazy()
            .unwrap(),
    )
}

/// One unary echo call, blocking, with a generous deadline.
fn echo(client: &Client, message: &str) -> Result<(), Status> {
    let mut request = Request::new(req(message));
    request.set_timeout(WAIT);
    let reply: Response<EchoResponse> = client.blocking_unary(path(SVC, UNARY), request)?;
    if reply.get_ref().message != message {
        return Err(Status::internal(format!("wrong echo: {reply:?}")));
    }
    Ok(())
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    leak::thread_names()
        .iter()
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Sends `frame_payload` as DATA frames on `stream` as fast as the server's flow control
/// allows, until the server has granted no new credit for `stall` (or `limit` passed);
/// returns the payload bytes sent. A client that respects flow control can send no more
/// than the server gives credit for.
fn pour(
    conn: &mut RawConn,
    stream: u32,
    frame_payload: &[u8],
    stall: Duration,
    limit: Duration,
) -> u64 {
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut last_progress = Instant::now();
    while started.elapsed() < limit && last_progress.elapsed() < stall {
        let t = conn.transcript();
        if t.closed {
            break;
        }
        let initial = u64::from(t.initial_window.unwrap_or(65_535));
        let stream_credit = initial + t.credit.get(&stream).copied().unwrap_or(0);
        let conn_credit = 65_535 + t.credit.get(&0).copied().unwrap_or(0);
        let room = stream_credit.min(conn_credit).saturating_sub(sent);
        let frames = (room / frame_payload.len() as u64).min(64) as usize;
        if frames == 0 {
            // Wait for a WINDOW_UPDATE (or the stall bound).
            let before = (t.credit.get(&stream).copied(), t.credit.get(&0).copied());
            conn.wait_for(Duration::from_millis(50), |t| {
                (t.credit.get(&stream).copied(), t.credit.get(&0).copied()) != before || t.closed
            });
            continue;
        }
        let batch = std::iter::repeat_n(raw::data(stream, false, frame_payload), frames);
        if conn.send_many(batch) < frames {
            break;
        }
        sent += (frames * frame_payload.len()) as u64;
        last_progress = Instant::now();
    }
    sent
}

/// 16,380 bytes of back-to-back empty gRPC messages (5 bytes each): one DATA frame's worth.
fn empty_messages() -> Vec<u8> {
    std::iter::repeat_n(raw::grpc_message(false, &[]), 16_380 / 5)
        .flatten()
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Empty messages weigh what they cost.

/// A client that sends back-to-back empty messages to a handler that does not read them,
/// respecting flow control, can make the server take in no more than about the stream's
/// window: each queued message is weighed with its entry (not as zero bytes), so credit
/// stops going back once the handler's queue is full. Before, every empty message earned
/// its credit back at once and 24 million of them grew the server to 2.5 GiB.
#[test]
fn empty_messages_to_a_handler_that_does_not_read_are_bounded_by_the_window() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let rt = runtime("gov-empty");
        let server = serve(&rt, flavour, |b| b);
        let healthy = client(&rt, server.local_addr());
        echo(&healthy, "before").unwrap();
        let rss_before = rss();
        let mut conn = RawConn::connect(server.local_addr());
        let block = raw::request_block(&format!("/{HOLD}/Take"), &[]);
        conn.send(&raw::headers(1, false, &block)).unwrap();
        let sent = pour(
            &mut conn,
            1,
            &empty_messages(),
            Duration::from_secs(1),
            Duration::from_secs(10),
        );
        let window = 1024 * 1024;
        assert!(
            sent < 2 * window,
            "{flavour:?}: the server took {} KiB of empty messages (window {} KiB)",
            sent >> 10,
            window >> 10
        );
        // What it holds is charged to its quota: the window at wire size, the handler's
        // queue budget and the connection's own cost.
        let used = server.memory_used();
        assert!(used < 4 * MIB, "{flavour:?}: {used} bytes held");
        let grown = rss().saturating_sub(rss_before);
        assert!(grown < 64 * MIB, "{flavour:?}: grew {} MiB", grown >> 20);
        // The server is fine: another connection is served.
        echo(&healthy, "during").unwrap();
        drop(conn);
        assert!(
            leak::eventually_within(WAIT, || server.active_calls() == 0),
            "{flavour:?}: {} calls left",
            server.active_calls()
        );
        assert!(
            leak::eventually_within(WAIT, || server.memory_used() < 256 * 1024),
            "{flavour:?}: {} bytes still charged",
            server.memory_used()
        );
        drop((healthy, server, rt));
    }
}

/// The same from a hostile server: it streams empty messages to a client that holds the
/// response stream without reading (both client flavours). The client takes in about
/// its stream window and no more.
#[test]
fn empty_messages_to_a_client_that_does_not_read_are_bounded_by_the_window() {
    let _leaks = leak::check();
    for blocking_client in [true, false] {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gov-h2srv")
            .enable_all()
            .build()
            .unwrap();
        let listener = tokio
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(tokio::sync::Notify::new());
        let server = {
            let (sent, stop) = (sent.clone(), stop.clone());
            tokio.spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut h2 = h2::server::handshake(tcp).await.unwrap();
                let (request, mut respond) = h2.accept().await.unwrap().unwrap();
                drop(request);
                tokio::spawn(async move {
                    // Drive the connection (it must keep reading for WINDOW_UPDATEs).
                    while let Some(Ok(_)) = h2.accept().await {}
                });
                let mut headers = http::Response::new(());
                headers
                    .headers_mut()
                    .insert("content-type", "application/grpc".parse().unwrap());
                let mut stream = respond.send_response(headers, false).unwrap();
                let chunk = bytes::Bytes::from(empty_messages());
                let pour = async {
                    loop {
                        stream.reserve_capacity(chunk.len());
                        match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                            Some(Ok(n)) if n >= chunk.len() => {
                                if stream.send_data(chunk.clone(), false).is_err() {
                                    return;
                                }
                                sent.fetch_add(chunk.len(), Ordering::AcqRel);
                            }
                            Some(Ok(_)) => {}
                            _ => return,
                        }
                    }
                };
                tokio::select! {
                    () = pour => {}
                    () = stop.notified() => {}
                }
            })
        };
        let rt = runtime("gov-cempty");
        let client = client(&rt, addr);
        let request = Request::new(req("pour"));
        let held: Box<dyn std::any::Any> = if blocking_client {
            let response = client
                .blocking_server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), request)
                .unwrap();
            Box::new(response)
        } else {
            let response = futures::executor::block_on(
                client.server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), request),
            )
            .unwrap();
            Box::new(response)
        };
        // Wait until the server stops making progress (bounded).
        let mut last = 0;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = sent.load(Ordering::Acquire);
            if now == last || Instant::now() > until {
                break;
            }
            last = now;
        }
        let window = 1024 * 1024;
        let sent = sent.load(Ordering::Acquire);
        assert!(
            sent < 2 * window,
            "blocking client {blocking_client}: the server sent {} KiB into a stream nobody reads",
            sent >> 10
        );
        drop(held);
        stop.notify_one();
        let _ = tokio.block_on(server);
        drop((client, rt));
        drop(tokio);
    }
}

// ---------------------------------------------------------------------------------------
// 2. A total across calls: the memory quotas.

/// Many connections whose clients never read (stream window 0) open many async
/// server-streaming calls of 64 KiB messages: the server holds no more than its memory
/// quota (each connection no more than its own), refuses new streams on a connection
/// that has used up its quota, and keeps serving a light connection meanwhile. Before,
/// each call held about 1 MiB whatever the total.
#[test]
fn the_memory_quota_bounds_what_stalled_readers_make_the_server_hold() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let rt = runtime("gov-quota");
        let quota = 24 * MIB;
        let per_connection = 4 * MIB;
        let server = serve(&rt, flavour, |b| {
            b.memory_quota(quota)
                .connection_memory_quota(per_connection)
        });
        let healthy = client(&rt, server.local_addr());
        echo(&healthy, "before").unwrap();
        let rss_before = rss();
        let request = EchoRequest {
            count: 1_000_000,
            response_size: 64 * 1024,
            ..Default::default()
        }
        .encode_to_vec();
        let block = raw::request_block(&format!("/{SVC}/{SERVER_STREAM}"), &[]);
        let mut conns: Vec<RawConn> = (0..8)
            .map(|_| RawConn::connect_with(server.local_addr(), &[(0x4, 0)]))
            .collect();
        for conn in &mut conns {
            let frames = (0..48u32).flat_map(|i| {
                [
                    raw::headers(2 * i + 1, false, &block),
                    raw::data(2 * i + 1, true, &raw::grpc_message(false, &request)),
                ]
            });
            conn.send_many(frames);
        }
        // Wait until what the server holds stops growing (bounded).
        let mut last = 0;
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = server.memory_used();
            if (now == last && now > 0) || Instant::now() > until {
                break;
            }
            last = now;
        }
        let used = server.memory_used();
        // Senders wait once a quota is used up; a message already being queued by each
        // executor or worker thread may still land.
        assert!(
            used <= quota + 4 * MIB,
            "{flavour:?}: {} MiB held, quota {} MiB",
            used >> 20,
            quota >> 20
        );
        assert!(
            used >= quota / 2,
            "{flavour:?}: only {used} bytes held: no pressure"
        );
        let grown = rss().saturating_sub(rss_before);
        assert!(
            grown < quota + 48 * MIB,
            "{flavour:?}: grew {} MiB",
            grown >> 20
        );
        // A connection over its quota is refused new streams...
        let conn = &mut conns[0];
        conn.send_many([
            raw::headers(201, false, &block),
            raw::data(201, true, &raw::grpc_message(false, &request)),
        ]);
        let t = conn.wait_for(WAIT, |t| !t.reset_codes(201).is_empty() || t.closed);
        assert_eq!(
            t.reset_codes(201),
            vec![raw::REFUSED_STREAM],
            "{flavour:?}: {t:?}"
        );
        // ... while a light one is served.
        echo(&healthy, "during").unwrap();
        drop(conns);
        assert!(
            leak::eventually_within(WAIT, || server.active_calls() == 0),
            "{flavour:?}: {} calls left",
            server.active_calls()
        );
        assert!(
            leak::eventually_within(WAIT, || server.memory_used() < 256 * 1024),
            "{flavour:?}: {} bytes still charged",
            server.memory_used()
        );
        drop((healthy, server, rt));
    }
}

// ---------------------------------------------------------------------------------------
// 3. A stalled reader does not pin every blocking worker.

/// A blocking server-streaming handler that sends 16 KiB messages until its call ends.
fn blocking_streamer() -> Service {
    Service::builder("test.Stream")
        .blocking_server_streaming(
            "Many",
            |_request: Request<EchoRequest>, mut sink: ResponseSink<EchoResponse>| {
                for index in 0..100_000 {
                    sink.send(EchoResponse {
                        index,
                        payload: vec![7; 16 * 1024].into(),
                        ..Default::default()
                    })?;
                }
                Ok(())
            },
        )
        .build()
}

/// One connection whose client never reads opens 256 calls to a blocking handler that
/// sends until it blocks: the connection holds at most its share of the workers, a
/// blocking call on another connection is answered, and handlers blocked in a send are
/// released by their deadline though the peer stays. Before, all 256 workers blocked and
/// the other connection's calls timed out.
#[test]
fn a_stalled_reader_holds_only_its_share_of_the_blocking_workers() {
    let _leaks = leak::check();
    let rt = Runtime::builder()
        .thread_name_prefix("gov-share")
        .max_blocking_threads(32)
        .build()
        .unwrap();
    let share = 8;
    let server = Server::builder()
        .runtime(&rt)
        .add_service(blocking_streamer())
        .add_service(blocking_echo(SVC, Probe::new()))
        .max_blocking_handlers_per_connection(share)
        .bind("127.0.0.1:0")
        .unwrap();
    let healthy = client(&rt, server.local_addr());
    echo(&healthy, "before").unwrap();
    let request = raw::grpc_message(false, &EchoRequest::default().encode_to_vec());
    let mut attacker = RawConn::connect_with(server.local_addr(), &[(0x4, 0)]);
    // Half the calls without a deadline, half with one of a second.
    let plain = raw::request_block("/test.Stream/Many", &[]);
    let timed = raw::request_block("/test.Stream/Many", &[("grpc-timeout", b"1S")]);
    let frames = (0..256u32).flat_map(|i| {
        let block = if i % 2 == 0 { &plain } else { &timed };
        [
            raw::headers(2 * i + 1, false, block),
            raw::data(2 * i + 1, true, &request),
        ]
    });
    attacker.send_many(frames);
    assert!(
        leak::eventually_within(WAIT, || server.active_calls() >= 200),
        "{} calls",
        server.active_calls()
    );
    // A legitimate blocking call on another connection is answered.
    let started = Instant::now();
    echo(&healthy, "legit").unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the legit call took {took:?}"
    );
    let workers = threads_named("gov-share-worke");
    assert!(
        workers <= share + 4,
        "{workers} worker threads for a connection whose share is {share}: {:?}",
        leak::thread_names()
    );
    // The calls with a deadline end by it, their workers released: only the others are
    // left, held within the share.
    assert!(
        leak::eventually_within(WAIT, || server.active_calls() == 128),
        "{} calls left (128 without a deadline)",
        server.active_calls()
    );
    let t = attacker.transcript();
    assert!(!t.closed, "the attacker's connection was closed: {t:?}");
    echo(&healthy, "after the deadlines").unwrap();
    drop(attacker);
    assert!(
        leak::eventually_within(WAIT, || server.active_calls() == 0),
        "{} calls left",
        server.active_calls()
    );
    drop((healthy, server, rt));
}

// ---------------------------------------------------------------------------------------
// 4. Idle connections do not lock others out.

/// A peer opens more connections than `max_connections` and sends nothing more after its
/// preface: a new client is still served, because the connection idle the longest is
/// closed (GOAWAY) to make room. Before, every new connection was closed at accept.
#[test]
fn idle_connections_at_the_cap_make_room_for_new_ones() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let rt = runtime("gov-idle");
        let cap = 16;
        let server = serve(&rt, flavour, |b| b.max_connections(cap));
        let idle: Vec<RawConn> = (0..cap + 6)
            .map(|_| RawConn::connect(server.local_addr()))
            .collect();
        assert!(
            leak::eventually_within(WAIT, || server.open_connections() <= cap),
            "{flavour:?}: {} connections open, cap {cap}",
            server.open_connections()
        );
        // The oldest were sent away politely.
        let closed = || -> Vec<_> {
            idle.iter()
                .map(|c| c.transcript())
                .filter(|t| t.closed)
                .collect()
        };
        assert!(
            leak::eventually_within(WAIT, || closed().len() >= 6),
            "{flavour:?}: {} closed",
            closed().len()
        );
        let closed = closed();
        for t in &closed {
            assert_eq!(t.goaway_code(), Some(0), "{flavour:?}: {t:?}");
        }
        // A new client gets in, and is served.
        let fresh = client(&rt, server.local_addr());
        echo(&fresh, "let me in").unwrap();
        assert!(
            server.open_connections() <= cap,
            "{}",
            server.open_connections()
        );
        drop(idle);
        drop((fresh, server, rt));
    }
}

/// At the cap with no idle connection (each has a call open), a new connection is
/// refused as before: the cap still holds.
#[test]
fn connections_with_calls_open_are_not_reclaimed() {
    let _leaks = leak::check();
    let rt = runtime("gov-busy");
    let cap = 4;
    let server = serve(&rt, Flavour::Async, |b| b.max_connections(cap));
    let block = raw::request_block(&format!("/{HOLD}/Take"), &[]);
    let busy: Vec<RawConn> = (0..cap)
        .map(|_| {
            let mut conn = RawConn::connect(server.local_addr());
            conn.send(&raw::headers(1, false, &block)).unwrap();
            conn
        })
        .collect();
    assert!(
        leak::eventually_within(WAIT, || server.active_calls() == cap),
        "{} calls",
        server.active_calls()
    );
    let fresh = client(&rt, server.local_addr());
    let status = echo(&fresh, "no room").unwrap_err();
    assert_eq!(status.code(), rsgrpc::Code::Unavailable, "{status:?}");
    assert!(busy.iter().all(|c| !c.transcript().closed));
    drop(busy);
    drop((fresh, server, rt));
}

// ---------------------------------------------------------------------------------------
// The arena: everything at once.

/// One peer runs the attacks above together (empty messages to a handler that does not
/// read, stalled readers of 64 KiB server streams over several connections, a stalled
/// reader of blocking streams, connections past the cap that stay idle) while a client of
/// each flavour calls on its own connection. The legitimate calls keep succeeding, most
/// of them quickly; the server holds no more than its quota; and threads, fds and live
/// calls return to their baseline afterwards (the leak check).
#[test]
fn the_arena_legitimate_clients_are_served_while_one_peer_attacks() {
    let _leaks = leak::check();
    let rt = Runtime::builder()
        .thread_name_prefix("arena")
        .max_blocking_threads(64)
        .build()
        .unwrap();
    let quota = 64 * MIB;
    let cap = 64;
    let (hold, echo_service) = services(Flavour::Async);
    let server = Server::builder()
        .runtime(&rt)
        .add_service(hold)
        .add_service(echo_service)
        .add_service(blocking_streamer())
        .memory_quota(quota)
        .connection_memory_quota(8 * MIB)
        .max_connections(cap)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.local_addr();
    let blocking_client = client(&rt, addr);
    let async_client = client(&rt, addr);
    echo(&blocking_client, "warm").unwrap();
    let rss_before = rss();
    let stop = Arc::new(AtomicBool::new(false));

    // The legitimate clients: one blocking, one async, each on its own connection.
    let legit = |blocking: bool, client: Client| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            for i in 0..100_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let message = format!("legit {i}");
                let started = Instant::now();
                let result = if blocking {
                    echo(&client, &message)
                } else {
                    let mut request = Request::new(req(&message));
                    request.set_timeout(WAIT);
                    futures::executor::block_on(
                        client.unary::<_, EchoResponse>(path(SVC, UNARY), request),
                    )
                    .map(drop)
                };
                match result {
                    Ok(()) => latencies.push(started.elapsed()),
                    Err(status) => failures.push(status),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (latencies, failures)
        })
    };
    let legit_blocking = legit(true, blocking_client.clone());
    let legit_async = legit(false, async_client.clone());

    let attacker: JoinHandle<()> = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Idle connections past the cap.
            let idle: Vec<RawConn> = (0..cap + 8).map(|_| RawConn::connect(addr)).collect();
            // Stalled readers of 64 KiB streams on four connections.
            let request = EchoRequest {
                count: 1_000_000,
                response_size: 64 * 1024,
                ..Default::default()
            }
            .encode_to_vec();
            let block = raw::request_block(&format!("/{SVC}/{SERVER_STREAM}"), &[]);
            let stalled: Vec<RawConn> = (0..4)
                .map(|_| {
                    let mut conn = RawConn::connect_with(addr, &[(0x4, 0)]);
                    conn.send_many((0..64u32).flat_map(|i| {
                        [
                            raw::headers(2 * i + 1, false, &block),
                            raw::data(2 * i + 1, true, &raw::grpc_message(false, &request)),
                        ]
                    }));
                    conn
                })
                .collect();
            // A stalled reader of blocking streams.
            let many = raw::request_block("/test.Stream/Many", &[]);
            let empty = raw::grpc_message(false, &EchoRequest::default().encode_to_vec());
            let mut blocking = RawConn::connect_with(addr, &[(0x4, 0)]);
            blocking.send_many((0..128u32).flat_map(|i| {
                [
                    raw::headers(2 * i + 1, false, &many),
                    raw::data(2 * i + 1, true, &empty),
                ]
            }));
            // Empty messages to a handler that does not read, until told to stop.
            let mut pourer = RawConn::connect(addr);
            pourer
                .send(&raw::headers(
                    1,
                    false,
                    &raw::request_block(&format!("/{HOLD}/Take"), &[]),
                ))
                .unwrap();
            let payload = empty_messages();
            while !stop.load(Ordering::Acquire) {
                pour(
                    &mut pourer,
                    1,
                    &payload,
                    Duration::from_millis(300),
                    Duration::from_secs(1),
                );
            }
            // The attacker leaves: its connections close here.
            drop((idle, stalled, blocking, pourer));
        })
    };

    // Let the attacks run for a while, watching what the server holds.
    let mut peak_used = 0;
    let mut peak_rss = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        peak_used = peak_used.max(server.memory_used());
        peak_rss = peak_rss.max(rss().saturating_sub(rss_before));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Release);
    attacker.join().unwrap();
    for (name, handle) in [("blocking", legit_blocking), ("async", legit_async)] {
        let (latencies, failures) = handle.join().unwrap();
        assert!(
            failures.is_empty(),
            "the {name} client failed {} calls: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
        assert!(
            latencies.len() >= 20,
            "the {name} client made {} calls",
            latencies.len()
        );
        let mut sorted = latencies.clone();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let p90 = sorted[sorted.len() * 9 / 10];
        println!(
            "{name} client: {} calls, median {median:?}, p90 {p90:?}, max {:?}",
            sorted.len(),
            sorted.last().unwrap()
        );
        assert!(
            median < Duration::from_millis(100),
            "{name} client: median {median:?}"
        );
    }
    println!(
        "server held at most {} MiB (quota {} MiB); process grew at most {} MiB",
        peak_used >> 20,
        quota >> 20,
        peak_rss >> 20
    );
    assert!(peak_used <= quota + 4 * MIB, "held {} MiB", peak_used >> 20);
    assert!(peak_rss < quota, "grew {} MiB", peak_rss >> 20);
    assert!(
        leak::eventually_within(WAIT, || server.active_calls() == 0),
        "{} calls left",
        server.active_calls()
    );
    drop((blocking_client, async_client, server, rt));
}
