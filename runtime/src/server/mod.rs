//! The server: blocking and async services side by side on one port.
//!
//! ```no_run
//! use rsgrpc::server::{Server, Service};
//! use rsgrpc::{Request, Response, Status};
//! use std::time::Duration;
//!
//! # #[derive(Clone, PartialEq, prost::Message)] struct Ping {}
//! let echo = Service::builder("test.Echo")
//!     .blocking_unary("Echo", |req: Request<Ping>| -> Result<Response<Ping>, Status> {
//!         Ok(Response::new(req.into_inner()))
//!     })
//!     .build();
//! let server = Server::builder().add_service(echo).bind("127.0.0.1:0")?;
//! println!("listening on {}", server.local_addr());
//! // ... later: let in-flight calls finish for up to 5 s, then cancel the rest.
//! server.shutdown(Duration::from_secs(5)).wait();
//! # Ok::<(), rsgrpc::Error>(())
//! ```
//!
//! Connections, their HTTP/2 state and every socket read and write live on the runtime's
//! poller threads. Blocking handlers run on its worker pool, async handlers on its executor
//! or on a spawn hook of yours ([`ServerBuilder::spawn_with`]).

mod accept;
mod connection;
mod dispatch;
pub(crate) mod responder;
pub(crate) mod service;
mod stream;

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::codec::CompressionEncoding;
use crate::cq::{self, Consumer};
use crate::error::{Error, Result};
pub use crate::executor::BoxFuture;
use crate::executor::SpawnHook;
use crate::interceptor::{Chain, Interceptor};
use crate::limits;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::role;
use crate::runtime::{self, Runtime};
use crate::transport::SocketOptions;
use crate::transport::frames::PingPolicy;
use service::{Handler, Site};
pub use service::{Service, ServiceBuilder};

/// Entry point: [`Server::builder`].
#[derive(Debug)]
pub struct Server {
    _private: (),
}

impl Server {
    /// A builder with default limits and no services.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            services: Vec::new(),
            config: ServerConfig::default(),
            runtime: None,
            spawn_hook: None,
            interceptors: Chain::default(),
            metrics: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Limits and timeouts of a server. Defaults are safe for a server exposed to untrusted
/// clients.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) max_receive_message_size: usize,
    pub(crate) max_send_message_size: usize,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) max_header_list_size: u32,
    pub(crate) handshake_timeout: Duration,
    pub(crate) initial_stream_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) max_pending_accept_reset_streams: usize,
    pub(crate) max_local_error_reset_streams: usize,
    pub(crate) send_compression: Option<CompressionEncoding>,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) max_connections: usize,
    /// Pings sent to clients quiet for this long (none by default).
    pub(crate) keepalive_time: Option<Duration>,
    pub(crate) keepalive_timeout: Duration,
    /// How often clients may ping (gRPC's keepalive enforcement).
    pub(crate) ping_policy: PingPolicy,
    pub(crate) max_connection_idle: Option<Duration>,
    pub(crate) max_connection_age: Option<Duration>,
    pub(crate) max_connection_age_grace: Option<Duration>,
    pub(crate) socket: SocketOptions,
    /// Bytes all connections may make the server hold.
    pub(crate) memory_quota: usize,
    /// Bytes one connection may make the server hold.
    pub(crate) connection_memory_quota: usize,
    /// Blocking handlers one connection may have running or queued (default: a quarter
    /// of the runtime's `max_blocking_threads`).
    pub(crate) max_blocking_handlers_per_connection: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_receive_message_size: limits::DEFAULT_MAX_RECEIVE_MESSAGE_SIZE,
            max_send_message_size: usize::MAX,
            max_concurrent_streams: limits::DEFAULT_MAX_CONCURRENT_STREAMS,
            max_header_list_size: limits::DEFAULT_MAX_HEADER_LIST_SIZE,
            handshake_timeout: limits::DEFAULT_HANDSHAKE_TIMEOUT,
            initial_stream_window_size: limits::DEFAULT_STREAM_WINDOW,
            initial_connection_window_size: limits::DEFAULT_CONNECTION_WINDOW,
            max_pending_accept_reset_streams: limits::DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_local_error_reset_streams: limits::DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
            send_compression: None,
            max_concurrent_calls: limits::DEFAULT_MAX_CONCURRENT_CALLS,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            keepalive_time: None,
            keepalive_timeout: limits::DEFAULT_KEEPALIVE_TIMEOUT,
            ping_policy: PingPolicy {
                min_time: limits::DEFAULT_PING_MIN_TIME,
                permit_without_calls: false,
            },
            max_connection_idle: None,
            max_connection_age: None,
            max_connection_age_grace: None,
            socket: SocketOptions::default(),
            memory_quota: limits::DEFAULT_MEMORY_QUOTA,
            connection_memory_quota: limits::DEFAULT_CONNECTION_MEMORY_QUOTA,
            max_blocking_handlers_per_connection: None,
        }
    }
}

/// Configures and starts a server.
#[must_use = "a builder does nothing until bind is called"]
pub struct ServerBuilder {
    services: Vec<Service>,
    config: ServerConfig,
    runtime: Option<Runtime>,
    spawn_hook: Option<SpawnHook>,
    interceptors: Chain,
    metrics: Option<Metrics>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ServerTlsConfig>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("services", &self.services)
            .field("config", &self.config)
            .field("spawn_hook", &self.spawn_hook.is_some())
            .field("interceptors", &self.interceptors)
            .finish()
    }
}

impl ServerBuilder {
    /// Hosts a service (blocking, async or mixed).
    pub fn add_service(mut self, service: impl Into<Service>) -> Self {
        self.services.push(service.into());
        self
    }

    /// Runs `interceptor` around every call to every service, before the services' own
    /// interceptors and after those added before (see [`interceptor`](crate::interceptor)
    /// for the order). It runs on the handler's thread, before the handler and around its
    /// end.
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors = self.interceptors.with(Arc::new(interceptor));
        self
    }

    /// Counts the server's calls (those that reach a handler), messages, bytes and
    /// connections in `metrics`.
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Runs the server on `runtime` instead of the global one.
    pub fn runtime(mut self, runtime: &Runtime) -> Self {
        self.runtime = Some(runtime.clone());
        self
    }

    /// Runs async handlers through `spawn` instead of the built-in executor, for example
    /// `|f| { tokio_handle.spawn(f); }`. Blocking handlers still use the worker pool.
    ///
    /// `spawn` is called on one of the runtime's executor threads, never on a poller
    /// thread, and outside any async runtime's context: use a handle to your runtime
    /// (`tokio::runtime::Handle::spawn`), not a function that looks for the current one
    /// (`tokio::spawn` panics there, and the call fails with `UNKNOWN`).
    pub fn spawn_with(mut self, spawn: impl Fn(BoxFuture) + Send + Sync + 'static) -> Self {
        self.spawn_hook = Some(Arc::new(spawn));
        self
    }

    /// Most calls in progress at once over all connections (default 4096). Streams beyond
    /// it are refused with `REFUSED_STREAM`, which clients report as `UNAVAILABLE` and may
    /// retry.
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.config.max_concurrent_calls = calls;
        self
    }

    /// Most connections open at once (default 1024); new connections beyond it are
    /// closed as soon as they are accepted.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.max_connections = connections;
        self
    }

    /// Largest request message accepted (default 4 MiB). A larger one fails the call with
    /// `RESOURCE_EXHAUSTED` after its five-byte prefix, before anything is buffered.
    pub fn max_receive_message_size(mut self, bytes: usize) -> Self {
        self.config.max_receive_message_size = bytes;
        self
    }

    /// Largest response message sent (default: unlimited); a larger one fails the call
    /// with `RESOURCE_EXHAUSTED`.
    pub fn max_send_message_size(mut self, bytes: usize) -> Self {
        self.config.max_send_message_size = bytes;
        self
    }

    /// Most calls open at once on one connection (default 256, announced to clients as
    /// HTTP/2's `SETTINGS_MAX_CONCURRENT_STREAMS`); clients queue beyond it.
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.config.max_concurrent_streams = streams;
        self
    }

    /// Largest request header block accepted, in HTTP/2's accounting (default 16 KiB).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.config.max_header_list_size = bytes;
        self
    }

    /// How long a new connection may take to complete its handshakes (TLS if any, then
    /// the HTTP/2 preface with its SETTINGS frame) before it is closed (default 20 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// HTTP/2 flow-control window per call (default 1 MiB).
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Self {
        self.config.initial_stream_window_size = bytes;
        self
    }

    /// HTTP/2 flow-control window per connection (default 2 MiB).
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Self {
        self.config.initial_connection_window_size = bytes;
        self
    }

    /// Streams a client may reset before the server accepted them, per connection, before
    /// the connection is closed (rapid-reset protection; default 20, as h2).
    pub fn max_pending_accept_reset_streams(mut self, streams: usize) -> Self {
        self.config.max_pending_accept_reset_streams = streams;
        self
    }

    /// Streams the server may reset for protocol errors per connection before closing it
    /// (default 1024, as h2).
    pub fn max_local_error_reset_streams(mut self, streams: usize) -> Self {
        self.config.max_local_error_reset_streams = streams;
        self
    }

    /// Compresses responses with `encoding` for clients that accept it (their
    /// `grpc-accept-encoding` lists it); others get uncompressed responses. Compressed
    /// requests are accepted whatever this says.
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.config.send_compression = Some(encoding);
        self
    }

    /// Serves over TLS: every connection must complete a TLS handshake (ALPN `h2`), and
    /// handlers see the client's certificates when it presents some.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, tls: crate::tls::ServerTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Pings a client when its connection has been quiet for `time` (default: never), and
    /// closes the connection (cancelling its calls) when the ping is not answered within
    /// [`keepalive_timeout`](Self::keepalive_timeout): how dead clients are found.
    pub fn keepalive_time(mut self, time: Duration) -> Self {
        self.config.keepalive_time = Some(time);
        self
    }

    /// How long a keepalive ping may go unanswered (default 20 s).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.config.keepalive_timeout = timeout;
        self
    }

    /// The least time between two pings from a client (default 5 min, as gRPC). A client
    /// that pings more often gets strikes, and after two it gets a GOAWAY
    /// `ENHANCE_YOUR_CALM` with debug data `too_many_pings` and its connection closes;
    /// answering with data resets the count.
    pub fn keepalive_min_time(mut self, min: Duration) -> Self {
        self.config.ping_policy.min_time = min;
        self
    }

    /// Whether clients may ping while they have no call open (default false: such pings
    /// count as strikes unless two hours apart).
    pub fn permit_keepalive_without_calls(mut self, permit: bool) -> Self {
        self.config.ping_policy.permit_without_calls = permit;
        self
    }

    /// Closes connections with no call open for this long (with a GOAWAY; default: never).
    pub fn max_connection_idle(mut self, idle: Duration) -> Self {
        self.config.max_connection_idle = Some(idle);
        self
    }

    /// Sends a graceful GOAWAY to connections older than this (±10 %, so clients do not
    /// reconnect all at once; default: never), and closes them after
    /// [`max_connection_age_grace`](Self::max_connection_age_grace).
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.config.max_connection_age = Some(age);
        self
    }

    /// How long calls may go on after a connection's age GOAWAY (default: no limit).
    pub fn max_connection_age_grace(mut self, grace: Duration) -> Self {
        self.config.max_connection_age_grace = Some(grace);
        self
    }

    /// Most memory, in bytes, that the calls of all connections together may make the
    /// server hold in its own buffers (default 1 GiB): requests received and not yet
    /// read by handlers, responses queued and not yet written, a fixed cost per open
    /// connection. Like gRPC C-core's resource quota, it is a budget, not an allocator:
    /// while it is used up, connections holding more than an even share of it are
    /// refused new streams (`REFUSED_STREAM`, which clients retry), flow-control credit
    /// is held back from every client, and handlers that send wait for room (until their
    /// deadline); what was accepted already is kept. Lower it where memory is scarce.
    pub fn memory_quota(mut self, bytes: usize) -> Self {
        self.config.memory_quota = bytes;
        self
    }

    /// Most memory, in bytes, one connection's calls may make the server hold (default
    /// 64 MiB, a sixteenth of the default [`memory_quota`](Self::memory_quota)). When it
    /// is used up, that connection's new streams are refused, its flow-control credit is
    /// held back and its handlers wait to send: one client that stops reading, or sends
    /// faster than handlers read, slows down itself, not the others.
    pub fn connection_memory_quota(mut self, bytes: usize) -> Self {
        self.config.connection_memory_quota = bytes;
        self
    }

    /// Most blocking handlers one connection may have running or waiting in the worker
    /// pool at once (default: a quarter of the runtime's
    /// [`max_blocking_threads`](crate::RuntimeBuilder::max_blocking_threads)). Further
    /// calls of that connection wait for one of them to finish, within their deadlines,
    /// so a client whose handlers block (for example in a send to a client that does not
    /// read) cannot hold every worker.
    pub fn max_blocking_handlers_per_connection(mut self, handlers: usize) -> Self {
        self.config.max_blocking_handlers_per_connection = Some(handlers);
        self
    }

    /// Sets `TCP_NODELAY` on accepted connections (default on).
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.config.socket.nodelay = nodelay;
        self
    }

    /// Enables TCP keepalive probes every `interval` on accepted connections (default
    /// off).
    pub fn tcp_keepalive(mut self, interval: Option<Duration>) -> Self {
        self.config.socket.tcp_keepalive = interval;
        self
    }

    /// Binds `addr` (port 0 picks a free port; see [`ServerHandle::local_addr`]) and starts
    /// serving.
    ///
    /// # Errors
    ///
    /// When binding fails, a setting is out of range, the TLS configuration cannot be
    /// used, or two handlers claim one method.
    pub fn bind(self, addr: impl ToSocketAddrs) -> Result<ServerHandle> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::io("cannot bind the server address", e))?;
        self.serve_listener(listener)
    }

    /// Binds a Unix domain socket at `path` and starts serving. The socket file is
    /// removed when the server is dropped.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind) (for example when `path` exists already).
    pub fn bind_unix(self, path: impl AsRef<Path>) -> Result<ServerHandle> {
        let path = path.as_ref();
        let listener = std::os::unix::net::UnixListener::bind(path)
            .map_err(|e| Error::io(format!("cannot bind the socket {}", path.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("cannot make the listener non-blocking", e))?;
        let mut handle = self.serve(accept::Listener::Unix(listener))?;
        handle.unix_path = Some(path.to_path_buf());
        Ok(handle)
    }

    /// Starts serving on a listener you bound yourself.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn serve_listener(self, listener: std::net::TcpListener) -> Result<ServerHandle> {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("cannot make the listener non-blocking", e))?;
        self.serve(accept::Listener::Tcp(listener))
    }

    fn serve(self, listener: accept::Listener) -> Result<ServerHandle> {
        let config = self.config;
        if config.max_concurrent_streams == 0
            || config.max_header_list_size == 0
            || config.max_concurrent_calls == 0
            || config.max_connections == 0
            || config.max_blocking_handlers_per_connection == Some(0)
        {
            return Err(Error::invalid_config(
                "max_concurrent_streams, max_concurrent_calls, max_connections, \
                 max_blocking_handlers_per_connection and max_header_list_size must be \
                 positive",
            ));
        }
        if config.connection_memory_quota < limits::CONNECTION_COST
            || config.memory_quota < config.connection_memory_quota
        {
            return Err(Error::invalid_config(format!(
                "connection_memory_quota must be at least {} bytes (what a connection \
                 costs) and memory_quota at least connection_memory_quota",
                limits::CONNECTION_COST
            )));
        }
        if config.initial_stream_window_size < 65_535 {
            return Err(Error::invalid_config(
                "initial_stream_window_size must be at least 65535 (the HTTP/2 default)",
            ));
        }
        let mut router = HashMap::new();
        for service in self.services {
            for (method, mut handler) in service.methods {
                let path = format!("/{}/{}", service.name, method);
                handler.site = Arc::new(Site {
                    path: path.as_str().into(),
                    interceptors: self.interceptors.then(&handler.settings.interceptors),
                    metrics: self.metrics.clone(),
                });
                if router.insert(path.clone(), handler).is_some() {
                    return Err(Error::invalid_config(format!(
                        "method {path} is registered twice"
                    )));
                }
            }
        }
        let local_addr = match &listener {
            accept::Listener::Tcp(listener) => listener
                .local_addr()
                .map_err(|e| Error::io("cannot read the bound address", e))?,
            accept::Listener::Unix(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        #[cfg(feature = "tls")]
        let tls = self.tls.as_ref().map(|tls| tls.build()).transpose()?;
        let runtime = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        let rt = runtime.handle().clone();
        let poller = rt.poller();
        let quota = Quota::new(config.memory_quota, None);
        let shared = Arc::new(ServerShared {
            router: Some(router),
            quota,
            config,
            rt,
            spawn_hook: self.spawn_hook,
            tokio: tokio::runtime::Handle::try_current().ok(),
            metrics: self.metrics,
            phase: watch::Sender::new(Phase::Serving),
            stopped: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            accepted: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            registry: std::sync::Mutex::new(Registry::default()),
            epoch: Instant::now(),
            calls: AtomicUsize::new(0),
            blocking_streams: AtomicUsize::new(0),
            #[cfg(feature = "tls")]
            tls,
        });
        poller.spawn(accept::accept_loop(shared.clone(), listener));
        tracing::debug!(%local_addr, "serving");
        Ok(ServerHandle {
            shared,
            local_addr,
            unix_path: None,
            poller,
        })
    }
}

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
    registry: std::sync::Mutex<Registry>,
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
            let mut registry = lock(&self.registry);
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
        let registry = lock(&self.registry);
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

    fn stop_now(&self) {
        self.stopped.store(true, Ordering::Release);
        self.phase.send_replace(Phase::Stopped);
    }

    /// Waits until no connection or call is running, or `until` passes; returns whether
    /// everything finished.
    async fn wait_idle(&self, until: Option<Instant>) -> bool {
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
        lock(&shared.registry).conns.remove(&self.key);
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

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        self.shared.connections.load(Ordering::Acquire)
    }

    /// How many calls are in progress now.
    pub fn active_calls(&self) -> usize {
        self.shared.calls.load(Ordering::Acquire)
    }

    /// Bytes the server holds now against its [`memory_quota`](ServerBuilder::memory_quota).
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
