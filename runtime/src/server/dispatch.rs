//! From a new stream to a running handler: the stream's checks (method, content type,
//! route, encoding, timeout), admission against the server's limits and quotas, the
//! call's queues and responder, and the batch of handlers a connection task hands to the
//! worker pool or the executor at the end of each turn.

use std::sync::Arc;

use h2::RecvStream;
use h2::server::SendResponse;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue};

use super::ServerShared;
use super::responder::Responder;
use super::service::Run;
use super::stream::ServerStream;
use super::web::{self, Kind, WebCall};
use crate::call::cancel::{CallContext, CancelState};
use crate::call::chunks::{ChunkPool, Spent};
use crate::call::inflow::Inflow;
use crate::call::outgoing::Outgoing;
use crate::call::receiver::Receiver;
use crate::codec::{self, CompressionEncoding, FrameDecoder};
use crate::cq::{self};
use crate::deadline;
use crate::executor::BoxFuture;
use crate::limits;
use crate::metadata::MetadataMap;
use crate::pool::Job;
use crate::quota::{Charge, Quota};
use crate::status::Status;
use crate::sync::Mutex;
use crate::transport::PeerInfo;
use crate::transport::frames::End;
use crate::transport::lent::Lent;

/// Handlers that became runnable during one turn of a connection task, handed over
/// together at the end of the turn.
#[derive(Default)]
pub(super) struct Dispatch {
    /// Only the connection task touches this; the lock is never contended.
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    jobs: Vec<Job>,
    tasks: Vec<BoxFuture>,
}

impl Dispatch {
    pub(super) fn job(&self, job: Job) {
        self.pending.lock().jobs.push(job);
    }

    pub(super) fn task(&self, task: BoxFuture) {
        self.pending.lock().tasks.push(task);
    }

    pub(super) fn flush(&self, shared: &ServerShared) {
        let mut pending = self.pending.lock();
        if !pending.jobs.is_empty() {
            shared.rt.workers.enqueue(pending.jobs.drain(..));
        }
        if !pending.tasks.is_empty() {
            shared.spawn_all(pending.tasks.drain(..));
        }
    }
}

/// Answers a request that never reaches a handler.
fn reject(mut respond: SendResponse<Outgoing>, status: Status, web: Option<&WebCall>) {
    let mut headers = HeaderMap::new();
    status.write_headers(&mut headers);
    let _ = respond.send_response(grpc_response(headers, web), true);
}

/// Response headers (or a Trailers-Only response): `headers` with the content type and
/// the encodings this server accepts, and a gRPC-Web call's own.
pub(super) fn grpc_response(headers: HeaderMap, web: Option<&WebCall>) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response.headers_mut().insert(
        codec::GRPC_ACCEPT_ENCODING,
        HeaderValue::from_static(codec::ACCEPTED_ENCODINGS),
    );
    if let Some(web) = web {
        web.head(&mut response);
    }
    response
}

/// Everything a handler needs to start, kept while its request message is collected (unary
/// and server-streaming calls) or while its connection holds its share of the blocking
/// workers.
pub(super) struct Start {
    pub(super) site: Arc<super::service::Site>,
    pub(super) run: Run,
    pub(super) metadata: MetadataMap,
    pub(super) context: Arc<CallContext>,
    pub(super) responder: Arc<Responder>,
    pub(super) encoding: Option<CompressionEncoding>,
    /// Client and bidi streaming: the handler's request stream, filled (within its budget)
    /// while the handler waits to start.
    /// (Boxed: the call's task stays small, and the handler takes it boxed.)
    pub(super) stream: Option<Box<Receiver>>,
}

/// What a connection's calls share: the server, the batch of handlers to hand over, the
/// connection's memory quota and its share of the blocking workers.
pub(super) struct ConnContext {
    pub(super) shared: Arc<ServerShared>,
    pub(super) dispatch: Arc<Dispatch>,
    pub(super) peer: Arc<PeerInfo>,
    /// The connection's memory quota (under the server's).
    pub(super) quota: Arc<Quota>,
    /// Blocking handlers of this connection admitted and not finished, counted against
    /// `max_blocking_handlers_per_connection` (a quota counting handlers, not bytes).
    pub(super) workers: Arc<Quota>,
    /// Where the connection's writer finds the chunks handed to h2, to hold what h2
    /// writes of them instead of copying it.
    pub(super) lent: Lent,
}

impl ConnContext {
    /// Whether the connection may not open streams now: it used up its own quota, or the
    /// server's is used up and this connection holds more than an even share of it (so
    /// that light connections keep working while heavy ones are held back).
    fn over_quota(&self) -> bool {
        if self.quota.is_full() {
            return true;
        }
        let server = &self.shared.quota;
        if !server.is_full() {
            return false;
        }
        let connections = self.shared.open_connections().max(1);
        self.quota.used() > server.limit() / connections
    }
}

/// Checks a new stream and builds its call; `None` when it was answered already.
pub(super) fn accept_call(
    conn: &Arc<ConnContext>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Outgoing>,
) -> Option<ServerStream> {
    let shared = &conn.shared;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();

    let web = match web::classify(&parts, shared.config.web.as_deref()) {
        Kind::Native => None,
        Kind::Web(web) => Some(web),
        Kind::Answer(response) => {
            let _ = respond.send_response(response, true);
            return None;
        }
    };
    let Some(handler) = shared.router().get(path) else {
        let status =
            Status::unimplemented(format!("method {path} is not implemented by this server"));
        reject(respond, status, web.as_deref());
        return None;
    };
    let request_encoding = match parts.headers.get(codec::GRPC_ENCODING) {
        None => None,
        Some(value) => match CompressionEncoding::from_header(value.as_bytes()) {
            Ok(encoding) => encoding,
            Err(()) => {
                let status = Status::unimplemented(format!(
                    "grpc-encoding {:?} is not supported; this server accepts {}",
                    String::from_utf8_lossy(value.as_bytes()),
                    codec::ACCEPTED_ENCODINGS
                ));
                reject(respond, status, web.as_deref());
                return None;
            }
        },
    };
    let timeout = match parts.headers.get(deadline::GRPC_TIMEOUT) {
        None => None,
        Some(value) => match deadline::parse_timeout(value.as_bytes()) {
            Some(timeout) => Some(timeout),
            None => {
                reject(
                    respond,
                    Status::internal(format!("malformed grpc-timeout {value:?}")),
                    web.as_deref(),
                );
                return None;
            }
        },
    };
    if conn.over_quota() {
        // Memory pressure: no new work on this connection until its calls give some
        // back. The client may retry the stream elsewhere.
        tracing::debug!(
            connection = conn.quota.used(),
            server = shared.quota.used(),
            "refusing a call: the memory quota is used up"
        );
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return None;
    }
    let Some(call_guard) = shared.admit_call() else {
        tracing::debug!("refusing a call over max_concurrent_calls");
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return None;
    };
    // The service's own settings override the server's.
    let settings = &handler.settings;
    let max_receive = settings
        .max_receive_message_size
        .unwrap_or(shared.config.max_receive_message_size);
    let max_send = settings
        .max_send_message_size
        .unwrap_or(shared.config.max_send_message_size);
    // Responses are compressed when the service or server is set to and the client accepts
    // it.
    let send_compression = settings.send_compression.or(shared.config.send_compression);
    let response_compression = send_compression.filter(|encoding| {
        parts
            .headers
            .get(codec::GRPC_ACCEPT_ENCODING)
            .is_some_and(|accepted| encoding.listed_in(accepted.as_bytes()))
    });
    // A timeout of zero is a deadline already past: the call is answered, never run.
    let deadline = timeout.and_then(deadline::deadline_after);

    let quota = Some(conn.quota.clone());
    let (ops_tx, ops_rx) = cq::queue_with_quota(limits::SERVER_OUTBOUND_QUEUE, quota.clone());
    let pool = ChunkPool::new(quota.clone());
    let cancel = Arc::new(CancelState::default());
    let compress = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let context = Arc::new(CallContext {
        peer: conn.peer.clone(),
        deadline,
        cancel: cancel.clone(),
        compress: compress.clone(),
    });
    let responder = Arc::new(Responder::new(
        ops_tx,
        pool.clone(),
        max_send,
        response_compression,
        &context,
        handler.site.metrics.clone(),
    ));
    let mut decoder = FrameDecoder::new(max_receive);
    if request_encoding.is_some() {
        decoder.allow_compressed();
    }
    if handler.single_request {
        decoder.keep_small_chunks();
    }
    let mut inflow = Inflow::new(decoder);
    if web.as_ref().is_some_and(|web| web.text()) {
        inflow.base64();
    }
    let mut stream = ServerStream {
        respond: Some(respond),
        send: None,
        pending: None,
        spent: Spent::new(pool),
        recv: Some(body),
        inflow,
        batch: Vec::new(),
        start: None,
        first: None,
        first_charge: Charge::default(),
        requests: None,
        ops: ops_rx,
        deferred: None,
        cancel,
        deadline,
        sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
        conn: conn.clone(),
        single: handler.single_request,
        unary: handler.unary,
        done: false,
        web,
        _call: call_guard,
    };
    let metadata = MetadataMap::from_headers(&parts.headers);
    let mut start = Start {
        site: handler.site.clone(),
        run: handler.run.clone(),
        metadata,
        context,
        responder,
        encoding: request_encoding,
        stream: None,
    };
    if !handler.single_request {
        // Client and bidi streaming: the handler starts without waiting for requests and
        // reads them as they come.
        let (requests_tx, requests_rx) = cq::queue_with_quota(limits::INBOUND_QUEUE, quota);
        let mut requests = Receiver::new(requests_rx, End::Server, max_receive)
            .count(handler.site.metrics.clone());
        requests.set_encoding(request_encoding);
        stream.requests = Some(requests_tx);
        start.stream = Some(Box::new(requests));
    }
    stream.start = Some(start);
    Some(stream)
}
