//! The buffers outbound messages are framed into: a call's [`ChunkPool`], recycled once
//! h2 has written them, and [`queue_message`], which appends a message to the last chunk
//! when it fits.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::events::{Outbound, call_ended};
use super::outgoing::Outgoing;
use crate::codec::{self, CompressionEncoding, Framed};
use crate::cq::Producer;
use crate::limits;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::role;
use crate::status::Status;
use crate::sync::{Mutex, MutexGuard};

/// The buffers of a call's outbound chunks, handed back by the poller once h2 has written
/// them, so that a stream of messages reuses a few buffers instead of allocating (and
/// freeing on another thread) one per chunk. Kept buffers are charged to the call's
/// connection quota; under pressure (no room in it) a returned buffer is freed instead.
#[derive(Clone, Default)]
pub(crate) struct ChunkPool(Arc<PoolInner>);

#[derive(Default)]
struct PoolInner {
    /// What kept buffers and chunks in flight are charged to.
    quota: Option<Arc<Quota>>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    buffers: Vec<BytesMut>,
    /// Their capacity in all, charged to the quota.
    bytes: usize,
    /// Spliced fields sent while the poller held the last reference to them, dropped on
    /// the sender's side: at its next message, or with the pool.
    released: Vec<Bytes>,
}

impl ChunkPool {
    /// A pool whose kept buffers are charged to `quota`.
    pub(crate) fn new(quota: Option<Arc<Quota>>) -> ChunkPool {
        ChunkPool(Arc::new(PoolInner {
            quota,
            kept: Mutex::new(Kept::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.0.kept.lock()
    }

    fn quota(&self) -> Option<&Quota> {
        self.0.quota.as_deref()
    }

    /// Hands back spliced fields h2 is done with. They are the sender's values, whose drop
    /// may run its code: on a poller they are kept for the sender's side to drop.
    pub(crate) fn release(&self, fields: Vec<Bytes>) {
        if fields.is_empty() || !role::on_poller() {
            return;
        }
        self.lock().released.extend(fields);
    }

    /// An empty buffer with room for at least `len` bytes. Called on the sender's side,
    /// which drops the fields released since its last message here.
    fn take(&self, len: usize) -> BytesMut {
        let mut released = Vec::new();
        let reused = {
            let mut kept = self.lock();
            std::mem::swap(&mut released, &mut kept.released);
            match kept.buffers.last() {
                Some(buf) if buf.capacity() >= len => {
                    let buf = kept.buffers.pop();
                    let capacity = buf.as_ref().map_or(0, BytesMut::capacity);
                    kept.bytes -= capacity;
                    if let Some(quota) = self.quota() {
                        quota.release(capacity);
                    }
                    buf
                }
                _ => None,
            }
        };
        drop(released);
        reused.unwrap_or_else(|| BytesMut::with_capacity(len.max(limits::CHUNK)))
    }

    fn give(&self, buf: BytesMut) {
        // Too small to be taken again (the bytes copied around a spliced field), or too
        // large to keep.
        if !(limits::CHUNK..=limits::MAX_RECYCLED_CHUNK).contains(&buf.capacity()) {
            return;
        }
        let room = self.quota().is_none_or(Quota::has_room);
        let mut kept = self.lock();
        if kept.buffers.len() < limits::MAX_RECYCLED_CHUNKS && room {
            kept.bytes += buf.capacity();
            if let Some(quota) = self.quota() {
                quota.charge(buf.capacity());
            }
            kept.buffers.push(buf);
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let kept = self.kept.get_mut();
        if let Some(quota) = &self.quota {
            quota.release(kept.bytes);
        }
        if !kept.released.is_empty() {
            role::drop_off_poller(std::mem::take(&mut kept.released));
        }
    }
}

/// Poller side of a [`ChunkPool`]: chunks handed to h2, charged to the connection quota
/// until h2 has let go of them, then returned to the pool.
#[derive(Default)]
pub(crate) struct Spent {
    /// Chunks in flight, with what each is charged.
    chunks: VecDeque<(Bytes, usize)>,
    /// What they are charged in all.
    charged: usize,
    pool: ChunkPool,
}

impl Spent {
    pub(crate) fn new(pool: ChunkPool) -> Spent {
        Spent {
            chunks: VecDeque::new(),
            charged: 0,
            pool,
        }
    }

    /// Takes a queued chunk for sending, keeping a handle to release and recycle it once
    /// h2 is done with it (its spliced fields included: the [`Outgoing`] holds the
    /// chunk's buffer until all of it is sent).
    pub(crate) fn send(&mut self, chunk: Framed) -> Outgoing {
        self.reclaim();
        let held = chunk.weight();
        let (buf, splices) = chunk.into_parts();
        let bytes = buf.freeze();
        self.chunks.push_back((bytes.clone(), held));
        self.charged += held;
        if let Some(quota) = self.pool.quota() {
            quota.charge(held);
        }
        Outgoing::spliced(bytes, splices, &self.pool)
    }

    /// Releases the chunks h2 is done with, recycling the small ones.
    pub(crate) fn reclaim(&mut self) {
        let mut released = 0;
        while self.chunks.front().is_some_and(|(b, _)| b.is_unique()) {
            let Some((bytes, held)) = self.chunks.pop_front() else {
                break;
            };
            released += held;
            if bytes.len() <= limits::MAX_RECYCLED_CHUNK {
                if let Ok(mut buf) = bytes.try_into_mut() {
                    buf.clear();
                    self.pool.give(buf);
                }
            }
        }
        self.charged -= released;
        if let Some(quota) = self.pool.quota() {
            quota.release(released);
        }
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        if let Some(quota) = self.pool.quota() {
            quota.release(self.charged);
        }
    }
}

/// Encodes `message` straight into the chunk of messages last queued on `ops` when it has
/// room, or into a new chunk: messages sent one by one still reach h2 as a few large
/// buffers, without a buffer or a copy per message. A message of
/// [`SPLICE_MIN`](codec::SPLICE_MIN) bytes or more gets a chunk of its own, its long
/// `Bytes` fields spliced in, not copied.
///
/// The caller has checked that the queue has room.
///
/// # Errors
///
/// `RESOURCE_EXHAUSTED` for a message over `max_send`; `CANCELLED` when the call ended.
pub(crate) fn queue_message<M: Message>(
    ops: &Producer<Outbound>,
    pool: &ChunkPool,
    message: &M,
    max_send: usize,
    compression: Option<CompressionEncoding>,
    metrics: Option<&Metrics>,
) -> Result<(), Status> {
    if compression.is_some() {
        // Compressed: a chunk of its own, compressed before the queue is locked.
        let framed = codec::encode_framed(message, max_send, compression)?;
        let len = framed.len();
        ops.push(Outbound::Message(framed))
            .map_err(|_| call_ended())?;
        if let Some(metrics) = metrics {
            metrics.sent(len);
        }
        return Ok(());
    }
    let len = codec::checked_len(message, max_send)?;
    let framed_len = codec::PREFIX_LEN + len;
    if let Some(metrics) = metrics {
        metrics.sent(framed_len);
    }
    if framed_len >= codec::SPLICE_MIN {
        // Encoded before the queue is locked. A buffer that only held what was copied
        // around spliced fields goes back to the pool at once.
        let (chunk, spare) = codec::write_spliced(message, len, pool.take(framed_len));
        if let Some(spare) = spare {
            pool.give(spare);
        }
        return ops.push(Outbound::Message(chunk)).map_err(|_| call_ended());
    }
    ops.push_or_append(|last| {
        if let Some(Outbound::Message(chunk)) = last {
            let buf = &mut chunk.buf;
            if chunk.splices.is_empty() && buf.capacity() - buf.len() >= framed_len {
                codec::write_framed(message, len, buf);
                return None;
            }
        }
        let mut chunk = pool.take(framed_len);
        codec::write_framed(message, len, &mut chunk);
        Some(Outbound::Message(Framed::from(chunk)))
    })
    .map_err(|_| call_ended())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cq::queue;
    use crate::status::Code;

    fn framed(text: &str) -> Vec<u8> {
        let body = text.to_owned().encode_to_vec();
        let mut v = vec![0];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(&body);
        v
    }

    fn chunks(rx: &mut crate::cq::Consumer<Outbound>) -> Vec<Framed> {
        std::iter::from_fn(|| rx.try_pop())
            .map(|op| match op {
                Outbound::Message(chunk) => chunk,
                other => panic!("not a message: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn messages_sent_one_by_one_share_a_chunk() {
        let (tx, mut rx) = queue(1 << 20);
        let pool = ChunkPool::default();
        for text in ["a", "bb", "ccc"] {
            queue_message(&tx, &pool, &text.to_owned(), usize::MAX, None, None).unwrap();
        }
        let chunks = chunks(&mut rx);
        assert_eq!(chunks.len(), 1, "one chunk for three small messages");
        let expected: Vec<u8> = ["a", "bb", "ccc"].iter().flat_map(|t| framed(t)).collect();
        assert_eq!(&chunks[0].buf[..], &expected[..]);
        assert!(chunks[0].buf.capacity() >= limits::CHUNK);
    }

    #[test]
    fn a_message_that_does_not_fit_starts_a_chunk_and_a_large_one_gets_its_own() {
        let (tx, mut rx) = queue(1 << 20);
        let pool = ChunkPool::default();
        let small = "x".repeat(limits::CHUNK - 100);
        let large = "y".repeat(3 * limits::CHUNK);
        for text in [&small, &small, &large] {
            queue_message(&tx, &pool, text, usize::MAX, None, None).unwrap();
        }
        let chunks = chunks(&mut rx);
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(
            lens,
            [
                framed(&small).len(),
                framed(&small).len(),
                framed(&large).len()
            ]
        );
    }

    #[test]
    fn a_message_over_the_send_limit_is_refused_before_it_is_queued() {
        let (tx, mut rx) = queue(1 << 20);
        let pool = ChunkPool::default();
        let status = queue_message(&tx, &pool, &"z".repeat(100), 50, None, None).unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(rx.try_pop().is_none());
    }

    #[test]
    fn a_sender_of_an_ended_call_is_told_so() {
        let (tx, rx) = queue::<Outbound>(1 << 20);
        drop(rx);
        let status = queue_message(
            &tx,
            &ChunkPool::default(),
            &"late".to_owned(),
            usize::MAX,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(status.code(), Code::Cancelled);
    }

    #[test]
    fn written_chunks_come_back_for_reuse_charged_to_the_quota() {
        let quota = Quota::new(1 << 20, None);
        let pool = ChunkPool::new(Some(quota.clone()));
        let mut spent = Spent::new(pool.clone());
        let chunk = pool.take(100);
        let capacity = chunk.capacity();
        let sent = spent.send(Framed::from(chunk));
        // Held by h2: charged, not yet reusable.
        assert_eq!(quota.used(), capacity);
        drop(sent);
        spent.reclaim();
        // Back in the pool, still charged while kept there.
        assert_eq!(quota.used(), capacity);
        let again = pool.take(100);
        assert_eq!(again.capacity(), capacity, "the same buffer again");
        assert_eq!(
            quota.used(),
            0,
            "a buffer taken out is no longer the pool's"
        );
        drop(again);
        // No more than MAX_RECYCLED_CHUNKS are kept; what the pool keeps goes back to the
        // quota with it.
        for _ in 0..limits::MAX_RECYCLED_CHUNKS + 3 {
            pool.give(BytesMut::with_capacity(limits::CHUNK));
        }
        assert_eq!(quota.used(), limits::MAX_RECYCLED_CHUNKS * limits::CHUNK);
        drop(spent);
        drop(pool);
        assert_eq!(quota.used(), 0);
    }

    #[test]
    fn a_spliced_field_is_charged_until_all_of_its_message_is_sent() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Shared {
            #[prost(bytes = "bytes", tag = "1")]
            payload: Bytes,
        }
        let payload = Bytes::from(vec![3u8; 4 * codec::SPLICE_MIN]);
        let message = Shared {
            payload: payload.clone(),
        };
        let (tx, mut rx) = queue(1 << 20);
        let quota = Quota::new(1 << 20, None);
        let pool = ChunkPool::new(Some(quota.clone()));
        let mut spent = Spent::new(pool.clone());
        // A small message first: the large one does not join its chunk.
        queue_message(&tx, &pool, &"a".to_owned(), usize::MAX, None, None).unwrap();
        queue_message(&tx, &pool, &message, usize::MAX, None, None).unwrap();
        let mut chunks = chunks(&mut rx);
        assert_eq!(chunks.len(), 2);
        let framed = chunks.pop().unwrap();
        assert_eq!(framed.splices.len(), 1);
        // Only what was copied around the field is in the chunk's buffer; the buffer
        // reserved for the whole message went back to the pool, unused.
        let capacity = framed.buf.capacity();
        assert!(capacity < 64, "{capacity}");
        let kept = quota.used();
        assert!(kept > payload.len(), "{kept}");
        let weight = framed.weight();
        assert_eq!(weight, capacity + payload.len());
        let mut out = spent.send(framed);
        assert_eq!(quota.used(), kept + weight);
        // h2 writes the encoding's own bytes, then part of the field.
        let head = out.chunk().len();
        out.advance(head + 10);
        spent.reclaim();
        assert_eq!(
            quota.used(),
            kept + weight,
            "still charged while a part is unsent"
        );
        let mut wire = Vec::new();
        while out.has_remaining() {
            let chunk = out.chunk().to_vec();
            out.advance(chunk.len());
            wire.extend_from_slice(&chunk);
        }
        assert_eq!(&wire[..], &payload[10..]);
        spent.reclaim();
        assert_eq!(
            quota.used(),
            kept,
            "once all is sent only the buffer kept for reuse is charged"
        );
        // The next large message takes the kept buffer (and gives it back) instead of
        // allocating one.
        queue_message(&tx, &pool, &message, usize::MAX, None, None).unwrap();
        assert_eq!(quota.used(), kept);
    }

    use bytes::Buf;

    /// A `Bytes` whose last drop reports the thread it ran on.
    fn noisy_field(len: usize) -> (Bytes, std::sync::mpsc::Receiver<String>) {
        struct Noisy(Vec<u8>, std::sync::mpsc::Sender<String>);
        impl AsRef<[u8]> for Noisy {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl Drop for Noisy {
            fn drop(&mut self) {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                let _ = self.1.send(name);
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        (Bytes::from_owner(Noisy(vec![5; len], tx)), rx)
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Field {
        #[prost(bytes = "bytes", tag = "1")]
        payload: Bytes,
    }

    /// Runs `f` on a thread marked as a poller.
    fn on_poller<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("pretend-poller".into())
                .spawn_scoped(s, || {
                    role::set(role::Role::Poller);
                    f()
                })
                .unwrap()
                .join()
                .unwrap()
        })
    }

    #[test]
    fn a_spliced_field_sent_by_a_poller_is_dropped_on_the_senders_side() {
        let (tx, mut rx) = queue(1 << 20);
        let pool = ChunkPool::default();
        let mut spent = Spent::new(pool.clone());
        let (payload, dropped) = noisy_field(2 * codec::SPLICE_MIN);
        let message = Field { payload };
        queue_message(&tx, &pool, &message, usize::MAX, None, None).unwrap();
        drop(message);
        let framed = chunks(&mut rx).pop().unwrap();
        // The poller sends all of it and lets go: the last reference was its own.
        on_poller(|| {
            let mut out = spent.send(framed);
            out.advance(out.remaining());
            drop(out);
            spent.reclaim();
        });
        assert!(dropped.try_recv().is_err(), "not dropped on the poller");
        // The sender's next message drops it, on the sender's thread.
        queue_message(&tx, &pool, &"next".to_owned(), usize::MAX, None, None).unwrap();
        assert_eq!(
            dropped.try_recv().unwrap(),
            std::thread::current().name().unwrap_or("")
        );
    }

    /// The connection's writer may hold a spliced field after h2 let go of it (see
    /// [`Lent`](crate::transport::lent::Lent)); the field still goes back to the sender's
    /// side, and stays charged until written.
    #[test]
    fn a_spliced_field_held_by_the_writer_is_dropped_on_the_senders_side() {
        use crate::transport::gather::Gathered;
        use std::pin::Pin;
        use std::task::{Context, Poll, Waker};
        use tokio::io::AsyncWrite;

        let (tx, mut rx) = queue(1 << 20);
        let quota = Quota::new(usize::MAX, None);
        let pool = ChunkPool::new(Some(quota.clone()));
        let (payload, dropped) = noisy_field(2 * codec::SPLICE_MIN);
        let message = Field { payload };
        queue_message(&tx, &pool, &message, usize::MAX, None, None).unwrap();
        let expected = {
            let mut wire = vec![0, 0, 0, 0, message.encoded_len() as u8];
            wire[3] = (message.encoded_len() >> 8) as u8;
            message.encode(&mut wire).unwrap();
            wire
        };
        drop(message);
        let framed = chunks(&mut rx).pop().unwrap();
        let wire = on_poller(|| {
            let mut io = Gathered::new(Vec::new(), None);
            let mut spent = Spent::new(pool.clone());
            let mut cx = Context::from_waker(Waker::noop());
            // As h2 does: the whole message as one large frame (no header, to compare
            // the bytes), a flush, and the frame let go of.
            let mut out = spent.send(framed);
            out.lend(io.lent());
            let mut slices = [std::io::IoSlice::new(&[]); 8];
            let n = out.chunks_vectored(&mut slices);
            let total = out.remaining();
            let written = Pin::new(&mut io).poll_write_vectored(&mut cx, &slices[..n]);
            assert!(matches!(written, Poll::Ready(Ok(k)) if k == total));
            out.advance(total);
            drop(out);
            assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
            spent.reclaim();
            let held = quota.used();
            // The end of the turn: written, and let go of on the poller.
            assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
            spent.reclaim();
            // What is left charged is the chunk's buffer, kept for reuse.
            assert!(
                held >= quota.used() + 2 * codec::SPLICE_MIN,
                "the field stays charged while held: {held}, then {}",
                quota.used()
            );
            drop(spent);
            io.into_inner()
        });
        assert_eq!(wire, expected);
        assert!(dropped.try_recv().is_err(), "not dropped on the poller");
        queue_message(&tx, &pool, &"next".to_owned(), usize::MAX, None, None).unwrap();
        assert_eq!(
            dropped.try_recv().unwrap(),
            std::thread::current().name().unwrap_or("")
        );
    }

    #[test]
    fn spliced_fields_left_when_a_call_ends_on_a_poller_go_to_the_reaper() {
        role::start_reaper().unwrap();
        // Sent, then the call ended with the poller holding the pool's last reference.
        let (tx, mut rx) = queue(1 << 20);
        let pool = ChunkPool::default();
        let (payload, sent) = noisy_field(2 * codec::SPLICE_MIN);
        queue_message(&tx, &pool, &Field { payload }, usize::MAX, None, None).unwrap();
        let framed = chunks(&mut rx).pop().unwrap();
        let mut spent = Spent::new(pool);
        on_poller(move || {
            let mut out = spent.send(framed);
            out.advance(out.remaining());
            drop(out);
            drop(spent);
        });
        // Queued, never sent, and dropped with the queue on the poller.
        let (payload, unsent) = noisy_field(2 * codec::SPLICE_MIN);
        let (tx2, rx2) = queue(1 << 20);
        queue_message(
            &tx2,
            &ChunkPool::default(),
            &Field { payload },
            usize::MAX,
            None,
            None,
        )
        .unwrap();
        on_poller(move || drop(rx2));
        let wait = std::time::Duration::from_secs(10);
        assert_eq!(sent.recv_timeout(wait).unwrap(), "rsgrpc-reaper");
        assert_eq!(unsent.recv_timeout(wait).unwrap(), "rsgrpc-reaper");
        drop(tx);
    }

    #[test]
    fn under_memory_pressure_written_chunks_are_freed() {
        let quota = Quota::new(limits::CHUNK, None);
        quota.charge(limits::CHUNK);
        let pool = ChunkPool::new(Some(quota.clone()));
        pool.give(BytesMut::with_capacity(limits::CHUNK));
        assert_eq!(quota.used(), limits::CHUNK, "nothing kept on a full quota");
        quota.release(limits::CHUNK);
    }
}
