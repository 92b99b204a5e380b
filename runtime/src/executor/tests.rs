//! Unit tests of the executor: wake-ups, stand-in threads, shutdown.

use super::*;
use crate::testing::eventually;
use std::sync::mpsc;

fn executor(threads: usize) -> Executor {
    Executor::start(threads, 16, "test-exec", Duration::from_secs(5)).unwrap()
}

#[test]
fn executor_runs_futures_that_wake_themselves() {
    let exec = executor(2);
    let (tx, rx) = mpsc::channel();
    for i in 0..100 {
        let tx = tx.clone();
        let mut yielded = false;
        exec.spawn(Box::pin(std::future::poll_fn(move |cx| {
            if !yielded {
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            tx.send(i).unwrap();
            Poll::Ready(())
        })));
    }
    let mut got: Vec<i32> = (0..100).map(|_| rx.recv().unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    exec.shutdown();
    // A thread still finishing its last poll exits right after it.
    assert!(eventually(|| exec.threads() == 0), "{}", exec.threads());
}

#[test]
fn executor_survives_a_panicking_task() {
    let exec = executor(1);
    exec.spawn(Box::pin(async { panic!("task panic") }));
    let (tx, rx) = mpsc::channel();
    exec.spawn(Box::pin(async move { tx.send(1).unwrap() }));
    assert_eq!(rx.recv().unwrap(), 1);
    exec.shutdown();
}

/// A task woken while its thread is blocked (its waker left with another task) must
/// be run again after the wait, not picked up by the stand-in while still running.
#[test]
fn a_task_woken_while_blocked_is_not_polled_twice_at_once() {
    let exec = executor(1);
    let (done_tx, done_rx) = mpsc::channel();
    let inner = exec.clone();
    exec.spawn(Box::pin(async move {
        let (tx, rx) = futures_channel();
        let mut rx = Some(rx);
        let mut polls = 0;
        std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                // Wake ourselves, then block this thread until another task ran:
                // only a stand-in can run it.
                cx.waker().wake_by_ref();
                let tx = tx.clone();
                inner.spawn(Box::pin(async move { tx.send(()).unwrap() }));
                let rx = rx.take().unwrap();
                blocking_region(|| rx.recv_timeout(Duration::from_secs(20)))
                    .expect("the other task ran while this thread was blocked");
                return Poll::Pending;
            }
            Poll::Ready(())
        })
        .await;
        done_tx.send(polls).unwrap();
    }));
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(30)).unwrap(), 2);
    exec.shutdown();
}

fn futures_channel() -> (mpsc::Sender<()>, mpsc::Receiver<()>) {
    mpsc::channel()
}

#[test]
fn stand_ins_are_capped_and_retire() {
    let exec = Executor::start(1, 3, "test-cap", Duration::from_millis(50)).unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let (started_tx, started_rx) = mpsc::channel();
    // Ten tasks that each block their thread; with a cap of three threads only three
    // can block at once, and the executor never exceeds its cap.
    for _ in 0..10 {
        let release = release_rx.clone();
        let started = started_tx.clone();
        exec.spawn(Box::pin(async move {
            started.send(()).unwrap();
            blocking_region(|| {
                let _ = release.lock().recv();
            });
        }));
    }
    for _ in 0..3 {
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    assert!(exec.threads() <= 3, "{} threads", exec.threads());
    drop(release_tx);
    for _ in 3..10 {
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    // Surplus threads retire to spares and exit after the keep-alive.
    assert!(eventually(|| exec.threads() == 1), "{}", exec.threads());
    exec.shutdown();
}

#[test]
fn shutdown_does_not_wait_for_a_task_that_never_returns() {
    let exec = executor(2);
    let (started_tx, started_rx) = mpsc::channel();
    let (_hold, never) = mpsc::channel::<()>();
    exec.spawn(Box::pin(async move {
        started_tx.send(()).unwrap();
        let _ = never.recv();
    }));
    started_rx.recv().unwrap();
    exec.shutdown();
    assert_eq!(exec.threads(), 1, "only the stuck thread is left");
}
