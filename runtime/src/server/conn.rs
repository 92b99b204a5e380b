//! The poller side of the server: accepting connections, serving HTTP/2 on them, and one
//! task per call that moves frames between its h2 stream and its completion queues.
//!
//! ```text
//!  h2                       poller task (this file)                  handler (pool/executor)
//!  ──                       ───────────────────────                  ───────────────────────
//!  HEADERS  ──▶ validate, route, parse grpc-timeout ──dispatch──▶   handler starts
//!  DATA     ──▶ split frames (limit checked first) ──requests──▶    Receiver
//!  RST      ──▶ mark cancelled, fail the request stream
//!  HEADERS/DATA/trailers ◀── send with flow control ◀──responses──  Responder
//!  deadline timer ──▶ mark cancelled, send DEADLINE_EXCEEDED
//! ```

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::service::{Handler, ServerCall};
use super::{Phase, ServerShared};
use crate::client::is_grpc_content_type;
use crate::codec::{self, CompressionEncoding, FrameDecoder};
use crate::cq::{self, Consumer, Producer};
use crate::deadline;
use crate::metadata::MetadataMap;
use crate::request::{CallContext, CancelState};
use crate::status::Status;
use crate::streaming::{Inbound, Outbound, Receiver, Responder, Side, coalesce};

/// Requests queued towards a handler before the poller stops reading.
const INBOUND_CAPACITY: usize = 32;
/// Responses queued towards the poller before a handler waits.
const OUTBOUND_CAPACITY: usize = 32;

/// Accepts connections until the server stops serving; each connection is placed on a
/// poller thread round-robin.
pub(super) async fn accept_loop(shared: Arc<ServerShared>, listener: std::net::TcpListener) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listening socket");
            return;
        }
    };
    let mut phase = shared.phase.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = tcp.set_nodelay(true);
                    let tcp = match tcp.into_std() {
                        Ok(tcp) => tcp,
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot hand over an accepted socket");
                            continue;
                        }
                    };
                    let guard = shared.track();
                    let conn_shared = shared.clone();
                    shared.rt.poller().spawn(async move {
                        let _guard = guard;
                        match TcpStream::from_std(tcp) {
                            Ok(tcp) => {
                                let span = tracing::debug_span!("connection", %remote);
                                serve_connection(conn_shared, tcp, remote)
                                    .instrument(span)
                                    .await;
                            }
                            Err(e) => tracing::debug!(error = %e, "cannot register a socket"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = phase.changed() => break,
        }
    }
    tracing::debug!("stopped accepting connections");
}

async fn serve_connection(shared: Arc<ServerShared>, tcp: TcpStream, remote: SocketAddr) {
    let config = &shared.config;
    let mut builder = h2::server::Builder::new();
    builder
        .max_header_list_size(config.max_header_list_size)
        .max_concurrent_streams(config.max_concurrent_streams)
        .initial_window_size(config.initial_stream_window_size)
        .initial_connection_window_size(config.initial_connection_window_size)
        .max_pending_accept_reset_streams(config.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(config.max_local_error_reset_streams));
    let handshake = tokio::time::timeout(config.handshake_timeout, builder.handshake(tcp));
    let mut connection = match handshake.await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "http/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(timeout = ?config.handshake_timeout, "closing a connection that sent no http/2 preface");
            return;
        }
    };
    let mut phase = shared.phase.subscribe();
    let mut watching = true;
    loop {
        tokio::select! {
            next = connection.accept() => match next {
                Some(Ok((request, respond))) => {
                    let guard = shared.track();
                    let shared = shared.clone();
                    let span = tracing::debug_span!(
                        "call",
                        method = request.uri().path(),
                        stream = ?respond.stream_id(),
                    );
                    tokio::spawn(
                        async move {
                            let _guard = guard;
                            serve_stream(shared, remote, request, respond).await;
                        }
                        .instrument(span),
                    );
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "connection error");
                    break;
                }
                None => break,
            },
            changed = phase.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                match *phase.borrow_and_update() {
                    Phase::Serving => {}
                    Phase::Draining => connection.graceful_shutdown(),
                    Phase::Stopped => break,
                }
            }
        }
    }
}

/// Answers a request that never reaches a handler.
fn reject(mut respond: SendResponse<Bytes>, status: Status) {
    let mut headers = HeaderMap::new();
    status.write_headers(&mut headers);
    let _ = respond.send_response(grpc_response(headers), true);
}

fn grpc_response(headers: HeaderMap) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response.headers_mut().insert(
        codec::GRPC_ACCEPT_ENCODING,
        HeaderValue::from_static(codec::ACCEPTED_ENCODINGS),
    );
    response
}

fn http_error(mut respond: SendResponse<Bytes>, status: StatusCode) {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    let _ = respond.send_response(response, true);
}

async fn serve_stream(
    shared: Arc<ServerShared>,
    remote: SocketAddr,
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();

    if parts.method != http::Method::POST {
        tracing::debug!(method = %parts.method, "rejecting a non-POST request");
        return http_error(respond, StatusCode::METHOD_NOT_ALLOWED);
    }
    if !is_grpc_content_type(parts.headers.get(CONTENT_TYPE)) {
        tracing::debug!(content_type = ?parts.headers.get(CONTENT_TYPE), "rejecting a non-grpc content-type");
        return http_error(respond, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let Some(handler) = shared.router.get(path).cloned() else {
        return reject(
            respond,
            Status::unimplemented(format!("method {path} is not implemented by this server")),
        );
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
                return reject(respond, status);
            }
        },
    };
    // Responses are compressed when the server is set to and the client accepts it.
    let response_compression = shared.config.send_compression.filter(|encoding| {
        parts
            .headers
            .get(codec::GRPC_ACCEPT_ENCODING)
            .is_some_and(|accepted| encoding.listed_in(accepted.as_bytes()))
    });
    let timeout = match parts.headers.get(deadline::GRPC_TIMEOUT) {
        None => None,
        Some(value) => match deadline::parse_timeout(value.as_bytes()) {
            Some(timeout) => Some(timeout),
            None => {
                return reject(
                    respond,
                    Status::internal(format!("malformed grpc-timeout {value:?}")),
                );
            }
        },
    };
    let deadline = timeout.map(|t| Instant::now() + t);

    let (requests_tx, requests_rx) = cq::queue(INBOUND_CAPACITY);
    let (ops_tx, ops_rx) = cq::queue(OUTBOUND_CAPACITY);
    let cancel = Arc::new(CancelState::default());
    let compress = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let call = ServerCall {
        metadata: MetadataMap::from_headers(&parts.headers),
        context: Arc::new(CallContext {
            remote_addr: Some(remote),
            deadline,
            cancel: cancel.clone(),
            compress: compress.clone(),
        }),
        requests: {
            let mut requests = Receiver::new(
                requests_rx,
                Side::Server,
                shared.config.max_receive_message_size,
            );
            requests.set_encoding(request_encoding);
            requests
        },
        responder: Arc::new(Responder::new(
            ops_tx,
            shared.config.max_send_message_size,
            response_compression,
            compress,
            cancel.clone(),
        )),
    };
    match handler {
        Handler::Blocking(handler) => shared.rt.workers.execute(Box::new(move || handler(call))),
        Handler::Async(handler) => shared.spawn(handler(call)),
    }

    let mut stream = ServerStream {
        respond: Some(respond),
        send: None,
        pending: None,
        recv: Some(body),
        decoder: {
            let mut decoder = FrameDecoder::new(shared.config.max_receive_message_size);
            if request_encoding.is_some() {
                decoder.allow_compressed();
            }
            decoder
        },
        requests: Some(requests_tx),
        batch: Vec::new(),
        ops: ops_rx,
        deferred: None,
        cancel,
        sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
        stop_signal: shared.stop_signal(),
        shared: shared.clone(),
    };
    poll_fn(|cx| stream.poll(cx)).await;
}

struct ServerStream {
    /// Until the response headers are sent.
    respond: Option<SendResponse<Bytes>>,
    /// After the response headers are sent.
    send: Option<SendStream<Bytes>>,
    /// Part of a message waiting for flow-control capacity.
    pending: Option<Bytes>,
    /// Until the request stream ended (or the handler stopped reading it).
    recv: Option<RecvStream>,
    decoder: FrameDecoder,
    requests: Option<Producer<Inbound>>,
    batch: Vec<Inbound>,
    ops: Consumer<Outbound>,
    /// An operation taken from `ops` while coalescing messages, handled next.
    deferred: Option<Outbound>,
    cancel: Arc<CancelState>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Completes when the server stops without waiting for calls any longer.
    stop_signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    shared: Arc<ServerShared>,
}

impl ServerStream {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop_signal.as_mut().poll(cx).is_ready() || self.shared.is_stopped() {
            self.abort(Status::unavailable("the server is shutting down"));
            self.reset(h2::Reason::CANCEL);
            return Poll::Ready(());
        }
        if let Some(sleep) = &mut self.sleep {
            if sleep.as_mut().poll(cx).is_ready() {
                self.abort(Status::deadline_exceeded("deadline exceeded"));
                self.send_status(Status::deadline_exceeded("deadline exceeded"));
                return Poll::Ready(());
            }
        }
        if let Some(reason) = self.poll_reset(cx) {
            tracing::debug!(%reason, "client reset the call");
            self.abort(Status::cancelled(format!(
                "the client cancelled the call ({reason})"
            )));
            return Poll::Ready(());
        }
        if let Err(status) = self.poll_requests(cx) {
            self.abort(status.clone());
            self.send_status(status);
            return Poll::Ready(());
        }
        self.poll_responses(cx)
    }

    /// Marks the call cancelled and fails the handler's request stream.
    fn abort(&mut self, status: Status) {
        self.cancel.cancel();
        if let Some(requests) = self.requests.take() {
            let _ = requests.push(Inbound::Error(status));
        }
        self.recv = None;
    }

    fn reset(&mut self, reason: h2::Reason) {
        if let Some(send) = &mut self.send {
            send.send_reset(reason);
        } else if let Some(respond) = &mut self.respond {
            respond.send_reset(reason);
        }
    }

    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Option<h2::Reason> {
        let polled = if let Some(send) = &mut self.send {
            send.poll_reset(cx)
        } else if let Some(respond) = &mut self.respond {
            respond.poll_reset(cx)
        } else {
            return None;
        };
        match polled {
            Poll::Ready(Ok(reason)) => Some(reason),
            Poll::Ready(Err(_)) => Some(h2::Reason::CANCEL),
            Poll::Pending => None,
        }
    }

    /// Moves request messages to the handler, respecting its pace.
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        let result = self.read_requests(cx);
        if !self.batch.is_empty() {
            if let Some(requests) = &self.requests {
                let _ = requests.push_all(self.batch.drain(..));
            }
        }
        result
    }

    fn read_requests(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        loop {
            let (Some(body), Some(requests)) = (&mut self.recv, &self.requests) else {
                return Ok(());
            };
            match requests.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    // The handler dropped its request stream: stop reading.
                    self.recv = None;
                    self.requests = None;
                    return Ok(());
                }
                Poll::Pending => return Ok(()),
            }
            match body.poll_data(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Some(Ok(chunk))) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    let mut messages = Vec::new();
                    self.decoder.push(chunk, &mut messages)?;
                    self.batch
                        .extend(messages.into_iter().map(Inbound::Message));
                    if self.batch.len() >= INBOUND_CAPACITY {
                        let _ = requests.push_all(self.batch.drain(..));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Err(crate::client::h2_status(&e).with_source(e));
                }
                Poll::Ready(None) => {
                    if self.decoder.has_partial() {
                        return Err(Status::internal(
                            "request stream ended in the middle of a message",
                        ));
                    }
                    self.recv = None;
                    if let Some(requests) = self.requests.take() {
                        let _ = requests.push_all(self.batch.drain(..));
                        // Dropping the producer tells the handler the stream ended.
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Sends what the handler queued; `Ready` once the status was sent.
    fn poll_responses(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(buf) = &mut self.pending {
                let Some(send) = &mut self.send else {
                    unreachable!("messages are only pending after the headers")
                };
                send.reserve_capacity(buf.len());
                match ready!(send.poll_capacity(cx)) {
                    Some(Ok(0)) => continue,
                    Some(Ok(n)) => {
                        let chunk = buf.split_to(n.min(buf.len()));
                        if buf.is_empty() {
                            self.pending = None;
                        }
                        if send.send_data(chunk, false).is_err() {
                            self.abort(Status::cancelled("the response stream was closed"));
                            return Poll::Ready(());
                        }
                    }
                    None | Some(Err(_)) => {
                        self.abort(Status::cancelled("the response stream was closed"));
                        return Poll::Ready(());
                    }
                }
                continue;
            }
            let op = match self.deferred.take() {
                Some(op) => Some(op),
                None => ready!(self.ops.poll_pop(cx)),
            };
            match op {
                Some(Outbound::Headers(headers)) => {
                    if self.send_headers(headers).is_err() {
                        return Poll::Ready(());
                    }
                }
                Some(Outbound::Message(framed)) => {
                    if self.send.is_none() && self.send_headers(HeaderMap::new()).is_err() {
                        return Poll::Ready(());
                    }
                    let (joined, next) = coalesce(framed, &mut self.ops);
                    self.pending = Some(joined);
                    self.deferred = next;
                }
                Some(Outbound::Trailers(trailers)) => {
                    self.send_trailers(trailers);
                    return Poll::Ready(());
                }
                Some(Outbound::Finish | Outbound::Abort(_)) => {
                    tracing::debug!("ignoring a client-side operation on a server call");
                }
                None => {
                    self.send_status(Status::unknown("the handler ended without a status"));
                    return Poll::Ready(());
                }
            }
        }
    }

    fn send_headers(&mut self, headers: HeaderMap) -> Result<(), ()> {
        let Some(mut respond) = self.respond.take() else {
            return Ok(());
        };
        match respond.send_response(grpc_response(headers), false) {
            Ok(send) => {
                self.send = Some(send);
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "failed to send response headers");
                self.abort(Status::cancelled("the response stream was closed"));
                Err(())
            }
        }
    }

    /// Sends the final status as trailers, or as a Trailers-Only response when no
    /// headers went out yet.
    fn send_trailers(&mut self, trailers: HeaderMap) {
        if let Some(mut respond) = self.respond.take() {
            let _ = respond.send_response(grpc_response(trailers), true);
        } else if let Some(send) = &mut self.send {
            let _ = send.send_trailers(trailers);
        }
        // The call is over for the handler even if the client is still sending.
        self.cancel_requests_quietly();
    }

    fn send_status(&mut self, status: Status) {
        let mut trailers = HeaderMap::new();
        status.write_headers(&mut trailers);
        self.send_trailers(trailers);
    }

    fn cancel_requests_quietly(&mut self) {
        self.recv = None;
        if let Some(requests) = self.requests.take() {
            let _ = requests.push_all(self.batch.drain(..));
        }
    }
}
