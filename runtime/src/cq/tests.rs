//! Unit tests of the completion queue, on real threads (the model checks are in `models.rs`).

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;
use std::time::Duration;

struct CountingWaker(AtomicUsize);

impl Weigh for u32 {
    fn weight(&self) -> usize {
        1
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker that counts its wake-ups, and the counter.
fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    (counter, waker)
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
    let (counter, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(rx.poll_pop(&mut cx), Poll::Pending);
    tx.push_all(0..10).unwrap();
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
    let (counter, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    tx.push_weighted(1, 1).unwrap();
    tx.push_weighted(2, 1).unwrap();
    assert_eq!(tx.poll_ready(&mut cx), Poll::Pending);
    assert_eq!(rx.pop_blocking(), Some(1));
    // Item 2 is in the consumer's hands, not read yet: it still weighs.
    assert_eq!(tx.poll_ready(&mut cx), Poll::Ready(Ok(1)));
    assert_eq!(rx.pop_blocking(), Some(2));
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(tx.poll_ready(&mut cx), Poll::Ready(Ok(2)));
}

#[test]
fn what_the_consumer_took_weighs_until_read_and_the_producer_refills_in_batches() {
    let (tx, mut rx) = queue::<u32>(8);
    let (counter, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    tx.push_all(0..8).unwrap();
    assert_eq!(tx.poll_ready(&mut cx), Poll::Pending);
    // The consumer takes all eight at once; until it has read them they weigh, so the
    // queue and the consumer's batch together hold no more than the capacity.
    assert_eq!(rx.try_pop(), Some(0));
    assert_eq!(rx.try_pop(), Some(1));
    assert_eq!(tx.poll_ready(&mut cx), Poll::Ready(Ok(2)));
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "not woken for a little room"
    );
    assert_eq!(rx.try_pop(), Some(2));
    assert_eq!(rx.try_pop(), Some(3));
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "nor for half the capacity"
    );
    assert_eq!(rx.try_pop(), Some(4));
    assert_eq!(rx.try_pop(), Some(5));
    // Three quarters are free: the producer that waited is woken, once.
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    for i in 6..8 {
        assert_eq!(rx.try_pop(), Some(i));
    }
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(tx.poll_ready(&mut cx), Poll::Ready(Ok(8)));
}

#[test]
fn a_producer_told_of_room_is_woken_even_if_the_room_grew_before_it_pushed() {
    // A producer told of some room uses it and stops without asking again (the
    // connections' receive paths do). If the consumer returned items in between, its
    // push does not fill the queue; it must be woken all the same.
    let (tx, mut rx) = queue::<u32>(4);
    let (counter, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    tx.push_all(0..3).unwrap();
    assert_eq!(tx.poll_ready(&mut cx), Poll::Ready(Ok(1)));
    for i in 0..3 {
        assert_eq!(rx.try_pop(), Some(i));
    }
    tx.push(3).unwrap();
    assert_eq!(rx.try_pop(), Some(3));
    assert!(
        counter.0.load(Ordering::SeqCst) >= 1,
        "the producer was woken"
    );
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
fn a_quota_counts_items_until_they_are_read() {
    let quota = Quota::new(3, None);
    let (tx, mut rx) = queue_with_quota::<u32>(100, Some(quota.clone()));
    let (counter, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    tx.push_all([1, 2, 3]).unwrap();
    assert_eq!(quota.used(), 3);
    // The queue has room, its quota does not.
    assert_eq!(tx.poll_ready(&mut cx), Poll::Pending);
    assert!(!tx.has_room());
    // Taking the first item takes all three into the consumer's hands; they stay
    // charged until the consumer has returned all of them, which wakes the producer.
    assert_eq!(rx.try_pop(), Some(1));
    assert_eq!(rx.try_pop(), Some(2));
    assert_eq!(quota.used(), 3);
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    assert_eq!(rx.try_pop(), Some(3));
    assert_eq!(quota.used(), 0);
    // Woken (by the quota, and by the queue it asked for room in).
    assert!(counter.0.load(Ordering::SeqCst) >= 1);
    assert_eq!(tx.poll_ready(&mut cx), Poll::Ready(Ok(100)));
    // What is dropped unread is released too.
    tx.push(4).unwrap();
    drop(rx);
    assert_eq!(quota.used(), 0);
}

#[test]
fn a_blocked_producer_wakes_when_the_consumer_goes_away() {
    let quota = Quota::new(1, None);
    let (tx, mut rx) = queue_with_quota::<u32>(100, Some(quota.clone()));
    tx.push(1).unwrap();
    let waiter = std::thread::spawn(move || {
        let waited = tx.wait_ready(None);
        (waited, tx)
    });
    // Bounded: the waiter parks at once, and the close below wakes it wherever it is.
    std::thread::sleep(Duration::from_millis(10));
    rx.close();
    let (waited, _tx) = waiter.join().unwrap();
    assert_eq!(waited, Err(Closed));
    assert_eq!(quota.used(), 0);
    // A deadline ends the wait as well.
    let quota = Quota::new(1, None);
    let (tx, _rx) = queue_with_quota::<u32>(100, Some(quota.clone()));
    tx.push(1).unwrap();
    let deadline = Instant::now() + Duration::from_millis(20);
    assert_eq!(tx.wait_ready(Some(deadline)), Ok(()));
    assert!(Instant::now() >= deadline);
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
