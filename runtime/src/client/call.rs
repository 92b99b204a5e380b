//! The poller side of a client call: one task per call that moves frames between an h2
//! stream and the call's completion queues.
//!
//! ```text
//!  user thread/task                    poller task (this file)                 h2
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

use crate::channel::{CallOnConnection, ChannelInner};
use crate::codec::{self, CompressionEncoding, Frame, FrameDecoder};
use crate::cq::{Consumer, Producer};
use crate::status::Status;
use crate::streaming::{ChunkPool, FREE_AHEAD, Inbound, Outbound, Spent};

/// Everything the poller needs to run one call.
pub(crate) struct CallTask {
    pub(crate) channel: Arc<ChannelInner>,
    /// Where the buffers of sent request chunks go back to.
    pub(crate) pool: ChunkPool,
    pub(crate) head: http::Request<()>,
    /// The whole request body of a unary or server-streaming call, sent with END_STREAM.
    pub(crate) body: Option<Bytes>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) wait_for_ready: bool,
    /// Largest response message accepted (the client's limit, or the channel's).
    pub(crate) max_receive_message_size: usize,
    pub(crate) ops: Consumer<Outbound>,
    pub(crate) events: Producer<Inbound>,
}

/// How many times a call is retried transparently when its connection turns out to be
/// dead before the stream was opened.
const START_ATTEMPTS: usize = 3;

impl CallTask {
    pub(crate) async fn run(self) {
        let CallTask {
            channel,
            pool,
            head,
            body,
            deadline,
            wait_for_ready,
            max_receive_message_size,
            ops,
            events,
        } = self;
        let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into())));

        // Phase 1: get a connection and open the stream, racing the deadline and the
        // caller giving up.
        let start = start_stream(&channel, head, wait_for_ready);
        let started = tokio::select! {
            started = start => started,
            _ = poll_fn(|cx| events.poll_closed(cx)) => return,
            _ = deadline_elapsed(&mut sleep) => Err(deadline_exceeded()),
        };
        let (response, mut send, on_connection) = match started {
            Ok(started) => started,
            Err(status) => {
                let _ = events.push(Inbound::Error(status));
                return;
            }
        };
        let send_done = match body {
            Some(body) => {
                if let Err(e) = send.send_data(body, true) {
                    tracing::debug!(error = %e, "failed to send the request");
                }
                true
            }
            None => false,
        };

        // Phase 2: pump both directions until the response ends.
        let mut stream = ClientStream {
            send,
            send_done,
            pending: None,
            spent: Spent::new(pool),
            recv: Recv::Head(response),
            unreleased: 0,
            decoder: FrameDecoder::new(max_receive_message_size),
            frames: Vec::new(),
            ops,
            events,
            sleep,
            batch: Vec::new(),
            batch_bytes: 0,
            _on_connection: on_connection,
        };
        poll_fn(|cx| stream.poll(cx)).await;
    }
}

async fn deadline_elapsed(sleep: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match sleep {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

pub(crate) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("deadline exceeded before the call completed")
}

async fn start_stream(
    channel: &Arc<ChannelInner>,
    head: http::Request<()>,
    wait_for_ready: bool,
) -> Result<
    (
        h2::client::ResponseFuture,
        SendStream<Bytes>,
        CallOnConnection,
    ),
    Status,
> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        let picked = channel.connection(wait_for_ready).await?;
        let mut ready = match picked.send.ready().await {
            Ok(ready) => ready,
            Err(e) => {
                channel.lost(picked.id);
                last = Some(e);
                continue;
            }
        };
        match ready.send_request(head.clone(), false) {
            Ok((response, send)) => return Ok((response, send, picked.guard)),
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

/// The response side of the stream.
enum Recv {
    Head(h2::client::ResponseFuture),
    Body(RecvStream),
    Trailers(RecvStream),
    Done,
}

struct ClientStream {
    send: SendStream<Bytes>,
    send_done: bool,
    /// Part of a message waiting for flow-control capacity.
    pending: Option<Bytes>,
    /// Chunks handed to h2, recycled once written.
    spent: Spent,
    recv: Recv,
    /// Response bytes received whose flow-control credit is held back: the caller has not
    /// caught up yet.
    unreleased: usize,
    decoder: FrameDecoder,
    /// Messages split out of the last chunk (kept to reuse its allocation).
    frames: Vec<Frame>,
    ops: Consumer<Outbound>,
    events: Producer<Inbound>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Completions gathered during one poll, handed over with one wake-up.
    batch: Vec<Inbound>,
    /// Bytes of the messages in `batch`.
    batch_bytes: usize,
    /// Counts the call as open on its connection.
    _on_connection: CallOnConnection,
}

impl ClientStream {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = &mut self.sleep {
            if sleep.as_mut().poll(cx).is_ready() {
                return self.fail(deadline_exceeded());
            }
        }
        if self.events.poll_closed(cx).is_ready() {
            // The caller dropped the call: cancel it at the server.
            self.send.send_reset(h2::Reason::CANCEL);
            return Poll::Ready(());
        }
        if !self.send_done {
            match self.poll_send(cx) {
                Poll::Ready(Ok(())) => self.send_done = true,
                Poll::Ready(Err(status)) => return self.fail(status),
                Poll::Pending => {}
            }
        }
        let result = self.poll_recv(cx);
        self.flush();
        match result {
            Poll::Ready(Ok(())) => Poll::Ready(()),
            Poll::Ready(Err(status)) => self.fail(status),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Hands the completions gathered so far to the caller, with one wake-up.
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let weight = std::mem::take(&mut self.batch_bytes);
            let _ = self.events.push_all(self.batch.drain(..), weight);
        }
    }

    /// Ends the call locally: resets the stream and reports `status`.
    fn fail(&mut self, status: Status) -> Poll<()> {
        self.send.send_reset(h2::Reason::CANCEL);
        let _ = self.events.push(Inbound::Error(status));
        Poll::Ready(())
    }

    /// Sends queued requests; `Ready(Ok)` once the client half-closed.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        loop {
            if let Some(buf) = &mut self.pending {
                self.send.reserve_capacity(buf.len());
                match ready!(self.send.poll_capacity(cx)) {
                    Some(Ok(0)) => continue,
                    Some(Ok(n)) => {
                        let chunk = buf.split_to(n.min(buf.len()));
                        if buf.is_empty() {
                            self.pending = None;
                        }
                        if let Err(e) = self.send.send_data(chunk, false) {
                            // The stream is gone; the response side reports why.
                            tracing::debug!(error = %e, "request stream closed while sending");
                            self.pending = None;
                            return Poll::Ready(Ok(()));
                        }
                    }
                    // The stream was reset or closed: the response side reports why.
                    None | Some(Err(_)) => {
                        self.pending = None;
                        return Poll::Ready(Ok(()));
                    }
                }
                continue;
            }
            let op = ready!(self.ops.poll_pop(cx));
            match op {
                Some(Outbound::Message(chunk)) => self.pending = Some(self.spent.send(chunk)),
                Some(Outbound::Finish) => {
                    let _ = self.send.send_data(Bytes::new(), true);
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

    /// Reads the response; `Ready(Ok)` once trailers were handed over.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        loop {
            match &mut self.recv {
                Recv::Head(response) => {
                    let response = ready!(Pin::new(response).poll(cx))
                        .map_err(|e| h2_status(&e).with_source(e))?;
                    let (parts, body) = response.into_parts();
                    if parts.headers.contains_key(crate::status::GRPC_STATUS) {
                        // Trailers-Only: the status is in the headers.
                        self.batch.push(Inbound::Trailers(parts.headers));
                        self.recv = Recv::Done;
                        return Poll::Ready(Ok(()));
                    }
                    if parts.status != http::StatusCode::OK {
                        return Poll::Ready(Err(Status::from_http_status(parts.status)));
                    }
                    if !is_grpc_content_type(parts.headers.get(http::header::CONTENT_TYPE)) {
                        return Poll::Ready(Err(Status::unknown(format!(
                            "peer answered with content-type {:?}, not application/grpc",
                            parts.headers.get(http::header::CONTENT_TYPE)
                        ))));
                    }
                    if let Some(value) = parts.headers.get(codec::GRPC_ENCODING) {
                        match CompressionEncoding::from_header(value.as_bytes()) {
                            Ok(Some(_)) => self.decoder.allow_compressed(),
                            Ok(None) => {}
                            Err(()) => {
                                return Poll::Ready(Err(Status::unimplemented(format!(
                                    "the server compresses with grpc-encoding {:?}, which this \
                                     client does not support",
                                    String::from_utf8_lossy(value.as_bytes())
                                ))));
                            }
                        }
                    }
                    self.batch.push(Inbound::Headers(parts.headers));
                    self.recv = Recv::Body(body);
                }
                Recv::Body(body) => {
                    if self.events.is_closed() {
                        return Poll::Ready(Ok(()));
                    }
                    // Flow control: credit goes back to the server at once while the caller
                    // keeps up (is less than FREE_AHEAD behind); otherwise it is held until
                    // the caller has taken everything and waits for more. So a caller that
                    // does not read holds at most FREE_AHEAD, the stream's window and one
                    // message.
                    if self.unreleased > 0 {
                        // The caller must see what is held here to catch up with it.
                        if !self.batch.is_empty() {
                            let weight = std::mem::take(&mut self.batch_bytes);
                            let _ = self.events.push_all(self.batch.drain(..), weight);
                        }
                        if self.events.poll_drained(cx).is_ready() {
                            let _ = body.flow_control().release_capacity(self.unreleased);
                            self.unreleased = 0;
                        }
                    }
                    match ready!(body.poll_data(cx)) {
                        Some(Ok(chunk)) => {
                            let len = chunk.len();
                            if self.unreleased == 0
                                && self.events.weight() + self.batch_bytes < FREE_AHEAD
                            {
                                let _ = body.flow_control().release_capacity(len);
                            } else {
                                self.unreleased += len;
                            }
                            self.decoder.push(chunk, &mut self.frames)?;
                            for frame in self.frames.drain(..) {
                                self.batch_bytes += frame.body.len();
                                self.batch.push(Inbound::Message(frame));
                            }
                        }
                        Some(Err(e)) => return Poll::Ready(Err(h2_status(&e).with_source(e))),
                        None => {
                            if self.decoder.has_partial() {
                                return Poll::Ready(Err(Status::internal(
                                    "response ended in the middle of a message",
                                )));
                            }
                            let Recv::Body(body) = std::mem::replace(&mut self.recv, Recv::Done)
                            else {
                                unreachable!("matched Recv::Body above")
                            };
                            self.recv = Recv::Trailers(body);
                        }
                    }
                }
                Recv::Trailers(body) => {
                    match ready!(body.poll_trailers(cx)) {
                        Ok(Some(trailers)) => self.batch.push(Inbound::Trailers(trailers)),
                        Ok(None) => {
                            return Poll::Ready(Err(Status::internal(
                                "response ended without trailers",
                            )));
                        }
                        Err(e) => return Poll::Ready(Err(h2_status(&e).with_source(e))),
                    }
                    self.recv = Recv::Done;
                    return Poll::Ready(Ok(()));
                }
                Recv::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

pub(crate) fn is_grpc_content_type(value: Option<&http::HeaderValue>) -> bool {
    value.is_some_and(|v| {
        let v = v.as_bytes();
        v == b"application/grpc"
            || v.starts_with(b"application/grpc+")
            || v.starts_with(b"application/grpc;")
    })
}

/// The status for an HTTP/2 error, following gRPC's mapping of RST_STREAM codes.
pub(crate) fn h2_status(e: &h2::Error) -> Status {
    if let Some(reason) = e.reason() {
        if e.is_go_away() && reason == h2::Reason::NO_ERROR {
            return Status::unavailable("the server closed the connection (GOAWAY)");
        }
        let message = format!("stream reset by peer: {reason}");
        return match reason {
            h2::Reason::CANCEL => Status::cancelled(message),
            h2::Reason::REFUSED_STREAM => Status::unavailable(message),
            h2::Reason::ENHANCE_YOUR_CALM => Status::resource_exhausted(message),
            h2::Reason::INADEQUATE_SECURITY => Status::permission_denied(message),
            _ if e.is_go_away() => Status::unavailable(format!("connection closed: {reason}")),
            _ => Status::internal(message),
        };
    }
    if e.is_io() {
        return Status::unavailable(format!("connection lost: {e}"));
    }
    Status::internal(format!("http/2 error: {e}"))
}
