//! [`ChannelBuilder`]: a channel's settings, checked and turned into a [`Channel`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::header::HeaderValue;
use http::uri::{Authority, Scheme};
use tokio::sync::watch;

use super::balancer;
use super::resolver::Resolution;
use super::subchannel::{Backoff, Subchannels};
use super::target::{self, TargetKind};
use super::{Channel, ChannelInner, LoadBalancingPolicy, Resolver, ServiceConfig, State};
use crate::codec::CompressionEncoding;
use crate::error::{Error, Result};
use crate::interceptor::{Chain, Interceptor};
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::sync::{Condvar, Mutex};
use crate::transport::SocketOptions;
use crate::transport::keepalive::KeepaliveConfig;

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
    /// Calls are gRPC-Web (`application/grpc-web+proto`, the status in the body).
    pub(crate) grpc_web: bool,
    /// Connections speak HTTP/1.1 (gRPC-Web only), through a bridge on the poller.
    #[cfg(feature = "http1")]
    pub(crate) http1: bool,
    pub(crate) policy: LoadBalancingPolicy,
    pub(crate) resolve_interval: Duration,
    pub(crate) keepalive: Option<KeepaliveConfig>,
    pub(crate) socket: SocketOptions,
    /// Connections over in-memory pipes instead of sockets, for transcript tests.
    #[cfg(test)]
    pub(crate) in_memory: Option<InMemory>,
}

/// Makes the byte stream of each new connection of a channel under test.
#[cfg(test)]
#[derive(Clone)]
pub(crate) struct InMemory(Arc<dyn Fn() -> tokio::io::DuplexStream + Send + Sync>);

#[cfg(test)]
impl InMemory {
    pub(crate) fn dial(&self) -> tokio::io::DuplexStream {
        (self.0)()
    }
}

#[cfg(test)]
impl fmt::Debug for InMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemory")
    }
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
            grpc_web: false,
            #[cfg(feature = "http1")]
            http1: false,
            policy: LoadBalancingPolicy::PickFirst,
            resolve_interval: Duration::from_secs(300),
            keepalive: None,
            socket: SocketOptions::default(),
            #[cfg(test)]
            in_memory: None,
        }
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
    /// A builder for a channel to `target`, with default settings.
    pub(super) fn new(target: String) -> ChannelBuilder {
        ChannelBuilder {
            target,
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

    /// Makes every call a gRPC-Web call (`application/grpc-web+proto`, its status read from
    /// the response body's last frame), for servers and proxies that speak gRPC-Web and
    /// not native gRPC, over HTTP/2 (h2c, or TLS with ALPN `h2`). Both client flavours
    /// work as with native gRPC; gRPC-Web itself has no client or bidi streaming, though
    /// servers that read request bodies as they arrive (rsgrpc's do) serve them.
    pub fn grpc_web(mut self, grpc_web: bool) -> Self {
        self.config.grpc_web = grpc_web;
        self
    }

    /// Speaks HTTP/1.1 to the server instead of HTTP/2 (feature `http1`), for gRPC-Web
    /// endpoints that answer only HTTP/1.1; needs [`grpc_web`](Self::grpc_web) (HTTP/1.1
    /// cannot carry native gRPC's trailers). Over TLS, ALPN offers `http/1.1`. A connection
    /// carries one call at a time, as HTTP/1.1 does: further calls wait for it.
    #[cfg(feature = "http1")]
    pub fn http1(mut self, http1: bool) -> Self {
        self.config.http1 = http1;
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
        let keepalive = self.config.keepalive.get_or_insert(KeepaliveConfig {
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
            self.config.keepalive = Some(KeepaliveConfig {
                time: Duration::MAX,
                timeout,
                permit_without_calls: false,
            });
        }
        self
    }

    /// Whether keepalive pings are sent while no call is open (default false).
    pub fn keepalive_permit_without_calls(mut self, permit: bool) -> Self {
        let keepalive = self.config.keepalive.get_or_insert(KeepaliveConfig {
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

    /// Connects over the pipes `dial` makes instead of sockets.
    #[cfg(test)]
    pub(crate) fn in_memory(
        mut self,
        dial: impl Fn() -> tokio::io::DuplexStream + Send + Sync + 'static,
    ) -> Self {
        self.config.in_memory = Some(InMemory(Arc::new(dial)));
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
        #[cfg(feature = "http1")]
        if self.config.http1 && !self.config.grpc_web {
            return Err(Error::invalid_config(
                "HTTP/1.1 carries only gRPC-Web: call grpc_web(true) too",
            ));
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
                #[cfg(feature = "http1")]
                let http1 = self.config.http1;
                #[cfg(not(feature = "http1"))]
                let http1 = false;
                Some((config.build(http1)?, domain))
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
                    resolution: Resolution::new(Backoff::new(
                        config.initial_backoff,
                        config.max_backoff,
                    )),
                    subchannels: Subchannels::default(),
                    balancer: balancer::build(config.policy),
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
