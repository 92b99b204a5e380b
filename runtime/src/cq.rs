//! Completion queues: the only hand-off between the poller threads and user code.
//!
//! Every call owns two queues. The *inbound* queue carries what the poller received
//! (headers, messages, trailers, errors) to the code waiting for it; the *outbound* queue
//! carries what user code wants sent (messages, half-close, cancellation, a final status)
//! to the poller. Either end of a queue may be a blocked thread or an async task:
//!
//! ```text
//!   producer ──push / push_all──▶ [ VecDeque ] ──pop (takes the whole batch)──▶ consumer
//!                                     │
//!           wakes once per push_all:  ├─ a parked thread (Condvar)
//!                                     └─ a registered task (Waker)
//! ```
//!
//! The algorithm is a mutex-protected deque with one consumer. A consumer that finds the
//! queue empty either parks on a condition variable (blocking flavour) or leaves its
//! [`Waker`] (async flavour); the producer wakes whichever is there, outside the lock.
//! The consumer takes every queued item in one lock acquisition, so the poller can hand
//! over a batch of completions with a single wake-up.
//!
//! Capacity is a soft bound on what the queued items weigh, used for flow control:
//! [`Producer::poll_ready`] and [`Producer::wait_ready`] wait while the queued items weigh
//! `capacity` or more, or while the queue's memory [`Quota`] (if it has one) is used up.
//! Items the consumer took in a batch weigh until it has returned them, so the queue and
//! the consumer's batch together hold at most about `capacity`; a producer that waited is
//! woken once they weigh a quarter of it or less, so that it refills in batches, not an item
//! at a time.
//! An item weighs what it costs in memory ([`Weigh`]): a queued empty message costs its
//! entry, not nothing. A push always succeeds while the consumer is alive, so control
//! events (trailers, cancellation) are never held back behind data, and one message
//! larger than the capacity still goes through.
//!
//! Items are charged to the quota when pushed and released as the consumer returns them
//! (in batches of a quarter of the capacity, and all of them when its batch is empty), or
//! when it drops them, so a quota counts what is really held, including what a consumer
//! took in a batch and has not read yet.

use std::collections::VecDeque;
// Under `--cfg shuttle` these are shuttle's models, which explore the interleavings of
// the producer and consumer (CHECKS.md).
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::quota::Quota;
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, thread};

/// The other end of the queue is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closed;

/// What an item costs in memory while it is queued, its queue entry included.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for () {
    fn weight(&self) -> usize {
        0
    }
}

/// Creates a queue whose producer waits for room once the queued items weigh `capacity`.
pub(crate) fn queue<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    queue_with_quota(capacity, None)
}

/// As [`queue`], charging what is queued to `quota` and waiting for room in it too.
pub(crate) fn queue_with_quota<T>(
    capacity: usize,
    quota: Option<Arc<Quota>>,
) -> (Producer<T>, Consumer<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            weight: 0,
            capacity: capacity.max(1),
            producer_closed: false,
            consumer_closed: false,
            consumer_waker: None,
            producer_waker: None,
            consumer_parked: false,
            producer_waiting: false,
        }),
        consumer_cv: Condvar::new(),
        quota,
    });
    (
        Producer {
            shared: shared.clone(),
        },
        Consumer {
            shared,
            local: VecDeque::new(),
            returned: 0,
            return_batch: (capacity / 4).max(1),
        },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    consumer_cv: Condvar,
    /// What queued items are charged to, until the consumer takes them out.
    quota: Option<Arc<Quota>>,
}

struct State<T> {
    /// Items and their weights.
    items: VecDeque<(T, usize)>,
    /// What the queued items weigh.
    weight: usize,
    capacity: usize,
    producer_closed: bool,
    consumer_closed: bool,
    consumer_waker: Option<Waker>,
    producer_waker: Option<Waker>,
    consumer_parked: bool,
    /// The producer asked for room since it was last woken for it: it may be waiting,
    /// having seen none or having used up what it was told of (the room it saw may have
    /// grown since, as the consumer returned items).
    producer_waiting: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the deque consistent (every critical
        // section is a few plain field updates), so a poisoned lock is still usable.
        self.state.lock()
    }

    /// The consumer's wake-up, to deliver once the lock is released.
    fn wake_consumer(&self, state: &mut State<T>) -> Wakeup<'_> {
        Wakeup {
            cv: state.consumer_parked.then_some(&self.consumer_cv),
            waker: state.consumer_waker.take(),
        }
    }

    /// The producer's wake-up, to deliver once the lock is released.
    fn wake_producer(&self, state: &mut State<T>) -> Wakeup<'_> {
        Wakeup {
            cv: None,
            waker: state.producer_waker.take(),
        }
    }

    fn charge(&self, weight: usize) {
        if let Some(quota) = &self.quota {
            quota.charge(weight);
        }
    }

    fn release(&self, weight: usize) {
        if let Some(quota) = &self.quota {
            quota.release(weight);
        }
    }
}

/// A wake-up decided under the lock and delivered after it is released, so the woken side
/// does not at once block on the lock it was woken for.
#[must_use = "a wake-up must be delivered"]
struct Wakeup<'a> {
    cv: Option<&'a Condvar>,
    waker: Option<Waker>,
}

impl Wakeup<'_> {
    fn none() -> Self {
        Wakeup {
            cv: None,
            waker: None,
        }
    }

    fn deliver(self) {
        if let Some(cv) = self.cv {
            cv.notify_one();
        }
        if let Some(waker) = self.waker {
            waker.wake();
        }
    }
}

/// Wakes a thread parked in [`Producer::wait_ready`].
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The sending end of a completion queue.
pub(crate) struct Producer<T> {
    shared: Arc<Shared<T>>,
}

impl<T: Weigh> Producer<T> {
    /// Queues an item regardless of capacity and wakes the consumer.
    ///
    /// Returns the item when the consumer is gone.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let weight = item.weight();
        self.push_weighted(item, weight)
    }

    /// Queues a batch of items with one lock and one wake-up.
    pub(crate) fn push_all(&self, items: impl IntoIterator<Item = T>) -> Result<(), Closed> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Err(Closed);
        }
        let before = state.items.len();
        let mut added = 0;
        for item in items {
            let weight = item.weight();
            added += weight;
            state.items.push_back((item, weight));
        }
        if state.items.len() == before {
            return Ok(());
        }
        state.weight += added;
        self.shared.charge(added);
        let wakeup = self.shared.wake_consumer(&mut state);
        drop(state);
        wakeup.deliver();
        Ok(())
    }

    /// Offers the last queued item to `append` (with the lock held): it adds to that item
    /// (which must not grow in weight) and returns `None`, or returns a new item to queue.
    /// Either way the consumer is woken.
    pub(crate) fn push_or_append(
        &self,
        append: impl FnOnce(Option<&mut T>) -> Option<T>,
    ) -> Result<(), Closed> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Err(Closed);
        }
        if let Some(item) = append(state.items.back_mut().map(|(item, _)| item)) {
            let weight = item.weight();
            state.weight += weight;
            self.shared.charge(weight);
            state.items.push_back((item, weight));
        }
        let wakeup = self.shared.wake_consumer(&mut state);
        drop(state);
        wakeup.deliver();
        Ok(())
    }
}

impl<T> Producer<T> {
    /// Queues an item that weighs `weight`, and wakes the consumer.
    pub(crate) fn push_weighted(&self, item: T, weight: usize) -> Result<(), T> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Err(item);
        }
        state.weight += weight;
        self.shared.charge(weight);
        state.items.push_back((item, weight));
        let wakeup = self.shared.wake_consumer(&mut state);
        drop(state);
        wakeup.deliver();
        Ok(())
    }

    /// Ready with the room left (in weight) when the queue and its quota have room, or
    /// with `Err` when the consumer is gone.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<usize, Closed>> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Poll::Ready(Err(Closed));
        }
        // Registered either way: a consumer that goes away must wake a waiting producer.
        match &state.producer_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.producer_waker = Some(cx.waker().clone()),
        }
        state.producer_waiting = true;
        if state.weight >= state.capacity {
            return Poll::Pending;
        }
        let room = state.capacity - state.weight;
        drop(state);
        match &self.shared.quota {
            Some(quota) if quota.poll_room(cx).is_pending() => Poll::Pending,
            _ => Poll::Ready(Ok(room)),
        }
    }

    /// Blocks the calling thread until the queue and its quota have room (`Ok`), the
    /// consumer is gone (`Err`), or the deadline passes (`Ok`: the caller then pushes past
    /// capacity or checks its own deadline).
    pub(crate) fn wait_ready(&self, deadline: Option<Instant>) -> Result<(), Closed> {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(ready) = self.poll_ready(&mut cx) {
                return ready.map(drop);
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(());
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    }

    /// Whether the consumer is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().consumer_closed
    }

    /// Whether the queue and its quota have room now (the consumer may be gone).
    pub(crate) fn has_room(&self) -> bool {
        let state = self.shared.lock();
        if state.consumer_closed {
            return true;
        }
        let room = state.weight < state.capacity;
        drop(state);
        room && self.shared.quota.as_ref().is_none_or(|q| q.has_room())
    }

    /// Ready once the consumer is gone.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Poll::Ready(());
        }
        match &state.producer_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.producer_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Tells the consumer that nothing more will come, once it has taken what is queued.
    pub(crate) fn close(&self) {
        let mut state = self.shared.lock();
        if state.producer_closed {
            return;
        }
        state.producer_closed = true;
        let wakeup = self.shared.wake_consumer(&mut state);
        drop(state);
        wakeup.deliver();
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.close();
    }
}

/// The receiving end of a completion queue. There is exactly one per queue.
pub(crate) struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Items already taken from the shared deque, in order, with their weights (still
    /// counted in the queue's weight and charged to the quota).
    local: VecDeque<(T, usize)>,
    /// Weight of the items returned from `local` that the queue still counts: given back
    /// in batches of `return_batch`, and all of it when `local` is empty (fewer locks and
    /// atomic operations than one per item).
    returned: usize,
    return_batch: usize,
}

/// What the consumer found.
enum Take {
    Took,
    Empty,
    Ended,
}

/// Moves every queued item into the consumer's local buffer.
fn take<T>(local: &mut VecDeque<(T, usize)>, state: &mut State<T>) -> Take {
    if !state.items.is_empty() {
        // The items keep their weight until the consumer returns them.
        std::mem::swap(local, &mut state.items);
        Take::Took
    } else if state.producer_closed {
        Take::Ended
    } else {
        Take::Empty
    }
}

impl<T> Consumer<T> {
    /// The next item of the local buffer; the weight of the items returned is given back
    /// in batches, and all of it once the buffer is empty.
    fn next_local(&mut self) -> Option<T> {
        let (item, weight) = self.local.pop_front()?;
        self.returned += weight;
        if self.local.is_empty() || self.returned >= self.return_batch {
            self.give_back();
        }
        Some(item)
    }

    /// Gives back the weight of the items returned, to the queue and its quota, waking a
    /// producer that waits for room once the queue weighs a quarter of its capacity or
    /// less (waking it sooner costs more hand-offs: a queue of large messages sent one by
    /// one measured a third more context switches per message at half).
    fn give_back(&mut self) {
        let returned = std::mem::take(&mut self.returned);
        let mut state = self.shared.lock();
        state.weight = state.weight.saturating_sub(returned);
        let wakeup = if state.producer_waiting && state.weight <= state.capacity / 4 {
            state.producer_waiting = false;
            self.shared.wake_producer(&mut state)
        } else {
            Wakeup::none()
        };
        drop(state);
        self.shared.release(returned);
        wakeup.deliver();
    }

    /// The next item; `Ready(None)` once the producer closed and everything was taken.
    pub(crate) fn poll_pop(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.next_local() {
            return Poll::Ready(Some(item));
        }
        let mut state = self.shared.lock();
        match take(&mut self.local, &mut state) {
            Take::Took => {}
            Take::Ended => return Poll::Ready(None),
            Take::Empty => {
                match &state.consumer_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.consumer_waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        drop(state);
        Poll::Ready(self.next_local())
    }

    /// The next item if one is queued right now, without waiting or registering a waker.
    pub(crate) fn try_pop(&mut self) -> Option<T> {
        if let Some(item) = self.next_local() {
            return Some(item);
        }
        let mut state = self.shared.lock();
        take(&mut self.local, &mut state);
        drop(state);
        self.next_local()
    }

    /// Blocks until the next item; `None` once the producer closed and everything was taken.
    pub(crate) fn pop_blocking(&mut self) -> Option<T> {
        // Without a deadline the wait cannot time out.
        self.pop_blocking_until(None).unwrap_or_default()
    }

    /// As [`pop_blocking`](Self::pop_blocking), giving up at `deadline`.
    pub(crate) fn pop_blocking_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<T>, TimedOut> {
        if let Some(item) = self.next_local() {
            return Ok(Some(item));
        }
        let shared = self.shared.clone();
        let mut state = shared.lock();
        loop {
            match take(&mut self.local, &mut state) {
                Take::Took => {
                    drop(state);
                    return Ok(self.next_local());
                }
                Take::Ended => return Ok(None),
                Take::Empty => {}
            }
            state.consumer_parked = true;
            state = match deadline {
                None => shared.consumer_cv.wait(state),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        state.consumer_parked = false;
                        return Err(TimedOut);
                    }
                    shared.consumer_cv.wait_timeout(state, deadline - now).0
                }
            };
            state.consumer_parked = false;
        }
    }

    /// Stops receiving: queued items are dropped and the producer sees [`Closed`].
    pub(crate) fn close(&mut self) {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        state.consumer_closed = true;
        state.weight = 0;
        let dropped = std::mem::take(&mut state.items);
        let wakeup = shared.wake_producer(&mut state);
        drop(state);
        let held: usize = dropped
            .iter()
            .chain(&self.local)
            .map(|(_, w)| w)
            .sum::<usize>()
            + std::mem::take(&mut self.returned);
        drop(dropped);
        self.local.clear();
        shared.release(held);
        wakeup.deliver();
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.close();
    }
}

/// A blocking wait reached its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimedOut;

#[cfg(test)]
mod tests;
