//! What every connection and call of a server shares: its settings and routes, its phase
//! (serving, draining, stopped), and the counters behind admission: calls, connections,
//! blocking streaming handlers, and the registry of connections that lets an idle one be
//! closed to admit a new one at `max_connections`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::{Notify, watch};

use super::ServerConfig;
use super::service::Handler;
use crate::executor::BoxFuture;
use crate::executor::SpawnHook;
use crate::limits;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::role;
use crate::runtime::{self};
use crate::sync::Mutex;

/// The server's lifecycle, as connections see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    /// No new connections; GOAWAY sent; in-flight calls may finish.
    Draining,
    /// Calls still running are cancelled and connections closed.
    Stopped,
}

pub(crate) struct ServerShared {
    /// Always `Some` until dropped (taken then to drop the handlers off the pollers).
    router: Option<HashMap<String, Handler>>,
    /// The memory all connections draw from.
    pub(crate) quota: Arc<Quota>,
    pub(crate) config: ServerConfig,
    pub(crate) rt: runtime::Handle,
    spawn_hook: Option<SpawnHook>,
    /// The tokio runtime the server was built in, if any: async handlers run with it
    /// entered.
    tokio: Option<tokio::runtime::Handle>,
    pub(crate) metrics: Option<Metrics>,
    pub(crate) phase: watch::Sender<Phase>,
    /// Set when the server stops waiting for calls: every call then cancels.
    stopped: AtomicBool,
    /// Connections and calls still running.
    active: AtomicUsize,
    idle: Notify,
    pub(crate) accepted: AtomicU64,
    /// Connections open now.
    connections: AtomicUsize,
    /// The open connections, for reclaiming the longest idle one at `max_connections`.
    registry: Mutex<Registry>,
    /// What connections' idle times are measured from.
    epoch: Instant,
    /// Calls in progress now (counted against `max_concurrent_calls`).
    calls: AtomicUsize,
    /// Blocking client- and bidi-streaming handlers admitted and not finished.
    blocking_streams: AtomicUsize,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Drop for ServerShared {
    fn drop(&mut self) {
        // The handlers and the spawn hook are the user's: never dropped on a poller.
        role::drop_off_poller((self.router.take(), self.spawn_hook.take()));
    }
}

/// Takes one unit of `counter` if it stays within `limit`.
fn take_unit(counter: &AtomicUsize, limit: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl ServerShared {
    pub(super) fn new(
        router: HashMap<String, Handler>,
        config: ServerConfig,
        rt: runtime::Handle,
        spawn_hook: Option<SpawnHook>,
        metrics: Option<Metrics>,
        #[cfg(feature = "tls")] tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> ServerShared {
        ServerShared {
            router: Some(router),
            quota: Quota::new(config.memory_quota, None),
            config,
            rt,
            spawn_hook,
            tokio: tokio::runtime::Handle::try_current().ok(),
            metrics,
            phase: watch::Sender::new(Phase::Serving),
            stopped: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            accepted: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            registry: Mutex::new(Registry::default()),
            epoch: Instant::now(),
            calls: AtomicUsize::new(0),
            blocking_streams: AtomicUsize::new(0),
            #[cfg(feature = "tls")]
            tls,
        }
    }

    /// Calls in progress now.
    pub(crate) fn active_calls(&self) -> usize {
        self.calls.load(Ordering::Acquire)
    }

    pub(crate) fn router(&self) -> &HashMap<String, Handler> {
        static EMPTY: std::sync::OnceLock<HashMap<String, Handler>> = std::sync::OnceLock::new();
        self.router
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(HashMap::new))
    }

    /// Counts a new connection. At `max_connections`, the connection idle the longest
    /// (no call open, handshakes included) is told to close to make room; when none is
    /// idle, `None`: the new connection is closed instead. So a cap never locks new
    /// clients out for connections that do nothing.
    pub(crate) fn admit_connection(self: &Arc<Self>) -> Option<ConnectionGuard> {
        let max = self.config.max_connections;
        if !take_unit(&self.connections, max) {
            // Over the cap only while reclaimed connections close (a hard ceiling of twice
            // the cap, should they be slow to).
            if !self.reclaim_idle() || !take_unit(&self.connections, max.saturating_mul(2)) {
                return None;
            }
        }
        let entry = Arc::new(ConnEntry {
            idle_since: AtomicU64::new(self.now_nanos()),
            reclaim: AtomicBool::new(false),
            waker: futures_util::task::AtomicWaker::new(),
        });
        let key = {
            let mut registry = self.registry.lock();
            let key = registry.next;
            registry.next += 1;
            registry.conns.insert(key, entry.clone());
            key
        };
        Some(ConnectionGuard {
            _track: self.track(),
            _live: Live::server_connection(),
            entry,
            key,
        })
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Asks the connection idle the longest to close; whether there was one.
    fn reclaim_idle(&self) -> bool {
        let registry = self.registry.lock();
        let victim = registry
            .conns
            .values()
            .filter(|e| !e.reclaim.load(Ordering::Acquire))
            .map(|e| (e.idle_since.load(Ordering::Acquire), e))
            .filter(|(since, _)| *since != BUSY)
            .min_by_key(|(since, _)| *since)
            .map(|(_, e)| e.clone());
        drop(registry);
        let Some(victim) = victim else {
            return false;
        };
        tracing::debug!("at max_connections: closing the connection idle the longest");
        victim.reclaim.store(true, Ordering::Release);
        victim.waker.wake();
        true
    }

    /// Counts a new call, unless `max_concurrent_calls` are in progress already.
    pub(crate) fn admit_call(self: &Arc<Self>) -> Option<CallGuard> {
        if !take_unit(&self.calls, self.config.max_concurrent_calls) {
            return None;
        }
        Some(CallGuard {
            _track: self.track(),
            _live: Live::server_call(),
        })
    }

    /// Counts a blocking streaming handler about to start. They may hold at most three
    /// quarters of the worker pool, so that unary calls, whose handlers never wait on the
    /// client, always find workers: a streaming handler may wait as long as its client
    /// likes, for requests or for room to send responses.
    pub(crate) fn admit_blocking_stream(self: &Arc<Self>) -> Option<BlockingStreamGuard> {
        let limit = limits::share(
            self.rt.workers.max_threads(),
            limits::BLOCKING_STREAMING_SHARE_PERCENT,
        );
        if !take_unit(&self.blocking_streams, limit) {
            return None;
        }
        Some(BlockingStreamGuard(self.clone()))
    }

    /// Connections open now.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Blocking handlers one connection may hold at once.
    pub(crate) fn blocking_share(&self) -> usize {
        self.config
            .max_blocking_handlers_per_connection
            .unwrap_or_else(|| {
                limits::share(
                    self.rt.workers.max_threads(),
                    limits::CONNECTION_BLOCKING_SHARE_PERCENT,
                )
            })
            .max(1)
    }

    /// Counts a connection or call as running until the guard is dropped.
    fn track(self: &Arc<Self>) -> Track {
        self.active.fetch_add(1, Ordering::AcqRel);
        Track(self.clone())
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Runs async handlers on the built-in executor (inside the tokio runtime the server
    /// was built in, if any), or hands them to the spawn hook. The hook is the user's
    /// code, so it is called on an executor thread, not here.
    pub(crate) fn spawn_all(&self, futures: impl Iterator<Item = BoxFuture>) {
        match (&self.spawn_hook, &self.tokio) {
            (None, None) => self.rt.executor.spawn_all(futures),
            (None, Some(tokio)) => self
                .rt
                .executor
                .spawn_all(futures.map(|future| crate::executor::in_tokio(tokio.clone(), future))),
            (Some(hook), _) => self.rt.executor.spawn_all(futures.map(|future| {
                let hook = hook.clone();
                Box::pin(async move {
                    role::assert_off_poller("a spawn hook");
                    hook(future);
                }) as BoxFuture
            })),
        }
    }

    pub(super) fn stop_now(&self) {
        self.stopped.store(true, Ordering::Release);
        self.phase.send_replace(Phase::Stopped);
    }

    /// Waits until no connection or call is running, or `until` passes; returns whether
    /// everything finished.
    pub(super) async fn wait_idle(&self, until: Option<Instant>) -> bool {
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::Acquire) == 0 {
                return true;
            }
            match until {
                Some(until) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(until.into()) => {
                            return self.active.load(Ordering::Acquire) == 0;
                        }
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// Keeps a connection or call counted as running.
struct Track(Arc<ServerShared>);

impl Drop for Track {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A connection counted against `max_connections`, and its entry in the registry.
pub(crate) struct ConnectionGuard {
    _track: Track,
    _live: Live,
    entry: Arc<ConnEntry>,
    key: u64,
}

impl ConnectionGuard {
    /// Notes whether the connection has calls open (it is idle when not).
    pub(crate) fn set_idle(&self, idle: bool) {
        let now = if idle {
            // Idle since now, unless it was idle already.
            let since = self.entry.idle_since.load(Ordering::Acquire);
            if since != BUSY {
                return;
            }
            self._track.0.now_nanos()
        } else {
            BUSY
        };
        self.entry.idle_since.store(now, Ordering::Release);
    }

    /// Ready once the server asked this connection to close to make room for another.
    pub(crate) fn poll_reclaimed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.entry.reclaim.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.entry.waker.register(cx.waker());
        if self.entry.reclaim.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let shared = &self._track.0;
        shared.registry.lock().conns.remove(&self.key);
        shared.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `idle_since` of a connection with calls open.
const BUSY: u64 = u64::MAX;

/// The open connections of a server.
#[derive(Default)]
struct Registry {
    next: u64,
    conns: HashMap<u64, Arc<ConnEntry>>,
}

/// What the server knows of one open connection.
struct ConnEntry {
    /// Nanoseconds after the server's epoch since which it has no call open, or [`BUSY`].
    idle_since: AtomicU64,
    /// The server asked it to close.
    reclaim: AtomicBool,
    /// Its task, to wake when asked to close.
    waker: futures_util::task::AtomicWaker,
}

/// A call counted against `max_concurrent_calls`.
pub(crate) struct CallGuard {
    _track: Track,
    _live: Live,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self._track.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A blocking streaming handler counted against its share of the worker pool.
pub(crate) struct BlockingStreamGuard(Arc<ServerShared>);

impl Drop for BlockingStreamGuard {
    fn drop(&mut self) {
        self.0.blocking_streams.fetch_sub(1, Ordering::AcqRel);
    }
}
