//! The receiving side of a call on the poller, the same for server and client: DATA read
//! from an h2 stream, split into messages and moved into the call's inbound queue as far
//! as the queue has room, with HTTP/2 flow-control credit given back only for what left.
//!
//! ```text
//!  h2 DATA ──read at once──▶ decoder (wire bytes) ──while the queue has room──▶ queue ──▶ consumer
//!                              │ credit held for whole messages still here
//!                              └ credit given back for what moved on, and for the one
//!                                message being assembled (it may be larger than the window)
//! ```
//!
//! So what a peer can make a call hold is the queue's budget ([`INBOUND_QUEUE`] on a
//! server, [`CLIENT_INBOUND_QUEUE`] on a client, in real memory cost: a queued empty
//! message costs its entry), the stream's flow-control window at wire size, and one
//! message being assembled (at most the receive limit). Bytes in the decoder are charged
//! to the connection's memory quota; while it (or the server's) has no room, no credit
//! goes back at all.
//!
//! [`INBOUND_QUEUE`]: crate::limits::INBOUND_QUEUE
//! [`CLIENT_INBOUND_QUEUE`]: crate::limits::CLIENT_INBOUND_QUEUE

use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::RecvStream;

use super::events::Inbound;
use super::web::TextDecoder;
use crate::codec::FrameDecoder;
use crate::cq::Weigh;
use crate::quota::Quota;
use crate::status::Status;

/// One call's received bytes on their way to its inbound queue.
pub(crate) struct Inflow {
    decoder: FrameDecoder,
    /// Bytes received so far.
    received: u64,
    /// Bytes whose flow-control credit went back to the peer.
    released: u64,
    /// The decoder's bytes, as charged to the connection's quota.
    charged: usize,
    /// h2 said the stream's data ended.
    ended: bool,
    /// A gRPC-Web text body: base64 decoded on the way in (boxed: rare, and the call's
    /// task stays small).
    text: Option<Box<Text>>,
    /// A gRPC-Web response's trailers frame was read.
    web_trailers: bool,
}

/// A gRPC-Web text body's decoding.
#[derive(Default)]
struct Text {
    decoder: TextDecoder,
    /// What is not base64, reported by the next `drain` or `next_single`.
    bad: Option<Status>,
}

impl Inflow {
    pub(crate) fn new(decoder: FrameDecoder) -> Inflow {
        Inflow {
            decoder,
            received: 0,
            released: 0,
            charged: 0,
            ended: false,
            text: None,
            web_trailers: false,
        }
    }

    /// The body is a gRPC-Web response: its last frame holds the trailers, handed on as
    /// [`Inbound::Trailers`].
    pub(crate) fn web_response(&mut self) {
        self.decoder.allow_trailers();
    }

    /// Whether a gRPC-Web trailers frame was read.
    pub(crate) fn web_trailers(&self) -> bool {
        self.web_trailers
    }

    /// The body is gRPC-Web text: base64 of the messages.
    pub(crate) fn base64(&mut self) {
        self.text = Some(Box::default());
    }

    pub(crate) fn decoder_mut(&mut self) -> &mut FrameDecoder {
        &mut self.decoder
    }

    /// Whether the stream's data ended (whole messages may still wait in the decoder).
    pub(crate) fn data_ended(&self) -> bool {
        self.ended
    }

    /// Reads what h2 has for this stream now (all of it: bytes wait in the decoder at
    /// their wire size, bounded by the credit held back); `Ready` at the end of the data.
    pub(crate) fn poll_read(
        &mut self,
        body: &mut RecvStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), h2::Error>> {
        if self.ended {
            return Poll::Ready(Ok(()));
        }
        loop {
            match ready!(body.poll_data(cx)) {
                Some(Ok(chunk)) => self.feed(chunk),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => {
                    self.ended = true;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }

    fn feed(&mut self, chunk: Bytes) {
        self.received += chunk.len() as u64;
        match &mut self.text {
            None => self.decoder.feed(chunk),
            Some(text) if text.bad.is_none() => match text.decoder.decode(&chunk) {
                Ok(bytes) => self.decoder.feed(bytes),
                Err(status) => text.bad = Some(status),
            },
            Some(_) => {}
        }
    }

    /// Received bytes still held here, at wire size (a text body's decoded bytes count
    /// as the base64 they came as).
    fn held(&self) -> u64 {
        let buffered = self.decoder.buffered() as u64;
        match &self.text {
            None => buffered,
            Some(text) => buffered.div_ceil(3) * 4 + text.decoder.carried() as u64,
        }
    }

    fn check_bad(&mut self) -> Result<(), Status> {
        match self.text.as_mut().and_then(|text| text.bad.take()) {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }

    /// Moves whole messages into `batch` while their weight fits in `room`; `Ok(true)`
    /// when the decoder has no whole message left.
    pub(crate) fn drain(
        &mut self,
        mut room: usize,
        batch: &mut Vec<Inbound>,
    ) -> Result<bool, Status> {
        self.check_bad()?;
        let drained = loop {
            if room == 0 {
                break false;
            }
            match self.decoder.next_frame()? {
                Some(_) if self.web_trailers => {
                    return Err(Status::internal(
                        "received data after a grpc-web response's trailers",
                    ));
                }
                Some(frame) if frame.trailers => {
                    // Bytes behind the trailers already here: the status cannot be
                    // trusted to be the last word (later ones are ignored, as bytes after
                    // the end of a stream are).
                    if self.decoder.buffered() > 0 {
                        return Err(Status::internal(
                            "received data after a grpc-web response's trailers",
                        ));
                    }
                    self.web_trailers = true;
                    let trailers = Inbound::Trailers(super::web::parse_trailers(&frame.body)?);
                    room = room.saturating_sub(trailers.weight());
                    batch.push(trailers);
                }
                Some(frame) => {
                    let message = Inbound::Message(frame);
                    room = room.saturating_sub(message.weight());
                    batch.push(message);
                }
                None => break true,
            }
        };
        Ok(drained)
    }

    /// The one message of a unary exchange, once it is whole; `Ok(None)` until then.
    pub(crate) fn next_single(&mut self) -> Result<Option<crate::codec::Frame>, Status> {
        self.check_bad()?;
        self.decoder.next_frame()
    }

    /// Ends a poll: charges what the decoder holds to `quota` (the connection's, when
    /// there is one), and gives flow-control credit back for every byte received that is
    /// not part of a whole message still waiting here (`drained`: none is), unless the
    /// quota has no room: then credit is held, and the task is woken when room comes back.
    pub(crate) fn release(
        &mut self,
        body: &mut RecvStream,
        drained: bool,
        quota: Option<&Quota>,
        cx: &mut Context<'_>,
    ) {
        if let Some(quota) = quota {
            let buffered = self.decoder.buffered();
            if buffered > self.charged {
                quota.charge(buffered - self.charged);
            } else {
                quota.release(self.charged - buffered);
            }
            self.charged = buffered;
        }
        let target = if drained {
            self.received
        } else {
            self.received.saturating_sub(self.held())
        };
        if target <= self.released {
            return;
        }
        if quota.is_some_and(|q| q.poll_room(cx).is_pending()) {
            return;
        }
        let credit = target - self.released;
        // Credit is at most what was received, so it fits in h2's u32 window arithmetic
        // whenever the window itself did.
        let _ = body
            .flow_control()
            .release_capacity(usize::try_from(credit).unwrap_or(usize::MAX));
        self.released = target;
    }

    /// Gives back what the decoder is charged; the owner calls it before the decoder
    /// goes, with the quota it charged.
    pub(crate) fn discharge(&mut self, quota: &Quota) {
        quota.release(std::mem::take(&mut self.charged));
    }

    /// After the end of the data: an error if a message was cut off (`what` names the
    /// stream: "request stream", "response").
    pub(crate) fn check_complete(&self, what: &str) -> Result<(), Status> {
        if self.decoder.has_partial() || self.text.as_ref().is_some_and(|t| t.decoder.carried() > 0)
        {
            return Err(Status::internal(format!(
                "{what} ended in the middle of a message"
            )));
        }
        Ok(())
    }
}
