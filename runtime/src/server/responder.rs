//! The sending half of a server call: the [`Responder`] a handler's responses and final
//! status go through, and [`ResponseSink`], its public face for blocking streaming handlers.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use prost::Message;

use crate::call::cancel::{CallContext, CancelState};
use crate::call::chunks::{ChunkPool, queue_message};
use crate::call::events::{Outbound, call_ended};
use crate::call::observed::Observed;
use crate::codec::{self, CompressionEncoding, Framed};
use crate::cq::Producer;
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::status::Status;
use crate::sync::{Mutex, MutexGuard};

/// The sending half of a server call, shared by the handler's sink and the runtime helper
/// that sends the final status.
pub(crate) struct Responder {
    ops: Producer<Outbound>,
    pool: ChunkPool,
    state: Mutex<ResponderState>,
    pub(crate) max_send: usize,
    /// How responses are compressed (the client accepts it and the server wants it).
    pub(crate) compression: Option<CompressionEncoding>,
    /// Whether the next messages are compressed (when `compression` is set); shared with
    /// the handler's [`CompressionSwitch`](crate::CompressionSwitch).
    compress: Arc<AtomicBool>,
    pub(crate) cancel: Arc<CancelState>,
    /// When the call's deadline passes: a handler waiting to send gives up then.
    deadline: Option<std::time::Instant>,
    /// Counts the responses sent.
    metrics: Option<Metrics>,
}

#[derive(Default)]
struct ResponderState {
    headers_sent: bool,
    finished: bool,
    trailers: MetadataMap,
    /// The call's interceptors, span and metrics, told of its headers and its end.
    observed: Option<Box<Observed>>,
}

impl Responder {
    pub(crate) fn new(
        ops: Producer<Outbound>,
        pool: ChunkPool,
        max_send: usize,
        compression: Option<CompressionEncoding>,
        context: &CallContext,
        metrics: Option<Metrics>,
    ) -> Responder {
        Responder {
            ops,
            pool,
            state: Mutex::new(ResponderState::default()),
            max_send,
            compression,
            compress: context.compress.clone(),
            cancel: context.cancel.clone(),
            deadline: context.deadline,
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, ResponderState> {
        self.state.lock()
    }

    pub(crate) fn ops(&self) -> &Producer<Outbound> {
        &self.ops
    }

    /// Reports the call's response headers and end to `observed`.
    pub(crate) fn observe(&self, observed: Observed) {
        self.state().observed = Some(Box::new(observed));
    }

    /// Response headers: the handler's metadata as the interceptors leave it and, when
    /// compressing, `grpc-encoding`.
    fn headers(&self, state: &ResponderState, metadata: &MetadataMap) -> HeaderMap {
        let mut headers = HeaderMap::new();
        match &state.observed {
            Some(observed) if observed.intercepts() => {
                let mut metadata = metadata.clone();
                observed.response_headers(&mut metadata);
                metadata.write_to(&mut headers);
            }
            _ => metadata.write_to(&mut headers),
        }
        if let Some(encoding) = self.compression {
            headers.insert(
                codec::GRPC_ENCODING,
                http::HeaderValue::from_static(encoding.as_str()),
            );
        }
        headers
    }

    /// Queues response headers unless they were sent already.
    pub(crate) fn send_headers(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let mut state = self.state();
        if state.headers_sent || state.finished {
            return Err(Status::internal("response headers were already sent"));
        }
        state.headers_sent = true;
        self.ops
            .push(Outbound::Headers(self.headers(&state, metadata)))
            .map_err(|_| call_ended())
    }

    /// Queues default headers if none were sent, so they precede the first message.
    fn ensure_headers(&self, state: &mut ResponderState) -> Result<(), Status> {
        if !state.headers_sent {
            state.headers_sent = true;
            self.ops
                .push(Outbound::Headers(self.headers(state, &MetadataMap::new())))
                .map_err(|_| call_ended())?;
        }
        Ok(())
    }

    /// Encodes and queues a message; the caller has waited for room already.
    pub(crate) fn push_message<M: Message>(&self, message: &M) -> Result<(), Status> {
        let mut state = self.state();
        if state.finished {
            return Err(call_ended());
        }
        self.ensure_headers(&mut state)?;
        queue_message(
            &self.ops,
            &self.pool,
            message,
            self.max_send,
            self.message_compression(),
            self.metrics.as_ref(),
        )
    }

    /// Sends a whole single-message response (headers, message, OK status and trailers)
    /// as one batch.
    pub(crate) fn respond_once(
        &self,
        metadata: &MetadataMap,
        framed: Framed,
        trailers: MetadataMap,
    ) -> Result<(), Status> {
        let mut state = self.state();
        if state.headers_sent || state.finished {
            return Err(Status::internal("a response was already sent"));
        }
        state.headers_sent = true;
        state.finished = true;
        let headers = self.headers(&state, metadata);
        let mut status = Status::ok("");
        let mut all_trailers = std::mem::take(&mut state.trailers);
        all_trailers.extend(trailers);
        *status.metadata_mut() = all_trailers;
        let mut trailer_headers = HeaderMap::new();
        status.write_headers(&mut trailer_headers);
        let weight = framed.len();
        let observed = state.observed.take();
        drop(state);
        let pushed = self
            .ops
            .push_all([
                Outbound::Headers(headers),
                Outbound::Message(framed),
                Outbound::Trailers(trailer_headers),
            ])
            .map_err(|_| call_ended());
        if let Some(metrics) = &self.metrics {
            metrics.sent(weight);
        }
        if let Some(mut observed) = observed {
            observed.end(&self.reported(pushed.as_ref().map(|()| status)));
        }
        pushed
    }

    /// The status a call's observers see: why the runtime ended the call, when it did
    /// (`DEADLINE_EXCEEDED`, `CANCELLED` by the client, `UNAVAILABLE` at shutdown, a
    /// request that broke a limit), since that is what the peer was told; otherwise the
    /// status the handler sent, or `CANCELLED` if it could not be sent.
    fn reported(&self, sent: Result<Status, &Status>) -> Status {
        if let Some(reason) = self.cancel.reason() {
            return reason.clone();
        }
        match sent {
            Ok(status) if !(status.is_ok() && self.cancel.is_cancelled()) => status,
            _ => Status::cancelled("the call was cancelled"),
        }
    }

    /// Turns compression of the next messages on or off.
    pub(crate) fn set_compress(&self, enabled: bool) {
        self.compress.store(enabled, Ordering::Relaxed);
    }

    /// The encoding for the next message: the call's, unless turned off.
    pub(crate) fn message_compression(&self) -> Option<CompressionEncoding> {
        self.compression
            .filter(|_| self.compress.load(Ordering::Relaxed))
    }

    /// Encodes and queues a message, blocking while the call's queue or its connection's
    /// memory quota is full, at most until the call's deadline.
    pub(crate) fn send_blocking<T: Message>(&self, message: &T) -> Result<(), Status> {
        if !self.ops.has_room() {
            crate::executor::blocking_region(|| self.ops.wait_ready(self.deadline))
                .map_err(|_| call_ended())?;
            let expired = self
                .deadline
                .is_some_and(|deadline| std::time::Instant::now() >= deadline);
            if expired && !self.ops.has_room() {
                return Err(Status::deadline_exceeded(
                    "deadline exceeded while waiting to send a response",
                ));
            }
        }
        self.push_message(message)
    }

    pub(crate) fn add_trailers(&self, metadata: MetadataMap) {
        self.state().trailers.extend(metadata);
    }

    /// Sends the final status (once; later calls are ignored).
    pub(crate) fn finish(&self, result: Result<(), Status>) {
        let mut state = self.state();
        if state.finished {
            return;
        }
        state.finished = true;
        let mut trailers = HeaderMap::new();
        let status = match result {
            Ok(()) => {
                let mut status = Status::ok("");
                *status.metadata_mut() = std::mem::take(&mut state.trailers);
                status
            }
            Err(status) => status,
        };
        status.write_headers(&mut trailers);
        let observed = state.observed.take();
        drop(state);
        let pushed = self.ops.push(Outbound::Trailers(trailers));
        if let Some(mut observed) = observed {
            let cancelled = Status::cancelled("the call was cancelled");
            let sent = match pushed {
                Ok(()) => Ok(status),
                Err(_) => Err(&cancelled),
            };
            observed.end(&self.reported(sent));
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        // Only a handler that never ran to its end (its job or task was dropped when the
        // runtime shut down) leaves the call without a status.
        let finished = self.state().finished;
        if !finished {
            self.finish(Err(Status::unavailable(
                "the server stopped before the handler finished",
            )));
        }
    }
}

/// Sends responses from a blocking streaming handler.
///
/// Response headers go out with the first message (or earlier, with
/// [`send_headers`](Self::send_headers)); the final status is the handler's return value.
pub struct ResponseSink<T> {
    responder: Arc<Responder>,
    _message: PhantomData<fn(T)>,
}

impl<T: Message> ResponseSink<T> {
    pub(crate) fn new(responder: Arc<Responder>) -> ResponseSink<T> {
        ResponseSink {
            responder,
            _message: PhantomData,
        }
    }

    /// Sends one response, blocking while the transport cannot take more.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` when the message is over the send limit; `CANCELLED` when
    /// the call has ended (the client cancelled, or the deadline passed).
    pub fn send(&mut self, message: T) -> Result<(), Status> {
        if self.responder.cancel.is_cancelled() {
            return Err(Status::cancelled("the call was cancelled"));
        }
        self.responder.send_blocking(&message)
    }

    /// Sends response headers now, before any message.
    ///
    /// # Errors
    ///
    /// `INTERNAL` if headers (or a message) were sent already.
    pub fn send_headers(&mut self, metadata: MetadataMap) -> Result<(), Status> {
        self.responder.send_headers(&metadata)
    }

    /// Adds trailing metadata, sent with the final status.
    pub fn add_trailers(&mut self, metadata: MetadataMap) {
        self.responder.add_trailers(metadata);
    }

    /// Whether the next responses are compressed, when the call compresses at all (the
    /// server was built with `send_compressed` and the client accepts it); on by default.
    pub fn set_compression(&mut self, enabled: bool) {
        self.responder.set_compress(enabled);
    }

    /// Whether the call was cancelled; further sends will fail.
    pub fn is_cancelled(&self) -> bool {
        self.responder.cancel.is_cancelled()
    }
}

impl<T> fmt::Debug for ResponseSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSink").finish_non_exhaustive()
    }
}
