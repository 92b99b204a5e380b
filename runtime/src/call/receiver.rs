//! The consumer side of a call's inbound queue, shared by both flavours and both ends:
//! a [`Receiver`] waits for the next event by registering a waker (async) or parking its
//! thread (blocking), decompresses and checks each message, and tells the call's
//! observers how it ended.

use std::task::{Context, Poll, ready};

use bytes::Bytes;

use super::events::Inbound;
use super::observed::Observed;
use crate::codec::{self, CompressionEncoding, Frame};
use crate::cq::Consumer;
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::status::Status;
use crate::transport::frames::End;

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
    side: End,
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

    pub(crate) fn new(events: Consumer<Inbound>, side: End, max_len: usize) -> Receiver {
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
                        End::Server => Ok(()),
                        End::Client => Err(Status::unavailable(
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
            End::Client => "response",
            End::Server => "request",
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

    /// A copy of the response headers, keeping them for
    /// [`BlockingStreaming::headers`](crate::call::streams::BlockingStreaming::headers).
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

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::cq::queue;
    use crate::status::Code;

    fn message(body: &'static [u8]) -> Inbound {
        Inbound::Message(Frame {
            compressed: false,
            trailers: false,
            body: Bytes::from_static(body),
        })
    }

    fn trailers(status: &Status) -> Inbound {
        let mut headers = HeaderMap::new();
        status.write_headers(&mut headers);
        Inbound::Trailers(headers)
    }

    fn next(rx: &mut Receiver) -> Option<Result<Bytes, Status>> {
        match rx.poll_next(&mut Block) {
            Poll::Ready(next) => next,
            Poll::Pending => unreachable!("blocking waits are always ready"),
        }
    }

    #[test]
    fn a_response_stream_ends_with_its_trailers() {
        let (tx, rx) = queue(1 << 20);
        let mut rx = Receiver::new(rx, End::Client, 1024);
        let mut headers = HeaderMap::new();
        headers.insert("x-tag", "1".parse().unwrap());
        tx.push_all([
            Inbound::Headers(headers),
            message(b"one"),
            message(b"two"),
            trailers(&Status::ok("")),
        ])
        .unwrap();
        assert_eq!(next(&mut rx).unwrap().unwrap(), "one");
        assert_eq!(rx.headers().unwrap().get("x-tag"), Some("1"));
        assert_eq!(next(&mut rx).unwrap().unwrap(), "two");
        assert!(next(&mut rx).is_none());
        assert!(rx.trailers().is_some());
        assert!(next(&mut rx).is_none(), "ended stays ended");
    }

    #[test]
    fn an_error_status_is_returned_once() {
        let (tx, rx) = queue(1 << 20);
        let mut rx = Receiver::new(rx, End::Client, 1024);
        tx.push_all([message(b"one"), trailers(&Status::not_found("gone"))])
            .unwrap();
        assert_eq!(next(&mut rx).unwrap().unwrap(), "one");
        let status = next(&mut rx).unwrap().unwrap_err();
        assert_eq!((status.code(), status.message()), (Code::NotFound, "gone"));
        assert!(next(&mut rx).is_none());
    }

    #[test]
    fn a_queue_closed_without_a_status_ends_a_request_stream_but_fails_a_response() {
        let (tx, rx) = queue::<Inbound>(1 << 20);
        let mut requests = Receiver::new(rx, End::Server, 1024);
        drop(tx);
        assert!(next(&mut requests).is_none(), "the client half-closed");

        let (tx, rx) = queue::<Inbound>(1 << 20);
        let mut responses = Receiver::new(rx, End::Client, 1024);
        drop(tx);
        let status = next(&mut responses).unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }

    #[test]
    fn a_unary_call_takes_exactly_one_message() {
        let single = |events: Vec<Inbound>| {
            let (tx, rx) = queue(1 << 20);
            let mut rx = Receiver::new(rx, End::Server, 1024);
            tx.push_all(events).unwrap();
            drop(tx);
            match rx.poll_single(&mut Block) {
                Poll::Ready(result) => result,
                Poll::Pending => unreachable!(),
            }
        };
        assert_eq!(single(vec![message(b"only")]).unwrap(), "only");
        let none = single(vec![]).unwrap_err();
        assert_eq!(none.code(), Code::Internal);
        assert!(none.message().contains("no request message"), "{none:?}");
        let two = single(vec![message(b"a"), message(b"b")]).unwrap_err();
        assert_eq!(two.code(), Code::Internal);
        assert!(two.message().contains("more than one request"), "{two:?}");
    }

    #[test]
    fn a_compressed_message_without_an_encoding_fails_the_call() {
        let (tx, rx) = queue(1 << 20);
        let mut rx = Receiver::new(rx, End::Server, 1024);
        tx.push(Inbound::Message(Frame {
            compressed: true,
            trailers: false,
            body: Bytes::from_static(b"\x1f\x8b"),
        }))
        .unwrap();
        let status = next(&mut rx).unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert!(next(&mut rx).is_none());
    }

    #[test]
    fn an_async_receiver_waits_for_its_waker() {
        let (tx, rx) = queue(1 << 20);
        let mut rx = Receiver::new(rx, End::Server, 1024);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(rx.poll_next(&mut cx).is_pending());
        tx.push(message(b"later")).unwrap();
        match rx.poll_next(&mut cx) {
            Poll::Ready(Some(Ok(body))) => assert_eq!(body, "later"),
            other => panic!("{other:?}"),
        }
    }
}
