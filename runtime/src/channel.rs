//! [`Channel`]: a lazily connected, shared HTTP/2 connection to one server.
//!
//! Connection state lives with the channel and is only changed on its poller thread:
//!
//! ```text
//!            call arrives                 handshake done
//!   Idle ───────────────────▶ Connecting ─────────────────▶ Ready
//!    ▲                          │    ▲                        │
//!    │                 failed   ▼    │ backoff over,          │ connection lost
//!    │                       Failed ─┘ call arrives           │ (GOAWAY, reset, EOF)
//!    └────────────────────────────────────────────────────────┘
//! ```
//!
//! While `Failed`, calls fail at once with `UNAVAILABLE` unless they asked to wait for
//! ready. Delays between attempts follow gRPC's connection backoff: 1 s, then ×1.6 per
//! failure with ±20 % jitter, at most 120 s, reset by a successful handshake.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::uri::{Authority, Scheme};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::codec::CompressionEncoding;
use crate::deadline;
use crate::error::{Error, Result};
use crate::runtime::{self, Runtime};
use crate::status::Status;

/// A virtual connection to a gRPC server, shared by every client built from it.
///
/// `Channel` is cheap to clone (clones share one HTTP/2 connection) and can be used from
/// any thread, by blocking and async clients alike. It connects on the first call and
/// reconnects, with backoff, after the connection is lost.
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
    host: String,
    port: u16,
    pub(crate) config: ChannelConfig,
    pub(crate) rt: runtime::Handle,
    pub(crate) poller: tokio::runtime::Handle,
    pub(crate) user_agent: HeaderValue,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    next_id: AtomicU64,
}

/// Settings shared by every call on a channel.
#[derive(Clone, Debug)]
pub(crate) struct ChannelConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) max_receive_message_size: usize,
    pub(crate) max_send_message_size: usize,
    pub(crate) max_header_list_size: u32,
    pub(crate) initial_stream_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) send_compression: Option<CompressionEncoding>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            connect_timeout: Duration::from_secs(20),
            default_timeout: None,
            max_receive_message_size: 4 * 1024 * 1024,
            max_send_message_size: usize::MAX,
            max_header_list_size: 16 * 1024,
            initial_stream_window_size: 1024 * 1024,
            initial_connection_window_size: 2 * 1024 * 1024,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            send_compression: None,
        }
    }
}

struct State {
    conn: Conn,
    /// The delay before the next attempt, should the current one fail.
    backoff: Duration,
}

enum Conn {
    Idle,
    Connecting,
    Ready {
        send: h2::client::SendRequest<Bytes>,
        id: u64,
    },
    Failed {
        retry_at: Instant,
        status: Status,
    },
    /// [`Channel::close`] was called: no new calls.
    Closed,
}

impl Channel {
    /// A channel to `target` on the global runtime, with default settings. Nothing is
    /// connected until the first call.
    ///
    /// `target` is `http://host:port` or `host:port`.
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
        }
    }

    /// The target this channel was created for.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Closes the channel, for this handle and every clone: new calls fail with
    /// `UNAVAILABLE`, calls in flight finish, and then the connection is closed.
    ///
    /// Dropping the last clone of a channel does the same.
    pub fn close(&self) {
        let mut state = self.inner.lock();
        let previous = std::mem::replace(&mut state.conn, Conn::Closed);
        self.inner.notify();
        drop(state);
        // The connection's sender goes here (outside the lock): once the calls in flight
        // are done, h2 closes the connection.
        drop(previous);
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
#[derive(Debug)]
#[must_use = "a builder does nothing until connect_lazy is called"]
pub struct ChannelBuilder {
    target: String,
    config: ChannelConfig,
    runtime: Option<Runtime>,
}

impl ChannelBuilder {
    /// Runs the channel on `runtime` instead of the global one.
    pub fn runtime(mut self, runtime: &Runtime) -> Self {
        self.runtime = Some(runtime.clone());
        self
    }

    /// How long one connection attempt (resolution, TCP and HTTP/2 handshake) may take
    /// (default 20 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// A timeout applied to every call that does not set its own (default: none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = Some(timeout);
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

    /// Creates the channel; it connects on the first call.
    ///
    /// # Errors
    ///
    /// When the target cannot be parsed, its scheme is not `http`, or a setting is out of
    /// range.
    pub fn connect_lazy(self) -> Result<Channel> {
        let (scheme, authority, host, port) = parse_target(&self.target)?;
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
        let runtime = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        let rt = runtime.handle().clone();
        let poller = rt.poller();
        let user_agent =
            HeaderValue::from_static(concat!("grpc-rust-rsgrpc/", env!("CARGO_PKG_VERSION")));
        Ok(Channel {
            inner: Arc::new(ChannelInner {
                target: self.target,
                scheme,
                authority,
                host,
                port,
                state: Mutex::new(State {
                    conn: Conn::Idle,
                    backoff: self.config.initial_backoff,
                }),
                config: self.config,
                rt,
                poller,
                user_agent,
                changed: watch::Sender::new(0),
                next_id: AtomicU64::new(0),
            }),
        })
    }
}

fn parse_target(target: &str) -> Result<(Scheme, Authority, String, u16)> {
    let with_scheme;
    let full = if target.contains("://") {
        target
    } else {
        with_scheme = format!("http://{target}");
        &with_scheme
    };
    let uri: http::Uri = full
        .parse()
        .map_err(|e| Error::invalid_target(format!("cannot parse target {target:?}: {e}")))?;
    let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
    if scheme != Scheme::HTTP {
        return Err(Error::invalid_target(format!(
            "target {target:?}: scheme {scheme} is not supported (use http://host:port)"
        )));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| Error::invalid_target(format!("target {target:?} has no host")))?;
    if !matches!(uri.path(), "" | "/") {
        return Err(Error::invalid_target(format!(
            "target {target:?} has a path; a target is only http://host:port"
        )));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(80);
    Ok((scheme, authority, host, port))
}

impl ChannelInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a state change to waiting calls; called with the state lock held.
    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// A connection ready for a new stream. Runs on the channel's poller.
    pub(crate) async fn connection(
        self: &Arc<Self>,
        wait_for_ready: bool,
    ) -> Result<(h2::client::SendRequest<Bytes>, u64), Status> {
        let mut changed = self.changed.subscribe();
        loop {
            let mut sleep_until = None;
            {
                let mut state = self.lock();
                match &state.conn {
                    Conn::Ready { send, id } => return Ok((send.clone(), *id)),
                    Conn::Idle => self.start_connecting(&mut state),
                    Conn::Connecting => {}
                    Conn::Closed => {
                        return Err(Status::unavailable(format!(
                            "the channel to {} was closed",
                            self.target
                        )));
                    }
                    Conn::Failed { retry_at, status } => {
                        if Instant::now() >= *retry_at {
                            self.start_connecting(&mut state);
                        } else if !wait_for_ready {
                            return Err(status.clone());
                        } else {
                            sleep_until = Some(*retry_at);
                        }
                    }
                }
                changed.borrow_and_update();
            }
            match sleep_until {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = changed.changed() => {}
                    }
                }
                None => {
                    // The sender lives in `self`, so this cannot fail while we hold it.
                    let _ = changed.changed().await;
                }
            }
        }
    }

    fn start_connecting(self: &Arc<Self>, state: &mut State) {
        state.conn = Conn::Connecting;
        let channel = self.clone();
        self.poller.spawn(async move { channel.connect().await });
    }

    async fn connect(self: Arc<Self>) {
        let attempt = tokio::time::timeout(self.config.connect_timeout, self.handshake()).await;
        let result = match attempt {
            Ok(result) => result,
            Err(_) => Err(format!(
                "connection attempt timed out after {:?}",
                self.config.connect_timeout
            )),
        };
        let mut state = self.lock();
        if matches!(state.conn, Conn::Closed) {
            // Closed while connecting: dropping the connection closes it.
            return;
        }
        match result {
            Ok((send, connection)) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target = %self.target, id, "connected");
                // The driver must not keep the channel alive: when the last handle and
                // the last call are gone, the sender is dropped and h2 ends the connection.
                let channel = Arc::downgrade(&self);
                let target = self.target.clone();
                self.poller.spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%target, error = %e, "connection closed");
                    }
                    if let Some(channel) = channel.upgrade() {
                        channel.lost(id);
                    }
                });
                state.conn = Conn::Ready { send, id };
                state.backoff = self.config.initial_backoff;
            }
            Err(reason) => {
                let delay = jitter(state.backoff);
                state.backoff = scale(state.backoff, 1.6).min(self.config.max_backoff);
                tracing::debug!(target = %self.target, %reason, ?delay, "connection failed");
                state.conn = Conn::Failed {
                    retry_at: deadline::saturating_after(delay),
                    status: Status::unavailable(format!(
                        "failed to connect to {}: {reason}",
                        self.target
                    )),
                };
            }
        }
        self.notify();
    }

    async fn handshake(
        &self,
    ) -> std::result::Result<
        (
            h2::client::SendRequest<Bytes>,
            h2::client::Connection<TcpStream, Bytes>,
        ),
        String,
    > {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?;
        let mut last = format!("{} resolved to no address", self.host);
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        h2::client::Builder::new()
            .initial_window_size(self.config.initial_stream_window_size)
            .initial_connection_window_size(self.config.initial_connection_window_size)
            .max_header_list_size(self.config.max_header_list_size)
            .enable_push(false)
            .handshake(tcp)
            .await
            .map_err(|e| format!("http/2 handshake failed: {e}"))
    }

    /// Forgets a connection that closed or failed, so the next call reconnects.
    pub(crate) fn lost(&self, id: u64) {
        let mut state = self.lock();
        if matches!(state.conn, Conn::Ready { id: current, .. } if current == id) {
            state.conn = Conn::Idle;
            self.notify();
        }
    }
}

/// Spreads a delay by ±20 %, so clients that failed together do not retry together.
fn jitter(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    let unit = (hasher.finish() % 10_000) as f64 / 10_000.0; // [0, 1)
    scale(delay, 0.8 + 0.4 * unit)
}

/// `delay × factor`, saturating instead of overflowing.
fn scale(delay: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let (_, authority, host, port) = parse_target("http://127.0.0.1:50051").unwrap();
        assert_eq!(authority.as_str(), "127.0.0.1:50051");
        assert_eq!((host.as_str(), port), ("127.0.0.1", 50051));
        let (_, _, host, port) = parse_target("localhost:9").unwrap();
        assert_eq!((host.as_str(), port), ("localhost", 9));
        let (_, _, host, port) = parse_target("http://[::1]:7").unwrap();
        assert_eq!((host.as_str(), port), ("::1", 7));
        assert!(parse_target("https://x:1").unwrap_err().is_invalid_target());
        assert!(
            parse_target("http://x:1/path")
                .unwrap_err()
                .is_invalid_target()
        );
        assert!(parse_target("http://").unwrap_err().is_invalid_target());
    }

    #[test]
    fn backoff_arithmetic_saturates() {
        assert_eq!(scale(Duration::MAX, 1.6), Duration::MAX);
        let huge = jitter(Duration::MAX);
        assert!(huge >= Duration::MAX.mul_f64(0.79), "{huge:?}");
        assert!(deadline::saturating_after(Duration::MAX) > Instant::now());
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
    }
}
