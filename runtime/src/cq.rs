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
//! Capacity is a soft bound in bytes, used for flow control: [`Producer::poll_ready`] and
//! [`Producer::wait_ready`] wait while the queued items weigh `capacity` or more (a message
//! weighs its length, a control event nothing), but a push always succeeds while the
//! consumer is alive, so control events (trailers, cancellation) are never held back
//! behind data, and one message larger than the capacity still goes through.
//!
//! The producer can also ask to be told when the consumer has caught up: when it has
//! taken everything and waits for more ([`Producer::poll_drained`]). The poller returns
//! HTTP/2 flow-control credit to the peer only then, so what a peer sends ahead of a slow
//! consumer is bounded by the stream's window.

use std::collections::VecDeque;
// Under `--cfg shuttle` the unit tests below run on shuttle's models of these primitives,
// which explore the interleavings of the producer and consumer (CHECKS.md).
#[cfg(all(test, shuttle))]
use shuttle::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(all(test, shuttle)))]
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The other end of the queue is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closed;

/// Creates a queue whose producer waits for room once the queued items weigh `capacity`.
pub(crate) fn queue<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
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
            producer_parked: false,
            consumer_waiting: false,
            want_drained: false,
        }),
        consumer_cv: Condvar::new(),
        producer_cv: Condvar::new(),
    });
    (
        Producer {
            shared: shared.clone(),
        },
        Consumer {
            shared,
            local: VecDeque::new(),
        },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    consumer_cv: Condvar,
    producer_cv: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    /// What the queued items weigh (bytes of messages).
    weight: usize,
    capacity: usize,
    producer_closed: bool,
    consumer_closed: bool,
    consumer_waker: Option<Waker>,
    producer_waker: Option<Waker>,
    consumer_parked: bool,
    producer_parked: bool,
    /// The consumer has taken everything and waits for more.
    consumer_waiting: bool,
    /// The producer wants a wake-up when the consumer starts waiting.
    want_drained: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the deque consistent (every critical
        // section is a few plain field updates), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
            cv: state.producer_parked.then_some(&self.producer_cv),
            waker: state.producer_waker.take(),
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

    fn is_some(&self) -> bool {
        self.cv.is_some() || self.waker.is_some()
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

/// The sending end of a completion queue.
pub(crate) struct Producer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Producer<T> {
    /// Queues an item regardless of capacity and wakes the consumer.
    ///
    /// Returns the item when the consumer is gone.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.push_weighted(item, 0)
    }

    /// Queues an item that weighs `weight` against the capacity, and wakes the consumer.
    pub(crate) fn push_weighted(&self, item: T, weight: usize) -> Result<(), T> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Err(item);
        }
        state.weight += weight;
        state.items.push_back(item);
        let wakeup = self.shared.wake_consumer(&mut state);
        drop(state);
        wakeup.deliver();
        Ok(())
    }

    /// Offers the last queued item to `append` (with the lock held): it adds to that item
    /// and returns `None`, or returns a new item to queue. Either way the queue's weight
    /// grows by `weight` and the consumer is woken.
    pub(crate) fn push_or_append(
        &self,
        weight: usize,
        append: impl FnOnce(Option<&mut T>) -> Option<T>,
    ) -> Result<(), Closed> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Err(Closed);
        }
        if let Some(item) = append(state.items.back_mut()) {
            state.items.push_back(item);
        }
        state.weight += weight;
        let wakeup = self.shared.wake_consumer(&mut state);
        drop(state);
        wakeup.deliver();
        Ok(())
    }

    /// Queues a batch of items with one lock and one wake-up; together they weigh
    /// `weight`.
    pub(crate) fn push_all(
        &self,
        items: impl IntoIterator<Item = T>,
        weight: usize,
    ) -> Result<(), Closed> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Err(Closed);
        }
        state.weight += weight;
        let before = state.items.len();
        state.items.extend(items);
        if state.items.len() == before {
            return Ok(());
        }
        let wakeup = self.shared.wake_consumer(&mut state);
        drop(state);
        wakeup.deliver();
        Ok(())
    }

    /// Ready when the queue has room, or with `Err` when the consumer is gone.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        let mut state = self.shared.lock();
        if state.consumer_closed {
            return Poll::Ready(Err(Closed));
        }
        if state.weight < state.capacity {
            return Poll::Ready(Ok(()));
        }
        match &state.producer_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.producer_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Blocks the calling thread until the queue has room (`Ok`), the consumer is gone
    /// (`Err`), or the deadline passes (`Ok`: the caller then pushes past capacity or
    /// checks its own deadline).
    pub(crate) fn wait_ready(&self, deadline: Option<Instant>) -> Result<(), Closed> {
        let mut state = self.shared.lock();
        loop {
            if state.consumer_closed {
                return Err(Closed);
            }
            if state.weight < state.capacity {
                return Ok(());
            }
            state.producer_parked = true;
            state = match deadline {
                None => self
                    .shared
                    .producer_cv
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        state.producer_parked = false;
                        return Ok(());
                    }
                    self.shared
                        .producer_cv
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            state.producer_parked = false;
        }
    }

    /// What the items queued and not yet taken weigh.
    pub(crate) fn weight(&self) -> usize {
        self.shared.lock().weight
    }

    /// Whether the consumer is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().consumer_closed
    }

    /// Whether the queue has room now (the consumer may be gone).
    pub(crate) fn has_room(&self) -> bool {
        let state = self.shared.lock();
        state.consumer_closed || state.weight < state.capacity
    }

    /// Ready once the consumer has taken everything queued and waits for more (or is
    /// gone); otherwise the producer is woken when that happens.
    pub(crate) fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.lock();
        if state.consumer_closed || (state.consumer_waiting && state.items.is_empty()) {
            state.want_drained = false;
            return Poll::Ready(());
        }
        state.want_drained = true;
        match &state.producer_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.producer_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
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
    /// Items already taken from the shared deque, in order.
    local: VecDeque<T>,
}

/// What the consumer found.
enum Take {
    Took,
    Empty,
    Ended,
}

/// Moves every queued item into the consumer's local buffer.
fn take<'a, T>(
    local: &mut VecDeque<T>,
    shared: &'a Shared<T>,
    state: &mut State<T>,
) -> (Take, Wakeup<'a>) {
    if !state.items.is_empty() {
        let was_full = state.weight >= state.capacity;
        state.weight = 0;
        state.consumer_waiting = false;
        std::mem::swap(local, &mut state.items);
        let wakeup = if was_full {
            shared.wake_producer(state)
        } else {
            Wakeup::none()
        };
        (Take::Took, wakeup)
    } else if state.producer_closed {
        (Take::Ended, Wakeup::none())
    } else {
        (Take::Empty, Wakeup::none())
    }
}

/// The consumer found nothing and is about to wait: a producer that asked to know is
/// woken.
fn start_waiting<'a, T>(shared: &'a Shared<T>, state: &mut State<T>) -> Wakeup<'a> {
    state.consumer_waiting = true;
    if state.want_drained {
        state.want_drained = false;
        shared.wake_producer(state)
    } else {
        Wakeup::none()
    }
}

impl<T> Consumer<T> {
    /// The next item; `Ready(None)` once the producer closed and everything was taken.
    pub(crate) fn poll_pop(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.local.pop_front() {
            return Poll::Ready(Some(item));
        }
        let shared = self.shared.clone();
        let mut state = shared.lock();
        let (took, wakeup) = take(&mut self.local, &shared, &mut state);
        match took {
            Take::Took => {}
            Take::Ended => return Poll::Ready(None),
            Take::Empty => {
                match &state.consumer_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.consumer_waker = Some(cx.waker().clone()),
                }
                let wakeup = start_waiting(&shared, &mut state);
                drop(state);
                wakeup.deliver();
                return Poll::Pending;
            }
        }
        drop(state);
        wakeup.deliver();
        Poll::Ready(self.local.pop_front())
    }

    /// The next item if one is queued right now, without waiting or registering a waker.
    pub(crate) fn try_pop(&mut self) -> Option<T> {
        if let Some(item) = self.local.pop_front() {
            return Some(item);
        }
        let shared = self.shared.clone();
        let mut state = shared.lock();
        let (_, wakeup) = take(&mut self.local, &shared, &mut state);
        drop(state);
        wakeup.deliver();
        self.local.pop_front()
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
        if let Some(item) = self.local.pop_front() {
            return Ok(Some(item));
        }
        let shared = self.shared.clone();
        let mut state = shared.lock();
        loop {
            let (took, wakeup) = take(&mut self.local, &shared, &mut state);
            match took {
                Take::Took => {
                    drop(state);
                    wakeup.deliver();
                    return Ok(self.local.pop_front());
                }
                Take::Ended => return Ok(None),
                Take::Empty => {}
            }
            let wakeup = start_waiting(&shared, &mut state);
            if wakeup.is_some() {
                drop(state);
                wakeup.deliver();
                state = shared.lock();
                continue;
            }
            state.consumer_parked = true;
            state = match deadline {
                None => shared
                    .consumer_cv
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        state.consumer_parked = false;
                        return Err(TimedOut);
                    }
                    shared
                        .consumer_cv
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
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
        drop(dropped);
        self.local.clear();
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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn items_arrive_in_order_across_threads() {
        let (tx, mut rx) = queue::<u32>(4);
        let producer = std::thread::spawn(move || {
            for i in 0..10_000 {
                tx.wait_ready(None).unwrap();
                tx.push_weighted(i, 1).unwrap();
            }
        });
        for i in 0..10_000 {
            assert_eq!(rx.pop_blocking(), Some(i));
        }
        producer.join().unwrap();
        assert_eq!(rx.pop_blocking(), None);
    }

    #[test]
    fn a_batch_wakes_the_task_once() {
        let (tx, mut rx) = queue::<u32>(64);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_pop(&mut cx), Poll::Pending);
        tx.push_all(0..10, 0).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        for i in 0..10 {
            assert_eq!(rx.poll_pop(&mut cx), Poll::Ready(Some(i)));
        }
        drop(tx);
        assert_eq!(rx.poll_pop(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn producer_waits_for_room_and_is_woken() {
        let (tx, mut rx) = queue::<u32>(2);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        tx.push_weighted(1, 1).unwrap();
        tx.push_weighted(2, 1).unwrap();
        assert_eq!(tx.poll_ready(&mut cx), Poll::Pending);
        assert_eq!(rx.pop_blocking(), Some(1));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(tx.poll_ready(&mut cx), Poll::Ready(Ok(())));
    }

    #[test]
    fn closing_the_consumer_fails_the_producer() {
        let (tx, rx) = queue::<u32>(1);
        tx.push_weighted(1, 1).unwrap();
        let waiter = std::thread::spawn(move || tx.wait_ready(None));
        drop(rx);
        assert_eq!(waiter.join().unwrap(), Err(Closed));
    }

    #[test]
    fn producer_learns_when_the_consumer_caught_up() {
        let (tx, mut rx) = queue::<u32>(64);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        tx.push(1).unwrap();
        // Something is queued: not drained.
        assert_eq!(tx.poll_drained(&mut cx), Poll::Pending);
        assert_eq!(rx.try_pop(), Some(1));
        // Taken, but the consumer is not waiting yet (it may still be busy with it).
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        let consumer_waker = futures_noop();
        assert_eq!(
            rx.poll_pop(&mut Context::from_waker(&consumer_waker)),
            Poll::Pending
        );
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(tx.poll_drained(&mut cx), Poll::Ready(()));
        // A blocking consumer that starts waiting wakes the producer too.
        let (tx, mut rx) = queue::<u32>(64);
        assert_eq!(tx.poll_drained(&mut cx), Poll::Pending);
        let waiter = std::thread::spawn(move || rx.pop_blocking());
        while counter.0.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        tx.push(5).unwrap();
        assert_eq!(waiter.join().unwrap(), Some(5));
    }

    fn futures_noop() -> Waker {
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        Waker::from(Arc::new(Noop))
    }

    #[test]
    fn blocking_pop_times_out() {
        let (_tx, mut rx) = queue::<u32>(1);
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(rx.pop_blocking_until(Some(deadline)), Err(TimedOut));
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn closed_producer_drains_then_ends() {
        let (tx, mut rx) = queue::<u32>(1);
        tx.push(7).unwrap();
        tx.push(8).unwrap();
        tx.close();
        assert_eq!(rx.pop_blocking(), Some(7));
        assert_eq!(rx.pop_blocking(), Some(8));
        assert_eq!(rx.pop_blocking(), None);
    }
}

/// The hand-off between a producer and a consumer on two threads, under shuttle's
/// scheduler: each test runs thousands of random interleavings, and shuttle fails a test on
/// a deadlock (every thread blocked, as after a lost wake-up). Run with
/// `RUSTFLAGS="--cfg shuttle" cargo test -p rsgrpc --lib cq::shuttle` (CHECKS.md); the other
/// tests of this module use real threads and do not run under that flag.
#[cfg(all(test, shuttle))]
mod shuttle_tests {
    use super::*;
    use shuttle::thread;

    const ITERATIONS: usize = 5_000;

    #[test]
    fn items_arrive_in_order_and_the_end_is_seen() {
        shuttle::check_random(
            || {
                let (tx, mut rx) = queue::<u32>(4);
                let producer = thread::spawn(move || {
                    tx.push(0).unwrap();
                    tx.push_all([1, 2, 3], 0).unwrap();
                    tx.push_weighted(4, 1).unwrap();
                });
                let mut got = Vec::new();
                while let Some(item) = rx.pop_blocking() {
                    got.push(item);
                }
                producer.join().unwrap();
                assert_eq!(got, [0, 1, 2, 3, 4]);
            },
            ITERATIONS,
        );
    }

    #[test]
    fn a_producer_waiting_for_room_is_always_woken() {
        shuttle::check_random(
            || {
                let (tx, mut rx) = queue::<u32>(2);
                let producer = thread::spawn(move || {
                    for i in 0..6 {
                        tx.wait_ready(None).unwrap();
                        tx.push_weighted(i, 1).unwrap();
                    }
                });
                let mut got = Vec::new();
                while let Some(item) = rx.pop_blocking() {
                    got.push(item);
                }
                producer.join().unwrap();
                assert_eq!(got, [0, 1, 2, 3, 4, 5]);
            },
            ITERATIONS,
        );
    }

    #[test]
    fn closing_the_consumer_always_fails_a_waiting_producer() {
        shuttle::check_random(
            || {
                let (tx, mut rx) = queue::<u32>(1);
                tx.push_weighted(0, 1).unwrap();
                let producer = thread::spawn(move || {
                    let waited = tx.wait_ready(None);
                    (waited, tx.push(1))
                });
                rx.close();
                let (waited, pushed) = producer.join().unwrap();
                assert_eq!(waited, Err(Closed));
                assert_eq!(pushed, Err(1));
            },
            ITERATIONS,
        );
    }

    #[test]
    fn a_producer_waiting_for_the_consumer_to_drain_is_always_woken() {
        shuttle::check_random(
            || {
                let (tx, mut rx) = queue::<u32>(8);
                let producer = thread::spawn(move || {
                    tx.push_all([1, 2, 3], 3).unwrap();
                    shuttle::future::block_on(std::future::poll_fn(|cx| tx.poll_drained(cx)));
                    // Drained: the consumer took everything and waits for more.
                    tx.push(4).unwrap();
                });
                let mut got = Vec::new();
                while let Some(item) = rx.pop_blocking() {
                    got.push(item);
                }
                producer.join().unwrap();
                assert_eq!(got, [1, 2, 3, 4]);
            },
            ITERATIONS,
        );
    }
}
