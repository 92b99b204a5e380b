//! [`ServerHandle`]: a running server, its counters, and its shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{Phase, ServerShared};
use crate::cq::{self, Consumer};

/// A running server.
///
/// Dropping it without calling [`shutdown`](Self::shutdown) stops the server at once:
/// calls in flight are cancelled.
pub struct ServerHandle {
    shared: Arc<ServerShared>,
    local_addr: SocketAddr,
    unix_path: Option<PathBuf>,
    poller: tokio::runtime::Handle,
}

impl ServerHandle {
    pub(super) fn new(
        shared: Arc<ServerShared>,
        local_addr: SocketAddr,
        poller: tokio::runtime::Handle,
    ) -> ServerHandle {
        ServerHandle {
            shared,
            local_addr,
            unix_path: None,
            poller,
        }
    }

    /// Removes the socket file at `path` when the handle is dropped.
    pub(super) fn removing(mut self, path: PathBuf) -> ServerHandle {
        self.unix_path = Some(path);
        self
    }

    /// The address the server listens on (with the actual port when bound to port 0);
    /// `0.0.0.0:0` for a server on a Unix socket (see [`unix_path`](Self::unix_path)).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The socket path of a server on a Unix socket.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// How many connections the server has accepted so far.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// How many connections are open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections()
    }

    /// How many calls are in progress now.
    pub fn active_calls(&self) -> usize {
        self.shared.active_calls()
    }

    /// Bytes the server holds now against its [`memory_quota`](super::ServerBuilder::memory_quota).
    pub fn memory_used(&self) -> usize {
        self.shared.quota.used()
    }

    /// Stops accepting connections, tells clients to go away (HTTP/2 GOAWAY) and lets
    /// calls in flight finish for up to `grace`; calls still running then are cancelled.
    ///
    /// The returned [`Shutdown`] completes when the server has stopped: wait for it with
    /// [`Shutdown::wait`] or `.await` it.
    pub fn shutdown(&self, grace: Duration) -> Shutdown {
        let (done, rx) = cq::queue(1);
        let shared = self.shared.clone();
        if *shared.phase.borrow() == Phase::Serving {
            shared.phase.send_replace(Phase::Draining);
        }
        self.poller.spawn(async move {
            let deadline = crate::deadline::deadline_after(grace);
            if !shared.wait_idle(deadline).await {
                tracing::debug!("grace period over: cancelling the remaining calls");
                shared.stop_now();
                shared.wait_idle(None).await;
            }
            shared.phase.send_replace(Phase::Stopped);
            let _ = done.push(());
        });
        Shutdown { rx }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if *self.shared.phase.borrow() == Phase::Serving {
            self.shared.stop_now();
        }
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Completes when a server has shut down; see [`ServerHandle::shutdown`].
#[must_use = "the server shuts down in the background; wait or await to know when it is done"]
pub struct Shutdown {
    rx: Consumer<()>,
}

impl Shutdown {
    /// Blocks until the server has shut down.
    pub fn wait(mut self) {
        let _ = self.rx.pop_blocking();
    }
}

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.rx.poll_pop(cx).map(|_| ())
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").finish_non_exhaustive()
    }
}
