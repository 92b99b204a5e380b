//! Process-wide counts of what the runtime holds now: calls and connections, on the
//! client and the server side. Each is an RAII guard, so the counts are exact whatever
//! way a call or connection ends. Read them with `rsgrpc::internals::live` (feature `internals`).

use std::sync::atomic::{AtomicUsize, Ordering};

static CLIENT_CALLS: AtomicUsize = AtomicUsize::new(0);
static CLIENT_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
static SERVER_CALLS: AtomicUsize = AtomicUsize::new(0);
static SERVER_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Counts one live thing while it exists.
pub(crate) struct Live(&'static AtomicUsize);

impl Live {
    fn new(counter: &'static AtomicUsize) -> Live {
        counter.fetch_add(1, Ordering::AcqRel);
        Live(counter)
    }

    /// A client call's task on the poller, from its first poll to its end.
    pub(crate) fn client_call() -> Live {
        Live::new(&CLIENT_CALLS)
    }

    /// A client connection, while its driver runs.
    pub(crate) fn client_connection() -> Live {
        Live::new(&CLIENT_CONNECTIONS)
    }

    /// A server call, from admission to its end.
    pub(crate) fn server_call() -> Live {
        Live::new(&SERVER_CALLS)
    }

    /// A server connection, from admission to its end.
    pub(crate) fn server_connection() -> Live {
        Live::new(&SERVER_CONNECTIONS)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Calls and connections live in this process now, over every runtime.
#[cfg(feature = "internals")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Client calls whose task runs on a poller.
    pub client_calls: usize,
    /// Client HTTP/2 connections being driven.
    pub client_connections: usize,
    /// Server calls admitted and not ended.
    pub server_calls: usize,
    /// Server connections admitted and not closed.
    pub server_connections: usize,
}

#[cfg(feature = "internals")]
impl LiveCounts {
    /// True when nothing is live.
    pub fn is_zero(&self) -> bool {
        *self == LiveCounts::default()
    }
}

#[cfg(feature = "internals")]
pub(crate) fn counts() -> LiveCounts {
    LiveCounts {
        client_calls: CLIENT_CALLS.load(Ordering::Acquire),
        client_connections: CLIENT_CONNECTIONS.load(Ordering::Acquire),
        server_calls: SERVER_CALLS.load(Ordering::Acquire),
        server_connections: SERVER_CONNECTIONS.load(Ordering::Acquire),
    }
}
