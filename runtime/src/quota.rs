//! Memory quotas: one budget per server and one per connection under it, which every
//! buffer a peer can make us fill draws from (C-core's `ResourceQuota` is the model).
//!
//! ```text
//!   server quota ──┬── connection quota ──┬── a call's queued requests and responses
//!                  │                      ├── a request being collected or decoded
//!                  │                      └── response chunks not yet written, recycled buffers
//!                  └── connection quota ── ...
//! ```
//!
//! A charge counts at every level up to the root: a connection's quota reserves from the
//! server's in blocks of 64 KiB, so that the calls of one connection, which charge and
//! release all the time, touch only their connection's counter, and the server's counts
//! each connection's use rounded up (by at most two blocks). Charges always succeed (what
//! a peer already sent within its flow-control window has to be held somewhere); a quota
//! governs what happens *next*: while a quota or one above it is used up, the connection
//! refuses new streams, holds back flow-control credit, and handlers that send wait for
//! room. Waiters are woken when a release brings the quota back under its limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use crate::limits::QUOTA_BLOCK;
use crate::sync::Mutex;

/// A memory budget, possibly under a parent's.
#[derive(Debug)]
pub(crate) struct Quota {
    limit: usize,
    used: AtomicUsize,
    parent: Option<Arc<Quota>>,
    /// What this level has charged to its parent: `used` rounded up to whole blocks, with
    /// up to two blocks to spare.
    reserved: AtomicUsize,
    /// Whether `waiters` may hold wakers (read without the lock on every release).
    waiting: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl Quota {
    /// A quota of `limit` bytes under `parent`.
    pub(crate) fn new(limit: usize, parent: Option<Arc<Quota>>) -> Arc<Quota> {
        Arc::new(Quota {
            limit,
            used: AtomicUsize::new(0),
            parent,
            reserved: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        })
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// The limit of this level.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether this level (not counting those above) is used up.
    pub(crate) fn is_full(&self) -> bool {
        self.used() >= self.limit
    }

    /// Counts `bytes` at this level and every level above.
    #[inline]
    pub(crate) fn charge(&self, bytes: usize) {
        if bytes != 0 {
            self.charge_some(bytes);
        }
    }

    fn charge_some(&self, bytes: usize) {
        let used = self.used.fetch_add(bytes, Ordering::SeqCst) + bytes;
        let Some(parent) = &self.parent else {
            return;
        };
        let mut reserved = self.reserved.load(Ordering::Acquire);
        while used > reserved {
            let want = used.div_ceil(QUOTA_BLOCK).saturating_mul(QUOTA_BLOCK);
            match self.reserved.compare_exchange(
                reserved,
                want,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    parent.charge(want - reserved);
                    return;
                }
                Err(actual) => reserved = actual,
            }
        }
    }

    /// Gives back `bytes` charged before, waking those waiting for room where a level
    /// comes back under its limit.
    #[inline]
    pub(crate) fn release(&self, bytes: usize) {
        if bytes != 0 {
            self.release_some(bytes);
        }
    }

    fn release_some(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::SeqCst);
        debug_assert!(before >= bytes, "a quota released more than was charged");
        let used = before.wrapping_sub(bytes);
        if used < self.limit && self.waiting.load(Ordering::SeqCst) {
            self.wake_all();
        }
        let Some(parent) = &self.parent else {
            return;
        };
        // Whole blocks go back once more than two are spare.
        let mut reserved = self.reserved.load(Ordering::Acquire);
        while reserved > used.saturating_add(2 * QUOTA_BLOCK) {
            let keep = used.saturating_add(QUOTA_BLOCK).div_ceil(QUOTA_BLOCK) * QUOTA_BLOCK;
            match self.reserved.compare_exchange(
                reserved,
                keep,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    parent.release(reserved - keep);
                    return;
                }
                Err(actual) => reserved = actual,
            }
        }
    }

    fn wake_all(&self) {
        let waiters = {
            let mut waiters = self.waiters.lock();
            self.waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut *waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// Whether this level and every level above are under their limits.
    pub(crate) fn has_room(&self) -> bool {
        let mut level = Some(self);
        while let Some(quota) = level {
            if quota.used.load(Ordering::SeqCst) >= quota.limit {
                return false;
            }
            level = quota.parent.as_deref();
        }
        true
    }

    /// Ready when every level has room; otherwise the task is woken when the first full
    /// level gets some back.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut level = Some(self);
        while let Some(quota) = level {
            if quota.used.load(Ordering::SeqCst) >= quota.limit && quota.register(cx).is_pending() {
                return Poll::Pending;
            }
            level = quota.parent.as_deref();
        }
        Poll::Ready(())
    }

    /// Leaves the task's waker, then looks again (a release between the first look and
    /// the registration would otherwise go unseen).
    fn register(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut waiters = self.waiters.lock();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        self.waiting.store(true, Ordering::SeqCst);
        drop(waiters);
        if self.used.load(Ordering::SeqCst) < self.limit {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        // What is reserved from the parent goes back with this level.
        if let Some(parent) = &self.parent {
            parent.release(*self.reserved.get_mut());
        }
    }
}

/// Bytes charged to a quota while this lives; released when it is dropped.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    quota: Option<Arc<Quota>>,
    bytes: usize,
}

impl Charge {
    /// Nothing charged yet, against `quota` (none: nothing is counted).
    pub(crate) fn new(quota: Option<Arc<Quota>>) -> Charge {
        Charge { quota, bytes: 0 }
    }

    /// Charges or releases the difference so that `bytes` are charged.
    pub(crate) fn set(&mut self, bytes: usize) {
        if let Some(quota) = &self.quota {
            if bytes > self.bytes {
                quota.charge(bytes - self.bytes);
            } else {
                quota.release(self.bytes - bytes);
            }
        }
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn charges_count_at_every_level_in_blocks() {
        let server = Quota::new(5 * QUOTA_BLOCK, None);
        let a = Quota::new(3 * QUOTA_BLOCK, Some(server.clone()));
        let b = Quota::new(3 * QUOTA_BLOCK, Some(server.clone()));
        a.charge(QUOTA_BLOCK + 10);
        b.charge(100);
        // The server sees whole blocks: two for a, one for b.
        assert_eq!(
            (a.used(), b.used(), server.used()),
            (QUOTA_BLOCK + 10, 100, 3 * QUOTA_BLOCK)
        );
        assert!(a.has_room() && b.has_room() && server.has_room());
        // Small charges within a block leave the server's counter alone.
        b.charge(200);
        assert_eq!(server.used(), 3 * QUOTA_BLOCK);
        a.charge(2 * QUOTA_BLOCK);
        assert!(!a.has_room(), "a is at its limit");
        assert!(!b.has_room(), "the server is at its limit");
        // Releasing keeps up to two spare blocks reserved, then gives back the rest.
        a.release(3 * QUOTA_BLOCK + 10);
        assert_eq!(a.used(), 0);
        assert!(
            server.used() <= 2 * QUOTA_BLOCK + QUOTA_BLOCK,
            "{}",
            server.used()
        );
        drop(a);
        b.release(300);
        drop(b);
        assert_eq!(
            server.used(),
            0,
            "dropped levels give back what they reserved"
        );
    }

    #[test]
    fn a_waiter_is_woken_when_room_comes_back() {
        let conn = Quota::new(10, None);
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(conn.poll_room(&mut cx).is_ready());
        conn.charge(15);
        assert!(conn.poll_room(&mut cx).is_pending());
        assert!(conn.poll_room(&mut cx).is_pending(), "registering twice");
        conn.release(4);
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "still over the limit");
        conn.release(2);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken once");
        assert!(conn.poll_room(&mut cx).is_ready());
        conn.release(9);
        // A waiter on the level above is woken when blocks come back to it (a level keeps
        // a block to spare).
        let server = Quota::new(2 * QUOTA_BLOCK, None);
        let conn = Quota::new(100 * QUOTA_BLOCK, Some(server.clone()));
        conn.charge(4 * QUOTA_BLOCK);
        assert!(conn.poll_room(&mut cx).is_pending());
        conn.release(4 * QUOTA_BLOCK);
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            2,
            "woken by the server's level"
        );
        assert!(conn.poll_room(&mut cx).is_ready());
    }

    #[test]
    fn a_charge_follows_what_it_holds() {
        let quota = Quota::new(1000, None);
        let mut charge = Charge::new(Some(quota.clone()));
        charge.set(300);
        charge.set(100);
        assert_eq!(quota.used(), 100);
        drop(charge);
        assert_eq!(quota.used(), 0);
        let mut free = Charge::new(None);
        free.set(5);
        assert_eq!(free.bytes, 5);
    }

    /// Room freed by one thread always wakes a task another thread registered, whatever
    /// the interleaving (a lost wake-up would leave the waiter asleep forever).
    #[test]
    fn no_wake_up_is_lost_between_threads() {
        for _ in 0..200 {
            let quota = Quota::new(1, None);
            quota.charge(1);
            let counter = Arc::new(Counter(AtomicUsize::new(0)));
            let waker = Waker::from(counter.clone());
            let releaser = {
                let quota = quota.clone();
                std::thread::spawn(move || quota.release(1))
            };
            let mut cx = Context::from_waker(&waker);
            let ready = quota.poll_room(&mut cx).is_ready();
            releaser.join().unwrap();
            assert!(ready || counter.0.load(Ordering::SeqCst) == 1);
        }
    }
}
