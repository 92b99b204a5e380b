//! A watch on the HTTP/2 frames crossing a connection, under h2: h2 gives no hook for
//! received PINGs nor for a GOAWAY's debug data, and cannot send a GOAWAY with debug data
//! of our choosing. [`Watched`] follows frame boundaries in both directions as the bytes
//! pass (headers are parsed, payloads skipped, nothing is buffered) to:
//!
//! * count the PINGs a client sends, for the server's ping-strike policy;
//! * see the debug data of a GOAWAY (`too_many_pings`) a client receives;
//! * note when the connection last received anything (client keepalive);
//! * write a GOAWAY of our own at the next frame boundary, then close the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sync::{Mutex, MutexGuard};

/// The client connection preface, which precedes the client's frames.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

/// The ping-strike policy of a server (as gRPC's keepalive enforcement).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PingPolicy {
    /// Least time between two client pings while calls are open.
    pub(crate) min_time: std::time::Duration,
    /// Whether clients may ping while no call is open.
    pub(crate) permit_without_calls: bool,
}

/// What the watch has seen, shared with the connection's task.
pub(crate) struct Watch {
    state: Mutex<WatchState>,
    /// Set once the peer earned a GOAWAY; the connection's task then shuts h2 down.
    violated: AtomicBool,
}

struct WatchState {
    policy: Option<PingPolicy>,
    /// Calls open on the connection (kept up to date by the connection's task).
    open_calls: usize,
    last_ping: Option<Instant>,
    strikes: u32,
    /// We sent headers or data since the last ping: the next ping is fine.
    reset_strikes: bool,
    last_read: Instant,
    /// Highest stream id the peer opened.
    last_peer_stream: u32,
    /// Debug data of a GOAWAY the peer sent.
    goaway_debug: Option<Bytes>,
    /// The last-stream-id of the latest GOAWAY the peer sent: streams above it were not
    /// processed.
    goaway_last_stream: Option<u32>,
    /// The peer's first SETTINGS frame arrived (the end of its connection preface).
    settings_received: bool,
    /// Woken when `violated` is set.
    waker: Option<Waker>,
}

impl Watch {
    pub(crate) fn new(policy: Option<PingPolicy>) -> Arc<Watch> {
        Arc::new(Watch {
            state: Mutex::new(WatchState {
                policy,
                open_calls: 0,
                last_ping: None,
                strikes: 0,
                reset_strikes: false,
                last_read: Instant::now(),
                last_peer_stream: 0,
                goaway_debug: None,
                goaway_last_stream: None,
                settings_received: false,
                waker: None,
            }),
            violated: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock()
    }

    pub(crate) fn set_open_calls(&self, n: usize) {
        self.lock().open_calls = n;
    }

    /// When the connection last received bytes.
    pub(crate) fn last_read(&self) -> Instant {
        self.lock().last_read
    }

    /// Whether the peer's first SETTINGS frame has arrived: a server's handshake is
    /// complete only then (RFC 9113 §3.4: the client preface ends with SETTINGS).
    pub(crate) fn settings_received(&self) -> bool {
        self.lock().settings_received
    }

    /// The debug data of a GOAWAY the peer sent, if any.
    pub(crate) fn goaway_debug(&self) -> Option<Bytes> {
        self.lock().goaway_debug.clone()
    }

    /// The last-stream-id of the latest GOAWAY the peer sent, if any: streams above it
    /// were not processed, so a client may retry them anywhere.
    pub(crate) fn goaway_last_stream(&self) -> Option<u32> {
        self.lock().goaway_last_stream
    }

    /// Ready once the peer has pinged too often.
    pub(crate) fn poll_violated(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.violated.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut state = self.lock();
        if self.violated.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// A PING (not an ACK) arrived.
    fn ping_received(&self) {
        let mut state = self.lock();
        let Some(policy) = state.policy else {
            return;
        };
        let now = Instant::now();
        if std::mem::take(&mut state.reset_strikes) {
            state.strikes = 0;
            state.last_ping = Some(now);
            return;
        }
        let least = if state.open_calls == 0 && !policy.permit_without_calls {
            crate::limits::IDLE_PING_INTERVAL
        } else {
            policy.min_time
        };
        if state
            .last_ping
            .is_some_and(|last| now.saturating_duration_since(last) < least)
        {
            state.strikes += 1;
        }
        state.last_ping = Some(now);
        if state.strikes > crate::limits::MAX_PING_STRIKES
            && !self.violated.swap(true, Ordering::AcqRel)
        {
            tracing::debug!("client pinged too often: closing with too_many_pings");
            if let Some(waker) = state.waker.take() {
                drop(state);
                waker.wake();
            }
        }
    }
}

/// Follows frame boundaries in one direction of a connection.
struct FrameParser {
    /// Preface bytes still to skip.
    skip: usize,
    head: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to come.
    left: usize,
    /// The current frame is a GOAWAY whose payload is being kept (up to a bound).
    goaway: Option<BytesMut>,
}

/// Most GOAWAY payload kept: the error code, the stream id and some debug data.
const GOAWAY_KEEP: usize = 8 + 64;

/// A frame header seen by a parser.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameParser {
    fn new(preface: bool) -> FrameParser {
        FrameParser {
            skip: if preface { PREFACE.len() } else { 0 },
            head: [0; HEADER_LEN],
            have: 0,
            left: 0,
            goaway: None,
        }
    }

    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.have == 0 && self.left == 0
    }

    /// Bytes until the end of the current frame (or preface), when inside one.
    fn until_boundary(&self) -> Option<usize> {
        if self.skip > 0 {
            Some(self.skip)
        } else if self.have > 0 {
            None
        } else if self.left > 0 {
            Some(self.left)
        } else {
            None
        }
    }

    /// Feeds bytes crossing the connection; calls `on_frame` for every frame header and
    /// `on_goaway` with the payload of every GOAWAY.
    fn feed(
        &mut self,
        mut data: &[u8],
        on_frame: &mut impl FnMut(&Frame),
        on_goaway: &mut impl FnMut(Bytes),
    ) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            if self.left > 0 {
                let n = self.left.min(data.len());
                if let Some(keep) = &mut self.goaway {
                    let room = GOAWAY_KEEP.saturating_sub(keep.len());
                    keep.put_slice(&data[..n.min(room)]);
                }
                self.left -= n;
                data = &data[n..];
                if self.left == 0 {
                    if let Some(payload) = self.goaway.take() {
                        on_goaway(payload.freeze());
                    }
                }
                continue;
            }
            let n = (HEADER_LEN - self.have).min(data.len());
            self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have < HEADER_LEN {
                continue;
            }
            self.have = 0;
            let h = self.head;
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let frame = Frame {
                kind: h[3],
                flags: h[4],
                stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            };
            on_frame(&frame);
            self.left = len;
            if frame.kind == GOAWAY {
                if len == 0 {
                    on_goaway(Bytes::new());
                } else {
                    self.goaway = Some(BytesMut::with_capacity(len.min(GOAWAY_KEEP)));
                }
            }
        }
    }
}

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Client,
    Server,
}

/// A byte stream whose HTTP/2 frames are watched; see the module docs.
pub(crate) struct Watched<T> {
    io: T,
    watch: Arc<Watch>,
    read: FrameParser,
    write: FrameParser,
    /// Our GOAWAY, and how much of it is written.
    goaway: Option<(Bytes, usize)>,
    /// Our GOAWAY is out: further writes from h2 are dropped and the stream shut down.
    closed: bool,
    /// Rewrites what the peer sends before h2 reads it (Unix-socket servers), with the
    /// bytes rewritten and not yet read.
    rewrite: Option<(super::authority::AuthorityRewrite, BytesMut)>,
}

impl<T> Watched<T> {
    pub(crate) fn new(io: T, end: End, watch: Arc<Watch>) -> Watched<T> {
        Watched {
            io,
            watch,
            read: FrameParser::new(end == End::Server),
            write: FrameParser::new(end == End::Client),
            goaway: None,
            closed: false,
            rewrite: None,
        }
    }

    /// Drops an `:authority` h2 would refuse from the peer's header blocks (see
    /// [`AuthorityRewrite`](super::authority::AuthorityRewrite)): for servers on Unix
    /// sockets, whose clients often send the socket's path there.
    pub(crate) fn rewrite_authority(mut self, max_header_list_size: u32) -> Watched<T> {
        self.rewrite = Some((
            super::authority::AuthorityRewrite::new(max_header_list_size),
            BytesMut::new(),
        ));
        self
    }

    fn observe_read(&mut self, data: &[u8]) {
        let watch = self.watch.clone();
        let mut pinged = 0;
        let mut last_stream = 0;
        let mut goaway = None;
        let mut settings = false;
        self.read.feed(
            data,
            &mut |frame| {
                settings |= frame.kind == SETTINGS;
                if frame.kind == PING && frame.flags & ACK == 0 {
                    pinged += 1;
                }
                if frame.kind == HEADERS {
                    last_stream = last_stream.max(frame.stream);
                }
            },
            &mut |payload| goaway = Some(payload),
        );
        {
            let mut state = watch.lock();
            state.last_read = Instant::now();
            state.last_peer_stream = state.last_peer_stream.max(last_stream);
            state.settings_received |= settings;
            if let Some(payload) = goaway {
                if payload.len() >= 4 {
                    let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    state.goaway_last_stream = Some(last & 0x7fff_ffff);
                }
                state.goaway_debug = Some(if payload.len() > 8 {
                    payload.slice(8..)
                } else {
                    Bytes::new()
                });
            }
        }
        for _ in 0..pinged {
            watch.ping_received();
        }
    }

    fn observe_write(&mut self, data: &[u8]) {
        let mut sent_data = false;
        self.write.feed(
            data,
            &mut |frame| sent_data |= frame.kind == DATA || frame.kind == HEADERS,
            &mut |_| {},
        );
        if sent_data {
            self.watch.lock().reset_strikes = true;
        }
    }
}

/// A GOAWAY frame: `last_stream`, the error code and debug data.
fn goaway_frame(last_stream: u32, code: u32, debug: &[u8]) -> Bytes {
    let len = 8 + debug.len();
    let mut frame = BytesMut::with_capacity(HEADER_LEN + len);
    frame.put_slice(&(len as u32).to_be_bytes()[1..]);
    frame.put_u8(GOAWAY);
    frame.put_u8(0);
    frame.put_u32(0);
    frame.put_u32(last_stream & 0x7fff_ffff);
    frame.put_u32(code);
    frame.put_slice(debug);
    frame.freeze()
}

/// HTTP/2's ENHANCE_YOUR_CALM error code.
const ENHANCE_YOUR_CALM: u32 = 0xb;

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        if this.rewrite.is_some() {
            return this.poll_read_rewritten(cx, buf);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let filled = buf.filled();
            if filled.len() > before {
                this.observe_read(&filled[before..]);
            }
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> Watched<T> {
    /// Reads through the header-block rewriter: what it produced first, then more from
    /// the socket.
    fn poll_read_rewritten(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let Some((_, pending)) = &mut self.rewrite else {
                unreachable!("called with a rewriter")
            };
            if !pending.is_empty() {
                let n = pending.len().min(buf.remaining());
                buf.put_slice(&pending[..n]);
                pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [0u8; 8192];
            let mut raw = ReadBuf::new(&mut scratch);
            std::task::ready!(Pin::new(&mut self.io).poll_read(cx, &mut raw))?;
            let data = raw.filled();
            if data.is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.observe_read(data);
            let Some((rewrite, pending)) = &mut self.rewrite else {
                unreachable!("called with a rewriter")
            };
            rewrite.feed(data, pending).map_err(|e| {
                tracing::debug!(reason = %e.0, "closing a connection whose headers cannot be rewritten");
                io::Error::new(io::ErrorKind::InvalidData, e.0)
            })?;
        }
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// Writes our GOAWAY once the outgoing stream is at a frame boundary; `Ready` when it
    /// is out (or there is none).
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.goaway.is_none() && !self.closed && self.watch.violated.load(Ordering::Acquire) {
            if !self.write.at_boundary() {
                return Poll::Ready(Ok(()));
            }
            let last = self.watch.lock().last_peer_stream;
            let frame = goaway_frame(last, ENHANCE_YOUR_CALM, b"too_many_pings");
            self.goaway = Some((frame, 0));
        }
        while let Some((frame, written)) = &mut self.goaway {
            if *written == frame.len() {
                self.goaway = None;
                self.closed = true;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &frame[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        if self.closed {
            std::task::ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            let _ = std::task::ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_goaway(cx))?;
        if this.closed {
            // The connection is over: what h2 still writes goes nowhere.
            return Poll::Ready(Ok(buf.len()));
        }
        // A GOAWAY is due: write only up to the end of the current frame, so that it
        // can follow.
        let limit = if this.watch.violated.load(Ordering::Acquire) {
            this.write
                .until_boundary()
                .unwrap_or(buf.len())
                .min(buf.len())
        } else {
            buf.len()
        };
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..limit]))?;
        this.observe_write(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.watch.violated.load(Ordering::Acquire) || this.closed {
            // Rare: one buffer at a time, so that our GOAWAY lands between frames.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return Pin::new(this).poll_write(cx, first);
        }
        // h2 hands DATA payloads over as separate buffers when the stream takes them
        // vectored, instead of copying them into its own buffer.
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(buf.len());
            this.observe_write(&buf[..take]);
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_goaway(cx))?;
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_goaway(cx))?;
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
