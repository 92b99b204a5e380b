//! Where user code runs: the built-in executor for async handlers and request streams, and
//! the worker pool for blocking handlers. Neither is a poller thread.
//!
//! # The executor
//!
//! A multi-threaded run queue. A task is an `Arc` holding its future and a state word:
//!
//! ```text
//!            wake                 popped                 Pending, not woken
//!   IDLE ─────────────▶ SCHEDULED ────────▶ RUNNING ─────────────────────────▶ IDLE
//!                           ▲                  │ wake while polled
//!                           │ re-queued        ▼
//!                           └──────────── RUNNING_NOTIFIED
//! ```
//!
//! A task is in the queue only while `SCHEDULED`, so no two threads ever poll it at once,
//! and a wake-up during a poll is remembered, not lost. Waking an idle thread is skipped
//! when one is already on its way; a thread that takes a task and leaves others queued
//! wakes one more, so work spreads over the threads without a wake-up per task.
//!
//! An async handler that makes a blocking rsgrpc call parks its executor thread.
//! [`blocking_region`] keeps the executor at strength meanwhile: the blocked thread stops
//! counting as serving, and a spare thread is called in (or started, up to a cap) to serve
//! in its place. When the wait ends the executor is one thread over strength, and the
//! first thread to notice becomes a spare; spares exit after the keep-alive period.
//! Waits that would not block never enter the region, so they cost nothing.
//!
//! # The worker pool
//!
//! Runs blocking handlers. Its queue is bounded (callers are told to refuse work beyond
//! it), and so are its threads. As many jobs run at once as the machine has cores; when
//! they block (a handler that sleeps or waits on I/O), a monitor thread notices that the
//! queue made no progress for a millisecond and releases one more worker, up to the cap.
//! So a burst of quick jobs is run by one or two threads with few wake-ups, and sleeping
//! handlers do not delay the calls behind them. Threads are started by the monitor, never
//! by the thread that submits work (a poller), and idle ones exit after the keep-alive.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::role::{self, Role};

/// A boxed future as handed to a spawn hook.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A user-supplied way to run futures, for example `|f| { tokio_handle.spawn(f); }`.
pub(crate) type SpawnHook = Arc<dyn Fn(BoxFuture) + Send + Sync + 'static>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections below only move queue entries and counters, and never call out;
    // a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs futures on a set of threads.
#[derive(Clone)]
pub(crate) struct Executor {
    shared: Arc<ExecShared>,
}

struct ExecShared {
    state: Mutex<ExecState>,
    /// Serving threads wait here for tasks.
    work: Condvar,
    /// Spare threads wait here to be called into service.
    spare: Condvar,
    /// Signalled when a thread exits.
    exited: Condvar,
    name: String,
    /// How many threads serve the queue.
    target: usize,
    /// Most threads in all, spares and threads blocked in a region included.
    max_threads: usize,
    keep_alive: Duration,
}

struct ExecState {
    queue: VecDeque<Arc<Task>>,
    /// Threads serving the queue (idle, or polling a task outside a blocking region).
    serving: usize,
    /// Serving threads waiting for a task.
    idle: usize,
    /// Idle threads notified and not yet awake.
    notified: usize,
    /// Threads waiting as spares.
    spares: usize,
    /// Spares called back into service and not yet awake.
    spares_called: usize,
    /// Threads alive.
    threads: usize,
    /// Threads inside a task's poll (exit only after it returns).
    busy: usize,
    shutdown: bool,
    next_id: usize,
    warned_cap: bool,
}

thread_local! {
    /// The executor this thread serves, for [`blocking_region`].
    static CURRENT: std::cell::RefCell<Option<Arc<ExecShared>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether the calling thread is one of an executor's.
pub(crate) fn on_executor_thread() -> bool {
    role::current() == Role::Executor
}

/// Runs `wait`, which blocks, on the calling thread. On an executor thread, another thread
/// serves the executor's queue until `wait` returns (or unwinds), so tasks that the blocked
/// one waits for still run. Callers check first that the wait would really block.
pub(crate) fn blocking_region<R>(wait: impl FnOnce() -> R) -> R {
    let Some(exec) = CURRENT.with(|c| c.borrow().clone()) else {
        return wait();
    };
    exec.begin_blocking();
    struct End(Arc<ExecShared>);
    impl Drop for End {
        fn drop(&mut self) {
            lock(&self.0.state).serving += 1;
        }
    }
    let _end = End(exec);
    wait()
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const RUNNING_NOTIFIED: u8 = 3;
const DONE: u8 = 4;

struct Task {
    /// Only the thread that moved the task to `RUNNING` locks this, so it is never
    /// contended; it makes the task `Sync` without `unsafe`.
    future: Mutex<Option<BoxFuture>>,
    state: AtomicU8,
    executor: Weak<ExecShared>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let next = match current {
                IDLE => SCHEDULED,
                RUNNING => RUNNING_NOTIFIED,
                _ => return,
            };
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if current == IDLE {
            match self.executor.upgrade() {
                Some(exec) => exec.push(self.clone()),
                None => self.abandon(),
            }
        }
    }
}

impl Task {
    /// Polls the task once; the caller took it from the queue.
    fn run(self: &Arc<Self>, exec: &ExecShared) {
        self.state.store(RUNNING, Ordering::Release);
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        let mut slot = lock(&self.future);
        let Some(future) = slot.as_mut() else {
            self.state.store(DONE, Ordering::Release);
            return;
        };
        let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        match polled {
            Ok(Poll::Pending) => {
                drop(slot);
                let still =
                    self.state
                        .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire);
                if still.is_err() {
                    // Woken while it ran: run it again, after what is queued.
                    self.state.store(SCHEDULED, Ordering::Release);
                    exec.push(self.clone());
                }
            }
            Ok(Poll::Ready(())) => {
                self.state.store(DONE, Ordering::Release);
                *slot = None;
            }
            Err(_) => {
                tracing::error!("a task on the rsgrpc executor panicked");
                self.state.store(DONE, Ordering::Release);
                *slot = None;
            }
        }
    }

    /// Gives up a task its executor can no longer run; its future is dropped off the
    /// poller threads.
    fn abandon(&self) {
        self.state.store(DONE, Ordering::Release);
        if let Some(future) = lock(&self.future).take() {
            role::drop_off_poller(future);
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A task dropped before it finished (its executor shut down) holds a user's
        // future, which must not be dropped on a poller thread.
        let future = self
            .future
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(future) = future {
            role::drop_off_poller(future);
        }
    }
}

impl ExecShared {
    /// Queues a task and wakes a thread if none is on its way.
    fn push(&self, task: Arc<Task>) {
        let mut state = lock(&self.state);
        if state.shutdown {
            drop(state);
            task.abandon();
            return;
        }
        state.queue.push_back(task);
        let wake = state.idle > state.notified;
        if wake {
            state.notified += 1;
        }
        drop(state);
        if wake {
            self.work.notify_one();
        }
    }

    /// A serving thread is about to block: keep the executor at strength.
    fn begin_blocking(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        state.serving -= 1;
        if state.shutdown || state.serving >= self.target {
            return;
        }
        if state.spares > state.spares_called {
            state.spares_called += 1;
            state.serving += 1;
            drop(state);
            self.spare.notify_one();
            return;
        }
        if state.threads >= self.max_threads {
            if !state.warned_cap {
                state.warned_cap = true;
                tracing::warn!(
                    threads = state.threads,
                    "the rsgrpc executor is at its thread cap; a blocking call on an executor \
                     thread leaves the executor one thread short"
                );
            }
            return;
        }
        state.threads += 1;
        state.serving += 1;
        let id = state.next_id;
        state.next_id += 1;
        drop(state);
        if let Err(e) = self.start_thread(id) {
            tracing::warn!(error = %e, "cannot start a stand-in executor thread");
            let mut state = lock(&self.state);
            state.threads -= 1;
            state.serving -= 1;
            drop(state);
            self.exited.notify_all();
        }
    }

    fn start_thread(self: &Arc<Self>, id: usize) -> std::io::Result<()> {
        let shared = self.clone();
        std::thread::Builder::new()
            .name(format!("{}-{id}", self.name))
            .spawn(move || shared.serve())
            .map(drop)
    }

    /// An executor thread's life: serve the queue, or wait as a spare, until shutdown.
    fn serve(self: Arc<Self>) {
        role::set(Role::Executor);
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        let mut state = lock(&self.state);
        loop {
            if state.shutdown {
                break;
            }
            if state.serving > self.target {
                state.serving -= 1;
                match self.wait_as_spare(state) {
                    Some(s) => {
                        state = s;
                        continue;
                    }
                    None => {
                        state = lock(&self.state);
                        break;
                    }
                }
            }
            if let Some(task) = state.queue.pop_front() {
                if !state.queue.is_empty() && state.idle > state.notified {
                    state.notified += 1;
                    self.work.notify_one();
                }
                state.busy += 1;
                drop(state);
                task.run(&self);
                drop(task);
                state = lock(&self.state);
                state.busy -= 1;
                continue;
            }
            state.idle += 1;
            state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
            state.idle -= 1;
            state.notified = state.notified.saturating_sub(1);
        }
        state.threads -= 1;
        drop(state);
        CURRENT.with(|c| c.borrow_mut().take());
        self.exited.notify_all();
    }

    /// Waits to be called back into service; `None` when the thread should exit (it
    /// stayed unused for the keep-alive period, or the executor shut down).
    fn wait_as_spare<'a>(
        &'a self,
        mut state: MutexGuard<'a, ExecState>,
    ) -> Option<MutexGuard<'a, ExecState>> {
        state.spares += 1;
        let deadline = crate::deadline::saturating_after(self.keep_alive);
        loop {
            if state.spares_called > 0 {
                // Whoever called us counted us as serving already.
                state.spares_called -= 1;
                state.spares -= 1;
                return Some(state);
            }
            let now = Instant::now();
            if state.shutdown || now >= deadline {
                state.spares -= 1;
                return None;
            }
            state = self
                .spare
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Executor {
    /// Starts `threads` executor threads named `{name}-{i}`; up to `max_threads` may run
    /// while some are blocked in [`blocking_region`].
    pub(crate) fn start(
        threads: usize,
        max_threads: usize,
        name: &str,
        keep_alive: Duration,
    ) -> Result<Executor> {
        let target = threads.max(1);
        let shared = Arc::new(ExecShared {
            state: Mutex::new(ExecState {
                queue: VecDeque::new(),
                serving: target,
                idle: 0,
                notified: 0,
                spares: 0,
                spares_called: 0,
                threads: 0,
                busy: 0,
                shutdown: false,
                next_id: target,
                warned_cap: false,
            }),
            work: Condvar::new(),
            spare: Condvar::new(),
            exited: Condvar::new(),
            name: name.to_owned(),
            target,
            max_threads: max_threads.max(target),
            keep_alive,
        });
        for i in 0..target {
            lock(&shared.state).threads += 1;
            if let Err(e) = shared.start_thread(i) {
                lock(&shared.state).threads -= 1;
                let executor = Executor { shared };
                executor.shutdown();
                return Err(Error::io("failed to start an executor thread", e));
            }
        }
        Ok(Executor { shared })
    }

    fn task(&self, future: BoxFuture) -> Arc<Task> {
        Arc::new(Task {
            future: Mutex::new(Some(future)),
            state: AtomicU8::new(SCHEDULED),
            executor: Arc::downgrade(&self.shared),
        })
    }

    /// Runs a future to completion on the executor threads.
    pub(crate) fn spawn(&self, future: BoxFuture) {
        self.shared.push(self.task(future));
    }

    /// Queues several futures with one lock and at most one wake-up.
    pub(crate) fn spawn_all(&self, futures: impl IntoIterator<Item = BoxFuture>) {
        let tasks: Vec<_> = futures.into_iter().map(|f| self.task(f)).collect();
        if tasks.is_empty() {
            return;
        }
        let mut state = lock(&self.shared.state);
        if state.shutdown {
            drop(state);
            for task in tasks {
                task.abandon();
            }
            return;
        }
        state.queue.extend(tasks);
        let wake = state.idle > state.notified;
        if wake {
            state.notified += 1;
        }
        drop(state);
        if wake {
            self.shared.work.notify_one();
        }
    }

    /// Threads alive.
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        lock(&self.shared.state).threads
    }

    /// Stops the threads: idle ones exit now and are waited for; a thread polling a task
    /// finishes that poll and then exits (a task that never returns cannot hang this).
    /// Queued tasks are dropped here.
    pub(crate) fn shutdown(&self) {
        let queue = {
            let mut state = lock(&self.shared.state);
            state.shutdown = true;
            std::mem::take(&mut state.queue)
        };
        self.shared.work.notify_all();
        self.shared.spare.notify_all();
        for task in queue {
            task.abandon();
        }
        let own = usize::from(CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|e| Arc::ptr_eq(e, &self.shared))
        }));
        let mut state = lock(&self.shared.state);
        // Threads blocked in a region are counted busy too, so `busy` bounds the wait.
        while state.threads > state.busy.max(own) {
            state = self
                .shared
                .exited
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// `future`, polled with the tokio runtime of `tokio` entered: what user code written for
/// tokio uses (timers, I/O, `tokio::spawn`) finds its runtime while the future itself runs
/// on this executor. Entering costs a thread-local store per poll.
pub(crate) fn in_tokio(tokio: tokio::runtime::Handle, future: BoxFuture) -> BoxFuture {
    Box::pin(InTokio { tokio, future })
}

struct InTokio {
    tokio: tokio::runtime::Handle,
    future: BoxFuture,
}

impl Future for InTokio {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let _entered = this.tokio.enter();
        this.future.as_mut().poll(cx)
    }
}

/// A blocking job: runs a handler on a worker thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long the pool's queue may make no progress before the monitor releases another
/// worker.
const STALL: Duration = Duration::from_millis(1);

/// Runs blocking jobs on a bounded pool of threads.
#[derive(Clone)]
pub(crate) struct WorkerPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    state: Mutex<PoolState>,
    /// Idle workers wait here.
    work: Condvar,
    /// The monitor waits here.
    monitor: Condvar,
    /// Signalled when a thread exits.
    exited: Condvar,
    name: String,
    /// Jobs run at once before the monitor judges the running ones blocked.
    eager: usize,
    max_threads: usize,
    max_queue: usize,
    keep_alive: Duration,
    /// Jobs admitted and not yet finished (queued or running).
    admitted: AtomicUsize,
}

struct PoolState {
    queue: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// Idle workers notified and not yet awake.
    notified: usize,
    /// Workers running a job.
    running: usize,
    /// Worker threads alive (the monitor is not counted).
    threads: usize,
    /// Jobs started so far: the monitor's measure of progress.
    started: u64,
    /// Whether the monitor is watching the queue (it sleeps otherwise).
    watching: bool,
    monitor_alive: bool,
    shutdown: bool,
    next_id: usize,
}

/// A place in the worker pool's bounded queue, taken before a job is built.
#[must_use = "a permit reserves a place until it is used or dropped"]
pub(crate) struct Permit {
    pool: Arc<PoolShared>,
    used: bool,
}

impl Permit {
    /// Binds `job` to the place this permit reserved; queue it with
    /// [`WorkerPool::enqueue`].
    pub(crate) fn bind(mut self, job: Job) -> Job {
        self.used = true;
        job
    }

    /// Queues `job` in the place this permit reserved.
    #[cfg(test)]
    pub(crate) fn execute(self, job: Job) {
        let pool = WorkerPool {
            shared: self.pool.clone(),
        };
        pool.enqueue(std::iter::once(self.bind(job)));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.used {
            self.pool.admitted.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl WorkerPool {
    /// A pool of at most `max_threads` threads and `max_queue` waiting jobs; `eager` jobs
    /// run at once before the monitor steps in. Starts the monitor thread now, so that
    /// the thread that first submits work (a poller) never starts one.
    ///
    /// # Errors
    ///
    /// When the operating system refuses to start the monitor thread.
    pub(crate) fn new(
        name: &str,
        eager: usize,
        max_threads: usize,
        max_queue: usize,
        keep_alive: Duration,
    ) -> Result<WorkerPool> {
        let max_threads = max_threads.max(1);
        let pool = WorkerPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    idle: 0,
                    notified: 0,
                    running: 0,
                    threads: 0,
                    started: 0,
                    watching: false,
                    monitor_alive: true,
                    shutdown: false,
                    next_id: 0,
                }),
                work: Condvar::new(),
                monitor: Condvar::new(),
                exited: Condvar::new(),
                name: name.to_owned(),
                eager: eager.clamp(1, max_threads),
                max_threads,
                max_queue,
                keep_alive,
                admitted: AtomicUsize::new(0),
            }),
        };
        let monitor = pool.shared.clone();
        std::thread::Builder::new()
            .name(format!("{name}-monitor"))
            .spawn(move || monitor.monitor())
            .map_err(|e| Error::io("failed to start the worker pool's monitor thread", e))?;
        Ok(pool)
    }

    /// Reserves a place for one job, or `None` when every thread is busy and the queue is
    /// full: the caller refuses the work.
    pub(crate) fn try_reserve(&self) -> Option<Permit> {
        let limit = self.shared.max_threads + self.shared.max_queue;
        let mut current = self.shared.admitted.load(Ordering::Acquire);
        loop {
            if current >= limit {
                return None;
            }
            match self.shared.admitted.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        pool: self.shared.clone(),
                        used: false,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Most threads the pool may run.
    pub(crate) fn max_threads(&self) -> usize {
        self.shared.max_threads
    }

    /// Jobs admitted and not finished.
    #[cfg(test)]
    pub(crate) fn admitted(&self) -> usize {
        self.shared.admitted.load(Ordering::Acquire)
    }

    /// Queues a job without a reservation (it still counts against the bound).
    #[cfg(test)]
    pub(crate) fn execute(&self, job: Job) {
        self.execute_all(vec![job]);
    }

    /// Queues jobs without reservations (they still count against the bound).
    #[cfg(test)]
    pub(crate) fn execute_all(&self, jobs: Vec<Job>) {
        self.shared.admitted.fetch_add(jobs.len(), Ordering::AcqRel);
        self.enqueue(jobs);
    }

    /// Queues jobs whose places were reserved, with one lock and at most one wake-up.
    pub(crate) fn enqueue(&self, jobs: impl IntoIterator<Item = Job>) {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        if state.shutdown {
            drop(state);
            for job in jobs {
                shared.admitted.fetch_sub(1, Ordering::AcqRel);
                role::drop_off_poller(job);
            }
            return;
        }
        let before = state.queue.len();
        state.queue.extend(jobs);
        if state.queue.len() == before {
            return;
        }
        let wake_worker =
            state.running + state.notified < shared.eager && state.idle > state.notified;
        if wake_worker {
            state.notified += 1;
        }
        // The monitor starts threads and watches for jobs that wait behind blocked ones.
        let wake_monitor = !state.watching && state.queue.len() > state.notified;
        if wake_monitor {
            state.watching = true;
        }
        drop(state);
        if wake_worker {
            shared.work.notify_one();
        }
        if wake_monitor {
            shared.monitor.notify_one();
        }
    }

    /// Worker threads alive, the monitor included.
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        let state = lock(&self.shared.state);
        state.threads + usize::from(state.monitor_alive)
    }

    /// Stops the pool: queued jobs are dropped, idle threads exit and are waited for, and
    /// a thread running a job exits when the job returns (a job that never returns cannot
    /// hang this).
    pub(crate) fn shutdown(&self) {
        let jobs = {
            let mut state = lock(&self.shared.state);
            state.shutdown = true;
            std::mem::take(&mut state.queue)
        };
        self.shared.work.notify_all();
        self.shared.monitor.notify_all();
        for job in jobs {
            self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
            drop(job);
        }
        let own = usize::from(role::current() == Role::Worker);
        let mut state = lock(&self.shared.state);
        while state.threads + usize::from(state.monitor_alive) > state.running.max(own) {
            state = self
                .shared
                .exited
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl PoolShared {
    /// Releases a worker for queued jobs: wakes an idle one, or starts a thread. Called
    /// with the lock held; returns the guard (the lock is released to start a thread).
    fn release_worker<'a>(
        self: &'a Arc<Self>,
        mut state: MutexGuard<'a, PoolState>,
    ) -> MutexGuard<'a, PoolState> {
        if state.idle > state.notified {
            state.notified += 1;
            self.work.notify_one();
            return state;
        }
        if state.threads >= self.max_threads {
            return state;
        }
        state.threads += 1;
        let id = state.next_id;
        state.next_id += 1;
        drop(state);
        let worker = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{id}", self.name))
            .spawn(move || worker.work());
        let mut state = lock(&self.state);
        if let Err(e) = spawned {
            tracing::error!(error = %e, "failed to start a worker thread");
            state.threads -= 1;
        }
        state
    }

    /// The monitor: starts workers for queued jobs, and releases more when the running
    /// ones make no progress (they block).
    fn monitor(self: Arc<Self>) {
        let mut state = lock(&self.state);
        let mut last_started = state.started;
        let mut since = Instant::now();
        loop {
            if state.shutdown {
                break;
            }
            if state.queue.is_empty() {
                state.watching = false;
                state = self.monitor.wait(state).unwrap_or_else(|e| e.into_inner());
                last_started = state.started;
                since = Instant::now();
                continue;
            }
            state.watching = true;
            let waiting = state.queue.len() > state.notified;
            let stalled = state.started == last_started && since.elapsed() >= STALL;
            if waiting && (state.running + state.notified < self.eager || stalled) {
                state = self.release_worker(state);
            }
            if state.started != last_started || stalled {
                last_started = state.started;
                since = Instant::now();
            }
            state = self
                .monitor
                .wait_timeout(state, STALL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.monitor_alive = false;
        drop(state);
        self.exited.notify_all();
    }

    fn work(self: Arc<Self>) {
        role::set(Role::Worker);
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.running += 1;
                state.started += 1;
                drop(state);
                if catch_unwind(AssertUnwindSafe(job)).is_err() {
                    tracing::error!("a job on the rsgrpc worker pool panicked");
                }
                self.admitted.fetch_sub(1, Ordering::AcqRel);
                state = lock(&self.state);
                state.running -= 1;
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            state.notified = state.notified.saturating_sub(1);
            if timeout.timed_out() && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
        drop(state);
        self.exited.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                    let _ = release.lock().unwrap().recv();
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

    #[test]
    fn pool_grows_while_jobs_block() {
        let pool = WorkerPool::new("test-pool", 1, 8, 16, Duration::from_secs(1)).unwrap();
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
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        drop(release_tx);
        pool.shutdown();
        // Running jobs finish on their own; their threads exit then.
        assert!(eventually(|| pool.threads() == 0), "{}", pool.threads());
    }

    /// Whether `check` holds within a generous bound.
    fn eventually(check: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn pool_refuses_work_beyond_threads_and_queue() {
        let pool = WorkerPool::new("test-bound", 1, 2, 3, Duration::from_secs(1)).unwrap();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut permits = 0;
        while let Some(permit) = pool.try_reserve() {
            let release = release_rx.clone();
            permit.execute(Box::new(move || {
                let _ = release.lock().unwrap().recv();
            }));
            permits += 1;
            assert!(permits <= 5, "more than threads + queue admitted");
        }
        assert_eq!(permits, 5);
        assert!(pool.threads() <= 3, "two workers and the monitor");
        drop(release_tx);
        assert!(eventually(|| pool.admitted() == 0));
        assert!(pool.try_reserve().is_some());
        pool.shutdown();
    }

    #[test]
    fn a_burst_of_quick_jobs_is_run_by_few_threads() {
        let pool = WorkerPool::new("test-burst", 1, 64, 1024, Duration::from_secs(5)).unwrap();
        let (tx, rx) = mpsc::channel();
        let jobs: Vec<Job> = (0..500)
            .map(|i| {
                let tx = tx.clone();
                Box::new(move || tx.send(i).unwrap()) as Job
            })
            .collect();
        pool.execute_all(jobs);
        for _ in 0..500 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        // Quick jobs never stall the queue for long, so the monitor rarely adds workers;
        // a pool that started a thread per waiting job would have 64 here.
        assert!(pool.threads() < 32, "{} threads", pool.threads());
        pool.shutdown();
    }
}
