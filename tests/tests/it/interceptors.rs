//! Interceptors, per-call tracing spans, metrics and deadline propagation, on clients and
//! servers of both flavours.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rsgrpc::client::Client;
use rsgrpc::interceptor::{self, CallInfo, Interceptor};
use rsgrpc::metrics::Metrics;
use rsgrpc::server::{Server, Service};
use rsgrpc::{Channel, Code, MetadataMap, Request, Response, Status};
use rsgrpc_tests::generated::echo_client::{EchoBlockingClient, EchoClient};
use rsgrpc_tests::generated::echo_server::{self, EchoBlockingServer, EchoServer};
use rsgrpc_tests::{
    BIDI, CLIENT_STREAM, EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, async_echo,
    blocking_echo, path, req,
};

use crate::support::{FLAVOURS, Flavour, SVC, client, server_with, target, tokio_rt};

const TOKEN: &str = "Bearer open-sesame";

use rsgrpc_tests::eventually;

fn on_poller() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|name| name.contains("-poller-"))
}

fn auth() -> impl Interceptor {
    interceptor::from_fn(|_call: &CallInfo<'_>, metadata: &mut MetadataMap| {
        match metadata.get("authorization") {
            Some(TOKEN) => Ok(()),
            _ => Err(Status::unauthenticated("missing or wrong token")),
        }
    })
}

fn with_token() -> impl Interceptor {
    interceptor::from_fn(|_call: &CallInfo<'_>, metadata: &mut MetadataMap| {
        metadata
            .insert("authorization", TOKEN)
            .map_err(|e| Status::internal(e.to_string()))
    })
}

fn timed(message: &str) -> Request<EchoRequest> {
    let mut request = Request::new(req(message));
    request.set_timeout(Duration::from_secs(20));
    request
}

/// Every kind of call through `client`, blocking: the status of each.
fn all_kinds_blocking(client: &Client, message: &str) -> Vec<Result<(), Status>> {
    let unary = client
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), timed(message))
        .map(drop);
    let server_stream = client
        .blocking_server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), {
            let mut request = timed(message);
            request.get_mut().count = 2;
            request
        })
        .and_then(|response| {
            response
                .into_inner()
                .collect::<Result<Vec<_>, _>>()
                .map(drop)
        });
    let client_stream = client
        .blocking_client_streaming::<_, _, EchoResponse>(
            path(SVC, CLIENT_STREAM),
            timed(message).map(|r| vec![r.clone(), r]),
        )
        .map(drop);
    let bidi = client
        .blocking_bidi_streaming::<EchoRequest, EchoResponse>(
            path(SVC, BIDI),
            timed(message).map(drop),
        )
        .and_then(|(mut sender, responses)| {
            // The server may refuse the call before it reads anything.
            let _ = sender.send(req(message));
            sender.finish();
            responses.collect::<Result<Vec<_>, _>>().map(drop)
        });
    vec![unary, server_stream, client_stream, bidi]
}

#[test]
fn an_auth_interceptor_rejects_calls_without_a_token_in_both_flavours() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, probe) = server_with(flavour, |b| b.interceptor(auth()));
        let anonymous = client(&server);
        for (kind, outcome) in all_kinds_blocking(&anonymous, "sleep:0:started:anonymous")
            .into_iter()
            .enumerate()
        {
            let status = outcome.expect_err("a call without a token must fail");
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{flavour:?} server, call kind {kind}: {status:?}"
            );
            assert_eq!(status.message(), "missing or wrong token");
        }
        // The handlers never ran.
        assert!(!probe.has("started:anonymous"), "{flavour:?}");

        // The async client sees the same.
        let rt = tokio_rt();
        let status = rt
            .block_on(anonymous.unary::<_, EchoResponse>(path(SVC, UNARY), timed("hi")))
            .expect_err("a call without a token must fail");
        assert_eq!(status.code(), Code::Unauthenticated);

        // A client interceptor adding the token gets every kind through.
        let trusted = client(&server).with_interceptor(with_token());
        for (kind, outcome) in all_kinds_blocking(&trusted, "hello")
            .into_iter()
            .enumerate()
        {
            outcome.unwrap_or_else(|s| panic!("{flavour:?} server, call kind {kind}: {s:?}"));
        }
        let reply = rt
            .block_on(trusted.unary::<_, EchoResponse>(path(SVC, UNARY), timed("hi")))
            .expect("the token is accepted");
        assert_eq!(reply.get_ref().message, "hi");
    }
}

/// Records each hook it sees, as `side name hook`.
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn push(&self, call: &CallInfo<'_>, what: &str) {
        assert!(!on_poller(), "an interceptor ran on a poller thread");
        let side = if call.is_server() { "server" } else { "client" };
        self.log
            .lock()
            .unwrap()
            .push(format!("{side} {} {what}", self.name));
    }
}

impl Interceptor for Recorder {
    fn on_request(&self, call: &CallInfo<'_>, metadata: &mut MetadataMap) -> Result<(), Status> {
        self.push(call, "request");
        // Each interceptor sees what the ones before it added.
        let before = metadata.get("x-chain").unwrap_or("").to_owned();
        metadata
            .insert("x-chain", &format!("{before}{}", self.name))
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn on_response_headers(&self, call: &CallInfo<'_>, headers: &mut MetadataMap) {
        self.push(call, "headers");
        if call.is_server() {
            let before = headers.get("x-chain-back").unwrap_or("").to_owned();
            headers
                .insert("x-chain-back", &format!("{before}{}", self.name))
                .unwrap();
        }
    }

    fn on_end(&self, call: &CallInfo<'_>, status: &Status, _elapsed: Duration) {
        self.push(call, &format!("end {}", status.code().name()));
    }
}

/// The generated echo service: answers with the `x-chain` metadata it received.
struct ChainEcho;

impl echo_server::Echo for ChainEcho {
    async fn unary(
        &self,
        request: Request<rsgrpc_tests::generated::EchoRequest>,
    ) -> Result<Response<rsgrpc_tests::generated::EchoResponse>, Status> {
        Ok(Response::new(rsgrpc_tests::generated::EchoResponse {
            message: request.metadata().get("x-chain").unwrap_or("").to_owned(),
            ..Default::default()
        }))
    }

    type ServerStreamStream = rsgrpc::BoxStream<rsgrpc_tests::generated::EchoResponse>;

    async fn server_stream(
        &self,
        _request: Request<rsgrpc_tests::generated::EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn client_stream(
        &self,
        _request: Request<rsgrpc::Streaming<rsgrpc_tests::generated::EchoRequest>>,
    ) -> Result<Response<rsgrpc_tests::generated::EchoResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    type BidiStream = rsgrpc::BoxStream<rsgrpc_tests::generated::EchoResponse>;

    async fn bidi(
        &self,
        _request: Request<rsgrpc::Streaming<rsgrpc_tests::generated::EchoRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

impl echo_server::EchoBlocking for ChainEcho {
    fn unary(
        &self,
        request: Request<rsgrpc_tests::generated::EchoRequest>,
    ) -> Result<Response<rsgrpc_tests::generated::EchoResponse>, Status> {
        Ok(Response::new(rsgrpc_tests::generated::EchoResponse {
            message: request.metadata().get("x-chain").unwrap_or("").to_owned(),
            ..Default::default()
        }))
    }

    fn server_stream(
        &self,
        _request: Request<rsgrpc_tests::generated::EchoRequest>,
        _sink: rsgrpc::ResponseSink<rsgrpc_tests::generated::EchoResponse>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("not used"))
    }

    fn client_stream(
        &self,
        _request: Request<rsgrpc::BlockingStreaming<rsgrpc_tests::generated::EchoRequest>>,
    ) -> Result<Response<rsgrpc_tests::generated::EchoResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    fn bidi(
        &self,
        _request: Request<rsgrpc::BlockingStreaming<rsgrpc_tests::generated::EchoRequest>>,
        _sink: rsgrpc::ResponseSink<rsgrpc_tests::generated::EchoResponse>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("not used"))
    }
}

#[test]
fn chains_of_three_run_in_order_on_generated_clients_and_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let log = Arc::new(Mutex::new(Vec::new()));
        let recorder = |name| Recorder {
            name,
            log: log.clone(),
        };
        // Server-wide first, then the generated server type's own, in the order added.
        let builder = Server::builder().interceptor(recorder("X"));
        let builder = match flavour {
            Flavour::Blocking => builder.add_service(
                EchoBlockingServer::new(ChainEcho)
                    .with_interceptor(recorder("Y"))
                    .with_interceptor(recorder("Z")),
            ),
            Flavour::Async => builder.add_service(
                EchoServer::new(ChainEcho)
                    .with_interceptor(recorder("Y"))
                    .with_interceptor(recorder("Z")),
            ),
        };
        let server = builder.bind("127.0.0.1:0").unwrap();
        // The channel's first, then the generated client's own.
        let channel = Channel::builder(target(&server))
            .interceptor(recorder("A"))
            .connect_lazy()
            .unwrap();
        let check = |reply: Response<rsgrpc_tests::generated::EchoResponse>| {
            // What the client's chain added reached the server, in order, and then the
            // server's own chain; the server's response-header hooks ran innermost first.
            assert_eq!(reply.get_ref().message, "ABCXYZ", "{flavour:?}");
            assert_eq!(reply.metadata().get("x-chain-back"), Some("ZYX"));
        };
        let blocking = EchoBlockingClient::new(channel.clone())
            .with_interceptor(recorder("B"))
            .with_interceptor(recorder("C"));
        check(
            blocking
                .unary(rsgrpc_tests::generated::EchoRequest::default())
                .unwrap(),
        );
        let expected = [
            "client A request",
            "client B request",
            "client C request",
            "server X request",
            "server Y request",
            "server Z request",
            "server Z headers",
            "server Y headers",
            "server X headers",
            "client C headers",
            "client B headers",
            "client A headers",
            "client C end OK",
            "client B end OK",
            "client A end OK",
        ];
        // The server's end hooks run after its response went out: wait for them.
        assert!(
            eventually(|| log.lock().unwrap().len() == 18),
            "{:?}",
            log.lock().unwrap()
        );
        let seen = std::mem::take(&mut *log.lock().unwrap());
        let (server_ends, rest): (Vec<_>, Vec<_>) = seen
            .into_iter()
            .partition(|line| line.starts_with("server") && line.contains(" end "));
        assert_eq!(rest, expected, "{flavour:?}");
        assert_eq!(
            server_ends,
            ["server Z end OK", "server Y end OK", "server X end OK"]
        );

        // The async generated client runs the same chain.
        let client = EchoClient::new(channel.clone())
            .with_interceptor(recorder("B"))
            .with_interceptor(recorder("C"));
        let reply = futures::executor::block_on(
            client.unary(rsgrpc_tests::generated::EchoRequest::default()),
        )
        .unwrap();
        check(reply);
        assert!(eventually(|| log.lock().unwrap().len() == 18));
    }
}

/// Panics in `on_request` when the call carries `x-panic`.
struct Panicky;

impl Interceptor for Panicky {
    fn on_request(&self, _call: &CallInfo<'_>, metadata: &mut MetadataMap) -> Result<(), Status> {
        if metadata.contains_key("x-panic") {
            panic!("the interceptor was asked to panic");
        }
        Ok(())
    }

    fn on_end(&self, _call: &CallInfo<'_>, status: &Status, _elapsed: Duration) {
        if status.code() == Code::NotFound {
            panic!("a panic at the end is contained too");
        }
    }
}

#[test]
fn a_panicking_interceptor_fails_its_call_and_the_server_keeps_serving() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let (server, probe) = server_with(flavour, |b| b.interceptor(Panicky));
        let client = client(&server);
        for _ in 0..3 {
            let mut request = timed("sleep:0:started:panicked");
            request.metadata_mut().insert("x-panic", "1").unwrap();
            let status = client
                .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), request)
                .expect_err("the interceptor panicked");
            assert_eq!(status.code(), Code::Internal, "{flavour:?}: {status:?}");
            assert!(!probe.has("started:panicked"));
            // A panic in an end hook changes nothing for the client.
            let status = client
                .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), timed("fail:5:gone"))
                .expect_err("the handler fails the call");
            assert_eq!(status.code(), Code::NotFound);
            // The server is still there.
            let reply = client
                .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), timed("still here"))
                .unwrap();
            assert_eq!(reply.get_ref().message, "still here");
        }
    }

    // A client interceptor that panics fails the call locally.
    let (server, _probe) = server_with(Flavour::Blocking, |b| b);
    let client = client(&server).with_interceptor(Panicky);
    let mut request = timed("hi");
    request.metadata_mut().insert("x-panic", "1").unwrap();
    let status = client
        .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), request)
        .expect_err("the interceptor panicked");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(server.accepted_connections(), 0, "nothing was sent");
}

#[test]
fn metrics_count_calls_messages_bytes_and_connections_on_both_sides() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let server_metrics = Metrics::new();
        let (server, _probe) = server_with(flavour, |b| b.metrics(&server_metrics));
        let client_metrics = Metrics::new();
        let channel = Channel::builder(target(&server))
            .metrics(&client_metrics)
            .connect_lazy()
            .unwrap();
        let client = Client::new(channel.clone());
        for i in 0..3 {
            let mut request = timed(&format!("unary {i}"));
            request.get_mut().payload = vec![7; 100].into();
            client
                .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), request)
                .unwrap();
        }
        let mut request = timed("stream");
        request.get_mut().count = 5;
        let replies = client
            .blocking_server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), request)
            .unwrap()
            .into_inner()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(replies.len(), 5);
        client
            .blocking_client_streaming::<_, _, EchoResponse>(
                path(SVC, CLIENT_STREAM),
                timed("x").map(|r| vec![r; 4]),
            )
            .unwrap();
        let status = client
            .blocking_unary::<_, EchoResponse>(path(SVC, UNARY), timed("fail:5:gone"))
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        let ours = client_metrics.snapshot();
        assert_eq!(ours.calls_started, 6, "{flavour:?}: {ours:?}");
        assert_eq!(ours.finished(Code::Ok), 5);
        assert_eq!(ours.finished(Code::NotFound), 1);
        assert_eq!(ours.active_calls, 0);
        assert_eq!(ours.messages_sent, 3 + 1 + 4 + 1);
        assert_eq!(ours.messages_received, 3 + 5 + 1);
        assert_eq!((ours.connections_opened, ours.open_connections), (1, 1));

        // The server counts a call once its handler has finished, after the response left.
        assert!(
            eventually(|| server_metrics.snapshot().active_calls == 0
                && server_metrics.snapshot().calls_started == 6),
            "{:?}",
            server_metrics.snapshot()
        );
        let theirs = server_metrics.snapshot();
        assert_eq!(theirs.finished(Code::Ok), 5, "{flavour:?}: {theirs:?}");
        assert_eq!(theirs.finished(Code::NotFound), 1);
        // Each side received exactly what the other sent.
        assert_eq!(theirs.messages_received, ours.messages_sent);
        assert_eq!(theirs.bytes_received, ours.bytes_sent);
        assert_eq!(theirs.messages_sent, ours.messages_received);
        assert_eq!(theirs.bytes_sent, ours.bytes_received);
        assert!(ours.bytes_sent > 300, "three 100-byte payloads at least");
        assert_eq!((theirs.connections_opened, theirs.open_connections), (1, 1));

        channel.close();
        assert!(eventually(
            || server_metrics.snapshot().open_connections == 0
        ));
        assert!(eventually(
            || client_metrics.snapshot().open_connections == 0
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Tracing: a minimal subscriber that keeps the call spans.

/// One span as the subscriber saw it.
#[derive(Clone, Debug, Default)]
struct SpanRecord {
    fields: HashMap<String, String>,
    created_on: String,
    entered_on: Vec<String>,
}

#[derive(Default)]
struct Capture {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, SpanRecord>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "rsgrpc::call"
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut record = SpanRecord {
            created_on: thread_name(),
            ..SpanRecord::default()
        };
        span.record(&mut Fields(&mut record.fields));
        self.spans.lock().unwrap().insert(id, record);
        tracing::span::Id::from_u64(id)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        if let Some(record) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut record.fields));
        }
    }

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, _event: &tracing::Event<'_>) {}

    fn enter(&self, span: &tracing::span::Id) {
        if let Some(record) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            record.entered_on.push(thread_name());
        }
    }

    fn exit(&self, _span: &tracing::span::Id) {}
}

/// The spans of calls to `service`, once `count` of them have a status.
fn spans_of(capture: &Capture, service: &str, count: usize) -> Vec<SpanRecord> {
    let done = || -> Vec<SpanRecord> {
        capture
            .spans
            .lock()
            .unwrap()
            .values()
            .filter(|s| {
                s.fields.get("rpc.service").map(String::as_str) == Some(service)
                    && s.fields.contains_key("rpc.grpc.status_code")
            })
            .cloned()
            .collect()
    };
    assert!(eventually(|| done().len() >= count), "{:?}", done());
    done()
}

#[test]
fn every_call_has_a_span_on_each_side_named_and_filled_as_opentelemetry_says() {
    let _leaks = rsgrpc_tests::leak::check();
    static INSTALL: std::sync::OnceLock<Arc<Capture>> = std::sync::OnceLock::new();
    let capture = INSTALL
        .get_or_init(|| {
            let capture = Arc::new(Capture::default());
            tracing::subscriber::set_global_default(CaptureRef(capture.clone()))
                .expect("no other test installs a subscriber");
            capture
        })
        .clone();

    for flavour in FLAVOURS {
        let service = format!("test.Traced{flavour:?}");
        let probe = Probe::new();
        let echo = match flavour {
            Flavour::Blocking => blocking_echo(&service, probe),
            Flavour::Async => async_echo(&service, probe),
        };
        let server = Server::builder()
            .add_service(echo)
            .bind("127.0.0.1:0")
            .unwrap();
        let client = client(&server);
        client
            .blocking_unary::<_, EchoResponse>(path(&service, UNARY), timed("hi"))
            .unwrap();
        let status = client
            .blocking_unary::<_, EchoResponse>(path(&service, UNARY), timed("fail:5:gone"))
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        let spans = spans_of(&capture, &service, 4);
        assert_eq!(spans.len(), 4, "{spans:?}");
        for span in &spans {
            let field = |name: &str| span.fields.get(name).map(String::as_str);
            assert_eq!(field("rpc.system"), Some("grpc"));
            assert_eq!(field("rpc.method"), Some("Unary"));
            let name = format!("{service}/Unary");
            assert_eq!(field("otel.name"), Some(name.as_str()));
            match field("otel.kind") {
                Some("server") => {
                    assert_eq!(field("network.peer.address"), Some("127.0.0.1"), "{span:?}");
                    assert!(field("network.peer.port").is_some());
                }
                Some("client") => {}
                other => panic!("otel.kind {other:?}"),
            }
            match field("rpc.grpc.status_code") {
                Some("0") => assert_eq!(field("otel.status_code"), None),
                Some("5") => assert_eq!(field("otel.status_code"), Some("ERROR")),
                other => panic!("status code {other:?}"),
            }
            // Spans are made, and server spans entered, off the pollers.
            assert!(!span.created_on.contains("-poller-"), "{span:?}");
            assert!(
                span.entered_on.iter().all(|t| !t.contains("-poller-")),
                "{span:?}"
            );
            if field("otel.kind") == Some("server") {
                assert!(!span.entered_on.is_empty(), "the handler runs in its span");
            }
            // Nothing of the messages.
            assert!(
                !span
                    .fields
                    .values()
                    .any(|v| v.contains("hi") || v.contains("gone"))
            );
        }
        let kinds: Vec<_> = spans
            .iter()
            .map(|s| s.fields["otel.kind"].clone())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "server").count(),
            2,
            "{kinds:?}"
        );
    }
}

/// Shares one [`Capture`] as the global subscriber.
struct CaptureRef(Arc<Capture>);

impl tracing::Subscriber for CaptureRef {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.0.new_span(span)
    }
    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.0.record(span, values);
    }
    fn record_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id) {
        self.0.record_follows_from(span, follows);
    }
    fn event(&self, event: &tracing::Event<'_>) {
        self.0.event(event);
    }
    fn enter(&self, span: &tracing::span::Id) {
        self.0.enter(span);
    }
    fn exit(&self, span: &tracing::span::Id) {
        self.0.exit(span);
    }
}

// ---------------------------------------------------------------------------------------
// Deadline propagation.

/// A wrapping interceptor: times each call and keeps its final code.
#[derive(Default)]
struct Timing(Mutex<Vec<(String, Code, Duration)>>);

impl Interceptor for Timing {
    fn on_end(&self, call: &CallInfo<'_>, status: &Status, elapsed: Duration) {
        assert!(!on_poller());
        self.0
            .lock()
            .unwrap()
            .push((call.method().to_owned(), status.code(), elapsed));
    }
}

impl Timing {
    /// Whether a call ended with `code`, waiting a while for it.
    fn saw(&self, code: Code) -> bool {
        eventually(|| self.0.lock().unwrap().iter().any(|(_, c, _)| *c == code))
    }
}

/// A front service whose handlers call `backend` on behalf of their caller, passing the
/// request's `message` on; they answer with the backend's status code.
fn front(backend: Client, probe: Arc<Probe>) -> Service {
    let async_backend = backend.clone();
    let async_probe = probe.clone();
    Service::builder("test.Front")
        .blocking_unary("Call", move |request: Request<EchoRequest>| {
            probe.note(format!("front:{}", request.get_ref().message));
            let outgoing = Request::new(request.get_ref().clone()).with_parent(&request);
            let saw_deadline = outgoing.timeout().is_none();
            let code = match backend.blocking_unary::<_, EchoResponse>(path(SVC, UNARY), outgoing) {
                Ok(_) => Code::Ok,
                Err(status) => status.code(),
            };
            Ok(Response::new(EchoResponse {
                message: code.name().to_owned(),
                index: u32::from(saw_deadline),
                payload: Default::default(),
            }))
        })
        .unary("CallAsync", move |request: Request<EchoRequest>| {
            let backend = async_backend.clone();
            let probe = async_probe.clone();
            async move {
                probe.note(format!("front:{}", request.get_ref().message));
                // A handle taken before the request is consumed works as well.
                let parent = request.as_parent();
                let message = request.into_inner();
                let outgoing = Request::new(message).with_parent(&parent);
                let code = match backend
                    .unary::<_, EchoResponse>(path(SVC, UNARY), outgoing)
                    .await
                {
                    Ok(_) => Code::Ok,
                    Err(status) => status.code(),
                };
                Ok(Response::new(EchoResponse {
                    message: code.name().to_owned(),
                    ..Default::default()
                }))
            }
        })
        .build()
}

#[test]
fn a_handlers_deadline_flows_into_the_calls_it_makes() {
    let _leaks = rsgrpc_tests::leak::check();
    for backend_flavour in FLAVOURS {
        let timing = Arc::new(Timing::default());
        let (backend, backend_probe) =
            server_with(backend_flavour, |b| b.interceptor(timing.clone()));
        let probe = Probe::new();
        let front_server = Server::builder()
            .add_service(front(client(&backend), probe.clone()))
            .bind("127.0.0.1:0")
            .unwrap();
        let front_client = client(&front_server);
        for method in ["/test.Front/Call", "/test.Front/CallAsync"] {
            // The backend waits for cancellation (up to 30 s); the caller gives the whole
            // chain two seconds, which the backend call inherits.
            let tag = format!("{backend_flavour:?}{method}");
            let mut request = Request::new(req(&format!("wait-cancel:{tag}")));
            request.set_timeout(Duration::from_secs(2));
            let started = Instant::now();
            let outcome = front_client.blocking_unary::<_, EchoResponse>(method, request);
            // The backend saw its call end with the inherited deadline, well before its
            // own 30 s wait ran out.
            assert!(backend_probe.wait(&tag, Duration::from_secs(20)), "{tag}");
            assert!(started.elapsed() < Duration::from_secs(25), "{tag}");
            // Either the front answered with the backend's DEADLINE_EXCEEDED, or its own
            // caller's deadline won the race to the client.
            match outcome {
                Ok(reply) => assert_eq!(reply.get_ref().message, "DEADLINE_EXCEEDED", "{tag}"),
                Err(status) => assert_eq!(status.code(), Code::DeadlineExceeded, "{tag}"),
            }
            // The backend's interceptors are told why the call ended: its deadline, or
            // the reset the front's client sends when the same deadline fires there
            // first (a server cannot tell the two apart), never the handler's own status.
            assert!(
                eventually(|| timing.0.lock().unwrap().iter().any(|(_, code, _)| {
                    matches!(code, Code::DeadlineExceeded | Code::Cancelled)
                })),
                "{tag}: {:?}",
                timing.0.lock().unwrap()
            );
            timing.0.lock().unwrap().clear();
        }
        // Without a deadline upstream, none is invented.
        let reply = front_client
            .blocking_unary::<_, EchoResponse>("/test.Front/Call", Request::new(req("plain")))
            .unwrap();
        assert_eq!(reply.get_ref().message, "OK");
        assert_eq!(reply.get_ref().index, 1, "no timeout on the outgoing call");
    }
}

#[test]
fn cancelling_a_call_cancels_the_calls_its_handler_made() {
    let _leaks = rsgrpc_tests::leak::check();
    let rt = tokio_rt();
    for backend_flavour in FLAVOURS {
        let timing = Arc::new(Timing::default());
        let (backend, backend_probe) =
            server_with(backend_flavour, |b| b.interceptor(timing.clone()));
        let probe = Probe::new();
        let front_server = Server::builder()
            .add_service(front(client(&backend), probe.clone()))
            .bind("127.0.0.1:0")
            .unwrap();
        let front_client = client(&front_server);
        for method in ["/test.Front/Call", "/test.Front/CallAsync"] {
            let tag = format!("cancel-{backend_flavour:?}{method}");
            let message = format!("wait-cancel:{tag}");
            let call = {
                let client = front_client.clone();
                let message = message.clone();
                rt.spawn(async move {
                    client
                        .unary::<_, EchoResponse>(method, Request::new(req(&message)))
                        .await
                })
            };
            assert!(probe.wait(&format!("front:{message}"), Duration::from_secs(20)));
            // The backend call is in progress, its handler started. (A call cancelled
            // while its handler waits for a thread never runs that handler: it would
            // not see the cancellation this test is about.)
            assert!(eventually(|| backend.active_calls() == 1), "{tag}");
            assert!(
                backend_probe.wait(&format!("started:{tag}"), Duration::from_secs(20)),
                "{tag}: the backend's handler did not start"
            );
            // Dropping the caller's call cancels it at the front, which cancels the
            // backend call its handler is waiting on.
            let started = Instant::now();
            call.abort();
            assert!(
                backend_probe.wait(&tag, Duration::from_secs(20)),
                "{tag}: calls open at the front {}, at the backend {}; backend calls ended: {:?}",
                front_server.active_calls(),
                backend.active_calls(),
                timing.0.lock().unwrap()
            );
            assert!(started.elapsed() < Duration::from_secs(25), "{tag}");
            assert!(
                timing.saw(Code::Cancelled),
                "{tag}: {:?}",
                timing.0.lock().unwrap()
            );
            timing.0.lock().unwrap().clear();
        }
    }
    // The front is still healthy.
    let (backend, _) = server_with(Flavour::Async, |b| b);
    let front_server = Server::builder()
        .add_service(front(client(&backend), Probe::new()))
        .bind("127.0.0.1:0")
        .unwrap();
    let reply = client(&front_server)
        .blocking_unary::<_, EchoResponse>("/test.Front/CallAsync", timed("ok"))
        .unwrap();
    assert_eq!(reply.get_ref().message, "OK");
}

#[test]
fn server_interceptors_see_the_streams_of_every_kind_end() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in FLAVOURS {
        let timing = Arc::new(Timing::default());
        let (server, _probe) = server_with(flavour, |b| b.interceptor(timing.clone()));
        let outcomes = all_kinds_blocking(&client(&server), "hello");
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        let failed = all_kinds_blocking(&client(&server), "fail:9:no");
        assert!(failed.iter().all(|o| {
            o.as_ref()
                .is_err_and(|s| s.code() == Code::FailedPrecondition)
        }));
        assert!(eventually(|| timing.0.lock().unwrap().len() == 8));
        let mut seen: Vec<_> = timing
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(method, code, _)| format!("{method} {}", code.name()))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "Bidi FAILED_PRECONDITION",
                "Bidi OK",
                "ClientStream FAILED_PRECONDITION",
                "ClientStream OK",
                "ServerStream FAILED_PRECONDITION",
                "ServerStream OK",
                "Unary FAILED_PRECONDITION",
                "Unary OK",
            ],
            "{flavour:?}"
        );
        // Streams: an async response stream through the same hooks.
        let rt = tokio_rt();
        let client = client(&server);
        let mut request = timed("s");
        request.get_mut().count = 3;
        let stream = rt
            .block_on(client.server_streaming::<_, EchoResponse>(path(SVC, SERVER_STREAM), request))
            .unwrap()
            .into_inner();
        let items: Vec<_> = rt.block_on(stream.collect::<Vec<_>>());
        assert_eq!(items.len(), 3);
        assert!(eventually(|| timing.0.lock().unwrap().len() == 9));
    }
}

#[test]
fn server_interceptors_see_a_deadline_the_server_enforced() {
    let _leaks = rsgrpc_tests::leak::check();
    use prost::Message;

    // A raw HTTP/2 client sends `grpc-timeout` and never resets the stream itself, so
    // it is the server that ends the call.
    let rt = tokio_rt();
    for flavour in FLAVOURS {
        let timing = Arc::new(Timing::default());
        let (server, probe) = server_with(flavour, |b| b.interceptor(timing.clone()));
        let addr = server.local_addr();
        let tag = format!("raw-deadline-{flavour:?}");
        let body = req(&format!("wait-cancel:{tag}")).encode_to_vec();
        let framed = rsgrpc_tests::raw::grpc_message(false, &body);
        let response = rt.block_on(async {
            let mut send = crate::protocol::connect(addr).await;
            crate::protocol::raw_call(
                &mut send,
                addr,
                path(SVC, UNARY),
                &[
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                    // Time for the handler to start on a busy machine (a call whose
                    // deadline passes before that is answered without running it).
                    ("grpc-timeout", "1S"),
                ],
                framed.into(),
            )
            .await
        });
        assert_eq!(response.grpc_status().as_deref(), Some("4"), "{flavour:?}");
        assert!(probe.wait(&tag, Duration::from_secs(20)), "{flavour:?}");
        assert!(
            timing.saw(Code::DeadlineExceeded),
            "{flavour:?}: {:?}",
            timing.0.lock().unwrap()
        );
    }
}
