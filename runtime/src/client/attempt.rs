//! One attempt of a client call on the poller: a stream opened on a connection the
//! channel picks (again on another one if the connection turns out dead before the stream
//! existed), the request sent (replayed on a retry), and the response moved into the
//! call's inbound queue until its trailers, a reset, the deadline or the caller going away.
//!
//! ```text
//!  user thread/task                    poller task (an attempt)                h2
//!  ───────────────                     ───────────────────────                 ──
//!  Outbound::Message ──ops queue──▶   reserve capacity, send_data   ──▶  DATA frames
//!  Outbound::Finish                   send_data(eos)                ──▶  END_STREAM
//!  Receiver (events queue)  ◀──────   Headers / Message / Trailers  ◀──  HEADERS, DATA
//!  Receiver dropped                   sees queue closed: RST_STREAM(CANCEL)
//!                                     deadline timer: RST_STREAM(CANCEL),
//!                                                     DEADLINE_EXCEEDED
//! ```

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use h2::{RecvStream, SendStream};

use super::call::{Failure, Outcome, Stop, deadline_exceeded};
use crate::call::chunks::Spent;
use crate::call::events::{Inbound, Outbound};
use crate::call::inflow::Inflow;
use crate::call::outgoing::{Outgoing, frame_aligned};
use crate::call::protocol::{h2_status, is_grpc_content_type};
use crate::call::web::Form;
use crate::channel::{CallOnConnection, ChannelInner};
use crate::codec::{self, CompressionEncoding, FrameDecoder};
use crate::cq::{Consumer, Producer, Weigh};
use crate::status::Status;

/// How many times a call is retried transparently when its connection turns out to be
/// dead before the stream was opened.
const START_ATTEMPTS: usize = 3;

type Started = (
    h2::client::ResponseFuture,
    SendStream<Outgoing>,
    CallOnConnection,
    (u64, u64),
);

async fn start_stream(
    channel: &Arc<ChannelInner>,
    head: &http::Request<()>,
    wait_for_ready: bool,
    deadline: Option<Instant>,
) -> Result<Started, Status> {
    let mut last = None;
    let mut attempts = 0;
    // A stream that was never opened never reached the server: it is tried again on
    // another connection (gRFC A6), a few times when failing fast, and for as long as the
    // deadline allows when waiting for ready (new connections come after the channel's
    // reconnection backoff).
    while wait_for_ready || attempts < START_ATTEMPTS {
        attempts += 1;
        let picked = channel.connection(wait_for_ready).await?;
        let mut ready = match picked.send.ready().await {
            Ok(ready) => ready,
            Err(e) => {
                channel.lost(picked.id);
                last = Some(e);
                continue;
            }
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // Nothing of the call has been sent: it fails here, unseen by the server.
            return Err(deadline_exceeded());
        }
        match ready.send_request(head.clone(), false) {
            Ok((response, send)) => return Ok((response, send, picked.guard, picked.id)),
            Err(e) => {
                // The connection went away (GOAWAY or EOF) before the stream existed: no
                // byte of this call reached the server, so another connection may take it.
                channel.lost(picked.id);
                last = Some(e);
            }
        }
    }
    Err(last.map_or_else(
        || Status::unavailable("no connection"),
        |e| h2_status(&e).with_source(e),
    ))
}

/// The request messages of a streaming call sent so far, to send again on a retry.
#[derive(Default)]
pub(super) struct Replay {
    chunks: Vec<Outgoing>,
    bytes: usize,
}

/// What lasts across a call's attempts.
pub(super) struct Call {
    pub(super) ops: Consumer<Outbound>,
    /// An operation taken from `ops` while looking behind a message, handled next.
    pub(super) deferred: Option<Outbound>,
    pub(super) events: Producer<Inbound>,
    pub(super) deadline: Option<Instant>,
    /// Chunks handed to h2, recycled once written.
    pub(super) spent: Spent,
    pub(super) stop: Stop,
    /// Completions gathered during one poll, handed over with one wake-up.
    pub(super) batch: Vec<Inbound>,
    /// What a retry would send again; `None` once it would not fit (or without a policy).
    pub(super) replay: Option<Replay>,
    /// The caller half-closed the request stream.
    pub(super) finished: bool,
    pub(super) max_receive: usize,
}

/// One attempt's stream.
struct Attempt {
    send: SendStream<Outgoing>,
    send_done: bool,
    /// Part of a message waiting for flow-control capacity.
    pending: Option<Outgoing>,
    /// Chunks of earlier attempts, sent first on a retry.
    resend: std::collections::VecDeque<Outgoing>,
    recv: Recv,
    /// Received bytes on their way to the caller.
    inflow: Inflow,
    /// Response headers went to the caller.
    committed: bool,
    /// The final status code seen in the trailers.
    code: Option<crate::Code>,
    /// Counts the call as open on its connection, and learns of its GOAWAY.
    on_connection: CallOnConnection,
    channel: Arc<ChannelInner>,
    connection: (u64, u64),
}

impl Call {
    /// Runs one attempt: opens a stream, sends the request (again, on a retry) and reads
    /// the response.
    pub(super) async fn attempt(
        &mut self,
        channel: &Arc<ChannelInner>,
        head: &http::Request<()>,
        body: &Option<Bytes>,
        wait_for_ready: bool,
    ) -> Outcome {
        // Get a connection and open the stream, racing the deadline and the caller giving
        // up.
        let start = start_stream(channel, head, wait_for_ready, self.deadline);
        let started = tokio::select! {
            started = start => started,
            _ = poll_fn(|cx| self.events.poll_closed(cx)) => return Outcome::Done { code: None },
            status = poll_fn(|cx| self.stop.poll(cx)) => {
                // A call that waited for a connection says why there was none.
                Err(match channel.last_failure() {
                    Some(failure) if status.code() == crate::Code::DeadlineExceeded => {
                        Status::deadline_exceeded(format!(
                            "deadline exceeded while waiting for a ready connection; last \
                             connection error: {}",
                            failure.message()
                        ))
                    }
                    _ => status,
                })
            }
        };
        let (response, mut send, on_connection, connection) = match started {
            Ok(started) => started,
            Err(status) => {
                return Outcome::Failed(Failure {
                    // A deadline or a cancelled parent ends the call, whatever the policy.
                    committed: matches!(
                        status.code(),
                        crate::Code::DeadlineExceeded | crate::Code::Cancelled
                    ),
                    status,
                    refused: false,
                    unprocessed: false,
                    trailers: None,
                });
            }
        };
        let mut send_done = false;
        if let Some(body) = body {
            let mut body = Outgoing::from(body.clone());
            body.lend(on_connection.lent());
            if let Err(e) = send.send_data(body, true) {
                tracing::debug!(error = %e, "failed to send the request");
            }
            send_done = true;
        }
        let mut inflow = Inflow::new(FrameDecoder::new(self.max_receive));
        if channel.config.grpc_web {
            inflow.web_response();
        }
        let mut attempt = Attempt {
            send,
            send_done,
            pending: None,
            resend: self
                .replay
                .as_ref()
                .map(|r| r.chunks.iter().cloned().collect())
                .unwrap_or_default(),
            recv: Recv::Head(response),
            inflow,
            committed: false,
            code: None,
            on_connection,
            channel: channel.clone(),
            connection,
        };
        poll_fn(|cx| self.poll(&mut attempt, cx)).await
    }

    /// A failure that is not retried reaches the caller.
    pub(super) fn deliver(&mut self, failure: Failure) {
        self.flush();
        let event = match failure.trailers {
            Some(trailers) => Inbound::Trailers(trailers),
            None => Inbound::Error(failure.status),
        };
        let _ = self.events.push(event);
    }

    fn poll(&mut self, attempt: &mut Attempt, cx: &mut Context<'_>) -> Poll<Outcome> {
        if let Poll::Ready(status) = self.stop.poll(cx) {
            attempt.send.send_reset(h2::Reason::CANCEL);
            return Poll::Ready(Outcome::Failed(Failure {
                status,
                committed: true,
                refused: false,
                unprocessed: false,
                trailers: None,
            }));
        }
        if self.events.poll_closed(cx).is_ready() {
            // The caller dropped the call: cancel it at the server.
            attempt.send.send_reset(h2::Reason::CANCEL);
            return Poll::Ready(Outcome::Done { code: None });
        }
        if !attempt.send_done {
            match self.poll_send(attempt, cx) {
                Poll::Ready(Ok(())) => attempt.send_done = true,
                Poll::Ready(Err(status)) => {
                    // The caller's own request stream failed: never retried.
                    attempt.send.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(Outcome::Failed(Failure {
                        status,
                        committed: true,
                        refused: false,
                        unprocessed: false,
                        trailers: None,
                    }));
                }
                Poll::Pending => {}
            }
        }
        let result = self.poll_recv(attempt, cx);
        self.flush();
        match result {
            Poll::Ready(Ok(None)) => Poll::Ready(Outcome::Done { code: attempt.code }),
            Poll::Ready(Ok(Some(failure))) => Poll::Ready(Outcome::Failed(failure)),
            Poll::Ready(Err(e)) => {
                attempt.send.send_reset(h2::Reason::CANCEL);
                if e.connection_failed {
                    // Later calls must not be placed on this connection while its driver
                    // has yet to notice.
                    attempt.channel.lost(attempt.connection);
                }
                // A GOAWAY whose last-stream-id is below this stream: not processed.
                let unprocessed = e.go_away
                    && attempt
                        .on_connection
                        .unprocessed(attempt.send.stream_id().as_u32());
                Poll::Ready(Outcome::Failed(Failure {
                    refused: e.refused,
                    unprocessed,
                    status: e.status,
                    committed: attempt.committed,
                    trailers: None,
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Hands the completions gathered so far to the caller, with one wake-up.
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let _ = self.events.push_all(self.batch.drain(..));
        }
    }

    /// Sends queued requests; `Ready(Ok)` once the client half-closed.
    fn poll_send(
        &mut self,
        attempt: &mut Attempt,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Status>> {
        loop {
            if attempt.pending.is_none() {
                attempt.pending = attempt.resend.pop_front();
            }
            if attempt.pending.is_some() {
                // With a message behind that fills frames of its own, h2 gets whole frames
                // and the tail goes with the start of that message (see `frame_aligned`).
                let behind = match attempt.resend.front() {
                    Some(next) => Some(next.len()),
                    None => {
                        if self.deferred.is_none() {
                            self.deferred = self.ops.try_pop();
                        }
                        match &self.deferred {
                            Some(Outbound::Message(next)) => Some(next.len()),
                            _ => None,
                        }
                    }
                };
                let Some(buf) = &mut attempt.pending else {
                    unreachable!("a message is pending")
                };
                let want = frame_aligned(buf.len(), behind);
                if want == 0 {
                    let next = match attempt.resend.pop_front() {
                        Some(next) => next,
                        None => {
                            let Some(Outbound::Message(chunk)) = self.deferred.take() else {
                                unreachable!("a message is behind")
                            };
                            let bytes = self.spent.send(chunk);
                            remember(&mut self.replay, &bytes);
                            bytes
                        }
                    };
                    buf.append(next);
                    continue;
                }
                attempt.send.reserve_capacity(want);
                // Capacity already assigned is used at once: `poll_capacity` reports only
                // increases.
                let n = match attempt.send.capacity() {
                    0 => match ready!(attempt.send.poll_capacity(cx)) {
                        Some(Ok(n)) => n,
                        // The stream was reset or closed: the response side reports why.
                        None | Some(Err(_)) => {
                            attempt.pending = None;
                            return Poll::Ready(Ok(()));
                        }
                    },
                    n => n,
                };
                if n == 0 {
                    continue;
                }
                let mut chunk = buf.split_to(n.min(want));
                if buf.is_empty() {
                    attempt.pending = None;
                }
                chunk.lend(attempt.on_connection.lent());
                if let Err(e) = attempt.send.send_data(chunk, false) {
                    // The stream is gone; the response side reports why.
                    tracing::debug!(error = %e, "request stream closed while sending");
                    attempt.pending = None;
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if self.finished {
                // A retry of a call whose requests were all sent: end the stream again.
                let _ = attempt.send.send_data(Outgoing::default(), true);
                return Poll::Ready(Ok(()));
            }
            let op = match self.deferred.take() {
                Some(op) => Some(op),
                None => ready!(self.ops.poll_pop(cx)),
            };
            match op {
                Some(Outbound::Message(chunk)) => {
                    let bytes = self.spent.send(chunk);
                    remember(&mut self.replay, &bytes);
                    attempt.pending = Some(bytes);
                }
                Some(Outbound::Finish) => {
                    self.finished = true;
                    let _ = attempt.send.send_data(Outgoing::default(), true);
                    return Poll::Ready(Ok(()));
                }
                Some(Outbound::Abort(status)) => return Poll::Ready(Err(status)),
                Some(Outbound::Headers(_) | Outbound::Trailers(_)) => {
                    return Poll::Ready(Err(Status::internal(
                        "client call was given a server-side operation",
                    )));
                }
                // Every sender vanished without finishing (a panic while producing
                // requests): the stream is incomplete, so it must not look complete.
                None => {
                    return Poll::Ready(Err(Status::cancelled(
                        "the request stream was dropped before it finished",
                    )));
                }
            }
        }
    }

    /// Reads the response: `Ready(Ok(None))` once trailers were handed over,
    /// `Ready(Ok(Some))` for a Trailers-Only failure the caller has not seen yet.
    fn poll_recv(
        &mut self,
        attempt: &mut Attempt,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Failure>, AttemptError>> {
        loop {
            match &mut attempt.recv {
                Recv::Head(response) => {
                    let response = ready!(Pin::new(response).poll(cx)).map_err(AttemptError::h2)?;
                    attempt.on_connection.served();
                    let (parts, body) = response.into_parts();
                    if parts.headers.contains_key(crate::status::GRPC_STATUS) {
                        // Trailers-Only: the status is in the headers.
                        attempt.recv = Recv::Done;
                        let status = Status::from_headers(&parts.headers);
                        match status {
                            Some(status) if !status.is_ok() => {
                                return Poll::Ready(Ok(Some(Failure {
                                    status,
                                    committed: false,
                                    refused: false,
                                    unprocessed: false,
                                    trailers: Some(parts.headers),
                                })));
                            }
                            _ => {
                                attempt.code = Some(crate::Code::Ok);
                                self.batch.push(Inbound::Trailers(parts.headers));
                                return Poll::Ready(Ok(None));
                            }
                        }
                    }
                    if parts.status != http::StatusCode::OK {
                        return Poll::Ready(Err(Status::from_http_status(parts.status).into()));
                    }
                    let content_type = parts.headers.get(http::header::CONTENT_TYPE);
                    let web = attempt.channel.config.grpc_web;
                    let expected = if web {
                        Form::of(content_type) == Some(Form::Binary)
                    } else {
                        is_grpc_content_type(content_type)
                    };
                    if !expected {
                        return Poll::Ready(Err(Status::unknown(format!(
                            "peer answered with content-type {content_type:?}, not {}",
                            if web {
                                "application/grpc-web"
                            } else {
                                "application/grpc"
                            }
                        ))
                        .into()));
                    }
                    if let Some(value) = parts.headers.get(codec::GRPC_ENCODING) {
                        match CompressionEncoding::from_header(value.as_bytes()) {
                            Ok(Some(_)) => attempt.inflow.decoder_mut().allow_compressed(),
                            Ok(None) => {}
                            Err(()) => {
                                return Poll::Ready(Err(Status::unimplemented(format!(
                                    "the server compresses with grpc-encoding {:?}, which this \
                                     client does not support",
                                    String::from_utf8_lossy(value.as_bytes())
                                ))
                                .into()));
                            }
                        }
                    }
                    // The caller sees the response from here: no retry after this.
                    attempt.committed = true;
                    self.replay = None;
                    self.batch.push(Inbound::Headers(parts.headers));
                    attempt.recv = Recv::Body(body);
                }
                Recv::Body(body) => {
                    // Flow control (see `Inflow`): messages move to the caller as its
                    // queue has room, and credit goes back for what moved on, so a caller
                    // that does not read holds at most the queue's budget, the stream's
                    // window (at wire size) and one message.
                    let read = attempt.inflow.poll_read(body, cx);
                    if let Poll::Ready(Err(e)) = read {
                        return Poll::Ready(Err(AttemptError::h2(e)));
                    }
                    let room = match self.events.poll_ready(cx) {
                        Poll::Ready(Ok(room)) => {
                            let batched: usize = self.batch.iter().map(Weigh::weight).sum();
                            room.saturating_sub(batched)
                        }
                        // The caller went away.
                        Poll::Ready(Err(_)) => return Poll::Ready(Ok(None)),
                        Poll::Pending => 0,
                    };
                    let had_trailers = attempt.inflow.web_trailers();
                    let drained = attempt.inflow.drain(room, &mut self.batch)?;
                    attempt.inflow.release(body, drained, None, cx);
                    if attempt.inflow.web_trailers() && !had_trailers {
                        // A gRPC-Web response's status, from its last frame.
                        attempt.code = self.batch.iter().rev().find_map(|event| match event {
                            Inbound::Trailers(trailers) => {
                                Status::from_headers(trailers).map(|s| s.code())
                            }
                            _ => None,
                        });
                    }
                    if !(attempt.inflow.data_ended() && drained) {
                        return Poll::Pending;
                    }
                    attempt.inflow.check_complete("response")?;
                    if attempt.inflow.web_trailers() {
                        attempt.recv = Recv::Done;
                        return Poll::Ready(Ok(None));
                    }
                    let Recv::Body(body) = std::mem::replace(&mut attempt.recv, Recv::Done) else {
                        unreachable!("matched Recv::Body above")
                    };
                    attempt.recv = Recv::Trailers(body);
                }
                Recv::Trailers(body) => {
                    match ready!(body.poll_trailers(cx)) {
                        Ok(Some(trailers)) => {
                            attempt.code = Status::from_headers(&trailers).map(|s| s.code());
                            self.batch.push(Inbound::Trailers(trailers));
                        }
                        Ok(None) => {
                            return Poll::Ready(Err(Status::internal(
                                "response ended without trailers",
                            )
                            .into()));
                        }
                        Err(e) => return Poll::Ready(Err(AttemptError::h2(e))),
                    }
                    attempt.recv = Recv::Done;
                    return Poll::Ready(Ok(None));
                }
                Recv::Done => return Poll::Ready(Ok(None)),
            }
        }
    }
}

/// An attempt's failure, whether the server refused the stream unprocessed, and whether
/// the whole connection failed.
struct AttemptError {
    status: Status,
    refused: bool,
    connection_failed: bool,
    /// The peer's GOAWAY ended the stream.
    go_away: bool,
}

impl AttemptError {
    fn h2(e: h2::Error) -> AttemptError {
        let refused = e.reason() == Some(h2::Reason::REFUSED_STREAM);
        let go_away = e.is_go_away() && e.is_remote();
        let connection_failed = e.is_io() || e.is_go_away();
        AttemptError {
            status: h2_status(&e).with_source(e),
            refused,
            connection_failed,
            go_away,
        }
    }
}

impl From<Status> for AttemptError {
    fn from(status: Status) -> AttemptError {
        AttemptError {
            status,
            refused: false,
            connection_failed: false,
            go_away: false,
        }
    }
}

/// The response side of the stream.
enum Recv {
    Head(h2::client::ResponseFuture),
    Body(RecvStream),
    Trailers(RecvStream),
    Done,
}

/// Keeps a copy of a chunk for a retry, while it fits the retry buffer.
fn remember(replay: &mut Option<Replay>, chunk: &Outgoing) {
    if let Some(kept) = replay {
        if kept.bytes + chunk.len() <= crate::limits::RETRY_BUFFER {
            kept.bytes += chunk.len();
            kept.chunks.push(chunk.clone());
        } else {
            // Too much to replay: from here on, the call is not retried.
            *replay = None;
        }
    }
}
