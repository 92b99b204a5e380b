//! Network faults between client and server, through the fault-injecting proxy
//! (`rsgrpc_tests::proxy`), against servers of both flavours: the connection dropped in
//! the middle of a message, in the middle of a frame header and after the response
//! headers; a stall longer than the deadline; bytes delivered one at a time; one
//! direction closed. Each time the client gets the status the gRPC spec gives
//! (UNAVAILABLE for a lost connection, DEADLINE_EXCEEDED for a deadline), the handler
//! sees its call cancelled, nothing hangs, and the next call on the same channel works.
//! A raw HTTP/2 server that ends a stream inside a message (with or without an OK status)
//! gives INTERNAL, as the spec says for a broken message, on a connection that stays
//! usable.
//!
//! Every test runs under the leak check (`rsgrpc_tests::leak`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle, Service};
use rsgrpc::{
    BlockingStreaming, Channel, Code, Request, Response, ResponseSink, Runtime, Status, Streaming,
};
use rsgrpc_tests::proxy::{Direction, Fault, Proxy};
use rsgrpc_tests::{EchoRequest, EchoResponse, Probe, async_sleep, leak};

const SVC: &str = "test.Fault";
const POUR: &str = "/test.Fault/Pour";
const SINK: &str = "/test.Fault/Sink";
const WAIT: Duration = Duration::from_secs(20);

use rsgrpc_tests::{FLAVOURS, Flavour};

fn item(r: &EchoRequest, index: u32) -> EchoResponse {
    EchoResponse {
        message: r.message.clone(),
        index,
        payload: r.payload.clone(),
    }
}

/// Waits (≤ 30 s) for a blocking handler's call to be cancelled.
fn blocking_wait_cancelled(cancelled: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cancelled() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Notes its tag when dropped.
struct NoteOnDrop(Arc<Probe>, String);

impl Drop for NoteOnDrop {
    fn drop(&mut self) {
        self.0.note(std::mem::take(&mut self.1));
    }
}

/// `Pour` (server streaming): `count` messages carrying the request's payload; then, if
/// the message is `hold:TAG`, waits for cancellation and notes `TAG`.
/// `Sink` (bidi): answers each message; a failed receive (the call cancelled) notes the
/// first message's text.
fn service(flavour: Flavour, probe: Arc<Probe>) -> Service {
    let builder = Service::builder(SVC);
    let (p1, p2) = (probe.clone(), probe);
    match flavour {
        Flavour::Blocking => builder
            .blocking_server_streaming(
                "Pour",
                move |request: Request<EchoRequest>, mut sink: ResponseSink<EchoResponse>| {
                    let r = request.get_ref().clone();
                    p1.note(format!("started:{}", r.message.trim_start_matches("hold:")));
                    for i in 0..r.count {
                        if sink.send(item(&r, i)).is_err() {
                            break;
                        }
                    }
                    if let Some(tag) = r.message.strip_prefix("hold:") {
                        if blocking_wait_cancelled(|| request.is_cancelled()) {
                            p1.note(tag);
                        }
                        return Err(Status::cancelled("held until cancelled"));
                    }
                    Ok(())
                },
            )
            .blocking_bidi_streaming(
                "Sink",
                move |request: Request<BlockingStreaming<EchoRequest>>,
                      mut sink: ResponseSink<EchoResponse>| {
                    let mut requests = request.into_inner();
                    let mut tag = None;
                    loop {
                        match requests.recv() {
                            Ok(Some(r)) => {
                                tag.get_or_insert_with(|| r.message.clone());
                                let _ = sink.send(item(&r, 0));
                            }
                            Ok(None) => return Ok(()),
                            Err(status) => {
                                p2.note(tag.unwrap_or_default());
                                return Err(status);
                            }
                        }
                    }
                },
            ),
        Flavour::Async => builder
            .server_streaming("Pour", move |request: Request<EchoRequest>| {
                let probe = p1.clone();
                async move {
                    let hold = request.get_ref().message.strip_prefix("hold:");
                    let hold = hold.map(str::to_owned);
                    let message = &request.get_ref().message;
                    probe.note(format!("started:{}", message.trim_start_matches("hold:")));
                    let cancelled = request.cancelled();
                    let r = request.into_inner();
                    let items = futures::stream::iter(0..r.count).map(move |i| Ok(item(&r, i)));
                    let stream: futures::stream::BoxStream<'static, Result<EchoResponse, Status>> =
                        match hold {
                            // Then waits for cancellation (≤ 30 s): the call ends by it.
                            Some(tag) => {
                                // Dropping the stream is how an async handler is cancelled
                                // when it is not polled again (maybe before this part).
                                let dropped = NoteOnDrop(probe.clone(), format!("dropped:{tag}"));
                                Box::pin(items.chain(futures::stream::once(async move {
                                    let _dropped = dropped;
                                    let timeout = async_sleep(Duration::from_secs(30));
                                    futures::pin_mut!(cancelled, timeout);
                                    let first = futures::future::select(cancelled, timeout).await;
                                    if let futures::future::Either::Left(_) = first {
                                        probe.note(tag);
                                    }
                                    Err(Status::cancelled("held until cancelled"))
                                })))
                            }
                            None => Box::pin(items),
                        };
                    Ok(Response::new(stream))
                }
            })
            .bidi_streaming("Sink", move |request: Request<Streaming<EchoRequest>>| {
                let probe = p2.clone();
                async move {
                    let mut requests = request.into_inner();
                    let replies = async_stream_of(move |tx| async move {
                        let mut tag = None;
                        loop {
                            match requests.message().await {
                                Ok(Some(r)) => {
                                    tag.get_or_insert_with(|| r.message.clone());
                                    if tx.unbounded_send(Ok(item(&r, 0))).is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => return,
                                Err(status) => {
                                    probe.note(tag.unwrap_or_default());
                                    let _ = tx.unbounded_send(Err(status));
                                    return;
                                }
                            }
                        }
                    });
                    Ok(Response::new(replies))
                }
            }),
    }
    .build()
}

/// A stream of what `body` sends, driven as the stream is polled. The channel holds at
/// most what the handler is ahead of the reader: one reply per request message.
fn async_stream_of<F, Fut>(
    body: F,
) -> futures::stream::BoxStream<'static, Result<EchoResponse, Status>>
where
    F: FnOnce(futures::channel::mpsc::UnboundedSender<Result<EchoResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let driver = body(tx);
    // Poll the driver and the receiver together; the stream ends when both have.
    let driver = futures::stream::once(driver).filter_map(|()| async { None });
    Box::pin(futures::stream::select(driver, rx))
}

/// One fault's set-up: a runtime, a server of one flavour, the proxy in front of it and
/// a channel through the proxy.
struct Setup {
    client: Client,
    probe: Arc<Probe>,
    proxy: Proxy,
    server: ServerHandle,
    rt: Runtime,
    flavour: Flavour,
}

impl Setup {
    fn new(flavour: Flavour) -> Setup {
        let rt = Runtime::builder()
            .thread_name_prefix("faults")
            .build()
            .unwrap();
        let probe = Probe::new();
        let server = Server::builder()
            .runtime(&rt)
            .add_service(service(flavour, probe.clone()))
            .bind("127.0.0.1:0")
            .unwrap();
        let proxy = Proxy::start(server.local_addr());
        let channel = Channel::builder(format!("http://{}", proxy.addr()))
            .runtime(&rt)
            .backoff(Duration::from_millis(10), Duration::from_millis(200))
            .connect_lazy()
            .unwrap();
        Setup {
            client: Client::new(channel),
            probe,
            proxy,
            server,
            rt,
            flavour,
        }
    }

    /// A `Pour` call read to its end: the messages, or the first error.
    fn pour(&self, message: &str, count: u32, payload: usize, timeout: Duration) -> PourResult {
        let mut request = Request::new(EchoRequest {
            message: message.into(),
            count,
            payload: vec![7; payload].into(),
            ..Default::default()
        });
        request.set_timeout(timeout);
        let started = Instant::now();
        let result = self
            .client
            .blocking_server_streaming::<_, EchoResponse>(POUR, request)
            .and_then(|response| {
                let mut items = Vec::new();
                for item in response.into_inner() {
                    items.push(item?);
                }
                Ok(items)
            });
        PourResult {
            result,
            took: started.elapsed(),
        }
    }

    /// The next call on the same channel succeeds, and the server is left with nothing.
    fn finish(self, fault: &str) {
        let fault = format!("{fault} ({:?} handlers)", self.flavour);
        let after = self.pour("after", 3, 100, WAIT);
        let items = after
            .result
            .unwrap_or_else(|s| panic!("{fault}: the next call failed: {s:?}"));
        assert_eq!(items.len(), 3, "{fault}");
        assert!(
            leak::eventually_within(WAIT, || self.server.active_calls() == 0),
            "{fault}: {} calls left on the server",
            self.server.active_calls()
        );
        drop(self.client);
        drop(self.proxy);
        drop(self.server);
        drop(self.rt);
    }
}

struct PourResult {
    result: Result<Vec<EchoResponse>, Status>,
    took: Duration,
}

impl PourResult {
    fn code(&self) -> Code {
        match &self.result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        }
    }
}

/// Runs `fault` on a held `Pour` call of `count` messages of `payload` bytes, both
/// flavours: the call fails with `code` and the handler sees cancellation.
fn held_call_fails(fault: Fault, count: u32, payload: usize, code: Code) {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let setup = Setup::new(flavour);
        setup.proxy.arm(fault);
        let held = setup.pour("hold:held", count, payload, WAIT);
        assert_eq!(
            held.code(),
            code,
            "{fault:?} ({flavour:?}): {:?}",
            held.result.as_ref().err()
        );
        assert!(
            held.took < WAIT,
            "{fault:?} ({flavour:?}): took {:?}",
            held.took
        );
        assert_eq!(setup.proxy.fired(), 1, "{fault:?} ({flavour:?})");
        // A blocking handler sees `is_cancelled`; an async handler sees
        // `Request::cancelled` fire or, if the stream is not polled again, is dropped.
        let saw = || {
            setup.probe.has("held")
                || (flavour == Flavour::Async && setup.probe.has("dropped:held"))
        };
        assert!(
            leak::eventually_within(WAIT, saw),
            "{fault:?} ({flavour:?}): the handler never saw its call cancelled"
        );
        setup.finish(&format!("{fault:?}"));
    }
}

#[test]
fn a_connection_dropped_mid_message_is_unavailable() {
    held_call_fails(
        Fault::CutMidMessage(Direction::Response),
        2,
        32 * 1024,
        Code::Unavailable,
    );
}

#[test]
fn a_connection_dropped_mid_frame_header_is_unavailable() {
    held_call_fails(
        Fault::CutMidFrameHeader(Direction::Response),
        2,
        1024,
        Code::Unavailable,
    );
}

#[test]
fn a_connection_dropped_after_the_response_headers_is_unavailable() {
    held_call_fails(Fault::CutAfterResponseHeaders, 1, 100, Code::Unavailable);
}

#[test]
fn a_connection_dropped_mid_request_message_cancels_the_handler() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let setup = Setup::new(flavour);
        setup.proxy.arm(Fault::CutMidMessage(Direction::Request));
        let (mut sender, mut replies) = setup
            .client
            .blocking_bidi_streaming::<EchoRequest, EchoResponse>(SINK, Request::new(()))
            .unwrap();
        // A small message first: the handler is running once its reply is back.
        sender.send(rsgrpc_tests::req("sink")).unwrap();
        let first = replies.next().expect("a reply").expect("the first reply");
        assert_eq!(first.message, "sink");
        // Then one the proxy cuts in half.
        let _ = sender.send(EchoRequest {
            message: "big".into(),
            payload: vec![1; 64 * 1024].into(),
            ..Default::default()
        });
        let failed = replies.find_map(Result::err);
        let code = failed.as_ref().map(Status::code);
        assert_eq!(code, Some(Code::Unavailable), "{flavour:?}: {failed:?}");
        assert!(
            setup.probe.wait("sink", WAIT),
            "{flavour:?}: the handler never saw its call fail"
        );
        drop((sender, replies));
        setup.finish("a cut in a request message");
    }
}

#[test]
fn a_stall_longer_than_the_deadline_is_deadline_exceeded() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let setup = Setup::new(flavour);
        // The server's answers are held for 3 s; the deadline is 300 ms.
        setup.proxy.arm(Fault::Stall(Duration::from_secs(3)));
        let stalled = setup.pour("hold:stalled", 1, 100, Duration::from_millis(300));
        assert_eq!(stalled.code(), Code::DeadlineExceeded, "{flavour:?}");
        // Generous: the deadline is 300 ms on a loaded machine, the stall 3 s.
        assert!(
            stalled.took < Duration::from_millis(2900),
            "{:?}",
            stalled.took
        );
        assert!(
            setup.probe.wait("stalled", WAIT),
            "{flavour:?}: the handler never saw its deadline"
        );
        // The connection carries on after the stall: the next call uses it.
        setup.finish("a stall");
    }
}

#[test]
fn bytes_one_at_a_time_still_make_calls() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let setup = Setup::new(flavour);
        setup.proxy.arm(Fault::OneByteAtATime);
        let slow = setup.pour("trickle", 3, 1000, WAIT);
        let items = slow.result.unwrap_or_else(|s| panic!("{flavour:?}: {s:?}"));
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|i| i.payload == vec![7; 1000]));
        assert_eq!(setup.proxy.accepted(), 1, "one connection, trickling");
        setup.finish("one byte at a time");
    }
}

#[test]
fn a_half_closed_connection_is_unavailable_and_cancels_the_handler() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let setup = Setup::new(flavour);
        setup.proxy.arm(Fault::HalfCloseRequest);
        let held = setup.pour("hold:half", 1, 100, WAIT);
        assert_eq!(
            held.code(),
            Code::Unavailable,
            "{flavour:?}: {:?}",
            held.result
        );
        assert!(held.took < WAIT, "{flavour:?}: took {:?}", held.took);
        assert_eq!(setup.proxy.fired(), 1, "{flavour:?}");
        // The server reads end-of-file: the connection is gone, and its calls with it. The
        // request may be dropped before its handler starts; a handler that started sees
        // its call cancelled.
        let saw = || {
            !setup.probe.has("started:half")
                || setup.probe.has("half")
                || (flavour == Flavour::Async && setup.probe.has("dropped:half"))
        };
        assert!(
            leak::eventually_within(WAIT, || saw() && setup.server.active_calls() == 0),
            "{flavour:?}: the handler started and never saw its call cancelled"
        );
        setup.finish("half close");
    }
}

#[test]
fn a_server_stopped_at_once_closes_its_listener() {
    // Regression: a server stopped before its accept task first ran kept its listening
    // socket open for the life of the runtime.
    let _leaks = leak::check();
    for _ in 0..20 {
        let server = Server::builder()
            .add_service(service(Flavour::Blocking, Probe::new()))
            .bind("127.0.0.1:0")
            .unwrap();
        drop(server);
    }
}

#[test]
fn graceful_shutdown_sends_goaway_twice_and_lets_the_call_finish() {
    use rsgrpc_tests::raw::{self, RawConn};
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let rt = Runtime::builder()
            .thread_name_prefix("faults")
            .build()
            .unwrap();
        let probe = Probe::new();
        let server = Server::builder()
            .runtime(&rt)
            .add_service(service(flavour, probe.clone()))
            .bind("127.0.0.1:0")
            .unwrap();
        // A bidi call in flight on a raw connection: its handler answers each message.
        let mut conn = RawConn::connect(server.local_addr());
        let message = |text: &str| {
            use prost::Message;
            raw::grpc_message(false, &rsgrpc_tests::req(text).encode_to_vec())
        };
        conn.send_many([
            raw::headers(1, false, &raw::request_block(SINK, &[])),
            raw::data(1, false, &message("in-flight")),
        ]);
        let t = conn.wait_for(WAIT, |t| t.count(raw::DATA) >= 1 || t.closed);
        assert!(t.count(raw::DATA) >= 1, "{flavour:?}: no reply: {t:?}");

        let shutdown = server.shutdown(WAIT);
        // RFC 9113 §6.8: first a GOAWAY with the largest stream id (new streams may still
        // be in flight), a PING, then a GOAWAY with the last stream actually taken.
        let t = conn.wait_for(WAIT, |t| !t.pings.is_empty() || t.closed);
        assert_eq!(t.goaways.len(), 1, "{flavour:?}: {t:?}");
        conn.send_many([raw::ping_ack(t.pings[0])]);
        let t = conn.wait_for(WAIT, |t| t.goaways.len() >= 2 || t.closed);
        assert!(t.goaways.len() >= 2, "{flavour:?}: {t:?}");
        assert_eq!(
            (t.goaways[0].last_stream, t.goaways[0].code),
            ((1 << 31) - 1, 0),
            "{flavour:?}"
        );
        assert_eq!(
            (t.goaways[1].last_stream, t.goaways[1].code),
            (1, 0),
            "{flavour:?}"
        );
        // A new stream is not served now: refused, or ignored as above the last id.
        conn.send_many([raw::headers(3, true, &raw::request_block(SINK, &[]))]);
        // The call in flight still works, then ends when the client ends it.
        conn.send_many([raw::data(1, true, &message("last"))]);
        let t = conn.wait_for(WAIT, |t| t.count(raw::DATA) >= 2 || t.closed);
        assert!(t.count(raw::DATA) >= 2, "{flavour:?}: {t:?}");
        assert!(
            !t.responded.contains(&3),
            "{flavour:?}: stream 3 was served"
        );
        let t = conn.wait_closed(WAIT);
        assert!(t.closed, "{flavour:?}: the connection stayed open");
        shutdown.wait();
        drop(conn);
        drop(server);
        drop(rt);
    }
}

/// How a raw HTTP/2 server ends its response to a `Pour` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// One whole message, then trailers with `grpc-status: 0`.
    Whole,
    /// A message prefix promising 100 bytes, 10 of them, then trailers with
    /// `grpc-status: 0`.
    TruncatedThenOk,
    /// The same truncated message, ending the stream without trailers.
    TruncatedThenEnd,
}

/// A server that answers every call the way the request's `message` names: a peer that
/// breaks the framing while keeping HTTP/2 intact, which no proxy cut can produce.
async fn serve_raw(listener: tokio::net::TcpListener) {
    use prost::Message;
    use rsgrpc_tests::raw;

    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut connection) = h2::server::handshake(tcp).await else {
                return;
            };
            while let Some(Ok((request, mut respond))) = connection.accept().await {
                let mut body = request.into_body();
                let mut data = Vec::new();
                while let Some(Ok(chunk)) = body.data().await {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    data.extend_from_slice(&chunk);
                }
                let message = data
                    .get(5..)
                    .and_then(|m| EchoRequest::decode(m).ok())
                    .map(|r| r.message)
                    .unwrap_or_default();
                let ending = match message.as_str() {
                    "truncated-then-ok" => Ending::TruncatedThenOk,
                    "truncated-then-end" => Ending::TruncatedThenEnd,
                    _ => Ending::Whole,
                };
                let head = http::Response::builder()
                    .status(200)
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap();
                let Ok(mut send) = respond.send_response(head, false) else {
                    continue;
                };
                let frame = if ending == Ending::Whole {
                    let reply = EchoResponse {
                        message,
                        ..Default::default()
                    };
                    raw::grpc_message(false, &reply.encode_to_vec())
                } else {
                    // The prefix promises 100 bytes; 10 follow.
                    let mut truncated = raw::grpc_message(false, &[0; 100]);
                    truncated.truncate(5 + 10);
                    truncated
                };
                let end_here = ending == Ending::TruncatedThenEnd;
                let _ = send.send_data(frame.into(), end_here);
                if !end_here {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let _ = send.send_trailers(trailers);
                }
            }
        });
    }
}

#[test]
fn a_stream_that_ends_inside_a_message_is_internal() {
    let _leaks = leak::check();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve_raw(listener));

    let channel = Channel::new(&format!("http://{addr}")).unwrap();
    let client = Client::new(channel.clone());
    let request = |message: &str| {
        let mut request = Request::new(EchoRequest {
            message: message.to_owned(),
            ..Default::default()
        });
        request.set_timeout(WAIT);
        request
    };
    let call = |message: &str| {
        let blocking = client.blocking_unary::<_, EchoResponse>(POUR, request(message));
        let asynchronous =
            futures::executor::block_on(client.unary::<_, EchoResponse>(POUR, request(message)));
        [("blocking", blocking), ("async", asynchronous)]
    };
    for broken in ["truncated-then-ok", "truncated-then-end"] {
        for (flavour, outcome) in call(broken) {
            let status = outcome.expect_err(broken);
            assert_eq!(
                status.code(),
                Code::Internal,
                "{broken} ({flavour}): {status:?}"
            );
        }
        // The connection itself is fine: the next call on the channel succeeds.
        for (flavour, outcome) in call("whole") {
            let reply = outcome.unwrap_or_else(|s| panic!("after {broken} ({flavour}): {s:?}"));
            assert_eq!(reply.get_ref().message, "whole");
        }
    }
    channel.close();
    drop(client);
    drop(channel);
    rt.shutdown_timeout(WAIT);
}
