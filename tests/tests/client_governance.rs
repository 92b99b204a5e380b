//! Client governance: how a client treats servers that misbehave or say little (a server
//! that never sends its SETTINGS, one that sends every connection away with GOAWAY),
//! deadlines that are already over when a call starts, async response streams whose call
//! ended, configuration at its extremes, and which threads do the runtime's background
//! work (no poller ever starts a thread).
//!
//! Each test states, in a comment, why it would fail against the runtime before these
//! behaviours were implemented.
//!
//! Every test runs under the leak check (`rsgrpc_tests::leak`) with a runtime of its own
//! (a distinctive thread-name prefix), dropped at its end: threads, file descriptors and
//! live calls and connections come back to their baseline. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use rsgrpc::channel::{Address, ConnectivityState, Resolver, ServiceConfig};
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle, Service};
use rsgrpc::{Channel, Code, Request, Response, Runtime, Status};
use rsgrpc_tests::leak;
use rsgrpc_tests::raw;
use rsgrpc_tests::{
    EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, blocking_echo, path, req,
};

const SVC: &str = "test.Echo";
/// A generous bound for anything that should happen "soon" on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

fn runtime(prefix: &str) -> Runtime {
    Runtime::builder()
        .thread_name_prefix(prefix)
        .build()
        .expect("build a runtime")
}

fn serve(rt: &Runtime, service: Service) -> ServerHandle {
    Server::builder()
        .runtime(rt)
        .add_service(service)
        .bind("127.0.0.1:0")
        .expect("bind a server")
}

fn client_to(rt: &Runtime, addr: SocketAddr) -> Client {
    Client::new(
        Channel::builder(format!("http://{addr}"))
            .runtime(rt)
            .connect_lazy()
            .expect("a channel"),
    )
}

/// A request that cannot wait forever (the server may be a hostile one).
fn bounded(message: &str) -> Request<EchoRequest> {
    let mut request = Request::new(req(message));
    request.set_timeout(WAIT);
    request
}

/// Makes a blocking unary call on a thread of its own and waits for its result for at
/// most 30 s, so that a call that would hang fails the test instead of hanging it.
fn unary_on_thread(
    client: Client,
    method: &'static str,
    request: Request<EchoRequest>,
) -> Result<Response<EchoResponse>, Status> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("gov-caller".to_owned())
        .spawn(move || {
            let _ = tx.send(client.blocking_unary::<_, EchoResponse>(method, request));
        })
        .expect("spawn a caller thread");
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the call did not end within 30 s");
    thread.join().expect("the caller thread panicked");
    result
}

/// The names the kernel has for this process's threads (15 bytes at most), all of them.
fn all_thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Raw TCP servers that are not gRPC servers.

#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Accepts and never writes a byte (nor reads one); the connection stays open.
    Silent,
    /// Answers the client's preface with an empty SETTINGS and GOAWAY(last-stream-id 0,
    /// NO_ERROR) at once, then closes.
    SettingsThenGoAway,
    /// Sends an empty SETTINGS, waits (at most 2 s) for the client's first request, then
    /// sends GOAWAY(last-stream-id 0, NO_ERROR) and closes: the connection was ready and
    /// its stream is refused unprocessed.
    GoAwayAfterRequest,
    /// Sends SETTINGS, acknowledges the client's, counts the HEADERS frames it receives
    /// (streams opened) and never answers one. One connection at a time.
    CountHeaders,
}

/// A listener on 127.0.0.1:0 whose accept loop runs on a thread (polled every few
/// milliseconds, at most 60 s) and counts the connections it accepts.
struct RawServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// HEADERS frames received (requests; not counted by [`Behaviour::Silent`]).
    headers: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawServer {
    fn start(behaviour: Behaviour) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a raw listener");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let headers = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, headers, stop) = (accepted.clone(), headers.clone(), stop.clone());
            std::thread::Builder::new()
                .name("gov-raw-server".to_owned())
                .spawn(move || {
                    let started = Instant::now();
                    let mut held = Vec::new();
                    while !stop.load(Ordering::Acquire)
                        && started.elapsed() < Duration::from_secs(60)
                    {
                        match listener.accept() {
                            Ok((tcp, _)) => {
                                accepted.fetch_add(1, Ordering::AcqRel);
                                let _ = tcp.set_nonblocking(false);
                                match behaviour {
                                    Behaviour::Silent => held.push(tcp),
                                    Behaviour::SettingsThenGoAway => {
                                        send_away(tcp, false, &headers)
                                    }
                                    Behaviour::GoAwayAfterRequest => send_away(tcp, true, &headers),
                                    Behaviour::CountHeaders => {
                                        count_headers(tcp, &headers, &stop, started)
                                    }
                                }
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(3)),
                        }
                    }
                    drop(held);
                })
                .expect("spawn the raw server")
        };
        RawServer {
            addr,
            accepted,
            headers,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }

    fn headers(&self) -> usize {
        self.headers.load(Ordering::Acquire)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a client sent on a raw connection, split into frames after its preface.
#[derive(Default)]
struct ClientFrames {
    buf: Vec<u8>,
    preface: bool,
}

impl ClientFrames {
    /// Reads once (the socket has a read timeout); the type and flags of the frames
    /// completed by what was read. `None` once the client closed or the socket failed.
    fn read(&mut self, tcp: &mut TcpStream) -> Option<Vec<(u8, u8)>> {
        let mut chunk = [0u8; 16 * 1024];
        match tcp.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Some(Vec::new());
            }
            Err(_) => return None,
        }
        if !self.preface {
            if self.buf.len() < raw::PREFACE.len() {
                return Some(Vec::new());
            }
            assert_eq!(
                &self.buf[..raw::PREFACE.len()],
                raw::PREFACE,
                "not a client preface"
            );
            self.buf.drain(..raw::PREFACE.len());
            self.preface = true;
        }
        let mut frames = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= 9 {
            let head = &self.buf[at..at + 9];
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            if self.buf.len() - at < 9 + len {
                break;
            }
            frames.push((head[3], head[4]));
            at += 9 + len;
        }
        self.buf.drain(..at);
        Some(frames)
    }
}

/// Reads the client's preface and answers SETTINGS and GOAWAY(0, NO_ERROR) — at once, or
/// (`after_request`) SETTINGS at once and GOAWAY once the first request's HEADERS came —
/// and closes. Every wait is bounded (2 s in all). What the client still sends is then
/// drained (at most 1 s), so that the close is a FIN after the frames, not a reset that
/// could overtake them.
fn send_away(mut tcp: TcpStream, after_request: bool, headers: &AtomicUsize) {
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(50)));
    let mut frames = ClientFrames::default();
    let until = Instant::now() + Duration::from_secs(2);
    while !frames.preface && Instant::now() < until {
        if frames.read(&mut tcp).is_none() {
            break;
        }
    }
    let mut goaway = Vec::new();
    goaway.extend_from_slice(&0u32.to_be_bytes()); // last-stream-id
    goaway.extend_from_slice(&0u32.to_be_bytes()); // NO_ERROR
    let goaway = raw::frame(raw::GOAWAY, 0, 0, &goaway);
    let mut answer = raw::settings(&[]);
    if after_request {
        let _ = tcp.write_all(&answer);
        answer.clear();
        while Instant::now() < until {
            match frames.read(&mut tcp) {
                None => break,
                Some(seen) if seen.iter().any(|(kind, _)| *kind == raw::HEADERS) => {
                    headers.fetch_add(1, Ordering::AcqRel);
                    break;
                }
                Some(_) => {}
            }
        }
    }
    answer.extend(goaway);
    let _ = tcp.write_all(&answer);
    let _ = tcp.shutdown(Shutdown::Write);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if frames.read(&mut tcp).is_none() {
            break;
        }
    }
}

/// Serves one connection as [`Behaviour::CountHeaders`] until the client closes it, the
/// server is stopped, or 60 s after the server started.
fn count_headers(mut tcp: TcpStream, headers: &AtomicUsize, stop: &AtomicBool, started: Instant) {
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(20)));
    if tcp.write_all(&raw::settings(&[])).is_err() {
        return;
    }
    let mut frames = ClientFrames::default();
    while !stop.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(60) {
        let Some(seen) = frames.read(&mut tcp) else {
            return;
        };
        for (kind, flags) in seen {
            if kind == raw::HEADERS {
                headers.fetch_add(1, Ordering::AcqRel);
            }
            if kind == raw::SETTINGS && flags & raw::ACK == 0 {
                let _ = tcp.write_all(&raw::settings_ack());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. The server's SETTINGS.

/// A connection is ready only once the server's SETTINGS frame arrived: against a TCP
/// listener that accepts and never writes a byte, `connect_blocking` fails (at the
/// connect timeout, saying it was waiting for SETTINGS), the channel is in
/// `TransientFailure`, and a call without a deadline fails `UNAVAILABLE` instead of
/// hanging — on that channel and as the first call on a fresh one.
///
/// Before: h2's handshake is over once the
/// client's preface is written, so the connection counted as ready at once
/// (`connect_blocking` was `Ok` in under a millisecond) and a call without a deadline
/// waited for an answer that never came.
#[test]
fn a_server_that_never_sends_settings_never_makes_the_channel_ready() {
    let _leaks = leak::check();
    let rt = runtime("gov-settings");
    let silent = RawServer::start(Behaviour::Silent);
    let target = format!("http://{}", silent.addr);
    // A long reconnection backoff keeps the channel in TransientFailure while it is looked
    // at, however slowly this thread runs.
    let channel = Channel::builder(&target)
        .runtime(&rt)
        .connect_timeout(Duration::from_millis(300))
        .backoff(Duration::from_secs(30), Duration::from_secs(60))
        .connect_lazy()
        .unwrap();
    let started = Instant::now();
    let result = channel.connect_blocking(Duration::from_secs(5));
    let elapsed = started.elapsed();
    let status = match result {
        Ok(()) => panic!("the channel was ready after {elapsed:?} without the server's SETTINGS"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("SETTINGS"),
        "the failure does not say what was missing: {:?}",
        status.message()
    );
    assert_eq!(
        channel.state(false),
        ConnectivityState::TransientFailure,
        "after {status:?}"
    );
    // The TCP connection itself was made: what failed is the wait for SETTINGS.
    assert!(silent.accepted() >= 1, "no connection reached the listener");

    // A call with no deadline on that channel fails fast.
    let result = unary_on_thread(
        Client::new(channel.clone()),
        path(SVC, UNARY),
        Request::new(req("no deadline")),
    );
    let status = result.expect_err("a call without SETTINGS succeeded");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // The first call on a fresh channel (default backoff), with no deadline, waits for the
    // connection attempt and fails with it.
    let fresh = Channel::builder(&target)
        .runtime(&rt)
        .connect_timeout(Duration::from_millis(300))
        .connect_lazy()
        .unwrap();
    let result = unary_on_thread(
        Client::new(fresh.clone()),
        path(SVC, UNARY),
        Request::new(req("no deadline, fresh channel")),
    );
    let status = result.expect_err("a call without SETTINGS succeeded");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    drop(fresh);
    drop(channel);
    drop(silent);
    drop(rt);
}

// ---------------------------------------------------------------------------------------
// 2. A server that sends every connection away.

/// Against a server that answers every connection with SETTINGS and then
/// GOAWAY(last-stream-id 0, NO_ERROR): (a) a wait-for-ready call keeps waiting for a
/// connection that takes it until its deadline, and fails `DEADLINE_EXCEEDED` (not
/// before ~1 s of its 1.5 s); (b) fail-fast calls made in a loop for about 2 s open only a
/// handful of connections, as a connection refused that way counts as a failed attempt
/// and reconnections follow the backoff.
///
/// Twice: with SETTINGS and GOAWAY written together (the client reads both, and the
/// close, before the connection is ready: a failed connection attempt), and with the
/// GOAWAY held back until the first request arrived (the connection was ready and its
/// stream is refused unprocessed: a stream retried elsewhere, and a connection sent away
/// before processing anything, which must count as a failed attempt too).
///
/// Before: the stream refused by the GOAWAY failed the call
/// with `UNAVAILABLE` within 4 ms even though it waited for ready, and a connection lost
/// to GOAWAY reset the backoff, so every call reconnected at once (a connection per
/// call).
#[test]
fn a_server_that_sends_every_connection_away_is_retried_with_backoff() {
    let _leaks = leak::check();
    let rt = runtime("gov-goaway");
    for behaviour in [Behaviour::SettingsThenGoAway, Behaviour::GoAwayAfterRequest] {
        // (a) Wait for ready, until the deadline.
        let hostile = RawServer::start(behaviour);
        let client = client_to(&rt, hostile.addr);
        let mut request = Request::new(req("wait for ready"));
        request.set_wait_for_ready(true);
        request.set_timeout(Duration::from_millis(1500));
        let started = Instant::now();
        let result = unary_on_thread(client.clone(), path(SVC, UNARY), request);
        let elapsed = started.elapsed();
        let status = result.expect_err("the hostile server answered a call");
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{behaviour:?}: after {elapsed:?}: {status:?}"
        );
        assert!(
            status.message().to_ascii_lowercase().contains("deadline"),
            "{behaviour:?}: {status:?}"
        );
        assert!(
            elapsed >= Duration::from_secs(1),
            "{behaviour:?}: the wait-for-ready call gave up after {elapsed:?}"
        );
        assert!(hostile.accepted() >= 1, "no connection reached the server");
        if matches!(behaviour, Behaviour::GoAwayAfterRequest) {
            // The connection was ready: the call's stream reached the server, which
            // refused it unprocessed.
            assert!(hostile.headers() >= 1, "no request reached the server");
        }
        drop(client);
        drop(hostile);

        // (b) Fail fast, in a loop, on a fresh channel with the default backoff.
        let hostile = RawServer::start(behaviour);
        let client = client_to(&rt, hostile.addr);
        let started = Instant::now();
        let mut calls = 0usize;
        let mut codes: Vec<Code> = Vec::new();
        for i in 0..100_000 {
            if started.elapsed() >= Duration::from_secs(2) {
                break;
            }
            let result: Result<Response<EchoResponse>, Status> =
                client.blocking_unary(path(SVC, UNARY), bounded(&format!("fail fast {i}")));
            match result {
                Ok(reply) => panic!("{behaviour:?}: the hostile server answered: {reply:?}"),
                Err(status) => {
                    if !codes.contains(&status.code()) {
                        codes.push(status.code());
                    }
                }
            }
            calls += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        let connections = hostile.accepted();
        assert!(calls > 0);
        assert!(
            (1..=6).contains(&connections),
            "{behaviour:?}: {connections} connections for {calls} fail-fast calls in {:?} \
             (codes {codes:?})",
            started.elapsed()
        );
        if matches!(behaviour, Behaviour::GoAwayAfterRequest) {
            assert!(hostile.headers() >= 1, "no request reached the server");
        }
        drop(client);
        drop(hostile);
    }
    drop(rt);
}

// ---------------------------------------------------------------------------------------
// 3. Deadlines that are over before the call starts.

const COUNTED: &str = "gov.Counted";
const BLOCKING: &str = "Blocking";
const ASYNC: &str = "Async";

/// A service whose two unary methods (a blocking and an async handler) count the calls
/// they run.
fn counted(runs: Arc<AtomicUsize>) -> Service {
    let async_runs = runs.clone();
    Service::builder(COUNTED)
        .blocking_unary(BLOCKING, move |request: Request<EchoRequest>| {
            runs.fetch_add(1, Ordering::AcqRel);
            Ok(Response::new(EchoResponse {
                message: request.into_inner().message,
                ..Default::default()
            }))
        })
        .unary(ASYNC, move |request: Request<EchoRequest>| {
            let runs = async_runs.clone();
            async move {
                runs.fetch_add(1, Ordering::AcqRel);
                Ok(Response::new(EchoResponse {
                    message: request.into_inner().message,
                    ..Default::default()
                }))
            }
        })
        .build()
}

/// Calls with a zero or a one-nanosecond timeout, from the blocking and the async client,
/// to blocking and async handlers, fail `DEADLINE_EXCEEDED` and no handler runs; a raw
/// HTTP/2 request with `grpc-timeout: 0n` gets `grpc-status: 4` and no handler runs
/// either. Calls with a real timeout, before and after, run the handlers (the counter
/// counts).
///
/// Before: the call task raced the expired deadline against opening the stream, so such
/// calls usually went out anyway (`grpc-timeout: 0n` or `1n`): a
/// counting peer saw 15–17 streams instead of 1; earlier still, the runtime also ran
/// the handler, and a zero-timeout call even succeeded.
#[test]
fn zero_deadlines_fail_without_running_a_handler() {
    let _leaks = leak::check();
    let rt = runtime("gov-zero");
    let runs = Arc::new(AtomicUsize::new(0));
    let server = serve(&rt, counted(runs.clone()));
    let client = client_to(&rt, server.local_addr());
    let methods = [path(COUNTED, BLOCKING), path(COUNTED, ASYNC)];

    // The connection is ready first: the 1 ns calls then fail where a stream would be
    // opened, not while connecting.
    for method in methods {
        let reply: Response<EchoResponse> = client
            .blocking_unary(method, bounded("before"))
            .unwrap_or_else(|s| panic!("{method}: {s:?}"));
        assert_eq!(reply.get_ref().message, "before");
    }
    assert_eq!(runs.load(Ordering::Acquire), 2, "the handlers do not count");

    for method in methods {
        for timeout in [Duration::ZERO, Duration::from_nanos(1)] {
            let mut request = Request::new(req("too late"));
            request.set_timeout(timeout);
            let result: Result<Response<EchoResponse>, Status> =
                client.blocking_unary(method, request);
            let status = result.expect_err("a call past its deadline succeeded");
            assert_eq!(
                status.code(),
                Code::DeadlineExceeded,
                "blocking client, {method}, {timeout:?}: {status:?}"
            );

            let mut request = Request::new(req("too late"));
            request.set_timeout(timeout);
            let result: Result<Response<EchoResponse>, Status> =
                futures::executor::block_on(client.unary(method, request));
            let status = result.expect_err("a call past its deadline succeeded");
            assert_eq!(
                status.code(),
                Code::DeadlineExceeded,
                "async client, {method}, {timeout:?}: {status:?}"
            );
        }
    }
    assert_eq!(
        runs.load(Ordering::Acquire),
        2,
        "handlers ran for calls whose deadline had passed"
    );

    // The server's side of it: `grpc-timeout: 0n` on the wire.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(raw::grpc_message(
        false,
        &req("zero on the wire").encode_to_vec(),
    ));
    for method in methods {
        let (status, message) = tokio.block_on(async {
            tokio::time::timeout(
                WAIT,
                raw::h2_call(
                    server.local_addr(),
                    method,
                    &[("grpc-timeout", "0n")],
                    body.clone(),
                    true,
                ),
            )
            .await
            .expect("the raw call was not answered")
        });
        assert_eq!(status, "4", "{method}: grpc-message {message:?}");
    }
    drop(tokio);
    assert_eq!(
        runs.load(Ordering::Acquire),
        2,
        "a handler ran for grpc-timeout: 0n"
    );

    // And the handlers still run for calls with time left.
    for method in methods {
        let reply: Response<EchoResponse> = client
            .blocking_unary(method, bounded("after"))
            .unwrap_or_else(|s| panic!("{method}: {s:?}"));
        assert_eq!(reply.get_ref().message, "after");
    }
    assert_eq!(runs.load(Ordering::Acquire), 4);
    drop(client);
    drop(server);

    // Nothing of such a call goes on the wire: a peer that counts the streams opened on a
    // ready connection sees none of them, and sees the one call with time left that
    // follows them on the same connection.
    let counter = RawServer::start(Behaviour::CountHeaders);
    let channel = Channel::builder(format!("http://{}", counter.addr))
        .runtime(&rt)
        .connect_lazy()
        .unwrap();
    channel
        .connect_blocking(WAIT)
        .expect("the counting peer sends SETTINGS");
    let client = Client::new(channel);
    for timeout in [Duration::ZERO, Duration::from_nanos(1)] {
        for _ in 0..4 {
            let mut request = Request::new(req("too late"));
            request.set_timeout(timeout);
            let result: Result<Response<EchoResponse>, Status> =
                client.blocking_unary(path(COUNTED, BLOCKING), request);
            let status = result.expect_err("the counting peer answered");
            assert_eq!(
                status.code(),
                Code::DeadlineExceeded,
                "{timeout:?}: {status:?}"
            );

            let mut request = Request::new(req("too late"));
            request.set_timeout(timeout);
            let result: Result<Response<EchoResponse>, Status> =
                futures::executor::block_on(client.unary(path(COUNTED, ASYNC), request));
            let status = result.expect_err("the counting peer answered");
            assert_eq!(
                status.code(),
                Code::DeadlineExceeded,
                "{timeout:?}: {status:?}"
            );
        }
    }
    // The peer never answers: this call ends at its deadline, its stream counted.
    let mut request = Request::new(req("with time left"));
    request.set_timeout(Duration::from_millis(300));
    let result: Result<Response<EchoResponse>, Status> =
        client.blocking_unary(path(COUNTED, BLOCKING), request);
    let status = result.expect_err("the counting peer answered");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        leak::eventually_within(WAIT, || counter.headers() >= 1),
        "the counting peer saw no stream at all"
    );
    assert_eq!(
        counter.headers(),
        1,
        "streams were opened for calls whose deadline had passed"
    );
    assert_eq!(counter.accepted(), 1);
    drop(client);
    drop(counter);
    drop(rt);
}

const FRONT: &str = "gov.Front";

/// Waits (bounded) until `deadline` has passed.
fn blocking_wait_past(deadline: Instant) {
    for _ in 0..1000 {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(deadline - now + Duration::from_millis(1));
    }
}

/// A handler on server A that outlives its own deadline and only then calls server B
/// with a request made `with_parent` of its own: the call to B fails `DEADLINE_EXCEEDED`
/// and B's handler never runs. Both flavours of handlers on A (blocking, with the
/// blocking client; async, with the async client). A direct call to B runs its handler,
/// so the counter is live.
///
/// Before: a child whose parent had no time left was not failed before it
/// started; it went on until the parent's cancellation ended it, `CANCELLED` instead of
/// `DEADLINE_EXCEEDED`.
#[test]
fn a_child_call_of_an_expired_parent_fails_without_reaching_its_server() {
    let _leaks = leak::check();
    let rt = runtime("gov-parent");
    let b_runs = Arc::new(AtomicUsize::new(0));
    let b = serve(&rt, counted(b_runs.clone()));
    let to_b = client_to(&rt, b.local_addr());

    // What A's handlers got from B.
    let (outcome_tx, outcome_rx) = mpsc::channel::<(&'static str, Result<(), Status>)>();
    let outcome_tx = Mutex::new(outcome_tx);
    let async_outcome_tx = Mutex::new(outcome_tx.lock().unwrap().clone());
    let blocking_b = to_b.clone();
    let async_b = Arc::new(to_b.clone());
    let front = Service::builder(FRONT)
        .blocking_unary(
            BLOCKING,
            move |request: Request<EchoRequest>| -> Result<Response<EchoResponse>, Status> {
                let deadline = request.deadline().expect("the caller set a deadline");
                blocking_wait_past(deadline);
                let child = Request::new(req("child")).with_parent(&request);
                let result: Result<Response<EchoResponse>, Status> =
                    blocking_b.blocking_unary(path(COUNTED, BLOCKING), child);
                let _ = outcome_tx
                    .lock()
                    .unwrap()
                    .send(("blocking", result.map(|_| ())));
                Err(Status::internal("too late anyway"))
            },
        )
        .unary(ASYNC, move |request: Request<EchoRequest>| {
            let to_b = async_b.clone();
            let outcome = async_outcome_tx.lock().unwrap().clone();
            async move {
                let deadline = request.deadline().expect("the caller set a deadline");
                for _ in 0..1000 {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    rsgrpc_tests::async_sleep(deadline - now + Duration::from_millis(1)).await;
                }
                let child = Request::new(req("child")).with_parent(&request);
                let result: Result<Response<EchoResponse>, Status> =
                    to_b.unary(path(COUNTED, ASYNC), child).await;
                let _ = outcome.send(("async", result.map(|_| ())));
                Err::<Response<EchoResponse>, Status>(Status::internal("too late anyway"))
            }
        })
        .build();
    let a = serve(&rt, front);
    let to_a = client_to(&rt, a.local_addr());

    for (method, flavour) in [(BLOCKING, "blocking"), (ASYNC, "async")] {
        // Long enough for A's handler to start on a loaded machine (a handler whose
        // deadline passes while it waits for a thread is not started at all).
        let mut request = Request::new(req("parent"));
        request.set_timeout(Duration::from_secs(1));
        let result: Result<Response<EchoResponse>, Status> =
            to_a.blocking_unary(path(FRONT, method), request);
        let status = result.expect_err("the parent call outlived its deadline");
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{flavour}: {status:?}"
        );
        let (who, child) = outcome_rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{flavour}: A's handler never called B"));
        assert_eq!(who, flavour);
        let status = child.expect_err("the child of an expired call succeeded");
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{flavour} handler's child call: {status:?}"
        );
    }
    assert_eq!(
        b_runs.load(Ordering::Acquire),
        0,
        "B ran a handler for a call whose parent's deadline had passed"
    );
    // B's counter counts.
    let reply: Response<EchoResponse> = to_b
        .blocking_unary(path(COUNTED, BLOCKING), bounded("direct"))
        .unwrap();
    assert_eq!(reply.get_ref().message, "direct");
    assert_eq!(b_runs.load(Ordering::Acquire), 1);

    drop(to_a);
    drop(a);
    drop(to_b);
    drop(b);
    drop(rt);
}

// ---------------------------------------------------------------------------------------
// 4. An async response stream whose call ended.

/// A response stream that never yields and reports, when dropped, the thread it was
/// dropped on.
struct NeverStream {
    dropped: mpsc::Sender<String>,
}

impl futures::Stream for NeverStream {
    type Item = Result<EchoResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Pending
    }
}

impl Drop for NeverStream {
    fn drop(&mut self) {
        let name = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned();
        let _ = self.dropped.send(name);
    }
}

/// An async server-streaming handler returns a stream that never yields; the client
/// (blocking) starts the call, waits until the handler has returned its stream, and drops
/// the response stream (cancelling the call). The handler's stream is then dropped
/// within 10 s, and not on a poller thread.
///
/// Before: a stream that returns `Pending` without keeping a waker was at the mercy of
/// whoever held the task's waker. While the response queue kept no waker of the sender
/// (it now wakes a waiting sender when the consumer goes away), it was dropped at once,
/// ending the call with `UNAVAILABLE` before the client cancelled anything (the live-call
/// check below catches that); with a runtime that keeps the task but never wakes it, the
/// stream is never dropped (the 10 s wait catches that).
#[test]
fn an_async_response_stream_is_dropped_when_its_call_ends() {
    let _leaks = leak::check();
    let rt = runtime("gov-stream");
    let (returned_tx, returned_rx) = mpsc::channel::<()>();
    let (dropped_tx, dropped_rx) = mpsc::channel::<String>();
    let returned_tx = Mutex::new(returned_tx);
    let dropped_tx = Mutex::new(dropped_tx);
    let service = Service::builder(SVC)
        .server_streaming(SERVER_STREAM, move |_request: Request<EchoRequest>| {
            let stream = NeverStream {
                dropped: dropped_tx.lock().unwrap().clone(),
            };
            let returned = returned_tx.lock().unwrap().clone();
            async move {
                let _ = returned.send(());
                Ok(Response::new(stream))
            }
        })
        .build();
    let server = serve(&rt, service);
    let client = client_to(&rt, server.local_addr());

    // A long timeout so that the call cannot hang the test, far beyond the 10 s in which
    // the cancellation must have dropped the stream.
    let mut request = Request::new(req("never"));
    request.set_timeout(Duration::from_secs(60));
    let responses = client
        .blocking_server_streaming::<EchoRequest, EchoResponse>(path(SVC, SERVER_STREAM), request)
        .expect("the call did not start");
    returned_rx
        .recv_timeout(WAIT)
        .expect("the handler did not return its stream");
    assert!(
        dropped_rx.try_recv().is_err(),
        "the stream was dropped before the call ended"
    );
    assert_eq!(server.active_calls(), 1, "the call is not live");
    drop(responses);
    let thread = dropped_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the response stream of a cancelled call was not dropped within 10 s");
    assert!(
        !thread.contains("-poller-"),
        "the response stream was dropped on a poller thread ({thread})"
    );
    assert!(
        leak::eventually_within(WAIT, || server.active_calls() == 0),
        "{} calls still active",
        server.active_calls()
    );

    drop(client);
    drop(server);
    drop(rt);
}

// ---------------------------------------------------------------------------------------
// 5. Configuration at its extremes.

/// A server built with `max_connection_age(Duration::MAX)` ("never") serves calls over a
/// while on one connection, and a new connection afterwards: its poller did not panic.
///
/// Before: the ±10 % jitter of the age multiplied `Duration::MAX` by a float,
/// which panics ("cannot convert float seconds to Duration"): the poller died with the
/// connection, and the first call failed `UNAVAILABLE`.
#[test]
fn max_connection_age_of_duration_max_means_never() {
    let _leaks = leak::check();
    let rt = runtime("gov-age");
    let server = Server::builder()
        .runtime(&rt)
        .max_connection_age(Duration::MAX)
        .add_service(blocking_echo(SVC, Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let client = client_to(&rt, server.local_addr());
    for i in 0..10 {
        let message = format!("aged {i}");
        let reply: Response<EchoResponse> = client
            .blocking_unary(path(SVC, UNARY), bounded(&message))
            .unwrap_or_else(|s| panic!("call {i}: {s:?}"));
        assert_eq!(reply.get_ref().message, message);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.accepted_connections(),
        1,
        "the connection did not last"
    );
    // A second connection is served too.
    let other = client_to(&rt, server.local_addr());
    let reply: Response<EchoResponse> = other
        .blocking_unary(path(SVC, UNARY), bounded("second connection"))
        .unwrap();
    assert_eq!(reply.get_ref().message, "second connection");
    assert_eq!(server.accepted_connections(), 2);
    drop(other);
    drop(client);
    drop(server);
    drop(rt);
}

const FLAKY: &str = "gov.Flaky";

/// A retry policy with `backoffMultiplier: 1e300` (and a small `maxBackoff`), against a
/// method that fails `UNAVAILABLE` three times and then succeeds: the call succeeds on
/// its fourth attempt.
///
/// Before: the next backoff was the current one multiplied by 1e300 as a
/// `Duration`, which panics on overflow — on the poller, in the call's task, so the call
/// failed after its first attempt ("the call ended without a status").
#[test]
fn a_huge_retry_backoff_multiplier_is_capped_not_a_panic() {
    let _leaks = leak::check();
    let rt = runtime("gov-retry");
    let attempts = Arc::new(AtomicUsize::new(0));
    let service = {
        let attempts = attempts.clone();
        Service::builder(FLAKY)
            .blocking_unary(UNARY, move |request: Request<EchoRequest>| {
                if attempts.fetch_add(1, Ordering::AcqRel) < 3 {
                    return Err(Status::unavailable("not yet"));
                }
                Ok(Response::new(EchoResponse {
                    message: request.into_inner().message,
                    ..Default::default()
                }))
            })
            .build()
    };
    let server = serve(&rt, service);
    let config = ServiceConfig::from_json(&format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "{FLAKY}"}}],
             "retryPolicy": {{"maxAttempts": 4, "initialBackoff": "0.01s",
                              "maxBackoff": "0.05s", "backoffMultiplier": 1e300,
                              "retryableStatusCodes": ["UNAVAILABLE"]}}}}]}}"#
    ))
    .expect("the service config parses");
    let channel = Channel::builder(format!("http://{}", server.local_addr()))
        .runtime(&rt)
        .service_config(config)
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    let result = unary_on_thread(client.clone(), path(FLAKY, UNARY), bounded("retried"));
    let reply = result.unwrap_or_else(|s| {
        panic!(
            "the call failed after {} attempts: {s:?}",
            attempts.load(Ordering::Acquire)
        )
    });
    assert_eq!(reply.get_ref().message, "retried");
    assert_eq!(attempts.load(Ordering::Acquire), 4);
    drop(client);
    drop(server);
    drop(rt);
}

// ---------------------------------------------------------------------------------------
// 6. No poller starts a thread.

/// A resolver that records the names of the threads it runs on.
struct RecordingResolver {
    addr: SocketAddr,
    threads: Arc<Mutex<Vec<String>>>,
}

impl Resolver for RecordingResolver {
    fn resolve(&self) -> Result<Vec<Address>, Status> {
        let name = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned();
        self.threads.lock().unwrap().push(name);
        Ok(vec![Address::from(self.addr)])
    }
}

/// (a) The worker pool's monitor thread exists as soon as the runtime is built, before
/// any call (so the first job, submitted by a poller, does not make the poller start
/// it); (b) a channel's own resolver runs on a worker-pool thread of the channel's
/// runtime, not on a thread started for it nor on a poller.
///
/// Before: the monitor was started by whoever queued the pool's first job
/// (a poller, for a server's first blocking handler), so no monitor existed after
/// `build()`; and each resolution started a thread named `rsgrpc-resolver`.
#[test]
fn the_monitor_starts_with_the_runtime_and_resolvers_run_on_workers() {
    let _leaks = leak::check();
    let rt = runtime("nothr");
    // (a) The kernel keeps 15 bytes of "nothr-worker-monitor". A new thread carries its
    // parent's name until it names itself, hence the (bounded) wait.
    let monitor = "nothr-worker-mo";
    assert!(
        leak::eventually_within(Duration::from_secs(10), || all_thread_names()
            .iter()
            .any(|n| n == monitor)),
        "no {monitor} thread after the runtime was built: {:?}",
        all_thread_names()
    );

    // (b) A resolver of the channel's own.
    let server = serve(&rt, blocking_echo(SVC, Probe::new()));
    let threads = Arc::new(Mutex::new(Vec::new()));
    let channel = Channel::builder("registry:///governed")
        .runtime(&rt)
        .resolver(RecordingResolver {
            addr: server.local_addr(),
            threads: threads.clone(),
        })
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    let mut request = bounded("resolved");
    request.set_wait_for_ready(true);
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), request)
        .expect("a call through the resolver");
    assert_eq!(reply.get_ref().message, "resolved");
    let seen = threads.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the resolver was not called");
    for name in &seen {
        let id = name.strip_prefix("nothr-worker-");
        assert!(
            id.is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())),
            "the resolver ran on {name:?}, not a worker of the channel's runtime (all: {seen:?})"
        );
    }
    drop(client);
    drop(server);
    drop(rt);
}

/// A channel to `http://localhost:PORT` resolves the name (getaddrinfo) without the
/// poller's runtime starting blocking threads: after a successful call the only threads
/// named `dnsthr-poller…` are the poller threads themselves (one, by default).
///
/// Before: the lookup ran on tokio's blocking pool of the poller's runtime,
/// whose threads carry the poller's name (and linger for 10 s): two `dnsthr-poller-0`.
#[test]
fn dns_resolution_starts_no_thread_on_a_poller() {
    let _leaks = leak::check();
    let rt = runtime("dnsthr");
    let server = serve(&rt, blocking_echo(SVC, Probe::new()));
    let channel = Channel::builder(format!("http://localhost:{}", server.local_addr().port()))
        .runtime(&rt)
        .connect_lazy()
        .unwrap();
    let client = Client::new(channel);
    // localhost may resolve to ::1 first, where nothing listens: wait for the next address.
    let mut request = bounded("by name");
    request.set_wait_for_ready(true);
    let reply: Response<EchoResponse> = client
        .blocking_unary(path(SVC, UNARY), request)
        .expect("a call to localhost");
    assert_eq!(reply.get_ref().message, "by name");
    let names = all_thread_names();
    let pollers: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("dnsthr-poller"))
        .collect();
    assert_eq!(
        pollers.len(),
        1,
        "threads named after the poller: {pollers:?} (all: {names:?})"
    );
    drop(client);
    drop(server);
    drop(rt);
}

/// Reads one frame (type, flags, stream, payload) from a raw connection whose socket has
/// a read timeout; `None` when the client closed or the socket failed or timed out.
fn read_frame(tcp: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    tcp.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).ok()?;
    Some((head[3], head[4], stream, payload))
}

/// Serves one call on a raw connection: reads the client's preface and frames up to its
/// first request's HEADERS and writes `answer(stream)` after its own SETTINGS. Returns
/// the client's SETTINGS values seen by then, and the connection (open, so that nothing
/// written is lost to a reset). Every read waits at most 10 s.
fn serve_one_raw_call(
    listener: &TcpListener,
    answer: impl FnOnce(u32) -> Vec<u8>,
) -> (Vec<(u16, u32)>, TcpStream) {
    let (mut tcp, _) = listener.accept().expect("accept the client");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut preface = [0u8; 24];
    tcp.read_exact(&mut preface).expect("the client's preface");
    assert_eq!(&preface[..], raw::PREFACE);
    let mut settings = Vec::new();
    tcp.write_all(&raw::settings(&[])).unwrap();
    let stream = loop {
        let (kind, flags, stream, payload) = read_frame(&mut tcp).expect("a request");
        match kind {
            raw::SETTINGS if flags & raw::ACK == 0 => {
                settings.extend(payload.chunks_exact(6).map(|pair| {
                    (
                        u16::from_be_bytes([pair[0], pair[1]]),
                        u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]),
                    )
                }));
                tcp.write_all(&raw::settings_ack()).unwrap();
            }
            raw::HEADERS => break stream,
            _ => {}
        }
    };
    tcp.write_all(&answer(stream)).unwrap();
    (settings, tcp)
}

/// A response's HEADERS, for a raw server.
fn response_headers(stream: u32) -> Vec<u8> {
    let mut block = Vec::new();
    raw::hpack_literal(&mut block, ":status", b"200");
    raw::hpack_literal(&mut block, "content-type", b"application/grpc");
    raw::headers(stream, false, &block)
}

/// A channel announces `SETTINGS_MAX_FRAME_SIZE` of
/// [`CLIENT_MAX_FRAME_SIZE`](rsgrpc::limits::CLIENT_MAX_FRAME_SIZE) (1 MiB, where HTTP/2's
/// default is 16 KiB), so a server may send a large message as one DATA frame: a 900 KiB
/// response sent so by a raw server arrives whole. A frame announced one byte over the
/// limit fails the call with `UNAVAILABLE` naming the frame size (a connection error),
/// not a hang or a panic.
#[test]
fn a_channel_takes_frames_up_to_its_max_frame_size_and_fails_a_call_above_it() {
    let _leaks = leak::check();
    let limit = rsgrpc::limits::CLIENT_MAX_FRAME_SIZE;
    let rt = runtime("gov-frame");
    for over in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let payload: Vec<u8> = (0..900 * 1024).map(|i| (i % 251) as u8).collect();
        let response = EchoResponse {
            payload: payload.clone().into(),
            ..Default::default()
        };
        let server = std::thread::Builder::new()
            .name("gov-frame-srv".to_owned())
            .spawn(move || {
                serve_one_raw_call(&listener, |stream| {
                    let mut out = response_headers(stream);
                    if over {
                        // Only the frame's head: the client must refuse it from there.
                        let mut head = raw::frame(raw::DATA, 0, stream, &[]);
                        head[..3].copy_from_slice(&(limit + 1).to_be_bytes()[1..]);
                        out.extend(head);
                        return out;
                    }
                    let message = raw::grpc_message(false, &response.encode_to_vec());
                    assert!(message.len() > 16 * 1024 && message.len() < limit as usize);
                    out.extend(raw::data(stream, false, &message));
                    let mut trailers = Vec::new();
                    raw::hpack_literal(&mut trailers, "grpc-status", b"0");
                    out.extend(raw::headers(stream, true, &trailers));
                    out
                })
            })
            .unwrap();
        let client = client_to(&rt, addr);
        let result = unary_on_thread(client, "/test.Echo/Unary", bounded("big"));
        let (settings, tcp) = server.join().expect("the raw server");
        assert!(
            settings.contains(&(0x5, limit)),
            "SETTINGS_MAX_FRAME_SIZE {limit} not among the client's settings {settings:?}"
        );
        match result {
            Ok(reply) if !over => assert!(reply.get_ref().payload == payload),
            Err(status) if over => assert!(
                status.code() == Code::Unavailable && status.message().contains("frame"),
                "{status:?}"
            ),
            other => panic!(
                "over the limit: {over}; {:?}",
                other.map(|r| r.get_ref().payload.len())
            ),
        }
        drop(tcp);
    }
    drop(rt);
}
