//! Test support: an echo service with all four RPC kinds, written by hand over rsgrpc's
//! call API in both flavours, plus the same service as a tonic server and client.
//!
//! The request's `message` field steers the handlers:
//!
//! | message            | effect                                                         |
//! |--------------------|----------------------------------------------------------------|
//! | `panic`            | the handler panics                                             |
//! | `sleep:MS`         | the handler sleeps MS milliseconds, then answers               |
//! | `fail:CODE:TEXT`   | the call fails with that code, message TEXT and details `why`  |
//! | `wait-cancel:TAG`  | the handler waits (≤ 30 s) for cancellation, then notes `TAG`  |
//! | `started:TAG`      | (with `sleep:`) notes `started:TAG` when the handler starts    |
//!
//! Metadata `x-echo` and `x-echo-bin` are echoed in response headers and trailers.

// Test support: the echo messages and helpers are documented by the table above.
#![allow(missing_docs)]

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use rsgrpc::server::Service;
use rsgrpc::{
    BlockingStreaming, Code, MetadataMap, Request, Response, ResponseSink, Status, Streaming,
};

pub mod leak;
pub mod pki;
pub mod proxy;
pub mod raw;
pub mod soak;
pub mod tonic_echo;

/// Which kind of handlers (or calls) a test runs: every behaviour is checked in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Blocking,
    Async,
}

/// Both flavours, for tests that loop over them.
pub const FLAVOURS: [Flavour; 2] = [Flavour::Blocking, Flavour::Async];

/// Whether `check` holds within a generous bound ([`leak::SETTLE`]), polled every 10 ms:
/// for what settles asynchronously (a socket closed, a thread gone), never a timing.
pub fn eventually(check: impl Fn() -> bool) -> bool {
    leak::eventually_within(leak::SETTLE, check)
}

/// Stubs generated from `tests/proto/echo/echo.proto`, wire-compatible with the
/// hand-written messages below.
pub mod generated {
    rsgrpc::include_proto!("test");
}

/// The echo service again, with default stubs (`generate_default_stubs`): every trait
/// method defaults to `UNIMPLEMENTED`.
pub mod defaults {
    include!(concat!(env!("OUT_DIR"), "/defaults/test.rs"));
}

/// Stubs for gRPC's interop test service, from `tests/proto/grpc/testing`.
pub mod interop {
    rsgrpc::include_proto!("grpc.testing");
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    #[prost(string, tag = "1")]
    pub message: String,
    /// Server streaming: how many responses.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    #[prost(bytes = "bytes", tag = "3")]
    pub payload: bytes::Bytes,
    /// Server streaming: size of each response's payload (0: echo `payload`).
    #[prost(uint32, tag = "4")]
    pub response_size: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoResponse {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(uint32, tag = "2")]
    pub index: u32,
    #[prost(bytes = "bytes", tag = "3")]
    pub payload: bytes::Bytes,
}

pub const UNARY: &str = "Unary";
pub const SERVER_STREAM: &str = "ServerStream";
pub const CLIENT_STREAM: &str = "ClientStream";
pub const BIDI: &str = "Bidi";

/// The full path of `method` on the service named `service`.
pub fn path(service: &str, method: &str) -> &'static str {
    Box::leak(format!("/{service}/{method}").into_boxed_str())
}

pub fn req(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        ..Default::default()
    }
}

/// Things handlers report, for tests to wait on.
#[derive(Default)]
pub struct Probe {
    seen: Mutex<HashSet<String>>,
    cv: Condvar,
}

impl Probe {
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }

    pub fn note(&self, tag: impl Into<String>) {
        self.seen.lock().unwrap().insert(tag.into());
        self.cv.notify_all();
    }

    pub fn has(&self, tag: &str) -> bool {
        self.seen.lock().unwrap().contains(tag)
    }

    /// Waits until `tag` was noted; false after `timeout`.
    pub fn wait(&self, tag: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen.lock().unwrap();
        while !seen.contains(tag) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            seen = self.cv.wait_timeout(seen, deadline - now).unwrap().0;
        }
        true
    }
}

/// What a handler should do before answering.
enum Directive<'a> {
    Echo,
    Panic,
    Sleep(Duration, Option<&'a str>),
    Fail(Status),
    WaitCancel(&'a str),
}

fn directive(message: &str) -> Directive<'_> {
    if message == "panic" {
        return Directive::Panic;
    }
    if let Some(rest) = message.strip_prefix("sleep:") {
        let (ms, tag) = match rest.split_once(":started:") {
            Some((ms, tag)) => (ms, Some(tag)),
            None => (rest, None),
        };
        return Directive::Sleep(Duration::from_millis(ms.parse().unwrap_or(0)), tag);
    }
    if let Some(rest) = message.strip_prefix("fail:") {
        let (code, text) = rest.split_once(':').unwrap_or((rest, ""));
        let code = Code::try_from(code.parse::<i32>().unwrap_or(2)).unwrap_or(Code::Unknown);
        return Directive::Fail(Status::with_details(code, text, "why".into()));
    }
    if let Some(tag) = message.strip_prefix("wait-cancel:") {
        return Directive::WaitCancel(tag);
    }
    Directive::Echo
}

fn echo_metadata(from: &MetadataMap) -> (MetadataMap, MetadataMap) {
    let mut headers = MetadataMap::new();
    let mut trailers = MetadataMap::new();
    if let Some(v) = from.get("x-echo") {
        headers.insert("x-echo", v).unwrap();
        trailers.insert("x-echo-trailer", v).unwrap();
    }
    if let Some(v) = from.get_bin("x-echo-bin") {
        headers.insert_bin("x-echo-bin", &v).unwrap();
        trailers.insert_bin("x-echo-trailer-bin", &v).unwrap();
    }
    (headers, trailers)
}

fn with_metadata<T>(from: &MetadataMap, message: T) -> Response<T> {
    let (headers, trailers) = echo_metadata(from);
    let mut response = Response::new(message);
    *response.metadata_mut() = headers;
    *response.trailers_mut() = trailers;
    response
}

fn stream_item(request: &EchoRequest, index: u32) -> EchoResponse {
    let payload = if request.response_size > 0 {
        vec![b'x'; request.response_size as usize].into()
    } else {
        request.payload.clone()
    };
    EchoResponse {
        message: format!("{}:{index}", request.message),
        index,
        payload,
    }
}

/// Waits for cancellation by polling, as a blocking handler would.
fn blocking_wait_cancel<T>(request: &Request<T>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if request.is_cancelled() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// A minimal timer future for async handlers that does not depend on any executor.
pub async fn async_sleep(duration: Duration) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    // The timer thread also wakes when the future is dropped (its `cancel` sender with
    // it), so an abandoned sleep leaves no thread behind for the leak check to find.
    let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("test-sleep".to_owned())
        .spawn(move || {
            let _ = cancelled.recv_timeout(duration);
            let _ = tx.send(());
        })
        .expect("spawn a timer thread");
    let _cancel = cancel;
    let _ = rx.await;
}

/// The echo service with blocking handlers.
pub fn blocking_echo(name: &str, probe: Arc<Probe>) -> Service {
    let p1 = probe.clone();
    let p2 = probe.clone();
    Service::builder(name)
        .blocking_unary(UNARY, move |request: Request<EchoRequest>| {
            match directive(&request.get_ref().message) {
                Directive::Panic => panic!("handler asked to panic"),
                Directive::Sleep(d, tag) => {
                    if let Some(tag) = tag {
                        p1.note(format!("started:{tag}"));
                    }
                    std::thread::sleep(d);
                }
                Directive::Fail(status) => return Err(status),
                Directive::WaitCancel(tag) => {
                    p1.note(format!("started:{tag}"));
                    if blocking_wait_cancel(&request) {
                        p1.note(tag);
                    }
                    return Err(Status::cancelled("saw cancellation"));
                }
                Directive::Echo => {}
            }
            let message = EchoResponse {
                message: request.get_ref().message.clone(),
                index: 0,
                payload: request.get_ref().payload.clone(),
            };
            Ok(with_metadata(request.metadata(), message))
        })
        .blocking_server_streaming(
            SERVER_STREAM,
            move |request: Request<EchoRequest>, mut sink: ResponseSink<EchoResponse>| {
                let (headers, trailers) = echo_metadata(request.metadata());
                if let Directive::WaitCancel(tag) = directive(&request.get_ref().message) {
                    p2.note(format!("started:{tag}"));
                    sink.send_headers(headers)?;
                    if blocking_wait_cancel(&request) {
                        p2.note(tag);
                    }
                    return Err(Status::cancelled("saw cancellation"));
                }
                if let Directive::Fail(status) = directive(&request.get_ref().message) {
                    return Err(status);
                }
                sink.send_headers(headers)?;
                for i in 0..request.get_ref().count {
                    sink.send(stream_item(request.get_ref(), i))?;
                }
                sink.add_trailers(trailers);
                Ok(())
            },
        )
        .blocking_client_streaming(
            CLIENT_STREAM,
            |request: Request<BlockingStreaming<EchoRequest>>| {
                let (metadata, requests) = request.into_parts();
                let mut joined = Vec::new();
                let mut bytes = 0;
                for r in requests {
                    let r = r?;
                    if let Directive::Fail(status) = directive(&r.message) {
                        return Err(status);
                    }
                    bytes += r.payload.len();
                    joined.push(r.message);
                }
                let message = EchoResponse {
                    message: joined.join(","),
                    index: joined.len() as u32,
                    payload: bytes.to_string().into_bytes().into(),
                };
                Ok(with_metadata(&metadata, message))
            },
        )
        .blocking_bidi_streaming(
            BIDI,
            |request: Request<BlockingStreaming<EchoRequest>>,
             mut sink: ResponseSink<EchoResponse>| {
                let (metadata, requests) = request.into_parts();
                let (headers, trailers) = echo_metadata(&metadata);
                sink.send_headers(headers)?;
                for (i, r) in requests.enumerate() {
                    let r = r?;
                    if let Directive::Fail(status) = directive(&r.message) {
                        return Err(status);
                    }
                    sink.send(stream_item(&r, i as u32))?;
                }
                sink.add_trailers(trailers);
                Ok(())
            },
        )
        .build()
}

type EchoStream = Pin<Box<dyn Stream<Item = Result<EchoResponse, Status>> + Send>>;

/// The echo service with async handlers.
pub fn async_echo(name: &str, probe: Arc<Probe>) -> Service {
    let p1 = probe.clone();
    let p2 = probe.clone();
    Service::builder(name)
        .unary(UNARY, move |request: Request<EchoRequest>| {
            let probe = p1.clone();
            async move {
                match directive(&request.get_ref().message) {
                    Directive::Panic => panic!("handler asked to panic"),
                    Directive::Sleep(d, tag) => {
                        if let Some(tag) = tag {
                            probe.note(format!("started:{tag}"));
                        }
                        async_sleep(d).await;
                    }
                    Directive::Fail(status) => return Err(status),
                    Directive::WaitCancel(tag) => {
                        let tag = tag.to_owned();
                        probe.note(format!("started:{tag}"));
                        let cancelled = request.cancelled();
                        futures::pin_mut!(cancelled);
                        let timeout = async_sleep(Duration::from_secs(30));
                        futures::pin_mut!(timeout);
                        if let futures::future::Either::Left(_) =
                            futures::future::select(cancelled, timeout).await
                        {
                            probe.note(tag);
                        }
                        return Err(Status::cancelled("saw cancellation"));
                    }
                    Directive::Echo => {}
                }
                let message = EchoResponse {
                    message: request.get_ref().message.clone(),
                    index: 0,
                    payload: request.get_ref().payload.clone(),
                };
                Ok(with_metadata(request.metadata(), message))
            }
        })
        .server_streaming(SERVER_STREAM, move |request: Request<EchoRequest>| {
            let probe = p2.clone();
            async move {
                let (headers, trailers) = echo_metadata(request.metadata());
                let stream: EchoStream = match directive(&request.get_ref().message) {
                    Directive::Fail(status) => return Err(status),
                    Directive::WaitCancel(tag) => {
                        let tag = tag.to_owned();
                        let cancelled = request.cancelled();
                        Box::pin(futures::stream::once(async move {
                            probe.note(format!("started:{tag}"));
                            let timeout = async_sleep(Duration::from_secs(30));
                            futures::pin_mut!(timeout);
                            if let futures::future::Either::Left(_) =
                                futures::future::select(cancelled, timeout).await
                            {
                                probe.note(tag);
                            }
                            Err(Status::cancelled("saw cancellation"))
                        }))
                    }
                    _ => {
                        let request = request.into_inner();
                        Box::pin(
                            futures::stream::iter(0..request.count)
                                .map(move |i| Ok(stream_item(&request, i))),
                        )
                    }
                };
                let mut response = Response::new(stream);
                *response.metadata_mut() = headers;
                *response.trailers_mut() = trailers;
                Ok(response)
            }
        })
        .client_streaming(
            CLIENT_STREAM,
            |request: Request<Streaming<EchoRequest>>| async move {
                let (metadata, mut requests) = request.into_parts();
                let mut joined = Vec::new();
                let mut bytes = 0;
                while let Some(r) = requests.message().await? {
                    if let Directive::Fail(status) = directive(&r.message) {
                        return Err(status);
                    }
                    bytes += r.payload.len();
                    joined.push(r.message);
                }
                let message = EchoResponse {
                    message: joined.join(","),
                    index: joined.len() as u32,
                    payload: bytes.to_string().into_bytes().into(),
                };
                Ok(with_metadata(&metadata, message))
            },
        )
        .bidi_streaming(
            BIDI,
            |request: Request<Streaming<EchoRequest>>| async move {
                let (metadata, requests) = request.into_parts();
                let (headers, trailers) = echo_metadata(&metadata);
                let stream: EchoStream = Box::pin(requests.enumerate().map(|(i, r)| {
                    let r = r?;
                    if let Directive::Fail(status) = directive(&r.message) {
                        return Err(status);
                    }
                    Ok(stream_item(&r, i as u32))
                }));
                let mut response = Response::new(stream);
                *response.metadata_mut() = headers;
                *response.trailers_mut() = trailers;
                Ok(response)
            },
        )
        .build()
}
