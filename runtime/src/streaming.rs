//! Message streams: what a call receives ([`Streaming`], [`BlockingStreaming`]) and the
//! blocking handles that send ([`RequestSender`], [`ResponseSink`]).
//!
//! Both receiving types wrap one [`Receiver`], the consumer side of a call's inbound
//! completion queue; they differ only in how they wait: an async task registers its waker,
//! a blocking caller parks its thread.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use prost::Message;

use crate::codec::{self, CompressionEncoding, Frame};
use crate::cq::{Consumer, Producer, Weigh};
use crate::interceptor::Observed;
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::request::{CallContext, CancelState};
use crate::status::Status;

/// What the poller hands to user code.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// Response headers (client side).
    Headers(HeaderMap),
    /// One message, without its prefix (compressed if its flag says so).
    Message(Frame),
    /// Trailers carrying the final status (client side), or the headers of a
    /// Trailers-Only response.
    Trailers(HeaderMap),
    /// The call ended with an error detected locally or at the transport.
    Error(Status),
}

/// What user code hands to the poller.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Response headers (server side); sent before the first message.
    Headers(HeaderMap),
    /// One or more framed messages, prefixes included.
    Message(BytesMut),
    /// The client is done sending (half-close).
    Finish,
    /// The final status and trailers (server side).
    Trailers(HeaderMap),
    /// User code failed while producing requests: reset the call with this status.
    Abort(Status),
}

/// How much (in [`Weigh`]t: entries, prefixes and bodies) of received messages a call's
/// inbound queue holds before the poller stops moving more into it: the rest waits at
/// its wire size in the call's decoder, and its HTTP/2 flow-control credit is held back
/// until the consumer takes messages out.
pub(crate) const FREE_AHEAD: usize = 64 * 1024;

/// An estimate of what a header map costs in memory, per field: its entry, name and
/// value. (Received header blocks are bounded by `max_header_list_size` besides.)
fn header_bytes(headers: &HeaderMap) -> usize {
    headers.len() * 128
}

impl Weigh for Inbound {
    fn weight(&self) -> usize {
        let entry = std::mem::size_of::<(Inbound, usize)>();
        entry
            + match self {
                Inbound::Message(frame) => codec::PREFIX_LEN + frame.body.len(),
                Inbound::Headers(headers) | Inbound::Trailers(headers) => header_bytes(headers),
                Inbound::Error(_) => 0,
            }
    }
}

impl Weigh for Outbound {
    fn weight(&self) -> usize {
        let entry = std::mem::size_of::<(Outbound, usize)>();
        entry
            + match self {
                // What the chunk holds in memory, room for more messages included.
                Outbound::Message(chunk) => chunk.capacity(),
                Outbound::Headers(headers) | Outbound::Trailers(headers) => header_bytes(headers),
                Outbound::Finish | Outbound::Abort(_) => 0,
            }
    }
}

/// A chunk of queued messages is filled up to this size before another is started; h2
/// sends each chunk as a few full DATA frames with one write.
const CHUNK: usize = 16 * 1024;

/// Buffers of at most this size are recycled.
const MAX_RECYCLED: usize = 256 * 1024;
/// Most buffers a call keeps for reuse.
const MAX_POOLED: usize = 4;

/// The buffers of a call's outbound chunks, handed back by the poller once h2 has written
/// them, so that a stream of messages reuses a few buffers instead of allocating (and
/// freeing on another thread) one per chunk. Kept buffers are charged to the call's
/// connection quota; under pressure (no room in it) a returned buffer is freed instead.
#[derive(Clone, Default)]
pub(crate) struct ChunkPool(Arc<PoolInner>);

#[derive(Default)]
struct PoolInner {
    /// What kept buffers and chunks in flight are charged to.
    quota: Option<Arc<Quota>>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    buffers: Vec<BytesMut>,
    /// Their capacity in all, charged to the quota.
    bytes: usize,
}

impl ChunkPool {
    /// A pool whose kept buffers are charged to `quota`.
    pub(crate) fn new(quota: Option<Arc<Quota>>) -> ChunkPool {
        ChunkPool(Arc::new(PoolInner {
            quota,
            kept: Mutex::new(Kept::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.0.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn quota(&self) -> Option<&Quota> {
        self.0.quota.as_deref()
    }

    /// An empty buffer with room for at least `len` bytes.
    fn take(&self, len: usize) -> BytesMut {
        let reused = {
            let mut kept = self.lock();
            match kept.buffers.last() {
                Some(buf) if buf.capacity() >= len => {
                    let buf = kept.buffers.pop();
                    let capacity = buf.as_ref().map_or(0, BytesMut::capacity);
                    kept.bytes -= capacity;
                    if let Some(quota) = self.quota() {
                        quota.release(capacity);
                    }
                    buf
                }
                _ => None,
            }
        };
        reused.unwrap_or_else(|| BytesMut::with_capacity(len.max(CHUNK)))
    }

    fn give(&self, buf: BytesMut) {
        if buf.capacity() > MAX_RECYCLED {
            return;
        }
        let room = self.quota().is_none_or(Quota::has_room);
        let mut kept = self.lock();
        if kept.buffers.len() < MAX_POOLED && room {
            kept.bytes += buf.capacity();
            if let Some(quota) = self.quota() {
                quota.charge(buf.capacity());
            }
            kept.buffers.push(buf);
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let kept = self.kept.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(quota) = &self.quota {
            quota.release(kept.bytes);
        }
    }
}

/// Poller side of a [`ChunkPool`]: chunks handed to h2, charged to the connection quota
/// until h2 has let go of them, then returned to the pool.
#[derive(Default)]
pub(crate) struct Spent {
    /// Chunks in flight, with what each is charged.
    chunks: VecDeque<(Bytes, usize)>,
    /// What they are charged in all.
    charged: usize,
    pool: ChunkPool,
}

impl Spent {
    pub(crate) fn new(pool: ChunkPool) -> Spent {
        Spent {
            chunks: VecDeque::new(),
            charged: 0,
            pool,
        }
    }

    /// Takes a queued chunk for sending, keeping a handle to release and recycle it once
    /// h2 is done with it.
    pub(crate) fn send(&mut self, chunk: BytesMut) -> Bytes {
        self.reclaim();
        let held = chunk.capacity();
        let bytes = chunk.freeze();
        self.chunks.push_back((bytes.clone(), held));
        self.charged += held;
        if let Some(quota) = self.pool.quota() {
            quota.charge(held);
        }
        bytes
    }

    /// Releases the chunks h2 is done with, recycling the small ones.
    pub(crate) fn reclaim(&mut self) {
        let mut released = 0;
        while self.chunks.front().is_some_and(|(b, _)| b.is_unique()) {
            let Some((bytes, held)) = self.chunks.pop_front() else {
                break;
            };
            released += held;
            if bytes.len() <= MAX_RECYCLED {
                if let Ok(mut buf) = bytes.try_into_mut() {
                    buf.clear();
                    self.pool.give(buf);
                }
            }
        }
        self.charged -= released;
        if let Some(quota) = self.pool.quota() {
            quota.release(released);
        }
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        if let Some(quota) = self.pool.quota() {
            quota.release(self.charged);
        }
    }
}

/// Encodes `message` straight into the chunk of messages last queued on `ops` when it has
/// room, or into a new chunk: messages sent one by one still reach h2 as a few large
/// buffers, without a buffer or a copy per message.
///
/// The caller has checked that the queue has room.
///
/// # Errors
///
/// `RESOURCE_EXHAUSTED` for a message over `max_send`; `CANCELLED` when the call ended.
pub(crate) fn queue_message<M: Message>(
    ops: &Producer<Outbound>,
    pool: &ChunkPool,
    message: &M,
    max_send: usize,
    compression: Option<CompressionEncoding>,
    metrics: Option<&Metrics>,
) -> Result<(), Status> {
    if compression.is_some() {
        // Compressed: a chunk of its own, compressed before the queue is locked.
        let framed = codec::encode_mut(message, max_send, compression)?;
        let len = framed.len();
        ops.push(Outbound::Message(framed))
            .map_err(|_| call_ended())?;
        if let Some(metrics) = metrics {
            metrics.sent(len);
        }
        return Ok(());
    }
    let len = codec::checked_len(message, max_send)?;
    let framed_len = codec::PREFIX_LEN + len;
    if let Some(metrics) = metrics {
        metrics.sent(framed_len);
    }
    ops.push_or_append(|last| {
        if let Some(Outbound::Message(chunk)) = last {
            if chunk.capacity() - chunk.len() >= framed_len {
                codec::write_framed(message, len, chunk);
                return None;
            }
        }
        let mut chunk = pool.take(framed_len);
        codec::write_framed(message, len, &mut chunk);
        Some(Outbound::Message(chunk))
    })
    .map_err(|_| call_ended())
}

/// Which end of a call a receiver serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Receives responses: ends with trailers.
    Client,
    /// Receives requests: ends when the client half-closes.
    Server,
}

/// How a receiver waits for the next completion.
pub(crate) trait Wait {
    fn pop(&mut self, events: &mut Consumer<Inbound>) -> Poll<Option<Inbound>>;
}

/// Waits by parking the calling thread.
pub(crate) struct Block;

impl Wait for Block {
    fn pop(&mut self, events: &mut Consumer<Inbound>) -> Poll<Option<Inbound>> {
        if crate::executor::on_executor_thread() {
            // Only a wait that really blocks needs the executor's stand-in.
            if let Some(event) = events.try_pop() {
                return Poll::Ready(Some(event));
            }
            return Poll::Ready(crate::executor::blocking_region(|| events.pop_blocking()));
        }
        Poll::Ready(events.pop_blocking())
    }
}

impl Wait for Context<'_> {
    fn pop(&mut self, events: &mut Consumer<Inbound>) -> Poll<Option<Inbound>> {
        events.poll_pop(self)
    }
}

/// The receiving state machine of one call.
///
/// Dropping it before the call ended cancels a client call (the poller sees the queue
/// closed and resets the stream) and stops reading requests on the server.
pub(crate) struct Receiver {
    events: Consumer<Inbound>,
    side: Side,
    /// The peer's `grpc-encoding`, for compressed messages.
    encoding: Option<CompressionEncoding>,
    /// Largest message accepted after decompression.
    max_len: usize,
    headers: Option<MetadataMap>,
    trailers: Option<MetadataMap>,
    end: Option<Result<(), Status>>,
    error_reported: bool,
    /// A message that arrived while waiting for headers.
    pending: Option<Frame>,
    /// The first message of a unary exchange, held until the stream ends.
    first: Option<Bytes>,
    /// Whether the last message returned arrived compressed.
    last_compressed: bool,
    /// Client side: the call's interceptors, span and metrics.
    observed: Option<Box<Observed>>,
    /// Counts received messages.
    metrics: Option<Metrics>,
}

impl Receiver {
    /// Reports the call's response headers and end to `observed` (client side).
    pub(crate) fn observe(mut self, observed: Observed) -> Receiver {
        self.metrics = observed.metrics().cloned();
        self.observed = Some(Box::new(observed));
        self
    }

    /// Counts received messages in `metrics` (server side).
    pub(crate) fn count(mut self, metrics: Option<Metrics>) -> Receiver {
        self.metrics = metrics;
        self
    }

    /// Reports the call's end to its observer (once; later reports are ignored).
    pub(crate) fn ended(&mut self, status: &Status) {
        if let Some(observed) = &mut self.observed {
            observed.end(status);
        }
    }

    pub(crate) fn new(events: Consumer<Inbound>, side: Side, max_len: usize) -> Receiver {
        Receiver {
            events,
            side,
            encoding: None,
            max_len,
            headers: None,
            trailers: None,
            end: None,
            error_reported: false,
            pending: None,
            first: None,
            last_compressed: false,
            observed: None,
            metrics: None,
        }
    }

    /// Whether the last message returned arrived compressed.
    pub(crate) fn last_compressed(&self) -> bool {
        self.last_compressed
    }

    /// Sets the encoding the peer declared for its messages.
    pub(crate) fn set_encoding(&mut self, encoding: Option<CompressionEncoding>) {
        self.encoding = encoding;
    }

    /// A received message's plain body.
    fn plain(&self, frame: Frame) -> Result<Bytes, Status> {
        if !frame.compressed {
            return Ok(frame.body);
        }
        let encoding = self.encoding.ok_or_else(|| {
            Status::internal("received a compressed message, but the peer sent no grpc-encoding")
        })?;
        codec::decompress(encoding, &frame.body, self.max_len)
    }

    /// Applies one event; returns a message if it was one.
    fn apply(&mut self, event: Option<Inbound>) -> Option<Frame> {
        match event {
            Some(Inbound::Headers(headers)) => {
                if let Some(value) = headers.get(codec::GRPC_ENCODING) {
                    // The poller has checked it is one we support.
                    self.encoding = CompressionEncoding::from_header(value.as_bytes())
                        .ok()
                        .flatten();
                }
                let mut metadata = MetadataMap::from_headers(&headers);
                if let Some(observed) = &self.observed {
                    observed.response_headers(&mut metadata);
                }
                self.headers = Some(metadata);
            }
            Some(Inbound::Message(message)) => {
                if let Some(metrics) = &self.metrics {
                    metrics.received(codec::PREFIX_LEN + message.body.len());
                }
                return Some(message);
            }
            Some(Inbound::Trailers(trailers)) => {
                let status = Status::from_headers(&trailers).unwrap_or_else(|| {
                    Status::internal("peer ended the response without a grpc-status")
                });
                self.ended(&status);
                self.trailers = Some(status.metadata().clone());
                self.end = Some(if status.is_ok() { Ok(()) } else { Err(status) });
            }
            Some(Inbound::Error(status)) => {
                if self.end.is_none() {
                    self.ended(&status);
                    self.end = Some(Err(status));
                }
            }
            None => {
                if self.end.is_none() {
                    let end = match self.side {
                        Side::Server => Ok(()),
                        Side::Client => Err(Status::unavailable(
                            "the call ended without a status (runtime shut down?)",
                        )),
                    };
                    if let Err(status) = &end {
                        self.ended(status);
                    }
                    self.end = Some(end);
                }
            }
        }
        None
    }

    /// Waits for the response headers (client side).
    pub(crate) fn poll_headers(&mut self, w: &mut impl Wait) -> Poll<Result<(), Status>> {
        loop {
            if self.headers.is_some() {
                return Poll::Ready(Ok(()));
            }
            match &self.end {
                Some(Ok(())) => {
                    self.headers = Some(MetadataMap::new());
                    return Poll::Ready(Ok(()));
                }
                Some(Err(status)) => {
                    self.error_reported = true;
                    return Poll::Ready(Err(status.clone()));
                }
                None => {}
            }
            let event = ready!(w.pop(&mut self.events));
            if let Some(message) = self.apply(event) {
                self.pending = Some(message);
                self.headers.get_or_insert_with(MetadataMap::new);
            }
        }
    }

    /// The next message; `None` after a successful end; an error once, then `None`.
    pub(crate) fn poll_next(&mut self, w: &mut impl Wait) -> Poll<Option<Result<Bytes, Status>>> {
        let frame = match self.pending.take() {
            Some(frame) => Some(frame),
            None => match ready!(self.poll_frame(w)) {
                Some(Ok(frame)) => Some(frame),
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None => None,
            },
        };
        let Some(frame) = frame else {
            return Poll::Ready(None);
        };
        self.last_compressed = frame.compressed;
        match self.plain(frame) {
            Ok(body) => Poll::Ready(Some(Ok(body))),
            Err(status) => {
                self.ended(&status);
                self.end = Some(Err(status.clone()));
                self.error_reported = true;
                Poll::Ready(Some(Err(status)))
            }
        }
    }

    fn poll_frame(&mut self, w: &mut impl Wait) -> Poll<Option<Result<Frame, Status>>> {
        loop {
            match &self.end {
                Some(Ok(())) => return Poll::Ready(None),
                Some(Err(status)) => {
                    if self.error_reported {
                        return Poll::Ready(None);
                    }
                    self.error_reported = true;
                    return Poll::Ready(Some(Err(status.clone())));
                }
                None => {}
            }
            let event = ready!(w.pop(&mut self.events));
            if let Some(message) = self.apply(event) {
                return Poll::Ready(Some(Ok(message)));
            }
        }
    }

    /// Exactly one message followed by a successful end.
    pub(crate) fn poll_single(&mut self, w: &mut impl Wait) -> Poll<Result<Bytes, Status>> {
        let what = match self.side {
            Side::Client => "response",
            Side::Server => "request",
        };
        loop {
            match ready!(self.poll_next(w)) {
                Some(Ok(message)) => {
                    if self.first.is_some() {
                        return Poll::Ready(Err(Status::internal(format!(
                            "received more than one {what} message on a call that takes one"
                        ))));
                    }
                    self.first = Some(message);
                }
                Some(Err(status)) => return Poll::Ready(Err(status)),
                None => {
                    return Poll::Ready(self.first.take().ok_or_else(|| {
                        Status::internal(format!("received no {what} message on a unary call"))
                    }));
                }
            }
        }
    }

    pub(crate) fn take_headers(&mut self) -> MetadataMap {
        self.headers.take().unwrap_or_default()
    }

    /// A copy of the response headers, keeping them for [`BlockingStreaming::headers`].
    pub(crate) fn clone_headers(&self) -> MetadataMap {
        self.headers.clone().unwrap_or_default()
    }

    pub(crate) fn headers(&self) -> Option<&MetadataMap> {
        self.headers.as_ref()
    }

    pub(crate) fn trailers(&self) -> Option<&MetadataMap> {
        self.trailers.as_ref()
    }

    pub(crate) fn take_trailers(&mut self) -> MetadataMap {
        self.trailers.take().unwrap_or_default()
    }
}

/// A stream of messages received by an async call or handler.
///
/// It is a [`futures_core::Stream`] of `Result<T, Status>`; [`message`](Self::message)
/// is a convenience for `while let` loops. A failed call yields its `Err` once, then ends.
/// On the client, [`trailers`](Self::trailers) are available once the stream ended.
/// Dropping a client's response stream before its end cancels the call.
pub struct Streaming<T> {
    rx: Receiver,
    _message: PhantomData<fn() -> T>,
}

impl<T> Streaming<T> {
    pub(crate) fn new(rx: Receiver) -> Streaming<T> {
        Streaming {
            rx,
            _message: PhantomData,
        }
    }

    /// The trailing metadata, once the stream ended successfully (client side).
    pub fn trailers(&self) -> Option<&MetadataMap> {
        self.rx.trailers()
    }

    /// Whether the last message received arrived compressed.
    pub fn last_message_compressed(&self) -> bool {
        self.rx.last_compressed()
    }
}

impl<T: Message + Default> Streaming<T> {
    /// The next message, `Ok(None)` at the end of the stream.
    ///
    /// # Errors
    ///
    /// The call's status when it failed, or `INTERNAL` when a message does not decode.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        match ready!(self.rx.poll_next(cx)) {
            Some(Ok(body)) => Poll::Ready(codec::decode(body).map(Some)),
            Some(Err(status)) => Poll::Ready(Err(status)),
            None => Poll::Ready(Ok(None)),
        }
    }
}

impl<T: Message + Default> futures_core::Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx).map(Result::transpose)
    }
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming").finish_non_exhaustive()
    }
}

/// A stream of messages received by a blocking call or handler: an [`Iterator`] of
/// `Result<T, Status>`.
///
/// A failed call yields its `Err` once, then ends. Dropping a client's response stream
/// before its end cancels the call.
pub struct BlockingStreaming<T> {
    rx: Receiver,
    _message: PhantomData<fn() -> T>,
}

impl<T> BlockingStreaming<T> {
    pub(crate) fn new(rx: Receiver) -> BlockingStreaming<T> {
        BlockingStreaming {
            rx,
            _message: PhantomData,
        }
    }

    /// Client side: waits for the response headers and returns their metadata.
    ///
    /// # Errors
    ///
    /// The call's status if it failed before the server sent headers.
    pub fn headers(&mut self) -> Result<&MetadataMap, Status> {
        match self.rx.poll_headers(&mut Block) {
            Poll::Ready(Ok(())) => Ok(self.rx.headers().expect("headers were just received")),
            Poll::Ready(Err(status)) => Err(status),
            Poll::Pending => unreachable!("blocking waits are always ready"),
        }
    }

    /// The trailing metadata, once the stream ended successfully (client side).
    pub fn trailers(&self) -> Option<&MetadataMap> {
        self.rx.trailers()
    }

    /// Whether the last message received arrived compressed.
    pub fn last_message_compressed(&self) -> bool {
        self.rx.last_compressed()
    }
}

impl<T: Message + Default> BlockingStreaming<T> {
    /// Blocks for the next message, `Ok(None)` at the end of the stream.
    ///
    /// # Errors
    ///
    /// The call's status when it failed, or `INTERNAL` when a message does not decode.
    pub fn recv(&mut self) -> Result<Option<T>, Status> {
        self.next().transpose()
    }
}

impl<T: Message + Default> Iterator for BlockingStreaming<T> {
    type Item = Result<T, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.poll_next(&mut Block) {
            Poll::Ready(Some(Ok(body))) => Some(codec::decode(body)),
            Poll::Ready(Some(Err(status))) => Some(Err(status)),
            Poll::Ready(None) => None,
            Poll::Pending => unreachable!("blocking waits are always ready"),
        }
    }
}

impl<T> fmt::Debug for BlockingStreaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingStreaming").finish_non_exhaustive()
    }
}

/// The error a sender reports once its call has ended; the call's own status is what
/// the receiving side returns.
pub(crate) fn call_ended() -> Status {
    Status::cancelled("the call has already ended; its status is on the receiving side")
}

/// Sends requests on a blocking streaming call.
///
/// Dropping it (or calling [`finish`](Self::finish)) tells the server that no more
/// requests will come. If the thread panics while holding it, the call is cancelled
/// instead, so the server never mistakes a partial stream for a complete one.
pub struct RequestSender<T> {
    ops: Option<Producer<Outbound>>,
    pool: ChunkPool,
    max_send: usize,
    compression: Option<CompressionEncoding>,
    compress: bool,
    metrics: Option<Metrics>,
    _message: PhantomData<fn(T)>,
}

impl<T> RequestSender<T> {
    fn half_close(&mut self) {
        if let Some(ops) = self.ops.take() {
            let _ = ops.push(Outbound::Finish);
        }
    }
}

impl<T: Message> RequestSender<T> {
    pub(crate) fn new(
        ops: Producer<Outbound>,
        pool: ChunkPool,
        max_send: usize,
        compression: Option<CompressionEncoding>,
        metrics: Option<Metrics>,
    ) -> RequestSender<T> {
        RequestSender {
            ops: Some(ops),
            pool,
            max_send,
            compression,
            compress: true,
            metrics,
            _message: PhantomData,
        }
    }

    /// Sends one request, blocking while the transport cannot take more.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` if the message is over the send limit (the call is then
    /// cancelled); `CANCELLED` if the call has already ended, in which case its status is
    /// on the response stream.
    pub fn send(&mut self, message: T) -> Result<(), Status> {
        let ops = self.ops.as_ref().ok_or_else(call_ended)?;
        let compression = self.compression.filter(|_| self.compress);
        if !ops.has_room() {
            crate::executor::blocking_region(|| ops.wait_ready(None)).map_err(|_| call_ended())?;
        }
        let metrics = self.metrics.as_ref();
        match queue_message(
            ops,
            &self.pool,
            &message,
            self.max_send,
            compression,
            metrics,
        ) {
            Err(status) if status.code() == crate::Code::ResourceExhausted => {
                let _ = ops.push(Outbound::Abort(status.clone()));
                self.ops = None;
                Err(status)
            }
            other => other,
        }
    }

    /// Whether the next messages are compressed, when the call compresses its requests
    /// (see [`Request::set_send_compressed`](crate::Request::set_send_compressed)); on by
    /// default. Turning it off sends them uncompressed on the same call.
    pub fn set_compression(&mut self, enabled: bool) {
        self.compress = enabled;
    }

    /// Half-closes the call: the server sees the end of the request stream.
    pub fn finish(mut self) {
        self.half_close();
    }
}

impl<T> Drop for RequestSender<T> {
    fn drop(&mut self) {
        // While unwinding, dropping the producer without `Finish` makes the poller cancel
        // the call instead of completing it.
        if !std::thread::panicking() {
            self.half_close();
        }
    }
}

impl<T> fmt::Debug for RequestSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSender")
            .field("open", &self.ops.is_some())
            .finish()
    }
}

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
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        framed: BytesMut,
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
