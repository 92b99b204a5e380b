//! Counters of calls, messages, bytes and connections, for a channel or a server.
//!
//! Counting costs a few relaxed atomic increments per call and per message, and nothing
//! at all unless a [`Metrics`] is attached
//! ([`ChannelBuilder::metrics`](crate::ChannelBuilder::metrics),
//! [`ServerBuilder::metrics`](crate::server::ServerBuilder::metrics)). Read them with
//! [`Metrics::snapshot`] and export them as you like.
//!
//! ```
//! let metrics = rsgrpc::metrics::Metrics::new();
//! let server = rsgrpc::server::Server::builder().metrics(&metrics);
//! # drop(server);
//! let now = metrics.snapshot();
//! assert_eq!(now.calls_started, 0);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::status::Code;

/// How many status codes there are: one counter each.
const CODES: usize = Code::ALL.len();

/// A set of counters, cheap to clone (clones share them).
#[derive(Clone, Debug, Default)]
pub struct Metrics(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    calls_started: AtomicU64,
    calls_finished: [AtomicU64; CODES],
    active_calls: AtomicI64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    connections_opened: AtomicU64,
    open_connections: AtomicI64,
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Calls started (on a server: calls that reached a handler, not those refused or
    /// answered before one ran).
    pub calls_started: u64,
    /// Calls finished, by status code: read with [`finished`](Self::finished).
    calls_finished: [u64; CODES],
    /// Calls started and not finished.
    pub active_calls: i64,
    /// Messages sent (requests on a channel, responses on a server).
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes of messages sent, as framed on the wire (five-byte prefixes included, after
    /// compression).
    pub bytes_sent: u64,
    /// Bytes of messages received, as framed on the wire (five-byte prefixes included,
    /// before decompression).
    pub bytes_received: u64,
    /// Connections opened (dialled or accepted).
    pub connections_opened: u64,
    /// Connections open now.
    pub open_connections: i64,
}

impl Snapshot {
    /// Calls finished with `code`.
    pub fn finished(&self, code: Code) -> u64 {
        self.calls_finished.get(code as usize).copied().unwrap_or(0)
    }
}

impl Metrics {
    /// New counters, all zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let c = &self.0;
        let mut calls_finished = [0; CODES];
        for (slot, counter) in calls_finished.iter_mut().zip(&c.calls_finished) {
            *slot = counter.load(Ordering::Relaxed);
        }
        Snapshot {
            calls_started: c.calls_started.load(Ordering::Relaxed),
            calls_finished,
            active_calls: c.active_calls.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            messages_received: c.messages_received.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            connections_opened: c.connections_opened.load(Ordering::Relaxed),
            open_connections: c.open_connections.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn call_started(&self) {
        self.0.calls_started.fetch_add(1, Ordering::Relaxed);
        self.0.active_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn call_finished(&self, code: Code) {
        self.0.calls_finished[code as usize].fetch_add(1, Ordering::Relaxed);
        self.0.active_calls.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.0.messages_sent.fetch_add(1, Ordering::Relaxed);
        self.0.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.0.messages_received.fetch_add(1, Ordering::Relaxed);
        self.0
            .bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.0.connections_opened.fetch_add(1, Ordering::Relaxed);
        self.0.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
