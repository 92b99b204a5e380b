//! Poller threads: each owns a private tokio current-thread runtime that drives sockets,
//! timers and HTTP/2 state.
//!
//! Only this crate's own I/O tasks are spawned here: connection drivers, per-call stream
//! drivers that move frames between h2 and the completion queues, and timers. Handlers,
//! user futures and user streams never run on a poller thread; they run on the executor or
//! the worker pool (see [`crate::executor`] and [`crate::pool`]), or on the caller's own thread.

use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// One poller thread.
pub(crate) struct Poller {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts a poller thread with the given name.
    pub(crate) fn start(name: String) -> Result<Poller> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name(name.clone())
            .build()
            .map_err(|e| Error::io("failed to build a poller's i/o driver", e))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                crate::role::set(crate::role::Role::Poller);
                // Runs every spawned task until told to stop; dropping the runtime then
                // drops the remaining tasks, which closes their completion queues.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                drop(runtime);
            })
            .map_err(|e| Error::io("failed to start a poller thread", e))?;
        Ok(Poller {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Stops the thread and joins it (unless called from the poller thread itself).
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
