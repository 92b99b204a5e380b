//! The runtime: poller threads for I/O, an executor for async user code and a worker pool
//! for blocking user code.
//!
//! Most programs never name it: channels and servers use [`Runtime::global`], started
//! lazily on first use. Build one with [`Runtime::builder`] to choose thread counts and
//! names, or to shut the threads down when you are done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::executor::{BoxFuture, Executor};
use crate::limits;
use crate::poller::Poller;
use crate::pool::WorkerPool;

/// The threads behind channels and servers.
///
/// Cloning is cheap and shares the threads. When the last clone is dropped the threads stop:
/// calls still in flight on its channels fail with `UNAVAILABLE` and its servers stop.
///
/// ```
/// let runtime = rsgrpc::Runtime::builder()
///     .poller_threads(1)
///     .executor_threads(2)
///     .thread_name_prefix("my-grpc")
///     .build()
///     .unwrap();
/// let channel = rsgrpc::Channel::builder("http://127.0.0.1:50051")
///     .runtime(&runtime)
///     .connect_lazy()
///     .unwrap();
/// # drop(channel);
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    pollers: Vec<Poller>,
    handle: Handle,
}

/// What channels and servers keep: a way to reach the threads, not ownership of them.
#[derive(Clone)]
pub(crate) struct Handle {
    pollers: Arc<[tokio::runtime::Handle]>,
    next_poller: Arc<AtomicUsize>,
    pub(crate) executor: Executor,
    pub(crate) workers: WorkerPool,
}

impl Handle {
    /// The next poller thread's handle, round-robin, to place a new connection on.
    pub(crate) fn poller(&self) -> tokio::runtime::Handle {
        let i = self.next_poller.fetch_add(1, Ordering::Relaxed) % self.pollers.len();
        self.pollers[i].clone()
    }

    /// Runs an async task on the built-in executor.
    pub(crate) fn spawn(&self, future: BoxFuture) {
        self.executor.spawn(future);
    }
}

impl Runtime {
    /// A builder to configure thread counts and names.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The process-wide runtime, started on first use with default settings.
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start its threads on first use.
    pub fn global() -> &'static Runtime {
        static GLOBAL: OnceLock<Runtime> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            RuntimeBuilder::default()
                .build()
                .expect("failed to start the rsgrpc global runtime threads")
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.inner.handle
    }
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        for poller in &mut self.pollers {
            poller.stop();
        }
        self.handle.executor.shutdown();
        self.handle.workers.shutdown();
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("poller_threads", &self.inner.pollers.len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    poller_threads: usize,
    executor_threads: Option<usize>,
    max_executor_stand_ins: usize,
    max_blocking_threads: usize,
    max_blocking_queue: usize,
    blocking_keep_alive: Duration,
    name: String,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            poller_threads: 1,
            executor_threads: None,
            max_executor_stand_ins: limits::DEFAULT_MAX_EXECUTOR_STAND_INS,
            max_blocking_threads: limits::DEFAULT_MAX_BLOCKING_THREADS,
            max_blocking_queue: limits::DEFAULT_MAX_BLOCKING_QUEUE,
            blocking_keep_alive: limits::BLOCKING_KEEP_ALIVE,
            name: "rsgrpc".to_owned(),
        }
    }
}

impl RuntimeBuilder {
    /// Number of poller threads, which do all network I/O (default 1). Connections are
    /// spread over them round-robin.
    pub fn poller_threads(mut self, n: usize) -> Self {
        self.poller_threads = n;
        self
    }

    /// Number of threads of the built-in executor, which runs async handlers and client
    /// request streams (default: the number of CPUs this process may run on).
    pub fn executor_threads(mut self, n: usize) -> Self {
        self.executor_threads = Some(n);
        self
    }

    /// Most extra executor threads started while executor threads are blocked in a
    /// blocking rsgrpc call made from async code (default 64). Each blocked thread is
    /// replaced for as long as it waits, so async handlers that call each other through
    /// blocking clients do not starve the executor; past this cap a blocked thread is not
    /// replaced.
    pub fn max_executor_stand_ins(mut self, n: usize) -> Self {
        self.max_executor_stand_ins = n;
        self
    }

    /// Most threads the blocking worker pool may start (default 256). As many blocking
    /// handlers run at once as the machine has cores; more threads are added only while
    /// running handlers block, up to this cap.
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n;
        self
    }

    /// Most blocking handlers waiting for a worker thread once all are busy (default
    /// 1024). Servers refuse calls beyond it (`REFUSED_STREAM`, which clients report as
    /// `UNAVAILABLE`) rather than queue without limit.
    pub fn max_blocking_queue(mut self, n: usize) -> Self {
        self.max_blocking_queue = n;
        self
    }

    /// How long an idle blocking worker thread (or a spare executor thread) lives before
    /// it exits (default 60 s).
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.blocking_keep_alive = keep_alive;
        self
    }

    /// Prefix of thread names (default `rsgrpc`): threads are named `{prefix}-poller-{i}`,
    /// `{prefix}-exec-{i}`, `{prefix}-worker-{i}` and `{prefix}-worker-monitor`.
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    ///
    /// When a thread count is zero, or the operating system refuses to start a thread.
    pub fn build(self) -> Result<Runtime> {
        if self.poller_threads == 0 {
            return Err(Error::invalid_config("poller_threads must be at least 1"));
        }
        if self.executor_threads == Some(0) {
            return Err(Error::invalid_config("executor_threads must be at least 1"));
        }
        if self.max_blocking_threads == 0 {
            return Err(Error::invalid_config(
                "max_blocking_threads must be at least 1",
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let executor_threads = self.executor_threads.unwrap_or(cpus);
        let mut pollers = Vec::with_capacity(self.poller_threads);
        for i in 0..self.poller_threads {
            pollers.push(Poller::start(format!("{}-poller-{i}", self.name))?);
        }
        let executor = Executor::start(
            executor_threads,
            executor_threads.saturating_add(self.max_executor_stand_ins),
            &format!("{}-exec", self.name),
            self.blocking_keep_alive,
        )?;
        let workers = WorkerPool::new(
            &format!("{}-worker", self.name),
            cpus,
            self.max_blocking_threads,
            self.max_blocking_queue,
            self.blocking_keep_alive,
        )?;
        // Values released on a poller are dropped on the reaper: start it here, on the
        // builder's thread, so that no poller ever starts a thread.
        crate::role::start_reaper()?;
        let handle = Handle {
            pollers: pollers.iter().map(|p| p.handle().clone()).collect(),
            next_poller: Arc::new(AtomicUsize::new(0)),
            executor,
            workers,
        };
        Ok(Runtime {
            inner: Arc::new(RuntimeInner { pollers, handle }),
        })
    }
}
