//! What moves through a call's two completion queues, and what each entry weighs against
//! the queue's budget: [`Inbound`] from the poller to user code, [`Outbound`] back.

use http::HeaderMap;

use crate::codec::{self, Frame, Framed};
use crate::cq::Weigh;
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
    Message(Framed),
    /// The client is done sending (half-close).
    Finish,
    /// The final status and trailers (server side).
    Trailers(HeaderMap),
    /// User code failed while producing requests: reset the call with this status.
    Abort(Status),
}

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
                Outbound::Message(chunk) => chunk.weight(),
                Outbound::Headers(headers) | Outbound::Trailers(headers) => header_bytes(headers),
                Outbound::Finish | Outbound::Abort(_) => 0,
            }
    }
}

/// The error a sender reports once its call has ended; the call's own status is what
/// the receiving side returns.
pub(crate) fn call_ended() -> Status {
    Status::cancelled("the call has already ended; its status is on the receiving side")
}
