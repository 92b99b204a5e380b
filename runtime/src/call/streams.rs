//! Message streams: what a call receives ([`Streaming`], [`BlockingStreaming`]) and the
//! blocking handles that send ([`RequestSender`], [`ResponseSink`](crate::ResponseSink)).
//!
//! Both receiving types wrap one [`Receiver`], the consumer side of a call's inbound
//! completion queue; they differ only in how they wait: an async task registers its waker,
//! a blocking caller parks its thread.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use prost::Message;

use super::chunks::{ChunkPool, queue_message};
use super::events::{Outbound, call_ended};
use super::receiver::{Block, Receiver};
use crate::codec::{self, CompressionEncoding};
use crate::cq::Producer;
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::status::Status;

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
