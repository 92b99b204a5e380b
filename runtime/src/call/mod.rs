//! One call's moving parts, shared by client and server, blocking and async: the layer
//! between the queues and transport below and the channel, client and server above.
//!
//! ```text
//!  user thread or task                      poller (channel's or server's call task)
//!  ───────────────────                      ────────────────────────────────────────
//!  queue_message ─▶ chunks ─── Outbound ──▶ send within flow control ──▶ h2
//!  receiver ◀── streams ◀───── Inbound ◀─── inflow ◀──────────────────── h2
//!  observed: interceptors, span, metrics    cancel: reset, deadline, shutdown
//! ```
//!
//! - [`events`]: what moves through a call's two completion queues, and its weight.
//! - [`chunks`]: the buffers outbound messages are framed into, recycled per call.
//! - [`outgoing`]: a chunk's bytes as h2 sends them, long `Bytes` fields spliced in.
//! - [`inflow`]: the poller's receive path, bounded by the inbound queue's budget.
//! - [`receiver`]: the consumer of the inbound queue, parking or registering a waker.
//! - [`streams`]: the public message streams built on a receiver or an outbound queue.
//! - [`cancel`]: a server call's context and cancellation.
//! - [`observed`]: the per-call record that interceptors, tracing and metrics see.
//! - [`protocol`]: the content type and the HTTP/2 error mapping both ends read.

pub(crate) mod cancel;
pub(crate) mod chunks;
pub(crate) mod events;
pub(crate) mod inflow;
pub(crate) mod observed;
pub(crate) mod outgoing;
pub(crate) mod protocol;
pub(crate) mod receiver;
pub(crate) mod streams;
pub(crate) mod web;
