//! Which kind of runtime thread the current thread is, and the rule that follows from it:
//! no user code runs on a poller thread.
//!
//! Every place where user code is entered (a handler, a spawn hook, a user's stream, the
//! drop of a user's value) checks [`assert_off_poller`] in debug builds. Values that may
//! hold user code and could be released on a poller thread go through [`drop_off_poller`],
//! which hands them to a reaper thread instead.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

/// The kind of thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Any thread the runtime did not start.
    User,
    /// A poller thread: sockets, HTTP/2, timers; never user code.
    Poller,
    /// An executor thread: async handlers and request streams.
    Executor,
    /// A worker-pool thread: blocking handlers.
    Worker,
}

crate::sync::thread_local! {
    static ROLE: Cell<Role> = const { Cell::new(Role::User) };
}

/// Marks the calling thread for the rest of its life.
pub(crate) fn set(role: Role) {
    ROLE.with(|r| r.set(role));
}

/// The calling thread's role.
pub(crate) fn current() -> Role {
    ROLE.with(Cell::get)
}

/// Whether the calling thread is a poller thread.
pub(crate) fn on_poller() -> bool {
    current() == Role::Poller
}

/// Panics in debug builds when called on a poller thread; `what` names the user code
/// about to run.
#[track_caller]
pub(crate) fn assert_off_poller(what: &str) {
    debug_assert!(
        !on_poller(),
        "{what} must not run on an rsgrpc poller thread"
    );
}

/// The reaper's queue, once it is started.
static REAPER: Mutex<Option<Sender<Box<dyn Send>>>> = Mutex::new(None);

/// Starts the process-wide reaper thread if it is not running yet. Called where runtimes
/// are built, never on a poller.
pub(crate) fn start_reaper() -> crate::error::Result<()> {
    let mut reaper = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    if reaper.is_some() {
        return Ok(());
    }
    let (tx, rx) = channel::<Box<dyn Send>>();
    std::thread::Builder::new()
        .name("rsgrpc-reaper".to_owned())
        .spawn(move || {
            for value in rx {
                drop(value);
            }
        })
        .map_err(|e| crate::error::Error::io("failed to start the reaper thread", e))?;
    *reaper = Some(tx);
    Ok(())
}

/// Drops `value` here, unless this is a poller thread: then the reaper thread drops it,
/// so that a user's `Drop` (which may block) never stalls network I/O.
pub(crate) fn drop_off_poller<T: Send + 'static>(value: T) {
    if !on_poller() {
        drop(value);
        return;
    }
    let reaper = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    let sent = match reaper.as_ref() {
        Some(tx) => tx.send(Box::new(value)).map_err(|e| e.0),
        None => Err(Box::new(value) as Box<dyn Send>),
    };
    if let Err(value) = sent {
        // Every runtime starts the reaper before its pollers; leaking is the lesser evil
        // than running a user's Drop here.
        tracing::error!("the reaper thread is not running; leaking a value");
        std::mem::forget(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct Noisy(mpsc::Sender<String>);

    impl Drop for Noisy {
        fn drop(&mut self) {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let _ = self.0.send(name);
        }
    }

    #[test]
    fn values_released_on_a_poller_are_dropped_elsewhere() {
        start_reaper().unwrap();
        let (tx, rx) = mpsc::channel();
        let value = Noisy(tx.clone());
        std::thread::Builder::new()
            .name("pretend-poller".into())
            .spawn(move || {
                set(Role::Poller);
                drop_off_poller(value);
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(rx.recv().unwrap(), "rsgrpc-reaper");

        // Elsewhere it is dropped in place.
        drop_off_poller(Noisy(tx));
        assert_eq!(
            rx.recv().unwrap(),
            std::thread::current().name().unwrap_or("")
        );
    }
}
