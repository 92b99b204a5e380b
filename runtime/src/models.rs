//! Model checks of the runtime's hand-offs under shuttle: the completion queue between
//! a poller and user code, the executor's task wake-ups and stand-in threads, and the
//! worker pool's queue. Each test runs thousands of random interleavings of its threads;
//! shuttle fails a test when every thread is blocked (a lost wake-up) or an assertion
//! breaks.
//!
//! Compiled only under `--cfg shuttle`, where [`crate::sync`] is shuttle's model:
//! `RUSTFLAGS="--cfg shuttle" cargo test -p rsgrpc --lib models` (CHECKS.md). Shuttle's
//! timed waits never time out, so paths that need a timeout (the pool's stall detection,
//! keep-alive exits) are left to the ordinary tests.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Arc, Condvar, Mutex, thread};

const ITERATIONS: usize = 5_000;

/// A count that threads can wait on.
#[derive(Default)]
struct Counter {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Counter {
    fn add(&self) {
        *self.count.lock() += 1;
        self.changed.notify_all();
    }

    fn wait_for(&self, n: usize) {
        let mut count = self.count.lock();
        while *count < n {
            count = self.changed.wait(count);
        }
    }

    fn get(&self) -> usize {
        *self.count.lock()
    }
}

mod cq {
    use super::*;
    use crate::cq::{Closed, queue, queue_with_quota};
    use crate::quota::Quota;
    #[test]
    fn items_arrive_in_order_and_the_end_is_seen() {
        shuttle::check_random(
            || {
                let (tx, mut rx) = queue::<u32>(4);
                let producer = thread::spawn(move || {
                    tx.push(0).unwrap();
                    tx.push_all([1, 2, 3]).unwrap();
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
    fn a_producer_waiting_for_room_in_the_quota_is_always_woken() {
        shuttle::check_random(
            || {
                let quota = Quota::new(3, None);
                let (tx, mut rx) = queue_with_quota::<u32>(8, Some(quota));
                let producer = thread::spawn(move || {
                    tx.push_all([1, 2, 3]).unwrap();
                    let room =
                        shuttle::future::block_on(std::future::poll_fn(|cx| tx.poll_ready(cx)));
                    // The consumer has read at least one of them.
                    assert!(room.is_ok());
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

mod executor {
    use super::*;
    use crate::executor::{Executor, blocking_region};

    /// Pending until `woken` is set, storing its waker for whoever sets it.
    struct WaitForWake {
        woken: Arc<Mutex<(bool, Option<Waker>)>>,
        polls: Arc<AtomicUsize>,
        done: Arc<Counter>,
    }

    impl Future for WaitForWake {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            let mut woken = self.woken.lock();
            if woken.0 {
                drop(woken);
                self.done.add();
                return Poll::Ready(());
            }
            woken.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_wake_up_is_never_lost_whenever_it_comes() {
        shuttle::check_random(
            || {
                let executor = Executor::start(2, 2, "model", Duration::from_secs(60)).unwrap();
                let woken = Arc::new(Mutex::new((false, None::<Waker>)));
                let polls = Arc::new(AtomicUsize::new(0));
                let done = Arc::new(Counter::default());
                executor.spawn(Box::pin(WaitForWake {
                    woken: woken.clone(),
                    polls: polls.clone(),
                    done: done.clone(),
                }));
                // Wakes the task as soon as it has a waker: before, during or after the
                // poll that stored it returns.
                let waker = thread::spawn(move || {
                    loop {
                        let mut state = woken.lock();
                        if let Some(waker) = state.1.take() {
                            state.0 = true;
                            drop(state);
                            waker.wake();
                            return;
                        }
                        drop(state);
                        thread::yield_now();
                    }
                });
                done.wait_for(1);
                waker.join().unwrap();
                executor.shutdown();
                // Polled once, then once more after the wake-up: never twice for one.
                assert_eq!(polls.load(Ordering::SeqCst), 2);
            },
            ITERATIONS,
        );
    }

    #[test]
    fn every_task_of_a_batch_runs() {
        shuttle::check_random(
            || {
                let executor = Executor::start(2, 2, "model", Duration::from_secs(60)).unwrap();
                let done = Arc::new(Counter::default());
                let tasks: Vec<crate::executor::BoxFuture> = (0..3)
                    .map(|_| {
                        let done = done.clone();
                        Box::pin(async move { done.add() }) as crate::executor::BoxFuture
                    })
                    .collect();
                executor.spawn_all(tasks);
                done.wait_for(3);
                // Then one alone, once the threads are going idle again.
                let late = done.clone();
                executor.spawn(Box::pin(async move { late.add() }));
                done.wait_for(4);
                executor.shutdown();
            },
            ITERATIONS,
        );
    }

    #[test]
    fn a_blocked_thread_gets_a_stand_in() {
        shuttle::check_random(
            || {
                // One thread: the first task blocks until the second has run, which
                // only a stand-in thread can do.
                let executor = Executor::start(1, 2, "model", Duration::from_secs(60)).unwrap();
                let second_ran = Arc::new(Counter::default());
                let done = Arc::new(Counter::default());
                let (ran, finished) = (second_ran.clone(), done.clone());
                executor.spawn(Box::pin(async move {
                    blocking_region(|| ran.wait_for(1));
                    finished.add();
                }));
                let ran = second_ran.clone();
                executor.spawn(Box::pin(async move { ran.add() }));
                done.wait_for(1);
                executor.shutdown();
                assert_eq!(second_ran.get(), 1);
            },
            ITERATIONS,
        );
    }
}

mod pool {
    use super::*;
    use crate::pool::WorkerPool;

    #[test]
    fn every_job_runs() {
        shuttle::check_random(
            || {
                let pool = WorkerPool::new("model", 1, 2, 8, Duration::from_secs(60)).unwrap();
                let done = Arc::new(Counter::default());
                let jobs: Vec<crate::pool::Job> = (0..3)
                    .map(|_| {
                        let done = done.clone();
                        Box::new(move || done.add()) as crate::pool::Job
                    })
                    .collect();
                pool.execute_all(jobs);
                done.wait_for(3);
                pool.shutdown();
                // A job that has counted itself done may still be returning to its worker
                // (shutdown waits for idle workers, not running ones): its admission ends
                // when it has. Shuttle fails the test if that never happens.
                while pool.admitted() != 0 {
                    thread::yield_now();
                }
            },
            ITERATIONS,
        );
    }

    #[test]
    fn jobs_from_two_threads_while_workers_go_idle_all_run() {
        shuttle::check_random(
            || {
                let pool = WorkerPool::new("model", 2, 2, 8, Duration::from_secs(60)).unwrap();
                let done = Arc::new(Counter::default());
                let producers: Vec<_> = (0..2)
                    .map(|_| {
                        let (pool, done) = (pool.clone(), done.clone());
                        thread::spawn(move || {
                            for _ in 0..2 {
                                let done = done.clone();
                                pool.execute(Box::new(move || done.add()));
                                thread::yield_now();
                            }
                        })
                    })
                    .collect();
                for producer in producers {
                    producer.join().unwrap();
                }
                done.wait_for(4);
                pool.shutdown();
            },
            ITERATIONS,
        );
    }
}
