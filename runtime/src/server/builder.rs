//! [`ServerBuilder`]: a server's settings, and binding it to a port or a Unix socket.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::accept;
use super::service::Site;
use super::{ServerConfig, ServerHandle, ServerShared, Service};
use crate::codec::CompressionEncoding;
use crate::error::{Error, Result};
use crate::executor::BoxFuture;
use crate::executor::SpawnHook;
use crate::interceptor::{Chain, Interceptor};
use crate::limits;
use crate::metrics::Metrics;
use crate::runtime::Runtime;

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
    tls: Option<crate::transport::tls::ServerTlsConfig>,
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
    pub(super) fn new() -> ServerBuilder {
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

    /// Serves gRPC-Web (`application/grpc-web`, `+proto`, and the base64 form
    /// `application/grpc-web-text`) beside native gRPC, on the same port and the same
    /// services, with cross-origin access as `web` allows (none by default: see
    /// [`GrpcWeb`](super::GrpcWeb)). Browsers send gRPC-Web over HTTP/2 only with TLS;
    /// for plain `http://` they need `accept_http1` (feature `http1`) too.
    pub fn grpc_web(mut self, web: super::GrpcWeb) -> Self {
        self.config.web = Some(Arc::new(web));
        self
    }

    /// Accepts HTTP/1.1 connections beside HTTP/2 ones (feature `http1`), told apart by
    /// TLS's ALPN (`h2` or `http/1.1`, both offered) or by their first bytes. Their
    /// requests are served as HTTP/2 ones are, one at a time per connection, with the same
    /// limits, quotas and connection rules; HTTP/1.1 cannot carry native gRPC's trailers,
    /// so it is for gRPC-Web ([`grpc_web`](Self::grpc_web)).
    #[cfg(feature = "http1")]
    pub fn accept_http1(mut self, accept: bool) -> Self {
        self.config.accept_http1 = accept;
        self
    }

    /// Serves over TLS: every connection must complete a TLS handshake (ALPN `h2`, and
    /// `http/1.1` with `accept_http1`, feature `http1`), and handlers see the
    /// client's certificates when it presents some.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, tls: crate::transport::tls::ServerTlsConfig) -> Self {
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
        let handle = self.serve(accept::Listener::Unix(listener))?;
        Ok(handle.removing(path.to_path_buf()))
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
        let local_addr = match &listener {
            accept::Listener::Tcp(listener) => listener
                .local_addr()
                .map_err(|e| Error::io("cannot read the bound address", e))?,
            accept::Listener::Unix(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let shared = self.into_shared()?;
        let poller = shared.rt.poller();
        poller.spawn(accept::accept_loop(shared.clone(), listener));
        tracing::debug!(%local_addr, "serving");
        Ok(ServerHandle::new(shared, local_addr, poller))
    }

    /// Checks the settings and builds what the server's connections share: its routes,
    /// limits and runtime.
    pub(super) fn into_shared(self) -> Result<Arc<ServerShared>> {
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
        #[cfg(all(feature = "tls", feature = "http1"))]
        let http1 = config.accept_http1;
        #[cfg(all(feature = "tls", not(feature = "http1")))]
        let http1 = false;
        #[cfg(feature = "tls")]
        let tls = self.tls.as_ref().map(|tls| tls.build(http1)).transpose()?;
        let runtime = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        Ok(Arc::new(ServerShared::new(
            router,
            config,
            runtime.handle().clone(),
            self.spawn_hook,
            self.metrics,
            #[cfg(feature = "tls")]
            tls,
        )))
    }
}
