//! A server connection's lifetime: its handshakes, then one task that drives HTTP/2 and
//! every call on it (keepalive, maximum age and idleness, draining and stopping), moving
//! frames between h2 streams and the calls' completion queues.
//!
//! ```text
//!  h2                     connection task (one per connection)                handlers
//!  ──                     ────────────────────────────────────                ────────
//!  HEADERS ──▶ validate, route, admit (dispatch.rs)
//!  DATA    ──▶ unary, server-streaming: collect the one request message (stream.rs),
//!              then dispatch ─────────────────────── batch ──────────────▶   pool / executor
//!              client-, bidi-streaming: dispatch at HEADERS; messages
//!              ──────────────────────────────── requests queue ─────────▶   Receiver
//!  RST     ──▶ mark cancelled, fail the request stream
//!  HEADERS/DATA/trailers ◀── send within flow control ◀── responses ────    Responder
//!                                                                            (responder.rs)
//!  deadline timer ──▶ mark cancelled, send DEADLINE_EXCEEDED
//! ```
//!
//! Every call is a future in the connection's [`FuturesUnordered`], so a wake-up from a
//! handler (a response queued) marks that call ready and wakes the connection task once,
//! however many calls became ready meanwhile. Handlers that became runnable during one
//! turn of the connection task are handed over together at the end of the turn: one lock
//! and at most one wake-up of the worker pool or executor per turn, not per call.
//!
//! Flow-control credit for request bytes goes back to the client only while the handler
//! keeps up (or while the one message of a unary call is being collected), so what a
//! client can make us hold for a call is its stream window, 64 KiB and one message.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::RecvStream;
use h2::server::SendResponse;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::Instrument;

use super::dispatch::{ConnContext, Dispatch, accept_call};
use super::stream::ServerStream;
use super::{ConnectionGuard, Phase, ServerShared};
use crate::call::outgoing::Outgoing;
use crate::deadline;
use crate::limits;
use crate::quota::{Charge, Quota};
#[cfg(feature = "tls")]
use crate::transport;
use crate::transport::frames::{End, Watch, Watched};
use crate::transport::gather::{self, Gathered};
use crate::transport::keepalive::{Keepalive, KeepaliveConfig};
use crate::transport::{AnyStream, ByteStream, Io, PeerInfo};

/// An accepted connection: the TLS handshake when the server has TLS, then the rest as
/// for any byte stream ([`serve`]).
pub(super) async fn serve_connection(
    shared: Arc<ServerShared>,
    io: Io,
    peer: PeerInfo,
    guard: ConnectionGuard,
) {
    let started = Instant::now();
    #[cfg(feature = "tls")]
    let tls = shared.tls.is_some() && matches!(io, Io::Tcp(_));
    #[cfg(not(feature = "tls"))]
    let tls = false;
    let setup = Setup {
        // Clients on Unix sockets often send the socket's path as :authority.
        rewrite_authority: matches!(io, Io::Unix(_)),
        cost: limits::CONNECTION_COST,
        gather: gather::write_limit(tls),
    };
    #[cfg(feature = "tls")]
    let (io, peer) = match (&shared.tls, io) {
        (Some(tls), Io::Tcp(tcp)) => {
            // Boxed, as the other rarely taken paths below: the connection's task holds
            // what its await points hold, so a path inline would weigh on every
            // connection (rustls' handshake state, HTTP/1.1's server).
            let accept = transport::tls::accept(tls.clone(), tcp, peer);
            let step = handshake_step(&shared, &guard, started, "the tls handshake", accept);
            match Box::pin(step).await {
                Some(done) => done,
                None => return,
            }
        }
        (_, io) => (io, peer),
    };
    #[cfg(feature = "http1")]
    if shared.config.accept_http1 {
        return Box::pin(serve_either(shared, io, peer, guard, started, setup)).await;
    }
    serve(shared, io, peer, guard, started, setup).await;
}

/// One step of a connection's handshakes (`what`), within what is left of the handshake
/// timeout since `started`; `None`, the reason logged, when it fails, takes too long or
/// the server reclaims the connection meanwhile.
#[cfg(any(feature = "tls", feature = "http1"))]
async fn handshake_step<T, E: std::fmt::Display>(
    shared: &ServerShared,
    guard: &ConnectionGuard,
    started: Instant,
    what: &str,
    step: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    let left = shared
        .config
        .handshake_timeout
        .saturating_sub(started.elapsed());
    let done = tokio::select! {
        done = tokio::time::timeout(left, step) => done,
        () = poll_fn(|cx| guard.poll_reclaimed(cx)) => {
            tracing::debug!("closing a connection in its handshake to make room for another");
            return None;
        }
    };
    match done {
        Ok(Ok(done)) => Some(done),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "closing a connection: {what} failed");
            None
        }
        Err(_) => {
            tracing::debug!(timeout = ?shared.config.handshake_timeout, "closing a connection: {what} did not come in time");
            None
        }
    }
}

/// A connection that may speak HTTP/1.1 or HTTP/2: TLS's ALPN says which, or else the
/// first bytes do.
#[cfg(feature = "http1")]
async fn serve_either(
    shared: Arc<ServerShared>,
    io: Io,
    peer: PeerInfo,
    guard: ConnectionGuard,
    started: Instant,
    setup: Setup,
) {
    use crate::transport::http1::{Protocol, Rewind, sniff};

    let alpn = io.alpn();
    let (protocol, io) = match alpn.as_deref() {
        Some(b"h2") => (Protocol::Http2, Rewind::new(bytes::Bytes::new(), io)),
        Some(b"http/1.1") => (Protocol::Http1, Rewind::new(bytes::Bytes::new(), io)),
        _ => match handshake_step(&shared, &guard, started, "its first bytes", sniff(io)).await {
            Some(sniffed) => sniffed,
            None => return,
        },
    };
    match protocol {
        Protocol::Http2 => serve(shared, io, peer, guard, started, setup).await,
        Protocol::Http1 => {
            Box::pin(super::http1::serve_http1(shared, io, peer, guard, started)).await;
        }
    }
}

/// What a byte stream's HTTP/2 connection is set up with, besides the stream.
pub(super) struct Setup {
    /// Its `:authority` is rewritten (clients on Unix sockets often send the socket's
    /// path).
    pub(super) rewrite_authority: bool,
    /// What the connection itself holds, charged to its quota while it is open.
    pub(super) cost: usize,
    /// The most bytes of large frames gathered into one write: see
    /// [`PLAINTEXT_WRITE_GATHER`](limits::PLAINTEXT_WRITE_GATHER).
    pub(super) gather: usize,
}

#[cfg(any(test, feature = "http1"))]
impl Setup {
    /// A stream of the server's own making (the HTTP/1.1 bridge's pipe, a test's).
    pub(super) fn internal(cost: usize) -> Setup {
        Setup {
            rewrite_authority: false,
            cost,
            gather: limits::WRITE_GATHER,
        }
    }
}

/// A connection over any byte stream, from its HTTP/2 handshake (within what is left of
/// the handshake timeout since `started`) to its end: what TCP, Unix sockets, TLS, the
/// HTTP/1.1 bridge and the tests' in-memory pipes share.
pub(super) async fn serve(
    shared: Arc<ServerShared>,
    io: impl ByteStream,
    peer: PeerInfo,
    guard: ConnectionGuard,
    started: Instant,
    setup: Setup,
) {
    serve_any(shared, Box::new(io), peer, guard, started, setup).await;
}

/// [`serve`] over a stream of any type.
async fn serve_any(
    shared: Arc<ServerShared>,
    io: AnyStream,
    peer: PeerInfo,
    guard: ConnectionGuard,
    started: Instant,
    setup: Setup,
) {
    // Built in a block: what it moves into the connection (h2's 2 KB connection above all)
    // would otherwise keep a place of its own in the task beside the connection, for the
    // connection's whole life.
    let mut conn = {
        let config = &shared.config;
        let watch = Watch::new(Some(config.ping_policy));
        let quota = Quota::new(config.connection_memory_quota, Some(shared.quota.clone()));
        let io = Gathered::new(io, Some(quota.clone())).with_limit(setup.gather);
        let lent = io.lent().clone();
        let mut io = Watched::new(io, End::Server, watch.clone());
        if setup.rewrite_authority {
            io = io.rewrite_authority(config.max_header_list_size);
        }
        // Boxed: what the handshake holds is let go once it is over, rather than staying in
        // the connection's task beside what the connection holds from then on.
        let Some(mut h2) = Box::pin(handshake(&shared, &guard, &watch, started, io)).await else {
            return;
        };
        // A connection accepted just before the server began to drain or stop must see that
        // phase too, not only the changes after this point.
        let mut phase = shared.phase.subscribe();
        phase.mark_changed();
        let now = Instant::now();
        let keepalive = config.keepalive_time.and_then(|time| {
            let config = KeepaliveConfig {
                time,
                timeout: config.keepalive_timeout,
                // A server pings whether or not calls are open.
                permit_without_calls: true,
            };
            Some(Keepalive::new(h2.ping_pong()?, config))
        });
        let age = config.max_connection_age.map(|age| {
            // ±10 %, so that clients connected together do not all reconnect together.
            let spread = crate::backoff::jitter(age, 0.1);
            Box::pin(tokio::time::sleep_until(
                deadline::saturating_after(spread).into(),
            ))
        });
        let mut base = Charge::new(Some(quota.clone()));
        base.set(setup.cost);
        let ctx = Arc::new(ConnContext {
            shared: shared.clone(),
            dispatch: Arc::new(Dispatch::default()),
            peer: Arc::new(peer),
            quota,
            workers: Quota::new(shared.blocking_share(), None),
            lent,
        });
        Conn {
            h2,
            calls: FuturesUnordered::new(),
            ctx,
            _base: base,
            guard,
            reclaimed: false,
            phase_changed: Some(watch_phase(phase)),
            closed: false,
            watch,
            keepalive,
            idle_since: Some(now),
            idle_timer: None,
            age,
            grace: None,
            stopping: None,
            shared,
        }
    };
    poll_fn(|cx| conn.poll(cx)).await;
}

/// The HTTP/2 handshake of a server connection, within what is left of the handshake
/// timeout since `started`: h2's, then the client's SETTINGS frame. `None`, the reason
/// logged, when it fails, takes too long or the server reclaims the connection meanwhile.
async fn handshake(
    shared: &ServerShared,
    guard: &ConnectionGuard,
    watch: &Watch,
    started: Instant,
    io: Watched<Gathered<AnyStream>>,
) -> Option<h2::server::Connection<Watched<Gathered<AnyStream>>, Outgoing>> {
    let config = &shared.config;
    let mut builder = h2::server::Builder::new();
    builder
        .max_send_buffer_size(limits::SERVER_SEND_BUFFER)
        .max_header_list_size(config.max_header_list_size)
        .max_concurrent_streams(config.max_concurrent_streams)
        .initial_window_size(config.initial_stream_window_size)
        .initial_connection_window_size(config.initial_connection_window_size)
        .max_pending_accept_reset_streams(config.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(config.max_local_error_reset_streams));
    let left = config.handshake_timeout.saturating_sub(started.elapsed());
    let handshake = tokio::time::timeout(left, builder.handshake(io));
    let handshake = tokio::select! {
        done = handshake => done,
        () = poll_fn(|cx| guard.poll_reclaimed(cx)) => {
            tracing::debug!("closing a connection in its handshake to make room for another");
            return None;
        }
    };
    let mut h2 = match handshake {
        Ok(Ok(h2)) => h2,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "closing a connection: http/2 handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(timeout = ?config.handshake_timeout, "closing a connection that did not complete its handshakes");
            return None;
        }
    };
    // h2's handshake ends with the 24-byte preface magic; the client's preface is only
    // complete with its SETTINGS frame. A peer that stops after the magic must not hold
    // the connection past the handshake timeout either, so drive h2 (without accepting
    // streams: they wait in h2's bounded queue) until that SETTINGS frame is read.
    let settings = poll_fn(|cx| {
        if watch.settings_received() {
            return Poll::Ready(true);
        }
        if guard.poll_reclaimed(cx).is_ready() {
            return Poll::Ready(false);
        }
        if h2.poll_closed(cx).is_ready() {
            return Poll::Ready(false);
        }
        // Reading stops only at an empty socket, so a SETTINGS frame read by this poll
        // is seen here, and otherwise the socket's readiness wakes us.
        if watch.settings_received() {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    });
    let left = config.handshake_timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, settings).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!("closing a connection that ended in its preface");
            return None;
        }
        Err(_) => {
            tracing::debug!(timeout = ?config.handshake_timeout, "closing a connection that did not send its SETTINGS");
            return None;
        }
    }
    Some(h2)
}

/// The size of a connection's state (what its task must hold).
#[cfg(test)]
pub(super) fn connection_size() -> usize {
    std::mem::size_of::<Conn<AnyStream>>()
}

type PhaseChanged = Pin<Box<dyn Future<Output = (bool, watch::Receiver<Phase>)> + Send>>;

fn watch_phase(mut phase: watch::Receiver<Phase>) -> PhaseChanged {
    Box::pin(async move {
        let ok = phase.changed().await.is_ok();
        (ok, phase)
    })
}

type Sleep = Pin<Box<tokio::time::Sleep>>;

/// One connection and its calls.
struct Conn<T> {
    h2: h2::server::Connection<Watched<Gathered<T>>, Outgoing>,
    calls: FuturesUnordered<tracing::instrument::Instrumented<ServerStream>>,
    /// What the calls share.
    ctx: Arc<ConnContext>,
    /// What the connection itself costs, charged to its quota while it is open.
    _base: Charge,
    /// Its place among the server's connections.
    guard: ConnectionGuard,
    /// The server asked it to close, to make room for a new connection.
    reclaimed: bool,
    phase_changed: Option<PhaseChanged>,
    /// The peer or h2 ended the connection; the task ends once its calls have.
    closed: bool,
    watch: Arc<Watch>,
    keepalive: Option<Keepalive>,
    /// Since when no call is open.
    idle_since: Option<Instant>,
    idle_timer: Option<Sleep>,
    age: Option<Sleep>,
    /// After the age GOAWAY: when the remaining calls are cut.
    grace: Option<Sleep>,
    /// After the server stopped: how long the ending of the connection may take.
    stopping: Option<Sleep>,
    shared: Arc<ServerShared>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(changed) = &mut self.phase_changed {
            let Poll::Ready((ok, mut phase)) = changed.as_mut().poll(cx) else {
                break;
            };
            let now = *phase.borrow_and_update();
            self.phase_changed = ok.then(|| watch_phase(phase));
            match now {
                Phase::Serving => {}
                Phase::Draining => self.h2.graceful_shutdown(),
                Phase::Stopped => self.stop(),
            }
        }
        if let Some(stopping) = &mut self.stopping {
            if stopping.as_mut().poll(cx).is_ready() {
                // The peer does not read what ends the connection: drop it.
                return Poll::Ready(());
            }
        }
        if !self.reclaimed && self.guard.poll_reclaimed(cx).is_ready() {
            self.reclaimed = true;
            if self.calls.is_empty() {
                // Idle: GOAWAY and close at once.
                self.h2.abrupt_shutdown(h2::Reason::NO_ERROR);
            } else {
                // A call arrived meanwhile: let it finish.
                self.h2.graceful_shutdown();
            }
        }
        if self.watch.poll_violated(cx).is_ready() && !self.closed {
            // The watch writes our GOAWAY (too_many_pings) in place of h2's.
            self.h2.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
        }
        if self.poll_lifetime(cx).is_ready() {
            return Poll::Ready(());
        }
        // Calls first: what handlers queued is handed to h2, so the connection's poll
        // below writes it in the same turn.
        self.poll_calls(cx);
        while !self.closed {
            match self.h2.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => self.start(request, respond),
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "connection error");
                    self.closed = true;
                }
                Poll::Ready(None) => self.closed = true,
                Poll::Pending => break,
            }
        }
        // New calls read the request data that arrived with their headers.
        self.poll_calls(cx);
        if self.closed && !self.calls.is_empty() {
            // h2 has ended the connection (an error, or the peer's end of file): no call
            // on it can be answered any more, and a call whose handler is waiting (not
            // sending) would not be polled again. Dropping them marks them cancelled, so
            // their handlers see it and the connection can end.
            tracing::debug!(
                calls = self.calls.len(),
                "cancelling the calls of a closed connection"
            );
            self.calls.clear();
        }
        self.ctx.dispatch.flush(&self.shared);
        self.track_idleness(cx);
        if self.closed && self.calls.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The server stopped: the calls still open end with `UNAVAILABLE` (what they sent so
    /// far stays whole), and the connection ends with GOAWAY and, over TLS, a
    /// `close_notify`, within a short bound for a peer that does not read.
    fn stop(&mut self) {
        for call in self.calls.iter_mut() {
            call.inner_mut().shut_down();
        }
        self.calls.clear();
        self.h2.graceful_shutdown();
        self.stopping = Some(Box::pin(tokio::time::sleep(limits::STOP_FLUSH)));
    }

    /// Keepalive pings, maximum age and grace; `Ready` when the connection must end now.
    fn poll_lifetime(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(keepalive) = &mut self.keepalive {
            if let Poll::Ready(reason) = keepalive.poll(cx, &self.watch, self.calls.len()) {
                tracing::debug!(%reason, "closing a connection whose client stopped answering pings");
                return Poll::Ready(());
            }
        }
        if let Some(age) = &mut self.age {
            if age.as_mut().poll(cx).is_ready() {
                tracing::debug!("connection reached its maximum age");
                self.age = None;
                self.h2.graceful_shutdown();
                if let Some(grace) = self.shared.config.max_connection_age_grace {
                    self.grace = Some(Box::pin(tokio::time::sleep_until(
                        deadline::saturating_after(grace).into(),
                    )));
                }
            }
        }
        if let Some(grace) = &mut self.grace {
            if grace.as_mut().poll(cx).is_ready() {
                tracing::debug!("grace after the maximum age is over: closing");
                return Poll::Ready(());
            }
        }
        if let Some(idle) = &mut self.idle_timer {
            if idle.as_mut().poll(cx).is_ready() {
                tracing::debug!("closing an idle connection");
                self.idle_timer = None;
                self.h2.graceful_shutdown();
            }
        }
        Poll::Pending
    }

    /// Notes whether calls are open, for the ping policy and `max_connection_idle`.
    fn track_idleness(&mut self, cx: &mut Context<'_>) {
        let open = self.calls.len();
        self.watch.set_open_calls(open);
        self.guard.set_idle(open == 0);
        if open > 0 {
            self.idle_since = None;
            self.idle_timer = None;
            return;
        }
        let Some(max_idle) = self.shared.config.max_connection_idle else {
            return;
        };
        if self.idle_timer.is_none() && !self.closed {
            let since = *self.idle_since.get_or_insert_with(Instant::now);
            let at = since
                .checked_add(max_idle)
                .unwrap_or_else(|| deadline::saturating_after(max_idle));
            let mut timer = Box::pin(tokio::time::sleep_until(at.into()));
            if timer.as_mut().poll(cx).is_ready() {
                self.h2.graceful_shutdown();
            } else {
                self.idle_timer = Some(timer);
            }
        }
    }

    fn poll_calls(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(())) = self.calls.poll_next_unpin(cx) {}
    }

    /// Validates and routes a new stream, and starts its call.
    fn start(&mut self, request: http::Request<RecvStream>, respond: SendResponse<Outgoing>) {
        let span = tracing::debug_span!(
            "call",
            method = request.uri().path(),
            stream = ?respond.stream_id(),
        );
        let _entered = span.enter();
        let Some(stream) = accept_call(&self.ctx, request, respond) else {
            return;
        };
        drop(_entered);
        self.calls.push(stream.instrument(span));
    }
}
