//! The worker pool: where blocking handlers (and name resolution) run, never on a poller
//! thread.
//!
//! Runs blocking handlers. Its queue is bounded (callers are told to refuse work beyond
//! it), and so are its threads. As many jobs run at once as the machine has cores; when
//! they block (a handler that sleeps or waits on I/O), a monitor thread notices that the
//! queue made no progress for a millisecond and releases one more worker, up to the cap.
//! So a burst of quick jobs is run by one or two threads with few wake-ups, and sleeping
//! handlers do not delay the calls behind them. Threads are started by the monitor, never
//! by the thread that submits work (a poller), and idle ones exit after the keep-alive.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::limits;
use crate::role::{self, Role};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, thread};

/// A blocking job: runs a handler on a worker thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

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
        thread::Builder::new()
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
        let mut state = shared.state.lock();
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
        let state = self.shared.state.lock();
        state.threads + usize::from(state.monitor_alive)
    }

    /// Stops the pool: queued jobs are dropped, idle threads exit and are waited for, and
    /// a thread running a job exits when the job returns (a job that never returns cannot
    /// hang this).
    pub(crate) fn shutdown(&self) {
        let jobs = {
            let mut state = self.shared.state.lock();
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
        let mut state = self.shared.state.lock();
        while state.threads + usize::from(state.monitor_alive) > state.running.max(own) {
            state = self.shared.exited.wait(state);
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
        let spawned = thread::Builder::new()
            .name(format!("{}-{id}", self.name))
            .spawn(move || worker.work());
        let mut state = self.state.lock();
        if let Err(e) = spawned {
            tracing::error!(error = %e, "failed to start a worker thread");
            state.threads -= 1;
        }
        state
    }

    /// The monitor: starts workers for queued jobs, and releases more when the running
    /// ones make no progress (they block).
    fn monitor(self: Arc<Self>) {
        let mut state = self.state.lock();
        let mut last_started = state.started;
        let mut since = Instant::now();
        loop {
            if state.shutdown {
                break;
            }
            if state.queue.is_empty() {
                state.watching = false;
                state = self.monitor.wait(state);
                last_started = state.started;
                since = Instant::now();
                continue;
            }
            state.watching = true;
            let waiting = state.queue.len() > state.notified;
            let stalled = state.started == last_started && since.elapsed() >= limits::POOL_STALL;
            if waiting && (state.running + state.notified < self.eager || stalled) {
                state = self.release_worker(state);
            }
            if state.started != last_started || stalled {
                last_started = state.started;
                since = Instant::now();
            }
            state = self.monitor.wait_timeout(state, limits::POOL_STALL).0;
        }
        state.monitor_alive = false;
        drop(state);
        self.exited.notify_all();
    }

    fn work(self: Arc<Self>) {
        role::set(Role::Worker);
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.running += 1;
                state.started += 1;
                drop(state);
                if catch_unwind(AssertUnwindSafe(job)).is_err() {
                    tracing::error!("a job on the rsgrpc worker pool panicked");
                }
                self.admitted.fetch_sub(1, Ordering::AcqRel);
                state = self.state.lock();
                state.running -= 1;
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let (next, timed_out) = self.work.wait_timeout(state, self.keep_alive);
            state = next;
            state.idle -= 1;
            state.notified = state.notified.saturating_sub(1);
            if timed_out && state.queue.is_empty() {
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
    use crate::testing::eventually;
    use std::sync::mpsc;

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
                let _ = release.lock().recv();
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

    #[test]
    fn pool_refuses_work_beyond_threads_and_queue() {
        let pool = WorkerPool::new("test-bound", 1, 2, 3, Duration::from_secs(1)).unwrap();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut permits = 0;
        while let Some(permit) = pool.try_reserve() {
            let release = release_rx.clone();
            permit.execute(Box::new(move || {
                let _ = release.lock().recv();
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
