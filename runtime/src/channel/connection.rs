//! Connections: dialing (socket, TLS, HTTP/2 up to the server's SETTINGS), the task that
//! drives a connection, client keepalive, and what the channel does when an attempt fails
//! or a connection ends.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::{Address, ChannelConfig, ChannelInner, State};
use crate::call::outgoing::Outgoing;
use crate::status::Status;
#[cfg(feature = "tls")]
use crate::transport::Io;
use crate::transport::frames::{End, Watch, Watched};
use crate::transport::gather::{self, Gathered};
use crate::transport::keepalive::{Keepalive, KeepaliveConfig};
use crate::transport::lent::Lent;
use crate::transport::{self, AnyStream, ByteStream};

/// A connection picked for a call.
pub(crate) struct Picked {
    pub(crate) send: h2::client::SendRequest<Outgoing>,
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
    /// Where its writer finds the requests handed to h2, to hold rather than copy them.
    lent: Lent,
}

impl ConnStats {
    /// Whether the connection, younger than `within`, was sent away with a GOAWAY that
    /// says no stream of it was processed, without a response to any call: what a server
    /// does that accepts only to refuse. (A connection that just drops is not judged: it
    /// may have been a network fault under calls the server was serving.)
    fn refused_all(&self, within: Duration) -> bool {
        super::subchannel::refused_all(
            self.served.load(Ordering::Relaxed),
            self.born.elapsed(),
            self.watch.goaway_last_stream(),
            within,
        )
    }
}

/// What a ready subchannel holds: its connection's sender, for the calls placed on it.
pub(super) struct ReadyConnection {
    send: h2::client::SendRequest<Outgoing>,
    /// Unique over the channel's life, so that news of a connection that was replaced is
    /// recognised.
    id: u64,
    stats: Arc<ConnStats>,
}

impl ReadyConnection {
    /// The connection, for a call on subchannel `key`; counts the call as open on it.
    pub(super) fn picked(&self, key: u64) -> Picked {
        self.stats.calls.fetch_add(1, Ordering::AcqRel);
        Picked {
            send: self.send.clone(),
            id: (key, self.id),
            guard: CallOnConnection(self.stats.clone()),
        }
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

    /// Where the connection's writer finds the requests handed to h2: a request listed
    /// there while h2 holds it is written without being copied.
    pub(crate) fn lent(&self) -> &Lent {
        &self.0.lent
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

impl ChannelInner {
    /// Dials subchannel `i`, which a policy woke: the attempt runs on the poller, and
    /// [`connected`](Self::connected) applies its outcome.
    pub(super) fn start_connecting(self: &Arc<Self>, state: &mut State, i: usize) {
        let Some(sub) = state.subchannels.get(i) else {
            return;
        };
        let (key, address) = (sub.key, sub.address.clone());
        let keepalive = self.config.keepalive.map(|k| KeepaliveConfig {
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
    ) -> std::result::Result<(h2::client::SendRequest<Outgoing>, Connection), String> {
        #[cfg(test)]
        if let Some(in_memory) = &self.config.in_memory {
            let io = in_memory.dial();
            return handshake(
                io,
                &self.config,
                address,
                stage,
                crate::limits::WRITE_GATHER,
            )
            .await;
        }
        let io = transport::connect(address, &self.config.socket)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        #[cfg(feature = "tls")]
        let tls = self.tls.is_some() && matches!(io, Io::Tcp(_));
        #[cfg(not(feature = "tls"))]
        let tls = false;
        let gather = gather::write_limit(tls);
        #[cfg(feature = "tls")]
        let io = match (&self.tls, io) {
            (Some((config, domain)), Io::Tcp(tcp)) => {
                stage.store(STAGE_TLS, Ordering::Relaxed);
                transport::tls::connect(config.clone(), domain, tcp).await?
            }
            (_, io) => io,
        };
        #[cfg(feature = "http1")]
        if self.config.http1 {
            let pipe = super::http1::bridge(io).await?;
            return handshake(
                pipe,
                &self.config,
                address,
                stage,
                crate::limits::WRITE_GATHER,
            )
            .await;
        }
        handshake(io, &self.config, address, stage, gather).await
    }

    fn connected(
        self: &Arc<Self>,
        key: u64,
        address: &Address,
        result: std::result::Result<(h2::client::SendRequest<Outgoing>, Connection), String>,
        keepalive: Option<KeepaliveConfig>,
    ) {
        let mut state = self.lock();
        let Some(i) = state.subchannels.position(key) else {
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
                    lent: connection.lent.clone(),
                });
                if let Some(metrics) = &self.metrics {
                    metrics.connection_opened();
                }
                if let Some(sub) = state.subchannels.get_mut(i) {
                    sub.connected(ReadyConnection {
                        send,
                        id,
                        stats: stats.clone(),
                    });
                }
                // The driver must not keep the channel alive: when the last handle and
                // the last call are gone, the sender is dropped and h2 ends the connection.
                let channel = Arc::downgrade(self);
                self.poller
                    .spawn(drive(connection, channel, (key, id), stats, keepalive));
            }
            Err(reason) => {
                let status =
                    Status::unavailable(format!("failed to connect to {}: {reason}", self.target));
                if let Some(sub) = state.subchannels.get_mut(i) {
                    let delay = sub.failed(Instant::now());
                    self.backing_off(&mut state, i, delay, status);
                }
            }
        }
        self.notify();
    }

    /// Subchannel `i` is backing off after a failed attempt (or a connection that ended
    /// before it served anything): remember why for calls that fail fast, and once the
    /// backoff is over let the policy decide whether it reconnects in the background.
    fn backing_off(self: &Arc<Self>, state: &mut State, i: usize, delay: Duration, status: Status) {
        let Some(sub) = state.subchannels.get(i) else {
            return;
        };
        let (key, retry_at) = (sub.key, sub.retry_at());
        tracing::debug!(target = %self.target, address = %sub.address, %status, ?delay, "connection failed");
        state.last_failure = Some(status);
        let Some(retry_at) = retry_at else {
            return;
        };
        let channel = Arc::downgrade(self);
        self.poller.spawn(async move {
            tokio::time::sleep_until(retry_at.into()).await;
            let Some(channel) = channel.upgrade() else {
                return;
            };
            let mut state = channel.lock();
            let Some(i) = state.subchannels.position(key) else {
                return;
            };
            if !state.closed {
                let State {
                    subchannels,
                    balancer,
                    ..
                } = &mut *state;
                balancer.backoff_over(subchannels, i, Instant::now());
                channel.dial_woken(&mut state);
            }
        });
    }

    /// Forgets a connection that closed or failed; the policy decides whether it
    /// reconnects now or at the next pick, and the target is resolved again.
    pub(crate) fn lost(self: &Arc<Self>, (key, id): (u64, u64)) {
        let mut state = self.lock();
        let Some(i) = state.subchannels.position(key) else {
            return;
        };
        let refused_all = match state.subchannels.get(i).and_then(|s| s.ready()) {
            Some(ready) if ready.id == id => ready.stats.refused_all(self.config.initial_backoff),
            _ => return,
        };
        if state.resolution.is_resolved() {
            self.start_resolving(&mut state);
        }
        let now = Instant::now();
        let State {
            subchannels,
            balancer,
            ..
        } = &mut *state;
        let Some(sub) = subchannels.get_mut(i) else {
            return;
        };
        match sub.lost(refused_all, now) {
            Some(delay) => {
                // A server that accepts connections only to send them away at once: a
                // failed attempt, so reconnections follow the backoff, not a tight loop.
                let status = Status::unavailable(format!(
                    "{} sent GOAWAY on a new connection before processing any call",
                    self.target
                ));
                self.backing_off(&mut state, i, delay, status);
            }
            None => {
                balancer.idle(subchannels, i, now);
                self.dial_woken(&mut state);
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

/// HTTP/2 over `io` up to the server's SETTINGS: a connection ready for calls, over any
/// byte stream, gathering at most `gather` bytes of large frames into one write.
async fn handshake(
    io: impl ByteStream,
    config: &ChannelConfig,
    address: &Address,
    stage: &AtomicUsize,
    gather: usize,
) -> std::result::Result<(h2::client::SendRequest<Outgoing>, Connection), String> {
    handshake_any(Box::new(io), config, address, stage, gather).await
}

/// [`handshake`] over a stream of any type.
async fn handshake_any(
    io: AnyStream,
    config: &ChannelConfig,
    address: &Address,
    stage: &AtomicUsize,
    gather: usize,
) -> std::result::Result<(h2::client::SendRequest<Outgoing>, Connection), String> {
    stage.store(STAGE_HTTP2, Ordering::Relaxed);
    let watch = Watch::new(None);
    let io = Gathered::new(io, None).with_limit(gather);
    let lent = io.lent().clone();
    let io = Watched::new(io, End::Client, watch.clone());
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(config.initial_stream_window_size)
        .initial_connection_window_size(config.initial_connection_window_size)
        .max_header_list_size(config.max_header_list_size)
        .max_frame_size(crate::limits::CLIENT_MAX_FRAME_SIZE)
        .enable_push(false)
        .handshake(io)
        .await
        .map_err(|e| format!("http/2 handshake with {address} failed: {e}"))?;
    // h2's handshake is over once our preface is written; the server has spoken only
    // with its SETTINGS frame (its preface). Until then the connection is not ready:
    // a server that accepts and stays silent fails the attempt at the connect timeout.
    stage.store(STAGE_SETTINGS, Ordering::Relaxed);
    poll_fn(|cx| {
        if watch.settings_received() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut connection).poll(cx) {
            Poll::Ready(Ok(())) if watch.goaway_last_stream().is_some() => Poll::Ready(Err(
                format!("{address} sent GOAWAY and closed the connection as soon as it opened"),
            )),
            Poll::Ready(Ok(())) => Poll::Ready(Err(format!(
                "{address} closed the connection before its HTTP/2 SETTINGS"
            ))),
            Poll::Ready(Err(e)) => {
                Poll::Ready(Err(format!("http/2 handshake with {address} failed: {e}")))
            }
            // Reading stops only at an empty socket, so SETTINGS read by this poll are
            // seen here, and otherwise the socket's readiness wakes us.
            Poll::Pending if watch.settings_received() => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await?;
    let ping = connection.ping_pong();
    Ok((
        send,
        Connection {
            h2: Box::pin(connection),
            ping,
            watch,
            lent,
        },
    ))
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

/// An HTTP/2 connection, over whatever byte stream, and what drives it.
struct Connection {
    /// h2's connection task (boxed, so that the channel does not depend on the stream).
    h2: Pin<Box<dyn Future<Output = Result<(), h2::Error>> + Send>>,
    ping: Option<h2::PingPong>,
    watch: Arc<Watch>,
    lent: Lent,
}

/// Drives a connection until it ends, with keepalive pings when configured.
async fn drive(
    connection: Connection,
    channel: Weak<ChannelInner>,
    id: (u64, u64),
    stats: Arc<ConnStats>,
    keepalive: Option<KeepaliveConfig>,
) {
    let _live = crate::live::Live::client_connection();
    let Connection {
        h2, ping, watch, ..
    } = connection;
    let keepalive_failed = async {
        match (keepalive, ping) {
            (Some(config), Some(ping)) => {
                let mut keepalive = Keepalive::new(ping, config);
                std::future::poll_fn(|cx| {
                    keepalive.poll(cx, &watch, stats.calls.load(Ordering::Acquire))
                })
                .await
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
