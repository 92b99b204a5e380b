//! [`Channel`]: a lazily connected virtual connection to a target — one or more servers
//! behind a name — with TLS, keepalive, name resolution and load balancing.
//!
//! A channel resolves its target into addresses (DNS, an address list, a Unix socket, or
//! a [`Resolver`] of yours) and keeps one *subchannel* per address, each with its own
//! connection and its own reconnection backoff (gRPC's: 1 s, then ×1.6 per failure with
//! ±20 % jitter, at most 120 s, reset once a connection has been of use; a connection is
//! ready only once the server's SETTINGS arrived, and one the server sends away with
//! GOAWAY before processing anything counts as a failed attempt). Calls are placed by the
//! load-balancing policy: `pick_first` (the default) uses the first address in order that
//! connects; `round_robin` connects to all of them and rotates calls over those that are
//! ready. A call never goes to a subchannel that is not ready while another is.
//!
//! ```text
//!   subchannel:                    handshake done
//!    Idle ──(picked)──▶ Connecting ───────────────▶ Ready
//!     ▲                   │   ▲                      │ lost (GOAWAY, reset, EOF,
//!     │          failed   ▼   │ backoff over         │       keepalive timeout)
//!     │             TransientFailure                 │
//!     └───────────────────────────────────────────────┘
//! ```
//!
//! The channel's [`ConnectivityState`] sums its subchannels up. The target is resolved
//! again when a connection is lost, when every address failed, and periodically.
//!
//! Connection state lives with the channel and is changed under one lock; connections are
//! made and driven on the channel's poller thread.

mod service_config;
mod target;

pub use service_config::ServiceConfig;
pub(crate) use service_config::{MethodConfig, RetryPolicy};

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::uri::{Authority, Scheme};
use tokio::sync::watch;

use crate::codec::CompressionEncoding;
use crate::deadline;
use crate::error::{Error, Result};
use crate::interceptor::{Chain, Interceptor};
use crate::metrics::Metrics;
use crate::runtime::{self, Runtime};
use crate::status::Status;
use crate::transport::frames::{End, Watch, Watched};
use crate::transport::{self, Io, SocketOptions};
use target::TargetKind;

/// Where a resolver says a target's servers are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Tcp(addr)
    }
}

impl From<&Address> for transport::Address {
    fn from(address: &Address) -> transport::Address {
        match address {
            Address::Tcp(addr) => transport::Address::Tcp(*addr),
            Address::Unix(path) => transport::Address::Unix(path.clone()),
        }
    }
}

impl From<transport::Address> for Address {
    fn from(address: transport::Address) -> Address {
        match address {
            transport::Address::Tcp(addr) => Address::Tcp(addr),
            transport::Address::Unix(path) => Address::Unix(path),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&transport::Address::from(self), f)
    }
}

/// Turns a target into addresses: implement it to find servers in a service registry.
///
/// ```
/// use rsgrpc::channel::{Address, Resolver};
///
/// struct Fixed(Vec<std::net::SocketAddr>);
///
/// impl Resolver for Fixed {
///     fn resolve(&self) -> Result<Vec<Address>, rsgrpc::Status> {
///         Ok(self.0.iter().copied().map(Address::from).collect())
///     }
/// }
///
/// let channel = rsgrpc::Channel::builder("registry:///my-service")
///     .resolver(Fixed(vec!["127.0.0.1:50051".parse().unwrap()]))
///     .connect_lazy()
///     .unwrap();
/// # drop(channel);
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses behind the target, in order of preference.
    ///
    /// Called on a worker-pool thread of the channel's runtime (never a poller thread),
    /// so it may block; called again when a connection is lost, when every address
    /// failed, and every [`resolve_interval`](ChannelBuilder::resolve_interval).
    ///
    /// # Errors
    ///
    /// A status (usually `UNAVAILABLE`) that calls fail with while no address is known.
    fn resolve(&self) -> std::result::Result<Vec<Address>, Status>;
}

/// How calls are spread over a target's addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadBalancingPolicy {
    /// All calls on the first address, in the resolver's order, that connects (default).
    #[default]
    PickFirst,
    /// A connection to every address; calls rotate over those that are ready.
    RoundRobin,
}

/// A channel's connectivity, as gRPC defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectivityState {
    /// Not connected, and not trying to: a call (or [`Channel::connect`]) starts it.
    Idle,
    /// Resolving or connecting.
    Connecting,
    /// At least one connection is ready for calls.
    Ready,
    /// Every address failed; reconnection is backing off. Calls fail at once with
    /// `UNAVAILABLE` unless they wait for ready.
    TransientFailure,
    /// [`Channel::close`] was called.
    Shutdown,
}

/// A virtual connection to a gRPC server, shared by every client built from it.
///
/// `Channel` is cheap to clone (clones share connections) and can be used from any
/// thread, by blocking and async clients alike. It connects on the first call and
/// reconnects, with backoff, after a connection is lost. Dropping the last clone, or
/// [`close`](Self::close), lets the calls in flight finish and closes its connections.
///
/// ```
/// let channel = rsgrpc::Channel::new("http://127.0.0.1:50051").unwrap();
/// let for_another_thread = channel.clone();
/// # drop((channel, for_another_thread));
/// ```
#[derive(Clone)]
pub struct Channel {
    pub(crate) inner: Arc<ChannelInner>,
}

pub(crate) struct ChannelInner {
    target: String,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    kind: TargetKind,
    resolver: Option<Arc<dyn Resolver>>,
    pub(crate) config: ChannelConfig,
    service_config: Option<Arc<ServiceConfig>>,
    /// Retry throttling's tokens, when the service config asks for throttling.
    retry_tokens: Mutex<f64>,
    pub(crate) interceptors: Chain,
    pub(crate) metrics: Option<Metrics>,
    #[cfg(feature = "tls")]
    tls: Option<(Arc<tokio_rustls::rustls::ClientConfig>, String)>,
    pub(crate) rt: runtime::Handle,
    pub(crate) poller: tokio::runtime::Handle,
    pub(crate) user_agent: HeaderValue,
    state: Mutex<State>,
    /// Wakes blocking waiters on every change of `state`.
    state_cv: Condvar,
    changed: watch::Sender<u64>,
    next_id: AtomicU64,
}

/// Settings shared by every call on a channel.
#[derive(Clone, Debug)]
pub(crate) struct ChannelConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) default_wait_for_ready: Option<bool>,
    pub(crate) max_receive_message_size: usize,
    pub(crate) max_send_message_size: usize,
    pub(crate) max_header_list_size: u32,
    pub(crate) initial_stream_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) send_compression: Option<CompressionEncoding>,
    pub(crate) policy: LoadBalancingPolicy,
    pub(crate) resolve_interval: Duration,
    pub(crate) keepalive: Option<Keepalive>,
    pub(crate) socket: SocketOptions,
}

/// Client keepalive, as gRPC's keepalive document describes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keepalive {
    pub(crate) time: Duration,
    pub(crate) timeout: Duration,
    pub(crate) permit_without_calls: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            connect_timeout: Duration::from_secs(20),
            default_timeout: None,
            default_wait_for_ready: None,
            max_receive_message_size: 4 * 1024 * 1024,
            max_send_message_size: usize::MAX,
            max_header_list_size: 16 * 1024,
            initial_stream_window_size: 1024 * 1024,
            initial_connection_window_size: 2 * 1024 * 1024,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            send_compression: None,
            policy: LoadBalancingPolicy::PickFirst,
            resolve_interval: Duration::from_secs(300),
            keepalive: None,
            socket: SocketOptions::default(),
        }
    }
}

struct State {
    closed: bool,
    resolution: Resolution,
    /// Backoff between failed resolutions.
    resolve_backoff: Duration,
    subchannels: Vec<Subchannel>,
    /// Where round-robin picks next.
    next: usize,
    /// The keepalive time in force (doubled each time a server says `too_many_pings`).
    keepalive_time: Option<Duration>,
    /// Why the last connection attempt failed, for calls that fail fast.
    last_failure: Option<Status>,
}

enum Resolution {
    NotStarted,
    Resolving,
    Resolved { at: Instant },
    Failed { retry_at: Instant, status: Status },
}

struct Subchannel {
    /// Unique over the channel's life, so late news about a replaced subchannel is
    /// recognised.
    key: u64,
    address: Address,
    conn: Conn,
    backoff: Duration,
}

enum Conn {
    Idle,
    Connecting,
    Ready {
        send: h2::client::SendRequest<Bytes>,
        id: u64,
        stats: Arc<ConnStats>,
    },
    Failed {
        retry_at: Instant,
    },
}

/// A connection picked for a call.
pub(crate) struct Picked {
    pub(crate) send: h2::client::SendRequest<Bytes>,
    /// Identifies the connection, for [`ChannelInner::lost`].
    pub(crate) id: (u64, u64),
    /// Counts the calls open on the connection while held.
    pub(crate) guard: CallOnConnection,
}

/// What the calls on a connection and its driver know of it.
pub(crate) struct ConnStats {
    /// Calls open on it (keepalive pings only while calls are open, unless permitted
    /// without).
    calls: AtomicUsize,
    /// Whether a call on it got a response.
    served: AtomicBool,
    /// When it became ready.
    born: Instant,
    /// Its frame watch, which knows the last-stream-id of a GOAWAY.
    watch: Arc<Watch>,
}

impl ConnStats {
    /// Whether the connection, younger than `within`, was sent away with a GOAWAY that
    /// says no stream of it was processed, without a response to any call: what a server
    /// does that accepts only to refuse. (A connection that just drops is not judged: it
    /// may have been a network fault under calls the server was serving.)
    fn refused_all(&self, within: Duration) -> bool {
        !self.served.load(Ordering::Relaxed)
            && self.born.elapsed() < within
            && self.watch.goaway_last_stream() == Some(0)
    }
}

/// Counts a call as open on a connection while held.
pub(crate) struct CallOnConnection(Arc<ConnStats>);

impl CallOnConnection {
    /// The server answered a call on this connection.
    pub(crate) fn served(&self) {
        if !self.0.served.load(Ordering::Relaxed) {
            self.0.served.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the server said, with a GOAWAY, that it did not process stream `id`.
    pub(crate) fn unprocessed(&self, id: u32) -> bool {
        self.0
            .watch
            .goaway_last_stream()
            .is_some_and(|last| id > last)
    }
}

impl Drop for CallOnConnection {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Pick {
    Ready(Picked),
    Wait,
    Fail(Status),
}

impl Channel {
    /// A channel to `target` on the global runtime, with default settings. Nothing is
    /// connected until the first call.
    ///
    /// `target` is `host:port`, `http://host:port`, `dns:///host:port`,
    /// `ipv4:addr:port,...`, `ipv6:[addr]:port,...` or `unix:/path` (and `https://`
    /// with a TLS configuration).
    ///
    /// # Errors
    ///
    /// When the target cannot be parsed or its scheme is not supported.
    pub fn new(target: &str) -> Result<Channel> {
        Channel::builder(target).connect_lazy()
    }

    /// A builder to configure the channel before it is created.
    pub fn builder(target: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder {
            target: target.into(),
            config: ChannelConfig::default(),
            runtime: None,
            resolver: None,
            authority: None,
            service_config: None,
            policy_set: false,
            interceptors: Chain::default(),
            metrics: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The target this channel was created for.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Closes the channel, for this handle and every clone: new calls fail with
    /// `UNAVAILABLE`, calls in flight finish, and then the connections are closed.
    ///
    /// Dropping the last clone of a channel does the same.
    pub fn close(&self) {
        let mut state = self.inner.lock();
        state.closed = true;
        let subchannels = std::mem::take(&mut state.subchannels);
        self.inner.notify();
        drop(state);
        // The connections' senders go here (outside the lock): once the calls in flight
        // are done, h2 closes the connections.
        drop(subchannels);
    }

    /// The channel's connectivity now; with `try_to_connect`, an idle channel starts
    /// connecting.
    pub fn state(&self, try_to_connect: bool) -> ConnectivityState {
        let mut state = self.inner.lock();
        if try_to_connect && !state.closed {
            // A pick starts resolution and connection; a call would do the same.
            let _ = self.inner.pick(&mut state);
        }
        self.inner.connectivity(&state)
    }

    /// Connects now rather than on the first call, blocking the calling thread until the
    /// channel is ready.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` with the reason when every address failed, the channel was closed,
    /// or it was not ready within `timeout`.
    pub fn connect_blocking(&self, timeout: Duration) -> std::result::Result<(), Status> {
        let deadline = deadline::saturating_after(timeout);
        loop {
            let now = self.state(true);
            if let Some(done) = self.inner.connect_outcome(now) {
                return done;
            }
            if !self.wait_for_state_change(now, deadline.saturating_duration_since(Instant::now()))
            {
                return Err(Status::unavailable(format!(
                    "the channel to {} was not ready within {timeout:?}",
                    self.inner.target
                )));
            }
        }
    }

    /// Connects now rather than on the first call; completes once the channel is ready.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` with the reason when every address failed or the channel was closed.
    pub async fn connect(&self) -> std::result::Result<(), Status> {
        loop {
            let now = self.state(true);
            if let Some(done) = self.inner.connect_outcome(now) {
                return done;
            }
            self.state_changed(now).await;
        }
    }

    /// Blocks until the connectivity state differs from `last`, or `timeout` passes;
    /// returns whether it changed.
    pub fn wait_for_state_change(&self, last: ConnectivityState, timeout: Duration) -> bool {
        let deadline = deadline::saturating_after(timeout);
        let wait = || {
            let mut state = self.inner.lock();
            loop {
                if self.inner.connectivity(&state) != last {
                    return true;
                }
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                state = self
                    .inner
                    .state_cv
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        crate::executor::blocking_region(wait)
    }

    /// Completes when the connectivity state differs from `last`, with the new state.
    pub async fn state_changed(&self, last: ConnectivityState) -> ConnectivityState {
        let mut changed = self.inner.changed.subscribe();
        loop {
            {
                let state = self.inner.lock();
                changed.borrow_and_update();
                let now = self.inner.connectivity(&state);
                if now != last {
                    return now;
                }
            }
            // The sender lives in `inner`, which we hold: this cannot fail.
            let _ = changed.changed().await;
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Channel`].
#[must_use = "a builder does nothing until connect_lazy is called"]
pub struct ChannelBuilder {
    target: String,
    config: ChannelConfig,
    runtime: Option<Runtime>,
    resolver: Option<Arc<dyn Resolver>>,
    authority: Option<String>,
    service_config: Option<ServiceConfig>,
    /// Whether `load_balancing` was called (it then wins over the service config's).
    policy_set: bool,
    interceptors: Chain,
    metrics: Option<Metrics>,
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::tls::ClientTlsConfig>,
}

impl fmt::Debug for ChannelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("target", &self.target)
            .field("config", &self.config)
            .field("resolver", &self.resolver.is_some())
            .finish_non_exhaustive()
    }
}

impl ChannelBuilder {
    /// Runs the channel on `runtime` instead of the global one.
    pub fn runtime(mut self, runtime: &Runtime) -> Self {
        self.runtime = Some(runtime.clone());
        self
    }

    /// How long one connection attempt (TCP, TLS and HTTP/2 handshakes) may take
    /// (default 20 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// A timeout applied to every call that does not set its own, unless its client does
    /// ([`Client::timeout`](crate::client::Client::timeout)); default: none. A service
    /// config's `timeout` for the method caps it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = Some(timeout);
        self
    }

    /// Whether calls wait for a ready connection (until their deadline) instead of failing
    /// at once with `UNAVAILABLE` while the channel cannot connect, unless the call or its
    /// client says otherwise; default: as the service config's `waitForReady` for the
    /// method, else no.
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.config.default_wait_for_ready = Some(wait);
        self
    }

    /// Largest response message accepted (default 4 MiB); larger ones fail the call with
    /// `RESOURCE_EXHAUSTED` without being buffered.
    pub fn max_receive_message_size(mut self, bytes: usize) -> Self {
        self.config.max_receive_message_size = bytes;
        self
    }

    /// Largest request message sent (default: unlimited); larger ones fail the call with
    /// `RESOURCE_EXHAUSTED` before anything is sent.
    pub fn max_send_message_size(mut self, bytes: usize) -> Self {
        self.config.max_send_message_size = bytes;
        self
    }

    /// Largest header block accepted from the server, in HTTP/2's accounting (default
    /// 16 KiB).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.config.max_header_list_size = bytes;
        self
    }

    /// HTTP/2 flow-control window per call (default 1 MiB).
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Self {
        self.config.initial_stream_window_size = bytes;
        self
    }

    /// HTTP/2 flow-control window for the whole connection (default 2 MiB).
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Self {
        self.config.initial_connection_window_size = bytes;
        self
    }

    /// First and largest delay between reconnection attempts (defaults 1 s and 120 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.initial_backoff = initial;
        self.config.max_backoff = max.max(initial);
        self
    }

    /// Compresses the request messages of every call with `encoding` (a call can choose
    /// otherwise with [`Request::set_send_compressed`](crate::Request::set_send_compressed)).
    /// Compressed responses are always accepted.
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.config.send_compression = Some(encoding);
        self
    }

    /// How calls are spread over the target's addresses (default
    /// [`PickFirst`](LoadBalancingPolicy::PickFirst)).
    pub fn load_balancing(mut self, policy: LoadBalancingPolicy) -> Self {
        self.config.policy = policy;
        self.policy_set = true;
        self
    }

    /// Runs `interceptor` around every call on the channel, after those added before
    /// (see [`interceptor`](crate::interceptor) for the order).
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors = self.interceptors.with(Arc::new(interceptor));
        self
    }

    /// Counts the channel's calls, messages, bytes and connections in `metrics`.
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Applies a gRPC service config: per method (the method's own entry, else its
    /// service's, else the default) a timeout (a cap on the call's own), wait-for-ready (if
    /// neither the call, its client nor the channel chose), request and response size limits
    /// (the smaller of these and the client's apply) and a retry policy (with retry
    /// throttling); and the load-balancing policy (unless
    /// [`load_balancing`](Self::load_balancing) chose one). What the parser does not
    /// support (hedging, client-side health checks, unknown fields) is refused by
    /// [`ServiceConfig::from_json`].
    ///
    /// A call fails over to another attempt when it ends with one of its method's
    /// retryable status codes before the server sent response headers, while attempts
    /// and throttling tokens last, and while its request can be sent again (a streaming
    /// call keeps up to 256 KiB of requests for that; past it, it is not retried). The
    /// server can ask for a delay or for no retry with `grpc-retry-pushback-ms`. Retried
    /// attempts carry `grpc-previous-rpc-attempts`. Independently of any policy, a call
    /// the server refused unprocessed (`REFUSED_STREAM`) is retried transparently.
    pub fn service_config(mut self, config: ServiceConfig) -> Self {
        self.service_config = Some(config);
        self
    }

    /// Finds the target's addresses with `resolver` instead of from the target itself
    /// (which is then only a name).
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// How often the target is resolved again while the channel is used (default 5 min);
    /// it is also resolved again when a connection is lost.
    pub fn resolve_interval(mut self, interval: Duration) -> Self {
        self.config.resolve_interval = interval;
        self
    }

    /// The `:authority` sent with every call (default: the target's host and port).
    pub fn authority(mut self, authority: impl Into<String>) -> Self {
        self.authority = Some(authority.into());
        self
    }

    /// Sends a keepalive ping when a connection has received nothing for `time` (default:
    /// never). A connection whose ping is not answered within
    /// [`keepalive_timeout`](Self::keepalive_timeout) is closed and its calls fail with
    /// `UNAVAILABLE`. Servers refuse pings that come too often (gRPC servers allow one
    /// every 5 minutes by default); a server that answers `too_many_pings` makes the
    /// channel double its keepalive time.
    pub fn keepalive_time(mut self, time: Duration) -> Self {
        let keepalive = self.config.keepalive.get_or_insert(Keepalive {
            time,
            timeout: Duration::from_secs(20),
            permit_without_calls: false,
        });
        keepalive.time = time;
        self
    }

    /// How long a keepalive ping may go unanswered (default 20 s).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        if let Some(keepalive) = &mut self.config.keepalive {
            keepalive.timeout = timeout;
        } else {
            self.config.keepalive = Some(Keepalive {
                time: Duration::MAX,
                timeout,
                permit_without_calls: false,
            });
        }
        self
    }

    /// Whether keepalive pings are sent while no call is open (default false).
    pub fn keepalive_permit_without_calls(mut self, permit: bool) -> Self {
        let keepalive = self.config.keepalive.get_or_insert(Keepalive {
            time: Duration::MAX,
            timeout: Duration::from_secs(20),
            permit_without_calls: permit,
        });
        keepalive.permit_without_calls = permit;
        self
    }

    /// Sets `TCP_NODELAY` on connections (default on).
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.config.socket.nodelay = nodelay;
        self
    }

    /// Enables TCP keepalive probes every `interval` on connections (default off).
    pub fn tcp_keepalive(mut self, interval: Option<Duration>) -> Self {
        self.config.socket.tcp_keepalive = interval;
        self
    }

    /// Connects with TLS (required for `https://` targets).
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, tls: crate::transport::tls::ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Creates the channel; it connects on the first call (or [`Channel::connect`]).
    ///
    /// # Errors
    ///
    /// When the target cannot be parsed or asks for TLS without a TLS configuration, the
    /// TLS configuration cannot be used, or a setting is out of range.
    pub fn connect_lazy(self) -> Result<Channel> {
        #[cfg(feature = "tls")]
        let tls_wanted = self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls_wanted = false;
        let parsed = if self.resolver.is_some() {
            // With a resolver of its own, the target is only a name: `scheme://host/name`
            // or `name`, whose last part is the authority.
            target::parse(&self.target, tls_wanted).or_else(|_| {
                let name = self
                    .target
                    .rsplit('/')
                    .find(|part| !part.is_empty())
                    .unwrap_or("localhost")
                    .to_owned();
                let name = if name.parse::<Authority>().is_ok() {
                    name
                } else {
                    "localhost".to_owned()
                };
                Ok::<_, Error>(target::Target {
                    kind: TargetKind::Static(Vec::new()),
                    authority: name.clone(),
                    tls_host: name,
                    https: false,
                })
            })?
        } else {
            target::parse(&self.target, tls_wanted)?
        };
        if parsed.https && !tls_wanted {
            return Err(Error::invalid_target(format!(
                "target {:?} asks for TLS: give the channel a TLS configuration (feature `tls`, \
                 ChannelBuilder::tls_config)",
                self.target
            )));
        }
        if self.config.max_header_list_size == 0 {
            return Err(Error::invalid_config(
                "max_header_list_size must be positive",
            ));
        }
        if self.config.initial_stream_window_size < 65_535 {
            return Err(Error::invalid_config(
                "initial_stream_window_size must be at least 65535 (the HTTP/2 default)",
            ));
        }
        let authority_text = self.authority.clone().unwrap_or(parsed.authority.clone());
        let authority: Authority = authority_text.parse().map_err(|e| {
            Error::invalid_target(format!("{authority_text:?} is not a valid authority: {e}"))
        })?;
        #[cfg(feature = "tls")]
        let tls = match &self.tls {
            Some(config) => {
                let domain = config
                    .domain()
                    .map(str::to_owned)
                    .unwrap_or_else(|| parsed.tls_host.clone());
                Some((config.build()?, domain))
            }
            None => None,
        };
        let scheme = if tls_wanted {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let runtime = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        let rt = runtime.handle().clone();
        let poller = rt.poller();
        let user_agent =
            HeaderValue::from_static(concat!("grpc-rust-rsgrpc/", env!("CARGO_PKG_VERSION")));
        let mut config = self.config;
        if let Some(policy) = self
            .service_config
            .as_ref()
            .and_then(|c| c.load_balancing)
            .filter(|_| !self.policy_set)
        {
            config.policy = policy;
        }
        let retry_tokens = self
            .service_config
            .as_ref()
            .and_then(|c| c.throttling)
            .map_or(0.0, |t| t.max_tokens);
        Ok(Channel {
            inner: Arc::new(ChannelInner {
                target: self.target,
                scheme,
                authority,
                kind: parsed.kind,
                resolver: self.resolver,
                service_config: self.service_config.map(Arc::new),
                retry_tokens: Mutex::new(retry_tokens),
                interceptors: self.interceptors,
                metrics: self.metrics,
                state: Mutex::new(State {
                    closed: false,
                    resolution: Resolution::NotStarted,
                    resolve_backoff: config.initial_backoff,
                    subchannels: Vec::new(),
                    next: 0,
                    keepalive_time: config.keepalive.map(|k| k.time),
                    last_failure: None,
                }),
                config,
                #[cfg(feature = "tls")]
                tls,
                rt,
                poller,
                user_agent,
                state_cv: Condvar::new(),
                changed: watch::Sender::new(0),
                next_id: AtomicU64::new(0),
            }),
        })
    }
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        // The last owner may be a call task finishing on a poller after every handle was
        // dropped: the user's resolver and interceptors are dropped off it, as a server's
        // handlers are.
        let resolver = self.resolver.take();
        let interceptors = std::mem::take(&mut self.interceptors);
        if resolver.is_some() || !interceptors.is_empty() {
            crate::role::drop_off_poller((resolver, interceptors));
        }
    }
}

impl ChannelInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a state change to waiting calls; called with the state lock held.
    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
        self.state_cv.notify_all();
    }

    fn connectivity(&self, state: &State) -> ConnectivityState {
        if state.closed {
            return ConnectivityState::Shutdown;
        }
        // Resolution matters only while there is no address yet: with some, a background
        // re-resolution does not change what calls see.
        let unresolved = state.subchannels.is_empty();
        let mut any_connecting = unresolved && matches!(state.resolution, Resolution::Resolving);
        let mut any_failed = unresolved && matches!(state.resolution, Resolution::Failed { .. });
        for sub in &state.subchannels {
            match sub.conn {
                Conn::Ready { .. } => return ConnectivityState::Ready,
                Conn::Connecting => any_connecting = true,
                Conn::Failed { .. } => any_failed = true,
                Conn::Idle => {}
            }
        }
        if any_connecting {
            ConnectivityState::Connecting
        } else if any_failed {
            ConnectivityState::TransientFailure
        } else {
            ConnectivityState::Idle
        }
    }

    /// What `connect` makes of a connectivity state: done (`Some`) or keep waiting.
    fn connect_outcome(&self, now: ConnectivityState) -> Option<std::result::Result<(), Status>> {
        match now {
            ConnectivityState::Ready => Some(Ok(())),
            ConnectivityState::Shutdown => Some(Err(self.closed_status())),
            ConnectivityState::TransientFailure => Some(Err(self
                .lock()
                .last_failure
                .clone()
                .unwrap_or_else(|| Status::unavailable("failed to connect")))),
            ConnectivityState::Idle | ConnectivityState::Connecting => None,
        }
    }

    /// Why the last connection attempt (or resolution) failed, while no connection is
    /// ready.
    pub(crate) fn last_failure(&self) -> Option<Status> {
        let state = self.lock();
        if self.connectivity(&state) == ConnectivityState::Ready {
            return None;
        }
        state
            .last_failure
            .clone()
            .or_else(|| match &state.resolution {
                Resolution::Failed { status, .. } => Some(status.clone()),
                _ => None,
            })
    }

    /// The service config's entry for a method path.
    pub(crate) fn method_config(&self, path: &str) -> Option<&MethodConfig> {
        self.service_config.as_ref()?.method(path)
    }

    /// The retry policy for a method path, from the service config.
    pub(crate) fn retry_policy(&self, path: &str) -> Option<RetryPolicy> {
        self.service_config.as_ref()?.retry_policy(path).cloned()
    }

    /// Accounts a call's outcome in retry throttling (gRPC's token bucket: a failure with
    /// a retryable code costs a token, a success gives back `tokenRatio`); returns
    /// whether retries are allowed now (more than half the tokens left).
    pub(crate) fn throttle(&self, code: Option<crate::Code>, policy: Option<&RetryPolicy>) -> bool {
        let Some(throttling) = self.service_config.as_ref().and_then(|c| c.throttling) else {
            return true;
        };
        let mut tokens = self.retry_tokens.lock().unwrap_or_else(|e| e.into_inner());
        match code {
            Some(crate::Code::Ok) => {
                *tokens = (*tokens + throttling.token_ratio).min(throttling.max_tokens);
            }
            Some(code) if policy.is_some_and(|p| p.codes.contains(&code)) => {
                *tokens = (*tokens - 1.0).max(0.0);
            }
            _ => {}
        }
        *tokens > throttling.max_tokens / 2.0
    }

    fn closed_status(&self) -> Status {
        Status::unavailable(format!("the channel to {} was closed", self.target))
    }

    /// A connection ready for a new stream. Runs on the channel's poller.
    pub(crate) async fn connection(
        self: &Arc<Self>,
        wait_for_ready: bool,
    ) -> std::result::Result<Picked, Status> {
        let mut changed = self.changed.subscribe();
        loop {
            let mut sleep_until = None;
            {
                let mut state = self.lock();
                changed.borrow_and_update();
                match self.pick(&mut state) {
                    Pick::Ready(picked) => return Ok(picked),
                    Pick::Wait => {}
                    Pick::Fail(status) if state.closed || !wait_for_ready => return Err(status),
                    Pick::Fail(_) => sleep_until = next_retry(&state),
                }
            }
            match sleep_until {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = changed.changed() => {}
                    }
                }
                // The sender lives in `self`, so this cannot fail while we hold it.
                None => {
                    let _ = changed.changed().await;
                }
            }
        }
    }

    /// Picks a ready connection by the policy, starting resolution and connections as
    /// needed.
    fn pick(self: &Arc<Self>, state: &mut State) -> Pick {
        if state.closed {
            return Pick::Fail(self.closed_status());
        }
        let now = Instant::now();
        match &state.resolution {
            Resolution::NotStarted => self.start_resolving(state),
            Resolution::Resolved { at }
                if now.saturating_duration_since(*at) >= self.config.resolve_interval =>
            {
                self.start_resolving(state);
            }
            Resolution::Failed { retry_at, status } => {
                if now >= *retry_at {
                    self.start_resolving(state);
                } else if state.subchannels.is_empty() {
                    return Pick::Fail(status.clone());
                }
            }
            Resolution::Resolving | Resolution::Resolved { .. } => {}
        }
        if state.subchannels.is_empty() {
            return Pick::Wait;
        }
        match self.config.policy {
            LoadBalancingPolicy::RoundRobin => {
                let n = state.subchannels.len();
                for step in 0..n {
                    let i = (state.next + step) % n;
                    if let Some(picked) = picked(&state.subchannels[i]) {
                        state.next = (i + 1) % n;
                        return Pick::Ready(picked);
                    }
                }
                // Nothing ready: connect everything that may be.
                let mut connecting = false;
                for i in 0..n {
                    connecting |= self.wake_subchannel(state, i, now);
                }
                if connecting {
                    Pick::Wait
                } else {
                    Pick::Fail(self.failure(state))
                }
            }
            LoadBalancingPolicy::PickFirst => {
                if let Some(picked) = state.subchannels.iter().find_map(picked) {
                    return Pick::Ready(picked);
                }
                // The first address that is not backing off, in order.
                for i in 0..state.subchannels.len() {
                    if self.wake_subchannel(state, i, now) {
                        return Pick::Wait;
                    }
                }
                Pick::Fail(self.failure(state))
            }
        }
    }

    /// Starts connecting subchannel `i` if it is idle or its backoff is over; returns
    /// whether it is connecting now.
    fn wake_subchannel(self: &Arc<Self>, state: &mut State, i: usize, now: Instant) -> bool {
        match state.subchannels[i].conn {
            Conn::Connecting => true,
            Conn::Ready { .. } => false,
            Conn::Failed { retry_at } if now < retry_at => false,
            Conn::Idle | Conn::Failed { .. } => {
                self.start_connecting(state, i);
                true
            }
        }
    }

    /// Every address failed: resolve again (the servers may have moved), and report why.
    fn failure(self: &Arc<Self>, state: &mut State) -> Status {
        if matches!(state.resolution, Resolution::Resolved { .. }) {
            self.start_resolving(state);
        }
        state.last_failure.clone().unwrap_or_else(|| {
            Status::unavailable(format!("no connection to {} is ready", self.target))
        })
    }

    fn start_resolving(self: &Arc<Self>, state: &mut State) {
        state.resolution = Resolution::Resolving;
        let channel = Arc::downgrade(self);
        type Lookup = Box<dyn FnOnce() -> std::result::Result<Vec<Address>, Status> + Send>;
        let lookup: Lookup = match (&self.resolver, &self.kind) {
            (Some(resolver), _) => {
                let resolver = resolver.clone();
                Box::new(move || resolver.resolve())
            }
            (None, TargetKind::Static(addresses)) => {
                let addresses = addresses.iter().cloned().map(Address::from).collect();
                // Applied from a task, as the lock is held here.
                self.poller.spawn(async move {
                    if let Some(channel) = channel.upgrade() {
                        channel.resolved(Ok(addresses));
                    }
                });
                return;
            }
            (None, TargetKind::Dns { host, port }) => {
                let (host, port) = (host.clone(), *port);
                Box::new(move || {
                    use std::net::ToSocketAddrs;
                    let addrs = (host.as_str(), port)
                        .to_socket_addrs()
                        .map_err(|e| Status::unavailable(format!("cannot resolve {host}: {e}")))?;
                    let mut seen = Vec::new();
                    for addr in addrs.map(Address::Tcp) {
                        if !seen.contains(&addr) {
                            seen.push(addr);
                        }
                    }
                    Ok(seen)
                })
            }
        };
        // A user's resolver and getaddrinfo may block: a job on the worker pool, never on
        // a poller (which must not block, nor start threads).
        let Some(permit) = self.rt.workers.try_reserve() else {
            self.resolution_failed(
                state,
                Status::unavailable(format!(
                    "cannot resolve {}: the worker pool is full",
                    self.target
                )),
            );
            return;
        };
        self.rt
            .workers
            .enqueue(std::iter::once(permit.bind(Box::new(move || {
                let result = lookup();
                if let Some(channel) = channel.upgrade() {
                    channel.resolved(result);
                }
            }))));
    }

    /// Applies a resolution: subchannels for addresses that stay keep their connections.
    fn resolved(self: &Arc<Self>, result: std::result::Result<Vec<Address>, Status>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let addresses = match result {
            Ok(addresses) if !addresses.is_empty() => addresses,
            Ok(_) => {
                self.resolution_failed(
                    &mut state,
                    Status::unavailable(format!("{} resolved to no address", self.target)),
                );
                return;
            }
            Err(status) => {
                self.resolution_failed(&mut state, status);
                return;
            }
        };
        tracing::debug!(target = %self.target, ?addresses, "resolved");
        state.resolve_backoff = self.config.initial_backoff;
        state.resolution = Resolution::Resolved { at: Instant::now() };
        let mut old = std::mem::take(&mut state.subchannels);
        for address in addresses {
            let sub = match old.iter().position(|s| s.address == address) {
                Some(i) => old.swap_remove(i),
                None => Subchannel {
                    key: self.next_id.fetch_add(1, Ordering::Relaxed),
                    address,
                    conn: Conn::Idle,
                    backoff: self.config.initial_backoff,
                },
            };
            state.subchannels.push(sub);
        }
        state.next %= state.subchannels.len();
        if self.config.policy == LoadBalancingPolicy::RoundRobin {
            // Round robin keeps a connection to every address.
            let now = Instant::now();
            for i in 0..state.subchannels.len() {
                let _ = self.wake_subchannel(&mut state, i, now);
            }
        }
        self.notify();
        drop(state);
        // Connections to addresses that went away close once their calls are done.
        drop(old);
    }

    fn resolution_failed(self: &Arc<Self>, state: &mut State, status: Status) {
        tracing::debug!(target = %self.target, %status, "resolution failed");
        let delay = jitter(state.resolve_backoff);
        state.resolve_backoff =
            crate::backoff::grow(state.resolve_backoff, 1.6, self.config.max_backoff);
        state.resolution = Resolution::Failed {
            retry_at: deadline::saturating_after(delay),
            status: status.clone(),
        };
        if state.subchannels.is_empty() {
            state.last_failure = Some(status);
        }
        self.notify();
    }

    fn start_connecting(self: &Arc<Self>, state: &mut State, i: usize) {
        let sub = &mut state.subchannels[i];
        sub.conn = Conn::Connecting;
        let (key, address) = (sub.key, sub.address.clone());
        let keepalive = self.config.keepalive.map(|k| Keepalive {
            time: state.keepalive_time.unwrap_or(k.time),
            ..k
        });
        let channel = Arc::downgrade(self);
        let inner = self.clone();
        self.notify();
        self.poller.spawn(async move {
            let stage = AtomicUsize::new(STAGE_CONNECT);
            let attempt =
                tokio::time::timeout(inner.config.connect_timeout, inner.dial(&address, &stage))
                    .await;
            let result = match attempt {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "connection attempt timed out after {:?} {}",
                    inner.config.connect_timeout,
                    STAGES[stage.load(Ordering::Relaxed)]
                )),
            };
            // Only the channel's handles keep it alive, not this task.
            drop(inner);
            let Some(channel) = channel.upgrade() else {
                return;
            };
            channel.connected(key, &address, result, keepalive);
        });
    }

    /// Opens a connection: TCP or Unix socket, TLS when configured, then HTTP/2 up to the
    /// server's SETTINGS. `stage` tells how far it got, for a timeout's message.
    async fn dial(
        &self,
        address: &Address,
        stage: &AtomicUsize,
    ) -> std::result::Result<(h2::client::SendRequest<Bytes>, Connection), String> {
        use std::future::Future;
        let target = transport::Address::from(address);
        let io = transport::connect(&target, &self.config.socket)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        #[cfg(feature = "tls")]
        let io = match (&self.tls, io) {
            (Some((config, domain)), Io::Tcp(tcp)) => {
                stage.store(STAGE_TLS, Ordering::Relaxed);
                transport::tls::connect(config.clone(), domain, tcp).await?
            }
            (_, io) => io,
        };
        stage.store(STAGE_HTTP2, Ordering::Relaxed);
        let watch = Watch::new(None);
        let io = Watched::new(io, End::Client, watch.clone());
        let (send, mut connection) = h2::client::Builder::new()
            .initial_window_size(self.config.initial_stream_window_size)
            .initial_connection_window_size(self.config.initial_connection_window_size)
            .max_header_list_size(self.config.max_header_list_size)
            .enable_push(false)
            .handshake(io)
            .await
            .map_err(|e| format!("http/2 handshake with {address} failed: {e}"))?;
        // h2's handshake is over once our preface is written; the server has spoken only
        // with its SETTINGS frame (its preface). Until then the connection is not ready:
        // a server that accepts and stays silent fails the attempt at the connect timeout.
        stage.store(STAGE_SETTINGS, Ordering::Relaxed);
        std::future::poll_fn(|cx| {
            if watch.settings_received() {
                return std::task::Poll::Ready(Ok(()));
            }
            match std::pin::Pin::new(&mut connection).poll(cx) {
                std::task::Poll::Ready(Ok(())) if watch.goaway_last_stream().is_some() => {
                    std::task::Poll::Ready(Err(format!(
                        "{address} sent GOAWAY and closed the connection as soon as it opened"
                    )))
                }
                std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Err(format!(
                    "{address} closed the connection before its HTTP/2 SETTINGS"
                ))),
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(format!(
                    "http/2 handshake with {address} failed: {e}"
                ))),
                // Reading stops only at an empty socket, so SETTINGS read by this poll
                // are seen here, and otherwise the socket's readiness wakes us.
                std::task::Poll::Pending if watch.settings_received() => {
                    std::task::Poll::Ready(Ok(()))
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await?;
        let ping = connection.ping_pong();
        Ok((
            send,
            Connection {
                h2: connection,
                ping,
                watch,
            },
        ))
    }

    fn connected(
        self: &Arc<Self>,
        key: u64,
        address: &Address,
        result: std::result::Result<(h2::client::SendRequest<Bytes>, Connection), String>,
        keepalive: Option<Keepalive>,
    ) {
        let mut state = self.lock();
        let Some(i) = state.subchannels.iter().position(|s| s.key == key) else {
            // Closed, or the address went away meanwhile: dropping the connection closes it.
            return;
        };
        match result {
            Ok((send, connection)) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target = %self.target, %address, id, "connected");
                let stats = Arc::new(ConnStats {
                    calls: AtomicUsize::new(0),
                    served: AtomicBool::new(false),
                    born: Instant::now(),
                    watch: connection.watch.clone(),
                });
                if let Some(metrics) = &self.metrics {
                    metrics.connection_opened();
                }
                let sub = &mut state.subchannels[i];
                sub.conn = Conn::Ready {
                    send,
                    id,
                    stats: stats.clone(),
                };
                // The backoff is reset once the connection has served a call (see
                // `lost`): a server that accepts and then sends GOAWAY at once must not
                // be reconnected to in a tight loop.
                //
                // The driver must not keep the channel alive: when the last handle and
                // the last call are gone, the sender is dropped and h2 ends the connection.
                let channel = Arc::downgrade(self);
                self.poller
                    .spawn(drive(connection, channel, (key, id), stats, keepalive));
            }
            Err(reason) => {
                let status =
                    Status::unavailable(format!("failed to connect to {}: {reason}", self.target));
                self.attempt_failed(&mut state, i, status);
            }
        }
        self.notify();
    }

    /// A connection attempt to subchannel `i` failed (or its connection ended before it
    /// served anything): back off, and reconnect in the background once the backoff is
    /// over (round robin keeps trying every address; pick first only while it has no
    /// connection).
    fn attempt_failed(self: &Arc<Self>, state: &mut State, i: usize, status: Status) {
        let sub = &mut state.subchannels[i];
        let delay = jitter(sub.backoff);
        sub.backoff = crate::backoff::grow(sub.backoff, 1.6, self.config.max_backoff);
        let retry_at = deadline::saturating_after(delay);
        sub.conn = Conn::Failed { retry_at };
        let key = sub.key;
        tracing::debug!(target = %self.target, address = %sub.address, %status, ?delay, "connection failed");
        state.last_failure = Some(status);
        let channel = Arc::downgrade(self);
        self.poller.spawn(async move {
            tokio::time::sleep_until(retry_at.into()).await;
            let Some(channel) = channel.upgrade() else {
                return;
            };
            let mut state = channel.lock();
            let needed = channel.config.policy == LoadBalancingPolicy::RoundRobin
                || !state
                    .subchannels
                    .iter()
                    .any(|s| matches!(s.conn, Conn::Ready { .. }));
            if let Some(i) = state.subchannels.iter().position(|s| s.key == key) {
                if needed && !state.closed {
                    let _ = channel.wake_subchannel(&mut state, i, Instant::now());
                }
            }
        });
    }

    /// Forgets a connection that closed or failed; the next pick reconnects, and the
    /// target is resolved again.
    pub(crate) fn lost(self: &Arc<Self>, (key, id): (u64, u64)) {
        let mut state = self.lock();
        let Some(i) = state.subchannels.iter().position(|s| s.key == key) else {
            return;
        };
        let refused_all = match &state.subchannels[i].conn {
            Conn::Ready {
                id: current, stats, ..
            } if *current == id => stats.refused_all(self.config.initial_backoff),
            _ => return,
        };
        if matches!(state.resolution, Resolution::Resolved { .. }) {
            self.start_resolving(&mut state);
        }
        if refused_all {
            // A server that accepts connections only to send them away at once: a failed
            // attempt, so reconnections follow the backoff instead of a tight loop.
            let status = Status::unavailable(format!(
                "{} sent GOAWAY on a new connection before processing any call",
                self.target
            ));
            self.attempt_failed(&mut state, i, status);
        } else {
            state.subchannels[i].conn = Conn::Idle;
            state.subchannels[i].backoff = self.config.initial_backoff;
            if self.config.policy == LoadBalancingPolicy::RoundRobin {
                let _ = self.wake_subchannel(&mut state, i, Instant::now());
            }
        }
        self.notify();
    }

    /// A server said `too_many_pings`: ping half as often from now on.
    fn slow_down_keepalive(&self) {
        let mut state = self.lock();
        if let Some(time) = &mut state.keepalive_time {
            *time = time.saturating_mul(2);
            tracing::debug!(target = %self.target, keepalive_time = ?*time, "server asked for fewer pings");
        }
    }
}

/// A ready connection's sender, when the subchannel has one.
fn picked(sub: &Subchannel) -> Option<Picked> {
    match &sub.conn {
        Conn::Ready { send, id, stats } => {
            stats.calls.fetch_add(1, Ordering::AcqRel);
            Some(Picked {
                send: send.clone(),
                id: (sub.key, *id),
                guard: CallOnConnection(stats.clone()),
            })
        }
        _ => None,
    }
}

/// The earliest time a backing-off subchannel or resolution may be tried again.
fn next_retry(state: &State) -> Option<Instant> {
    let subs = state.subchannels.iter().filter_map(|s| match s.conn {
        Conn::Failed { retry_at } => Some(retry_at),
        _ => None,
    });
    let resolution = match state.resolution {
        Resolution::Failed { retry_at, .. } => Some(retry_at),
        _ => None,
    };
    subs.chain(resolution).min()
}

/// How far a connection attempt got, for the message of one that timed out.
const STAGE_CONNECT: usize = 0;
#[cfg(feature = "tls")]
const STAGE_TLS: usize = 1;
const STAGE_HTTP2: usize = 2;
const STAGE_SETTINGS: usize = 3;
const STAGES: [&str; 4] = [
    "while connecting",
    "in the TLS handshake",
    "in the HTTP/2 handshake",
    "waiting for the server's HTTP/2 SETTINGS",
];

/// An HTTP/2 connection and what drives it.
struct Connection {
    h2: h2::client::Connection<Watched<Io>, Bytes>,
    ping: Option<h2::PingPong>,
    watch: Arc<Watch>,
}

/// Drives a connection until it ends, with keepalive pings when configured.
async fn drive(
    connection: Connection,
    channel: Weak<ChannelInner>,
    id: (u64, u64),
    stats: Arc<ConnStats>,
    keepalive: Option<Keepalive>,
) {
    let _live = crate::live::Live::client_connection();
    let Connection { h2, ping, watch } = connection;
    let keepalive_failed = async {
        match (keepalive, ping) {
            (Some(keepalive), Some(ping)) => {
                keep_alive(keepalive, ping, &watch, &stats.calls).await
            }
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        ended = h2 => {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection closed");
            }
        }
        reason = keepalive_failed => {
            tracing::debug!(%reason, "closing a connection whose peer stopped answering");
        }
    }
    if let Some(channel) = channel.upgrade() {
        if let Some(metrics) = &channel.metrics {
            metrics.connection_closed();
        }
        if watch.goaway_debug().as_deref() == Some(b"too_many_pings".as_slice()) {
            channel.slow_down_keepalive();
        }
        channel.lost(id);
    }
}

/// Pings the peer whenever it has been quiet for `time`; returns when a ping went
/// unanswered for `timeout`.
async fn keep_alive(
    keepalive: Keepalive,
    mut ping: h2::PingPong,
    watch: &Watch,
    calls: &AtomicUsize,
) -> String {
    loop {
        let quiet_since = watch.last_read();
        tokio::time::sleep_until(
            deadline::saturating_after(keepalive.time.saturating_sub(quiet_since.elapsed())).into(),
        )
        .await;
        if watch.last_read() > quiet_since {
            continue;
        }
        if calls.load(Ordering::Acquire) == 0 && !keepalive.permit_without_calls {
            // Nothing to keep alive: check again after another quiet period.
            tokio::time::sleep_until(deadline::saturating_after(keepalive.time).into()).await;
            continue;
        }
        match tokio::time::timeout(keepalive.timeout, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("keepalive ping failed: {e}"),
            Err(_) => {
                return format!("keepalive ping not answered within {:?}", keepalive.timeout);
            }
        }
    }
}

/// Spreads a delay by ±20 %, so clients that failed together do not retry together.
fn jitter(delay: Duration) -> Duration {
    crate::backoff::jitter(delay, 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_targets_need_a_tls_configuration() {
        let err = Channel::new("https://example.com").unwrap_err();
        assert!(err.is_invalid_target(), "{err}");
    }
}
