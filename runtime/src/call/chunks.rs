//! The buffers outbound messages are framed into: a call's [`ChunkPool`], recycled once
//! h2 has written them, and [`queue_message`], which appends a message to the last chunk
//! when it fits.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::events::{Outbound, call_ended};
use crate::codec::{self, CompressionEncoding};
use crate::cq::Producer;
use crate::limits;
use crate::metrics::Metrics;
use crate::quota::Quota;
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

    /// An empty buffer with room for at least `len` bytes.
    fn take(&self, len: usize) -> BytesMut {
        let reused = {
            let mut kept = self.lock();
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
        reused.unwrap_or_else(|| BytesMut::with_capacity(len.max(limits::CHUNK)))
    }

    fn give(&self, buf: BytesMut) {
        if buf.capacity() > limits::MAX_RECYCLED_CHUNK {
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
    /// h2 is done with it.
    pub(crate) fn send(&mut self, chunk: BytesMut) -> Bytes {
        self.reclaim();
        let held = chunk.capacity();
        let bytes = chunk.freeze();
        self.chunks.push_back((bytes.clone(), held));
        self.charged += held;
        if let Some(quota) = self.pool.quota() {
            quota.charge(held);
        }
        bytes
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
/// buffers, without a buffer or a copy per message.
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
        let framed = codec::encode_mut(message, max_send, compression)?;
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
    ops.push_or_append(|last| {
        if let Some(Outbound::Message(chunk)) = last {
            if chunk.capacity() - chunk.len() >= framed_len {
                codec::write_framed(message, len, chunk);
                return None;
            }
        }
        let mut chunk = pool.take(framed_len);
        codec::write_framed(message, len, &mut chunk);
        Some(Outbound::Message(chunk))
    })
    .map_err(|_| call_ended())
}
