//! The built-in executor: where async handlers and client request streams run, never on a
//! poller thread.
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
//!
//! The blocking handlers run on the worker pool instead ([`crate::pool`]).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::role::{self, Role};
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, Weak, thread, thread_local};

/// A boxed future as handed to a spawn hook.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A user-supplied way to run futures, for example `|f| { tokio_handle.spawn(f); }`.
pub(crate) type SpawnHook = Arc<dyn Fn(BoxFuture) + Send + Sync + 'static>;

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
            self.0.state.lock().serving += 1;
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
        let mut slot = self.future.lock();
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
        if let Some(future) = self.future.lock().take() {
            role::drop_off_poller(future);
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A task dropped before it finished (its executor shut down) holds a user's
        // future, which must not be dropped on a poller thread.
        let future = self.future.get_mut().take();
        if let Some(future) = future {
            role::drop_off_poller(future);
        }
    }
}

impl ExecShared {
    /// Queues a task and wakes a thread if none is on its way.
    fn push(&self, task: Arc<Task>) {
        let mut state = self.state.lock();
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
        let mut state = self.state.lock();
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
            let mut state = self.state.lock();
            state.threads -= 1;
            state.serving -= 1;
            drop(state);
            self.exited.notify_all();
        }
    }

    fn start_thread(self: &Arc<Self>, id: usize) -> std::io::Result<()> {
        let shared = self.clone();
        thread::Builder::new()
            .name(format!("{}-{id}", self.name))
            .spawn(move || shared.serve())
            .map(drop)
    }

    /// An executor thread's life: serve the queue, or wait as a spare, until shutdown.
    fn serve(self: Arc<Self>) {
        role::set(Role::Executor);
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        let mut state = self.state.lock();
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
                        state = self.state.lock();
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
                state = self.state.lock();
                state.busy -= 1;
                continue;
            }
            state.idle += 1;
            state = self.work.wait(state);
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
            state = self.spare.wait_timeout(state, deadline - now).0;
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
            shared.state.lock().threads += 1;
            if let Err(e) = shared.start_thread(i) {
                shared.state.lock().threads -= 1;
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
        let mut state = self.shared.state.lock();
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
        self.shared.state.lock().threads
    }

    /// Stops the threads: idle ones exit now and are waited for; a thread polling a task
    /// finishes that poll and then exits (a task that never returns cannot hang this).
    /// Queued tasks are dropped here.
    pub(crate) fn shutdown(&self) {
        let queue = {
            let mut state = self.shared.state.lock();
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
        let mut state = self.shared.state.lock();
        // Threads blocked in a region are counted busy too, so `busy` bounds the wait.
        while state.threads > state.busy.max(own) {
            state = self.shared.exited.wait(state);
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

#[cfg(test)]
mod tests;
