//! Fewer, larger writes for streams of data.
//!
//! h2 writes one frame per `writev` (a DATA frame of at most the peer's maximum frame
//! size, 16 KiB by default, behind its 9-byte header) and flushes after each, so a 64 KiB
//! message costs four writes and, over TCP, four pushes of a segment through the
//! network stack; a stream of small messages, packed into chunks of
//! [`CHUNK`](crate::limits::CHUNK) bytes, one write per chunk. [`Gathered`] sits between
//! h2 and the byte stream: while h2 is writing large frames (8 KiB or more: full-size
//! frames, and chunks of small messages, which fill a frame to a little under its size)
//! one after the other, it keeps them, at most [`WRITE_GATHER`] bytes (over plain sockets:
//! [`PLAINTEXT_WRITE_GATHER`](crate::limits::PLAINTEXT_WRITE_GATHER)), and writes them with
//! one vectored call, when that is full or when h2 has nothing more to write this turn.
//!
//! A frame's bytes are mostly a call's message buffer, listed among the connection's
//! [`Lent`] buffers while h2 holds it: those are kept as references to the buffer (no
//! copy), and the rest (frames' headers, h2's own small frames, buffers not listed) is
//! copied into a buffer allocated for the burst. Over a byte stream that does not take
//! vectored writes, everything is copied, so that it is still one write.
//!
//! Small writes (headers, small messages, control frames) go straight through, uncopied,
//! unless frames are already gathered, which they then follow, in order.
//!
//! How the end of a turn is known: h2 flushes after every chained DATA frame, before it
//! takes the next one, and once more when it has nothing left to write. A flush after a
//! large frame is answered at once (h2 carries on with its next frame) and the
//! connection's task is woken; if that task's next poll flushes again without writing
//! anything, h2 was done, and the gathered bytes are written. So at most one poll of the
//! connection's task, with no I/O of its own, stands between the last frame and its write.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::lent::{Held, Lent};
use crate::limits::WRITE_GATHER;
use crate::quota::{Charge, Quota};

/// A write at least this long is taken for a large DATA frame, after which more are
/// likely to follow in the same turn: half of h2's smallest maximum frame size, so that
/// the chunks a stream of small messages is packed into (a little under 16 KiB each) are
/// gathered as full-size frames are. Gathering only full-size frames left a stream of
/// 1 KiB messages at one write per 15 messages and 0.75 µs of server CPU per message;
/// from 8 KiB, 0.44 µs.
const LARGE_FRAME: usize = 8 * 1024;

/// A slice at least this long is looked for among the [`Lent`] buffers (to be held, not
/// copied); a shorter one (a frame's header, a small frame) is copied.
const HOLD_MIN: usize = 1024;

/// How many slices one write passes at most.
const MAX_SLICES: usize = 64;

/// The most bytes of large frames gathered into one write over a stream that is encrypted
/// (TLS) or not: see [`PLAINTEXT_WRITE_GATHER`](crate::limits::PLAINTEXT_WRITE_GATHER).
pub(crate) fn write_limit(encrypted: bool) -> usize {
    if encrypted {
        WRITE_GATHER
    } else {
        crate::limits::PLAINTEXT_WRITE_GATHER
    }
}

/// A byte stream whose writes of large frames are gathered into fewer, larger writes.
pub(crate) struct Gathered<T> {
    io: T,
    /// The buffers h2 was handed, whose slices are held instead of copied.
    lent: Lent,
    /// Bytes accepted and not yet written, in order.
    pieces: VecDeque<Piece>,
    /// How many bytes `pieces` hold.
    pending: usize,
    /// How many of them are held slices.
    held: usize,
    /// The most bytes gathered into one write.
    limit: usize,
    /// Bytes copied since all was last written; empty (no allocation) between bursts.
    buf: Vec<u8>,
    /// The last write was a large frame.
    mid_burst: bool,
    /// A flush was answered without writing and the task woken: the next flush with no
    /// write in between writes.
    owed: bool,
    /// The buffer's capacity and the held slices' length, charged to the connection's
    /// quota (a held slice is also charged to its call until the call has ended or the
    /// slice is written: counted twice rather than not at all).
    charge: Charge,
}

/// Bytes accepted and not yet written.
enum Piece {
    /// `buf[from..to]`.
    Copied { from: usize, to: usize },
    /// A slice of a lent buffer.
    Held(Held),
}

impl<T> Gathered<T> {
    /// `io` with its writes gathered; the buffer, while allocated, is charged to `quota`.
    pub(crate) fn new(io: T, quota: Option<Arc<Quota>>) -> Gathered<T> {
        Gathered {
            io,
            lent: Lent::default(),
            pieces: VecDeque::new(),
            pending: 0,
            held: 0,
            limit: WRITE_GATHER,
            buf: Vec::new(),
            mid_burst: false,
            owed: false,
            charge: Charge::new(quota),
        }
    }

    /// Gathers at most `limit` bytes into one write instead of
    /// [`WRITE_GATHER`].
    pub(crate) fn with_limit(mut self, limit: usize) -> Gathered<T> {
        self.limit = limit;
        self
    }

    /// Where the buffers handed to h2 over this stream are listed, to be held rather than
    /// copied when h2 writes them.
    pub(crate) fn lent(&self) -> &Lent {
        &self.lent
    }

    /// Bytes accepted and not yet written.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending
    }

    /// The byte stream.
    #[cfg(test)]
    pub(crate) fn into_inner(self) -> T {
        self.io
    }

    /// Copies `slice` to the end of the pieces.
    fn copy(&mut self, slice: &[u8]) {
        if self.buf.capacity() - self.buf.len() < slice.len() {
            // Room for a burst of large frames, or for a few frames' headers.
            let room = if slice.len() >= HOLD_MIN || self.buf.capacity() >= HOLD_MIN {
                self.limit
            } else {
                HOLD_MIN
            };
            self.buf
                .reserve_exact(room.max(self.buf.len() + slice.len()) - self.buf.len());
        }
        let from = self.buf.len();
        self.buf.extend_from_slice(slice);
        let to = self.buf.len();
        match self.pieces.back_mut() {
            Some(Piece::Copied { to: end, .. }) if *end == from => *end = to,
            _ => self.pieces.push_back(Piece::Copied { from, to }),
        }
    }
}

impl<T: AsyncWrite + Unpin> Gathered<T> {
    /// Writes what is gathered; `Ready` once all of it is written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending > 0 {
            let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, piece) in slices.iter_mut().zip(&self.pieces) {
                *slot = io::IoSlice::new(match piece {
                    Piece::Copied { from, to } => &self.buf[*from..*to],
                    Piece::Held(held) => held.bytes(),
                });
                count += 1;
            }
            let mut n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending -= n;
            while n > 0 {
                let Some(piece) = self.pieces.front_mut() else {
                    break;
                };
                let len = match piece {
                    Piece::Copied { from, to } => *to - *from,
                    Piece::Held(held) => held.bytes().len(),
                };
                let done = n.min(len);
                match piece {
                    Piece::Copied { from, .. } => *from += done,
                    Piece::Held(held) => {
                        held.advance(done);
                        self.held -= done;
                    }
                }
                if n < len {
                    break;
                }
                n -= len;
                self.pieces.pop_front();
            }
            self.charge.set(self.buf.capacity() + self.held);
        }
        self.buf.clear();
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Gathered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Gathered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let large = total >= LARGE_FRAME;
        if this.pending + total > this.limit || this.buf.len() + total > this.limit {
            // No room: write what is gathered first (the buffer of copies, written in
            // part, is emptied only once all is written).
            ready!(this.poll_drain(cx))?;
        }
        if this.pending == 0 && (!large || total > this.limit) {
            // Nothing gathered, and nothing worth gathering: straight through.
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
            this.mid_burst = false;
            this.owed = false;
            return Poll::Ready(Ok(n));
        }
        // Held pieces are written as slices of their own: only worth it when the stream
        // takes many slices in one write.
        let hold = this.io.is_write_vectored();
        for b in bufs {
            match (hold && b.len() >= HOLD_MIN)
                .then(|| this.lent.find(b))
                .flatten()
            {
                Some(held) => {
                    this.held += b.len();
                    this.pieces.push_back(Piece::Held(held));
                }
                None => this.copy(b),
            }
        }
        this.charge.set(this.buf.capacity() + this.held);
        this.pending += total;
        this.mid_burst = large;
        this.owed = false;
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending > 0 && this.mid_burst && !this.owed {
            // Likely h2 making room for its next frame: answer now, and look again on
            // the task's next poll.
            this.owed = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        this.owed = false;
        this.mid_burst = false;
        // The burst is over: give the buffer back.
        if this.buf.capacity() > 0 {
            this.buf = Vec::new();
            this.charge.set(0);
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A byte stream that records each write, accepting at most `limit` bytes per call.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<usize>,
        bytes: Vec<u8>,
        limit: Option<usize>,
        flushes: usize,
        /// Takes many slices per write (and records where each write's slices lie).
        vectored: bool,
        slices: Vec<Vec<(usize, usize)>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = this.limit.map_or(buf.len(), |l| l.min(buf.len()));
            this.writes.push(n);
            this.bytes.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if this.vectored {
                let at = bufs.iter().map(|b| (b.as_ptr() as usize, b.len()));
                this.slices.push(at.collect());
            }
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            Pin::new(this).poll_write(cx, &joined)
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn write(io: &mut Gathered<Recorder>, cx: &mut Context<'_>, header: &[u8], payload: &[u8]) {
        let bufs = [io::IoSlice::new(header), io::IoSlice::new(payload)];
        let n = Pin::new(io).poll_write_vectored(cx, &bufs);
        assert!(
            matches!(n, Poll::Ready(Ok(n)) if n == header.len() + payload.len()),
            "{n:?}"
        );
    }

    fn flush(io: &mut Gathered<Recorder>, cx: &mut Context<'_>) {
        assert!(matches!(Pin::new(io).poll_flush(cx), Poll::Ready(Ok(()))));
    }

    /// A stream of small messages: h2 writes each chunk they are packed into as one frame
    /// a little under the maximum size; those are gathered too, and a small frame is not.
    #[test]
    fn chunks_of_small_messages_are_gathered_and_small_frames_are_not() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Gathered::new(Recorder::default(), None);
        // 15 framed messages of 1 KiB: 15 * (5 + 1029) bytes.
        let chunk = vec![3; 15 * 1034];
        for _ in 0..4 {
            write(&mut io, &mut cx, &[0; 9], &chunk);
            flush(&mut io, &mut cx);
        }
        assert!(io.io.writes.is_empty(), "{:?}", io.io.writes);
        flush(&mut io, &mut cx);
        assert_eq!(io.io.writes, vec![4 * (9 + 15 * 1034)]);
        // A frame under LARGE_FRAME, with nothing gathered, goes straight through.
        write(&mut io, &mut cx, &[0; 9], &[4; LARGE_FRAME - 10]);
        assert_eq!(io.io.writes.len(), 2);
        assert_eq!(io.pending(), 0);
    }

    /// What h2 does for a large message: a full frame, a flush, ... then the end of the
    /// turn's flush, then (woken) a flush again.
    #[test]
    fn full_frames_are_written_together_at_the_end_of_the_turn() {
        let wakes = Arc::new(CountWakes::default());
        let waker = wakes.clone().into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Gathered::new(Recorder::default(), None);
        let mut expected = Vec::new();
        // Three full frames fit in the buffer.
        for i in 0..3u8 {
            let header = [i; 9];
            let payload = vec![i; 16 * 1024];
            write(&mut io, &mut cx, &header, &payload);
            flush(&mut io, &mut cx);
            expected.extend_from_slice(&header);
            expected.extend_from_slice(&payload);
        }
        assert!(io.io.writes.is_empty(), "{:?}", io.io.writes);
        assert!(wakes.0.load(Ordering::Relaxed) >= 1, "the task is woken");
        // The task's next poll: h2 has nothing more and flushes again.
        flush(&mut io, &mut cx);
        assert_eq!(io.io.writes, vec![3 * (9 + 16 * 1024)]);
        assert_eq!(io.io.bytes, expected);
        assert_eq!(io.pending(), 0);
        assert_eq!(
            io.buf.capacity(),
            0,
            "the buffer is given back after a burst"
        );
    }

    #[test]
    fn the_buffer_is_charged_to_the_quota_while_it_is_allocated() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let quota = Quota::new(usize::MAX, None);
        let mut io = Gathered::new(Recorder::default(), Some(quota.clone()));
        write(&mut io, &mut cx, &[1; 9], &[1; 16 * 1024]);
        assert!(quota.used() >= WRITE_GATHER, "{}", quota.used());
        flush(&mut io, &mut cx);
        flush(&mut io, &mut cx);
        assert_eq!(quota.used(), 0);
    }

    #[test]
    fn small_writes_go_straight_through_and_flush_at_once() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Gathered::new(Recorder::default(), None);
        write(&mut io, &mut cx, &[1; 9], &[2; 100]);
        assert_eq!(io.io.writes, vec![109]);
        flush(&mut io, &mut cx);
        assert_eq!(io.io.flushes, 1);
        assert_eq!(io.buf.capacity(), 0, "nothing was gathered");
    }

    #[test]
    fn a_small_write_after_gathered_frames_follows_them_in_order() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Gathered::new(Recorder::default(), None);
        write(&mut io, &mut cx, &[1; 9], &[1; 16 * 1024]);
        flush(&mut io, &mut cx);
        write(&mut io, &mut cx, &[2; 9], &[2; 5]);
        // Not a full frame: the flush after it writes at once.
        flush(&mut io, &mut cx);
        assert_eq!(io.io.writes, vec![9 + 16 * 1024 + 14]);
        let bytes = &io.io.bytes;
        assert_eq!(bytes[..9 + 16 * 1024], [1; 9 + 16 * 1024]);
        assert_eq!(bytes[9 + 16 * 1024..], [2; 14]);
    }

    #[test]
    fn at_most_the_limit_is_gathered_and_partial_writes_are_finished() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Gathered::new(
            Recorder {
                limit: Some(10_000),
                ..Recorder::default()
            },
            None,
        );
        let frame = 9 + 16 * 1024;
        let frames = WRITE_GATHER / frame + 1;
        for _ in 0..frames {
            write(&mut io, &mut cx, &[0; 9], &[7; 16 * 1024]);
            assert!(io.pending() <= WRITE_GATHER);
            flush(&mut io, &mut cx);
        }
        flush(&mut io, &mut cx);
        assert_eq!(io.pending(), 0);
        let recorder = io.io;
        assert_eq!(recorder.bytes.len(), frames * frame);
        assert!(recorder.writes.iter().all(|&n| n <= 10_000));
    }

    #[test]
    fn a_connection_may_gather_more_than_the_default() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let limit = 2 * WRITE_GATHER;
        let mut io = Gathered::new(Recorder::default(), None).with_limit(limit);
        let frame = 9 + 16 * 1024;
        // One frame more than the limit holds: all but it go out in one write.
        let frames = limit / frame + 1;
        for _ in 0..frames {
            write(&mut io, &mut cx, &[0; 9], &[7; 16 * 1024]);
            assert!(io.pending() <= limit);
            flush(&mut io, &mut cx);
        }
        flush(&mut io, &mut cx);
        let recorder = io.io;
        assert_eq!(
            recorder.writes,
            vec![(frames - 1) * frame, frame],
            "more than {WRITE_GATHER} bytes in one write"
        );
        assert_eq!(recorder.bytes.len(), frames * frame);
    }

    #[test]
    fn a_write_larger_than_the_limit_goes_straight_through() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Gathered::new(Recorder::default(), None);
        let big = vec![3; WRITE_GATHER + 1];
        write(&mut io, &mut cx, &[], &big);
        assert_eq!(io.io.writes, vec![WRITE_GATHER + 1]);
        assert_eq!(io.buf.capacity(), 0);
    }

    /// What h2 does with a large message: a frame at a time, the header from its own
    /// buffer, the payload borrowed from the message's [`Outgoing`](crate::call::outgoing::Outgoing).
    fn send_frames(
        io: &mut Gathered<Recorder>,
        cx: &mut Context<'_>,
        out: &mut crate::call::outgoing::Outgoing,
    ) {
        use bytes::Buf;
        while out.has_remaining() {
            let n = out.chunk().len().min(16 * 1024);
            write(io, cx, &[0; 9], &out.chunk()[..n]);
            out.advance(n);
            flush(io, cx);
        }
    }

    /// What [`send_frames`] writes of `message`.
    fn framed(message: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        for frame in message.chunks(16 * 1024) {
            wire.extend_from_slice(&[0; 9]);
            wire.extend_from_slice(frame);
        }
        wire
    }

    #[test]
    fn frames_of_lent_buffers_are_held_not_copied() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let quota = Quota::new(usize::MAX, None);
        let recorder = Recorder {
            vectored: true,
            ..Recorder::default()
        };
        let mut io = Gathered::new(recorder, Some(quota.clone()));
        let message = bytes::Bytes::from((0..48 * 1024).map(|i| i as u8).collect::<Vec<u8>>());
        let mut out = crate::call::outgoing::Outgoing::from(message.clone());
        out.lend(io.lent());
        assert_eq!(io.lent().listed(), 1);
        send_frames(&mut io, &mut cx, &mut out);
        // h2 let go of the message once it was all accepted, and it is no longer listed;
        // the writer still holds it, and has copied only the frames' headers.
        drop(out);
        assert_eq!(io.lent().listed(), 0);
        let mut message = message;
        assert!(!message.is_unique(), "held until written");
        assert!(io.io.writes.is_empty());
        let headers = 3 * 9;
        assert!(
            quota.used() >= 48 * 1024 && quota.used() < 48 * 1024 + headers + HOLD_MIN,
            "held slices, and a buffer for the headers: {}",
            quota.used()
        );
        flush(&mut io, &mut cx);
        assert_eq!(io.io.writes, vec![3 * (9 + 16 * 1024)]);
        // One write of six slices: three headers, and three slices of the message itself.
        let start = message.as_ptr() as usize;
        let slices = &io.io.slices[0];
        assert_eq!(slices.len(), 6, "{slices:?}");
        for (i, &(at, len)) in slices.iter().enumerate().skip(1).step_by(2) {
            assert_eq!((at, len), (start + i / 2 * 16 * 1024, 16 * 1024));
        }
        assert_eq!(io.io.bytes, framed(&message));
        assert!(message.is_unique(), "let go once written");
        message.clear();
        assert_eq!(quota.used(), 0);
    }

    #[test]
    fn a_stream_without_vectored_writes_gets_copies_in_one_buffer() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut io = Gathered::new(Recorder::default(), None);
        let message = bytes::Bytes::from(vec![9; 32 * 1024]);
        let mut out = crate::call::outgoing::Outgoing::from(message.clone());
        out.lend(io.lent());
        send_frames(&mut io, &mut cx, &mut out);
        drop(out);
        let mut message = message;
        assert!(message.is_unique(), "copied, not held");
        message.clear();
        flush(&mut io, &mut cx);
        assert_eq!(io.io.writes, vec![2 * (9 + 16 * 1024)]);
    }

    #[test]
    fn partial_writes_of_held_slices_resume_where_they_stopped() {
        let waker = Arc::new(CountWakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let recorder = Recorder {
            vectored: true,
            limit: Some(7_000),
            ..Recorder::default()
        };
        let mut io = Gathered::new(recorder, None);
        let message = bytes::Bytes::from((0..40_000).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let mut out = crate::call::outgoing::Outgoing::from(message.clone());
        out.lend(io.lent());
        send_frames(&mut io, &mut cx, &mut out);
        drop(out);
        flush(&mut io, &mut cx);
        assert_eq!(io.pending(), 0);
        assert_eq!(io.io.bytes, framed(&message));
        assert!(io.io.writes.iter().all(|&n| n <= 7_000));
    }
}
