//! One server call on the poller: a future polled by its connection task that collects
//! the request (unary and server streaming) or streams requests to the handler, starts
//! the handler, and sends what it queued within flow control, until its status is sent,
//! the client resets it or its deadline passes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::HeaderMap;

use super::CallGuard;
use super::dispatch::{ConnContext, Start, grpc_response};
use super::service::{Requests, Run, ServerCall};
use super::web::WebCall;
use crate::call::cancel::CancelState;
use crate::call::chunks::Spent;
use crate::call::events::{Inbound, Outbound};
use crate::call::inflow::Inflow;
use crate::call::outgoing::{Outgoing, frame_aligned};
use crate::call::protocol::h2_status;
use crate::codec::Frame;
use crate::cq::{self, Consumer, Producer};
use crate::limits;
use crate::quota::Charge;
use crate::status::Status;

/// One call, as a future polled by its connection task.
pub(super) struct ServerStream {
    /// Until the response headers are sent.
    pub(super) respond: Option<SendResponse<Outgoing>>,
    /// After the response headers are sent.
    pub(super) send: Option<SendStream<Outgoing>>,
    /// Part of a message waiting for flow-control capacity.
    pub(super) pending: Option<Outgoing>,
    /// Chunks handed to h2, released and recycled once written.
    pub(super) spent: Spent,
    /// Until the request stream ended (or the handler stopped reading it).
    pub(super) recv: Option<RecvStream>,
    /// Received bytes on their way to the handler.
    pub(super) inflow: Inflow,
    /// Messages moved out of `inflow`, pushed to `requests` together.
    pub(super) batch: Vec<Inbound>,
    /// Until the handler is dispatched.
    pub(super) start: Option<Start>,
    /// The request message of a unary or server-streaming call.
    pub(super) first: Option<Frame>,
    /// What `first` holds, charged to the connection's quota until the handler takes it.
    pub(super) first_charge: Charge,
    /// Client and bidi streaming: the handler's request stream.
    pub(super) requests: Option<Producer<Inbound>>,
    pub(super) ops: Consumer<Outbound>,
    /// An operation taken from `ops` while looking behind a message, handled next.
    pub(super) deferred: Option<Outbound>,
    pub(super) cancel: Arc<CancelState>,
    pub(super) deadline: Option<Instant>,
    pub(super) sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) conn: Arc<ConnContext>,
    /// Whether the method takes one request message.
    pub(super) single: bool,
    /// Whether the method is unary (its handler never waits on the client).
    pub(super) unary: bool,
    /// The final status was sent (or the stream reset).
    pub(super) done: bool,
    /// A gRPC-Web call (boxed: rare).
    pub(super) web: Option<Box<WebCall>>,
    pub(super) _call: CallGuard,
}

impl Future for ServerStream {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let result = this.poll_call(cx);
        if result.is_ready() {
            this.done = true;
        }
        result
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        self.inflow.discharge(&self.conn.quota);
        if !self.done {
            // The connection or the server went away under the call.
            self.abort(Status::unavailable("the server is shutting down"));
            self.reset(h2::Reason::CANCEL);
        }
    }
}

impl ServerStream {
    /// Ends the call because the server stopped: with an `UNAVAILABLE` status, or a
    /// reset if the call is in the middle of a response message (whose end will not
    /// come).
    pub(super) fn shut_down(&mut self) {
        if self.done {
            return;
        }
        let status = Status::unavailable("the server shut down before the call completed");
        self.abort(status.clone());
        if self.pending.is_some() {
            self.reset(h2::Reason::CANCEL);
            self.done = true;
        } else {
            self.send_status(status);
        }
    }

    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.conn.shared.is_stopped() {
            self.shut_down();
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
        if self.single && self.start.is_some() {
            match self.read_single(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(status)) => {
                    self.abort(status.clone());
                    self.send_status(status);
                    return Poll::Ready(());
                }
            }
        }
        if !self.single {
            // Requests flow into the stream's budget even before the handler starts.
            if let Err(status) = self.poll_requests(cx) {
                self.abort(status.clone());
                self.send_status(status);
                return Poll::Ready(());
            }
        }
        if self.start.is_some() {
            match self.dispatch(cx) {
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
                Err(Refused) => {
                    self.refuse();
                    return Poll::Ready(());
                }
            }
            if self.done {
                return Poll::Ready(());
            }
        }
        self.poll_responses(cx)
    }

    /// Refuses the call before any handler saw it: the client may retry it elsewhere.
    fn refuse(&mut self) {
        self.done = true;
        self.cancel.cancel();
        self.reset(h2::Reason::REFUSED_STREAM);
    }

    /// Marks the call cancelled and fails the handler's request stream.
    fn abort(&mut self, status: Status) {
        self.cancel.cancel_because(&status);
        if let Some(requests) = self.requests.take() {
            let _ = requests.push(Inbound::Error(status));
        }
        self.recv = None;
        // A handler that never started; the server (which holds the handlers) outlives
        // the call, so nothing of the user's is dropped here.
        self.start = None;
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

    /// Hands the call to its handler once it may start: `Ok(true)` once dispatched (or
    /// answered: a deadline that passed before the handler could start), `Ok(false)`
    /// while the connection holds its share of the blocking workers.
    fn dispatch(&mut self, cx: &mut Context<'_>) -> Result<bool, Refused> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            // Never run a handler whose call is already over.
            let status = Status::deadline_exceeded("deadline exceeded before the handler started");
            self.abort(status.clone());
            self.send_status(status);
            return Ok(true);
        }
        let Some(start) = &self.start else {
            return Ok(true);
        };
        let mut admitted = None;
        if let Run::Blocking(_) = &start.run {
            // One connection holds at most its share of the blocking workers; its other
            // calls wait here (their deadlines still run), not in the pool.
            if self.conn.workers.poll_room(cx).is_pending() {
                return Ok(false);
            }
            let streaming = if !self.unary {
                let Some(guard) = self.conn.shared.admit_blocking_stream() else {
                    tracing::debug!(
                        "refusing a blocking streaming call: handlers hold their share of workers"
                    );
                    return Err(Refused);
                };
                Some(guard)
            } else {
                None
            };
            let Some(permit) = self.conn.shared.rt.workers.try_reserve() else {
                tracing::debug!("refusing a call: the worker pool and its queue are full");
                return Err(Refused);
            };
            let mut held = Charge::new(Some(self.conn.workers.clone()));
            held.set(1);
            admitted = Some((permit, held, streaming));
        }
        let Some(start) = self.start.take() else {
            return Ok(true);
        };
        let requests = match start.stream {
            Some(stream) => Requests::Stream(stream),
            None => {
                let Some(frame) = self.first.take() else {
                    let status = Status::internal("received no request message on a unary call");
                    self.abort(status.clone());
                    self.send_status(status);
                    return Ok(true);
                };
                Requests::Single {
                    frame,
                    charge: std::mem::take(&mut self.first_charge),
                    encoding: start.encoding,
                    max_len: self.inflow.decoder_mut().max_len(),
                }
            }
        };
        let call = ServerCall {
            site: start.site,
            metadata: start.metadata,
            context: start.context,
            requests,
            responder: start.responder,
        };
        match (start.run, admitted) {
            (Run::Blocking(run), Some((permit, held, streaming))) => {
                self.conn.dispatch.job(permit.bind(Box::new(move || {
                    let _held = (held, streaming);
                    run(call);
                })));
            }
            (Run::Async(run), _) => self.conn.dispatch.task(run(call)),
            (Run::Blocking(_), None) => unreachable!("blocking calls are admitted above"),
        }
        Ok(true)
    }

    /// Reads the whole request of a call that takes one message.
    fn read_single(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let Some(body) = &mut self.recv else {
            return Poll::Ready(Ok(()));
        };
        let read = match self.inflow.poll_read(body, cx) {
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(h2_status(&e).with_source(e)));
            }
            read => read,
        };
        while let Some(frame) = self.inflow.next_single()? {
            if self.first.is_some() {
                return Poll::Ready(Err(more_than_one()));
            }
            if frame.body.len() > limits::SMALL_REQUEST {
                // Held until the handler decodes it: charged. A small one is not (what
                // small requests can hold is bounded by the calls and the pool's queue).
                self.first_charge = Charge::new(Some(self.conn.quota.clone()));
                self.first_charge
                    .set(std::mem::size_of::<Frame>() + frame.body.len());
            }
            self.first = Some(frame);
        }
        if self.first.is_some() && self.inflow.decoder_mut().has_partial() {
            return Poll::Ready(Err(more_than_one()));
        }
        // The one message being collected gets its credit back at once (it may be larger
        // than the window), unless the memory quota has no room.
        self.inflow.release(body, true, Some(&self.conn.quota), cx);
        match read {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                self.inflow.check_complete("request stream")?;
                self.recv = None;
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Moves request messages to a streaming handler's queue as it has room; credit goes
    /// back for what moved on (see [`Inflow`]).
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        let (Some(body), Some(requests)) = (&mut self.recv, &self.requests) else {
            return Ok(());
        };
        let read = self.inflow.poll_read(body, cx);
        if let Poll::Ready(Err(e)) = read {
            return Err(h2_status(&e).with_source(e));
        }
        let room = match requests.poll_ready(cx) {
            Poll::Ready(Ok(room)) => room,
            Poll::Ready(Err(cq::Closed)) => {
                // The handler dropped its request stream: stop reading.
                self.recv = None;
                self.requests = None;
                return Ok(());
            }
            Poll::Pending => 0,
        };
        let drained = self.inflow.drain(room, &mut self.batch)?;
        if !self.batch.is_empty() {
            let _ = requests.push_all(self.batch.drain(..));
        }
        self.inflow
            .release(body, drained, Some(&self.conn.quota), cx);
        if self.inflow.data_ended() && drained {
            self.inflow.check_complete("request stream")?;
            self.recv = None;
            // Dropping the producer tells the handler the stream ended.
            self.requests = None;
        }
        Ok(())
    }

    /// Sends what the handler queued; `Ready` once the status was sent.
    fn poll_responses(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(buf) = &mut self.pending {
                // With a message queued behind that fills frames of its own, h2 gets whole
                // frames of the smallest size every peer allows, and the tail goes with the
                // start of that message (HTTP/2 frames carry no message boundaries), rather
                // than as a short frame of its own: 64 KiB messages go out in full frames,
                // not four and a 5-byte one each. (Chunks of small messages, each shorter
                // than a frame, go out as they are: joining them costs more than it saves.)
                if self.deferred.is_none() {
                    self.deferred = self.ops.try_pop();
                }
                let behind = match &self.deferred {
                    Some(Outbound::Message(next)) => Some(next.len()),
                    _ => None,
                };
                let want = frame_aligned(buf.len(), behind);
                if want == 0 {
                    let Some(Outbound::Message(framed)) = self.deferred.take() else {
                        unreachable!("a message is behind")
                    };
                    let mut joined = self.pending.take().unwrap_or_default();
                    joined.append(self.outgoing(framed));
                    self.pending = Some(joined);
                    continue;
                }
                let Some(send) = &mut self.send else {
                    unreachable!("messages are only pending after the headers")
                };
                send.reserve_capacity(want);
                // Capacity already assigned is used at once: `poll_capacity` reports only
                // increases.
                let n = match send.capacity() {
                    0 => match ready!(send.poll_capacity(cx)) {
                        Some(Ok(n)) => n,
                        None | Some(Err(_)) => {
                            self.abort(Status::cancelled("the response stream was closed"));
                            return Poll::Ready(());
                        }
                    },
                    n => n,
                };
                if n == 0 {
                    continue;
                }
                let chunk = buf.split_to(n.min(want));
                if buf.is_empty() {
                    self.pending = None;
                }
                if send.send_data(chunk, false).is_err() {
                    self.abort(Status::cancelled("the response stream was closed"));
                    return Poll::Ready(());
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
                    let next = self.ops.try_pop();
                    if let Some(Outbound::Trailers(trailers)) = next {
                        // The last messages (a unary response): h2 buffers what the window
                        // cannot take yet, which is bounded by what was queued.
                        let bytes = self.outgoing(framed);
                        if let Some(send) = &mut self.send {
                            let _ = send.send_data(bytes, false);
                        }
                        self.send_trailers(trailers);
                        return Poll::Ready(());
                    }
                    self.pending = Some(self.outgoing(framed));
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

    /// A response message's bytes as they go to h2 (base64 for a gRPC-Web text call),
    /// listed among the connection's lent buffers so that its writer holds them rather
    /// than copying them.
    fn outgoing(&mut self, framed: crate::codec::Framed) -> Outgoing {
        let bytes = self.spent.send(framed);
        let mut bytes = match &self.web {
            Some(web) => web.body(bytes),
            None => bytes,
        };
        bytes.lend(&self.conn.lent);
        bytes
    }

    fn send_headers(&mut self, headers: HeaderMap) -> Result<(), ()> {
        let Some(mut respond) = self.respond.take() else {
            return Ok(());
        };
        match respond.send_response(grpc_response(headers, self.web.as_deref()), false) {
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

    /// Sends the final status as trailers (for gRPC-Web, as the body's last frame), or
    /// as a Trailers-Only response when no headers went out yet.
    fn send_trailers(&mut self, trailers: HeaderMap) {
        if let Some(mut respond) = self.respond.take() {
            let _ = respond.send_response(grpc_response(trailers, self.web.as_deref()), true);
        } else if let Some(send) = &mut self.send {
            match &self.web {
                // h2 holds what the window cannot take yet: a few hundred bytes.
                Some(web) => drop(send.send_data(web.trailers(&trailers), true)),
                None => drop(send.send_trailers(trailers)),
            }
        }
        self.done = true;
        // The call is over for the handler even if the client is still sending.
        self.recv = None;
        self.requests = None;
    }

    fn send_status(&mut self, status: Status) {
        let mut trailers = HeaderMap::new();
        status.write_headers(&mut trailers);
        self.send_trailers(trailers);
    }
}

/// The worker pool cannot take the call.
struct Refused;

fn more_than_one() -> Status {
    Status::internal("received more than one request message on a call that takes one")
}
