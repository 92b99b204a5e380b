//! Where user code runs: the built-in executor for async handlers and request streams, and
//! the worker pool for blocking handlers. Neither is a poller thread.
//!
//! The executor is a plain multi-threaded run queue: a task is an `Arc` holding its future;
//! waking it pushes it onto the queue once (a `scheduled` flag guards against duplicates);
//! executor threads pop and poll. When a task blocks its thread in a blocking rsgrpc call
//! (an async handler using a blocking client), [`blocking_region`] starts a stand-in thread
//! that serves the queue until the call returns, so the executor never runs out of threads
//! to the handlers that call each other. The worker pool grows a thread whenever more jobs wait
//! than threads are idle (up to its maximum), and idle threads above the minimum retire
//! after a keep-alive period, so a handler that sleeps never delays the next call.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

/// A boxed future as handed to a spawn hook.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A user-supplied way to run futures, for example `|f| { tokio::spawn(f); }`.
pub(crate) type SpawnHook = Arc<dyn Fn(BoxFuture) + Send + Sync + 'static>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections below only move queue entries; a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs futures on a fixed set of threads.
#[derive(Clone)]
pub(crate) struct Executor {
    shared: Arc<ExecShared>,
}

struct ExecShared {
    state: Mutex<ExecState>,
    cv: Condvar,
    name: String,
}

thread_local! {
    /// The executor this thread serves, so a blocking wait on it can lend a stand-in.
    static CURRENT: std::cell::RefCell<Option<Arc<ExecShared>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether the calling thread is one of an executor's.
pub(crate) fn on_executor_thread() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// Runs `wait`, which may block, on the calling thread. On an executor thread a stand-in
/// thread serves the executor's queue until `wait` returns (or unwinds), so tasks that the
/// blocked one waits for still run.
pub(crate) fn blocking_region<R>(wait: impl FnOnce() -> R) -> R {
    let Some(exec) = CURRENT.with(|c| c.borrow().clone()) else {
        return wait();
    };
    struct Retire(Arc<ExecShared>, Arc<AtomicBool>);
    impl Drop for Retire {
        fn drop(&mut self) {
            self.1.store(true, Ordering::Release);
            // Taking the lock orders the flag before the stand-in's next check.
            drop(lock(&self.0.state));
            self.0.cv.notify_all();
        }
    }
    let retire = Arc::new(AtomicBool::new(false));
    let stand_in = exec.clone();
    let flag = retire.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("{}-standin", exec.name))
        .spawn(move || stand_in.run(Some(flag)));
    match spawned {
        Ok(handle) => {
            let mut state = lock(&exec.state);
            state.threads.retain(|h| !h.is_finished());
            state.threads.push(handle);
        }
        Err(e) => tracing::warn!(error = %e, "cannot start a stand-in executor thread"),
    }
    let _retire = Retire(exec, retire);
    wait()
}

struct ExecState {
    queue: VecDeque<Arc<Task>>,
    /// Threads waiting for a task: only then is a notification needed.
    idle: usize,
    shutdown: bool,
    threads: Vec<JoinHandle<()>>,
}

struct Task {
    future: Mutex<Option<BoxFuture>>,
    scheduled: AtomicBool,
    executor: Weak<ExecShared>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(exec) = self.executor.upgrade() {
            exec.push(self);
        }
    }
}

impl ExecShared {
    fn push(&self, task: Arc<Task>) {
        let mut state = lock(&self.state);
        if state.shutdown {
            return;
        }
        state.queue.push_back(task);
        let wake = state.idle > 0;
        drop(state);
        if wake {
            self.cv.notify_one();
        }
    }

    /// Serves the queue until shutdown, or until `retire` is set (stand-in threads).
    fn run(self: Arc<Self>, retire: Option<Arc<AtomicBool>>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        loop {
            let task = {
                let mut state = lock(&self.state);
                loop {
                    if state.shutdown || retire.as_ref().is_some_and(|r| r.load(Ordering::Acquire))
                    {
                        return;
                    }
                    if let Some(task) = state.queue.pop_front() {
                        break task;
                    }
                    state.idle += 1;
                    state = self.cv.wait(state).unwrap_or_else(|e| e.into_inner());
                    state.idle -= 1;
                }
            };
            task.scheduled.store(false, Ordering::Release);
            let waker = Waker::from(task.clone());
            let mut cx = Context::from_waker(&waker);
            let mut slot = lock(&task.future);
            if let Some(future) = slot.as_mut() {
                let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
                match polled {
                    Ok(Poll::Pending) => {}
                    Ok(Poll::Ready(())) => *slot = None,
                    Err(_) => {
                        tracing::error!("a task on the rsgrpc executor panicked");
                        *slot = None;
                    }
                }
            }
        }
    }
}

impl Executor {
    /// Starts `threads` executor threads named `{name}-{i}`.
    pub(crate) fn start(threads: usize, name: &str) -> Result<Executor> {
        let shared = Arc::new(ExecShared {
            state: Mutex::new(ExecState {
                queue: VecDeque::new(),
                idle: 0,
                shutdown: false,
                threads: Vec::new(),
            }),
            cv: Condvar::new(),
            name: name.to_owned(),
        });
        for i in 0..threads.max(1) {
            let worker = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker.run(None))
                .map_err(|e| Error::io("failed to start an executor thread", e))?;
            lock(&shared.state).threads.push(handle);
        }
        Ok(Executor { shared })
    }

    /// Runs a future to completion on the executor threads.
    pub(crate) fn spawn(&self, future: BoxFuture) {
        let task = Arc::new(Task {
            future: Mutex::new(Some(future)),
            scheduled: AtomicBool::new(true),
            executor: Arc::downgrade(&self.shared),
        });
        self.shared.push(task);
    }

    /// Stops the threads after their current poll and joins them (except the caller's own).
    pub(crate) fn shutdown(&self) {
        let (threads, queue) = {
            let mut state = lock(&self.shared.state);
            state.shutdown = true;
            (
                std::mem::take(&mut state.threads),
                std::mem::take(&mut state.queue),
            )
        };
        self.shared.cv.notify_all();
        drop(queue);
        join_all(threads);
    }
}

fn join_all(threads: Vec<JoinHandle<()>>) {
    let me = std::thread::current().id();
    for t in threads {
        if t.thread().id() != me {
            let _ = t.join();
        }
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs blocking jobs on a pool that grows on demand.
#[derive(Clone)]
pub(crate) struct WorkerPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    state: Mutex<PoolState>,
    cv: Condvar,
    name: String,
    min_threads: usize,
    max_threads: usize,
    keep_alive: Duration,
}

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    threads: usize,
    shutdown: bool,
    handles: Vec<JoinHandle<()>>,
    next_id: usize,
}

impl WorkerPool {
    pub(crate) fn new(
        name: &str,
        min_threads: usize,
        max_threads: usize,
        keep_alive: Duration,
    ) -> WorkerPool {
        WorkerPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState {
                    jobs: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    shutdown: false,
                    handles: Vec::new(),
                    next_id: 0,
                }),
                cv: Condvar::new(),
                name: name.to_owned(),
                min_threads,
                max_threads: max_threads.max(1),
                keep_alive,
            }),
        }
    }

    /// Queues a job; a thread is started when every existing one is busy.
    pub(crate) fn execute(&self, job: Job) {
        let mut state = lock(&self.shared.state);
        if state.shutdown {
            return;
        }
        state.jobs.push_back(job);
        if state.idle >= state.jobs.len() || state.threads >= self.shared.max_threads {
            drop(state);
            self.shared.cv.notify_one();
            return;
        }
        state.threads += 1;
        let id = state.next_id;
        state.next_id += 1;
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{id}", self.shared.name))
            .spawn(move || shared.work());
        match spawned {
            Ok(handle) => {
                state.handles.retain(|h| !h.is_finished());
                state.handles.push(handle);
            }
            Err(e) => {
                state.threads -= 1;
                tracing::error!(error = %e, "failed to start a worker thread");
                drop(state);
                self.shared.cv.notify_one();
            }
        }
    }

    /// Stops idle threads, lets busy ones finish their job, and joins them.
    pub(crate) fn shutdown(&self) {
        let (handles, jobs) = {
            let mut state = lock(&self.shared.state);
            state.shutdown = true;
            (
                std::mem::take(&mut state.handles),
                std::mem::take(&mut state.jobs),
            )
        };
        self.shared.cv.notify_all();
        drop(jobs);
        join_all(handles);
    }
}

impl PoolShared {
    fn work(self: Arc<Self>) {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                if catch_unwind(AssertUnwindSafe(job)).is_err() {
                    tracing::error!("a job on the rsgrpc worker pool panicked");
                }
                state = lock(&self.state);
                continue;
            }
            if state.shutdown {
                state.threads -= 1;
                return;
            }
            state.idle += 1;
            let (next, timeout) = self
                .cv
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.jobs.is_empty() && state.threads > self.min_threads {
                state.threads -= 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn executor_runs_futures_that_wake_themselves() {
        let exec = Executor::start(2, "test-exec").unwrap();
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
    }

    #[test]
    fn executor_survives_a_panicking_task() {
        let exec = Executor::start(1, "test-exec").unwrap();
        exec.spawn(Box::pin(async { panic!("task panic") }));
        let (tx, rx) = mpsc::channel();
        exec.spawn(Box::pin(async move { tx.send(1).unwrap() }));
        assert_eq!(rx.recv().unwrap(), 1);
        exec.shutdown();
    }

    #[test]
    fn pool_grows_while_jobs_block() {
        let pool = WorkerPool::new("test-pool", 0, 8, Duration::from_secs(1));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (started_tx, started_rx) = mpsc::channel();
        // Four jobs that each wait for a release: they can only all start if the pool grew.
        for _ in 0..4 {
            let started = started_tx.clone();
            let release = release_rx.clone();
            pool.execute(Box::new(move || {
                started.send(()).unwrap();
                let _ = release.lock().unwrap().recv();
            }));
        }
        for _ in 0..4 {
            started_rx.recv().unwrap();
        }
        drop(release_tx);
        pool.shutdown();
    }
}
