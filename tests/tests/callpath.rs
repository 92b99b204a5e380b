//! The call path under hostile or careless use: what a peer or a user can make the
//! runtime hold (memory, threads, connections), where user code runs, and edge cases of
//! its arithmetic and lifecycle.
//!
//! Every test here runs alone (they share a lock) and checks that the process's open file
//! descriptors and threads, and the server's live calls and connections, return to their
//! baseline afterwards, measured from `/proc/self`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle, Service};
use rsgrpc::{
    BlockingStreaming, Channel, Code, Request, Response, ResponseSink, Runtime, Status, Streaming,
};
use rsgrpc_tests::{
    BIDI, EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, async_echo, blocking_echo, path,
    req,
};

const SVC: &str = "test.Echo";

// ---------------------------------------------------------------------------------------
// Support: serialisation, baselines, process measurements.

// Tests in this binary measure the whole process, so they run one at a time: each holds
// the leak check (`rsgrpc_tests::leak::check`), which serialises them and checks
// threads, file descriptors and live calls and connections when the test ends.

use rsgrpc_tests::leak::{Snapshot, rss, thread_names};

fn threads_named(prefix: &str) -> usize {
    thread_names()
        .iter()
        .filter(|n| n.starts_with(prefix))
        .count()
}

use rsgrpc_tests::eventually;

/// A runtime whose threads are named `{prefix}-...`, so a test can count its own.
fn runtime(
    prefix: &str,
    configure: impl FnOnce(rsgrpc::RuntimeBuilder) -> rsgrpc::RuntimeBuilder,
) -> Runtime {
    configure(Runtime::builder().thread_name_prefix(prefix))
        .build()
        .unwrap()
}

fn serve(runtime: &Runtime, service: Service) -> ServerHandle {
    Server::builder()
        .runtime(runtime)
        .add_service(service)
        .bind("127.0.0.1:0")
        .unwrap()
}

fn channel(runtime: &Runtime, server: &ServerHandle) -> Channel {
    Channel::builder(format!("http://{}", server.local_addr()))
        .runtime(runtime)
        .connect_lazy()
        .unwrap()
}

/// Established TCP connections to or from `port` (both ends, if both are ours).
fn tcp_connections(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port_of =
                |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
            // State 01 is ESTABLISHED.
            if fields[3] == "01" && (port_of(fields[1]) == port || port_of(fields[2]) == port) {
                n += 1;
            }
        }
    }
    n
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("callpath-tokio")
        .enable_all()
        .build()
        .unwrap()
}

/// Lets handlers block until the test releases them.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut open = self.open.lock().unwrap();
        while !*open && Instant::now() < deadline {
            open = self
                .cv
                .wait_timeout(open, deadline - Instant::now())
                .unwrap()
                .0;
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

// ---------------------------------------------------------------------------------------
// 1. Channels close their connections.

#[test]
fn dropping_channels_closes_their_connections() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("chdrop", |b| b);
    let server = serve(&rt, blocking_echo(SVC, Probe::new()));
    let port = server.local_addr().port();
    // As a user who makes a client per request would.
    for i in 0..20 {
        let client = Client::new(channel(&rt, &server));
        let reply: Response<EchoResponse> = client
            .blocking_unary(path(SVC, UNARY), Request::new(req(&format!("c{i}"))))
            .unwrap();
        assert_eq!(reply.get_ref().message, format!("c{i}"));
    }
    assert!(
        eventually(|| server.open_connections() == 0 && tcp_connections(port) == 0),
        "{} connections still open at the server, {} sockets",
        server.open_connections(),
        tcp_connections(port)
    );
    assert_eq!(server.accepted_connections(), 20);
    drop(server);
    drop(rt);
    base.assert_back();
}

#[test]
fn closing_a_channel_lets_calls_in_flight_finish_and_refuses_new_ones() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("chclose", |b| b);
    let probe = Probe::new();
    let server = serve(&rt, blocking_echo(SVC, probe.clone()));
    let channel = channel(&rt, &server);
    let client = Client::new(channel.clone());
    let in_flight = {
        let client = client.clone();
        std::thread::spawn(move || {
            client.blocking_unary::<_, EchoResponse>(
                path(SVC, UNARY),
                Request::new(req("sleep:300:started:slow")),
            )
        })
    };
    assert!(probe.wait("started:slow", Duration::from_secs(20)));
    channel.close();
    let refused = client
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("late")))
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("closed"), "{refused:?}");
    let reply = in_flight.join().unwrap().unwrap();
    assert_eq!(reply.get_ref().message, "sleep:300:started:slow");
    assert!(eventually(|| server.open_connections() == 0));
    drop((client, channel, server, rt));
    base.assert_back();
}

// ---------------------------------------------------------------------------------------
// 2. HEADERS-only streams and the blocking worker pool.

/// Opens `streams` calls to `method` that send headers and never a body; returns what
/// keeps them open.
async fn headers_only(
    addr: SocketAddr,
    method: &str,
    streams: usize,
) -> (h2::client::SendRequest<Bytes>, Vec<h2::SendStream<Bytes>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut open = Vec::new();
    for _ in 0..streams {
        let request = http::Request::post(format!("http://{addr}{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let mut ready = send.clone().ready().await.unwrap();
        let (_response, stream) = ready.send_request(request, false).unwrap();
        open.push(stream);
    }
    (send, open)
}

#[test]
fn headers_only_streams_do_not_pin_blocking_workers() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("hdronly", |b| b.max_blocking_threads(8));
    let server = serve(&rt, blocking_echo(SVC, Probe::new()));
    let addr = server.local_addr();
    let tokio = tokio_rt();
    let _held: Vec<_> = (0..3)
        .map(|_| tokio.block_on(headers_only(addr, &format!("/{SVC}/{UNARY}"), 200)))
        .collect();
    assert!(
        eventually(|| server.active_calls() == 600),
        "{} calls open",
        server.active_calls()
    );
    // A legitimate call still gets a worker.
    let client = Client::new(channel(&rt, &server));
    let mut request = Request::new(req("legit"));
    request.set_timeout(Duration::from_secs(10));
    let reply: Response<EchoResponse> = client.blocking_unary(path(SVC, UNARY), request).unwrap();
    assert_eq!(reply.get_ref().message, "legit");
    // Pollers, executor threads, at most 8 workers and their monitor.
    let threads = threads_named("hdronly-");
    assert!(
        threads <= 1 + 2 + 8 + 1,
        "{threads} threads: {:?}",
        thread_names()
    );
    drop(_held);
    drop(tokio);
    assert!(
        eventually(|| server.active_calls() == 0),
        "{}",
        server.active_calls()
    );
    drop((client, server, rt));
    base.assert_back();
}

#[test]
fn blocking_calls_beyond_the_pool_and_its_queue_are_refused() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("refuse", |b| {
        b.max_blocking_threads(2).max_blocking_queue(2)
    });
    let probe = Probe::new();
    // All calls come over one connection: let it use the whole pool (by default one
    // connection gets a quarter of it, and its further calls wait instead).
    let server = Server::builder()
        .runtime(&rt)
        .add_service(blocking_echo(SVC, probe))
        .max_blocking_handlers_per_connection(100)
        .bind("127.0.0.1:0")
        .unwrap();
    let client = Client::new(channel(&rt, &server));
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut request = Request::new(req(&format!("sleep:2000:started:r{i}")));
                request.set_timeout(Duration::from_secs(30));
                client.blocking_unary::<_, EchoResponse>(path(SVC, UNARY), request)
            })
        })
        .collect();
    let results: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    // Two workers and two queued places: the rest is refused, not queued without limit.
    assert!(ok >= 2, "{results:?}");
    assert!(
        !refused.is_empty(),
        "nothing was refused: {ok} calls succeeded"
    );
    for status in refused {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    assert!(eventually(|| server.active_calls() == 0));
    drop((client, server, rt));
    base.assert_back();
}

// ---------------------------------------------------------------------------------------
// 3. Byte budgets: what a peer that sends without reading can make us hold.

const BIG: usize = 4 * 1024 * 1024 - 64;

fn big_request() -> EchoRequest {
    EchoRequest {
        payload: vec![7; BIG].into(),
        ..Default::default()
    }
}

/// A service whose streaming handlers never read their requests; they end when the call
/// is cancelled.
fn non_reading_service(async_handlers: bool) -> Service {
    let builder = Service::builder(SVC);
    if async_handlers {
        builder
            .bidi_streaming(
                BIDI,
                |request: Request<Streaming<EchoRequest>>| async move {
                    request.cancelled().await;
                    Err::<Response<futures::stream::Empty<Result<EchoResponse, Status>>>, _>(
                        Status::cancelled("gone"),
                    )
                },
            )
            .build()
    } else {
        builder
            .blocking_bidi_streaming(
                BIDI,
                |request: Request<BlockingStreaming<EchoRequest>>,
                 _sink: ResponseSink<EchoResponse>| {
                    let gate = Gate::default();
                    while !request.is_cancelled() {
                        gate.wait(Duration::from_millis(20));
                    }
                    Err(Status::cancelled("gone"))
                },
            )
            .build()
    }
}

/// Waits until `progress` stops moving (for a second), within a bounded time.
fn until_stalled(progress: &AtomicUsize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = progress.load(Ordering::SeqCst);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = progress.load(Ordering::SeqCst);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    last
}

#[test]
fn a_handler_that_does_not_read_holds_a_bounded_amount() {
    let _leaks = rsgrpc_tests::leak::check();
    for async_handlers in [false, true] {
        let base = Snapshot::take();
        let rt = runtime("noread", |b| b);
        let server = serve(&rt, non_reading_service(async_handlers));
        let client = Client::new(channel(&rt, &server));
        let before = rss();
        let produced = Arc::new(AtomicUsize::new(0));
        let tokio = tokio_rt();
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                let produced = produced.clone();
                tokio.spawn(async move {
                    // Messages are built only when the call asks for the next one.
                    let requests = futures::stream::iter(0..32).map(move |_| {
                        produced.fetch_add(1, Ordering::SeqCst);
                        big_request()
                    });
                    client
                        .bidi_streaming::<_, _, EchoResponse>(
                            path(SVC, BIDI),
                            Request::new(requests),
                        )
                        .await
                })
            })
            .collect();
        let sent = until_stalled(&produced);
        let grown = rss().saturating_sub(before);
        // Per stream: one message being sent, one queued, and the server holds at most
        // the windows. Unbounded buffering grew by about 32 messages per stream.
        assert!(
            grown < 160 << 20,
            "async handlers: {async_handlers}; grew {} MiB after {sent} messages were built",
            grown >> 20
        );
        assert!(
            sent < 4 * 8,
            "{sent} messages were built: nothing pushed back"
        );
        let threads = threads_named("noread-");
        assert!(threads <= 12, "{threads} threads: {:?}", thread_names());
        for call in calls {
            call.abort();
        }
        drop(tokio);
        assert!(
            eventually(|| server.active_calls() == 0),
            "{} calls left",
            server.active_calls()
        );
        drop((client, server, rt));
        base.assert_back();
    }
}

#[test]
fn a_client_that_does_not_read_a_server_stream_holds_a_bounded_amount() {
    let _leaks = rsgrpc_tests::leak::check();
    for async_handlers in [false, true] {
        let base = Snapshot::take();
        let rt = runtime("cnoread", |b| b);
        let service = if async_handlers {
            async_echo(SVC, Probe::new())
        } else {
            blocking_echo(SVC, Probe::new())
        };
        let server = serve(&rt, service);
        let client = Client::new(channel(&rt, &server));
        let before = rss();
        let streams: Vec<BlockingStreaming<EchoResponse>> = (0..4)
            .map(|_| {
                let request = EchoRequest {
                    count: 32,
                    response_size: BIG as u32,
                    ..Default::default()
                };
                client
                    .blocking_server_streaming(path(SVC, SERVER_STREAM), Request::new(request))
                    .unwrap()
                    .into_inner()
            })
            .collect();
        // Nothing reads the streams; give the server time to push what it can.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut peak = 0;
        while Instant::now() < deadline {
            peak = peak.max(rss().saturating_sub(before));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            peak < 160 << 20,
            "async handlers: {async_handlers}; grew {} MiB",
            peak >> 20
        );
        drop(streams);
        assert!(
            eventually(|| server.active_calls() == 0),
            "{}",
            server.active_calls()
        );
        drop((client, server, rt));
        base.assert_back();
    }
}

// ---------------------------------------------------------------------------------------
// 4. No user code on a poller thread.

/// Records the threads user code ran on.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, String)>>);

impl Seen {
    fn note(&self, what: &str) {
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        self.0.lock().unwrap().push((what.to_owned(), thread));
    }

    fn all(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }
}

/// Notes where it is dropped.
struct DropNote(Arc<Seen>, &'static str);

impl Drop for DropNote {
    fn drop(&mut self) {
        self.0.note(self.1);
    }
}

/// Each of the eight handler kinds notes its thread; the response streams and captured
/// values note where they are dropped.
fn noting_service(seen: &Arc<Seen>) -> Service {
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let (s5, s6, s7, s8) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let held = DropNote(seen.clone(), "drop of a handler's captured value");
    Service::builder(SVC)
        .unary("AsyncUnary", move |request: Request<EchoRequest>| {
            let seen = s1.clone();
            let _ = &held;
            async move {
                seen.note("async unary");
                Ok(Response::new(EchoResponse {
                    message: request.into_inner().message,
                    ..Default::default()
                }))
            }
        })
        .server_streaming(
            "AsyncServerStream",
            move |_request: Request<EchoRequest>| {
                let seen = s2.clone();
                async move {
                    seen.note("async server-streaming");
                    let note = DropNote(seen.clone(), "drop of a response stream");
                    let stream = futures::stream::iter(0..3).map(move |i| {
                        let _ = &note;
                        note.0.note("poll of a response stream");
                        Ok(EchoResponse {
                            index: i,
                            ..Default::default()
                        })
                    });
                    Ok(Response::new(stream))
                }
            },
        )
        .client_streaming(
            "AsyncClientStream",
            move |request: Request<Streaming<EchoRequest>>| {
                let seen = s3.clone();
                async move {
                    seen.note("async client-streaming");
                    let n = request.into_inner().count().await;
                    Ok(Response::new(EchoResponse {
                        index: n as u32,
                        ..Default::default()
                    }))
                }
            },
        )
        .bidi_streaming(
            "AsyncBidi",
            move |request: Request<Streaming<EchoRequest>>| {
                let seen = s4.clone();
                async move {
                    seen.note("async bidi");
                    let stream = request.into_inner().map(|r| {
                        r.map(|r| EchoResponse {
                            message: r.message,
                            ..Default::default()
                        })
                    });
                    Ok(Response::new(stream))
                }
            },
        )
        .blocking_unary("BlockingUnary", move |request: Request<EchoRequest>| {
            s5.note("blocking unary");
            Ok(Response::new(EchoResponse {
                message: request.into_inner().message,
                ..Default::default()
            }))
        })
        .blocking_server_streaming(
            "BlockingServerStream",
            move |_request: Request<EchoRequest>, mut sink: ResponseSink<EchoResponse>| {
                s6.note("blocking server-streaming");
                sink.send(EchoResponse::default())
            },
        )
        .blocking_client_streaming(
            "BlockingClientStream",
            move |request: Request<BlockingStreaming<EchoRequest>>| {
                s7.note("blocking client-streaming");
                let n = request.into_inner().count();
                Ok(Response::new(EchoResponse {
                    index: n as u32,
                    ..Default::default()
                }))
            },
        )
        .blocking_bidi_streaming(
            "BlockingBidi",
            move |request: Request<BlockingStreaming<EchoRequest>>,
                  mut sink: ResponseSink<EchoResponse>| {
                s8.note("blocking bidi");
                for r in request.into_inner() {
                    sink.send(EchoResponse {
                        message: r?.message,
                        ..Default::default()
                    })?;
                }
                Ok(())
            },
        )
        .build()
}

#[test]
fn no_user_code_runs_on_a_poller_thread() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    for with_hook in [false, true] {
        let rt = runtime("userpl", |b| b);
        let seen = Arc::new(Seen::default());
        let tokio = tokio_rt();
        let mut builder = Server::builder()
            .runtime(&rt)
            .add_service(noting_service(&seen));
        if with_hook {
            let handle = tokio.handle().clone();
            let hook_seen = seen.clone();
            builder = builder.spawn_with(move |future| {
                hook_seen.note("spawn hook");
                handle.spawn(future);
            });
        }
        let server = builder.bind("127.0.0.1:0").unwrap();
        let client = Client::new(channel(&rt, &server));
        let p = |m: &str| path(SVC, m);

        // Every kind, from the blocking client and from the async one.
        let _: Response<EchoResponse> = client
            .blocking_unary(p("AsyncUnary"), Request::new(req("a")))
            .unwrap();
        let _: Response<EchoResponse> = client
            .blocking_unary(p("BlockingUnary"), Request::new(req("b")))
            .unwrap();
        for method in ["AsyncServerStream", "BlockingServerStream"] {
            let stream = client
                .blocking_server_streaming::<_, EchoResponse>(p(method), Request::new(req("s")))
                .unwrap()
                .into_inner();
            assert!(stream.collect::<Result<Vec<_>, _>>().is_ok());
        }
        for method in ["AsyncClientStream", "BlockingClientStream"] {
            let reply: Response<EchoResponse> = client
                .blocking_client_streaming(p(method), Request::new(vec![req("1"), req("2")]))
                .unwrap();
            assert_eq!(reply.get_ref().index, 2);
        }
        for method in ["AsyncBidi", "BlockingBidi"] {
            let (mut tx, rx) = client
                .blocking_bidi_streaming::<EchoRequest, EchoResponse>(p(method), Request::new(()))
                .unwrap();
            tx.send(req("x")).unwrap();
            tx.finish();
            assert_eq!(rx.collect::<Result<Vec<_>, _>>().unwrap().len(), 1);
        }
        // The async client's request stream is user code too.
        let stream_seen = seen.clone();
        let requests = futures::stream::iter(0..2).map(move |_| {
            stream_seen.note("poll of a client request stream");
            req("q")
        });
        let reply: Response<EchoResponse> = futures::executor::block_on(
            client.client_streaming(p("AsyncClientStream"), Request::new(requests)),
        )
        .unwrap();
        assert_eq!(reply.get_ref().index, 2);

        server.shutdown(Duration::from_secs(10)).wait();
        drop((client, server));
        drop(rt);
        drop(tokio);
        assert!(eventually(|| seen
            .all()
            .iter()
            .any(|(what, _)| what == "drop of a handler's captured value")));
        let all = seen.all();
        let kinds: HashSet<&str> = all.iter().map(|(what, _)| what.as_str()).collect();
        for expected in [
            "async unary",
            "async server-streaming",
            "async client-streaming",
            "async bidi",
            "blocking unary",
            "blocking server-streaming",
            "blocking client-streaming",
            "blocking bidi",
            "poll of a response stream",
            "drop of a response stream",
            "poll of a client request stream",
        ] {
            assert!(kinds.contains(expected), "{expected} never ran: {all:?}");
        }
        if with_hook {
            assert!(kinds.contains("spawn hook"), "{all:?}");
        }
        let on_poller: Vec<_> = all
            .iter()
            .filter(|(_, thread)| thread.contains("-poller-"))
            .collect();
        assert!(
            on_poller.is_empty(),
            "user code ran on a poller: {on_poller:?}"
        );
    }
    base.assert_back();
}

#[test]
fn a_hook_that_looks_for_the_current_runtime_fails_the_call_not_the_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("badhook", |b| b);
    let server = Server::builder()
        .runtime(&rt)
        .add_service(async_echo(SVC, Probe::new()))
        .spawn_with(|future| {
            // There is no current tokio runtime on rsgrpc's threads: this panics.
            tokio::spawn(future);
        })
        .bind("127.0.0.1:0")
        .unwrap();
    let client = Client::new(channel(&rt, &server));
    for _ in 0..2 {
        let status = client
            .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("x")))
            .unwrap_err();
        assert_ne!(status.code(), Code::Ok);
    }
    assert!(eventually(|| server.active_calls() == 0));
    drop((client, server, rt));
    base.assert_back();
}

// ---------------------------------------------------------------------------------------
// 5. Blocking calls made from async code on the executor.

/// An async handler whose task is woken while its thread is blocked in a blocking call,
/// with a single executor thread: the blocking call needs the executor for the inner
/// handler, and the outer task must not be polled by the stand-in meanwhile.
#[test]
fn a_task_woken_while_blocked_on_the_single_executor_thread_does_not_hang() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("rewoken", |b| b.executor_threads(1));
    let inner = serve(&rt, async_echo("test.Inner", Probe::new()));
    let inner_client = Client::new(channel(&rt, &inner));
    let outer_service = Service::builder("test.Outer")
        .unary(UNARY, move |request: Request<EchoRequest>| {
            let client = inner_client.clone();
            async move {
                let (tx, mut rx) = futures::channel::oneshot::channel::<()>();
                // Leave our waker with the oneshot, and have it fire while we block.
                assert!(futures::poll!(&mut rx).is_pending());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    let _ = tx.send(());
                });
                let mut call = Request::new(EchoRequest {
                    message: "sleep:100".into(),
                    ..request.into_inner()
                });
                call.set_timeout(Duration::from_secs(20));
                let reply: Response<EchoResponse> =
                    client.blocking_unary(path("test.Inner", UNARY), call)?;
                let _ = rx.await;
                Ok::<_, Status>(reply)
            }
        })
        .build();
    let outer = serve(&rt, outer_service);
    let client = Client::new(channel(&rt, &outer));
    let started = Instant::now();
    let mut request = Request::new(req("x"));
    request.set_timeout(Duration::from_secs(20));
    let reply: Response<EchoResponse> = client
        .blocking_unary(path("test.Outer", UNARY), request)
        .unwrap();
    assert_eq!(reply.get_ref().message, "sleep:100");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop((client, outer, inner, rt));
    base.assert_back();
}

/// Time for `f`, the best of three.
fn best_of_three(mut f: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

/// Blocking stream operations from an executor thread cost about what they cost on a
/// plain thread when they do not block, and blocking ones borrow pooled threads.
#[test]
fn blocking_stream_operations_on_an_executor_thread_are_cheap() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    const N: usize = 2000;
    let rt = runtime("execsend", |b| b.executor_threads(1));
    let server = serve(&rt, blocking_echo(SVC, Probe::new()));
    let client = Client::new(channel(&rt, &server));
    let exchange = {
        let client = client.clone();
        move || {
            let (mut tx, rx) = client
                .blocking_bidi_streaming::<EchoRequest, EchoResponse>(
                    path(SVC, BIDI),
                    Request::new(()),
                )
                .unwrap();
            let reader = std::thread::spawn(move || rx.count());
            for _ in 0..N {
                tx.send(req("m")).unwrap();
            }
            tx.finish();
            assert_eq!(reader.join().unwrap(), N);
            let mut stream = client
                .blocking_server_streaming::<_, EchoResponse>(
                    path(SVC, SERVER_STREAM),
                    Request::new(EchoRequest {
                        count: N as u32,
                        ..Default::default()
                    }),
                )
                .unwrap()
                .into_inner();
            assert_eq!(stream.by_ref().count(), N);
        }
    };
    let plain = best_of_three(exchange.clone());
    // The same from inside an async handler, on the runtime's only executor thread.
    let on_executor = {
        let (tx, rx) = std::sync::mpsc::channel();
        let exchange = exchange.clone();
        let service = Service::builder("test.Driver")
            .unary(UNARY, move |_request: Request<EchoRequest>| {
                let exchange = exchange.clone();
                let tx = tx.clone();
                async move {
                    let _ = tx.send(best_of_three(exchange));
                    Ok::<_, Status>(Response::new(EchoResponse::default()))
                }
            })
            .build();
        let driver = serve(&rt, service);
        let driver_client = Client::new(channel(&rt, &driver));
        let _: Response<EchoResponse> = driver_client
            .blocking_unary(path("test.Driver", UNARY), Request::new(req("go")))
            .unwrap();
        let measured = rx.recv().unwrap();
        drop((driver_client, driver));
        measured
    };
    // Generous: a thread started per send or per message made this about 20 times slower.
    assert!(
        on_executor < plain * 5,
        "from an executor thread {on_executor:?}, from a plain thread {plain:?}"
    );
    let executor_threads = threads_named("execsend-exec");
    assert!(executor_threads <= 3, "{executor_threads} executor threads");
    drop((exchange, client, server, rt));
    base.assert_back();
}

// ---------------------------------------------------------------------------------------
// 6. Deadline arithmetic saturates.

#[test]
fn the_largest_timeouts_do_not_panic() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("maxtime", |b| b);
    let server = serve(&rt, async_echo(SVC, Probe::new()));
    let channel = Channel::builder(format!("http://{}", server.local_addr()))
        .runtime(&rt)
        .timeout(Duration::MAX)
        .backoff(Duration::from_secs(1), Duration::MAX)
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), Request::new(req("channel max")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "channel max");
    let mut request = Request::new(req("call max"));
    request.set_timeout(Duration::MAX);
    let reply: Response<EchoResponse> = client.blocking_unary(path(SVC, UNARY), request).unwrap();
    assert_eq!(reply.get_ref().message, "call max");
    server.shutdown(Duration::MAX).wait();
    drop((client, server, rt));
    base.assert_back();
}

// ---------------------------------------------------------------------------------------
// 8. Headers of a blocking server stream.

#[test]
fn blocking_server_streams_keep_their_headers() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let rt = runtime("hdrkeep", |b| b);
    let server = serve(&rt, blocking_echo(SVC, Probe::new()));
    let client = Client::new(channel(&rt, &server));
    let mut request = Request::new(EchoRequest {
        count: 2,
        ..req("h")
    });
    request.metadata_mut().insert("x-echo", "here").unwrap();
    let response = client
        .blocking_server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), request)
        .unwrap();
    assert_eq!(response.metadata().get("x-echo"), Some("here"));
    let mut stream = response.into_inner();
    assert_eq!(stream.headers().unwrap().get("x-echo"), Some("here"));
    assert_eq!(stream.by_ref().count(), 2);
    drop((stream, client, server, rt));
    base.assert_back();
}

// ---------------------------------------------------------------------------------------
// 9. Shutdown with user code still running.

#[test]
fn dropping_a_runtime_does_not_wait_for_a_handler_that_never_returns() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let gate = Arc::new(Gate::default());
    let started = Probe::new();
    let rt = runtime("stuckrt", |b| b);
    let handler_gate = gate.clone();
    let handler_started = started.clone();
    let service = Service::builder(SVC)
        .blocking_unary(UNARY, move |_request: Request<EchoRequest>| {
            handler_started.note("in");
            handler_gate.wait(Duration::from_secs(60));
            Ok(Response::new(EchoResponse::default()))
        })
        .build();
    let server = serve(&rt, service);
    let client = Client::new(channel(&rt, &server));
    let call = std::thread::spawn(move || {
        client.blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("x")))
    });
    assert!(started.wait("in", Duration::from_secs(20)));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(server);
        drop(rt);
        let _ = done_tx.send(());
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(20)).is_ok(),
        "dropping the runtime waited for a stuck handler"
    );
    // The call in flight fails instead of hanging.
    assert!(call.join().unwrap().is_err());
    gate.open();
    base.assert_back();
}

#[test]
fn a_task_woken_after_its_executor_stopped_is_not_dropped_on_a_poller() {
    let _leaks = rsgrpc_tests::leak::check();
    let base = Snapshot::take();
    let seen = Arc::new(Seen::default());
    // The slow server and the channel to it live on one runtime...
    let io_rt = runtime("wakeio", |b| b);
    let slow = serve(&io_rt, async_echo("test.Slow", Probe::new()));
    let slow_client = Client::new(channel(&io_rt, &slow));
    // ...and the handler that calls it on another, stopped while it waits.
    let handler_rt = runtime("wakeex", |b| b);
    let started = Probe::new();
    let (handler_seen, handler_started) = (seen.clone(), started.clone());
    let service = Service::builder(SVC)
        .unary(UNARY, move |_request: Request<EchoRequest>| {
            let client = slow_client.clone();
            let note = DropNote(handler_seen.clone(), "drop of an abandoned handler");
            let started = handler_started.clone();
            async move {
                let _note = note;
                started.note("waiting");
                let reply: Response<EchoResponse> = client
                    .unary(path("test.Slow", UNARY), Request::new(req("sleep:300")))
                    .await?;
                Ok::<_, Status>(reply)
            }
        })
        .build();
    let server = serve(&handler_rt, service);
    let client = Client::new(channel(&io_rt, &server));
    let call = std::thread::spawn(move || {
        client.blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("x")))
    });
    assert!(started.wait("waiting", Duration::from_secs(20)));
    drop(server);
    drop(handler_rt);
    assert!(call.join().unwrap().is_err());
    // The slow reply arrives on io_rt's poller, which wakes the abandoned task.
    assert!(
        eventually(|| !seen.all().is_empty()),
        "the handler was never dropped"
    );
    let all = seen.all();
    assert!(
        all.iter().all(|(_, thread)| !thread.contains("-poller-")),
        "{all:?}"
    );
    drop((slow, io_rt));
    base.assert_back();
}
