//! The poller side of the server: accepting connections, and one task per connection that
//! drives HTTP/2 and every call on it, moving frames between h2 streams and the calls'
//! completion queues.
//!
//! ```text
//!  h2                     connection task (this file, one per connection)     handlers
//!  ──                     ────────────────────────────────────────────────    ────────
//!  HEADERS ──▶ validate, route, admit (max_concurrent_calls)
//!  DATA    ──▶ unary, server-streaming: collect the one request message,
//!              then dispatch ─────────────────────── batch ──────────────▶   pool / executor
//!              client-, bidi-streaming: dispatch at HEADERS; messages
//!              ──────────────────────────────── requests queue ─────────▶   Receiver
//!  RST     ──▶ mark cancelled, fail the request stream
//!  HEADERS/DATA/trailers ◀── send within flow control ◀── responses ────    Responder
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
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::Instrument;

use super::responder::Responder;
use super::service::{Requests, Run, ServerCall};
use super::{CallGuard, ConnectionGuard, Phase, ServerShared};
use crate::call::cancel::{CallContext, CancelState};
use crate::call::chunks::{ChunkPool, Spent};
use crate::call::events::{Inbound, Outbound};
use crate::call::inflow::Inflow;
use crate::call::protocol::{h2_status, is_grpc_content_type};
use crate::call::receiver::Receiver;
use crate::codec::{self, CompressionEncoding, Frame, FrameDecoder};
use crate::cq::{self, Consumer, Producer};
use crate::deadline;
use crate::executor::BoxFuture;
use crate::limits;
use crate::metadata::MetadataMap;
use crate::pool::Job;
use crate::quota::{Charge, Quota};
use crate::status::Status;
#[cfg(feature = "tls")]
use crate::transport;
use crate::transport::frames::{End, Watch, Watched};
use crate::transport::{Io, PeerInfo};

/// A bound socket the server accepts connections on.
pub(crate) enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

enum Accepting {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Accepting {
    async fn accept(&self) -> std::io::Result<(Io, PeerInfo)> {
        match self {
            Accepting::Tcp(listener) => {
                let (tcp, remote) = listener.accept().await?;
                Ok((
                    Io::Tcp(tcp),
                    PeerInfo {
                        remote_addr: Some(remote),
                        ..PeerInfo::default()
                    },
                ))
            }
            Accepting::Unix(listener) => {
                let (unix, _) = listener.accept().await?;
                let peer = PeerInfo::of_unix(&unix);
                Ok((Io::Unix(unix), peer))
            }
        }
    }
}

/// Accepts connections until the server stops serving; each connection is placed on a
/// poller thread round-robin. Connections beyond `max_connections` are closed at once.
pub(super) async fn accept_loop(shared: Arc<ServerShared>, listener: Listener) {
    let registered = match listener {
        Listener::Tcp(listener) => TcpListener::from_std(listener).map(Accepting::Tcp),
        Listener::Unix(listener) => UnixListener::from_std(listener).map(Accepting::Unix),
    };
    let listener = match registered {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listening socket");
            return;
        }
    };
    let mut phase = shared.phase.subscribe();
    // The server may have been stopped (its handle dropped) before this task first ran:
    // a receiver subscribed after that change would never see it, and the listening
    // socket would stay open for the life of the runtime.
    if *phase.borrow_and_update() != Phase::Serving {
        tracing::debug!("stopped before accepting connections");
        return;
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((io, peer)) => {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    let Some(guard) = shared.admit_connection() else {
                        tracing::debug!(?peer.remote_addr, "closing a connection over max_connections");
                        drop(io);
                        continue;
                    };
                    if let Io::Tcp(tcp) = &io {
                        shared.config.socket.apply(tcp);
                    }
                    // Sockets move to their poller as std sockets: a tokio socket is
                    // bound to the poller that registered it.
                    let io = match into_std(io) {
                        Ok(io) => io,
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot hand over an accepted socket");
                            continue;
                        }
                    };
                    let conn_shared = shared.clone();
                    if let Some(metrics) = &shared.metrics {
                        metrics.connection_opened();
                    }
                    let counted = CountedConnection(shared.metrics.clone());
                    shared.rt.poller().spawn(async move {
                        let _counted = counted;
                        match from_std(io) {
                            Ok(io) => {
                                let span = tracing::debug_span!("connection", remote = ?peer.remote_addr);
                                serve_connection(conn_shared, io, peer, guard)
                                    .instrument(span)
                                    .await;
                            }
                            Err(e) => tracing::debug!(error = %e, "cannot register a socket"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = phase.changed() => break,
        }
    }
    tracing::debug!("stopped accepting connections");
}

/// An accepted socket on its way to another poller.
enum StdIo {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// Counts a connection closed when dropped.
struct CountedConnection(Option<crate::metrics::Metrics>);

impl Drop for CountedConnection {
    fn drop(&mut self) {
        if let Some(metrics) = &self.0 {
            metrics.connection_closed();
        }
    }
}

fn into_std(io: Io) -> std::io::Result<StdIo> {
    match io {
        Io::Tcp(tcp) => tcp.into_std().map(StdIo::Tcp),
        Io::Unix(unix) => unix.into_std().map(StdIo::Unix),
        #[cfg(feature = "tls")]
        _ => Err(std::io::Error::other(
            "TLS streams are made on their poller",
        )),
    }
}

fn from_std(io: StdIo) -> std::io::Result<Io> {
    match io {
        StdIo::Tcp(tcp) => TcpStream::from_std(tcp).map(Io::Tcp),
        StdIo::Unix(unix) => UnixStream::from_std(unix).map(Io::Unix),
    }
}

/// The TLS handshake when the server has TLS, then HTTP/2's.
async fn handshake(
    shared: &ServerShared,
    io: Io,
    peer: PeerInfo,
    watch: &Arc<Watch>,
) -> Result<(h2::server::Connection<Watched<Io>, Bytes>, PeerInfo), String> {
    #[cfg(feature = "tls")]
    let (io, peer) = match (&shared.tls, io) {
        (Some(tls), Io::Tcp(tcp)) => transport::tls::accept(tls.clone(), tcp, peer)
            .await
            .map_err(|e| format!("tls handshake failed: {e}"))?,
        (_, io) => (io, peer),
    };
    let config = &shared.config;
    let mut builder = h2::server::Builder::new();
    builder
        .max_header_list_size(config.max_header_list_size)
        .max_concurrent_streams(config.max_concurrent_streams)
        .initial_window_size(config.initial_stream_window_size)
        .initial_connection_window_size(config.initial_connection_window_size)
        .max_pending_accept_reset_streams(config.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(config.max_local_error_reset_streams));
    let unix = matches!(io, Io::Unix(_));
    let mut io = Watched::new(io, End::Server, watch.clone());
    if unix {
        // Clients on Unix sockets often send the socket's path as :authority.
        io = io.rewrite_authority(config.max_header_list_size);
    }
    let h2 = builder
        .handshake(io)
        .await
        .map_err(|e| format!("http/2 handshake failed: {e}"))?;
    Ok((h2, peer))
}

async fn serve_connection(
    shared: Arc<ServerShared>,
    io: Io,
    peer: PeerInfo,
    guard: ConnectionGuard,
) {
    let config = &shared.config;
    let watch = Watch::new(Some(config.ping_policy));
    let handshake = tokio::time::timeout(
        config.handshake_timeout,
        handshake(&shared, io, peer, &watch),
    );
    let started = Instant::now();
    let handshake = tokio::select! {
        done = handshake => done,
        () = poll_fn(|cx| guard.poll_reclaimed(cx)) => {
            tracing::debug!("closing a connection in its handshake to make room for another");
            return;
        }
    };
    let (mut h2, peer) = match handshake {
        Ok(Ok(done)) => done,
        Ok(Err(reason)) => {
            tracing::debug!(%reason, "closing a connection");
            return;
        }
        Err(_) => {
            tracing::debug!(timeout = ?config.handshake_timeout, "closing a connection that did not complete its handshakes");
            return;
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
            return;
        }
        Err(_) => {
            tracing::debug!(timeout = ?config.handshake_timeout, "closing a connection that did not send its SETTINGS");
            return;
        }
    }
    // A connection accepted just before the server began to drain or stop must see that
    // phase too, not only the changes after this point.
    let mut phase = shared.phase.subscribe();
    phase.mark_changed();
    let now = Instant::now();
    let keepalive = config
        .keepalive_time
        .and_then(|_| h2.ping_pong())
        .map(|ping| Keepalive {
            ping: Some(ping),
            pinging: None,
            timer: Box::pin(tokio::time::sleep_until(
                deadline::saturating_after(config.keepalive_time.unwrap_or(Duration::MAX)).into(),
            )),
        });
    let age = config.max_connection_age.map(|age| {
        // ±10 %, so that clients connected together do not all reconnect together.
        let spread = crate::backoff::jitter(age, 0.1);
        Box::pin(tokio::time::sleep_until(
            deadline::saturating_after(spread).into(),
        ))
    });
    let quota = Quota::new(config.connection_memory_quota, Some(shared.quota.clone()));
    let mut base = Charge::new(Some(quota.clone()));
    base.set(limits::CONNECTION_COST);
    let ctx = Arc::new(ConnContext {
        shared: shared.clone(),
        dispatch: Arc::new(Dispatch::default()),
        peer: Arc::new(peer),
        quota,
        workers: Quota::new(shared.blocking_share(), None),
    });
    let mut conn = Conn {
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
    };
    poll_fn(|cx| conn.poll(cx)).await;
}

type PhaseChanged = Pin<Box<dyn Future<Output = (bool, watch::Receiver<Phase>)> + Send>>;

fn watch_phase(mut phase: watch::Receiver<Phase>) -> PhaseChanged {
    Box::pin(async move {
        let ok = phase.changed().await.is_ok();
        (ok, phase)
    })
}

type Sleep = Pin<Box<tokio::time::Sleep>>;
type PingFuture = Pin<Box<dyn Future<Output = (h2::PingPong, Result<(), h2::Error>)> + Send>>;

/// The server's keepalive pings on one connection.
struct Keepalive {
    /// Taken while a ping is out.
    ping: Option<h2::PingPong>,
    pinging: Option<(PingFuture, Sleep)>,
    timer: Sleep,
}

/// One connection and its calls.
struct Conn {
    h2: h2::server::Connection<Watched<Io>, Bytes>,
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

impl Conn {
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
            if let Some((ping, timeout)) = &mut keepalive.pinging {
                if let Poll::Ready((pong, result)) = ping.as_mut().poll(cx) {
                    keepalive.ping = Some(pong);
                    keepalive.pinging = None;
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "keepalive ping failed");
                        return Poll::Ready(());
                    }
                } else if timeout.as_mut().poll(cx).is_ready() {
                    tracing::debug!("closing a connection whose client stopped answering pings");
                    return Poll::Ready(());
                }
            }
            let time = self.shared.config.keepalive_time.unwrap_or(Duration::MAX);
            while keepalive.pinging.is_none() && keepalive.timer.as_mut().poll(cx).is_ready() {
                let quiet = self.watch.last_read().elapsed();
                if quiet >= time {
                    if let Some(mut pong) = keepalive.ping.take() {
                        let ping: PingFuture = Box::pin(async move {
                            let result = pong.ping(h2::Ping::opaque()).await.map(drop);
                            (pong, result)
                        });
                        let timeout = Box::pin(tokio::time::sleep_until(
                            deadline::saturating_after(self.shared.config.keepalive_timeout).into(),
                        ));
                        keepalive.pinging = Some((ping, timeout));
                    }
                    keepalive
                        .timer
                        .as_mut()
                        .reset(deadline::saturating_after(time).into());
                    // Poll the new ping so that it is sent and its waker registered.
                    return self.poll_lifetime(cx);
                }
                keepalive
                    .timer
                    .as_mut()
                    .reset(deadline::saturating_after(time - quiet).into());
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
    fn start(&mut self, request: http::Request<RecvStream>, respond: SendResponse<Bytes>) {
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

/// Handlers that became runnable during one turn of a connection task, handed over
/// together at the end of the turn.
#[derive(Default)]
struct Dispatch {
    /// Only the connection task touches this; the lock is never contended.
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    jobs: Vec<Job>,
    tasks: Vec<BoxFuture>,
}

impl Dispatch {
    fn job(&self, job: Job) {
        lock(&self.pending).jobs.push(job);
    }

    fn task(&self, task: BoxFuture) {
        lock(&self.pending).tasks.push(task);
    }

    fn flush(&self, shared: &ServerShared) {
        let mut pending = lock(&self.pending);
        if !pending.jobs.is_empty() {
            shared.rt.workers.enqueue(pending.jobs.drain(..));
        }
        if !pending.tasks.is_empty() {
            shared.spawn_all(pending.tasks.drain(..));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers a request that never reaches a handler.
fn reject(mut respond: SendResponse<Bytes>, status: Status) {
    let mut headers = HeaderMap::new();
    status.write_headers(&mut headers);
    let _ = respond.send_response(grpc_response(headers), true);
}

fn grpc_response(headers: HeaderMap) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response.headers_mut().insert(
        codec::GRPC_ACCEPT_ENCODING,
        HeaderValue::from_static(codec::ACCEPTED_ENCODINGS),
    );
    response
}

fn http_error(mut respond: SendResponse<Bytes>, status: StatusCode) {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    let _ = respond.send_response(response, true);
}

/// Everything a handler needs to start, kept while its request message is collected (unary
/// and server-streaming calls) or while its connection holds its share of the blocking
/// workers.
struct Start {
    site: Arc<super::service::Site>,
    run: Run,
    metadata: MetadataMap,
    context: Arc<CallContext>,
    responder: Arc<Responder>,
    encoding: Option<CompressionEncoding>,
    /// Client and bidi streaming: the handler's request stream, filled (within its budget)
    /// while the handler waits to start.
    /// (Boxed: the call's task stays small, and the handler takes it boxed.)
    stream: Option<Box<Receiver>>,
}

/// What a connection's calls share: the server, the batch of handlers to hand over, the
/// connection's memory quota and its share of the blocking workers.
pub(super) struct ConnContext {
    pub(super) shared: Arc<ServerShared>,
    dispatch: Arc<Dispatch>,
    peer: Arc<PeerInfo>,
    /// The connection's memory quota (under the server's).
    pub(super) quota: Arc<Quota>,
    /// Blocking handlers of this connection admitted and not finished, counted against
    /// `max_blocking_handlers_per_connection` (a quota counting handlers, not bytes).
    workers: Arc<Quota>,
}

impl ConnContext {
    /// Whether the connection may not open streams now: it used up its own quota, or the
    /// server's is used up and this connection holds more than an even share of it (so
    /// that light connections keep working while heavy ones are held back).
    fn over_quota(&self) -> bool {
        if self.quota.is_full() {
            return true;
        }
        let server = &self.shared.quota;
        if !server.is_full() {
            return false;
        }
        let connections = self.shared.open_connections().max(1);
        self.quota.used() > server.limit() / connections
    }
}

/// Checks a new stream and builds its call; `None` when it was answered already.
fn accept_call(
    conn: &Arc<ConnContext>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> Option<ServerStream> {
    let shared = &conn.shared;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();

    if parts.method != http::Method::POST {
        tracing::debug!(method = %parts.method, "rejecting a non-POST request");
        http_error(respond, StatusCode::METHOD_NOT_ALLOWED);
        return None;
    }
    if !is_grpc_content_type(parts.headers.get(CONTENT_TYPE)) {
        tracing::debug!(content_type = ?parts.headers.get(CONTENT_TYPE), "rejecting a non-grpc content-type");
        http_error(respond, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        return None;
    }
    let Some(handler) = shared.router().get(path) else {
        let status =
            Status::unimplemented(format!("method {path} is not implemented by this server"));
        reject(respond, status);
        return None;
    };
    let request_encoding = match parts.headers.get(codec::GRPC_ENCODING) {
        None => None,
        Some(value) => match CompressionEncoding::from_header(value.as_bytes()) {
            Ok(encoding) => encoding,
            Err(()) => {
                let status = Status::unimplemented(format!(
                    "grpc-encoding {:?} is not supported; this server accepts {}",
                    String::from_utf8_lossy(value.as_bytes()),
                    codec::ACCEPTED_ENCODINGS
                ));
                reject(respond, status);
                return None;
            }
        },
    };
    let timeout = match parts.headers.get(deadline::GRPC_TIMEOUT) {
        None => None,
        Some(value) => match deadline::parse_timeout(value.as_bytes()) {
            Some(timeout) => Some(timeout),
            None => {
                reject(
                    respond,
                    Status::internal(format!("malformed grpc-timeout {value:?}")),
                );
                return None;
            }
        },
    };
    if conn.over_quota() {
        // Memory pressure: no new work on this connection until its calls give some
        // back. The client may retry the stream elsewhere.
        tracing::debug!(
            connection = conn.quota.used(),
            server = shared.quota.used(),
            "refusing a call: the memory quota is used up"
        );
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return None;
    }
    let Some(call_guard) = shared.admit_call() else {
        tracing::debug!("refusing a call over max_concurrent_calls");
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return None;
    };
    // The service's own settings override the server's.
    let settings = &handler.settings;
    let max_receive = settings
        .max_receive_message_size
        .unwrap_or(shared.config.max_receive_message_size);
    let max_send = settings
        .max_send_message_size
        .unwrap_or(shared.config.max_send_message_size);
    // Responses are compressed when the service or server is set to and the client accepts
    // it.
    let send_compression = settings.send_compression.or(shared.config.send_compression);
    let response_compression = send_compression.filter(|encoding| {
        parts
            .headers
            .get(codec::GRPC_ACCEPT_ENCODING)
            .is_some_and(|accepted| encoding.listed_in(accepted.as_bytes()))
    });
    // A timeout of zero is a deadline already past: the call is answered, never run.
    let deadline = timeout.and_then(deadline::deadline_after);

    let quota = Some(conn.quota.clone());
    let (ops_tx, ops_rx) = cq::queue_with_quota(limits::SERVER_OUTBOUND_QUEUE, quota.clone());
    let pool = ChunkPool::new(quota.clone());
    let cancel = Arc::new(CancelState::default());
    let compress = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let context = Arc::new(CallContext {
        peer: conn.peer.clone(),
        deadline,
        cancel: cancel.clone(),
        compress: compress.clone(),
    });
    let responder = Arc::new(Responder::new(
        ops_tx,
        pool.clone(),
        max_send,
        response_compression,
        &context,
        handler.site.metrics.clone(),
    ));
    let mut decoder = FrameDecoder::new(max_receive);
    if request_encoding.is_some() {
        decoder.allow_compressed();
    }
    if handler.single_request {
        decoder.keep_small_chunks();
    }
    let mut stream = ServerStream {
        respond: Some(respond),
        send: None,
        pending: None,
        spent: Spent::new(pool),
        recv: Some(body),
        inflow: Inflow::new(decoder),
        batch: Vec::new(),
        start: None,
        first: None,
        first_charge: Charge::default(),
        requests: None,
        ops: ops_rx,
        deferred: None,
        cancel,
        deadline,
        sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
        conn: conn.clone(),
        single: handler.single_request,
        unary: handler.unary,
        done: false,
        _call: call_guard,
    };
    let metadata = MetadataMap::from_headers(&parts.headers);
    let mut start = Start {
        site: handler.site.clone(),
        run: handler.run.clone(),
        metadata,
        context,
        responder,
        encoding: request_encoding,
        stream: None,
    };
    if !handler.single_request {
        // Client and bidi streaming: the handler starts without waiting for requests and
        // reads them as they come.
        let (requests_tx, requests_rx) = cq::queue_with_quota(limits::INBOUND_QUEUE, quota);
        let mut requests = Receiver::new(requests_rx, End::Server, max_receive)
            .count(handler.site.metrics.clone());
        requests.set_encoding(request_encoding);
        stream.requests = Some(requests_tx);
        start.stream = Some(Box::new(requests));
    }
    stream.start = Some(start);
    Some(stream)
}

/// One call, as a future polled by its connection task.
struct ServerStream {
    /// Until the response headers are sent.
    respond: Option<SendResponse<Bytes>>,
    /// After the response headers are sent.
    send: Option<SendStream<Bytes>>,
    /// Part of a message waiting for flow-control capacity.
    pending: Option<Bytes>,
    /// Chunks handed to h2, released and recycled once written.
    spent: Spent,
    /// Until the request stream ended (or the handler stopped reading it).
    recv: Option<RecvStream>,
    /// Received bytes on their way to the handler.
    inflow: Inflow,
    /// Messages moved out of `inflow`, pushed to `requests` together.
    batch: Vec<Inbound>,
    /// Until the handler is dispatched.
    start: Option<Start>,
    /// The request message of a unary or server-streaming call.
    first: Option<Frame>,
    /// What `first` holds, charged to the connection's quota until the handler takes it.
    first_charge: Charge,
    /// Client and bidi streaming: the handler's request stream.
    requests: Option<Producer<Inbound>>,
    ops: Consumer<Outbound>,
    /// An operation taken from `ops` while looking behind a message, handled next.
    deferred: Option<Outbound>,
    cancel: Arc<CancelState>,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    conn: Arc<ConnContext>,
    /// Whether the method takes one request message.
    single: bool,
    /// Whether the method is unary (its handler never waits on the client).
    unary: bool,
    /// The final status was sent (or the stream reset).
    done: bool,
    _call: CallGuard,
}

impl Future for ServerStream {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let result = this.poll_call(cx);
        if result.is_ready() {
            this.done = true;
        }
        result
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        self.inflow.discharge(&self.conn.quota);
        if !self.done {
            // The connection or the server went away under the call.
            self.abort(Status::unavailable("the server is shutting down"));
            self.reset(h2::Reason::CANCEL);
        }
    }
}

impl ServerStream {
    /// Ends the call because the server stopped: with an `UNAVAILABLE` status, or a
    /// reset if the call is in the middle of a response message (whose end will not
    /// come).
    fn shut_down(&mut self) {
        if self.done {
            return;
        }
        let status = Status::unavailable("the server shut down before the call completed");
        self.abort(status.clone());
        if self.pending.is_some() {
            self.reset(h2::Reason::CANCEL);
            self.done = true;
        } else {
            self.send_status(status);
        }
    }

    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.conn.shared.is_stopped() {
            self.shut_down();
            return Poll::Ready(());
        }
        if let Some(sleep) = &mut self.sleep {
            if sleep.as_mut().poll(cx).is_ready() {
                self.abort(Status::deadline_exceeded("deadline exceeded"));
                self.send_status(Status::deadline_exceeded("deadline exceeded"));
                return Poll::Ready(());
            }
        }
        if let Some(reason) = self.poll_reset(cx) {
            tracing::debug!(%reason, "client reset the call");
            self.abort(Status::cancelled(format!(
                "the client cancelled the call ({reason})"
            )));
            return Poll::Ready(());
        }
        if self.single && self.start.is_some() {
            match self.read_single(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(status)) => {
                    self.abort(status.clone());
                    self.send_status(status);
                    return Poll::Ready(());
                }
            }
        }
        if !self.single {
            // Requests flow into the stream's budget even before the handler starts.
            if let Err(status) = self.poll_requests(cx) {
                self.abort(status.clone());
                self.send_status(status);
                return Poll::Ready(());
            }
        }
        if self.start.is_some() {
            match self.dispatch(cx) {
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
                Err(Refused) => {
                    self.refuse();
                    return Poll::Ready(());
                }
            }
            if self.done {
                return Poll::Ready(());
            }
        }
        self.poll_responses(cx)
    }

    /// Refuses the call before any handler saw it: the client may retry it elsewhere.
    fn refuse(&mut self) {
        self.done = true;
        self.cancel.cancel();
        self.reset(h2::Reason::REFUSED_STREAM);
    }

    /// Marks the call cancelled and fails the handler's request stream.
    fn abort(&mut self, status: Status) {
        self.cancel.cancel_because(&status);
        if let Some(requests) = self.requests.take() {
            let _ = requests.push(Inbound::Error(status));
        }
        self.recv = None;
        // A handler that never started; the server (which holds the handlers) outlives
        // the call, so nothing of the user's is dropped here.
        self.start = None;
    }

    fn reset(&mut self, reason: h2::Reason) {
        if let Some(send) = &mut self.send {
            send.send_reset(reason);
        } else if let Some(respond) = &mut self.respond {
            respond.send_reset(reason);
        }
    }

    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Option<h2::Reason> {
        let polled = if let Some(send) = &mut self.send {
            send.poll_reset(cx)
        } else if let Some(respond) = &mut self.respond {
            respond.poll_reset(cx)
        } else {
            return None;
        };
        match polled {
            Poll::Ready(Ok(reason)) => Some(reason),
            Poll::Ready(Err(_)) => Some(h2::Reason::CANCEL),
            Poll::Pending => None,
        }
    }

    /// Hands the call to its handler once it may start: `Ok(true)` once dispatched (or
    /// answered: a deadline that passed before the handler could start), `Ok(false)`
    /// while the connection holds its share of the blocking workers.
    fn dispatch(&mut self, cx: &mut Context<'_>) -> Result<bool, Refused> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            // Never run a handler whose call is already over.
            let status = Status::deadline_exceeded("deadline exceeded before the handler started");
            self.abort(status.clone());
            self.send_status(status);
            return Ok(true);
        }
        let Some(start) = &self.start else {
            return Ok(true);
        };
        let mut admitted = None;
        if let Run::Blocking(_) = &start.run {
            // One connection holds at most its share of the blocking workers; its other
            // calls wait here (their deadlines still run), not in the pool.
            if self.conn.workers.poll_room(cx).is_pending() {
                return Ok(false);
            }
            let streaming = if !self.unary {
                let Some(guard) = self.conn.shared.admit_blocking_stream() else {
                    tracing::debug!(
                        "refusing a blocking streaming call: handlers hold their share of workers"
                    );
                    return Err(Refused);
                };
                Some(guard)
            } else {
                None
            };
            let Some(permit) = self.conn.shared.rt.workers.try_reserve() else {
                tracing::debug!("refusing a call: the worker pool and its queue are full");
                return Err(Refused);
            };
            let mut held = Charge::new(Some(self.conn.workers.clone()));
            held.set(1);
            admitted = Some((permit, held, streaming));
        }
        let Some(start) = self.start.take() else {
            return Ok(true);
        };
        let requests = match start.stream {
            Some(stream) => Requests::Stream(stream),
            None => {
                let Some(frame) = self.first.take() else {
                    let status = Status::internal("received no request message on a unary call");
                    self.abort(status.clone());
                    self.send_status(status);
                    return Ok(true);
                };
                Requests::Single {
                    frame,
                    charge: std::mem::take(&mut self.first_charge),
                    encoding: start.encoding,
                    max_len: self.inflow.decoder_mut().max_len(),
                }
            }
        };
        let call = ServerCall {
            site: start.site,
            metadata: start.metadata,
            context: start.context,
            requests,
            responder: start.responder,
        };
        match (start.run, admitted) {
            (Run::Blocking(run), Some((permit, held, streaming))) => {
                self.conn.dispatch.job(permit.bind(Box::new(move || {
                    let _held = (held, streaming);
                    run(call);
                })));
            }
            (Run::Async(run), _) => self.conn.dispatch.task(run(call)),
            (Run::Blocking(_), None) => unreachable!("blocking calls are admitted above"),
        }
        Ok(true)
    }

    /// Reads the whole request of a call that takes one message.
    fn read_single(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let Some(body) = &mut self.recv else {
            return Poll::Ready(Ok(()));
        };
        let read = match self.inflow.poll_read(body, cx) {
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(h2_status(&e).with_source(e)));
            }
            read => read,
        };
        while let Some(frame) = self.inflow.next_single()? {
            if self.first.is_some() {
                return Poll::Ready(Err(more_than_one()));
            }
            if frame.body.len() > limits::SMALL_REQUEST {
                // Held until the handler decodes it: charged. A small one is not (what
                // small requests can hold is bounded by the calls and the pool's queue).
                self.first_charge = Charge::new(Some(self.conn.quota.clone()));
                self.first_charge
                    .set(std::mem::size_of::<Frame>() + frame.body.len());
            }
            self.first = Some(frame);
        }
        if self.first.is_some() && self.inflow.decoder_mut().has_partial() {
            return Poll::Ready(Err(more_than_one()));
        }
        // The one message being collected gets its credit back at once (it may be larger
        // than the window), unless the memory quota has no room.
        self.inflow.release(body, true, Some(&self.conn.quota), cx);
        match read {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                self.inflow.check_complete("request stream")?;
                self.recv = None;
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Moves request messages to a streaming handler's queue as it has room; credit goes
    /// back for what moved on (see [`Inflow`]).
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        let (Some(body), Some(requests)) = (&mut self.recv, &self.requests) else {
            return Ok(());
        };
        let read = self.inflow.poll_read(body, cx);
        if let Poll::Ready(Err(e)) = read {
            return Err(h2_status(&e).with_source(e));
        }
        let room = match requests.poll_ready(cx) {
            Poll::Ready(Ok(room)) => room,
            Poll::Ready(Err(cq::Closed)) => {
                // The handler dropped its request stream: stop reading.
                self.recv = None;
                self.requests = None;
                return Ok(());
            }
            Poll::Pending => 0,
        };
        let drained = self.inflow.drain(room, &mut self.batch)?;
        if !self.batch.is_empty() {
            let _ = requests.push_all(self.batch.drain(..));
        }
        self.inflow
            .release(body, drained, Some(&self.conn.quota), cx);
        if self.inflow.data_ended() && drained {
            self.inflow.check_complete("request stream")?;
            self.recv = None;
            // Dropping the producer tells the handler the stream ended.
            self.requests = None;
        }
        Ok(())
    }

    /// Sends what the handler queued; `Ready` once the status was sent.
    fn poll_responses(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(buf) = &mut self.pending {
                let Some(send) = &mut self.send else {
                    unreachable!("messages are only pending after the headers")
                };
                send.reserve_capacity(buf.len());
                match ready!(send.poll_capacity(cx)) {
                    Some(Ok(0)) => continue,
                    Some(Ok(n)) => {
                        let chunk = buf.split_to(n.min(buf.len()));
                        if buf.is_empty() {
                            self.pending = None;
                        }
                        if send.send_data(chunk, false).is_err() {
                            self.abort(Status::cancelled("the response stream was closed"));
                            return Poll::Ready(());
                        }
                    }
                    None | Some(Err(_)) => {
                        self.abort(Status::cancelled("the response stream was closed"));
                        return Poll::Ready(());
                    }
                }
                continue;
            }
            let op = match self.deferred.take() {
                Some(op) => Some(op),
                None => ready!(self.ops.poll_pop(cx)),
            };
            match op {
                Some(Outbound::Headers(headers)) => {
                    if self.send_headers(headers).is_err() {
                        return Poll::Ready(());
                    }
                }
                Some(Outbound::Message(framed)) => {
                    if self.send.is_none() && self.send_headers(HeaderMap::new()).is_err() {
                        return Poll::Ready(());
                    }
                    let next = self.ops.try_pop();
                    if let Some(Outbound::Trailers(trailers)) = next {
                        // The last messages (a unary response): h2 buffers what the window
                        // cannot take yet, which is bounded by what was queued.
                        if let Some(send) = &mut self.send {
                            let _ = send.send_data(self.spent.send(framed), false);
                        }
                        self.send_trailers(trailers);
                        return Poll::Ready(());
                    }
                    self.pending = Some(self.spent.send(framed));
                    self.deferred = next;
                }
                Some(Outbound::Trailers(trailers)) => {
                    self.send_trailers(trailers);
                    return Poll::Ready(());
                }
                Some(Outbound::Finish | Outbound::Abort(_)) => {
                    tracing::debug!("ignoring a client-side operation on a server call");
                }
                None => {
                    self.send_status(Status::unknown("the handler ended without a status"));
                    return Poll::Ready(());
                }
            }
        }
    }

    fn send_headers(&mut self, headers: HeaderMap) -> Result<(), ()> {
        let Some(mut respond) = self.respond.take() else {
            return Ok(());
        };
        match respond.send_response(grpc_response(headers), false) {
            Ok(send) => {
                self.send = Some(send);
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "failed to send response headers");
                self.abort(Status::cancelled("the response stream was closed"));
                Err(())
            }
        }
    }

    /// Sends the final status as trailers, or as a Trailers-Only response when no
    /// headers went out yet.
    fn send_trailers(&mut self, trailers: HeaderMap) {
        if let Some(mut respond) = self.respond.take() {
            let _ = respond.send_response(grpc_response(trailers), true);
        } else if let Some(send) = &mut self.send {
            let _ = send.send_trailers(trailers);
        }
        self.done = true;
        // The call is over for the handler even if the client is still sending.
        self.recv = None;
        self.requests = None;
    }

    fn send_status(&mut self, status: Status) {
        let mut trailers = HeaderMap::new();
        status.write_headers(&mut trailers);
        self.send_trailers(trailers);
    }
}

/// The worker pool cannot take the call.
struct Refused;

fn more_than_one() -> Status {
    Status::internal("received more than one request message on a call that takes one")
}
